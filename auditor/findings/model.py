"""The audit's results as values: a finding, the summary, the result document.

Frozen dataclasses, each with one ``to_json()`` that writes exactly the JSON contract
(docs/json-contract.md, key order included) and a tolerant ``from_json()`` that reads a
saved result back (``pcap-audit report``, the store). The checks build :class:`Finding`
objects, the engine an :class:`AuditDocument`; waivers, the store and the renderers read
their attributes. Free-form JSON inside them (a finding's ``evidence`` and ``source``, the
roles, the role pairs) stays a read-only mapping: the contract leaves it open. The capture
record (:class:`~auditor.sources.record.CaptureRecord`) is built by the readers, below this
layer, and only carried here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from auditor.sources.record import CaptureRecord

__all__ = ["AuditDocument", "CaptureRecord", "Finding", "Summary"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, MappingProxyType):
        return value
    return MappingProxyType(dict(value))


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding (``findings[]``). ``evidence`` is free-form key -> value, ``source`` the
    cited rule's words (``document``, ``section``, ``text``, ``notes``) or None, ``waiver``
    the waiver that covers it (only then present in the JSON)."""

    id: str
    kind: str
    severity: str
    src_ip: str | None
    dst_ip: str | None
    dst_port: int | None
    proto: str | None
    src_role: str | None
    dst_role: str | None
    rule_id: str | None
    message: str
    first_seen: str | None
    last_seen: str | None
    packets: int
    bytes: int
    flow_ids: tuple[str, ...] = ()
    community_ids: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    source: Mapping[str, Any] | None = None
    waiver: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", _frozen(self.evidence))
        object.__setattr__(self, "source", _frozen(self.source))
        object.__setattr__(self, "waiver", _frozen(self.waiver))
        if not isinstance(self.flow_ids, tuple):
            object.__setattr__(self, "flow_ids", tuple(self.flow_ids))
        if not isinstance(self.community_ids, tuple):
            object.__setattr__(self, "community_ids", tuple(self.community_ids))

    @property
    def waived(self) -> bool:
        return self.waiver is not None

    def with_evidence(self, **more: Any) -> Finding:
        """This finding with ``more`` evidence keys (added last, or replacing their value)."""
        return replace(self, evidence={**self.evidence, **more})

    def to_json(self) -> dict[str, Any]:
        """The contract's finding object."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "src_ip": self.src_ip,
            "dst_ip": self.dst_ip,
            "dst_port": self.dst_port,
            "proto": self.proto,
            "src_role": self.src_role,
            "dst_role": self.dst_role,
            "rule_id": self.rule_id,
            "message": self.message,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "packets": self.packets,
            "bytes": self.bytes,
            "flow_ids": list(self.flow_ids),
            "community_ids": list(self.community_ids),
            "evidence": dict(self.evidence),
            "source": _plain(self.source),
        }
        if self.waiver is not None:
            out["waiver"] = dict(self.waiver)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Finding:
        """A finding object of a saved result; missing keys read as null (or 0, ``[]``)."""
        evidence = d.get("evidence")
        source, waiver = d.get("source"), d.get("waiver")
        return cls(
            id=str(d.get("id") or ""),
            kind=str(d.get("kind") or ""),
            severity=str(d.get("severity") or "info"),
            src_ip=d.get("src_ip"),
            dst_ip=d.get("dst_ip"),
            dst_port=d.get("dst_port"),
            proto=d.get("proto"),
            src_role=d.get("src_role"),
            dst_role=d.get("dst_role"),
            rule_id=d.get("rule_id"),
            message=str(d.get("message") or ""),
            first_seen=d.get("first_seen"),
            last_seen=d.get("last_seen"),
            packets=int(d.get("packets") or 0),
            bytes=int(d.get("bytes") or 0),
            flow_ids=tuple(d.get("flow_ids") or ()),
            community_ids=tuple(d.get("community_ids") or ()),
            evidence=evidence if isinstance(evidence, Mapping) else {},
            source=source if isinstance(source, Mapping) else None,
            waiver=waiver if isinstance(waiver, Mapping) else None,
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """``summary``: counts and the exit code. ``duplicates_dropped`` (``--dedup``) and
    ``waived`` (``--waivers``) are None when not asked for, and then not in the JSON.
    Read from a saved result, a count it lacks is None."""

    packets: int | None
    flows: int | None
    findings: int | None
    by_kind: Mapping[str, int] | None
    by_severity: Mapping[str, int] | None
    duration_s: float | None
    coverage_s: float | None
    skipped_files: int | None
    exit_code: int | None
    duplicates_dropped: int | None = None
    waived: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_kind", _frozen(self.by_kind))
        object.__setattr__(self, "by_severity", _frozen(self.by_severity))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "packets": self.packets,
            "flows": self.flows,
            "findings": self.findings,
            "by_kind": _plain(self.by_kind),
            "by_severity": _plain(self.by_severity),
            "duration_s": self.duration_s,
            "coverage_s": self.coverage_s,
            "skipped_files": self.skipped_files,
            "exit_code": self.exit_code,
        }
        if self.duplicates_dropped is not None:
            out["duplicates_dropped"] = self.duplicates_dropped
        if self.waived is not None:
            out["waived"] = self.waived
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Summary:
        d = d or {}
        by_kind, by_sev = d.get("by_kind"), d.get("by_severity")
        return cls(
            packets=d.get("packets"),
            flows=d.get("flows"),
            findings=d.get("findings"),
            by_kind=by_kind if isinstance(by_kind, Mapping) else None,
            by_severity=by_sev if isinstance(by_sev, Mapping) else None,
            duration_s=d.get("duration_s"),
            coverage_s=d.get("coverage_s", d.get("duration_s")),
            skipped_files=d.get("skipped_files"),
            exit_code=d.get("exit_code"),
            duplicates_dropped=d.get("duplicates_dropped"),
            waived=d.get("waived"),
        )


#: the top-level keys of the result, in the contract's order
_TOP = (
    "tool",
    "ruleset",
    "inventory",
    "fail_on",
    "captures",
    "summary",
    "roles",
    "role_pairs",
    "findings",
    "waivers",
    "deep",
)


@dataclass(frozen=True, slots=True)
class AuditDocument:
    """The audit result (docs/json-contract.md): what every renderer reads.

    ``tool`` and ``ruleset`` are the contract's objects as read-only mappings, ``roles`` and
    ``role_pairs`` tuples of them (``roles`` may also be another immutable sequence:
    :class:`auditor.rolemap.RoleEntries` makes the entries of 100,000 inventory addresses
    when read, and gives the JSON renderer their text at once); ``waivers``
    (``--waivers``) and ``deep`` (``--deep``) are None when not asked for. ``extra`` keeps
    the keys of a saved result this version does not know, so that reading and writing it
    loses nothing."""

    tool: Mapping[str, Any]
    ruleset: Mapping[str, Any]
    inventory: str | None
    fail_on: str | None
    captures: tuple[CaptureRecord, ...]
    summary: Summary
    roles: Sequence[Mapping[str, Any]]
    role_pairs: tuple[Mapping[str, Any], ...]
    findings: tuple[Finding, ...]
    waivers: Mapping[str, Any] | None = None
    deep: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        for name in ("tool", "ruleset", "waivers", "deep", "extra"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        for name in ("captures", "roles", "role_pairs", "findings"):
            value = getattr(self, name)
            if not isinstance(value, tuple) and not _immutable_roles(name, value):
                object.__setattr__(self, name, tuple(value))

    def with_findings(self, findings: Iterable[Finding]) -> AuditDocument:
        return replace(self, findings=tuple(findings))

    def to_json(self) -> dict[str, Any]:
        """The result document as the JSON contract has it (a new dict each call)."""
        out: dict[str, Any] = {
            "tool": dict(self.tool),
            "ruleset": dict(self.ruleset),
            "inventory": self.inventory,
            "fail_on": self.fail_on,
            "captures": [c.to_json() for c in self.captures],
            "summary": self.summary.to_json(),
            "roles": [dict(r) for r in self.roles],
            "role_pairs": [dict(p) for p in self.role_pairs],
            "findings": [f.to_json() for f in self.findings],
        }
        if self.waivers is not None:
            out["waivers"] = dict(self.waivers)
        if self.deep is not None:
            out["deep"] = dict(self.deep)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AuditDocument:
        """A result document (a saved ``--format json``): tolerant of missing keys (read
        as null or empty), keeping unknown ones in ``extra``."""
        waivers, deep = d.get("waivers"), d.get("deep")
        return cls(
            tool=_mapping(d.get("tool")),
            ruleset=_mapping(d.get("ruleset")),
            inventory=d.get("inventory"),
            fail_on=d.get("fail_on"),
            captures=tuple(
                CaptureRecord.from_json(c) for c in _list(d.get("captures")) if _is_map(c)
            ),
            summary=Summary.from_json(_mapping(d.get("summary"))),
            roles=tuple(_frozen(r) or _EMPTY for r in _list(d.get("roles")) if _is_map(r)),
            role_pairs=tuple(
                _frozen(p) or _EMPTY for p in _list(d.get("role_pairs")) if _is_map(p)
            ),
            findings=tuple(Finding.from_json(f) for f in _list(d.get("findings")) if _is_map(f)),
            waivers=waivers if isinstance(waivers, Mapping) else None,
            deep=deep if isinstance(deep, Mapping) else None,
            extra={k: v for k, v in d.items() if k not in _TOP},
        )


def _immutable_roles(name: str, value: object) -> bool:
    return (
        name == "roles" and isinstance(value, Sequence) and not isinstance(value, MutableSequence)
    )


def as_document(result: AuditDocument | Mapping[str, Any]) -> AuditDocument:
    """``result`` typed: a document as it is, a result dict (a saved result) read."""
    return result if isinstance(result, AuditDocument) else AuditDocument.from_json(result)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_map(value: object) -> bool:
    return isinstance(value, Mapping)


def _list(value: object) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    return []
