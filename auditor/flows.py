"""Packet batches -> the flow table: one row per connection, both directions.

The builder is fed Arrow packet batches (``auditor.capture.schema.PACKET_SCHEMA``) and keeps
per-flow accumulators in growable numpy arrays, so the work per batch is a handful of
vectorised passes (sort by flow key, reduce per segment, scatter-add into the flow arrays);
Python loops run only over *new* flows and over the few payload packets kept for the
classifier. Memory grows with the number of flows, not of packets.

Rules, documented in the README ("Flows"):

* A flow is the packets sharing (protocol, the two address/port endpoints, outer VLAN).
  ICMP flows are per host pair. A TCP pure SYN (SYN without ACK) seen after a FIN or RST in
  the same 5-tuple starts a new flow: a port reused after a close is a new connection.
* Initiator (``src_*``) is the sender of the first pure SYN. Without one, the direction is
  inferred (``direction_inferred``): the receiver of a SYN-ACK's opposite side; else the
  endpoint on a port below 1024 when only one is; else the endpoint on an ephemeral port
  (>= 32768) is the initiator when only one is; else the sender of the first packet.
* TCP state: ``attempted`` (SYN, no answer), ``rejected`` (SYN answered by RST, no SYN-ACK),
  ``established`` (SYN and SYN-ACK, still open at capture end), ``closed`` (established and
  then FIN or RST), ``midstream`` (no SYN seen). Other protocols have no state.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.capture.schema import TUNNEL_NAMES
from auditor.classify import FlowFacts, classify_flow, facts_table
from auditor.community_id import community_id

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TCP, UDP = 6, 17
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp", 47: "gre", 50: "esp"}
#: payload-carrying packets per direction handed to the classifier
CLASSIFY_PACKETS = 4
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


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


class _Grow:
    """A set of same-length numpy columns that double in capacity as flows are added."""

    def __init__(self, spec: dict[str, tuple[Any, Any]], capacity: int = 4096) -> None:
        self.spec = spec
        self.n = 0
        self.cols: dict[str, np.ndarray] = {
            name: np.full(capacity, fill, dtype=dtype) for name, (dtype, fill) in spec.items()
        }

    def add(self, count: int) -> np.ndarray:
        """Reserve ``count`` new rows; returns their indices."""
        need = self.n + count
        cap = len(next(iter(self.cols.values())))
        if need > cap:
            new_cap = max(need, cap * 2)
            for name, (dtype, fill) in self.spec.items():
                col = np.full(new_cap, fill, dtype=dtype)
                col[: self.n] = self.cols[name][: self.n]
                self.cols[name] = col
        idx = np.arange(self.n, need)
        self.n = need
        return idx

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]


_I64MAX = np.iinfo(np.int64).max
_FLOW_SPEC: dict[str, tuple[Any, Any]] = {
    "key": (np.uint64, 0),
    "first_ts": (np.int64, _I64MAX),
    "last_ts": (np.int64, -1),
    "pkts0": (np.int64, 0),
    "pkts1": (np.int64, 0),
    "bytes0": (np.int64, 0),
    "bytes1": (np.int64, 0),
    "pay0": (np.int64, 0),
    "pay1": (np.int64, 0),
    "flags0": (np.uint8, 0),  # OR of TCP flags sent by the canonical-lower endpoint
    "flags1": (np.uint8, 0),
    "syn_dir": (np.int8, -1),  # canonical direction of the first pure SYN
    "synack_dir": (np.int8, -1),
    "first_dir": (np.int8, -1),
    "closed": (np.bool_, False),  # FIN or RST seen (for port reuse)
    "got0": (np.int8, 0),  # payload packets kept for the classifier, per direction
    "got1": (np.int8, 0),
    "capture": (np.int32, -1),
}


@dataclass
class FlowBuilder:
    """Accumulates packet batches into flows; ``table()`` returns the flow table."""

    flows: _Grow = field(default_factory=lambda: _Grow(_FLOW_SPEC))
    current: dict[int, int] = field(default_factory=dict)  # flow_key -> flow index (newest)
    endpoints: list[tuple[bytes, bytes, int, int, int, int]] = field(default_factory=list)
    encaps: list[tuple[Any, ...]] = field(default_factory=list)
    heads: dict[int, list[tuple[int, bytes, int]]] = field(default_factory=dict)
    facts: dict[int, FlowFacts] = field(default_factory=dict)
    fragments: dict[tuple[bytes, bytes, int, int], tuple[int, int]] = field(default_factory=dict)
    orphan_fragments: int = 0

    def add_batch(self, batch: pa.RecordBatch, capture: int = 0) -> None:
        """Fold one packet batch into the flows (rows with a non-ok status are skipped)."""
        status = values(batch.column("status"))
        valid = status == 0
        if not valid.any():
            return
        key = values(batch.column("flow_key"))
        d = values(batch.column("flow_dir"))
        frag = values(batch.column("frag"))
        later = np.flatnonzero((frag != 0) & valid)
        if len(later):
            key, d = key.copy(), d.copy()
            self._resolve_fragments(batch, later, frag, key, d, valid)
        self._add(batch, np.flatnonzero(valid), key, d.astype(np.int8), capture)

    # -- fragments -------------------------------------------------------------------------

    def _resolve_fragments(self, batch: pa.RecordBatch, rows: np.ndarray, frag: np.ndarray,
                           key: np.ndarray, d: np.ndarray, valid: np.ndarray) -> None:
        """Give later fragments the flow of their first fragment; orphans are dropped (counted)."""
        take = pa.array(rows)
        src = batch.column("src_ip").take(take).to_pylist()
        dst = batch.column("dst_ip").take(take).to_pylist()
        proto = batch.column("proto").take(take).to_pylist()
        ip_id = batch.column("ip_id").take(take).to_pylist()
        for j, i in enumerate(rows.tolist()):
            fkey = (src[j], dst[j], proto[j], ip_id[j])
            if frag[i] == 1:
                self.fragments[fkey] = (int(key[i]), int(d[i]))
                if len(self.fragments) > 65536:  # bounded: forget the oldest
                    self.fragments.pop(next(iter(self.fragments)))
            else:
                found = self.fragments.get(fkey)
                if found is None:
                    valid[i] = False
                    self.orphan_fragments += 1
                else:
                    key[i], d[i] = found

    # -- the per-batch pass ----------------------------------------------------------------

    def _add(self, batch: pa.RecordBatch, rows: np.ndarray, all_keys: np.ndarray,
             all_dirs: np.ndarray, capture: int) -> None:
        col = batch.column
        order = rows[np.argsort(all_keys[rows], kind="stable")]
        key = all_keys[order]
        n = len(key)
        d = all_dirs[order]
        ts = values(col("ts"))[order]
        wire = values(col("wire_len"))[order].astype(np.int64)
        pay = values(col("payload_len"))[order].astype(np.int64)
        proto = values(col("proto"))[order]
        flags = values(col("tcp_flags"))[order]
        tcp = proto == TCP
        pure_syn = tcp & ((flags & (SYN | ACK)) == SYN)
        synack = tcp & ((flags & (SYN | ACK)) == (SYN | ACK))
        finrst = tcp & ((flags & (FIN | RST)) != 0)

        # Segments of equal key; rows are in capture order inside each segment.
        seg_start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        seg_id = np.cumsum(np.r_[True, key[1:] != key[:-1]]) - 1
        seg_keys = key[seg_start]

        # Existing flow per segment (-1 for keys never seen).
        get = self.current.get
        seg_flow = np.fromiter((get(int(k), -1) for k in seg_keys), np.int64, len(seg_keys))
        fl = self.flows

        # Port reuse: a pure SYN starts a new flow when a FIN/RST came since the previous
        # pure SYN of the key (or, before the first SYN in this batch, when the flow closed).
        starts = np.zeros(n, dtype=bool)
        syn_rows = np.flatnonzero(pure_syn)
        if len(syn_rows):
            fr_cum = np.cumsum(finrst)  # inclusive
            seg_of_syn = seg_id[syn_rows]
            prev_same_seg = np.r_[False, seg_of_syn[1:] == seg_of_syn[:-1]]
            prev_syn = np.r_[0, syn_rows[:-1]]
            before = np.where(syn_rows > 0, fr_cum[syn_rows - 1], 0)
            since_prev = before - np.where(prev_same_seg, fr_cum[prev_syn], 0)
            seg_begin = seg_start[seg_of_syn]
            since_seg = before - np.where(seg_begin > 0, fr_cum[seg_begin - 1], 0)
            sf = seg_flow[seg_of_syn]
            carried_closed = np.where(sf >= 0, fl["closed"][np.maximum(sf, 0)], False)
            new_gen = np.where(prev_same_seg, since_prev > 0, (since_seg > 0) | carried_closed)
            # the very first packet of a never-seen key is the flow's start anyway
            first_of_new_key = (syn_rows == seg_begin) & (sf < 0)
            starts[syn_rows[new_gen & ~first_of_new_key]] = True
        # gen: number of starts so far within the segment (0 = the segment's carried flow)
        cs = np.cumsum(starts)
        gen = cs - (cs[seg_start] - starts[seg_start])[seg_id]
        need_first = seg_flow < 0
        # One flow per (segment, gen): its first row.
        unit_first = np.flatnonzero(np.r_[True, (seg_id[1:] != seg_id[:-1]) | starts[1:]])
        unit_id = np.cumsum(np.r_[True, (seg_id[1:] != seg_id[:-1]) | starts[1:]]) - 1
        unit_seg = seg_id[unit_first]
        unit_is_carry = (gen[unit_first] == 0) & ~need_first[unit_seg]
        unit_flow = np.where(unit_is_carry, seg_flow[unit_seg], -1)
        new_units = np.flatnonzero(unit_flow < 0)
        if len(new_units):
            new_idx = fl.add(len(new_units))
            unit_flow[new_units] = new_idx
            rows = order[unit_first[new_units]]
            self._new_flows(batch, rows, new_idx, capture)
            fl["key"][new_idx] = key[unit_first[new_units]]
            fl["first_dir"][new_idx] = d[unit_first[new_units]]
        # the newest flow of each key becomes current
        last_unit_of_seg = np.r_[unit_id[seg_start[1:] - 1], unit_id[-1]]
        for k, f in zip(seg_keys.tolist(), unit_flow[last_unit_of_seg].tolist(), strict=True):
            self.current[k] = f
        fidx = unit_flow[unit_id]

        # Scatter-add counters per (flow, direction).
        nflows = fl.n
        for dv in (0, 1):
            m = d == dv
            fi = fidx[m]
            fl[f"pkts{dv}"][:nflows] += np.bincount(fi, minlength=nflows)
            fl[f"bytes{dv}"][:nflows] += np.bincount(fi, weights=wire[m], minlength=nflows).astype(
                np.int64
            )
            fl[f"pay{dv}"][:nflows] += np.bincount(fi, weights=pay[m], minlength=nflows).astype(
                np.int64
            )
            if m.any():
                np.bitwise_or.at(fl[f"flags{dv}"], fi, flags[m])
        np.minimum.at(fl["first_ts"], fidx, ts)
        np.maximum.at(fl["last_ts"], fidx, ts)
        if tcp.any():
            for mask, name in ((pure_syn, "syn_dir"), (synack, "synack_dir")):
                rows = np.flatnonzero(mask)
                if len(rows):
                    fi = fidx[rows]
                    unset = fl[name][fi] < 0
                    # first occurrence per flow among rows (rows are ordered within a flow)
                    _, first = np.unique(fi, return_index=True)
                    sel = first[unset[first]]
                    fl[name][fi[sel]] = d[rows[sel]]
            fr_rows = np.flatnonzero(finrst)
            if len(fr_rows):
                fl["closed"][fidx[fr_rows]] = True
            syn_flows = fidx[np.flatnonzero(starts)]
            fl["closed"][syn_flows] = False  # a restarted key is open again
            # a flow whose FIN/RST came before its own SYN retransmit stays closed; fine
        self._keep_heads(batch, order, fidx, d, pay)

    def _new_flows(
        self, batch: pa.RecordBatch, rows: np.ndarray, idx: np.ndarray, capture: int
    ) -> None:
        """Record endpoints and encapsulation of new flows from their first packet."""
        take = pa.array(rows)
        sub = batch.take(take)
        src = sub.column("src_ip").to_pylist()
        dst = sub.column("dst_ip").to_pylist()
        sp = sub.column("src_port").to_pylist()
        dp = sub.column("dst_port").to_pylist()
        pr = sub.column("proto").to_pylist()
        fd = sub.column("flow_dir").to_pylist()
        vlan = sub.column("vlan").to_pylist()
        vlan_in = sub.column("vlan_inner").to_pylist()
        mpls = sub.column("mpls").to_pylist()
        tun = sub.column("tunnel").to_pylist()
        tun_id = sub.column("tunnel_id").to_pylist()
        osrc = sub.column("outer_src").to_pylist()
        odst = sub.column("outer_dst").to_pylist()
        for j in range(len(rows)):
            # stored in canonical order: endpoint 0 is the lower one
            if fd[j] == 0:
                self.endpoints.append((src[j], dst[j], sp[j], dp[j], pr[j], 0))
            else:
                self.endpoints.append((dst[j], src[j], dp[j], sp[j], pr[j], 0))
            self.encaps.append(
                (vlan[j], vlan_in[j], mpls[j], tun[j], tun_id[j], osrc[j], odst[j])
            )
        self.flows["capture"][idx] = capture

    def _keep_heads(
        self,
        batch: pa.RecordBatch,
        order: np.ndarray,
        fidx: np.ndarray,
        d: np.ndarray,
        pay: np.ndarray,
    ) -> None:
        """Keep the first payload packets of each direction for the classifier."""
        fl = self.flows
        has = np.flatnonzero(pay > 0)
        if not len(has):
            return
        fi = fidx[has]
        dv = d[has]
        got = np.where(dv == 0, fl["got0"][fi], fl["got1"][fi]).astype(np.int64)
        # rank of each payload packet within its (flow, direction) in this batch
        grp = fi * 2 + dv
        o = np.argsort(grp, kind="stable")
        g = grp[o]
        first = np.r_[True, g[1:] != g[:-1]]
        pos = np.arange(len(g))
        rank_sorted = pos - np.maximum.accumulate(np.where(first, pos, 0))
        rank = np.empty_like(rank_sorted)
        rank[o] = rank_sorted
        sel = np.flatnonzero((got + rank) < CLASSIFY_PACKETS)
        if not len(sel):
            return
        rows_sel = has[sel]
        heads = batch.column("payload").take(pa.array(order[rows_sel])).to_pylist()
        fsel = fi[sel].tolist()
        dsel = dv[sel].tolist()
        psel = pay[rows_sel].tolist()
        store = self.heads
        for f, dd, h, pl in zip(fsel, dsel, heads, psel, strict=True):
            lst = store.get(f)
            if lst is None:
                store[f] = [(dd, h, pl)]
            else:
                lst.append((dd, h, pl))
        np.add.at(fl["got0"], fi[sel][dv[sel] == 0], 1)
        np.add.at(fl["got1"], fi[sel][dv[sel] == 1], 1)

    # -- the flow table --------------------------------------------------------------------

    def _directions(self) -> tuple[np.ndarray, np.ndarray]:
        """Canonical direction of each flow's initiator, and whether it was inferred."""
        fl = self.flows
        n = fl.n
        syn = fl["syn_dir"][:n]
        synack = fl["synack_dir"][:n]
        first = fl["first_dir"][:n]
        p0 = np.fromiter((e[2] for e in self.endpoints), np.int64, n)
        p1 = np.fromiter((e[3] for e in self.endpoints), np.int64, n)
        pr = np.fromiter((e[4] for e in self.endpoints), np.int64, n)
        # port heuristics: which endpoint serves (responder)
        by_low = np.where((p0 < 1024) & (p1 >= 1024), 1, np.where((p1 < 1024) & (p0 >= 1024), 0, -1))
        eph0, eph1 = p0 >= 32768, p1 >= 32768
        by_eph = np.where(eph0 & ~eph1, 0, np.where(eph1 & ~eph0, 1, -1))
        icmp = (pr == 1) | (pr == 58)
        guess = np.where(icmp, first, np.where(by_low >= 0, by_low, np.where(by_eph >= 0, by_eph, first)))
        init = np.where(syn >= 0, syn, np.where(synack >= 0, 1 - synack, guess))
        return init.astype(np.int8), syn < 0

    def _classify_all(self, init: np.ndarray) -> None:
        """Classify every flow not yet classified, directions relative to the initiator."""
        heads = self.heads
        for f in range(self.flows.n):
            if f in self.facts:
                continue
            i = int(init[f])
            e = self.endpoints[f]
            pk = heads.pop(f, ())
            pkts = [(dd ^ i, h, pl) for dd, h, pl in pk]
            self.facts[f] = classify_flow(proto_name(e[4]), e[3] if i == 0 else e[2], pkts)

    def table(self) -> pa.Table:
        """The flow table (one row per flow, sorted by first packet time)."""
        fl = self.flows
        n = fl.n
        init, inferred = self._directions()
        self._classify_all(init)
        c = {k: v[:n] for k, v in fl.cols.items()}
        swap = (init == 1).tolist()
        eps = self.endpoints
        src16 = [e[1] if sw else e[0] for e, sw in zip(eps, swap, strict=True)]
        dst16 = [e[0] if sw else e[1] for e, sw in zip(eps, swap, strict=True)]
        sport = [e[3] if sw else e[2] for e, sw in zip(eps, swap, strict=True)]
        dport = [e[2] if sw else e[3] for e, sw in zip(eps, swap, strict=True)]
        proto = [e[4] for e in eps]
        text: dict[bytes, str] = {}

        def t(ip: bytes | None) -> str | None:
            if ip is None:
                return None
            v = text.get(ip)
            if v is None:
                v = text[ip] = ip_text(ip)
            return v

        cids = [community_id(p, a, b, x, y)
                for p, a, b, x, y in zip(proto, src16, dst16, sport, dport, strict=True)]
        first_ts = c["first_ts"].tolist()
        enc = list(zip(*self.encaps, strict=True)) if self.encaps else [()] * 7
        vlan, vlan_in, mpls, tun, tun_id, osrc, odst = (list(x) for x in enc)
        fwd = np.asarray(swap, dtype=np.int8)

        def pick(name: str, forward: bool) -> np.ndarray:
            a0, a1 = c[f"{name}0"], c[f"{name}1"]
            return np.where(fwd == (0 if forward else 1), a0, a1)

        proto_np = np.asarray(proto, dtype=np.int64)
        flags_f, flags_r = pick("flags", True), pick("flags", False)
        pkts_r = pick("pkts", False)
        state = _tcp_state(proto_np, c["syn_dir"], c["synack_dir"], flags_f, flags_r, pkts_r)
        facts = facts_table([self.facts[f] for f in range(n)])
        cols: dict[str, Any] = {
            "flow_id": [_flow_id(cid, ts) for cid, ts in zip(cids, first_ts, strict=True)],
            "community_id": cids,
            "src_ip": [t(x) for x in src16],
            "src_port": pa.array(sport, pa.int32()),
            "dst_ip": [t(x) for x in dst16],
            "dst_port": pa.array(dport, pa.int32()),
            "proto": [proto_name(p) for p in proto],
            "proto_num": pa.array(proto, pa.int16()),
            "first_seen": pa.array(c["first_ts"], pa.timestamp("ns", tz="UTC")),
            "last_seen": pa.array(c["last_ts"], pa.timestamp("ns", tz="UTC")),
            "packets_fwd": pick("pkts", True),
            "packets_rev": pkts_r,
            "bytes_fwd": pick("bytes", True),
            "bytes_rev": pick("bytes", False),
            "payload_bytes_fwd": pick("pay", True),
            "payload_bytes_rev": pick("pay", False),
            "tcp_flags_fwd": flags_f.astype(np.int16),
            "tcp_flags_rev": flags_r.astype(np.int16),
            "state": state,
            "direction_inferred": np.where(proto_np == TCP, inferred, True),
        }
        for name in facts.column_names:
            cols[name] = facts.column(name)
        cols.update(
            {
                "vlan": pa.array(vlan, pa.int32()),
                "vlan_inner": pa.array(vlan_in, pa.int32()),
                "mpls": pa.array(mpls, pa.int32()),
                "tunnel": pa.array([TUNNEL_NAMES[x] if x else None for x in tun], pa.string()),
                "tunnel_id": pa.array([i if x else None for i, x in zip(tun_id, tun, strict=True)],
                                      pa.int64()),
                "outer_src": pa.array([t(x) for x in osrc], pa.string()),
                "outer_dst": pa.array([t(x) for x in odst], pa.string()),
                "capture": c["capture"],
                "src_ip_bytes": pa.array(src16, pa.binary(16)),
                "dst_ip_bytes": pa.array(dst16, pa.binary(16)),
            }
        )
        tbl = pa.table(cols)
        return tbl.sort_by([("first_seen", "ascending"), ("flow_id", "ascending")])


def _flow_id(cid: str, first_ts: int) -> str:
    """Stable across runs: the Community ID and the first packet's time."""
    return "F" + hashlib.blake2b(f"{cid}|{first_ts}".encode(), digest_size=8).hexdigest()


def _tcp_state(
    proto: np.ndarray,
    syn_dir: np.ndarray,
    synack_dir: np.ndarray,
    flags_f: np.ndarray,
    flags_r: np.ndarray,
    pkts_r: np.ndarray,
) -> pa.Array:
    syn = syn_dir >= 0
    synack = synack_dir >= 0
    fin_rst = ((flags_f | flags_r) & (FIN | RST)) != 0
    rst_r = (flags_r & RST) != 0
    state = np.where(
        ~syn,
        "midstream",
        np.where(
            synack,
            np.where(fin_rst, "closed", "established"),
            np.where(rst_r, "rejected", np.where(pkts_r == 0, "attempted", "attempted")),
        ),
    )
    return pa.array(np.where(proto == TCP, state, None), pa.string())


def build_flows(batches: Iterable[tuple[int, pa.RecordBatch]]) -> pa.Table:
    """Build the flow table from (capture index, packet batch) pairs."""
    b = FlowBuilder()
    for cap, batch in batches:
        b.add_batch(batch, cap)
    return b.table()
