"""``pcap-audit query --format table``: a query's result as a terminal table.

Cells are whatever the SQL selected, often wire content: they go through the shared
writer (:mod:`auditor.report.grid`), which escapes them and fits the table to the width.
Every column elides rather than wraps, so a row of the result stays one line; numbers
are right-aligned and never cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa

from auditor.report.grid import Column, grid_lines
from auditor.traffic import with_micros

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
    return "".join(lines(table, width))


#: rows of the result made Python values at a time
SLICE_ROWS = 1024


def lines(table: pa.Table, width: int) -> Iterator[str]:
    """:func:`render` a line at a time (each ending in a newline), the rows read a slice
    at a time: a result of millions of rows is never held as Python values."""
    columns = [_column(f.name, f.type) for f in table.schema]

    def rows() -> Iterator[list[str]]:
        for start in range(0, table.num_rows, SLICE_ROWS):
            for row in with_micros(table.slice(start, SLICE_ROWS)).to_pylist():
                yield [_cell(v) for v in row.values()]

    for line in grid_lines(columns, rows, width):
        yield line + "\n"
    yield f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})\n"
