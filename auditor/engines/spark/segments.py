"""One Spark task's work: a split of a capture -> per-flow *segments* and the split's info.

The flow table's per-packet rule is sequential per 5-tuple: a TCP pure SYN after a FIN or
RST starts a new flow unless it repeats the first SYN's sequence number. A task cannot
know what came before its split, so it cuts each 5-tuple's packets at *every* pure SYN:
a segment is a run of one flow key's packets that starts at a pure SYN (or at the split's
first packet of that key) and ends before the next. The merge
(:mod:`auditor.engines.spark.merge`) walks a key's segments in capture order and applies
the rule at each segment's leading SYN, with the state of the flow before it, exactly as
the local loop does packet by packet.

The task runs the local builder (:class:`auditor.flows.FlowBuilder`, its C loop and head
collector) on the packets with a per-segment key, so counters, flags, directions, the first
packet's columns and the payload heads are the local engine's own. Nothing here imports
pyspark: the tests run it in-process too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.capture import _fast
from auditor.capture.reader import CaptureInfo, PacketReader, _Stream, linktype_name
from auditor.capture.schema import STATUS_NAMES
from auditor.engines.spark.splits import Split
from auditor.errors import CaptureError
from auditor.flows import _FRAME_BITS as FRAME_BITS
from auditor.flows import ACK, SYN, TCP, FlowBuilder, fixed16, values
from auditor.flows.spill import pack_heads

#: one row per segment; uint64 keys travel as int64 (Spark has no unsigned types)
SEGMENT_SCHEMA = pa.schema(
    [
        ("key", pa.int64()),
        ("capture", pa.int32()),
        ("part", pa.int32()),
        ("row", pa.int64()),  # the segment's first packet, counted from the split's start
        ("lead_syn", pa.bool_()),
        ("syn_seq", pa.int64()),
        ("first_ts", pa.int64()),
        ("last_ts", pa.int64()),
        ("pkts0", pa.int64()),
        ("pkts1", pa.int64()),
        ("bytes0", pa.int64()),
        ("bytes1", pa.int64()),
        ("pay0", pa.int64()),
        ("pay1", pa.int64()),
        ("flags0", pa.int32()),
        ("flags1", pa.int32()),
        ("syn_dir", pa.int32()),
        ("synack_dir", pa.int32()),
        ("first_dir", pa.int32()),
        ("closed", pa.bool_()),
        ("src_port", pa.int32()),
        ("dst_port", pa.int32()),
        ("proto", pa.int32()),
        ("flow_dir", pa.int32()),
        ("vlan", pa.int32()),
        ("vlan_inner", pa.int32()),
        ("mpls", pa.int32()),
        ("tunnel", pa.int32()),
        ("tunnel_id", pa.int64()),
        ("frame", pa.int64()),  # the first packet's, counted from the split's start
        ("last_at", pa.int64()),  # the last packet's capture << 40 | frame (split's count)
        ("lo", pa.binary()),  # the endpoints, canonical order (the flow table's lo/hi)
        ("hi", pa.binary()),
        ("outer_src", pa.binary()),
        ("outer_dst", pa.binary()),
        ("heads", pa.binary()),  # pack_heads()
        ("ftp", pa.string()),  # FTP data endpoints announced in it: JSON [[ip, port, sender]]
    ]
)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _segment_key(key: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """A distinct 64-bit key per (flow key, segment number); segment 0 keeps the key."""
    with np.errstate(over="ignore"):
        z = key ^ (seg.astype(np.uint64) * _GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return np.where(seg == 0, key, z)


class _Segmenter(FlowBuilder):
    """The local builder over per-segment keys; remembers each segment's flow key, its
    first packet's place in the split and, for a segment led by a pure SYN, its sequence
    number."""

    def __init__(self) -> None:
        super().__init__()
        self.flush_at = 1 << 62  # classify nothing here: the merge does, once a flow is whole
        self.syns: dict[int, int] = {}  # flow key -> pure SYNs seen so far in this split
        self.offset = 0
        self.orig: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.lead: list[np.ndarray] = []
        self.seq: list[np.ndarray] = []
        self._batch_orig = np.empty(0, np.uint64)
        self._batch_seg = np.empty(0, np.int64)
        #: first fragments of this split: (src, dst, proto, id) -> (flow key, direction,
        #: segment key, source port, destination port)
        self.firsts: dict[tuple[bytes, bytes, int, int], tuple[int, int, int, int, int]] = {}
        #: later fragments whose first is not in this split: (fragment key, row, ts, frame
        #: length, payload length, head, frame)
        self.pending: list[
            tuple[tuple[bytes, bytes, int, int], int, int, int, int, bytes, int]
        ] = []

    def add(self, batch: pa.RecordBatch, capture: int) -> None:
        key = values(batch.column("flow_key"))
        status = values(batch.column("status"))
        flags = values(batch.column("tcp_flags"))
        proto = values(batch.column("proto"))
        pure = (status == 0) & (proto == TCP) & ((flags & (SYN | ACK)) == SYN)
        seg = np.zeros(len(key), np.int64)
        with_syn = np.flatnonzero(pure)
        if len(with_syn) or self.syns:
            # rows of keys that have had a pure SYN in this split: their segment number is
            # the count of pure SYNs of their key up to and including the row
            known = np.fromiter(self.syns.keys(), np.uint64, len(self.syns))
            keys = np.union1d(known, key[with_syn])
            rows = np.flatnonzero(np.isin(key, keys) & (status == 0))
            kk = key[rows]
            order = np.argsort(kk, kind="stable")
            ks = kk[order]
            ss = pure[rows][order].astype(np.int64)
            cs = np.cumsum(ss)
            starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
            before = cs[starts] - ss[starts]  # count at each group's start
            group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(ks)]))
            base = np.array([self.syns.get(int(k), 0) for k in ks[starts].tolist()], np.int64)
            count = cs - before[group] + base[group]
            seg[rows[order]] = count
            ends = np.r_[starts[1:], len(ks)] - 1
            for k, c in zip(ks[starts].tolist(), count[ends].tolist(), strict=True):
                if c:
                    self.syns[int(k)] = int(c)
        self._batch_orig = key
        self._batch_seg = seg
        new_key = _segment_key(key, seg)
        batch = batch.set_column(
            batch.schema.get_field_index("flow_key"), "flow_key", pa.array(new_key, pa.uint64())
        )
        self.add_batch(batch, capture)
        self.offset += batch.num_rows

    def _new_flows(self, batch: pa.RecordBatch, rows: np.ndarray, capture: int) -> None:
        super()._new_flows(batch, rows, capture)
        self.orig.append(self._batch_orig[rows])
        self.rows.append(rows.astype(np.int64) + self.offset)
        self.lead.append(self._batch_seg[rows] > 0)
        self.seq.append(values(batch.column("tcp_seq"))[rows].astype(np.int64))

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
        """The local rule (a later fragment joins its first fragment's flow), except that a
        later fragment whose first fragment is not in this split is kept aside (``pending``)
        for the driver, which looks for the first fragment in the splits before."""
        src = fixed16(batch.column("src_ip"))[rows]
        dst = fixed16(batch.column("dst_ip"))[rows]
        proto = values(batch.column("proto"))[rows].tolist()
        ip_id = values(batch.column("ip_id"))[rows].tolist()
        ts = values(batch.column("ts"))
        wire = values(batch.column("frame_len"))
        frames = values(batch.column("frame"))
        pay = values(batch.column("payload_len"))
        payload = batch.column("payload")
        for j, i in enumerate(rows.tolist()):
            fkey = (src[j].tobytes(), dst[j].tobytes(), proto[j], ip_id[j])
            if frag[i] == 1:
                self.firsts[fkey] = (
                    int(self._batch_orig[i]),
                    int(d[i]),
                    int(key[i]),
                    int(sport[i]),
                    int(dport[i]),
                )
                if len(self.firsts) > 65536:  # bounded: forget the oldest
                    self.firsts.pop(next(iter(self.firsts)))
            else:
                found = self.firsts.get(fkey)
                status[i] = STATUS_NAMES.index("ip_fragment")
                if found is None:
                    head = payload[i].as_py() if int(pay[i]) else b""
                    self.pending.append(
                        (
                            fkey,
                            self.offset + i,
                            int(ts[i]),
                            int(wire[i]),
                            int(pay[i]),
                            head,
                            int(frames[i]),
                        )
                    )
                else:
                    status[i] = 0
                    key[i], d[i], sport[i], dport[i] = found[2], found[1], found[3], found[4]

    def segments(self, capture: int, part: int) -> pa.RecordBatch:
        c = self._arrays()
        fp = self.first.columns()
        n = self.n

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.empty(0, dtype)

        lead = cat(self.lead, bool)
        heads = [pack_heads(self.heads.get(f, [])) for f in range(n)]
        announced: dict[int, list[list[Any]]] = {}
        for a in self.ftp_announced:
            announced.setdefault(a.flow, []).append([a.ip, a.port, a.sender])
        ftp = [json.dumps(announced[f]) if f in announced else None for f in range(n)]
        outer_src = np.zeros((n, 16), np.uint8)
        outer_dst = np.zeros((n, 16), np.uint8)
        tunneled = np.flatnonzero(fp["tunnel"])
        if len(tunneled):
            outer_src[tunneled], outer_dst[tunneled] = self.first.outer(tunneled)
        cols: dict[str, Any] = {
            "key": cat(self.orig, np.uint64).view(np.int64),
            "capture": np.full(n, capture, np.int32),
            "part": np.full(n, part, np.int32),
            "row": cat(self.rows, np.int64),
            "lead_syn": lead,
            "syn_seq": np.where(lead, cat(self.seq, np.int64), 0),
            **{k: c[k].astype(np.int64) for k in ("first_ts", "last_ts")},
            **{k: c[k].astype(np.int64) for k in ("pkts0", "pkts1", "bytes0", "bytes1")},
            **{k: c[k].astype(np.int64) for k in ("pay0", "pay1")},
            **{k: c[k].astype(np.int32) for k in ("flags0", "flags1")},
            **{k: c[k].astype(np.int32) for k in ("syn_dir", "synack_dir", "first_dir")},
            "closed": c["closed"].astype(bool),
            **{
                k: fp[k].astype(np.int32)
                for k in ("src_port", "dst_port", "proto", "flow_dir", "vlan", "vlan_inner")
            },
            "mpls": fp["mpls"].astype(np.int32),
            "tunnel": fp["tunnel"].astype(np.int32),
            "tunnel_id": fp["tunnel_id"].astype(np.int64),
            "frame": fp["frame"].astype(np.int64),
            "last_at": self.last_at[:n].astype(np.int64),
            **{
                k: pa.array([r.tobytes() for r in v], pa.binary())
                for k, v in (("lo", c["lo"]), ("hi", c["hi"]))
            },
            **{
                k: pa.array([r.tobytes() for r in v], pa.binary())
                for k, v in (("outer_src", outer_src), ("outer_dst", outer_dst))
            },
            "heads": pa.array(heads, pa.binary()),
            "ftp": pa.array(ftp, pa.string()),
        }
        return pa.RecordBatch.from_pydict(cols, schema=SEGMENT_SCHEMA)


class _RangeStream(_Stream):
    """The reader's pass over bytes ``start``..``end`` of a capture (record or block
    boundaries); for pcapng, the section header and interface blocks of ``preamble`` are
    read first (their warnings were said by the split before)."""

    byte_range: tuple[int | None, int | None] = (None, None)
    preamble: tuple[int, ...] = ()
    section_index: int = 0

    def _seek(self) -> None:
        start, end = self.byte_range
        if self.mm is None:
            raise OSError(f"{self.path}: cannot be memory-mapped to read from byte {start}")
        if start is not None:
            self.pos = start
        if end is not None:
            self.end = end

    def start_pcap(self) -> None:
        super().start_pcap()
        self._seek()

    def open(self) -> None:
        super().open()
        if self.header.kind != _fast.K_PCAPNG:
            return  # pcap: start_pcap() seeks
        if self.preamble:
            said = list(self.info.warnings)
            self.info.sections = self.section_index  # the SHB read makes it one more
            for at in self.preamble:
                self.pos = at
                self.block()
            self.info.warnings = said
            self.meta_blocks = 0
        self._seek()


def _read_split(split: Split) -> tuple[PacketReader, Iterator[pa.RecordBatch]]:
    reader = PacketReader(split.path)
    if split.start is None and split.end is None:
        return reader, iter(reader)
    info = reader._new_info()
    reader.info = info
    stream = _RangeStream(reader.source, reader._header, info, reader.batch_size)
    stream.byte_range = (split.start, split.end)
    stream.preamble = split.preamble
    stream.section_index = split.section

    def batches() -> Iterator[pa.RecordBatch]:
        stream.open()
        try:
            yield from stream.batches()
        finally:
            stream.close()
            stream.update_info()

    return reader, batches()


def _fk(k: tuple[bytes, bytes, int, int]) -> list[Any]:
    return [k[0].hex(), k[1].hex(), k[2], k[3]]


def decode_split(split: Split) -> tuple[pa.RecordBatch, dict[str, Any]]:
    """Read one split with the local reader: its segments and its CaptureInfo as a dict
    (``mtime`` added). A CaptureError is not raised but returned as ``error`` (path,
    message, place), with the segments of what was read before it, as the local engine
    keeps the flows read before an error."""
    if split.seed is not None:
        _fast.set_flow_seed(split.seed)
    seg = _Segmenter()
    info: dict[str, Any] = {}
    try:
        reader, batches = _read_split(split)
        for batch in batches:
            seg.add(batch, split.capture)
        info = asdict(reader.info)
        info["mtime"] = reader.source.mtime
        info["fragments"] = [[*_fk(k), v[0], v[1]] for k, v in seg.firsts.items()]
        info["pending"] = [[*_fk(p[0]), *p[1:5], p[5].hex(), p[6]] for p in seg.pending]
    except CaptureError as exc:
        info["error"] = [exc.path, exc.message, exc.where]
    return seg.segments(split.capture, split.part), info


def merge_infos(parts: list[dict[str, Any]]) -> CaptureInfo:
    """The CaptureInfo of a whole file from those of its splits (in order)."""
    from auditor.capture.reader import MAX_WARNINGS, InterfaceInfo

    first = dict(parts[0])
    for extra in ("mtime", "fragments", "pending"):
        first.pop(extra, None)
    ifaces = [InterfaceInfo(**i) for i in first.pop("interfaces")]
    info = CaptureInfo(**first)
    info.interfaces = ifaces
    info.unsupported_linktypes = {int(k): v for k, v in info.unsupported_linktypes.items()}
    for p in parts[1:]:
        info.packets += p["packets"]
        info.bytes += p["bytes"]
        info.tunnel_reassembled += p.get("tunnel_reassembled", 0)
        info.tunnel_fragments_lost += p.get("tunnel_fragments_lost", 0)
        for name in ("first_seen", "last_seen"):
            v = p[name]
            if v is not None:
                old = getattr(info, name)
                pick = min if name == "first_seen" else max
                setattr(info, name, v if old is None else pick(old, v))
        for k, v in p["decode_errors"].items():
            info.decode_errors[k] = info.decode_errors.get(k, 0) + v
        for k, v in p["unsupported_linktypes"].items():
            info.unsupported_linktypes[int(k)] = info.unsupported_linktypes.get(int(k), 0) + v
        for k, v in p["skipped_blocks"].items():
            info.skipped_blocks[k] = info.skipped_blocks.get(k, 0) + v
        known = {(i.section, i.index): i for i in info.interfaces}
        for theirs in p["interfaces"]:
            mine = known.get((theirs["section"], theirs["index"]))
            if mine is None:  # an interface block after the split's start
                mine = InterfaceInfo(**{**theirs, "packets": 0})
                info.interfaces.append(mine)
                known[(mine.section, mine.index)] = mine
            mine.packets = (mine.packets or 0) + (theirs.get("packets") or 0)
            for stat in ("received", "drops", "os_drops"):  # the last statistics block's
                if theirs.get(stat) is not None:
                    setattr(mine, stat, theirs[stat])
        info.sections = max(info.sections, p["sections"])
        info.warnings = (info.warnings + p["warnings"])[:MAX_WARNINGS]
        if p["truncated"]:
            info.truncated = True
            info.truncated_at = p["truncated_at"]
            info.ends_early = info.ends_early or p["ends_early"]
    info.decode_errors = {k: info.decode_errors[k] for k in STATUS_NAMES if k in info.decode_errors}
    if len(parts) > 1:  # as the reader's update_info() derives them from the interfaces
        names: list[str | int] = []
        for iface in info.interfaces:
            lt = linktype_name(iface.linktype)
            if lt not in names:
                names.append(lt)
        info.linktypes = names
        info.snaplen = max((i.snaplen for i in info.interfaces), default=0)
        reported = [i.drops for i in info.interfaces if i.drops is not None]
        info.drops = sum(reported) if reported else None
    return info


def fragment_segments(splits: list[Split], infos: list[dict[str, Any]]) -> pa.RecordBatch:
    """Later fragments whose first fragment was in an earlier split -> one-packet segments
    of that fragment's flow (by capture order; the rest are orphans, dropped as the local
    engine drops them). ``infos``: decode_split's of ``splits``, in reading order."""
    latest: dict[tuple[str, str, int, int], tuple[int, int]] = {}
    rows: list[dict[str, Any]] = []
    for split, info in zip(splits, infos, strict=True):
        for src, dst, proto, ip_id, row, ts, wire, pay, head, frame in info.get("pending", ()):
            found = latest.get((src, dst, proto, ip_id))
            if found is None:
                continue
            key, d = found
            rows.append(
                {
                    "key": np.uint64(key).view(np.int64).item(),
                    "capture": split.capture,
                    "part": split.part,
                    "row": row,
                    "lead_syn": False,
                    "syn_seq": 0,
                    "first_ts": ts,
                    "last_ts": ts,
                    **{f"{n}{d}": v for n, v in (("pkts", 1), ("bytes", wire), ("pay", pay))},
                    **{f"{n}{1 - d}": 0 for n in ("pkts", "bytes", "pay")},
                    "flags0": 0,
                    "flags1": 0,
                    "syn_dir": -1,
                    "synack_dir": -1,
                    "first_dir": d,
                    "closed": False,
                    **dict.fromkeys(("src_port", "dst_port", "proto", "flow_dir"), 0),
                    **dict.fromkeys(("vlan", "vlan_inner", "mpls", "tunnel", "tunnel_id"), 0),
                    **dict.fromkeys(("lo", "hi", "outer_src", "outer_dst"), bytes(16)),
                    "frame": frame,
                    "last_at": split.capture << FRAME_BITS | frame,
                    "heads": pack_heads([(d, bytes.fromhex(head), pay)]) if pay else b"",
                    "ftp": None,
                }
            )
        for src, dst, proto, ip_id, key, d in info.get("fragments", ()):
            latest[(src, dst, proto, ip_id)] = (key, d)
    return pa.RecordBatch.from_pylist(rows, schema=SEGMENT_SCHEMA)
