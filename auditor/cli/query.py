"""``pcap-audit query SQL CAPTURE...``: SQL over the flows, captures, findings and roles."""

from __future__ import annotations

import csv
import io
import sys
from datetime import datetime
from typing import Any

import click
import pyarrow as pa

from auditor.cli.common import emit, fail, handle_errors, warn
from auditor.cli.filters import filter_options, packet_filter
from auditor.cli.output import output_file
from auditor.errors import ExitCode
from auditor.escape import printable
from auditor.report.json_ import render as json_text

FORMATS = ("table", "json", "csv", "parquet")


@click.command("query")
@click.argument("sql", metavar="SQL")
@click.argument("captures", nargs=-1, required=True, type=click.Path())
@click.option("-r", "--ruleset", "ruleset_name", metavar="NAME|PATH",
              help="Audit with this ruleset: makes the findings and roles views.")  # fmt: skip
@click.option("-i", "--inventory", type=click.Path(dir_okay=False), metavar="FILE",
              help="Inventory for --ruleset.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@filter_options
@handle_errors
def command(
    sql: str,
    captures: tuple[str, ...],
    ruleset_name: str | None,
    inventory: str | None,
    fmt: str,
    output: str | None,
    **filters: Any,
) -> None:
    """Run SQL (DuckDB) over the views flows, captures, findings and roles of CAPTURE files.

    findings and roles need --ruleset (and take --inventory). The views' columns are in the
    README ("pcap-audit query"). Exit 2 when the SQL does not run, 4 when a capture could
    not be read whole (the others are still queried).

    Example:

        pcap-audit query "SELECT dst_port, count(*) AS n FROM flows GROUP BY 1 ORDER BY n DESC" night.pcapng
    """
    from auditor import query

    if fmt == "parquet" and output is None and sys.stdout.isatty():
        fail("--format parquet writes binary: give -o FILE", ExitCode.USAGE)
    select = packet_filter(**filters)
    views: dict[str, pa.Table] = {}
    ruleset = inv = None
    if ruleset_name:
        from auditor.rules import load_inventory, load_ruleset

        ruleset = load_ruleset(ruleset_name)
        inv = load_inventory(inventory, ruleset) if inventory else None
    inputs = [*captures, ruleset.path if ruleset else None, inventory]
    with output_file(output, inputs) as out:
        if ruleset is not None:
            from auditor.findings.engine import audit

            result = audit(captures, ruleset, inv, fail_on="never", select=select)
            traffic = result.traffic
            views["findings"] = query.findings_view(result.result)
            views["roles"] = query.roles_view(result.result)
        else:
            from auditor.traffic import read_traffic

            traffic = read_traffic(captures, select=select)
        for note in traffic.notes:
            warn(note)
        views["flows"] = query.flows_view(traffic)
        views["captures"] = query.captures_view(traffic)
        table = query.run_query(sql, views)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, out.stream if out is not None else sys.stdout.buffer)
        elif out is not None:
            out.write_text(_render(table, fmt))
        else:
            emit(_render(table, fmt))
    if not traffic.complete:
        sys.exit(int(ExitCode.CAPTURE))


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.hex()
    return v


def _csv_cell(value: Any) -> Any:
    """Wire content escaped, and no cell a spreadsheet would run as a formula."""
    if isinstance(value, list):
        value = ";".join(map(str, value))
    if isinstance(value, str):
        return printable(value, keep_newlines=True, spreadsheet=True)
    return value


def _render(table: pa.Table, fmt: str) -> str:
    from auditor.query import table_text

    if fmt == "table":
        return table_text(table)
    rows = [{k: _plain(v) for k, v in r.items()} for r in table.to_pylist()]
    if fmt == "json":
        return json_text({"columns": table.column_names, "rows": rows})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.column_names)
    for r in rows:
        w.writerow([_csv_cell(v) for v in r.values()])
    return buf.getvalue()
