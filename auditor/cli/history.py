"""``pcap-audit history --store PATH``: the runs of a store, as a table, JSON or a page."""

from __future__ import annotations

import click

from auditor.cli.common import handle_errors, note, write_or_emit
from auditor.cli.width import table_width

FORMATS = ("table", "json", "html")


@click.command("history")
@click.option(
    "--store",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="The store of runs (a DuckDB file written by an audit with --store).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@handle_errors
def command(store: str, fmt: str, output: str | None) -> None:
    """List the runs recorded in a store: captures, packets, flows, findings by severity.

    --format json writes {"runs": [{"id", "started", "captures", "packets", "flows",
    "findings", "by_kind", "by_severity"}]}; --format html one self-contained page with
    charts of the findings by severity and by kind over the runs, and the latest run's
    new findings.

    Example:

        pcap-audit history --store nightly.duckdb --format html -o history.html
    """
    from auditor.report import history as render
    from auditor.store.diff import diff_runs
    from auditor.store.history import history

    runs = history(store, notify=note)
    if fmt == "json":
        text = render.render_json(runs)
    elif fmt == "html":
        latest = diff_runs(store, notify=note) if runs else None
        text = render.render_html(runs, store, latest)
    else:
        text = render.render_table(runs, table_width(output is None))
    write_or_emit(text, output)
