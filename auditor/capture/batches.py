"""The batch buffers: the numpy arrays the C scanner writes one batch of packets into
(layout from ``_fast.COLUMNS``), and the Arrow RecordBatch made from them without a copy."""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa

from auditor.capture import _fast
from auditor.capture.schema import PACKET_SCHEMA

_VALIDITY = {
    "ts": "valid_ts",
    "vlan": "valid_vlan",
    "vlan_inner": "valid_vlan_inner",
    "mpls": "valid_mpls",
    "tunnel_id": "valid_tunnel_id",
    "outer_src": "valid_outer",
    "outer_dst": "valid_outer",
    "src_ip": "valid_ip",
    "dst_ip": "valid_ip",
    "flow_key": "valid_ip",
    "flow_dir": "valid_ip",
}
_COLUMN_INDEX = {c[0]: i for i, c in enumerate(_fast.COLUMNS)}
_BITMAPS = [c[0] for c in _fast.COLUMNS if c[2] == "v"]


def _free_refs() -> int:
    """sys.getrefcount of an array held only in a tuple, seen as _Batch.released sees it."""
    arrays = (np.empty(1),)
    return max(sys.getrefcount(a) for a in arrays)


_FREE_REFS = _free_refs()
_FIRST_BITMAP = _COLUMN_INDEX["valid_ts"]


class _Batch:
    """The numpy arrays one batch is written into (layout from ``_fast.COLUMNS``)."""

    def __init__(self, rows: int, data_cap: int) -> None:
        arrays: list[np.ndarray] = []
        for _name, dtype, kind, width in _fast.COLUMNS:
            if kind == "o":
                a = np.empty(rows + 1, dtype)
                a[0] = 0
            elif kind == "d":
                a = np.empty(data_cap, dtype)
            elif kind == "v":
                a = np.zeros((rows + 7) // 8, dtype)
            else:
                a = np.empty(rows * (16 if width == 16 else 1), dtype)
            arrays.append(a)
        self.rows = rows
        self.data_cap = data_cap
        self.arrays = tuple(arrays)

    def column(self, name: str) -> np.ndarray:
        return self.arrays[_COLUMN_INDEX[name]]

    def released(self) -> bool:
        """True when nothing outside this object refers to its arrays any more (the Arrow
        batch made from them, and every view of it, is gone): they can be filled again."""
        return all(sys.getrefcount(a) <= _FREE_REFS for a in self.arrays)

    def clear(self) -> None:
        for name in _BITMAPS:
            self.column(name).fill(0)

    def record_batch(self, n: int, nulls: np.ndarray, data_used: int) -> pa.RecordBatch:
        """The first n rows as an Arrow batch sharing the numpy memory."""
        out = []
        for f in PACKET_SCHEMA:
            if f.name == "payload":
                offsets = self.column("payload_offsets")[: n + 1]
                data = self.column("payload_data")[:data_used]
                out.append(
                    pa.Array.from_buffers(
                        f.type, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)], 0
                    )
                )
                continue
            validity = None
            null_count = 0
            vname = _VALIDITY.get(f.name)
            if vname is not None:
                null_count = int(nulls[_COLUMN_INDEX[vname] - _FIRST_BITMAP])
                if null_count:
                    validity = pa.py_buffer(self.column(vname))
            values = pa.py_buffer(self.column(f.name))
            out.append(pa.Array.from_buffers(f.type, n, [validity, values], null_count))
        return pa.RecordBatch.from_arrays(out, schema=PACKET_SCHEMA)
