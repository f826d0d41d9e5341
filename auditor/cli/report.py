"""``pcap-audit report AUDIT.json``: a saved audit rendered again, without the captures."""

from __future__ import annotations

import sys

import click

from auditor.cli.common import handle_errors, note, store_option, write_or_emit
from auditor.cli.width import table_width
from auditor.report import FORMATS as AUDIT_FORMATS

FORMATS = (*AUDIT_FORMATS, "summary")


@click.command("report")
@click.argument("document", type=click.Path(dir_okay=False), metavar="AUDIT.json")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@store_option
@click.option(
    "--baseline",
    metavar="ID|FILE",
    help="summary: what is new since this run of --store, or this saved audit document.",
)
@handle_errors
def command(
    document: str, fmt: str, output: str | None, store: str | None, baseline: str | None
) -> None:
    """Render a saved audit (--format json output) again in another format.

    --format summary is ten lines at most, for mail or chat: counts by severity, what is
    new since the baseline (with --store: the run before this one; or --baseline ID of a
    run of the store, or --baseline FILE, an older saved audit), and the top findings.

    Example:

        pcap-audit report night.json --format summary --store nightly.duckdb
    """
    from auditor.report import render
    from auditor.report import summary as summary_text
    from auditor.store.documents import load_document

    doc = load_document(document)
    if fmt != "summary":
        if store or baseline:
            raise click.UsageError("--store and --baseline apply to --format summary only")
        color = fmt == "table" and output is None and sys.stdout.isatty()
        write_or_emit(render(doc, fmt, color=color, width=table_width(output is None)), output)
        return
    diff = None
    if store:
        from auditor.store.diff import diff_for_document

        if baseline is not None and not baseline.isdigit():
            raise click.UsageError("with --store, --baseline is a run id")
        diff = diff_for_document(store, doc, int(baseline) if baseline else None, note)
    elif baseline:
        from auditor.store.diff import Side, compare, document_flows
        from auditor.store.documents import load_document as load

        before = load(baseline)
        diff = compare(
            Side(file=document),
            Side(file=baseline),
            doc["findings"],
            before["findings"],
            document_flows(doc),
            document_flows(before),
        )
    write_or_emit(summary_text.render(doc, diff), output)
