"""``pcap-audit query SQL CAPTURE...``: SQL over the flows, captures, findings and roles;
``pcap-audit query SQL --store PATH``: over the runs, findings, captures and flows of a store."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import click
import pyarrow as pa

from auditor.cli.common import emit, fail, handle_errors, note, quiet_option, warn
from auditor.cli.filters import filter_options, packet_filter
from auditor.cli.output import Output, output_file
from auditor.cli.progress import progress_for
from auditor.cli.width import table_width
from auditor.errors import ExitCode
from auditor.escape import csv_cell
from auditor.report.json_ import render_listing
from auditor.traffic import with_micros

FORMATS = ("table", "json", "csv", "parquet")


@click.command("query")
@click.argument("sql", metavar="SQL")
@click.argument("captures", nargs=-1, type=click.Path())
@click.option("--store", type=click.Path(), metavar="PATH",
              help="Query this store of runs (read-only), not captures.")  # fmt: skip
@click.option("-r", "--ruleset", "ruleset_name", metavar="NAME|PATH",
              help="Audit with this ruleset: makes the findings and roles views.")  # fmt: skip
@click.option("-i", "--inventory", type=click.Path(dir_okay=False), metavar="FILE",
              help="Inventory for --ruleset.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@quiet_option
@filter_options
@handle_errors
def command(
    sql: str,
    captures: tuple[str, ...],
    store: str | None,
    ruleset_name: str | None,
    inventory: str | None,
    fmt: str,
    output: str | None,
    quiet: bool,
    **filters: Any,
) -> None:
    """Run SQL (DuckDB) over the views flows, captures, findings and roles of CAPTURE files,
    or over the views runs, findings, captures and flows of a store (--store PATH).

    findings and roles need --ruleset (and take --inventory). A store is opened read-only
    and only queries run over it. The views' columns are in the README ("pcap-audit
    query"). Exit 2 when the SQL does not run or the store is not one, 4 when a capture
    could not be read whole (the others are still queried).

    Example:

        pcap-audit query "SELECT dst_port, count(*) AS n FROM flows GROUP BY 1 ORDER BY n DESC" night.pcapng

        pcap-audit query "SELECT run_id, count(*) AS n FROM findings GROUP BY 1" --store nightly.duckdb
    """
    from auditor import query

    if fmt == "parquet" and output is None and sys.stdout.isatty():
        fail("--format parquet writes binary: give -o FILE", ExitCode.USAGE)
    if store is not None:
        if captures:
            fail("query: give CAPTURE... or --store PATH, not both", ExitCode.USAGE)
        options = {"--ruleset": ruleset_name, "--inventory": inventory, "--since": filters["since"],
                   "--until": filters["until"], "--host": filters["hosts"],
                   "--port": filters["ports"], "--filter": filters["bpf"]}  # fmt: skip
        given = [name for name, value in options.items() if value]
        if given:
            fail(f"query: {', '.join(given)}: for captures, not --store (a store holds "
                 "audited runs: select them with WHERE)", ExitCode.USAGE)  # fmt: skip
        with output_file(output, [store]) as out:
            _write(query.query_store(sql, store, notify=note), fmt, out)
        return
    if not captures:
        fail("query: give CAPTURE... (capture files to query) or --store PATH", ExitCode.USAGE)
    from auditor.store.db import is_duckdb_file

    for capture in captures:
        if is_duckdb_file(capture):
            fail(f"{capture}: a DuckDB file, not a capture: a store is queried with --store "
                 f"{capture}", ExitCode.USAGE)  # fmt: skip
    select = packet_filter(**filters)
    views: dict[str, pa.Table] = {}
    ruleset = inv = None
    if ruleset_name:
        from auditor.rules import load_inventory, load_ruleset

        ruleset = load_ruleset(ruleset_name)
        inv = load_inventory(inventory, ruleset) if inventory else None
    inputs = [*captures, ruleset.path if ruleset else None, inventory]
    with output_file(output, inputs) as out:
        progress = progress_for(sys.stderr, quiet)
        if ruleset is not None:
            from auditor.findings.engine import audit

            result = audit(
                captures, ruleset, inv, fail_on="never", select=select, progress=progress
            )
            traffic = result.traffic
            views["findings"] = query.findings_view(result.result)
            views["roles"] = query.roles_view(result.result)
        else:
            from auditor.traffic import read_traffic

            traffic = read_traffic(captures, select=select, progress=progress)
        if progress:
            progress.clear()
        for line in traffic.notes:
            warn(line)
        views["flows"] = query.flows_view(traffic)
        views["captures"] = query.captures_view(traffic)
        _write(query.run_query(sql, views), fmt, out)
    if not traffic.complete:
        sys.exit(int(ExitCode.CAPTURE))


def _write(table: pa.Table, fmt: str, out: Output | None) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out.stream if out is not None else sys.stdout.buffer)
        return
    for chunk in _chunks(table, fmt, table_width(to_stdout=out is None)):
        if out is not None:
            out.write_text(chunk)
        else:
            emit(chunk)


def _plain(v: Any) -> Any:
    """A value of the result as JSON has it: DuckDB's sums of integers are HUGEINT, which
    Arrow hands over as Decimal; dates, times and durations as ISO text or seconds."""
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, date | time):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, UUID):
        return str(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.hex()
    return v


#: rows of the result made Python values at a time (a result may have millions)
SLICE_ROWS = 1024


def _rows(table: pa.Table) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, table.num_rows, SLICE_ROWS):
        part = with_micros(table.slice(start, SLICE_ROWS)).to_pylist()
        yield [{k: _plain(v) for k, v in r.items()} for r in part]


def _chunks(table: pa.Table, fmt: str, width: int) -> Iterator[str]:
    """The result in ``fmt`` (table, json, csv), a slice of rows at a time."""
    if fmt == "table":
        from auditor.report.query_table import lines

        yield from lines(table, width)
    elif fmt == "json":
        yield from render_listing({"columns": table.column_names}, "rows", _rows(table))
    else:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(table.column_names)
        for rows in _rows(table):
            for r in rows:
                w.writerow([csv_cell(v) for v in r.values()])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        yield buf.getvalue()
