"""``pcap-audit diff``: what changed between two runs of a store, or two saved audits."""

from __future__ import annotations

import sys

import click

from auditor.cli.common import handle_errors, note, store_option, write_or_emit
from auditor.rules.model import SEVERITIES

FORMATS = ("table", "json", "markdown")


@click.command("diff")
@click.argument(
    "documents", nargs=-1, type=click.Path(dir_okay=False), metavar="[OLD.json NEW.json]"
)
@store_option
@click.option(
    "--run", "run_id", type=int, metavar="ID", help="The run to look at (default: the latest)."
)
@click.option(
    "--baseline",
    type=int,
    metavar="ID",
    help="The run to compare with (default: the run before, skipping incomplete ones).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option(
    "--fail-on",
    type=click.Choice([*SEVERITIES, "never"]),
    default="medium",
    show_default=True,
    help="Exit 1 when a new finding (not waived) is at or above this severity.",
)
@handle_errors
def command(
    documents: tuple[str, ...],
    store: str | None,
    run_id: int | None,
    baseline: int | None,
    fmt: str,
    output: str | None,
    fail_on: str,
) -> None:
    """Show new and resolved findings (by id) and new and gone flows since a baseline.

    With --store: run --run (default the latest) against --baseline (default the run
    before it). With two saved audit documents (--format json output): NEW.json against
    OLD.json; their flows are compared by observed role pair. Exit code 1 when there is a
    new finding at or above --fail-on that no waiver covers.

    Example:

        pcap-audit diff --store nightly.duckdb --fail-on high --format markdown

        pcap-audit diff monday.json tuesday.json
    """
    from auditor.report.diff import render
    from auditor.store.diff import diff_documents, diff_runs

    if documents:
        if len(documents) != 2:
            raise click.UsageError("give two saved audit documents (OLD.json NEW.json), or --store")
        if store or run_id is not None or baseline is not None:
            raise click.UsageError("--store, --run and --baseline do not apply to two documents")
        diff = diff_documents(documents[0], documents[1])
    elif store:
        diff = diff_runs(store, run_id, baseline, notify=note)
    else:
        raise click.UsageError("give --store PATH, or two saved audit documents")
    if diff.flows_note:
        note(diff.flows_note)
    write_or_emit(render(diff, fmt), output)
    sys.exit(int(diff.exit_code(fail_on)))
