"""``pcap-audit CAPTURE... --ruleset NAME``: the audit (also ``pcap-audit audit ...``)."""

from __future__ import annotations

import sys

import click

from auditor.cli.common import (
    captures_argument,
    emit,
    handle_errors,
    inventory_option,
    ruleset_option,
)
from auditor.findings.engine import SEVERITIES, audit
from auditor.report import FORMATS, render
from auditor.rules import load_inventory, load_ruleset
from auditor.rules.model import TLS_VERSIONS


def _tls_version(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``TLS 1.2``, ``tls1.2`` or ``1.2`` -> ``TLS 1.2``."""
    if value is None:
        return None
    key = value.strip().lower().replace(" ", "").replace("v", "")
    for version in TLS_VERSIONS:
        name = version.lower().replace(" ", "")
        if key in (name, name.removeprefix("tls")):
            return version
    raise click.BadParameter(
        f"expected one of {', '.join(TLS_VERSIONS)} (or 1.0-1.3), got {value!r}"
    )


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
    "--min-tls",
    callback=_tls_version,
    metavar="VERSION",
    help="Minimum TLS version (e.g. 1.2, 'TLS 1.3'), replacing the ruleset's policy "
    "(default TLS 1.2); a rule's own minimum still applies.",
)
@handle_errors
def command(
    captures: tuple[str, ...],
    ruleset_name: str,
    inventory: str | None,
    fmt: str,
    output: str | None,
    fail_on: str,
    min_tls: str | None,
) -> None:
    """Audit CAPTURE files or directories against a ruleset; all captures form one traffic set.

    Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it,
    2 usage/ruleset/inventory error, 3 a capture could not be read (the rest is still audited).

    Example:

        pcap-audit night.pcapng --ruleset applayering --inventory hosts.yaml --format sarif -o audit.sarif
    """
    ruleset = load_ruleset(ruleset_name)
    inv = load_inventory(inventory, ruleset) if inventory else None
    progress = (lambda p: click.echo(f"reading {p}", err=True)) if sys.stderr.isatty() else None
    result = audit(captures, ruleset, inv, fail_on=fail_on, progress=progress, min_tls=min_tls)
    for err in result.errors:
        click.echo(f"pcap-audit: {err}", err=True)
    color = fmt == "table" and output is None and sys.stdout.isatty()
    text = render(result.document, fmt, color=color)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        emit(text)
    sys.exit(int(result.exit_code))
