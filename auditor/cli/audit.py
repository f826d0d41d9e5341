"""``pcap-audit CAPTURE... --ruleset NAME``: the audit (also ``pcap-audit audit ...``)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from auditor.cli.common import (
    captures_argument,
    check_store,
    emit,
    handle_errors,
    inventory_option,
    record_in_store,
    ruleset_option,
    waiver_warnings,
)
from auditor.findings.engine import SEVERITIES, audit
from auditor.findings.waivers import load_waivers
from auditor.report import FORMATS, render
from auditor.rules import load_inventory, load_ruleset


@click.command("audit")
@captures_argument
@ruleset_option
@inventory_option("Roles -> hosts (YAML). Without it, roles are inferred from the traffic.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option(
    "--fail-on",
    type=click.Choice([*SEVERITIES, "never"]),
    default="medium",
    show_default=True,
    help="Exit 1 when a finding is at or above this severity.",
)
@click.option(
    "--store",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Record the run in this store (a DuckDB file, created if absent).",
)
@click.option(
    "--waivers",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Waived findings (YAML): shown with their reason, not counted for the exit code.",
)
@handle_errors
def command(
    captures: tuple[str, ...],
    ruleset_name: str,
    inventory: str | None,
    fmt: str,
    output: str | None,
    fail_on: str,
    store: str | None,
    waivers: str | None,
) -> None:
    """Audit CAPTURE files or directories against a ruleset; all captures form one traffic set.

    Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it,
    2 usage/ruleset/inventory error, 3 a capture could not be read (the rest is still audited).

    A directory holding a Zeek conn.log (with ssl.log, http.log) is read as Zeek logs.
    --store PATH records the run (captures with their hashes, findings, flows) for
    'pcap-audit history' and 'pcap-audit diff'; --waivers FILE marks accepted findings.

    Example:

        pcap-audit night.pcapng --ruleset applayering --inventory hosts.yaml --format sarif -o audit.sarif
    """
    started = datetime.now(UTC)
    ruleset = load_ruleset(ruleset_name)
    inv = load_inventory(inventory, ruleset) if inventory else None
    waiver_set = load_waivers(waivers) if waivers else None
    if store:
        check_store(store)
    progress = (lambda p: click.echo(f"reading {p}", err=True)) if sys.stderr.isatty() else None
    result = audit(captures, ruleset, inv, fail_on=fail_on, progress=progress, waivers=waiver_set)
    for err in result.errors:
        click.echo(f"pcap-audit: {err}", err=True)
    if waiver_set is not None:
        for line in waiver_warnings(result.document):
            click.echo(f"pcap-audit: {line}", err=True)
    color = fmt == "table" and output is None and sys.stdout.isatty()
    text = render(result.document, fmt, color=color)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        emit(text)
    if store:
        record_in_store(store, result, started, inventory, waivers)
    sys.exit(int(result.exit_code))
