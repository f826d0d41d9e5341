"""``pcap-audit rulesets``: list the built-in rulesets, show one, validate a ruleset file.

Thin: each command calls one function of :mod:`auditor.rules` and renders the result
(the tables: :mod:`auditor.report.ruleset_table`, fitted to :func:`table_width`).
``show --format json`` prints :meth:`Ruleset.to_json`, the documented contract.
"""

from __future__ import annotations

import json
import sys

import click

from auditor.cli.common import handle_errors
from auditor.cli.width import table_width
from auditor.errors import ExitCode
from auditor.escape import json_text, printable
from auditor.rules import builtin_rulesets, check_ruleset, load_ruleset
from auditor.rules.yamlmarks import display_path

FORMATS = ("table", "json")


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
    from auditor.report.ruleset_table import render_list

    click.echo(render_list(rulesets, table_width()), nl=False)


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
        from auditor.report.ruleset_table import render_show

        click.echo(render_show(rs, table_width()), nl=False)


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
