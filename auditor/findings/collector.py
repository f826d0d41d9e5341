"""Collecting findings: stable ids, severities resolved against the rules, the vendor's words.

Every check hands its rows to :class:`Findings`; the small helpers here (role lists as text,
values in order of first appearance, an endpoint for a message) are what the checks share,
so each check module reads the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from auditor.findings.model import Finding
from auditor.rules import Deny, Rule, Ruleset
from auditor.rules.kinds import DEFAULT_SEVERITY

if TYPE_CHECKING:
    import duckdb


def distinct(values: list[Any] | None) -> list[Any]:
    """Each value once, in order of first appearance (what list(DISTINCT) gives, one thread)."""
    return list(dict.fromkeys(values)) if values else []


class Findings:
    """Collects findings with stable ids and severities resolved against the rules."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.rules: dict[str, Rule] = {r.id: r for r in ruleset.flows}
        self.denies: dict[str, Deny] = {d.id: d for d in ruleset.denies}
        self.roles_by_id = {r.id: r for r in ruleset.roles}
        self.items: list[Finding] = []

    def severity(self, kind: str, rule_id: str | None, default: str | None = None) -> str:
        """The rule's override for ``kind`` if it has one, else ``default``, else the kind's."""
        rule = self.rules.get(rule_id or "")
        override = (rule.severity or {}).get(kind) if rule else None
        deny = self.denies.get(rule_id or "")
        if deny is not None and kind == "prohibited_flow":
            override = deny.severity
        return override or default or DEFAULT_SEVERITY[kind]

    def source(self, rule_id: str | None) -> dict[str, Any] | None:
        cited: Rule | Deny | None = self.denies.get(rule_id or "") or self.rules.get(rule_id or "")
        if cited is None:
            return None
        return {
            "document": cited.source.document,
            "section": cited.source.section,
            "text": cited.source.text,
            "notes": list(cited.notes),
        }

    def add(
        self,
        kind: str,
        row: dict[str, Any],
        rule_id: str | None,
        message: str,
        evidence: dict[str, Any],
        severity: str,
        source: Mapping[str, Any] | Literal["rule"] | None = "rule",
    ) -> None:
        """A finding from a query row; the columns every finding reports may be missing.
        ``source``: the words cited, when not the rule's."""
        rule_ids = row.get("rule_ids")
        if rule_ids and len(rule_ids) > 1:
            evidence["matching_rules"] = list(rule_ids)
        self.put(
            kind,
            severity,
            rule_id,
            message,
            evidence,
            row.get("src_ip"),
            row.get("dst_ip"),
            row.get("dst_port"),
            row.get("proto"),
            roles_text(row.get("src_roles")),
            roles_text(row.get("dst_roles")),
            row.get("first_seen"),
            row.get("last_seen"),
            row.get("packets"),
            row.get("bytes"),
            row.get("flow_ids") or [],
            row.get("community_ids") or [],
            source,
            flows=row.get("flows"),
        )

    def put(
        self,
        kind: str,
        severity: str,
        rule_id: str | None,
        message: str,
        evidence: dict[str, Any],
        src_ip: str | None,
        dst_ip: str | None,
        dst_port: int | None,
        proto: str | None,
        src_role: str | None,
        dst_role: str | None,
        first_seen: str | None,
        last_seen: str | None,
        packets: int | None,
        nbytes: int | None,
        flow_ids: list[str],
        community_ids: list[str],
        source: Mapping[str, Any] | Literal["rule"] | None = "rule",
        *,
        flows: int | None = None,
    ) -> None:
        """A finding from its parts. Timestamps come as ISO text, written by the queries;
        ``source`` is the cited rule's words unless given. ``flows``: how many flows are
        behind it, when ``flow_ids`` lists only the first (queries.FLOW_IDS): the evidence
        says so."""
        if flows is not None and flows > len(flow_ids):
            evidence.setdefault("flows", flows)
            evidence["flow_ids_truncated"] = True
        # stable night to night: what and where, not the (possibly inferred) roles, unless
        # there is no address to say where (missing_flow)
        ident = f"{kind}|{rule_id}|{src_ip}|{dst_ip}|{dst_port}|{proto}"
        if src_ip is None:
            ident += f"|{src_role}|{dst_role}"
        digest = hashlib.blake2b(ident.encode(), digest_size=6).hexdigest()
        self.items.append(
            Finding(
                id=f"{kind[:3].upper()}-{digest}",
                kind=kind,
                severity=severity,
                src_ip=src_ip,
                dst_ip=dst_ip,
                dst_port=dst_port,
                proto=proto,
                src_role=src_role,
                dst_role=dst_role,
                rule_id=rule_id,
                message=message,
                first_seen=first_seen,
                last_seen=last_seen,
                packets=int(packets or 0),
                bytes=int(nbytes or 0),
                flow_ids=tuple(flow_ids),
                community_ids=tuple(
                    sorted(set(community_ids)) if len(community_ids) > 1 else community_ids
                ),
                evidence=evidence,
                source=self.source(rule_id) if source == "rule" else source,
            )
        )


def roles_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    return "+".join(v) if v else None


def rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or {})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]


def endpoint(row: dict[str, Any]) -> str:
    return f"{row['src_ip']} -> {row['dst_ip']}:{row['dst_port']}/{row['proto']}"


def values(joined: str | None) -> list[str]:
    """A string_agg(..., ' ') column back into its values, each once, in order of first
    appearance: what list(DISTINCT ...) gives single-threaded."""
    if not joined:
        return []
    if " " not in joined:  # one flow, or one value: most findings
        return [joined]
    return [v for v in dict.fromkeys(joined.split(" ")) if v]


def ports_text(rule: Rule) -> str:
    parts = [str(p) for p in rule.ports] + [f"{lo}-{hi}" for lo, hi in rule.port_ranges]
    return f"{rule.proto}/{','.join(parts)}"


def covers(rule: Rule, port: int) -> bool:
    return port in rule.ports or any(lo <= port <= hi for lo, hi in rule.port_ranges)
