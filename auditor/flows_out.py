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
from typing import IO, Any

import pyarrow as pa

from auditor.escape import printable
from auditor.flows import public_flows
from auditor.report.json_ import render as json_text
from auditor.traffic import Traffic, iso

FORMATS = ("table", "json", "csv", "parquet")
__all__ = ["FORMATS", "flow_records", "flows_json", "public_flows", "write_flows"]


def flow_records(table: pa.Table) -> list[dict[str, Any]]:
    """Flow rows as JSON-ready dicts (timestamps as ISO strings)."""
    t = public_flows(table)
    first = t.column("first_seen").cast(pa.int64()).to_pylist()
    last = t.column("last_seen").cast(pa.int64()).to_pylist()
    rows = t.drop_columns(["first_seen", "last_seen"]).to_pylist()
    out = []
    for row, f, la in zip(rows, first, last, strict=True):
        row["first_seen"] = iso(f)
        row["last_seen"] = iso(la)
        out.append(row)
    return out


def flows_json(traffic: Traffic) -> dict[str, Any]:
    assert traffic.flows is not None
    return {
        "captures": [c.to_json() for c in traffic.captures],
        "flows": flow_records(traffic.flows),
    }


def write_flows(traffic: Traffic, fmt: str, out: IO[bytes], *, width: int = 100) -> None:
    """Write the flows in ``fmt`` to a binary stream; the table at most ``width`` columns."""
    assert traffic.flows is not None
    if fmt == "parquet":
        import pyarrow.parquet as pq  # here: its import costs every other command 15 ms

        pq.write_table(public_flows(traffic.flows), out)
        return
    if fmt == "json":  # one flow per line, like the audit's findings
        text = json_text(flows_json(traffic))
    elif fmt == "csv":
        text = _csv(flow_records(traffic.flows))
    else:
        from auditor.report.flows_table import render as table_text

        text = table_text(flow_records(traffic.flows), width)
    out.write(text.encode("utf-8"))


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if not rows:
        return ""
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_cell(v) for k, v in r.items()})
    return buf.getvalue()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        value = ";".join(map(str, value))
    if isinstance(value, str):
        return printable(value, keep_newlines=True, spreadsheet=True)
    return value
