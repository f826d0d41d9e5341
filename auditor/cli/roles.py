"""``pcap-audit roles``: which host holds which role, and why."""

from __future__ import annotations

import io
import sys
from typing import Any

import click

from auditor.capture.select import PacketFilter
from auditor.cli.common import (
    captures_argument,
    duckdb_options,
    emit,
    handle_errors,
    inventory_option,
    quiet_option,
    ruleset_option,
    warn,
)
from auditor.cli.filters import filter_options, packet_filter
from auditor.cli.output import Output, output_file
from auditor.cli.progress import progress_for
from auditor.cli.width import table_width
from auditor.errors import ExitCode
from auditor.flows import public_flows
from auditor.roles import resolve_roles
from auditor.rules import Inventory, Ruleset, dump_inventory, load_inventory, load_ruleset
from auditor.traffic import Traffic, read_traffic


@click.command("roles")
@captures_argument
@ruleset_option
@inventory_option("Show the inventory's placement instead of inferring.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "inventory"]),
    default="table",
    show_default=True,
    help="'inventory' writes an inventory YAML file to correct and reuse.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@duckdb_options
@quiet_option
@filter_options
@handle_errors
def command(
    captures: tuple[str, ...],
    ruleset_name: str,
    inventory: str | None,
    fmt: str,
    output: str | None,
    quiet: bool,
    **filters: Any,
) -> None:
    """Show the roles of the hosts in CAPTURE files, inferred from the traffic (or an inventory).

    Example:

        pcap-audit roles night.pcap --ruleset applayering --format inventory -o hosts.yaml
    """
    ruleset = load_ruleset(ruleset_name)
    inv = load_inventory(inventory, ruleset) if inventory else None
    select = packet_filter(**filters)
    with output_file(output, [*captures, ruleset.path, inventory]) as out:
        traffic = _roles_report(captures, ruleset, inv, fmt, out, select, quiet)
    if not traffic.complete:
        sys.exit(int(ExitCode.CAPTURE))


def _roles_report(
    captures: tuple[str, ...],
    ruleset: Ruleset,
    inv: Inventory | None,
    fmt: str,
    out: Output | None,
    select: PacketFilter | None,
    quiet: bool = False,
) -> Traffic:
    progress = progress_for(sys.stderr, quiet)
    traffic = read_traffic(captures, select=select, progress=progress)
    if progress:
        progress.clear()
    for note in traffic.notes:
        warn(note)
    assert traffic.flows is not None
    roles = resolve_roles(ruleset, public_flows(traffic.flows), inv)
    if fmt == "json":
        from auditor.report.roles_table import render_json

        text = render_json(ruleset.name, roles.entries())
    elif fmt == "inventory":
        mapping: dict[str, list[str]] = {}
        why: dict[tuple[str, str], str] = {}
        for h in roles.hosts:
            for r in h.roles:
                mapping.setdefault(r, []).append(h.ip)
                first = next((e for e in h.evidence if e.startswith(f"{r}: ")), "")
                why[(r, h.ip)] = f"{h.source}, confidence {h.confidence:.2f}" + (
                    f"; {first.split(': ', 1)[1]}" if first else ""
                )
        buf = io.StringIO()
        dump_inventory(mapping, buf, ruleset=ruleset, entry_comments=why)
        text = buf.getvalue()
    else:
        from auditor.report.roles_table import render as table_text

        text = table_text(roles.hosts, table_width(to_stdout=out is None))
    if out is not None:
        out.write_text(text)
    else:
        emit(text)
    return traffic
