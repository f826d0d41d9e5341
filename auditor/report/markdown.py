"""Markdown for tickets: a summary, one table of findings, then each finding in detail
with the vendor's words as a quote.

Targets CommonMark with GitHub tables (GitHub, GitLab, Gitea, most trackers). Every
string from the result is escaped: ASCII punctuation that Markdown gives meaning to gets
a backslash (so ``|`` cannot break a table and ``<script>`` stays text), and line breaks
inside a value become spaces so that a value cannot start a new block.
"""

from __future__ import annotations

import re

from auditor.findings.model import AuditDocument, Finding, as_document
from auditor.report._common import (
    LISTED,
    Result,
    as_list,
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
    waiver_text,
)

_SPECIAL = re.compile(r"([\\`*_{}\[\]<|~&])")
_BLOCK_START = re.compile(r"^(\d+)([.)])|^([#+\-=>])")


def md(value: object, *, line_start: bool = False) -> str:
    """``value`` as inline Markdown text: one line, special characters escaped.

    ``line_start``: the text begins a line, so a leading ``#``, ``-``, ``+``, ``=``,
    ``>`` or ``1.`` must not start a heading, list or quote.
    """
    text = " ".join(printable(value, keep_newlines=True).split())
    text = _SPECIAL.sub(r"\\\1", text)
    if line_start:
        text = _BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text)
    return text


def _cell(value: object) -> str:
    return md(value) if value not in (None, "") else "-"


def _span(finding: Finding) -> str:
    first, last = finding.first_seen, finding.last_seen
    if not first and not last:
        return "not seen"
    return f"{md(first or '?')} to {md(last or '?')}"


def _summary(result: AuditDocument) -> list[str]:
    tool, ruleset, summary = result.tool, result.ruleset, result.summary
    title = md(ruleset.get("title") or ruleset.get("name") or "audit")
    lines = [f"# pcap-audit report: {title}", ""]
    lines.append(
        f"Ruleset **{md(ruleset.get('name') or '?')}** from "
        f"{md(', '.join(str(d) for d in as_list(ruleset.get('source_documents'))) or '-')}; "
        f"{md(tool.get('name') or 'pcap-audit')} {md(tool.get('version') or '')}."
    )
    lines.append("")
    counts = severity_counts(result)
    total = sum(counts.values())
    by_sev = ", ".join(f"{n} {md(s)}" for s, n in counts.items())
    exit_text = f"exit code {md(summary.exit_code)}"
    if result.fail_on:
        exit_text += f" (fail on {md(result.fail_on)})"
    lines.append(f"- **{total} findings**: {by_sev}; {exit_text}")
    lines.append(
        f"- {number(summary.packets)} packets, {number(summary.flows)} flows, "
        f"{time_covered(summary)}"
    )
    if summary.skipped_files:
        lines.append(f"- {number(summary.skipped_files)} files skipped (not captures)")
    if result.inventory:
        lines.append(f"- Inventory: {md(result.inventory)}")
    for capture in result.captures:
        path = md(capture.path)
        if capture.error:
            lines.append(f"- Capture {path}: **not read**: {md(capture_error(capture))}")
        elif capture.duplicate_of:
            lines.append(f"- Capture {path}: same content as {md(capture.duplicate_of)}")
        else:
            problems = capture_problems(capture)
            note = "; **incomplete**" if not capture.complete else ""
            lines.append(
                f"- Capture {path}: {md(capture.format or '?')}, "
                f"{number(capture.packets)} packets{note}"
            )
            lines += [f"  - {md(p)}" for p in problems]
    kinds = kind_counts(result)
    if kinds:
        lines += ["", "| Kind | Findings |", "| --- | ---: |"]
        lines += [f"| {md(k)} | {n} |" for k, n in kinds.items()]
    return lines


def _table(findings: list[Finding]) -> list[str]:
    lines = [
        "| # | Severity | Kind | Flow | Roles | Rule | Message |",
        "| ---: | --- | --- | --- | --- | --- | --- |",
    ]
    for n, f in enumerate(findings, start=1):
        cells = [
            str(n),
            _cell(f.severity),
            _cell(f.kind),
            md(flow_label(f)),
            md(role_label(f)),
            _cell(f.rule_id),
            _cell(f.message) + (f" (**{md(waiver_text(f))}**)" if waiver_text(f) else ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _detail(n: int, f: Finding) -> list[str]:
    severity = md((f.severity or "info").upper())
    lines = [f"### {n}. {severity} {md(f.kind)}: {md(flow_label(f))}", ""]
    lines.append(md(f.message, line_start=True))
    lines.append("")
    lines.append(f"- Finding id: {md(f.id)}")
    if waiver_text(f):
        lines.append(f"- **{md(waiver_text(f))}**")
    lines.append(f"- Roles: {md(role_label(f))}; rule: {_cell(f.rule_id)}")
    lines.append(f"- Seen: {number(f.packets)} packets, {human_bytes(f.bytes)}, {_span(f)}")
    community = f.community_ids
    if community:
        lines.append(f"- Community IDs: {md(', '.join(str(c) for c in community))}")
    evidence = f.evidence
    if evidence:
        lines.append("- Evidence:")
        lines += [f"  - {md(k)}: {md(scalar_text(v, LISTED))}" for k, v in evidence.items()]
    source = f.source
    if source is not None and source.get("text"):
        lines.append("")
        lines += [
            f"> {md(line, line_start=True)}"
            for line in str(source.get("text")).splitlines()
            if line
        ]
        lines += [">", f"> \N{EM DASH} {md(citation(source))}"]
    return lines


def render(result: Result) -> str:
    """The report as Markdown, ending with a newline."""
    doc = as_document(result)
    lines = _summary(doc)
    findings = doc.findings
    lines += ["", "## Findings", ""]
    if not findings:
        lines.append("No findings.")
    else:
        ordered = [f for _, group in group_by_severity(findings) for f in group]
        lines += _table(ordered)
        lines += ["", "## Details"]
        for n, f in enumerate(ordered, start=1):
            lines += ["", *_detail(n, f)]
    return "\n".join(lines) + "\n"
