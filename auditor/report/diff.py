"""`pcap-audit diff`: what changed since the baseline, as a table, JSON or Markdown.

Reads the `Diff` (auditor.store.diff) and nothing else. The JSON is the contract
(``{"run", "baseline", "new_findings", "resolved_findings", "new_flows", "gone_flows"}``,
one finding or flow per line); the table is for a terminal, the Markdown for a ticket
or a chat message. Strings from the wire are escaped as in the audit's renderers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from auditor.report import json_
from auditor.report._common import flow_label, number, printable
from auditor.report.markdown import md

if TYPE_CHECKING:
    from auditor.findings.model import Finding
    from auditor.store.diff import Diff, FlowAggregate

FORMATS = ("table", "json", "markdown")
WIDTH = 100  # as the audit's table
INDENT = " " * 10


def render(diff: Diff, fmt: str) -> str:
    """``diff`` in ``fmt`` (one of `FORMATS`)."""
    if fmt == "json":
        return json_.render(diff.to_json())
    if fmt == "markdown":
        return _markdown(diff)
    return _table(diff)


def _waiver_text(f: Finding) -> str:
    w = f.waiver
    if w is None:
        return ""
    return f"waived: {w.get('reason')} ({w.get('owner')}, until {w.get('expires')})"


def flow_text(g: FlowAggregate) -> str:
    """``agent -> appliance:3009/tcp http (3 flows)``."""
    port = f":{g.dst_port}" if g.dst_port is not None else ""
    app = f" {g.app}" if g.app else ""
    return printable(
        f"{g.src} -> {g.dst}{port}/{g.proto or '?'}{app} ({number(g.flows)} flow{'' if g.flows == 1 else 's'})"
    )


def _heading(diff: Diff) -> str:
    if diff.baseline is None:
        return f"{diff.run.label}: the first run, nothing to compare with (everything is new)"
    return f"{diff.run.label} against {diff.baseline.label}"


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=INDENT, subsequent_indent=INDENT) or [""]


def _table(diff: Diff) -> str:
    lines = [printable(_heading(diff))]
    if diff.flows_note:
        lines.append(printable(diff.flows_note))
    sections: list[tuple[str, Sequence[Any], bool]] = [
        ("new findings", diff.new_findings, True),
        ("resolved findings", diff.resolved_findings, True),
        ("new flows", diff.new_flows, False),
        ("gone flows", diff.gone_flows, False),
    ]
    for title, items, findings in sections:
        lines += ["", f"{title.upper()} ({len(items)})"]
        if not items:
            lines.append("  none")
        for item in items:
            if findings:
                lines.append(
                    f"  {item.severity.upper():7} {printable(item.kind)}  "
                    f"{printable(flow_label(item))}  {printable(item.id)}"
                )
                lines += _wrap(printable(item.message))
                if _waiver_text(item):
                    lines += _wrap(printable(_waiver_text(item)))
            else:
                lines.append(f"  {flow_text(item)}")
    return "\n".join(lines) + "\n"


def _markdown(diff: Diff) -> str:
    lines = [f"# pcap-audit diff: {md(_heading(diff))}", ""]
    lines.append(
        f"**{len(diff.new_findings)} new findings**, {len(diff.resolved_findings)} resolved, "
        f"{len(diff.new_flows)} new flows, {len(diff.gone_flows)} gone."
    )
    if diff.flows_note:
        lines += ["", md(diff.flows_note, line_start=True)]
    for title, items in (
        ("New findings", diff.new_findings),
        ("Resolved findings", diff.resolved_findings),
    ):
        lines += ["", f"## {title}", ""]
        if not items:
            lines.append("None.")
            continue
        lines += ["| Severity | Kind | Flow | Message | Id |", "| --- | --- | --- | --- | --- |"]
        for f in items:
            message = md(f.message)
            if _waiver_text(f):
                message += f" (**{md(_waiver_text(f))}**)"
            lines.append(
                f"| {md(f.severity)} | {md(f.kind)} | {md(flow_label(f))} "
                f"| {message} | {md(f.id)} |"
            )
    for title, flows in (("New flows", diff.new_flows), ("Gone flows", diff.gone_flows)):
        lines += ["", f"## {title}", ""]
        lines += [f"- {md(flow_text(g))}" for g in flows] or ["None."]
    return "\n".join(lines) + "\n"
