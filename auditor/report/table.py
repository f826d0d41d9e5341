"""The terminal report: findings grouped by severity, readable in a 100-column terminal.

Plain ANSI escapes rather than a TUI library: the output is a few dozen lines of text
that must also read well when piped to a file or pasted into a ticket. Every line is
wrapped to the width before colour is added, so colour never changes the layout, and
strings from the wire go through `printable` so that a hostile User-Agent cannot move
the cursor or clear the screen.
"""

from __future__ import annotations

import textwrap

from auditor.findings.model import AuditDocument, Finding, as_document
from auditor.report._common import (
    LISTED,
    SEVERITIES,
    Result,
    capture_error,
    capture_problems,
    citation,
    flow_label,
    group_by_severity,
    human_bytes,
    kind_counts,
    number,
    printable,
    role_label,
    scalar_text,
    severity_counts,
    time_covered,
    time_span,
    waiver_text,
)

WIDTH = 100
INDENT = "        "  # under the severity tag
MAX_CAPTURE_LINES = 5  # warnings shown per capture; the JSON has them all
QUOTE_LIMIT = 240  # characters of the vendor's words shown; the HTML report has them all

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_SEVERITY_STYLE: dict[str, str] = {
    "high": "\x1b[1;31m",
    "medium": "\x1b[1;33m",
    "low": "\x1b[1;36m",
    "info": "\x1b[1;34m",
}


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if self.color and style and text else text


def _wrap(text: str, width: int, indent: str = INDENT, first: str | None = None) -> list[str]:
    wrapper = textwrap.TextWrapper(
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=True,
        break_on_hyphens=False,
    )
    return wrapper.wrap(text) or [indent.rstrip()]


def _header(result: AuditDocument, width: int, paint: _Painter) -> list[str]:
    tool, ruleset, summary = result.tool, result.ruleset, result.summary
    captures = result.captures
    title = f"{printable(tool.get('name') or 'pcap-audit')} {printable(tool.get('version') or '')}"
    title += f" - ruleset {printable(ruleset.get('name') or '?')}"
    if ruleset.get("title"):
        title += f": {printable(ruleset.get('title'))}"
    lines = [paint(line, _BOLD) for line in _wrap(title, width, indent="")]
    unreadable = sum(1 for c in captures if c.error)
    incomplete = sum(1 for c in captures if not c.error and not c.complete)
    duplicates = sum(1 for c in captures if c.duplicate_of)
    facts = f"{len(captures)} capture{'s' if len(captures) != 1 else ''}"
    notes = [
        f"{n} {what}"
        for n, what in (
            (unreadable, "unreadable"),
            (incomplete, "incomplete"),
            (duplicates, "duplicate"),
        )
        if n
    ]
    if notes:
        facts += f" ({', '.join(notes)})"
    facts += (
        f", {number(summary.packets)} packets, {number(summary.flows)} flows,"
        f" {time_covered(summary)}"
    )
    skipped = summary.skipped_files
    if skipped:
        facts += f", {number(skipped)} file{'s' if skipped != 1 else ''} skipped (not captures)"
    if result.inventory:
        facts += f", inventory {printable(result.inventory)}"
    lines += _wrap(facts, width, indent="")
    for capture in captures:
        path = printable(capture.path)
        if capture.error:
            text = f"! {path}: {capture_error(capture)}"
            lines += [paint(x, _SEVERITY_STYLE["high"]) for x in _wrap(text, width, "  ", "")]
            continue
        style = _SEVERITY_STYLE["medium"] if not capture.complete else _DIM
        mark = "!" if not capture.complete else "-"
        problems = capture_problems(capture)
        for problem in problems[:MAX_CAPTURE_LINES]:
            lines += [paint(x, style) for x in _wrap(f"{mark} {path}: {problem}", width, "  ", "")]
        if len(problems) > MAX_CAPTURE_LINES:
            more = f"  ... {len(problems) - MAX_CAPTURE_LINES} more warnings (--format json lists them)"
            lines.append(paint(more, style))
    return lines


def _finding(finding: Finding, width: int, paint: _Painter) -> list[str]:
    severity = finding.severity or "info"
    tag = severity.upper()[:7].ljust(len(INDENT))
    style = _SEVERITY_STYLE.get(severity, _BOLD)
    kind = printable(finding.kind)
    ident = printable(finding.id)
    label = paint(tag.rstrip(), style) + " " * (len(tag) - len(tag.rstrip()))
    lines: list[str] = []
    gap = width - len(tag) - len(kind) - len(ident)
    if gap >= 2:
        lines.append(f"{label}{paint(kind, _BOLD)}{' ' * gap}{paint(ident, _DIM)}")
    else:
        first, *rest = _wrap(kind, width, INDENT, tag)
        lines.append(label + paint(first[len(tag) :], _BOLD))
        lines += [paint(x, _BOLD) for x in rest]
        lines += [paint(x, _DIM) for x in _wrap(f"id {ident}", width)]

    where = flow_label(finding)
    if finding.src_ip or finding.dst_ip:  # else the label names the roles
        where += f"   {role_label(finding)}"
    rule = finding.rule_id
    where += f"   rule {printable(rule)}" if rule else "   no rule"
    lines += _wrap(where, width)
    lines += _wrap(printable(finding.message), width)
    if waiver_text(finding):
        lines += [paint(x, _BOLD) for x in _wrap(waiver_text(finding), width)]
    seen = (
        f"{number(finding.packets)} packets, {human_bytes(finding.bytes)}, "
        f"{time_span(finding.first_seen, finding.last_seen)}"
    )
    lines += [paint(x, _DIM) for x in _wrap(seen, width)]

    evidence = finding.evidence
    if evidence:
        text = "; ".join(f"{printable(k)}: {scalar_text(v, LISTED)}" for k, v in evidence.items())
        lines += _wrap(text, width)

    source = finding.source
    if source is not None and source.get("text"):
        quote = printable(source.get("text"))
        if len(quote) > QUOTE_LIMIT:
            quote = quote[: QUOTE_LIMIT - 3].rstrip() + "..."
        lines += _wrap(f'vendor: "{quote}" ({citation(source)})', width)
    return lines


def _footer(result: AuditDocument, width: int, paint: _Painter) -> list[str]:
    counts = severity_counts(result)
    total = sum(counts.values())
    parts = []
    for sev in [*SEVERITIES, *(s for s in counts if s not in SEVERITIES)]:
        n = counts.get(sev, 0)
        parts.append(paint(f"{n} {sev}", _SEVERITY_STYLE.get(sev, "")) if n else f"0 {sev}")
    plain_tail = f" | exit code {printable(result.summary.exit_code)}"
    if result.fail_on:
        plain_tail += f" (fail on {printable(result.fail_on)})"
    head = f"{total} finding{'s' if total != 1 else ''}: "
    plain = head + ", ".join(
        f"{counts.get(s, 0)} {s}"
        for s in [*SEVERITIES, *(s for s in counts if s not in SEVERITIES)]
    )
    if len(plain + plain_tail) <= width:
        return [paint(head, _BOLD) + ", ".join(parts) + plain_tail]
    return _wrap(plain + plain_tail, width, indent="")


def render(result: Result, *, color: bool = False, width: int = WIDTH) -> str:
    """The report as terminal text, ``width`` columns at most (colour escapes aside).

    ``color`` adds ANSI colours; the caller decides (a TTY, no ``NO_COLOR``).
    """
    doc = as_document(result)
    paint = _Painter(color)
    rule = "-" * width
    lines = _header(doc, width, paint)
    findings = doc.findings
    for severity, group in group_by_severity(findings):
        title = f"{severity.upper()} ({len(group)})"
        lines += ["", paint(title, _SEVERITY_STYLE.get(severity, _BOLD)), paint(rule, _DIM)]
        for n, finding in enumerate(group):
            if n:
                lines.append("")
            lines += _finding(finding, width, paint)
    if not findings:
        lines += ["", "No findings."]
    kinds = kind_counts(doc)
    lines.append("")
    if kinds:
        by_kind = ", ".join(f"{printable(k)} {n}" for k, n in kinds.items())
        lines += _wrap(f"by kind: {by_kind}", width, indent="")
    lines += _footer(doc, width, paint)
    return "\n".join(lines) + "\n"
