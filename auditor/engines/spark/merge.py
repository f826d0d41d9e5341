"""Segments of one flow key, in capture order -> flows -> rows of the flow table.

:func:`fold` replays the local flow table's rule at segment granularity: a segment led by
a pure SYN starts a new flow when the flow before it was closed (FIN or RST) and its first
SYN had another sequence number; any other segment continues the flow before it. Counters
add up, flags and ``closed`` are or-ed, the first SYN's and SYN-ACK's directions, the first
packet's direction and columns come from the earliest segment that has them, the first and
last timestamps are the smallest and largest, and the payload heads are the first
``HEADS`` of each direction in capture order.

:func:`flow_table` hands the merged flows to the local builder's own ``table()`` (its
direction inference, classification of the heads, identifiers and column layout), so a
Spark row is built by the same code as a local one. Nothing here imports pyspark.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.classify import ftp_data
from auditor.classify.ftp_data import Announcement
from auditor.engines.spark.segments import SEGMENT_SCHEMA
from auditor.flows import _EXPORT_DTYPES, _FIRST_DTYPES, FlowBuilder, _FirstPackets
from auditor.flows.spill import add_segment, cap_heads, pack_heads, starts_flow, unpack_heads

#: frames before each split of a capture: (capture, part) -> packets of the parts before it
Offsets = dict[tuple[int, int], int]


def frame_offsets(splits: list[Any], infos: list[dict[str, Any]]) -> Offsets:
    """Each split's first frame number - 1 in its file (the packets of the splits before
    it), as the local engine numbers the frames of a file read in parts."""
    out: Offsets = {}
    before: dict[int, int] = {}
    for split, info in zip(splits, infos, strict=True):
        out[(split.capture, split.part)] = before.get(split.capture, 0)
        before[split.capture] = before.get(split.capture, 0) + int(info.get("packets") or 0)
    return out


def renumbered(seg: pa.Table, offsets: Offsets) -> pa.Table:
    """Segments with their frames counted from the start of their file."""
    if seg.num_rows == 0 or not any(offsets.values()):
        return seg
    cap = seg.column("capture").to_numpy()
    part = seg.column("part").to_numpy()
    add = np.array(
        [offsets.get((c, p), 0) for c, p in zip(cap.tolist(), part.tolist(), strict=True)],
        np.int64,
    )
    for name in ("frame", "last_at"):
        i = seg.schema.get_field_index(name)
        seg = seg.set_column(i, name, pa.array(seg.column(name).to_numpy() + add, pa.int64()))
    return seg


def fold(seg: pa.Table, offsets: Offsets | None = None) -> pa.Table:
    """Segments (SEGMENT_SCHEMA) of any keys, in any order -> merged flows, one row each
    (same schema; ``lead_syn`` and ``row`` no longer mean anything). A key with one segment
    (most) is its flow as it is; the others are replayed in capture order in Python.
    ``offsets``: :func:`frame_offsets` of the splits (their frames become the file's)."""
    if seg.num_rows == 0:
        return SEGMENT_SCHEMA.empty_table()
    seg = renumbered(seg, offsets or {})
    order = np.lexsort(tuple(seg.column(c).to_numpy() for c in ("row", "part", "capture", "key")))
    seg = seg.take(pa.array(order))
    key = seg.column("key").to_numpy()
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    sizes = np.diff(np.r_[starts, len(key)])
    single = np.repeat(sizes == 1, sizes)
    alone = seg.filter(pa.array(single))
    if single.all():
        return alone
    merged = _replay(seg.filter(pa.array(~single)).to_pylist())
    return pa.concat_tables([alone, pa.Table.from_pylist(merged, schema=SEGMENT_SCHEMA)])


def _replay(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Segments sorted by key and capture order -> flows, by the local rule."""
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for s in rows:
        if cur is None or cur["key"] != s["key"] or starts_flow(cur, s["lead_syn"], s["syn_seq"]):
            cur = dict(s)
            cur["heads"] = unpack_heads(s["heads"])
            out.append(cur)
            continue
        add_segment(cur, s)
        cur["heads"] = cap_heads(cur["heads"] + unpack_heads(s["heads"]))
    for f in out:
        f["heads"] = pack_heads(f["heads"])
    return out


class _Merged(FlowBuilder):
    """A FlowBuilder whose per-flow state is the merged flows, not a C table. FTP data
    announcements are not applied here (their control flow may be in another merge task):
    the rows keep them in the ``ftp`` column for :func:`mark_ftp_data` on the whole table."""

    def __init__(self, flows: pa.Table) -> None:
        super().__init__()
        n = flows.num_rows
        self._count = n
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
                raw = b"".join(flows.column(col).take(pa.array(tunneled)).to_pylist())
                first.outer_addr[:, at : at + 16] = np.frombuffer(raw, np.uint8).reshape(-1, 16)
        self.first = first
        self.last_at = flows.column("last_at").to_numpy().astype(np.int64)
        state: dict[str, np.ndarray] = {}
        for k, dt in _EXPORT_DTYPES.items():
            if k == "key":
                state[k] = flows.column(k).to_numpy().view(np.uint64)
            elif k in ("lo", "hi"):
                raw = b"".join(flows.column(k).to_pylist())
                state[k] = np.frombuffer(raw, np.uint8).reshape(n, 16).copy()
            elif k not in ("got0", "got1"):
                state[k] = flows.column(k).to_numpy().astype(dt)
        got = np.zeros((2, n), np.uint8)
        heads = flows.column("heads").to_pylist()
        for i in np.flatnonzero(pc_nonempty(flows.column("heads"))).tolist():
            hs = unpack_heads(heads[i])
            self.heads[i] = hs
            for d, _h, _pl in hs:
                got[d, i] += 1
        state["got0"], state["got1"] = got[0], got[1]
        self._state = state
        self._ftp = flows.column("ftp").to_pylist()

    @property
    def n(self) -> int:
        return self._count

    def _arrays(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if rows is None:
            return dict(self._state)
        return {k: v[rows] for k, v in self._state.items()}

    def _ftp_marked(self, table: pa.Table, rows_of_flow: np.ndarray) -> pa.Table:
        """The announcements, by row, in the ``ftp`` column (marked on the whole table)."""
        ftp: list[str | None] = [None] * len(rows_of_flow)
        for f, text in enumerate(self._ftp):
            if text:
                ftp[int(rows_of_flow[f])] = text
        return table.append_column("ftp", pa.array(ftp, pa.string()))


def mark_ftp_data(table: pa.Table) -> pa.Table:
    """The whole flow table (rows of every merge task, with their ``ftp`` column) with the
    FTP data connections marked as the local builder marks them, the column dropped."""
    if "ftp" not in table.column_names:
        return table
    announced = [
        Announcement(row, ip, port, sender)
        for row, text in enumerate(table.column("ftp").to_pylist())
        if text
        for ip, port, sender in json.loads(text)
    ]
    table = table.drop_columns(["ftp"])
    return ftp_data.mark(table, np.arange(table.num_rows), announced)


def pc_nonempty(col: pa.ChunkedArray) -> np.ndarray:
    """Which binary values are not empty, from the offsets (no pyarrow.compute)."""
    out = []
    for chunk in col.chunks:
        offs = np.frombuffer(chunk.buffers()[1], np.int32, len(chunk) + 1 + chunk.offset)
        offs = offs[chunk.offset :]
        out.append(np.diff(offs) > 0)
    return np.concatenate(out) if out else np.zeros(0, bool)


def flow_table(flows: pa.Table) -> pa.Table:
    """Merged flows (:func:`fold`) -> the local engine's flow table rows, sorted as it
    sorts them."""
    return _Merged(flows).table()
