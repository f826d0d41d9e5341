"""One self-contained HTML page: what an auditor reads, prints, or attaches to a ticket.

Self-contained means no request at all when the page opens: the CSS is inline, the
severity bar is inline SVG, fonts are the system's, and there is no script. A
Content-Security-Policy ``default-src 'none'`` makes that a promise the browser keeps even
if something slipped through. Every string from the result is escaped with `_e`,
including attribute values: HTTP Host, SNI, User-Agent and DNS names are wire data
chosen by whoever sent the packets.

Page order: header (ruleset, verdict), summary, captures, findings by severity (each with
the vendor's words quoted and its evidence in a ``<details>`` table), the role-to-role
matrix (documented against observed ports), and the roles.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from auditor.findings.model import AuditDocument, Finding, as_document
from auditor.report._common import (
    KINDS,
    SEVERITIES,
    PortCell,
    Result,
    as_list,
    capture_error,
    flow_label,
    group_by_severity,
    human_bytes,
    human_duration,
    is_host_finding,
    kind_counts,
    number,
    printable,
    role_label,
    role_matrix,
    scalar_text,
    severity_counts,
    short_time,
    time_span,
    truncation,
    waiver_text,
)

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

_SEVERITY_TITLES = {"high": "High", "medium": "Medium", "low": "Low", "info": "Info"}
_SEVERITY_COLOURS = {"high": "#b42318", "medium": "#b54708", "low": "#175cd3", "info": "#475467"}

_CSS = """
:root {
  --text: #101828; --muted: #667085; --line: #e4e7ec; --soft: #f9fafb; --navy: #0b2540;
  --high: #b42318; --high-bg: #fef3f2; --high-line: #fecdca;
  --medium: #b54708; --medium-bg: #fffaeb; --medium-line: #fedf89;
  --low: #175cd3; --low-bg: #eff8ff; --low-line: #b2ddff;
  --info: #475467; --info-bg: #f2f4f7; --info-line: #d0d5dd;
  --ok: #067647; --ok-bg: #ecfdf3; --ok-line: #abefc6;
  --mono: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; color: var(--text); background: #fff;
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans",
    "Helvetica Neue", Arial, sans-serif;
}
code, .mono { font-family: var(--mono); font-size: 0.92em; }
.masthead { background: var(--navy); color: #fff; padding: 28px 40px 24px; }
.masthead .brand { font-size: 12px; letter-spacing: .12em; text-transform: uppercase;
  color: #9fb3c8; }
.masthead h1 { margin: 6px 0 6px; font-size: 26px; line-height: 1.25; font-weight: 650; }
.masthead p { margin: 2px 0; color: #d0dbe6; }
.masthead b { color: #fff; }
.verdict { display: inline-block; margin-top: 14px; padding: 4px 12px; border-radius: 999px;
  font-weight: 600; font-size: 13px; }
.verdict.pass { background: var(--ok-bg); color: var(--ok); }
.verdict.fail { background: var(--high-bg); color: var(--high); }
.verdict.error { background: #fff; color: var(--high); border: 1px solid var(--high-line); }
main { max-width: 1180px; margin: 0 auto; padding: 8px 40px 40px; }
section { margin-top: 32px; }
h2 { font-size: 19px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 24px 0 10px; display: flex; align-items: center; gap: 8px; }
.muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(4, 1fr) 1.3fr 1.3fr 1.3fr; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; background: #fff; }
.card .n { font-size: 26px; font-weight: 700; line-height: 1.1; }
.card .l { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .06em; }
.card.sev { border-top: 4px solid var(--c); }
.card.sev .n { color: var(--c); }
.card.zero .n { color: var(--muted); }
.sevbar { margin: 14px 0 4px; width: 100%; height: 14px; display: block; }
.legend-line { font-size: 12px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid var(--line); }
thead th { background: var(--soft); font-weight: 600; color: #344054; font-size: 12px;
  text-transform: uppercase; letter-spacing: .04em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.wrap { overflow-wrap: anywhere; }
.nowrap { white-space: nowrap; }
td.file { min-width: 280px; overflow-wrap: anywhere; }
td.notes { min-width: 140px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11px;
  font-weight: 700; letter-spacing: .06em; text-transform: uppercase; color: var(--c);
  background: var(--bg); border: 1px solid var(--bl); white-space: nowrap; }
.sev-high { --c: var(--high); --bg: var(--high-bg); --bl: var(--high-line); }
.sev-medium { --c: var(--medium); --bg: var(--medium-bg); --bl: var(--medium-line); }
.sev-low { --c: var(--low); --bg: var(--low-bg); --bl: var(--low-line); }
.sev-info { --c: var(--info); --bg: var(--info-bg); --bl: var(--info-line); }
.status-ok { --c: var(--ok); --bg: var(--ok-bg); --bl: var(--ok-line); }
.finding { border: 1px solid var(--line); border-left: 5px solid var(--c); border-radius: 8px;
  padding: 14px 18px; margin: 0 0 14px; break-inside: avoid; page-break-inside: avoid; }
.finding > header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 10px; }
.finding .title { font-weight: 650; font-size: 15px; }
.finding .kind { color: var(--muted); }
.finding .fid { margin-left: auto; color: var(--muted); font-size: 12px; }
.finding .message { margin: 8px 0 10px; font-size: 14.5px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0 0 10px;
  font-size: 13px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
blockquote.vendor { margin: 10px 0; padding: 8px 14px; background: var(--soft);
  border-left: 3px solid #98a2b3; border-radius: 0 6px 6px 0; }
blockquote.vendor p { margin: 0 0 4px; font-style: italic; }
blockquote.vendor footer { font-size: 12px; color: var(--muted); }
blockquote.vendor cite { font-style: normal; font-family: var(--mono); }
details { margin-top: 8px; }
details > summary { cursor: pointer; color: #344054; font-weight: 600; font-size: 13px; }
details table { margin-top: 6px; }
details th { width: 190px; color: var(--muted); font-weight: 500; }
details td { font-family: var(--mono); font-size: 12.5px; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
.matrix th[scope=row] { white-space: nowrap; background: var(--soft); }
.matrix thead th { text-transform: none; font-size: 13px; }
.matrix td { min-width: 120px; }
.matrix .corner { color: var(--muted); font-weight: 500; font-size: 12px; white-space: nowrap; }
.port { display: inline-block; margin: 2px 3px 2px 0; padding: 1px 7px; border-radius: 5px;
  font-family: var(--mono); font-size: 12px; border: 1px solid; white-space: nowrap; }
.port.ok { color: var(--ok); background: var(--ok-bg); border-color: var(--ok-line); }
.port.undocumented { color: #fff; background: var(--high); border-color: var(--high);
  font-weight: 700; }
.port.unseen { color: #98a2b3; background: #fff; border-color: #d0d5dd; border-style: dashed; }
.empty { color: #d0d5dd; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 10px 0 0; font-size: 12px;
  color: var(--muted); }
.conf { display: inline-block; width: 60px; height: 6px; background: var(--line);
  border-radius: 3px; vertical-align: middle; margin-right: 6px; overflow: hidden; }
.conf > span { display: block; height: 100%; background: #475467; }
.tag { display: inline-block; padding: 0 6px; border-radius: 4px; background: var(--info-bg);
  font-size: 12px; margin: 1px 2px 1px 0; }
.alert { color: var(--high); font-weight: 600; }
.waiver { margin: 0 0 10px; color: var(--ok); }
.page-footer { max-width: 1180px; margin: 0 auto; padding: 16px 40px 40px; color: var(--muted);
  font-size: 12px; border-top: 1px solid var(--line); }
@media (max-width: 900px) {
  .cards { grid-template-columns: repeat(2, 1fr); }
  main, .masthead, .page-footer { padding-left: 16px; padding-right: 16px; }
}
@media print {
  @page { margin: 14mm 12mm; }
  body { font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .masthead { padding: 14px 18px; }
  main, .page-footer { max-width: none; padding: 0; }
  section { break-inside: auto; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  tr, .finding { break-inside: avoid; page-break-inside: avoid; }
  details > summary { list-style: none; }
  details::details-content { content-visibility: visible; display: block; }
}
"""


def _e(value: object) -> str:
    """Text for HTML content or a quoted attribute, with controls made visible."""
    return html.escape(printable(value, keep_newlines=True), quote=True)


def _anchor(value: object) -> str:
    return "finding-" + re.sub(r"[^A-Za-z0-9_-]", "-", str(value))[:80]


def _time(value: object) -> str:
    if not value:
        return '<span class="muted">-</span>'
    return f'<time datetime="{_e(value)}" title="{_e(value)}">{_e(short_time(value))}</time>'


def _masthead(result: AuditDocument) -> str:
    tool, ruleset = result.tool, result.ruleset
    rules = as_list(ruleset.get("rules"))
    docs = ", ".join(str(d) for d in as_list(ruleset.get("source_documents")))
    exit_code = result.summary.exit_code
    verdict_class = (
        {0: "pass", 1: "fail", 5: "fail"}.get(exit_code, "error")
        if isinstance(exit_code, int)
        else "error"
    )
    verdict = {
        0: "Pass: no finding at or above the fail-on severity",
        1: "Fail: findings at or above the fail-on severity",
        5: "Fail: findings at or above the fail-on severity, and not every capture was read whole",
    }.get(
        exit_code if isinstance(exit_code, int) else -1,
        "Incomplete: not every capture was read whole",
    )
    fail_on = result.fail_on
    parts = [
        f'<div class="brand">{_e(tool.get("name") or "pcap-audit")} '
        f"{_e(tool.get('version') or '')} &middot; audit report</div>",
        f"<h1>{_e(ruleset.get('title') or ruleset.get('name') or 'Audit')}</h1>",
        f"<p>Ruleset <b>{_e(ruleset.get('name') or '?')}</b>: {len(rules)} rules from "
        f'<span class="mono">{_e(docs or "-")}</span></p>',
        f"<p>Inventory <b>{_e(result.inventory or 'none (roles inferred)')}</b>"
        f" &middot; fail on <b>{_e(fail_on or '-')}</b></p>",
        f'<div class="verdict {verdict_class}">{_e(verdict)} (exit code {_e(exit_code)})</div>',
    ]
    return '<header class="masthead">' + "\n".join(parts) + "</header>"


def _severity_svg(counts: Mapping[str, int]) -> str:
    total = sum(counts.get(s, 0) for s in SEVERITIES)
    width = 1000
    if total == 0:
        rects = f'<rect x="0" y="0" width="{width}" height="14" rx="3" fill="#e4e7ec"/>'
    else:
        rects, x = "", 0.0
        for sev in SEVERITIES:
            n = counts.get(sev, 0)
            if not n:
                continue
            w = width * n / total
            rects += (
                f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="14" '
                f'fill="{_SEVERITY_COLOURS[sev]}"><title>{n} {sev}</title></rect>'
            )
            x += w
    return (
        f'<svg class="sevbar" viewBox="0 0 {width} 14" preserveAspectRatio="none" '
        f'role="img" aria-label="findings by severity">{rects}</svg>'
    )


def _summary(result: AuditDocument) -> str:
    summary = result.summary
    counts = severity_counts(result)
    cards = []
    for sev in SEVERITIES:
        n = counts.get(sev, 0)
        zero = " zero" if not n else ""
        cards.append(
            f'<div class="card sev sev-{sev}{zero}"><div class="n">{n}</div>'
            f'<div class="l">{_SEVERITY_TITLES[sev]}</div></div>'
        )
    for label, value in (
        ("Packets", number(summary.packets)),
        ("Flows", number(summary.flows)),
        ("Coverage", human_duration(summary.coverage_s)),
        ("Capture span", human_duration(summary.duration_s)),
    ):
        cards.append(
            f'<div class="card"><div class="n">{_e(value)}</div><div class="l">{label}</div></div>'
        )
    total = sum(counts.values())
    legend = ", ".join(f"{counts.get(s, 0)} {s}" for s in SEVERITIES)
    kinds = kind_counts(result)
    rows = "".join(
        f"<tr><td><code>{_e(k)}</code></td><td>{_e(KINDS.get(k, ('', '', ''))[0])}</td>"
        f"<td>{_e(KINDS.get(k, ('', '', ''))[1])}</td><td class=num>{n}</td></tr>"
        for k, n in kinds.items()
    )
    kinds_table = (
        "<table><thead><tr><th>Kind</th><th>Meaning</th><th>Description</th>"
        f'<th class="num">Findings</th></tr></thead><tbody>{rows}</tbody></table>'
        if kinds
        else '<p class="muted">No findings.</p>'
    )
    return (
        '<section id="summary"><h2>Summary</h2>'
        f'<div class="cards">{"".join(cards)}</div>'
        f"{_severity_svg(counts)}"
        f'<p class="legend-line">{total} findings: {legend}</p>'
        f"<h3>By kind</h3>{kinds_table}</section>"
    )


def _captures(result: AuditDocument) -> str:
    rows = []
    for c in result.captures:
        if c.error:
            status = f'<span class="alert">not read: {_e(capture_error(c))}</span>'
        elif c.duplicate_of:
            status = f'<span class="muted">same content as {_e(c.duplicate_of)}</span>'
        elif c.truncated:
            status = f'<span class="badge sev-medium" title="{_e(truncation(c))}">truncated</span>'
        elif not c.complete:
            status = '<span class="badge sev-medium">incomplete</span>'
        else:
            status = '<span class="badge status-ok">read</span>'
        notes = [f"{_e(k)}: {_e(v)}" for k, v in c.decode_errors.items()]
        style = "alert" if not c.complete else "muted"
        notes += [f'<span class="{style}">{_e(w)}</span>' for w in c.warnings]
        decode = "<br>".join(notes) or '<span class="muted">none</span>'
        rows.append(
            f'<tr><td class="mono file">{_e(c.path)}</td><td>{_e(c.format or "-")}</td>'
            f"<td>{_e(', '.join(str(x) for x in c.linktypes) or '-')}</td>"
            f'<td class="num">{_e(number(c.packets))}</td>'
            f'<td class="num">{_e(human_bytes(c.bytes))}</td>'
            f'<td class="nowrap">{_time(c.first_seen)}</td>'
            f'<td class="nowrap">{_time(c.last_seen)}</td>'
            f'<td>{status}</td><td class="notes">{decode}</td></tr>'
        )
    body = "".join(rows) or '<tr><td colspan="9" class="muted">No captures.</td></tr>'
    return (
        '<section id="captures"><h2>Captures</h2><table><thead><tr><th>File</th>'
        '<th>Format</th><th>Link types</th><th class="num">Packets</th>'
        '<th class="num">Bytes</th><th>First packet</th><th>Last packet</th><th>Status</th>'
        f"<th>Decode errors, warnings</th></tr></thead><tbody>{body}</tbody></table></section>"
    )


def _evidence(f: Finding) -> str:
    rows = [
        f"<tr><th>{_e(k)}</th><td>{_e(scalar_text(v))}</td></tr>" for k, v in f.evidence.items()
    ]
    for label, values in (("flow ids", f.flow_ids), ("community ids", f.community_ids)):
        if values:
            joined = "<br>".join(_e(v) for v in values)
            rows.append(f'<tr><th class="muted">{label}</th><td>{joined}</td></tr>')
    if not rows:
        return ""
    return (
        f"<details><summary>Evidence ({len(rows)})</summary>"
        f"<table><tbody>{''.join(rows)}</tbody></table></details>"
    )


def _quote(source: object) -> str:
    if not isinstance(source, Mapping) or not source.get("text"):
        return ""
    paragraphs = "".join(
        f"<p>{_e(p)}</p>" for p in str(source.get("text")).splitlines() if p.strip()
    )
    section = source.get("section")
    where = f", section &ldquo;{_e(section)}&rdquo;" if section else ""
    return (
        f'<blockquote class="vendor">{paragraphs}'
        f"<footer>&mdash; vendor documentation <cite>{_e(source.get('document') or '?')}</cite>"
        f"{where}</footer></blockquote>"
    )


def _finding(f: Finding) -> str:
    severity = f.severity or "info"
    kind = f.kind or "?"
    title = KINDS.get(kind, (kind, "", ""))[0]
    rule = f.rule_id
    first, last = f.first_seen, f.last_seen
    span = (
        f'<span title="{_e(first)} / {_e(last)}">{_e(time_span(first, last))}</span>'
        if first or last
        else '<span class="muted">not observed in the captures</span>'
    )
    facts = [
        (
            "Host" if is_host_finding(f) else "Flow",
            f'<span class="mono">{_e(flow_label(f))}</span>',
        ),
        ("Roles", _e(role_label(f)).replace(" -&gt; ", " &rarr; ")),
        ("Rule", f"<code>{_e(rule)}</code>" if rule else '<span class="muted">none</span>'),
        ("Seen", span),
        (
            "Traffic",
            f"{_e(number(f.packets))} packets, {_e(human_bytes(f.bytes))}",
        ),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return (
        f'<article class="finding sev-{_e(severity)}" id="{_e(_anchor(f.id))}">'
        f'<header><span class="badge">{_e(severity)}</span>'
        f'<span class="title">{_e(title)}</span><code class="kind">{_e(kind)}</code>'
        f'<span class="fid mono">{_e(f.id)}</span></header>'
        f'<p class="message">{_e(f.message)}</p>{_waiver(f)}'
        f'<dl class="facts">{dl}</dl>{_quote(f.source)}{_evidence(f)}</article>'
    )


def _waiver(f: Finding) -> str:
    text = waiver_text(f)
    if not text:
        return ""
    return f'<p class="waiver"><span class="badge status-ok">waived</span> {_e(text)}</p>'


def _findings(result: AuditDocument) -> str:
    findings = result.findings
    parts = ['<section id="findings"><h2>Findings</h2>']
    if not findings:
        parts.append('<p class="muted">No findings.</p>')
    for severity, group in group_by_severity(findings):
        title = _SEVERITY_TITLES.get(severity, severity.capitalize())
        parts.append(
            f'<h3 class="sev-{_e(severity)}"><span class="badge">{len(group)}</span>'
            f"{_e(title)}</h3>"
        )
        parts += [_finding(f) for f in group]
    parts.append("</section>")
    return "\n".join(parts)


def _port(cell: PortCell) -> str:
    what = {
        "ok": "documented and observed",
        "undocumented": "observed but not documented",
        "unseen": "documented but not observed",
    }[cell.status]
    tip = f"{cell.label}: {what}; {cell.flows} flows"
    if cell.rule_ids:
        tip += f"; rules {', '.join(cell.rule_ids)}"
    return f'<span class="port {cell.status}" title="{_e(tip)}">{_e(cell.label)}</span>'


def _role_name(role: str) -> str:
    return '<span class="alert">no role</span>' if role == "?" else _e(role)


def _matrix(result: AuditDocument) -> str:
    matrix = role_matrix(result.role_pairs)
    intro = (
        '<p class="muted">Rows are source roles, columns destination roles. Each cell lists '
        "the destination ports between the two roles: what the vendor documents against "
        "what the captures show.</p>"
    )
    legend = (
        '<div class="legend"><span><span class="port ok">443/tcp</span> documented and '
        'observed</span><span><span class="port undocumented">8161/tcp</span> observed, not '
        'documented</span><span><span class="port unseen">8787/tcp</span> documented, not '
        "observed</span></div>"
    )
    if not matrix.rows:
        return (
            '<section id="matrix"><h2>Role to role</h2>'
            '<p class="muted">No role pairs.</p></section>'
        )
    head = "".join(f'<th scope="col">{_role_name(c)}</th>' for c in matrix.cols)
    rows = []
    for src in matrix.rows:
        cells = []
        for dst in matrix.cols:
            ports = matrix.cell(src, dst)
            cells.append(
                "<td>"
                + ("".join(_port(p) for p in ports) or '<span class="empty">&middot;</span>')
                + "</td>"
            )
        rows.append(f'<tr><th scope="row">{_role_name(src)}</th>{"".join(cells)}</tr>')
    # many roles make the matrix wider than the page: it scrolls, the page does not
    table = (
        '<div class="scroll"><table class="matrix"><thead><tr>'
        f'<th class="corner">from &darr; / to &rarr;</th>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    return f'<section id="matrix"><h2>Role to role</h2>{intro}{table}{legend}</section>'


def _confidence(value: object) -> str:
    try:
        c = min(max(float(value), 0.0), 1.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return '<span class="muted">-</span>'
    return (
        f'<span class="conf"><span style="width:{c * 100:.0f}%"></span></span>{c * 100:.0f}&#8239;%'
    )


def _roles(result: AuditDocument) -> str:
    rows = []
    for r in result.roles:
        roles = "".join(f'<span class="tag">{_e(x)}</span>' for x in as_list(r.get("roles")))
        names = "<br>".join(_e(n) for n in as_list(r.get("names")))
        evidence = "<br>".join(_e(x) for x in as_list(r.get("evidence")))
        rows.append(
            f'<tr><td class="mono">{_e(r.get("ip"))}</td>'
            f"<td>{roles or '<span class=alert>no role</span>'}</td>"
            f'<td class="wrap">{names or "<span class=muted>-</span>"}</td>'
            f"<td>{_e(r.get('source') or '-')}</td>"
            f'<td class="num">{_confidence(r.get("confidence"))}</td>'
            f'<td class="wrap">{evidence or "<span class=muted>-</span>"}</td></tr>'
        )
    body = "".join(rows) or '<tr><td colspan="6" class="muted">No hosts.</td></tr>'
    return (
        '<section id="roles"><h2>Roles</h2><table><thead><tr><th>Address</th><th>Roles</th>'
        '<th>Names</th><th>Source</th><th class="num">Confidence</th><th>Evidence</th></tr>'
        f"</thead><tbody>{body}</tbody></table></section>"
    )


def render(result: Result) -> str:
    """The report as one self-contained HTML document."""
    doc = as_document(result)
    tool, ruleset = doc.tool, doc.ruleset
    name = f"{tool.get('name') or 'pcap-audit'} {tool.get('version') or ''}".strip()
    title = f"{name}: {ruleset.get('title') or ruleset.get('name') or 'audit report'}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="{_e(name)}">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            _masthead(doc),
            "<main>",
            _summary(doc),
            _captures(doc),
            _findings(doc),
            _matrix(doc),
            _roles(doc),
            "</main>",
            f'<footer class="page-footer">Generated by {_e(name)}. This page is self-contained: '
            "it loads nothing from the network and runs no script.</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )
