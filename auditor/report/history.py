"""`pcap-audit history`: a store's runs as a table, JSON, or one HTML page with charts.

The page follows html.py's rules: self-contained (inline CSS and SVG, no script, no
request; the same Content-Security-Policy), every string escaped with `_e`. The charts
are stacked bars, one bar a run, drawn as SVG by hand: two charts do not earn a charting
library, and hand-drawn SVG needs no script to render. Each bar segment has a ``<title>``,
which browsers show on hover. Below them: the runs, and the latest diff's new findings.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from auditor.report import json_
from auditor.report._common import KINDS, SEVERITIES, flow_label, number, printable, short_time
from auditor.report.grid import Column, grid
from auditor.report.html import _CSP, _CSS, _SEVERITY_COLOURS, _e

if TYPE_CHECKING:
    from auditor.store.diff import Diff
    from auditor.store.history import RunSummary

#: one colour per finding kind, in the audit's order of kinds (a kind keeps its colour
#: from store to store), none of them a severity's colour
_KIND_COLOURS = ("#c11574", "#f79009", "#7a5af8", "#0e9384", "#2e90fa", "#a15c07", "#98a2b3")


def render_json(runs: Sequence[RunSummary]) -> str:
    """``{"runs": [...]}``, one run per line."""
    return json_.render({"runs": [r.to_json() for r in runs]})


def render_table(runs: Sequence[RunSummary], width: int = 100) -> str:
    """One line per run, counts by severity, for a terminal of ``width`` columns."""
    if not runs:
        return "No runs in the store.\n"
    columns = [
        Column("run", overflow="keep", align="right"),
        Column("started (UTC)", overflow="keep"),
        *(
            Column(h, overflow="keep", align="right")
            for h in ("captures", "packets", "flows", "findings", *SEVERITIES, "waived", "exit")
        ),
    ]
    rows = [
        (
            r.id,
            short_time(r.started) + ("" if r.complete else " !"),
            number(r.captures),
            number(r.packets),
            number(r.flows),
            number(r.findings),
            *(number(r.by_severity.get(s, 0)) for s in SEVERITIES),
            number(r.waived),
            r.exit_code,
        )
        for r in runs
    ]
    lines = grid(columns, rows, width, rule=False)
    if any(not r.complete for r in runs):
        lines.append("! not every capture of the run was read whole")
    return "\n".join(lines) + "\n"


def _chart(
    title: str,
    runs: Sequence[RunSummary],
    series: Sequence[tuple[str, str, str]],
    values: Mapping[int, Mapping[str, int]],
) -> str:
    """Stacked bars, one per run; ``series`` is (key, label, colour) bottom up."""
    width, height, left, bottom, top = 900, 260, 48, 36, 12
    plot_w, plot_h = width - left - 10, height - bottom - top
    totals = [sum(values.get(r.id, {}).get(k, 0) for k, _, _ in series) for r in runs]
    peak = max([*totals, 1])
    step = _nice_step(peak)
    ymax = step * -(-peak // step)
    slot = plot_w / max(len(runs), 1)
    bar = max(min(slot * 0.7, 60), 1)
    parts = []
    for tick in range(0, ymax + 1, step):
        y = top + plot_h - plot_h * tick / ymax
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7ec"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#667085">{tick}</text>'
        )
    label_every = max(1, len(runs) // 15)
    for i, r in enumerate(runs):
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h
        for key, label, colour in series:
            n = values.get(r.id, {}).get(key, 0)
            if not n:
                continue
            h = plot_h * n / ymax
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>run {r.id}: {n} {_e(label)}</title></rect>'
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                f'font-size="11" fill="#344054">{r.id}</text>'
            )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" '
        'font-size="11" fill="#667085">run</text>'
    )
    legend = "".join(
        f'<span><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
        f'fill="{colour}"/></svg> {_e(label)}</span>'
        for _, label, colour in series
    )
    return (
        f"<h3>{_e(title)}</h3>"
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}">{"".join(parts)}</svg>'
        f'<div class="legend">{legend}</div>'
    )


def _nice_step(peak: int) -> int:
    """A tick step giving at most five gridlines: 1, 2, 5, 10, 20, 50, ..."""
    step, factors = 1, itertools.cycle((2, 2.5, 2))
    while peak / step > 5:
        step = int(step * next(factors))
    return step


def _runs_table(runs: Sequence[RunSummary]) -> str:
    head = "".join(
        f'<th class="num">{h}</th>'
        for h in ("Captures", "Packets", "Flows", "Findings", *SEVERITIES, "Waived", "Exit")
    )
    rows = []
    for r in reversed(runs):
        sev = "".join(f'<td class="num">{r.by_severity.get(s, 0)}</td>' for s in SEVERITIES)
        incomplete = "" if r.complete else ' <span class="badge sev-medium">incomplete</span>'
        rows.append(
            f'<tr><td class="num">{r.id}</td><td class="nowrap">{_e(short_time(r.started))}'
            f'{incomplete}</td><td class="num">{r.captures}</td>'
            f'<td class="num">{_e(number(r.packets))}</td><td class="num">{_e(number(r.flows))}'
            f'</td><td class="num">{r.findings}</td>{sev}<td class="num">{r.waived}</td>'
            f'<td class="num">{r.exit_code}</td></tr>'
        )
    return (
        '<section id="runs"><h2>Runs</h2><table><thead><tr><th class="num">Run</th>'
        f"<th>Started (UTC)</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</section>"
    )


def _latest_diff(diff: Diff | None) -> str:
    if diff is None:
        return ""
    if diff.baseline is None:
        intro = f"{_e(diff.run.label)} is the first run: nothing to compare with."
    else:
        intro = (
            f"{_e(diff.run.label)} against {_e(diff.baseline.label)}: "
            f"{len(diff.new_findings)} new findings, {len(diff.resolved_findings)} resolved, "
            f"{len(diff.new_flows)} new flows, {len(diff.gone_flows)} gone."
        )
    rows = []
    for f in diff.new_findings:
        sev = f.severity or "info"
        waiver = f.waiver
        waived = (
            f'<br><span class="badge status-ok">waived</span> {_e(waiver.get("reason"))}'
            if waiver is not None
            else ""
        )
        rows.append(
            f'<tr><td><span class="badge sev-{_e(sev)}">{_e(sev)}</span></td>'
            f"<td><code>{_e(f.kind)}</code></td>"
            f'<td class="mono nowrap">{_e(flow_label(f))}</td>'
            f'<td class="wrap">{_e(f.message)}{waived}</td>'
            f'<td class="mono nowrap">{_e(f.id)}</td></tr>'
        )
    table = (
        "<table><thead><tr><th>Severity</th><th>Kind</th><th>Flow</th><th>Message</th>"
        f"<th>Id</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">No new findings.</p>'
    )
    flows = "".join(
        f'<span class="port undocumented" title="{_e(number(g.flows))} flows">'
        f"{_e(g.src)} &rarr; {_e(g.dst)}:{_e(g.dst_port)}/{_e(g.proto)} {_e(g.app or '')}</span>"
        for g in diff.new_flows
    )
    flows_part = f"<h3>New flows</h3><p>{flows}</p>" if flows else ""
    note = f'<p class="muted">{_e(diff.flows_note)}</p>' if diff.flows_note else ""
    return (
        f'<section id="latest"><h2>New since the run before</h2><p>{intro}</p>{note}'
        f"<h3>New findings</h3>{table}{flows_part}</section>"
    )


_PAGE_CSS = """
.chart { width: 100%; height: auto; display: block; margin: 4px 0; }
.legend svg { vertical-align: -1px; }
"""


def render_html(runs: Sequence[RunSummary], store: str, diff: Diff | None) -> str:
    """The history page: the trend charts, the runs, the latest diff's new findings."""
    sev_series = [(s, s, _SEVERITY_COLOURS[s]) for s in SEVERITIES]
    kinds = [k for k in KINDS if any(r.by_kind.get(k) for r in runs)]
    kinds += sorted({k for r in runs for k in r.by_kind if k not in KINDS})
    order = list(KINDS)
    kind_series = [
        (k, k, _KIND_COLOURS[(order.index(k) if k in order else i) % len(_KIND_COLOURS)])
        for i, k in enumerate(kinds)
    ]
    charts = (
        _chart("Findings by severity", runs, sev_series, {r.id: r.by_severity for r in runs})
        + _chart("Findings by kind", runs, kind_series, {r.id: r.by_kind for r in runs})
        if runs
        else '<p class="muted">No runs in the store yet.</p>'
    )
    latest = runs[-1] if runs else None
    facts = (
        f"{len(runs)} runs; the latest, run {latest.id}, started {_e(short_time(latest.started))}"
        f" UTC: {latest.findings} findings"
        if latest
        else "no runs"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>pcap-audit history: {_e(store)}</title>",
            f"<style>{_CSS}{_PAGE_CSS}</style>",
            "</head>",
            "<body>",
            '<header class="masthead"><div class="brand">pcap-audit &middot; history</div>'
            f'<h1>Runs of <span class="mono">{_e(printable(store))}</span></h1>'
            f"<p>{facts}</p></header>",
            "<main>",
            f'<section id="trend"><h2>Trend</h2>{charts}</section>',
            _latest_diff(diff),
            _runs_table(runs) if runs else "",
            "</main>",
            '<footer class="page-footer">Generated by pcap-audit. This page is self-contained: '
            "it loads nothing from the network and runs no script.</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )
