"""``pcap-audit rulesets``: list the built-in rulesets, show one, validate a ruleset file.

Thin: each command calls one function of :mod:`auditor.rules` and renders the result.
``show --format json`` prints :meth:`Ruleset.to_json`, the documented contract.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import click

from auditor.cli.common import handle_errors
from auditor.errors import ExitCode
from auditor.escape import json_text, printable
from auditor.rules import Ruleset, builtin_rulesets, check_ruleset, load_ruleset
from auditor.rules.yamlmarks import display_path

FORMATS = ("table", "json")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    rows = [[printable(cell) for cell in row] for row in rows]  # a user's ruleset: any text
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return [line.rstrip() for line in lines]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _show_text(rs: Ruleset) -> str:
    out = [f"{rs.name}: {rs.title}"]
    if rs.description:
        out.append(rs.description)
    out.append("")
    out.append("Source documents:")
    for doc in rs.documents:
        out.append(f"  {doc.file}" + (f"  {doc.title}" if doc.title else ""))
    for note in rs.notes:
        out.append(f"Note: {note}")
    out.append("")
    out.append(f"Roles ({len(rs.roles)}):")
    out += [
        "  " + line
        for line in _table(
            ("ID", "DESCRIPTION"),
            [
                (r.id, r.description + (f" (also {', '.join(r.implies)})" if r.implies else ""))
                for r in rs.roles
            ],
        )
    ]
    out.append("")
    out.append(f"Flows ({len(rs.flows)}):")
    rows = [
        (
            r.id,
            r.from_role,
            r.to_role,
            r.proto,
            r.port_text(),
            r.app,
            r.security,
            _yes(r.disk_transfer),
            _yes(r.expected),
            r.pair or "",
        )
        for r in rs.flows
    ]
    headers = ("ID", "FROM", "TO", "PROTO", "PORTS", "APP", "SECURITY", "DISK", "EXPECTED", "PAIR")
    out += ["  " + line for line in _table(headers, rows)]
    local = [r for r in rs.flows if r.scope == "local"]
    if local:
        out.append("")
        out.append(f"Scope local (only within the host): {', '.join(r.id for r in local)}")
    out.append("")
    out.append(f"TLS policy: {rs.min_tls} or later")
    if rs.denies:
        out.append("")
        out.append(f"Deny ({len(rs.denies)}):")
        deny_rows = [
            (d.id, d.describe(), f'{d.source.document}: "{d.source.text}"') for d in rs.denies
        ]
        out += ["  " + line for line in _table(("ID", "FORBIDS", "SOURCE"), deny_rows)]
    return "\n".join(printable(line) for line in out)


@click.group("rulesets")
def command() -> None:
    """List, show and validate rulesets (built-in names or your own YAML files).

    Example:

        pcap-audit rulesets show applayering --format json
    """


@command.command("list")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@handle_errors
def list_command(fmt: str) -> None:
    """List the built-in rulesets with their titles and sizes.

    Example:

        pcap-audit rulesets list --format json
    """
    rulesets = [load_ruleset(name) for name in builtin_rulesets()]
    if fmt == "json":
        doc = [
            {
                "name": rs.name,
                "title": rs.title,
                "roles": len(rs.roles),
                "flows": len(rs.flows),
                "source_documents": list(rs.source_documents),
                "path": str(rs.path),
            }
            for rs in rulesets
        ]
        click.echo(json_text(json.dumps(doc, indent=2, ensure_ascii=False)))
        return
    rows = [(rs.name, str(len(rs.roles)), str(len(rs.flows)), rs.title) for rs in rulesets]
    click.echo("\n".join(_table(("NAME", "ROLES", "FLOWS", "TITLE"), rows)))


@command.command("show")
@click.argument("ruleset")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@handle_errors
def show_command(ruleset: str, fmt: str) -> None:
    """Show RULESET (a built-in name or a path): its roles and flows.

    The JSON form is a stable contract (docs/rulesets.md): name, title, roles, flows with
    from, to, proto, ports, port_ranges, app, security, disk_transfer, expected, source.

    Example:

        pcap-audit rulesets show tas-diego --format json
    """
    rs = load_ruleset(ruleset)
    if fmt == "json":
        click.echo(json_text(json.dumps(rs.to_json(), indent=2, ensure_ascii=False)))
    else:
        click.echo(_show_text(rs))


@command.command("validate")
@click.argument("ruleset")
@handle_errors
def validate_command(ruleset: str) -> None:
    """Check RULESET (a path or built-in name) and report every problem with its line.

    Exit code 2 when there is an error (each printed on stderr as FILE:LINE: KEY: what was
    expected); 0 and a one-line summary on stdout otherwise. Warnings do not fail.

    Example:

        pcap-audit rulesets validate my-vendor.yaml
    """
    result = check_ruleset(ruleset)
    for problem in result.problems:
        click.echo(printable(problem.one_line()), err=True)
    shown = display_path(result.path)
    errors = result.errors
    if errors or result.ruleset is None:
        click.echo(
            f"pcap-audit: {printable(shown)}: {len(errors)} error{'s' if len(errors) != 1 else ''}",
            err=True,
        )
        sys.exit(int(ExitCode.USAGE))
    rs = result.ruleset
    warnings = len(result.warnings)
    ports = sum(len(r.spans()) for r in rs.flows)
    click.echo(
        f"OK {printable(shown)}: ruleset '{rs.name}', {len(rs.roles)} roles, {len(rs.flows)} rules "
        f"({ports} port entries), {warnings} warning{'s' if warnings != 1 else ''}"
    )
