"""``pcap-audit show FLOW CAPTURE...``: a flow's packets with their frame numbers, and export."""

from __future__ import annotations

import sys
from typing import Any

import click

from auditor.cli.common import captures_argument, emit, handle_errors, warn
from auditor.cli.filters import filter_options, packet_filter
from auditor.cli.output import output_file
from auditor.errors import ExitCode
from auditor.escape import printable
from auditor.evidence.deep import summaries
from auditor.evidence.lookup import Located, locate
from auditor.evidence.packets import FlowRef, PacketLine
from auditor.evidence.packets import export_pcap as write_pcap
from auditor.evidence.tshark import require_tshark
from auditor.findings.model import Finding
from auditor.report.json_ import render as json_text


@click.command("show")
@click.argument("flow", metavar="FLOW")
@captures_argument
@click.option("--from", "from_json", type=click.Path(dir_okay=False), metavar="AUDIT.json",
              help="A saved audit (--format json) to look a finding id up in.")  # fmt: skip
@click.option("-r", "--ruleset", "ruleset_name", metavar="NAME|PATH",
              help="Audit the captures with this ruleset to look a finding id up.")  # fmt: skip
@click.option("-i", "--inventory", type=click.Path(dir_okay=False), metavar="FILE",
              help="Inventory for --ruleset.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
@click.option("--export-pcap", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write exactly these packets to a new pcap file.")  # fmt: skip
@click.option(
    "--deep",
    is_flag=True,
    help="Add tshark's Protocol and Info columns for each packet. Needs tshark.",
)
@filter_options
@handle_errors
def command(
    flow: str,
    captures: tuple[str, ...],
    from_json: str | None,
    ruleset_name: str | None,
    inventory: str | None,
    fmt: str,
    export_pcap: str | None,
    deep: bool,
    **filters: Any,
) -> None:
    """Show the packets of FLOW in CAPTURE files: one line each, with its frame number.

    FLOW is a flow id (F...), a Community ID (1:...) or a finding id; a finding id is looked
    up in a saved audit (--from AUDIT.json) or in an audit of the captures (--ruleset). Frame
    numbers are 1-based, as Wireshark numbers the packets of that file. The filters
    (--since, --host, --filter, ...) narrow the packets shown and exported, not the flow
    looked up: FLOW is found in the whole captures.

    Example:

        pcap-audit show PLA-2f95d12e4ab0 night.pcapng --from audit.json --export-pcap evidence.pcap
    """
    select = packet_filter(**filters)
    if deep:
        require_tshark("show --deep")
    ruleset = inv = None
    if ruleset_name and not from_json:
        from auditor.rules import load_inventory, load_ruleset

        ruleset = load_ruleset(ruleset_name)
        inv = load_inventory(inventory, ruleset) if inventory else None
    with output_file(export_pcap, [*captures, from_json, inventory]) as out:
        found = locate(flow, captures, from_json, ruleset, inv, select)
        for note in found.traffic.notes:
            warn(note)
        if found.missing and found.wanted.finding is None:
            warn(f"not in these captures: {' '.join(found.missing)}")
        cut = _listed_only(found.wanted.finding)
        if cut:
            warn(cut)
        emit(_render(found, fmt, deep))
        n = 0
        if out is not None:
            n = write_pcap(list(found.packets), out.name_to_write)
    if export_pcap:
        warn(f"wrote {n} packets to {export_pcap}")
    if not found.traffic.complete:
        sys.exit(int(ExitCode.CAPTURE))


def _listed_only(finding: Finding | None) -> str | None:
    """What to say when the finding lists only its first flows (queries.FLOW_IDS): their
    packets are all that is shown and exported, not the finding's whole traffic."""
    if finding is None or not finding.evidence.get("flow_ids_truncated"):
        return None
    total = finding.evidence.get("flows")
    of = f" of its {total:,}" if isinstance(total, int) else ""
    return (
        f"finding {finding.id} lists the first {len(finding.flow_ids):,}{of} flows "
        "(evidence.flow_ids_truncated): only their packets are shown and exported"
    )


def _render(found: Located, fmt: str, deep: bool) -> str:
    refs, packets, wanted = list(found.refs), list(found.packets), found.wanted
    tshark = summaries(packets) if deep else None
    if fmt != "json":
        return _table(refs, packets, tshark)
    return json_text(
        {
            "flows": [
                {
                    "flow_id": r.flow_id,
                    "community_id": r.community_id,
                    "proto": r.proto,
                    "src": r.src,
                    "dst": r.dst,
                }
                for r in refs
            ],
            "finding": wanted.finding.to_json() if wanted.finding is not None else None,
            "packets": [
                {**p.to_json(), **({"tshark": _tshark(tshark, i)} if tshark else {})}
                for i, p in enumerate(packets)
            ],
        }
    )


def _tshark(tshark: list[tuple[str, str]], i: int) -> dict[str, str]:
    return {"protocol": tshark[i][0], "info": tshark[i][1]}


def _table(
    refs: list[FlowRef], packets: list[PacketLine], tshark: list[tuple[str, str]] | None
) -> str:
    lines = []
    for r in refs:
        n = sum(1 for p in packets if p.flow_id == r.flow_id)
        lines.append(
            f"flow {r.flow_id}  {r.community_id}  {r.proto} {r.src} -> {r.dst}  {n} packets"
        )
    capture = None
    for i, p in enumerate(packets):
        if p.capture != capture:
            capture = p.capture
            lines.append(f"{printable(capture)}:")
            lines.append(f"{'frame':>8}  {'time (UTC)':26}  packet")
        lines.append(p.one_line())
        if tshark is not None:
            proto, info = tshark[i]
            lines[-1] += printable(f"  | {proto} {info}".rstrip())  # tshark reads wire content
    return "\n".join(lines) + "\n"
