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

from typing import Any

import numpy as np
import pyarrow as pa

from auditor._flowtab import HEADS
from auditor.engines.spark.segments import unpack_heads
from auditor.flows import _EXPORT_DTYPES, _FIRST_ADDRESSES, _FIRST_DTYPES, FlowBuilder

_SUMS = ("pkts0", "pkts1", "bytes0", "bytes1", "pay0", "pay1")
_FIRST_COLS = ("src_port", "dst_port", "proto", "flow_dir", "vlan", "vlan_inner", "mpls",
               "tunnel", "tunnel_id", "src_ip", "dst_ip", "outer_src", "outer_dst", "capture")  # fmt: skip


def fold(seg: pa.Table) -> list[dict[str, Any]]:
    """Segments (SEGMENT_SCHEMA) of any keys -> merged flows, one dict each. Segments are
    ordered by (key, capture, part, row) here, so the caller's order does not matter."""
    if seg.num_rows == 0:
        return []
    order = np.lexsort(tuple(seg.column(c).to_numpy() for c in ("row", "part", "capture", "key")))
    rows = seg.take(pa.array(order)).to_pylist()
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for s in rows:
        if (
            cur is None
            or cur["key"] != s["key"]
            or (
                s["lead_syn"]
                and cur["closed"]
                and not (cur["syn_dir"] >= 0 and cur["syn_seq"] == s["syn_seq"])
            )
        ):
            cur = dict(s)
            cur["heads"] = _cap_heads(unpack_heads(s["heads"]))
            if not s["lead_syn"]:
                cur["syn_seq"] = None
            out.append(cur)
            continue
        for k in _SUMS:
            cur[k] += s[k]
        cur["flags0"] |= s["flags0"]
        cur["flags1"] |= s["flags1"]
        cur["closed"] = cur["closed"] or s["closed"]
        cur["first_ts"] = min(cur["first_ts"], s["first_ts"])
        cur["last_ts"] = max(cur["last_ts"], s["last_ts"])
        if cur["syn_dir"] < 0 and s["syn_dir"] >= 0:
            cur["syn_dir"] = s["syn_dir"]
            cur["syn_seq"] = s["syn_seq"]
        if cur["synack_dir"] < 0:
            cur["synack_dir"] = s["synack_dir"]
        cur["heads"] = _cap_heads(cur["heads"] + unpack_heads(s["heads"]))
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
    """A FlowBuilder whose per-flow state is the merged flows, not a C table."""

    def __init__(self, flows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.merged = flows
        n = len(flows)
        self.first.n = n
        for k in _FIRST_DTYPES:
            if k in _FIRST_ADDRESSES:
                raw = b"".join(f[k] for f in flows)
                self.first.cols[k] = np.frombuffer(raw, np.uint8).reshape(n, 16).copy()
            else:
                self.first.cols[k] = np.array([f[k] for f in flows], dtype=_FIRST_DTYPES[k])
        for i, f in enumerate(flows):
            if f["heads"]:
                self.heads[i] = f["heads"]
        got = [[sum(1 for h in f["heads"] if h[0] == d) for f in flows] for d in (0, 1)]
        self._state = {
            k: np.array([f[k] for f in flows], dtype=dt)
            for k, dt in _EXPORT_DTYPES.items()
            if k not in ("got0", "got1")
        }
        self._state["got0"] = np.array(got[0], np.uint8)
        self._state["got1"] = np.array(got[1], np.uint8)

    @property
    def n(self) -> int:
        return len(self.merged)

    def _arrays(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if rows is None:
            return self._state
        return {k: v[rows] for k, v in self._state.items()}


def flow_table(flows: list[dict[str, Any]]) -> pa.Table:
    """Merged flows -> the local engine's flow table rows (sorted as it sorts them)."""
    for f in flows:
        f["key"] = f["key"] & 0xFFFFFFFFFFFFFFFF  # back to the reader's unsigned key
    return _Merged(flows).table()
