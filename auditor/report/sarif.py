"""SARIF 2.1.0, for code-scanning dashboards that track findings from night to night.

SARIF was made for source code; a capture has no lines. The mapping used here:

* one run; ``tool.driver.rules`` holds the ruleset rules that findings cite (the vendor's
  words as ``fullDescription``, document and section in ``properties``), then one
  synthetic rule ``pcap-audit/<kind>`` per finding kind that has findings without a rule;
* one result per finding. Its physical location is the capture file, its logical
  location the flow (``10.0.0.5 -> 10.0.0.9:3009/tcp``), and ``partialFingerprints``
  carries the finding's stable id so dashboards match a finding across runs even when
  its message or counts change;
* levels: high -> ``error``, medium -> ``warning``, low and info -> ``note``. SARIF
  reserves ``none`` for results whose ``kind`` is not ``fail``, and dashboards hide
  those; an info finding is still a finding, so it is a ``note`` and its exact severity
  is in ``properties.severity``;
* ``invocations`` carries the exit code; ``executionSuccessful`` is true for 0 (clean)
  and 1 (findings at or above --fail-on), false otherwise. Unreadable or truncated
  captures become tool execution notifications.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from auditor.escape import json_text
from auditor.findings.model import AuditDocument, CaptureRecord, Finding, as_document
from auditor.report._common import (
    KINDS,
    SEVERITIES,
    Result,
    as_list,
    capture_error,
    citation,
    flow_label,
    truncation,
)
from auditor.report.markdown import md

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
#: Where the tool is described; overridden by ``result["tool"]["information_uri"]``.
INFORMATION_URI = "https://pypi.org/project/pcap-audit/"
#: The key under which the finding id is given to dashboards for matching across runs.
FINGERPRINT_KEY = "pcapAuditFindingId/v1"

LEVELS: dict[str, str] = {"high": "error", "medium": "warning", "low": "note", "info": "note"}
#: GitHub code scanning reads a CVSS-like score from rule properties to rank alerts.
_SECURITY_SEVERITY: dict[str, str] = {"high": "8.0", "medium": "5.0", "low": "3.0"}
_MIME_TYPES: dict[str, str] = {
    "pcap": "application/vnd.tcpdump.pcap",
    "pcap-ns": "application/vnd.tcpdump.pcap",
    "pcapng": "application/x-pcapng",
}
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]")


def level(severity: object) -> str:
    """The SARIF level for a finding severity (unknown severities are notes)."""
    return LEVELS.get(str(severity), "note")


def capture_uri(path: object) -> str:
    """A capture path as a SARIF URI: absolute paths as ``file://`` URIs, relative paths
    as percent-encoded relative references (kept relative, as the user gave them)."""
    text = str(path)
    if _WINDOWS_ABSOLUTE.match(text):
        return PureWindowsPath(text).as_uri()
    if text.startswith("/"):
        return PurePosixPath(text).as_uri()
    return quote(text.replace("\\", "/"), safe="/-._~!$&'()*+,;=@")


def _most_severe(severities: Sequence[str]) -> str:
    ranked = [s for s in SEVERITIES if s in severities]
    return ranked[0] if ranked else "info"


def _kind_rule_id(kind: str) -> str:
    return f"pcap-audit/{kind}"


def _camel(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_"))


def _rule_properties(severity: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {**extra, "tags": ["security", "network", "compliance"]}
    if severity in _SECURITY_SEVERITY:
        props["security-severity"] = _SECURITY_SEVERITY[severity]
    return props


def _ruleset_rule(rule: Mapping[str, Any], ruleset: str, severity: str) -> dict[str, Any]:
    source = rule.get("source") or {}
    ports = [str(p) for p in as_list(rule.get("ports"))]
    ports += [f"{r[0]}-{r[1]}" for r in as_list(rule.get("port_ranges")) if len(r) == 2]
    proto = str(rule.get("proto") or "?")
    short = f"{rule.get('from')} -> {rule.get('to')} on {proto} {', '.join(ports) or 'any port'}"
    details = [str(x) for x in (rule.get("app"), rule.get("security")) if x]
    if details:
        short += f" ({', '.join(details)})"
    text = str(source.get("text") or short)
    cite = citation(source)
    help_text = f"{text}\n\nSource: {cite}." if cite else text
    help_md = f"> {md(text, line_start=True)}"
    if cite:
        help_md += f"\n\nSource: {md(cite)}."
    return {
        "id": str(rule.get("id")),
        "shortDescription": {"text": short},
        "fullDescription": {"text": text},
        "help": {"text": help_text, "markdown": help_md},
        "defaultConfiguration": {"level": level(severity)},
        "properties": _rule_properties(
            severity,
            {
                "ruleset": ruleset,
                "document": source.get("document"),
                "section": source.get("section"),
                "from": rule.get("from"),
                "to": rule.get("to"),
                "proto": rule.get("proto"),
                "ports": as_list(rule.get("ports")),
                "port_ranges": as_list(rule.get("port_ranges")),
                "app": rule.get("app"),
                "security": rule.get("security"),
                "disk_transfer": rule.get("disk_transfer"),
                "expected": rule.get("expected"),
            },
        ),
    }


def _deny_as_rule(deny: Mapping[str, Any]) -> dict[str, Any]:
    """A deny entry of the result's ruleset in the shape of a rule: what it forbids, and the
    forbidding sentence as its description."""
    return {
        **deny,
        "from": deny.get("from") or "any host",
        "to": deny.get("to") or "any host",
        "proto": deny.get("proto") or "any transport,",
        "app": "/".join(str(a) for a in as_list(deny.get("app"))) or None,
        "security": "forbidden",
    }


def _kind_rule(kind: str, severity: str, rule_id: str | None = None) -> dict[str, Any]:
    title, short, full = KINDS.get(kind, (kind, f"Finding of kind {kind}.", ""))
    return {
        "id": rule_id or _kind_rule_id(kind),
        "name": _camel(kind),
        "shortDescription": {"text": short},
        "fullDescription": {"text": full or short},
        "help": {"text": f"{title}. {full or short}"},
        "defaultConfiguration": {"level": level(severity)},
        "properties": _rule_properties(severity, {"kind": kind, "title": title}),
    }


def _rules(result: AuditDocument) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rules findings refer to, and each finding's rule id -> index in that list."""
    ruleset = result.ruleset
    known = {str(r.get("id")): r for r in as_list(ruleset.get("rules"))}
    for deny in as_list(ruleset.get("deny")):  # what prohibited_flow findings cite
        known.setdefault(str(deny.get("id")), _deny_as_rule(deny))
    findings = result.findings
    cited: dict[str, list[str]] = {}
    kinds: dict[str, list[str]] = {}
    for finding in findings:
        severity = finding.severity or "info"
        rule_id = finding.rule_id
        if rule_id is None:
            kinds.setdefault(finding.kind, []).append(severity)
        else:
            cited.setdefault(str(rule_id), []).append(severity)

    rules: list[dict[str, Any]] = []
    name = str(ruleset.get("name") or "")
    in_ruleset_order = [rid for rid in known if rid in cited]
    unknown = [rid for rid in cited if rid not in known]
    for rid in in_ruleset_order:
        rules.append(_ruleset_rule(known[rid], name, _most_severe(cited[rid])))
    for rid in unknown:  # a finding citing a rule its ruleset lacks: describe it by kind
        kind = next(f.kind for f in findings if str(f.rule_id) == rid)
        rules.append(_kind_rule(kind, _most_severe(cited[rid]), rule_id=rid))
    ordered_kinds = [k for k in KINDS if k in kinds] + [k for k in kinds if k not in KINDS]
    for kind in ordered_kinds:
        rules.append(_kind_rule(kind, _most_severe(kinds[kind])))
    return rules, {str(rule["id"]): i for i, rule in enumerate(rules)}


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _overlaps(capture: CaptureRecord, finding: Finding) -> bool:
    start, end = _parse_time(capture.first_seen), _parse_time(capture.last_seen)
    f_start = _parse_time(finding.first_seen)
    f_end = _parse_time(finding.last_seen) or f_start
    if None in (start, end, f_start, f_end):
        return True
    try:
        return bool(f_start <= end and start <= f_end)  # type: ignore[operator]
    except TypeError:  # naive and aware timestamps mixed
        return True


def _logical_location(finding: Finding) -> dict[str, Any]:
    fq = f"{finding.src_role or '?'} -> {finding.dst_role or '?'}: {flow_label(finding)}"
    return {"name": flow_label(finding), "fullyQualifiedName": fq, "kind": "flow"}


def _artifact_location(index: int, uri: str) -> dict[str, Any]:
    return {"physicalLocation": {"artifactLocation": {"uri": uri, "index": index}}}


def _locations(
    finding: Finding, readable: list[tuple[int, str, CaptureRecord]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The primary location and related locations of a finding.

    Findings do not say which capture their flows came from; the primary location is the
    first readable capture whose time span overlaps the finding, and the other overlapping
    captures are related locations. A missing flow is absent from all of them.
    """
    logical = _logical_location(finding)
    candidates = [c for c in readable if _overlaps(c[2], finding)] or readable
    if not candidates:
        return [{"logicalLocations": [logical]}], []
    index, uri, _ = candidates[0]
    primary = {**_artifact_location(index, uri), "logicalLocations": [logical]}
    related = [
        {"id": n, **_artifact_location(i, u), "message": {"text": "Also in this capture set."}}
        for n, (i, u, _) in enumerate(candidates[1:], start=1)
    ]
    return [primary], related


def _result(
    finding: Finding,
    rule_index: Mapping[str, int],
    readable: list[tuple[int, str, CaptureRecord]],
) -> dict[str, Any]:
    kind = finding.kind
    rule_id = finding.rule_id
    rid = str(rule_id) if rule_id is not None else _kind_rule_id(kind)
    locations, related = _locations(finding, readable)
    out: dict[str, Any] = {
        "ruleId": rid,
        "ruleIndex": rule_index[rid],
        "level": level(finding.severity),
        "message": {"text": finding.message or KINDS.get(kind, ("", kind, ""))[1]},
        "locations": locations,
    }
    if related:
        out["relatedLocations"] = related
    out["partialFingerprints"] = {FINGERPRINT_KEY: finding.id}
    waiver = finding.waiver
    if waiver is not None:  # a waived finding: suppressed, with the reason
        out["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": str(waiver.get("reason") or ""),
                "properties": dict(waiver),
            }
        ]
    out["properties"] = {
        "id": finding.id,
        "kind": kind,
        "severity": finding.severity,
        "src_ip": finding.src_ip,
        "dst_ip": finding.dst_ip,
        "dst_port": finding.dst_port,
        "proto": finding.proto,
        "src_role": finding.src_role,
        "dst_role": finding.dst_role,
        "first_seen": finding.first_seen,
        "last_seen": finding.last_seen,
        "packets": finding.packets,
        "bytes": finding.bytes,
        "flow_ids": list(finding.flow_ids),
        "community_ids": list(finding.community_ids),
        "evidence": dict(finding.evidence),
        "source": dict(finding.source) if finding.source is not None else None,
        "tags": [kind, finding.severity],
    }
    return out


def _artifact(capture: CaptureRecord) -> dict[str, Any]:
    artifact: dict[str, Any] = {
        "location": {"uri": capture_uri(capture.path)},
        "roles": ["analysisTarget"],
    }
    mime = _MIME_TYPES.get(str(capture.format))
    if mime:
        artifact["mimeType"] = mime
    artifact["properties"] = {k: v for k, v in capture.to_json().items() if k != "path"}
    return artifact


def _notifications(captures: Sequence[CaptureRecord]) -> list[dict[str, Any]]:
    notes: list[dict[str, Any]] = []
    for index, capture in enumerate(captures):
        path = capture.path
        where = [_artifact_location(index, capture_uri(path))]
        if capture.error:
            text = f"{path}: {capture_error(capture)}"
            notes.append({"level": "error", "message": {"text": text}, "locations": where})
        if capture.truncated:
            text = f"{path}: {truncation(capture)}."
            notes.append({"level": "warning", "message": {"text": text}, "locations": where})
        for warning in capture.warnings:
            text = f"{path}: {warning}"
            notes.append({"level": "warning", "message": {"text": text}, "locations": where})
        errors = capture.decode_errors
        if errors:
            counts = ", ".join(f"{reason} x{n}" for reason, n in errors.items())
            text = f"{path}: packets that could not be fully decoded: {counts}."
            notes.append({"level": "note", "message": {"text": text}, "locations": where})
    return notes


def to_sarif(result: Result) -> dict[str, Any]:
    """The SARIF log for ``result``, as a dict."""
    doc = as_document(result)
    tool, ruleset, summary, captures = doc.tool, doc.ruleset, doc.summary, doc.captures
    rules, rule_index = _rules(doc)
    readable = [(i, capture_uri(c.path), c) for i, c in enumerate(captures) if not c.error]
    exit_code = summary.exit_code
    invocation: dict[str, Any] = {
        "executionSuccessful": exit_code in (0, 1),
    }
    if isinstance(exit_code, int):
        invocation["exitCode"] = exit_code
    notifications = _notifications(captures)
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    invocation["properties"] = {
        "fail_on": doc.fail_on,
        "inventory": doc.inventory,
    }
    version = str(tool.get("version") or "")
    driver: dict[str, Any] = {
        "name": str(tool.get("name") or "pcap-audit"),
        "version": version,
        "informationUri": str(tool.get("information_uri") or INFORMATION_URI),
        "rules": rules,
    }
    if re.fullmatch(r"\d+\.\d+\.\d+", version):
        driver["semanticVersion"] = version
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "automationDetails": {"id": f"pcap-audit/{ruleset.get('name') or 'ruleset'}/"},
        "artifacts": [_artifact(c) for c in captures],
        "invocations": [invocation],
        "results": [_result(f, rule_index, readable) for f in doc.findings],
        "properties": {
            "ruleset": {
                "name": ruleset.get("name"),
                "title": ruleset.get("title"),
                "source_documents": as_list(ruleset.get("source_documents")),
            },
            "summary": summary.to_json(),
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def render(result: Result) -> str:
    """The SARIF log for ``result`` as indented JSON with a trailing newline."""
    return json_text(json.dumps(to_sarif(result), indent=2, ensure_ascii=False)) + "\n"
