"""One CSV row per finding, for spreadsheets and for joining nights together.

After the findings, one row per capture problem (kind ``capture_error`` for a capture not
read, ``capture_warning`` for each warning of one read: cut, still being written, link
types skipped, ...; id and severity empty, the path in ``evidence``), so a spreadsheet of a
night shows what was not audited too.

Columns are flat: lists are joined with ``;``, the evidence is compact JSON in one cell,
and the vendor's words are split into document, section and text. A cell that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or
carriage return) is prefixed with ``'``, and control characters are escaped; such text can
only come from the wire (:func:`auditor.escape.printable`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from auditor.escape import printable
from auditor.findings.model import Finding, as_document
from auditor.report._common import Result

COLUMNS: tuple[str, ...] = (
    "id",
    "severity",
    "kind",
    "src_ip",
    "dst_ip",
    "dst_port",
    "proto",
    "src_role",
    "dst_role",
    "rule_id",
    "message",
    "first_seen",
    "last_seen",
    "packets",
    "bytes",
    "flow_ids",
    "community_ids",
    "evidence",
    "source_document",
    "source_section",
    "source_text",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return printable(value, keep_newlines=True, spreadsheet=True)


def _row(values: Mapping[str, Any]) -> list[str]:
    return [_cell(values.get(c)) for c in COLUMNS]


def _finding_row(finding: Finding) -> list[str]:
    source = finding.source or {}
    values: dict[str, Any] = {k: getattr(finding, k) for k in COLUMNS[:15]}
    values["flow_ids"] = ";".join(finding.flow_ids)
    values["community_ids"] = ";".join(finding.community_ids)
    values["evidence"] = json.dumps(
        dict(finding.evidence), ensure_ascii=False, separators=(",", ":")
    )
    values["source_document"] = source.get("document")
    values["source_section"] = source.get("section")
    values["source_text"] = source.get("text")
    return _row(values)


def render(result: Result) -> str:
    """The findings as CSV (RFC 4180: header row, CRLF line ends, quoted as needed)."""
    doc = as_document(result)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for finding in doc.findings:
        writer.writerow(_finding_row(finding))
    for capture in doc.captures:
        path = capture.path
        if capture.error:
            problems = [("capture_error", capture.error)]
        else:
            problems = [("capture_warning", f"{path}: {w}") for w in capture.warnings]
        for kind, text in problems:
            evidence = {"path": path, "complete": capture.complete}
            writer.writerow(
                _row(
                    {
                        "kind": kind,
                        "message": text,
                        "evidence": json.dumps(evidence, ensure_ascii=False, separators=(",", ":")),
                    }
                )
            )
    return out.getvalue()
