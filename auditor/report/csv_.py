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
from auditor.report._common import ResultMap, as_list

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


def _row(finding: Mapping[str, Any]) -> list[str]:
    source = finding.get("source") or {}
    evidence = finding.get("evidence") or {}
    values: dict[str, Any] = {k: finding.get(k) for k in COLUMNS[:15]}
    values["flow_ids"] = ";".join(str(x) for x in as_list(finding.get("flow_ids")))
    values["community_ids"] = ";".join(str(x) for x in as_list(finding.get("community_ids")))
    values["evidence"] = json.dumps(evidence, ensure_ascii=False, separators=(",", ":"))
    values["source_document"] = source.get("document")
    values["source_section"] = source.get("section")
    values["source_text"] = source.get("text")
    return [_cell(values[c]) for c in COLUMNS]


def render(result: ResultMap) -> str:
    """The findings as CSV (RFC 4180: header row, CRLF line ends, quoted as needed)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for finding in as_list(result.get("findings")):
        writer.writerow(_row(finding))
    for capture in as_list(result.get("captures")):
        path = str(capture.get("path"))
        if capture.get("error"):
            problems = [("capture_error", str(capture.get("error")))]
        else:
            problems = [
                ("capture_warning", f"{path}: {w}") for w in as_list(capture.get("warnings"))
            ]
        for kind, text in problems:
            evidence = {"path": path, "complete": capture.get("complete")}
            writer.writerow(_row({"kind": kind, "message": text, "evidence": evidence}))
    return out.getvalue()
