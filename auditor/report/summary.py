"""The audit in ten lines at most, for a mail or a chat message.

Counts by severity and the exit code, the traffic, what is new since a baseline when one
is given (a `Diff`), and the top findings: new ones first, then the most severe, waived
ones last. Plain text, wire strings made printable, no line longer than a mail client
wraps badly (each line is cut at 160 characters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.findings.model import Finding, as_document
from auditor.report._common import (
    SEVERITIES,
    Result,
    flow_label,
    human_duration,
    number,
    printable,
    severity_counts,
)

if TYPE_CHECKING:
    from auditor.store.diff import Diff

MAX_LINES = 10
WIDTH = 160


def _counts(findings: list[Finding]) -> str:
    by = {s: 0 for s in SEVERITIES}
    for f in findings:
        by[f.severity] = by.get(f.severity, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in by.items() if n) or "none"


def render(result: Result, diff: Diff | None = None) -> str:
    """The summary of ``result``; with ``diff`` (this result against a baseline), what
    is new since the baseline."""
    doc = as_document(result)
    ruleset, summary, findings = doc.ruleset, doc.summary, doc.findings
    counts = severity_counts(doc)
    total = sum(counts.values())
    waived = sum(1 for f in findings if f.waiver is not None)
    head = (
        f"pcap-audit {printable(ruleset.get('name') or '?')}: {total} findings "
        f"({', '.join(f'{counts.get(s, 0)} {s}' for s in SEVERITIES)})"
    )
    if waived:
        head += f", {waived} waived"
    head += f"; exit code {printable(summary.exit_code)}"
    if doc.fail_on:
        head += f" (fail on {printable(doc.fail_on)})"
    captures = doc.captures
    lines = [
        head,
        f"{len(captures)} capture{'s' if len(captures) != 1 else ''}, "
        f"{number(summary.packets)} packets, {number(summary.flows)} flows, "
        f"capture span {human_duration(summary.duration_s)}",
    ]
    broken = [c for c in captures if c.error or c.truncated or not c.complete]
    if broken:
        lines.append(
            f"! {len(broken)} capture(s) not read whole: "
            + ", ".join(printable(c.path) for c in broken[:3])
            + (" ..." if len(broken) > 3 else "")
        )
    new_ids: set[Any] = set()
    if diff is not None:
        new_ids = {f.id for f in diff.new_findings}
        if diff.baseline is None:
            lines.append("New: no baseline to compare with (the store's first run)")
        else:
            lines.append(
                f"New since {printable(diff.baseline.label)}: {len(diff.new_findings)} findings "
                f"({_counts(list(diff.new_findings))}), {len(diff.resolved_findings)} resolved, "
                f"{len(diff.new_flows)} new flows, {len(diff.gone_flows)} gone"
            )
    order = {s: i for i, s in enumerate(SEVERITIES)}
    ranked = sorted(
        findings,
        key=lambda f: (
            f.waiver is not None,
            f.id not in new_ids,
            order.get(f.severity, len(order)),
        ),
    )
    room = MAX_LINES - len(lines) - 1
    if ranked and room > 0:
        shown = ranked[: room if len(ranked) <= room else room - 1]
        lines.append("Top findings:")
        for f in shown:
            mark = " NEW" if f.id in new_ids else ""
            mark += " (waived)" if f.waiver is not None else ""
            lines.append(
                f"  {f.severity.upper():6} {printable(f.kind)} "
                f"{printable(flow_label(f))} {printable(f.id)}{mark}"
            )
        if len(shown) < len(ranked):
            lines.append(f"  ... and {len(ranked) - len(shown)} more")
    return "\n".join(line[:WIDTH] for line in lines) + "\n"
