"""Packet batches -> the flow table: one row per connection, both directions.

The builder is fed Arrow packet batches (``auditor.capture.schema.PACKET_SCHEMA``). The
per-packet step (flow lookup by the reader's symmetric flow key, port reuse, counters) is one
C loop per batch (``auditor/_flowtab.c``); Python handles only the rows that open a flow
(endpoints, encapsulation) and the first payload packets of each direction, which the
classifier reads. Settled flows are classified during the read, so memory grows with the
number of flows, not of packets; beyond ``limit`` live flows (``--flow-limit``) the least
recently seen are spilled to disk and merged back when the table is built
(:mod:`auditor.flows.spill`), so the live state is bounded.

Rules, documented in the README ("Flows"):

* A flow is the packets sharing the protocol and the two address/port endpoints (not the
  VLAN: mirror feeds often carry the two directions on different VLANs). ICMP flows are
  per host pair. A TCP pure SYN (SYN without ACK) seen after a FIN or RST in the same
  5-tuple starts a new flow (a port reused after a close is a new connection), unless it
  repeats the flow's first SYN sequence number (a retransmission).
* Initiator (``src_*``) is the sender of the first pure SYN. Without one, the direction is
  inferred (``direction_inferred``): the receiver of a SYN-ACK's opposite side; else the
  endpoint on a port below 1024 when only one is; else the endpoint on an ephemeral port
  (>= 32768) is the initiator when only one is; else the sender of the first packet.
* TCP state: ``attempted`` (SYN, no answer), ``rejected`` (SYN answered by RST, no SYN-ACK),
  ``established`` (SYN and SYN-ACK, still open at capture end), ``closed`` (established and
  then FIN or RST), ``midstream`` (no SYN seen). Other protocols have no state.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from auditor._flowid import identify_buffers, ip_text_buffers, ip_texts
from auditor._flowtab import HEADS, FlowTable, collect_heads, release_free_memory
from auditor.capture.schema import PACKET_SCHEMA, STATUS_NAMES, TUNNEL_NAMES
from auditor.classify import FlowFacts, classify_flow, ftp_data
from auditor.classify.facts import NO_PAYLOAD, facts_table_of, null_column, zeros

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TCP = 6
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp", 47: "gre", 50: "esp"}
_V4_PREFIX = b"\x00" * 10 + b"\xff\xff"


def ip_text(ip16: bytes) -> str:
    """16-byte address -> text; IPv4-mapped addresses as dotted quads, IPv6 compressed."""
    if ip16[:12] == _V4_PREFIX:
        return socket.inet_ntop(socket.AF_INET, ip16[12:])
    return socket.inet_ntop(socket.AF_INET6, ip16)


def values(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of a fixed-width Arrow column as numpy, zero-copy; nulls read as whatever
    lies under them (the reader writes 0 there). Avoids the float cast numpy does for nulls."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    dtype = arr.type.to_pandas_dtype()
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=dtype, count=len(arr) + arr.offset)[arr.offset :]


def fixed16(arr: pa.Array) -> np.ndarray:
    """A fixed_size_binary(16) column as an (n, 16) uint8 view (nulls read as zeros)."""
    buf = arr.buffers()[1]
    flat = np.frombuffer(buf, dtype=np.uint8, count=(len(arr) + arr.offset) * 16)
    return flat.reshape(-1, 16)[arr.offset :]


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


_PROTO_TEXT = np.array([proto_name(p) for p in range(256)], dtype=object)


_EXPORT_DTYPES = {
    "key": np.uint64, "first_ts": np.int64, "last_ts": np.int64,
    "pkts0": np.int64, "pkts1": np.int64, "bytes0": np.int64, "bytes1": np.int64,
    "pay0": np.int64, "pay1": np.int64, "flags0": np.uint8, "flags1": np.uint8,
    "syn_dir": np.int8, "synack_dir": np.int8, "first_dir": np.int8,
    "closed": np.uint8, "got0": np.uint8, "got1": np.uint8, "lo": np.uint8, "hi": np.uint8,
}  # fmt: skip
#: what else the table exports: the full key's ports and protocol, the first SYN's sequence
#: number and whether (and with which number) a flow's first packet was a pure SYN (the
#: spill's merge of a flow's segments, auditor/flows/spill.py)
_KEY_DTYPES = {
    "plo": np.uint16, "phi": np.uint16, "kproto": np.uint8, "syn_seq": np.uint32,
    "open_syn": np.uint8, "open_seq": np.uint32,
}  # fmt: skip
_ALL_DTYPES = {**_EXPORT_DTYPES, **_KEY_DTYPES}
#: live flows held by default before the least recently seen are spilled (--flow-limit)
FLOW_LIMIT = 1_000_000
#: look for settled flows to classify once this many flows hold payload heads; after a look,
#: once twice as many as were still in progress (so each look costs O(flows it settles))
FLUSH_PENDING = 2048
#: a flow silent for this long (capture time) is settled
IDLE_NS = 120 * 1_000_000_000


_FIRST_NUMERIC = ("src_port", "dst_port", "proto", "flow_dir", "vlan", "vlan_inner", "mpls",
                  "tunnel", "tunnel_id", "frame")  # fmt: skip
#: a packet's place in the traffic set as one int64: capture index << 40 | frame number
_FRAME_BITS = 40
_FIRST_DTYPES = {
    **{name: np.dtype(PACKET_SCHEMA.field(name).type.to_pandas_dtype()) for name in _FIRST_NUMERIC},
    "capture": np.dtype(np.int32),
}


def _grown(a: np.ndarray, n: int, need: int) -> np.ndarray:
    """``a`` (n rows used) with room for ``need`` rows: the same array, or one twice as big."""
    if need <= len(a):
        return a
    new = np.empty((max(4096, 2 * need), *a.shape[1:]), dtype=a.dtype)
    new[:n] = a[:n]
    return new


class _FirstPackets:
    """Per-flow columns taken from each flow's first packet, in flow order: numpy arrays
    that grow by doubling, so that appending is amortised O(rows) and reading a set of
    flows (a flush) costs O(that set), not O(all flows). The endpoints are not here (the
    flow table keeps them: FlowTable.export's lo/hi), and the outer addresses of a tunnel
    are kept only for the flows in one (32 bytes a flow less for the others)."""

    def __init__(self) -> None:
        self.n = 0
        self.cols = {k: np.empty(0, dtype=dt) for k, dt in _FIRST_DTYPES.items()}
        self.n_outer = 0
        self.outer_flow = np.empty(0, np.int64)  # flow indices, ascending
        self.outer_addr = np.empty((0, 32), np.uint8)  # outer_src + outer_dst

    def append(self, batch: pa.RecordBatch, rows: np.ndarray, capture: int) -> None:
        end = self.n + len(rows)
        for k, old in self.cols.items():
            self.cols[k] = _grown(old, self.n, end)
        for name in _FIRST_NUMERIC:
            self.cols[name][self.n : end] = values(batch.column(name))[rows]
        self.cols["capture"][self.n : end] = capture
        tunneled = np.flatnonzero(self.cols["tunnel"][self.n : end])
        if len(tunneled):
            m = self.n_outer + len(tunneled)
            self.outer_flow = _grown(self.outer_flow, self.n_outer, m)
            self.outer_addr = _grown(self.outer_addr, self.n_outer, m)
            self.outer_flow[self.n_outer : m] = self.n + tunneled
            picked = rows[tunneled]
            self.outer_addr[self.n_outer : m, :16] = fixed16(batch.column("outer_src"))[picked]
            self.outer_addr[self.n_outer : m, 16:] = fixed16(batch.column("outer_dst"))[picked]
            self.n_outer = m
        self.n = end

    def columns(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Every flow's values (views), or those of the flows at ``rows``."""
        if rows is None:
            return {k: v[: self.n] for k, v in self.cols.items()}
        return {k: v[rows] for k, v in self.cols.items()}

    def outer(self, flows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The outer source and destination addresses ((n, 16) each) of tunneled ``flows``."""
        at = np.searchsorted(self.outer_flow[: self.n_outer], flows)
        addr = self.outer_addr[at]
        return addr[:, :16], addr[:, 16:]


def _fixed_strings(chars: np.ndarray) -> pa.Array:
    """An (n, w) uint8 array of characters as an Arrow string column of n w-character values."""
    n, w = chars.shape
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    data = pa.py_buffer(np.ascontiguousarray(chars))
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), data])


def _ip_strings(addrs: np.ndarray) -> pa.Array:
    """(n, 16) addresses as an Arrow string column of their text (no Python string each)."""
    offsets, chars = ip_text_buffers(np.ascontiguousarray(addrs))
    return pa.Array.from_buffers(
        pa.string(), len(addrs), [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )


def _binary16(arr: np.ndarray) -> pa.Array:
    """An (n, 16) uint8 array as an Arrow fixed_size_binary(16) column, without a copy per row."""
    raw = pa.py_buffer(np.ascontiguousarray(arr))  # shares the array's memory
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(arr), [None, raw])


@dataclass
class FlowBuilder:
    """Accumulates packet batches into flows; ``table()`` returns the flow table.

    The per-packet work (flow lookup, port reuse, counters) is one C loop
    (``auditor._flowtab``); Python handles only the rows that open a flow (endpoints,
    encapsulation) and the first payload packets of each direction (classifier input).
    """

    tab: FlowTable = field(default_factory=FlowTable)
    first: _FirstPackets = field(default_factory=lambda: _FirstPackets())
    heads: dict[int, list[tuple[int, bytes, int]]] = field(default_factory=dict)
    facts: dict[int, FlowFacts] = field(default_factory=dict)
    fragments: dict[tuple[bytes, bytes, int, int], tuple[int, int, int, int]] = field(
        default_factory=dict
    )
    orphan_fragments: int = 0
    ftp_announced: list[ftp_data.Announcement] = field(default_factory=list)
    flush_at: int = field(default_factory=lambda: FLUSH_PENDING)
    built: bool = False  #: table() was called: the builder takes no more batches
    #: per flow, the place (capture << 40 | frame) of its last packet so far
    last_at: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: live flows held before the least recently seen are spilled to disk (None: no bound)
    limit: int | None = None
    #: where evicted flows went (auditor.flows.spill.Spill), None until the first eviction
    spill: Any = None

    @property
    def n(self) -> int:
        return int(self.tab.n_flows)

    def add_batch(self, batch: pa.RecordBatch, capture: int = 0) -> None:
        """Fold one packet batch into the flows (rows with a non-ok status are skipped)."""
        if self.built:
            raise RuntimeError("FlowBuilder.add_batch() after table()")
        col = batch.column
        status = values(col("status"))
        key = values(col("flow_key"))
        d = values(col("flow_dir"))
        frag = values(col("frag"))
        sport, dport = values(col("src_port")), values(col("dst_port"))
        later = np.flatnonzero((frag != 0) & (status == 0))
        if len(later):
            key, d, status = key.copy(), d.copy(), status.copy()
            sport, dport = sport.copy(), dport.copy()
            self._resolve_fragments(batch, later, frag, key, d, status, sport, dport)
        n = batch.num_rows
        flow = np.empty(n, dtype=np.int64)
        flag = np.empty(n, dtype=np.uint8)
        pay = values(col("payload_len"))
        created = self.tab.add(
            np.ascontiguousarray(key),
            np.ascontiguousarray(d),
            values(col("ts")),
            values(col("frame_len")),
            pay,
            values(col("tcp_flags")),
            values(col("tcp_seq")),
            values(col("proto")),
            np.ascontiguousarray(status),
            fixed16(col("src_ip")),
            fixed16(col("dst_ip")),
            sport,
            dport,
            flow,
            flag,
        )
        if created:
            self._new_flows(batch, np.flatnonzero(flag & 1), capture)
        self._last_packets(flow, values(col("frame")), capture)
        payload = col("payload")
        offsets = np.frombuffer(payload.buffers()[1], dtype=np.int32, count=n + 1 + payload.offset)[
            payload.offset :
        ]
        data = payload.buffers()[2]
        if data is not None:  # FTP data connections announced in this batch
            ftp_data.scan(
                flow,
                values(col("proto")),
                fixed16(col("src_ip")),
                offsets,
                data,
                self.ftp_announced,
            )
        if (
            collect_heads(
                self.heads,
                self.facts,
                flow,
                np.ascontiguousarray(d),
                pay,
                flag,
                offsets,
                data if data is not None else b"",
            )
            and len(self.heads) >= self.flush_at
        ):
            self._flush(int(values(col("ts")).max()))
        if self.limit is not None and self.tab.n_flows > self.limit and n:
            self._evict(int(values(col("ts")).max()))

    def _evict(self, now: int) -> None:
        """Spill the least recently seen flows (and every flow silent for IDLE_NS) until
        three quarters of the limit are left: their state, first packet, payload heads or
        classification go to the spill file as one segment each (auditor/flows/spill.py); the
        table forgets them. A later packet of an evicted flow starts a new segment, merged
        with the earlier ones by the full key when the table is built."""
        from auditor.flows.spill import Spill, spill_flows

        assert self.limit is not None
        c = self._arrays()
        n = len(c["key"])
        target = self.limit * 3 // 4
        order = np.argsort(c["last_ts"], kind="stable")
        idle = int(np.count_nonzero(c["last_ts"] < now - IDLE_NS))
        rows = np.sort(order[: max(n - target, idle)])
        if not len(rows):
            return
        if self.spill is None:
            self.spill = Spill()
        spill_flows(self, self.spill, rows, {k: v[rows] for k, v in c.items()})
        keep = np.ones(n, dtype=bool)
        keep[rows] = False
        self.tab.compact(keep.view(np.uint8).tobytes())
        self._forget(keep)

    def _forget(self, keep: np.ndarray) -> None:
        """Renumber the Python side after FlowTable.compact(keep): flow i becomes the
        number of kept flows before it; what was held for the others is gone."""
        new = np.cumsum(keep) - 1
        first = self.first
        for k, v in first.cols.items():
            first.cols[k] = np.array(v[: first.n][keep])
        first.n = int(np.count_nonzero(keep))
        outer = first.outer_flow[: first.n_outer]
        kept = keep[outer]
        first.outer_flow = new[outer[kept]].astype(np.int64)
        first.outer_addr = np.array(first.outer_addr[: first.n_outer][kept])
        first.n_outer = len(first.outer_flow)
        self.last_at = np.array(self.last_at[: len(keep)][keep])
        self.heads = {int(new[f]): v for f, v in self.heads.items() if keep[f]}
        self.facts = {int(new[f]): v for f, v in self.facts.items() if keep[f]}
        self.ftp_announced = [
            a._replace(flow=int(new[a.flow])) for a in self.ftp_announced if keep[a.flow]
        ]

    def _resolve_fragments(
        self,
        batch: pa.RecordBatch,
        rows: np.ndarray,
        frag: np.ndarray,
        key: np.ndarray,
        d: np.ndarray,
        status: np.ndarray,
        sport: np.ndarray,
        dport: np.ndarray,
    ) -> None:
        """Give later fragments the flow of their first fragment (its key, direction and
        ports: the flow table compares the full key); orphans are dropped (counted)."""
        src = fixed16(batch.column("src_ip"))[rows]
        dst = fixed16(batch.column("dst_ip"))[rows]
        proto = values(batch.column("proto"))[rows].tolist()
        ip_id = values(batch.column("ip_id"))[rows].tolist()
        for j, i in enumerate(rows.tolist()):
            fkey = (src[j].tobytes(), dst[j].tobytes(), proto[j], ip_id[j])
            if frag[i] == 1:
                self.fragments[fkey] = (int(key[i]), int(d[i]), int(sport[i]), int(dport[i]))
                if len(self.fragments) > 65536:  # bounded: forget the oldest
                    self.fragments.pop(next(iter(self.fragments)))
            else:
                found = self.fragments.get(fkey)
                if found is None:
                    status[i] = STATUS_NAMES.index("ip_fragment")
                    self.orphan_fragments += 1
                else:
                    key[i], d[i], sport[i], dport[i] = found

    def _last_packets(self, flow: np.ndarray, frame: np.ndarray, capture: int) -> None:
        """Keep each flow's last packet's place (capture, frame): the largest, since both
        grow as the captures are read."""
        n = self.first.n
        if len(self.last_at) < n:
            grown = np.zeros(max(4096, 2 * n), np.int64)
            grown[: len(self.last_at)] = self.last_at
            self.last_at = grown
        used = flow >= 0
        at = frame[used].astype(np.int64) | (capture << _FRAME_BITS)
        np.maximum.at(self.last_at, flow[used], at)

    def _new_flows(self, batch: pa.RecordBatch, rows: np.ndarray, capture: int) -> None:
        """Keep the first packet's addresses, ports and encapsulation of new flows."""
        self.first.append(batch, rows, capture)

    def _flush(self, now: int) -> None:
        """Classify the flows that will get no more heads, and drop their heads.

        Settled: both directions have their heads, or the connection was reset or closed by
        both sides, or it has been silent for IDLE_NS of capture time. Keeps the heads'
        memory bounded by the flows still in progress, not by the capture.
        """
        heads = self.heads
        pending = np.fromiter(heads.keys(), dtype=np.int64, count=len(heads))
        c = self._arrays(pending)
        full = (c["got0"] >= HEADS) & (c["got1"] >= HEADS)
        f0, f1 = c["flags0"], c["flags1"]
        ended = (((f0 | f1) & RST) != 0) | (((f0 & f1) & FIN) != 0)
        done = full | ended | (c["last_ts"] < now - IDLE_NS)
        if done.any():
            rows = pending[done]
            init, _ = self._directions({k: v[done] for k, v in c.items()}, rows)
            self._classify(rows, init)
        self.flush_at = max(FLUSH_PENDING, 2 * len(heads))

    def _arrays(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The flow table's per-flow arrays, of every flow or of the flows at ``rows``
        (``lo``/``hi``: the endpoint addresses, (n, 16))."""
        raw = self.tab.export() if rows is None else self.tab.export(rows)
        out = {k: np.frombuffer(v, dtype=_ALL_DTYPES[k]) for k, v in raw.items()}
        out["lo"], out["hi"] = out["lo"].reshape(-1, 16), out["hi"].reshape(-1, 16)
        return out

    def _directions(
        self, c: dict[str, np.ndarray], rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Canonical direction of each flow's initiator, and whether it was inferred (for
        the flows at ``rows``, which ``c`` holds, or for all)."""
        syn, synack, first = c["syn_dir"], c["synack_dir"], c["first_dir"]
        fp = self.first.columns(rows)
        lower_src = fp["flow_dir"] == 0  # the first packet came from the canonical lower end
        sp, dp = fp["src_port"].astype(np.int64), fp["dst_port"].astype(np.int64)
        p0, p1 = np.where(lower_src, sp, dp), np.where(lower_src, dp, sp)
        pr = fp["proto"]
        # port heuristics: which endpoint serves (responder)
        by_low = np.where(
            (p0 < 1024) & (p1 >= 1024), 1, np.where((p1 < 1024) & (p0 >= 1024), 0, -1)
        )
        eph0, eph1 = p0 >= 32768, p1 >= 32768
        by_eph = np.where(eph0 & ~eph1, 0, np.where(eph1 & ~eph0, 1, -1))
        icmp = (pr == 1) | (pr == 58)
        guess = np.where(
            icmp, first, np.where(by_low >= 0, by_low, np.where(by_eph >= 0, by_eph, first))
        )
        init = np.where(syn >= 0, syn, np.where(synack >= 0, 1 - synack, guess))
        return init.astype(np.int8), syn < 0

    def _facts_table(self, order: np.ndarray) -> pa.Table:
        """The classifier's columns of every flow, in ``order``: flows classified from their
        heads have their FlowFacts, every other flow had no payload."""
        distinct: list[FlowFacts] = [NO_PAYLOAD]
        index = {id(NO_PAYLOAD): 0}
        which = np.zeros(len(order), dtype=np.intp)
        for f, ff in self.facts.items():
            i = index.get(id(ff))
            if i is None:
                i = index[id(ff)] = len(distinct)
                distinct.append(ff)
            which[f] = i
        return facts_table_of(distinct, which[order])

    def _classify(self, rows: np.ndarray, init: np.ndarray) -> None:
        """Classify the flows at ``rows`` (``init``: their initiators' directions)."""
        heads = self.heads
        facts = self.facts
        fp = self.first.columns(rows)
        same = fp["flow_dir"] == init  # the first packet's sender is the initiator
        resp_port = np.where(same, fp["dst_port"], fp["src_port"]).tolist()
        names = _PROTO_TEXT[fp["proto"]].tolist()
        for f, i, name, port in zip(rows.tolist(), init.tolist(), names, resp_port, strict=True):
            pk = heads.pop(f, None)
            if pk is None:
                facts[f] = classify_flow(name, port, ())
            elif i:  # heads are kept by canonical direction: make the initiator's 0
                facts[f] = classify_flow(name, port, [(dd ^ 1, h, pl) for dd, h, pl in pk])
            else:
                facts[f] = classify_flow(name, port, pk)

    def table(self) -> pa.Table:
        """The flow table (one row per flow, sorted by first packet time).

        Ends the builder: the C flow table is freed as soon as its arrays are copied out,
        so that its memory serves the table being built (the peak for millions of flows).
        """
        if self.built:
            raise RuntimeError("FlowBuilder.table() was called already")
        self.built = True
        if self.spill is not None:  # flows were evicted: merge their segments with the rest
            from auditor.flows.spill import merged_table

            table = merged_table(self)
        else:
            table = self._table()
        # what the builder held is garbage now: free it, and give the pages back (the audit's
        # DuckDB allocates with its own allocator and would not reuse them)
        self.first, self.heads, self.facts, self.fragments = _FirstPackets(), {}, {}, {}
        release_free_memory()
        return table

    def _table(self) -> pa.Table:
        c = self._arrays()
        self.tab.clear()
        last_at = self.last_at[: self.first.n]
        init, inferred = self._directions(c)
        # c is this method's own (the builder's arrays handed over): each array is dropped
        # once read, so that for millions of flows the rows built replace it
        for name in ("key", "first_dir", "closed", "got0", "got1", *_KEY_DTYPES):
            c.pop(name, None)
        fp = self.first.columns()
        same = fp["flow_dir"] == init  # the first packet's sender is the initiator
        lower = (init == 0)[:, None]  # the initiator is the lower endpoint
        lo, hi = c.pop("lo"), c.pop("hi")
        # the endpoints by role ((n, 16) each) and their ports: dropped once the thread
        # below has put them in row order
        ends = {
            "src": np.ascontiguousarray(np.where(lower, lo, hi)),
            "dst": np.ascontiguousarray(np.where(lower, hi, lo)),
        }
        del lo, hi
        ends["sport"] = np.where(same, fp["src_port"], fp["dst_port"]).astype(np.int32)
        ends["dport"] = np.where(same, fp["dst_port"], fp["src_port"]).astype(np.int32)

        ports: list[np.ndarray] = []  # source and destination port in row order (identities)

        def identities() -> tuple[
            pa.Array, pa.Array, np.ndarray, pa.Array, pa.Array, pa.Array, pa.Array
        ]:
            """Community IDs, flow ids, the row order and the endpoints as text and as bytes
            (Arrow columns, in row order): C that runs mostly without the GIL, in a thread,
            while this one classifies. No Python object per flow."""
            cchars, fchars, fkeys = identify_buffers(
                fp["proto"].astype(np.uint8),
                ends["src"],
                ends["dst"],
                ends["sport"].astype(np.uint16),
                ends["dport"].astype(np.uint16),
                c["first_ts"],
            )
            # rows by first packet time, the flow id breaking ties (its key sorts alike)
            order = np.lexsort((np.frombuffer(fkeys, np.uint64), c["first_ts"]))
            del fkeys
            src_o, dst_o = ends["src"][order], ends["dst"][order]
            ports.extend((ends["sport"][order], ends["dport"][order]))
            ends.clear()  # the unordered endpoints: read for the last time
            n = len(order)
            cids = np.frombuffer(cchars, np.uint8).reshape(n, 30)[order]
            del cchars
            cid_text = _fixed_strings(cids)
            del cids
            fids = np.frombuffer(fchars, np.uint8).reshape(n, 17)[order]
            del fchars
            return (
                cid_text,
                _fixed_strings(fids),
                order,
                _ip_strings(src_o),
                _ip_strings(dst_o),
                _binary16(src_o),
                _binary16(dst_o),
            )

        worker = _Call(identities)
        # flows not classified yet: those holding heads; a flow without one has no payload
        todo = np.sort(np.fromiter(self.heads.keys(), dtype=np.int64, count=len(self.heads)))
        self._classify(todo, init[todo])
        cid_col, fid_col, order, src_text, dst_text, src_bytes, dst_bytes = worker.result()
        self.first.cols = {}  # fp holds them now: each goes once read

        def pick(name: str, forward: bool) -> np.ndarray:
            a0, a1 = c[f"{name}0"], c[f"{name}1"]
            return np.where(init == (0 if forward else 1), a0, a1)

        def ordered(name: str) -> tuple[np.ndarray, np.ndarray]:
            """The forward and reverse values of a counter in row order; its arrays go."""
            fwd, rev = pick(name, True)[order], pick(name, False)[order]
            del c[f"{name}0"], c[f"{name}1"]
            return fwd, rev

        proto_np = fp["proto"].astype(np.int16)
        flags_f, flags_r = pick("flags", True), pick("flags", False)
        del c["flags0"], c["flags1"]
        pkts_r = pick("pkts", False)
        state = _tcp_state(
            proto_np, c.pop("syn_dir"), c.pop("synack_dir"), flags_f, flags_r, pkts_r
        )
        del pkts_r
        flags_f, flags_r = flags_f[order], flags_r[order]
        pkts, nbytes, pay = ordered("pkts"), ordered("bytes"), ordered("pay")
        first_ts, last_ts = c.pop("first_ts")[order], c.pop("last_ts")[order]
        tun = fp["tunnel"]
        no_tun = tun == 0

        tunneled = np.flatnonzero(~no_tun[order])
        outer_src, outer_dst = self.first.outer(order[tunneled])

        zero = zeros(len(order))  # shared by the columns without a value (null_column)

        def outer(addrs: np.ndarray) -> pa.Array:
            """Outer (tunnel) addresses as text, null for flows not in a tunnel."""
            if not len(tunneled):
                return null_column(len(order), pa.string(), zero)
            text = np.full(len(order), None, dtype=object)
            if len(tunneled):
                text[tunneled] = ip_texts(np.ascontiguousarray(addrs))
            return pa.array(text, pa.string())

        def masked(v: np.ndarray, dtype: pa.DataType) -> pa.Array:
            if not (v >= 0).any():
                return null_column(len(order), dtype, zero)
            return pa.array(v[order], dtype, mask=v[order] < 0)

        tunnel_names = np.array([None, *TUNNEL_NAMES[1:]], dtype=object)
        proto_o = proto_np[order]
        facts = self._facts_table(order)
        cols: dict[str, Any] = {
            "flow_id": fid_col,
            "community_id": cid_col,
            "src_ip": src_text,
            "src_port": ports[0],
            "dst_ip": dst_text,
            "dst_port": ports[1],
            "proto": pa.array(_PROTO_TEXT[proto_o], pa.string()),
            "proto_num": proto_o.astype(np.int16),
            "first_seen": pa.array(first_ts, pa.timestamp("ns", tz="UTC")),
            "last_seen": pa.array(last_ts, pa.timestamp("ns", tz="UTC")),
            "packets_fwd": pkts[0],
            "packets_rev": pkts[1],
            "bytes_fwd": nbytes[0],
            "bytes_rev": nbytes[1],
            "payload_bytes_fwd": pay[0],
            "payload_bytes_rev": pay[1],
            "tcp_flags_fwd": flags_f.astype(np.int16),
            "tcp_flags_rev": flags_r.astype(np.int16),
            "state": pa.array(_STATES[state[order]], pa.string(), mask=proto_o != TCP),
            "direction_inferred": np.where(proto_o == TCP, inferred[order], True),
            **{name: facts.column(name) for name in facts.column_names},
            "vlan": masked(fp.pop("vlan"), pa.int32()),
            "vlan_inner": masked(fp.pop("vlan_inner"), pa.int32()),
            "mpls": masked(fp.pop("mpls"), pa.int32()),
            "tunnel": pa.array(
                tunnel_names[np.minimum(tun, len(TUNNEL_NAMES) - 1)][order], pa.string()
            )
            if len(tunneled)
            else null_column(len(order), pa.string(), zero),
            "tunnel_id": pa.array(
                fp.pop("tunnel_id")[order].astype(np.int64), pa.int64(), mask=no_tun[order]
            )
            if len(tunneled)
            else null_column(len(order), pa.int64(), zero),
            "outer_src": outer(outer_src),
            "outer_dst": outer(outer_dst),
            "capture": fp.pop("capture")[order],
            "first_frame": fp.pop("frame")[order].astype(np.int64),
            "last_capture": (last_at >> _FRAME_BITS)[order].astype(np.int32),
            "last_frame": (last_at & ((1 << _FRAME_BITS) - 1))[order],
            "src_ip_bytes": src_bytes,
            "dst_ip_bytes": dst_bytes,
        }
        table = pa.table(cols)
        if not self.ftp_announced:
            return table
        rows_of_flow = np.empty(len(order), dtype=np.int64)
        rows_of_flow[order] = np.arange(len(order))
        return self._ftp_marked(table, rows_of_flow)

    def _ftp_marked(self, table: pa.Table, rows_of_flow: np.ndarray) -> pa.Table:
        """The table with the FTP data connections announced in its flows marked
        (``rows_of_flow[f]``: the row of flow index f)."""
        return ftp_data.mark(table, rows_of_flow, self.ftp_announced)


class _Call:
    """``fn()`` in a thread: ``result()`` waits for it and returns its value or raises its
    exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


#: TCP states, by the code _tcp_state() gives
_STATES = np.array(["midstream", "closed", "established", "rejected", "attempted"], dtype=object)


def _tcp_state(
    proto: np.ndarray,
    syn_dir: np.ndarray,
    synack_dir: np.ndarray,
    flags_f: np.ndarray,
    flags_r: np.ndarray,
    pkts_r: np.ndarray,
) -> np.ndarray:
    """Each flow's TCP state as an index into _STATES (int8: no string array per flow)."""
    syn = syn_dir >= 0
    synack = synack_dir >= 0
    fin_rst = ((flags_f | flags_r) & (FIN | RST)) != 0
    rst_r = (flags_r & RST) != 0
    code = np.full(len(syn), 4, dtype=np.int8)  # attempted
    code[rst_r] = 3  # rejected
    code[synack] = 2  # established
    code[synack & fin_rst] = 1  # closed
    code[~syn] = 0  # midstream
    return code


def flow_schema() -> pa.Schema:
    """The flow table's schema: that of an empty table (for flows from elsewhere, Zeek logs)."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = FlowBuilder().table().schema
    return _SCHEMA


_SCHEMA: pa.Schema | None = None


#: the flow table's internal columns (raw address bytes): they never leave the process
INTERNAL_COLUMNS = ("src_ip_bytes", "dst_ip_bytes")


def public_flows(table: pa.Table) -> pa.Table:
    """The flow table without its internal columns: what the checks, the roles and every
    writer see."""
    return table.drop_columns([c for c in INTERNAL_COLUMNS if c in table.column_names])
