"""``pcap-audit CAPTURE... --ruleset NAME``: the audit (also ``pcap-audit audit ...``)."""

from __future__ import annotations

import sys

import click

from auditor.cli.common import (
    captures_argument,
    duckdb_options,
    emit,
    handle_errors,
    inventory_option,
    ruleset_option,
    warn,
)
from auditor.cli.output import Output, output_file
from auditor.escape import printable
from auditor.findings.engine import SEVERITIES, AuditResult, audit
from auditor.report import FORMATS, render
from auditor.rules import Inventory, Ruleset, load_inventory, load_ruleset


@click.command("audit")
@captures_argument
@ruleset_option
@inventory_option("Roles -> hosts (YAML). Without it, roles are inferred from the traffic.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@duckdb_options
@click.option(
    "--fail-on",
    type=click.Choice([*SEVERITIES, "never"]),
    default="medium",
    show_default=True,
    help="Exit 1 when a finding is at or above this severity.",
)
@handle_errors
def command(
    captures: tuple[str, ...],
    ruleset_name: str,
    inventory: str | None,
    fmt: str,
    output: str | None,
    fail_on: str,
) -> None:
    """Audit CAPTURE files or directories against a ruleset; all captures form one traffic set.

    Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it,
    2 usage/ruleset/inventory error, 3 a capture could not be read (the rest is still audited).

    Example:

        pcap-audit night.pcapng --ruleset applayering --inventory hosts.yaml --format sarif -o audit.sarif
    """
    ruleset = load_ruleset(ruleset_name)
    inv = load_inventory(inventory, ruleset) if inventory else None
    with output_file(output, [*captures, ruleset.path, inventory]) as out:
        result = _audit_and_render(captures, ruleset, inv, fmt, fail_on, out)
    sys.exit(int(result.exit_code))


def _audit_and_render(
    captures: tuple[str, ...],
    ruleset: Ruleset,
    inv: Inventory | None,
    fmt: str,
    fail_on: str,
    out: Output | None,
) -> AuditResult:
    progress = (
        (lambda p: click.echo(f"reading {printable(p)}", err=True)) if sys.stderr.isatty() else None
    )
    result = audit(captures, ruleset, inv, fail_on=fail_on, progress=progress)
    for err in result.errors:
        warn(str(err))
    color = fmt == "table" and out is None and sys.stdout.isatty()
    text = render(result.document, fmt, color=color)
    if out is not None:
        out.write_text(text)
    else:
        emit(text)
    return result
