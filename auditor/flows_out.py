"""Writers for the flow table: JSON (the contract), CSV, Parquet and a terminal table.

JSON contract (README, "pcap-audit flows"): ``{"captures": [...], "flows": [...]}`` with
timestamps in ISO 8601 UTC and IPv6 in compressed form. The internal byte columns
(``*_ip_bytes``) never leave the process. The table and the CSV show what came off the wire
(HTTP Host, SNI, banners, DNS answers) through :func:`auditor.escape.printable`: escaped
control characters, and no cell a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import IO, Any

import pyarrow as pa

from auditor.escape import csv_cell, unchanged_cells
from auditor.flows import public_flows
from auditor.report.json_ import render_listing
from auditor.traffic import Traffic, iso_column

FORMATS = ("table", "json", "csv", "parquet")
__all__ = [
    "FORMATS",
    "flow_records",
    "flows_json",
    "public_flows",
    "record_batches",
    "write_flows",
]


#: rows turned into Python objects at a time: a flow table of millions of rows (on disk when
#: it was spilled) is written a slice at a time, never held as dicts
BATCH_ROWS = 1024


def slices(table: pa.Table) -> Iterator[pa.Table]:
    """``table`` in slices of at most BATCH_ROWS rows (views, no copy): what every format
    turns into Python values at a time."""
    for start in range(0, table.num_rows, BATCH_ROWS):
        yield table.slice(start, BATCH_ROWS)


def flow_records(table: pa.Table) -> list[dict[str, Any]]:
    """Flow rows as JSON-ready dicts (timestamps as ISO strings)."""
    return [r for batch in record_batches(table) for r in batch]


def record_batches(
    table: pa.Table, columns: Sequence[str] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """:func:`flow_records` a slice of at most BATCH_ROWS rows at a time (of ``columns``
    only, when given)."""
    t = public_flows(table)
    if columns is not None:
        keep = {*columns, "first_seen", "last_seen"}
        t = t.select([c for c in t.column_names if c in keep])
    for part in slices(t):
        first = iso_column(part.column("first_seen"))
        last = iso_column(part.column("last_seen"))
        rows = part.drop_columns(["first_seen", "last_seen"]).to_pylist()
        for row, f, la in zip(rows, first, last, strict=True):
            row["first_seen"] = f
            row["last_seen"] = la
        yield rows


def flows_json(traffic: Traffic) -> dict[str, Any]:
    assert traffic.flows is not None
    return {
        "captures": [c.to_json() for c in traffic.captures],
        "flows": flow_records(traffic.flows),
    }


def write_flows(traffic: Traffic, fmt: str, out: IO[bytes], *, width: int = 100) -> None:
    """Write the flows in ``fmt`` to a binary stream; the table at most ``width`` columns.

    Every format is written a slice of the table at a time (memory holds a slice, whatever
    the number of flows); the text is what rendering the whole at once gives."""
    assert traffic.flows is not None
    if fmt == "parquet":
        import pyarrow.parquet as pq  # here: its import costs every other command 15 ms

        pq.write_table(public_flows(traffic.flows), out)
        return
    if fmt == "json":  # one flow per line, like the audit's findings
        chunks = _json(traffic)
    elif fmt == "csv":
        chunks = _csv(traffic.flows)
    else:
        from auditor.report.flows_table import FIELDS, lines

        table = traffic.flows
        chunks = (line + "\n" for line in lines(lambda: record_batches(table, FIELDS), width))
    for chunk in chunks:
        out.write(chunk.encode("utf-8"))


def _json(traffic: Traffic) -> Iterator[str]:
    """The flows document as :func:`auditor.report.json_.render` lays it out, written a
    slice at a time: the captures, then each flow on a line of its own."""
    assert traffic.flows is not None
    head = {"captures": [c.to_json() for c in traffic.captures]}
    return render_listing(head, "flows", record_batches(traffic.flows))


def _csv(table: pa.Table) -> Iterator[str]:
    """The CSV of :func:`flow_records` (a header of their keys, a row each), a slice at a
    time and a column at a time: numbers and flags go to the writer as they are, and only
    the columns that can hold text (strings, lists) pass through :func:`csv_cell`."""
    t = public_flows(table)
    if t.num_rows == 0:
        return
    times = ("first_seen", "last_seen")
    names = [c for c in t.column_names if c not in times] + list(times)
    plain = {
        name
        for name in names
        if name not in times
        and (
            pa.types.is_integer(t.schema.field(name).type)
            or pa.types.is_floating(t.schema.field(name).type)
            or pa.types.is_boolean(t.schema.field(name).type)
        )
    }
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    for part in slices(t):
        columns: list[list[Any]] = []
        for name in names:
            column = part.column(name)
            values: list[Any]
            if name in times:
                values = iso_column(column)
            elif name in plain or column.null_count == len(column):
                values = column.to_pylist()  # as they are: numbers, flags, all None
            else:
                values = column.to_pylist()
                texts = [v for v in values if v is not None]
                if not all(type(v) is str for v in texts) or not unchanged_cells(texts):
                    values = [csv_cell(v) for v in values]
            columns.append(values)
        w.writerows(zip(*columns, strict=True))
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
