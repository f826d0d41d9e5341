"""Several audit results in one output: ``pcap-audit --each`` (one traffic set a capture
or directory given).

Each set is rendered by its own format's renderer, unchanged, and the pieces are put
together the way the format allows: JSON ``{"exit_code": n, "results": [result, ...]}``
(each result the usual document), SARIF one log with one run per set, table and Markdown
one section per set under a heading naming it, CSV one header and a first column ``set``.
HTML is one page per result: the CLI refuses ``--each --format html``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from auditor.report import render
from auditor.report._common import printable

if TYPE_CHECKING:
    from auditor.findings.model import AuditDocument

__all__ = ["EACH_FORMATS", "render_each"]

EACH_FORMATS: tuple[str, ...] = ("table", "json", "sarif", "csv", "markdown")


def render_each(
    results: Sequence[tuple[str, AuditDocument | Mapping[str, Any]]],
    fmt: str,
    exit_code: int,
    *,
    color: bool = False,
    width: int = 100,
) -> str:
    """Render ``(label, result)`` pairs in ``fmt`` (one of ``EACH_FORMATS``); ``color`` and
    ``width`` as for :func:`auditor.report.render`."""
    if fmt not in EACH_FORMATS:
        raise ValueError(f"--each writes {', '.join(EACH_FORMATS)}, not {fmt}")
    texts = [(label, render(doc, fmt, color=color, width=width)) for label, doc in results]
    if fmt == "json":
        body = ",\n".join(text.rstrip("\n") for _, text in texts)
        return f'{{\n"exit_code": {int(exit_code)},\n"results": [\n{body}\n]\n}}\n'
    if fmt == "sarif":
        logs = [json.loads(text) for _, text in texts]
        merged = dict(logs[0])
        merged["runs"] = [run for log in logs for run in log["runs"]]
        return json.dumps(merged, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        for i, (label, text) in enumerate(texts):
            rows = list(csv.reader(io.StringIO(text, newline="")))
            if i == 0:
                writer.writerow(["set", *rows[0]])
            writer.writerows([label, *row] for row in rows[1:])
        return out.getvalue()
    n = len(texts)
    parts = []
    for i, (label, text) in enumerate(texts, 1):
        if fmt == "markdown":
            from auditor.report.markdown import md

            head = f"# Set {i} of {n}: {md(label)}\n\n"
        else:
            head = f"=== Set {i} of {n}: {printable(label)} ===\n"
        parts.append(head + text)
    tail = f"{n} sets | exit code {int(exit_code)}\n"
    return "\n".join(parts) + ("\n" + tail if fmt == "table" else f"\n_{tail.strip()}_\n")
