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
from typing import Any

import numpy as np
import pyarrow as pa

from auditor._flowtab import HEADS
from auditor.classify import FlowFacts
from auditor.classify.facts import (
    FLOW_FACTS_FIELDS,
    FLOW_FACTS_SCHEMA,
    NO_PAYLOAD,
    facts_table_of,
)
from auditor.classify.ftp_data import Announcement
from auditor.flows import _ALL_DTYPES, _FIRST_DTYPES, FlowBuilder, _FirstPackets

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


def _spill_dir() -> str | None:
    """DuckDB's --temp-dir when one was given, else the system's temporary directory."""
    from auditor import duck

    return duck.temp_dir()


class Spill:
    """An Arrow IPC file of segments in a temporary directory of its own (removed by
    :meth:`close`, and by the builder once the table is built)."""

    def __init__(self, where: str | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="pcap-audit-spill-", dir=where or _spill_dir())
        self.path = os.path.join(self.dir, "flows.arrows")
        self._sink: Any = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self.schema: pa.Schema | None = None
        self.rows = 0

    def write(self, seg: pa.Table) -> None:
        if self._writer is None:
            self.schema = seg.schema
            self._sink = pa.OSFile(self.path, "wb")
            self._writer = pa.ipc.new_file(self._sink, seg.schema)
        elif seg.schema != self.schema:
            seg = seg.cast(self.schema)
        self._writer.write_table(seg)
        self.rows += seg.num_rows

    def read(self) -> pa.Table:
        """Every segment written (the file is closed for writing)."""
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None
        with pa.memory_map(self.path) as src:
            return pa.ipc.open_file(src).read_all()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _binary16(arr: np.ndarray) -> pa.Array:
    raw = pa.py_buffer(np.ascontiguousarray(arr))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(arr), [None, raw])


def segments(b: FlowBuilder, rows: np.ndarray, c: dict[str, np.ndarray]) -> pa.Table:
    """The segments of the builder's flows at ``rows`` (ascending; ``c``: their exported
    arrays): one row each. Their heads, classifications and FTP announcements leave the
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
    distinct: list[FlowFacts] = [NO_PAYLOAD]
    for i in np.flatnonzero(classified).tolist():
        distinct.append(b.facts.pop(int(rows[i])))
    cols["classified"] = classified
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
    # the facts of the classified flows; null rows for the others (take with null indices)
    facts = facts_table_of(distinct[1:], np.arange(len(distinct) - 1))
    where = np.cumsum(classified) - 1
    pick = pa.array(where, pa.int64(), mask=~classified)
    for name in FLOW_FACTS_FIELDS:
        cols["fact_" + name] = facts.column(name).take(pick)
    return pa.table(cols)


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


def merged_table(b: FlowBuilder) -> pa.Table:
    """The flow table of a builder that evicted flows: its live flows become segments too,
    every segment is read back and folded (:func:`fold`), and the result built as the
    builder builds its table."""
    spill = b.spill
    assert spill is not None
    try:
        c = b._arrays()
        if len(c["key"]):
            spill.write(segments(b, np.arange(len(c["key"]), dtype=np.int64), c))
        del c
        b.tab.clear()
        b.first, b.heads, b.facts = _FirstPackets(), {}, {}
        flows = fold(spill.read())
        return _Merged(flows).table()
    finally:
        spill.close()


def _place(seg: pa.Table) -> np.ndarray:
    cap = seg.column("capture").to_numpy().astype(np.int64)
    return (cap << 40) | seg.column("frame").to_numpy().astype(np.int64)


def _words(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A fixed_size_binary(16) column as two uint64 columns (for sorting and comparing)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    w = np.frombuffer(arr.buffers()[1], np.uint64, count=2 * (len(arr) + arr.offset))
    w = w.reshape(-1, 2)[arr.offset :]
    return w[:, 0], w[:, 1]


def fold(seg: pa.Table) -> pa.Table:
    """Segments of any flows, in any order -> one row per flow (same columns). A full key
    with one segment (most) is its flow as it is; the others are replayed in capture order
    in Python."""
    lo0, lo1 = _words(seg.column("lo"))
    hi0, hi1 = _words(seg.column("hi"))
    keys = [seg.column(k).to_numpy().astype(np.int64) for k in ("kproto", "phi", "plo", "key")]
    full = (hi1, hi0, lo1, lo0, *keys)
    order = np.lexsort((_place(seg), *full))
    same = np.ones(len(order), bool)
    same[0:1] = False
    for k in full:
        s = k[order]
        same[1:] &= s[1:] == s[:-1]
    starts = np.flatnonzero(~same)
    sizes = np.diff(np.r_[starts, len(order)])
    single = np.repeat(sizes == 1, sizes)
    if single.all():
        return seg
    seg = seg.take(pa.array(order))
    alone = seg.filter(pa.array(single))
    multi = seg.filter(pa.array(~single))
    group = np.cumsum(~same)[~single]
    merged = _replay(multi.to_pylist(), group.tolist())
    return pa.concat_tables([alone, pa.Table.from_pylist(merged, schema=seg.schema)])


def _replay(rows: list[dict[str, Any]], group: list[int]) -> list[dict[str, Any]]:
    """Segments sorted by full key and capture order (``group``: their full key's number)
    -> flows, by the live table's rule."""
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    cur_group = -1
    facts = ["classified", *("fact_" + f for f in FLOW_FACTS_FIELDS)]
    for s, g in zip(rows, group, strict=True):
        if (
            cur is None
            or g != cur_group
            or (
                s["open_syn"]
                and cur["closed"]
                and not (cur["syn_dir"] >= 0 and cur["syn_seq"] == s["open_seq"])
            )
        ):
            cur = dict(s)
            cur["heads"] = unpack_heads(s["heads"])
            cur_group = g
            out.append(cur)
            continue
        for k in _SUMS:
            cur[k] += s[k]
        cur["flags0"] |= s["flags0"]
        cur["flags1"] |= s["flags1"]
        cur["closed"] = cur["closed"] | s["closed"]
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
        if cur["classified"]:
            continue  # the live table ignores the later payload of a classified flow
        if cur["heads"] or cur["got0"] or cur["got1"]:
            cur["heads"] = _cap_heads(cur["heads"] + unpack_heads(s["heads"]))
        else:  # no payload before: the flow's classifier input is this segment's
            cur["heads"] = unpack_heads(s["heads"])
            for k in facts:
                cur[k] = s[k]
        cur["got0"] = min(HEADS, cur["got0"] + s["got0"])
        cur["got1"] = min(HEADS, cur["got1"] + s["got1"])
    for f in out:
        f["heads"] = pack_heads(f["heads"])
    return out


def _cap_heads(heads: list[tuple[int, bytes, int]]) -> list[tuple[int, bytes, int]]:
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
    flows classified before they were evicted keep their classification."""

    def __init__(self, flows: pa.Table) -> None:
        super().__init__()
        n = flows.num_rows
        first = _FirstPackets()
        first.n = n
        for k, dt in _FIRST_DTYPES.items():
            first.cols[k] = flows.column(k).to_numpy().astype(dt)
        tunneled = np.flatnonzero(first.cols["tunnel"])
        first.n_outer = len(tunneled)
        first.outer_flow = tunneled.astype(np.int64)
        first.outer_addr = np.zeros((len(tunneled), 32), np.uint8)
        for col, at in (("outer_src", 0), ("outer_dst", 16)):
            if len(tunneled):
                words = flows.column(col).take(pa.array(tunneled)).combine_chunks()
                raw = np.frombuffer(words.buffers()[1], np.uint8, count=16 * len(tunneled))
                first.outer_addr[:, at : at + 16] = raw.reshape(-1, 16)
        self.first = first
        self.last_at = flows.column("last_at").to_numpy().astype(np.int64)
        state: dict[str, np.ndarray] = {}
        for k, dt in _ALL_DTYPES.items():
            if k in ("lo", "hi"):
                arr = flows.column(k).combine_chunks()
                raw = np.frombuffer(arr.buffers()[1], np.uint8, count=16 * (n + arr.offset))
                state[k] = raw.reshape(-1, 16)[arr.offset :]
            else:
                state[k] = flows.column(k).to_numpy().astype(dt)
        self._state = state
        self._classified = flows.column("classified").to_numpy(zero_copy_only=False)
        self._pre = pa.Table.from_arrays(
            [flows.column("fact_" + f) for f in FLOW_FACTS_FIELDS], schema=FLOW_FACTS_SCHEMA
        ).combine_chunks()
        heads = flows.column("heads")
        for i in np.flatnonzero(_nonempty(heads)).tolist():
            self.heads[i] = unpack_heads(heads[i].as_py())
        self.ftp_announced = [
            Announcement(row, ip, port, sender)
            for row, text in enumerate(flows.column("ftp").to_pylist())
            if text
            for ip, port, sender in json.loads(text)
        ]

    @property
    def n(self) -> int:
        return len(self.last_at)

    def _arrays(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if rows is None:
            return dict(self._state)
        return {k: v[rows] for k, v in self._state.items()}

    def _facts_table(self, order: np.ndarray) -> pa.Table:
        """Classified now (the builder's facts) or before eviction (the segments')."""
        now = super()._facts_table(order)
        pre = self._classified[order]
        if not pre.any():
            return now
        both = pa.concat_tables([now, self._pre.take(pa.array(order))])
        pick = np.where(pre, np.arange(len(order)) + len(order), np.arange(len(order)))
        return both.take(pa.array(pick))


def _nonempty(col: pa.ChunkedArray) -> np.ndarray:
    """Which binary values are not empty, from the offsets."""
    out = []
    for chunk in col.chunks:
        offs = np.frombuffer(chunk.buffers()[1], np.int32, len(chunk) + 1 + chunk.offset)
        out.append(np.diff(offs[chunk.offset :]) > 0)
    return np.concatenate(out) if out else np.zeros(0, bool)
