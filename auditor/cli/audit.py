"""``pcap-audit CAPTURE... --ruleset NAME``: the audit (also ``pcap-audit audit ...``)."""

from __future__ import annotations

import sys
from typing import Any

import click

from auditor.cli.common import (
    captures_argument,
    emit,
    handle_errors,
    inventory_option,
    ruleset_option,
)
from auditor.cli.filters import filter_options, packet_filter
from auditor.errors import ExitCode
from auditor.evidence.deep import deepen
from auditor.evidence.tshark import require_tshark
from auditor.findings.engine import SEVERITIES, audit
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
    "--deep",
    is_flag=True,
    help="Dissect the flows behind findings with tshark (pyshark) and attach what it "
    "reads, frame by frame. Needs tshark.",
)
@click.option(
    "--deep-limit",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    metavar="N",
    help="Flows dissected at most by --deep (most severe findings first).",
)
@filter_options
@handle_errors
def command(
    captures: tuple[str, ...],
    ruleset_name: str,
    inventory: str | None,
    fmt: str,
    output: str | None,
    fail_on: str,
    deep: bool,
    deep_limit: int,
    **filters: Any,
) -> None:
    """Audit CAPTURE files or directories against a ruleset; all captures form one traffic set.

    Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it,
    2 usage/ruleset/inventory error, 3 a capture could not be read (the rest is still audited).

    Example:

        pcap-audit night.pcapng --ruleset applayering --inventory hosts.yaml --format sarif -o audit.sarif
    """
    select = packet_filter(**filters)
    if deep:
        require_tshark("--deep")
    ruleset = load_ruleset(ruleset_name)
    inv = load_inventory(inventory, ruleset) if inventory else None
    progress = (lambda p: click.echo(f"reading {p}", err=True)) if sys.stderr.isatty() else None
    result = audit(captures, ruleset, inv, fail_on=fail_on, progress=progress, select=select)
    code = int(result.exit_code)
    if deep:
        summary = deepen(result.document, result.traffic, deep_limit)
        if summary.error:
            click.echo(f"pcap-audit: --deep: no evidence attached: {summary.error}", err=True)
            code |= int(ExitCode.CAPTURE)
    for err in result.errors:
        click.echo(f"pcap-audit: {err}", err=True)
    color = fmt == "table" and output is None and sys.stdout.isatty()
    text = render(result.document, fmt, color=color)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        emit(text)
    sys.exit(code)
