"""``pcap-audit query --format table``: a query's result as a terminal table.

Cells are whatever the SQL selected, often wire content: they go through the shared
writer (:mod:`auditor.report.grid`), which escapes them and fits the table to the width.
Every column elides rather than wraps, so a row of the result stays one line; numbers
are right-aligned and never cut.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from auditor.report.grid import Column, grid

__all__ = ["render"]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v).replace("\n", " ")


def _column(name: str, typ: pa.DataType) -> Column:
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return Column(name, overflow="keep", align="right")
    return Column(name, overflow="elide", min_width=8)


def render(table: pa.Table, width: int) -> str:
    """The result as an aligned table of at most ``width`` columns, and its row count."""
    columns = [_column(f.name, f.type) for f in table.schema]
    rows = [[_cell(v) for v in row.values()] for row in table.to_pylist()]
    lines = grid(columns, rows, width)
    lines.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")
    return "\n".join(lines) + "\n"
