"""Flows evicted from the live flow table -> segments on disk -> merged back into flows.

Why: the live table (C, plus per-flow Python state) costs about 450 bytes a flow, so a
capture of millions of distinct flows (a sweep) would hold them all. Beyond the builder's
``limit`` (``--flow-limit``), :meth:`auditor.flows.FlowBuilder._evict` hands the least
recently seen flows to :func:`segments`: one row each with the table's state, the first
packet's columns, the payload heads not yet classified (or the classification), and the
FTP data endpoints announced in it, appended to an Arrow IPC file in a temporary directory
(:class:`Spill`). A later packet of an evicted flow starts a new *segment* of it.

:func:`merged_table` folds the segments by the flow's FULL key (protocol and both
endpoints, not the hash) in capture order, by the live table's own rule: a segment whose
first packet is a pure SYN starts a new flow when the flow before it was closed (FIN or
RST) and its first SYN had another sequence number; any other segment continues it.
Counters add up; flags and ``closed`` are or-ed; first/last time and last packet are the
smallest/largest; the first SYN's and SYN-ACK's directions, the first packet's columns and
the classification come from the earliest segment that has them (a flow classified
before it was evicted keeps that classification: the live table ignores later payload of
a classified flow too); payload heads not yet classified are joined (the first ``HEADS``
of each direction). The merged flows are then built into the flow table by the builder's
own code (:class:`_Merged`), so a row looks the same whether its flow was evicted or not.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from auditor._flowtab import HEADS, release_free_memory
from auditor.classify.facts import (
    FLOW_FACTS_SCHEMA,
    facts_table_of,
)
from auditor.classify.ftp_data import Announcement
from auditor.errors import ResourceError
from auditor.flows import _ALL_DTYPES, _FIRST_DTYPES, FlowBuilder, _FirstPackets

T = TypeVar("T")
_SUMS = ("pkts0", "pkts1", "bytes0", "bytes1", "pay0", "pay1")
_HEAD = struct.Struct("<BII")


def pack_heads(heads: list[tuple[int, bytes, int]]) -> bytes:
    """(direction, head bytes, payload length) items -> one binary value."""
    return b"".join(_HEAD.pack(d, pl, len(h)) + h for d, h, pl in heads)


def unpack_heads(data: bytes) -> list[tuple[int, bytes, int]]:
    out = []
    pos = 0
    while pos < len(data):
        d, pl, n = _HEAD.unpack_from(data, pos)
        pos += _HEAD.size
        out.append((d, bytes(data[pos : pos + n]), pl))
        pos += n
    return out


def starts_flow(cur: dict[str, Any], opens_with_syn: bool, open_seq: int) -> bool:
    """The live table's port-reuse rule, at segment granularity: a segment whose first
    packet is a pure SYN (sequence ``open_seq``) starts a new flow when the flow ``cur``
    before it was closed and its first SYN had another sequence number."""
    return bool(
        opens_with_syn
        and cur["closed"]
        and not (cur["syn_dir"] >= 0 and cur["syn_seq"] == open_seq)
    )


def add_segment(cur: dict[str, Any], s: dict[str, Any]) -> None:
    """Segment ``s`` continues flow ``cur``: counters add up, flags and ``closed`` are
    or-ed, first/last times and last packet widen, FTP announcements are joined, the first
    SYN's and SYN-ACK's directions stay the earliest known. (Payload heads and the
    classification are the caller's: the local and the Spark merge keep different ones.)"""
    for k in _SUMS:
        cur[k] += s[k]
    cur["flags0"] |= s["flags0"]
    cur["flags1"] |= s["flags1"]
    cur["closed"] = bool(cur["closed"] or s["closed"])
    cur["first_ts"] = min(cur["first_ts"], s["first_ts"])
    cur["last_ts"] = max(cur["last_ts"], s["last_ts"])
    cur["last_at"] = max(cur["last_at"], s["last_at"])
    if s["ftp"]:
        cur["ftp"] = json.dumps(json.loads(cur["ftp"] or "[]") + json.loads(s["ftp"]))
    if cur["syn_dir"] < 0 and s["syn_dir"] >= 0:
        cur["syn_dir"] = s["syn_dir"]
        cur["syn_seq"] = s["syn_seq"]
    if cur["synack_dir"] < 0:
        cur["synack_dir"] = s["synack_dir"]


def _spill_dir() -> str | None:
    """DuckDB's --temp-dir when one was given, else the system's temporary directory."""
    from auditor import duck

    return duck.temp_dir()


class _File:
    """One Arrow IPC file written batch by batch, then read batch by batch."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._sink: Any = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self.schema: pa.Schema | None = None
        self.rows = 0

    def write(self, t: pa.Table) -> None:
        if self._writer is None:
            self.schema = t.schema
            self._sink = pa.OSFile(self.path, "wb")
            self._writer = pa.ipc.new_file(self._sink, t.schema)
        elif t.schema != self.schema:
            t = t.cast(self.schema)
        self._writer.write_table(t)
        self.rows += t.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The batches written, one at a time (the file is closed for writing)."""
        self.close()
        if not self.rows:
            return
        with pa.OSFile(self.path, "rb") as src:
            reader = pa.ipc.open_file(src)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)


class Spill:
    """The segments (one Arrow IPC file) and the classifications of the classified ones
    (another), in a temporary directory of its own, removed by :meth:`close` (the builder
    closes it once the table is built)."""

    def __init__(self, where: str | None = None) -> None:
        where = where or _spill_dir()
        try:
            if where:
                os.makedirs(where, exist_ok=True)
            self.dir = tempfile.mkdtemp(prefix="pcap-audit-spill-", dir=where)
        except OSError as exc:
            raise ResourceError(
                where or tempfile.gettempdir(),
                f"cannot make the flow table's spill directory ({exc.strerror or exc}): "
                "point --temp-dir at a writable directory, or raise --flow-limit",
            ) from exc
        self.segments = _File(os.path.join(self.dir, "segments.arrows"))
        self.facts = _File(os.path.join(self.dir, "facts.arrows"))
        # removed with the builder when a read ends early (an error, an interrupt unwinding)
        self._remove = weakref.finalize(self, shutil.rmtree, self.dir, True)

    @property
    def rows(self) -> int:
        """Segments written so far."""
        return self.segments.rows

    def close(self) -> None:
        self.segments.close()
        self.facts.close()
        self._remove()


def _binary16(arr: np.ndarray) -> pa.Array:
    raw = pa.py_buffer(np.ascontiguousarray(arr))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(arr), [None, raw])


def _held(d: dict[int, Any], rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` are keys of ``d``."""
    keys = np.fromiter(d.keys(), np.int64, len(d))
    return np.isin(rows, keys)


def _packed(heads: dict[int, list[tuple[int, bytes, int]]], rows: np.ndarray) -> pa.Array:
    """The packed heads of the flows at ``rows`` (empty for a flow without), popped from
    ``heads``: one Python step per flow that has heads, not per flow."""
    hit = np.flatnonzero(_held(heads, rows))
    packs = [pack_heads(heads.pop(int(rows[i]))) for i in hit.tolist()]
    sizes = np.zeros(len(rows), np.int64)
    sizes[hit] = [len(p) for p in packs]
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = pa.py_buffer(b"".join(packs))
    return pa.Array.from_buffers(
        pa.large_binary(), len(rows), [None, pa.py_buffer(offsets), data]
    ).cast(pa.binary())


def spill_flows(b: FlowBuilder, spill: Spill, rows: np.ndarray, c: dict[str, np.ndarray]) -> None:
    """Write the builder's flows at ``rows`` (ascending; ``c``: their exported arrays) as
    segments, one row each; their heads, classifications and FTP announcements leave the
    builder (the caller compacts the table)."""
    n = len(rows)
    cols: dict[str, Any] = {k: c[k] for k in _ALL_DTYPES if k not in ("lo", "hi")}
    cols["lo"], cols["hi"] = _binary16(c["lo"]), _binary16(c["hi"])
    fp = b.first.columns(rows)
    cols.update(fp)
    outer = np.zeros((n, 32), np.uint8)
    tunneled = np.flatnonzero(fp["tunnel"])
    if len(tunneled):
        src, dst = b.first.outer(rows[tunneled])
        outer[tunneled, :16], outer[tunneled, 16:] = src, dst
    cols["outer_src"], cols["outer_dst"] = _binary16(outer[:, :16]), _binary16(outer[:, 16:])
    cols["last_at"] = b.last_at[rows]
    cols["heads"] = _packed(b.heads, rows)
    classified = _held(b.facts, rows)
    distinct = [b.facts.pop(int(rows[i])) for i in np.flatnonzero(classified).tolist()]
    where = spill.facts.rows + np.cumsum(classified) - 1
    cols["facts_row"] = np.where(classified, where, -1).astype(np.int64)
    if distinct:
        spill.facts.write(facts_table_of(distinct, np.arange(len(distinct))))
    ftp: dict[int, list[list[Any]]] = {}
    if b.ftp_announced:
        at = {f: i for i, f in enumerate(rows.tolist())}
        for a in b.ftp_announced:
            if a.flow in at:
                ftp.setdefault(at[a.flow], []).append([a.ip, a.port, a.sender])
    cols["ftp"] = (
        pa.array([json.dumps(ftp[i]) if i in ftp else None for i in range(n)], pa.string())
        if ftp
        else pa.nulls(n, pa.string())
    )
    spill.segments.write(pa.table(cols))


def merged_table(b: FlowBuilder) -> pa.Table:
    """The flow table of a builder that evicted flows: its live flows become segments too,
    the segments are read back into arrays (batch by batch), folded (:func:`fold`) and
    built as the builder builds its table."""
    spill = b.spill
    assert spill is not None
    try:
        c = b._arrays()
        if len(c["key"]):
            spill_flows(b, spill, np.arange(len(c["key"]), dtype=np.int64), c)
        del c
        b.tab.clear()
        b.first, b.heads, b.facts, b.last_at = _FirstPackets(), {}, {}, np.zeros(0, np.int64)
        release_free_memory()
        state = fold(_Segments.load(spill.segments))
        facts = [t for t in spill.facts.batches()]
        return _Merged(state, pa.Table.from_batches(facts, FLOW_FACTS_SCHEMA)).table()
    finally:
        spill.close()


_OTHER_DTYPES = {**_FIRST_DTYPES, "last_at": np.dtype(np.int64), "facts_row": np.dtype(np.int64)}


@dataclass
class _Segments:
    """Segments as arrays (one row each): the flow table's state and first-packet columns,
    the tunnel endpoints of the tunneled ones, and the heads and FTP announcements of the
    few that have them."""

    cols: dict[str, np.ndarray]
    outer: dict[int, bytes]  #: row -> outer source + destination (32 bytes)
    heads: dict[int, bytes]  #: row -> packed heads
    ftp: dict[int, str]  #: row -> JSON [[ip, port, sender]]

    @property
    def n(self) -> int:
        return len(self.cols["key"])

    @classmethod
    def load(cls, f: _File) -> _Segments:
        n = f.rows
        dtypes = {**_ALL_DTYPES, **_OTHER_DTYPES}
        cols = {k: np.empty(n, dt) for k, dt in dtypes.items() if k not in ("lo", "hi")}
        cols["lo"], cols["hi"] = np.empty((n, 16), np.uint8), np.empty((n, 16), np.uint8)
        out = cls(cols, {}, {}, {})
        at = 0
        for batch in f.batches():
            m = batch.num_rows
            for k in cols:
                arr = batch.column(k)
                if k in ("lo", "hi"):
                    raw = np.frombuffer(arr.buffers()[1], np.uint8, 16 * (m + arr.offset))
                    cols[k][at : at + m] = raw.reshape(-1, 16)[arr.offset :]
                else:
                    cols[k][at : at + m] = arr.to_numpy(zero_copy_only=False)
            tun = np.flatnonzero(cols["tunnel"][at : at + m])
            if len(tun):
                src, dst = batch.column("outer_src"), batch.column("outer_dst")
                for i in tun.tolist():
                    out.outer[at + i] = src[i].as_py() + dst[i].as_py()
            for i in np.flatnonzero(_nonempty(batch.column("heads"))).tolist():
                out.heads[at + i] = batch.column("heads")[i].as_py()
            ftp = batch.column("ftp")
            if ftp.null_count < m:
                for i, text in enumerate(ftp.to_pylist()):
                    if text:
                        out.ftp[at + i] = text
            at += m
        return out

    def row(self, i: int) -> dict[str, Any]:
        d = {k: v[i].item() if v.ndim == 1 else v[i].tobytes() for k, v in self.cols.items()}
        d["heads"] = unpack_heads(self.heads.get(i, b""))
        d["ftp"] = self.ftp.get(i)
        return d

    def put(self, i: int, d: dict[str, Any]) -> None:
        for k, v in self.cols.items():
            if v.ndim == 1:
                v[i] = d[k]
        self.heads.pop(i, None)
        if d["heads"]:
            self.heads[i] = pack_heads(d["heads"])
        self.ftp.pop(i, None)
        if d["ftp"]:
            self.ftp[i] = d["ftp"]

    def keep(self, keep: np.ndarray) -> None:
        """Only the rows where ``keep`` is true, renumbered."""
        new = np.cumsum(keep) - 1
        for k, v in self.cols.items():
            self.cols[k] = v[keep]
        self.outer = _renumbered(self.outer, keep, new)
        self.heads = _renumbered(self.heads, keep, new)
        self.ftp = _renumbered(self.ftp, keep, new)


def _renumbered(d: dict[int, T], keep: np.ndarray, new: np.ndarray) -> dict[int, T]:
    return {int(new[i]): v for i, v in d.items() if keep[i]}


def _words(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16) bytes as two uint64 columns (for sorting and comparing)."""
    w = np.ascontiguousarray(a).view(np.uint64)
    return w[:, 0], w[:, 1]


def fold(seg: _Segments) -> _Segments:
    """Segments of any flows, in any order -> one row per flow. A full key with one
    segment (most) is its flow as it is; the others are replayed in capture order in
    Python, the flow's row being its first segment's."""
    c = seg.cols
    if not seg.n:
        return seg
    lo0, lo1 = _words(c["lo"])
    hi0, hi1 = _words(c["hi"])
    full = (hi1, hi0, lo1, lo0, c["kproto"], c["phi"], c["plo"], c["key"])
    place = (c["capture"].astype(np.int64) << 40) | c["frame"].astype(np.int64)
    order = np.lexsort((place, *full))
    same = np.zeros(len(order), bool)
    same[1:] = True
    for k in full:
        s = k[order]
        same[1:] &= s[1:] == s[:-1]
    if not same.any():
        return seg
    group = np.cumsum(~same)
    sizes = np.bincount(group)
    multi = sizes[group] > 1
    idx = order[multi].tolist()
    keep = np.ones(seg.n, bool)
    for cur, members in _replay([seg.row(i) for i in idx], group[multi].tolist(), idx):
        seg.put(cur["_row"], cur)
        keep[members] = False
    seg.keep(keep)
    return seg


def _replay(
    rows: list[dict[str, Any]], group: list[int], at: list[int]
) -> Iterator[tuple[dict[str, Any], list[int]]]:
    """Segments sorted by full key and capture order (``group``: their full key's number,
    ``at``: their rows) -> flows, by the live table's rule: each flow's merged values (its
    row: ``_row``, its first segment's) and the rows of the segments merged into it."""
    cur: dict[str, Any] | None = None
    members: list[int] = []
    cur_group = -1
    for s, g, i in zip(rows, group, at, strict=True):
        if cur is None or g != cur_group or starts_flow(cur, s["open_syn"], s["open_seq"]):
            if cur is not None:
                yield cur, members
            cur, members, cur_group = dict(s), [], g
            cur["_row"] = i
            continue
        members.append(i)
        add_segment(cur, s)
        if cur["facts_row"] >= 0:
            continue  # the live table ignores the later payload of a classified flow
        if cur["heads"] or cur["got0"] or cur["got1"]:
            cur["heads"] = cap_heads(cur["heads"] + s["heads"])
        else:  # no payload before: the flow's classifier input is this segment's
            cur["heads"] = s["heads"]
            cur["facts_row"] = s["facts_row"]
        cur["got0"] = min(HEADS, cur["got0"] + s["got0"])
        cur["got1"] = min(HEADS, cur["got1"] + s["got1"])
    if cur is not None:
        yield cur, members


def cap_heads(heads: list[tuple[int, bytes, int]]) -> list[tuple[int, bytes, int]]:
    """The first HEADS heads of each direction, in order."""
    got = [0, 0]
    kept = []
    for h in heads:
        if got[h[0]] < HEADS:
            got[h[0]] += 1
            kept.append(h)
    return kept


class _Merged(FlowBuilder):
    """A FlowBuilder whose per-flow state is merged flows (:func:`fold`), not a C table:
    its ``table()`` classifies the heads left and builds the rows as the live builder does;
    flows classified before they were evicted keep their classification (``facts``: the
    classifications, rows of which ``facts_row`` names)."""

    def __init__(self, seg: _Segments, facts: pa.Table) -> None:
        super().__init__()
        c = seg.cols
        first = _FirstPackets()
        first.n = seg.n
        first.cols = {k: c.pop(k) for k in _FIRST_DTYPES}
        tunneled = sorted(seg.outer)
        first.n_outer = len(tunneled)
        first.outer_flow = np.array(tunneled, np.int64)
        first.outer_addr = np.frombuffer(
            b"".join(seg.outer[i] for i in tunneled), np.uint8
        ).reshape(-1, 32)
        self.first = first
        self.last_at = c.pop("last_at")
        self._facts_row = c.pop("facts_row")
        self._pre = facts
        self._state = c
        for i, packed in seg.heads.items():
            self.heads[i] = unpack_heads(packed)
        self.ftp_announced = [
            Announcement(row, ip, port, sender)
            for row, text in sorted(seg.ftp.items())
            for ip, port, sender in json.loads(text)
        ]

    @property
    def n(self) -> int:
        return len(self.last_at)

    def _arrays(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if rows is None:  # handed over: the table built from them drops each once read
            out, self._state = self._state, {}
            return out
        return {k: v[rows] for k, v in self._state.items()}

    def _facts_table(self, order: np.ndarray) -> pa.Table:
        """Classified now (the builder's facts) or before eviction (the spilled ones)."""
        now = super()._facts_table(order)
        at = self._facts_row[order]
        pre = at >= 0
        if not pre.any():
            return now
        n = len(order)
        both = pa.concat_tables([now, self._pre.take(pa.array(at[pre]))])
        pick = np.arange(n)
        pick[pre] = n + np.arange(int(np.count_nonzero(pre)))
        return both.take(pa.array(pick))


def _nonempty(arr: pa.Array) -> np.ndarray:
    """Which binary values are not empty, from the offsets."""
    offs = np.frombuffer(arr.buffers()[1], np.int32, len(arr) + 1 + arr.offset)
    return np.diff(offs[arr.offset :]) > 0
