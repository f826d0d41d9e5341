"""What every renderer needs from the audit result, computed once and the same way.

The renderers read only the audit result (docs/json-contract.md), typed
(:class:`~auditor.findings.model.AuditDocument`; a saved result's dict is read with
``as_document``). Labels, groupings and the role-to-role matrix are derived here so that
the table, the HTML page and the Markdown ticket all say the same thing in the same words. Strings in the result may come
from the wire (HTTP Host, SNI, User-Agent): `printable` (from :mod:`auditor.escape`, shared
with every other output) makes them safe to show as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from auditor.escape import printable  # (re-exported for the renderers)
from auditor.findings.model import AuditDocument, CaptureRecord, Finding, Summary, as_document
from auditor.rules.kinds import KIND_TABLE
from auditor.rules.model import SEVERITIES
from auditor.units import human_bytes  # noqa: F401  (re-exported for the renderers)

#: a result as the renderers take it: typed, or the contract's dict (a saved result)
Result = AuditDocument | Mapping[str, Any]
#: a finding: typed, or a finding object of the contract (a saved result, a store row)
AnyFinding = Finding | Mapping[str, Any]
#: a capture record: typed, or the contract's capture object
AnyCapture = CaptureRecord | Mapping[str, Any]


def finding_of(finding: AnyFinding) -> Finding:
    return finding if isinstance(finding, Finding) else Finding.from_json(finding)


def capture_of(capture: AnyCapture) -> CaptureRecord:
    return capture if isinstance(capture, CaptureRecord) else CaptureRecord.from_json(capture)


#: Finding kinds in the audit's order (findings sort by severity, then this order):
#: (title, one-line description, longer description), from the one table of kinds
#: (auditor.rules.kinds). Used for the rules SARIF synthesises for findings without a
#: ruleset rule, and for legends.
KINDS: dict[str, tuple[str, str, str]] = {
    k.name: (k.title, k.summary, k.description) for k in KIND_TABLE
}


def capture_error(capture: AnyCapture) -> str:
    """A capture's error without the path repeated in front of it (``""`` when none)."""
    capture = capture_of(capture)
    error = capture.error
    if not error:
        return ""
    text, path = str(error), capture.path
    if path and text.startswith(path + ":"):
        text = text[len(path) + 1 :].lstrip()
    return printable(text)


def truncation(capture: AnyCapture) -> str:
    """Why a truncated capture is, in words (``""`` when it is not)."""
    capture = capture_of(capture)
    if not capture.truncated:
        return ""
    at = capture.detail("truncated_at")
    where = f" at byte {at}" if isinstance(at, int) and not isinstance(at, bool) else ""
    return f"truncated: reading stopped before a clean end of the file{where}"


def time_covered(summary: Summary | Mapping[str, Any]) -> str:
    """``coverage 1m 00s`` and, when the captures leave gaps, ``(span 2h 03m)``: the time
    the captures cover (what missing_flow is graded on) and first-to-last packet."""
    if not isinstance(summary, Summary):
        summary = Summary.from_json(summary)
    span = summary.duration_s
    coverage = summary.coverage_s
    text = f"coverage {human_duration(coverage)}"
    if isinstance(span, int | float) and isinstance(coverage, int | float) and span - coverage > 1:
        text += f" (span {human_duration(span)})"
    return text


def capture_problems(capture: AnyCapture) -> list[str]:
    """What a read capture says about itself, one line each: its warnings (the first of
    them the problems that leave traffic unaudited), else why it is truncated."""
    capture = capture_of(capture)
    warnings = [printable(w) for w in capture.warnings]
    if not warnings and capture.truncated:
        warnings = [truncation(capture)]
    return warnings


def as_list(value: object) -> list[Any]:
    """A list-valued field, tolerating null."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def text_or_dash(value: object) -> str:
    return "-" if value is None or value == "" else printable(value)


def endpoint(ip: object, port: object = None) -> str:
    """``10.0.0.9:3009`` or ``[fe80::1]:443``; the port is left out when null."""
    host = printable(ip)
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def port_proto(port: object, proto: object) -> str:
    """``3009/tcp``; ``icmp`` when there is no port."""
    p = printable(proto).lower() if proto else "?"
    return p if port is None else f"{port}/{p}"


def flow_label(finding: AnyFinding) -> str:
    """The flow a finding is about, by address when known, else by role.

    ``10.0.0.5 -> 10.0.0.9:3009/tcp``; a missing flow has no addresses:
    ``agent -> appliance:8016/tcp``; no port: ``10.0.0.5 -> 10.0.0.9 (icmp)``.
    """
    finding = finding_of(finding)
    src_ip, dst_ip = finding.src_ip, finding.dst_ip
    src = endpoint(src_ip) if src_ip else printable(finding.src_role or "?")
    port, proto = finding.dst_port, finding.proto
    if is_host_finding(finding):
        return printable(src_ip) if src_ip else src
    dst = endpoint(dst_ip) if dst_ip else printable(finding.dst_role or "?")
    if port is None:
        return f"{src} -> {dst} ({printable(proto or '?').lower()})"
    return f"{src} -> {dst}:{port_proto(port, proto)}"


def is_host_finding(finding: AnyFinding) -> bool:
    """True for a finding about a host rather than a flow (unknown_host): nothing is
    known of a destination."""
    finding = finding_of(finding)
    return (
        not finding.dst_ip
        and not finding.dst_role
        and finding.dst_port is None
        and not finding.proto
    )


def role_label(finding: AnyFinding) -> str:
    """``agent -> appliance``, with ``?`` for an unknown role; a host finding's role alone
    (``no role`` when it has none)."""
    finding = finding_of(finding)
    if is_host_finding(finding):
        return printable(finding.src_role or "no role")
    src = printable(finding.src_role or "?")
    dst = printable(finding.dst_role or "?")
    return f"{src} -> {dst}"


def citation(source: Mapping[str, Any] | None) -> str:
    """``000_41baf20abd3428d3.txt, section "Internal connections"``."""
    if not source:
        return ""
    document = printable(source.get("document") or "")
    section = printable(source.get("section") or "")
    if document and section:
        return f'{document}, section "{section}"'
    return document or (f'section "{section}"' if section else "")


def group_by_severity(findings: Iterable[Finding]) -> list[tuple[str, list[Finding]]]:
    """Findings grouped in severity order, keeping their order inside a group.

    Severities outside the contract come last, in order of appearance.
    """
    groups: dict[str, list[Finding]] = {s: [] for s in SEVERITIES}
    for finding in findings:
        groups.setdefault(finding.severity or "info", []).append(finding)
    return [(sev, items) for sev, items in groups.items() if items]


def severity_counts(result: Result) -> dict[str, int]:
    """Counts per severity: the summary's when present, else counted from findings."""
    doc = as_document(result)
    given = doc.summary.by_severity
    counts = {s: 0 for s in SEVERITIES}
    if given is not None:
        for sev, n in given.items():
            counts[str(sev)] = int(n)
        return counts
    for finding in doc.findings:
        sev = finding.severity or "info"
        counts[sev] = counts.get(sev, 0) + 1
    return counts


def kind_counts(result: Result) -> dict[str, int]:
    """Counts per kind: the summary's when present, else counted from findings."""
    doc = as_document(result)
    given = doc.summary.by_kind
    if given is not None:
        return {str(k): int(n) for k, n in given.items()}
    counts: dict[str, int] = {}
    for finding in doc.findings:
        kind = finding.kind or "?"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def human_duration(seconds: object) -> str:
    """``5m 00s``, ``2h 03m``, ``12.5s``."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s" if s % 1 else f"{int(s)}s"
    minutes, sec = divmod(round(s), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def short_time(value: object) -> str:
    """``2024-05-14 09:01:12`` from an ISO 8601 timestamp; ``-`` for null."""
    if not isinstance(value, str) or not value:
        return "-"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return printable(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def time_span(first: object, last: object) -> str:
    """``2024-05-14 09:01:12 - 09:04:51 UTC`` (the date once when both share it)."""
    start, end = short_time(first), short_time(last)
    if start == "-" and end == "-":
        return "not seen"
    if start[:10] == end[:10] and len(end) == 19:
        end = end[11:]
    return f"{start} - {end} UTC"


def number(n: object) -> str:
    """``12,345``; ``-`` for null."""
    if isinstance(n, bool) or not isinstance(n, int | float):
        return "-" if n is None else printable(n)
    return f"{n:,}"


#: list items a report for people shows of one evidence value (the terminal, Markdown):
#: the rest are counted, and the JSON, CSV, SARIF and HTML carry them all
LISTED = 20


def scalar_text(value: object, most: int | None = None) -> str:
    """An evidence value as one line of text: lists joined (the first ``most`` items and
    how many more, when given), booleans lower-case."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        if not value:
            return "-"
        shown = value if most is None or len(value) <= most else value[:most]
        text = ", ".join(scalar_text(v, most) for v in shown)
        more = len(value) - len(shown)
        return f"{text}, … {more:,} more" if more else text
    if isinstance(value, Mapping):
        return ", ".join(f"{printable(k)}={scalar_text(v, most)}" for k, v in value.items())
    return printable(value)


# --- role-to-role picture ----------------------------------------------------------


@dataclass(frozen=True)
class PortCell:
    """One protocol/port between two roles, and how it compares with the ruleset."""

    proto: str
    port: int | None
    port_hi: int | None
    documented: bool
    observed: bool
    flows: int
    rule_ids: tuple[str, ...]

    @property
    def status(self) -> str:
        """``ok`` (documented, seen), ``undocumented`` (seen only), ``unseen``
        (documented only)."""
        if self.observed and self.documented:
            return "ok"
        return "undocumented" if self.observed else "unseen"

    @property
    def label(self) -> str:
        """``443/tcp``; a documented range nobody used: ``3000-3016/tcp``."""
        if self.port_hi is not None and self.port is not None and not self.observed:
            return f"{self.port}-{self.port_hi}/{self.proto}"
        return port_proto(self.port, self.proto)


@dataclass
class RoleMatrix:
    """Rows are source roles, columns destination roles, cells the ports between them."""

    rows: list[str] = field(default_factory=list)
    cols: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str], list[PortCell]] = field(default_factory=dict)

    def cell(self, src: str, dst: str) -> list[PortCell]:
        return self.cells.get((src, dst), [])


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _port_key(cell: PortCell) -> tuple[int, str]:
    return (cell.port if cell.port is not None else -1, cell.proto)


def _role_key(role: str) -> tuple[bool, str]:
    return (role == "?", role)  # hosts without a role last


def role_matrix(role_pairs: Sequence[Mapping[str, Any]] | None) -> RoleMatrix:
    """Build the role-to-role matrix from ``role_pairs``.

    Roles sort alphabetically, with ``?`` (hosts no role was found for, a null role)
    last; the ports in a cell sort by number then protocol.
    """
    matrix = RoleMatrix()
    rows: set[str] = set()
    cols: set[str] = set()
    for pair in role_pairs or []:
        src = str(pair.get("src_role") or "?")
        dst = str(pair.get("dst_role") or "?")
        rows.add(src)
        cols.add(dst)
        matrix.cells.setdefault((src, dst), []).append(
            PortCell(
                proto=str(pair.get("proto") or "?").lower(),
                port=_int_or_none(pair.get("dst_port")),
                port_hi=_int_or_none(pair.get("port_hi")),
                documented=bool(pair.get("documented")),
                observed=bool(pair.get("observed")),
                flows=int(pair.get("flows") or 0),
                rule_ids=tuple(str(r) for r in as_list(pair.get("rule_ids"))),
            )
        )
    matrix.rows = sorted(rows, key=_role_key)
    matrix.cols = sorted(cols, key=_role_key)
    for cells in matrix.cells.values():
        cells.sort(key=_port_key)
    return matrix


def waiver_text(finding: AnyFinding) -> str:
    """``waived until 2026-03-31 by alice: BITS until the HTTPS switch`` for a waived
    finding (``Finding.waiver``); ``""`` for any other."""
    waiver = finding_of(finding).waiver
    if waiver is None:
        return ""
    return printable(
        f"waived until {waiver.get('expires') or '?'} by {waiver.get('owner') or '?'}: "
        f"{waiver.get('reason') or ''}"
    )
