"""flows x roles x rules -> findings -> the audit result (the JSON contract).

The joins are DuckDB SQL (``queries.py``); this module runs them, turns each result row into
a finding (message, severity, evidence, the vendor's words) and assembles the result
document that every renderer derives from. Severity defaults per kind are in
``DEFAULT_SEVERITY``; a rule may override them (``severity:`` in the ruleset).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from auditor import __version__, duck
from auditor.errors import ExitCode
from auditor.findings import queries
from auditor.flows_out import public_flows
from auditor.roles import RoleMap, resolve_roles
from auditor.rules import (
    FINDING_KINDS,
    SEVERITIES,
    Inventory,
    Rule,
    Ruleset,
    rules_table,
)
from auditor.traffic import Traffic, iso, read_traffic
from auditor.units import human_bytes

KINDS = FINDING_KINDS  # the order findings sort and reports list them in
DEFAULT_SEVERITY = {
    "plaintext_disk_transfer": "high",
    "plaintext_where_tls_required": "high",
    "mtls_not_observed": "medium",  # info when not verifiable (TLS 1.3, handshake not seen)
    "weak_tls": "medium",
    "unexpected_port": "medium",  # low when one endpoint has no role
    "missing_flow": "medium",  # graded by capture length: < 1 h info, < 24 h low
    "unknown_host": "info",
}
HOUR, DAY = 3600.0, 86400.0
#: more distinct unexpected ports on one host (or hosts on one port) than this from one
#: source is a scan: one finding for it, not one per port
SCAN_TARGETS = 50
#: cleartext payload from which a flow on a disk-transfer rule counts as a disk transfer
MIN_DISK_BYTES = 64 * 1024


@dataclass
class AuditResult:
    """The audit's result document and the traffic it stands on."""

    document: dict[str, Any]
    traffic: Traffic
    exit_code: ExitCode
    errors: list[str] = field(default_factory=list)


def _ts(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    return iso(int(v))


class _Findings:
    """Collects findings with stable ids and severities resolved against the rules."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.rules: dict[str, Rule] = {r.id: r for r in ruleset.flows}
        self.items: list[dict[str, Any]] = []

    def severity(self, kind: str, rule_id: str | None, default: str | None = None) -> str:
        """The rule's override for ``kind`` if it has one, else ``default``, else the kind's."""
        rule = self.rules.get(rule_id or "")
        override = (rule.severity or {}).get(kind) if rule else None
        return override or default or DEFAULT_SEVERITY[kind]

    def source(self, rule_id: str | None) -> dict[str, Any] | None:
        rule = self.rules.get(rule_id or "")
        if rule is None:
            return None
        return {
            "document": rule.source.document,
            "section": rule.source.section,
            "text": rule.source.text,
            "notes": list(rule.notes),
        }

    def add(
        self,
        kind: str,
        row: dict[str, Any] | None,
        rule_id: str | None,
        message: str,
        evidence: dict[str, Any],
        severity: str,
        **fields: Any,
    ) -> None:
        row = row or {}
        if len(row.get("rule_ids") or ()) > 1:
            evidence["matching_rules"] = list(row["rule_ids"])
        f: dict[str, Any] = {
            "id": "",
            "kind": kind,
            "severity": severity,
            "src_ip": row.get("src_ip"),
            "dst_ip": row.get("dst_ip"),
            "dst_port": row.get("dst_port"),
            "proto": row.get("proto"),
            "src_role": _roles(row.get("src_roles")),
            "dst_role": _roles(row.get("dst_roles")),
            "rule_id": rule_id,
            "message": message,
            "first_seen": _ts(row.get("first_seen")),
            "last_seen": _ts(row.get("last_seen")),
            "packets": int(row.get("packets") or 0),
            "bytes": int(row.get("bytes") or 0),
            "flow_ids": list(row.get("flow_ids") or []),
            "community_ids": sorted(row.get("community_ids") or []),
            "evidence": evidence,
            "source": self.source(rule_id),
        }
        f.update(fields)
        # stable night to night: what and where, not the (possibly inferred) roles, unless
        # there is no address to say where (missing_flow)
        keys = ["kind", "rule_id", "src_ip", "dst_ip", "dst_port", "proto"]
        if f["src_ip"] is None:
            keys += ["src_role", "dst_role"]
        ident = "|".join(str(f[k]) for k in keys)
        f["id"] = (
            kind[:3].upper() + "-" + hashlib.blake2b(ident.encode(), digest_size=6).hexdigest()
        )
        self.items.append(f)


def _roles(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    return "+".join(v) if v else None


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or {})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _endpoint(row: dict[str, Any]) -> str:
    return f"{row['src_ip']} -> {row['dst_ip']}:{row['dst_port']}/{row['proto']}"


def run_checks(
    ruleset: Ruleset, flows: pa.Table, roles: RoleMap, capture_seconds: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All checks over one flow table; returns (findings, role_pairs)."""
    with duck.cursor() as con:
        return _run_checks(con, ruleset, flows, roles, capture_seconds)


def _run_checks(
    con: duckdb.DuckDBPyConnection,
    ruleset: Ruleset,
    flows: pa.Table,
    roles: RoleMap,
    capture_seconds: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    host_roles = roles.table()
    con.register("flows", _flow_input(flows))
    con.register("host_roles", host_roles)
    con.register("rules", rules_table(ruleset))
    inv = roles.from_inventory
    con.execute(queries.PREPARE, {"inventory": inv})
    out = _Findings(ruleset)
    (scans,) = con.execute(
        f"CREATE OR REPLACE TEMP TABLE scans AS {queries.SCANS}", {"scan": SCAN_TARGETS}
    ).fetchone() or (0,)
    if scans:
        con.execute(queries.MARK_SCANS)

    by_pair: dict[tuple[str, str], list[Rule]] = {}
    for r in ruleset.flows:
        by_pair.setdefault((r.from_role, r.to_role), []).append(r)
    per_kind: dict[str, Callable[[dict[str, Any]], None]] = {
        "plaintext_disk_transfer": lambda row: _disk_transfer(out, row),
        "plaintext_where_tls_required": lambda row: _tls_required(out, row),
        "mtls_not_observed": lambda row: _mtls(out, row),
        "weak_tls": lambda row: _weak_tls(out, row),
        "unexpected_port": lambda row: _unexpected(out, ruleset, row, inv, by_pair),
    }
    for row in _rows(con, queries.FINDINGS, {"min_disk": MIN_DISK_BYTES}):
        per_kind[row["kind"]](row)
    if scans:
        for row in _rows(con, queries.UNEXPECTED_SCAN):
            _scan(out, row, inv)

    pairs: list[dict[str, Any]] = []
    if host_roles.num_rows:  # without roles, nothing is expected between them
        for row in _rows(con, queries.MISSING_FLOW):
            _missing(out, row, capture_seconds)
        if inv:
            for row in _rows(con, queries.UNKNOWN_HOST):
                _unknown_host(out, row)
        pairs = _rows(con, queries.ROLE_PAIRS)

    order = {s: i for i, s in enumerate(SEVERITIES)}
    kinds = {k: i for i, k in enumerate(KINDS)}
    findings = sorted(
        out.items,
        key=lambda f: (
            order[f["severity"]],
            kinds[f["kind"]],
            str(f["src_ip"]),
            str(f["dst_ip"]),
            f["dst_port"] or 0,
            f["id"],
        ),
    )
    return findings, [_pair_json(p) for p in pairs]


def _flow_input(flows: pa.Table) -> pa.Table:
    """The columns the queries read, plus ``i`` (the row number) to join back on."""
    flows = flows.select([c for c in queries.FLOW_COLUMNS if c in flows.column_names])
    # timestamps as int64 ns: DuckDB would hand tz-aware datetimes back through pytz
    ts_cols = [i for i, f in enumerate(flows.schema) if pa.types.is_timestamp(f.type)]
    for i in ts_cols:
        flows = flows.set_column(i, flows.schema.field(i).name, flows.column(i).cast(pa.int64()))
    return flows.append_column("i", pa.array(np.arange(flows.num_rows, dtype=np.int64)))


def _disk_transfer(out: _Findings, row: dict[str, Any]) -> None:
    rule = out.rules[row["rule_id"]]
    what = ", ".join(row["methods"] or []) or next(
        (a for a in row["apps"] or [] if a and a not in ("unknown", "none")), "cleartext"
    )
    agents = row["agents"] or []
    pair = out.rules.get(rule.pair or "")
    tls_port = _ports_text(pair) if pair and pair.encrypted_required else None
    msg = (
        f"{human_bytes(row['payload_bytes'])} of disk/file transfer moved in cleartext "
        f"({what}{' by ' + agents[0] if agents else ''}) on {row['proto']}/{row['dst_port']}"
        f" from {row['src_ip']} to {row['dst_ip']}"
    )
    if rule.encrypted_required:
        msg += f"; the document requires {rule.security.upper()} for this flow"
        sev = out.severity("plaintext_disk_transfer", rule.id)
    elif tls_port:
        msg += f"; the document gives {tls_port} (HTTPS) for the same purpose"
        sev = out.severity("plaintext_disk_transfer", rule.id)
    else:
        msg += "; the document offers no encrypted alternative for this flow"
        sev = out.severity("plaintext_disk_transfer", rule.id, "low")
    ev: dict[str, Any] = {
        "bytes_cleartext": int(row["payload_bytes"]),
        "http_methods": row["methods"] or [],
        "user_agents": agents,
        "targets": (row["targets"] or [])[:10],
        "flows": row["flows"],
        "encrypted_alternative": tls_port,
        "vendor_reason": [
            n for n in rule.notes if "force HTTPS" in n or "performance reasons" in n
        ],
    }
    out.add("plaintext_disk_transfer", row, rule.id, msg + ".", ev, sev)


def _tls_required(out: _Findings, row: dict[str, Any]) -> None:
    rule = out.rules[row["rule_id"]]
    apps = [a for a in row["apps"] or [] if a]
    msg = (
        f"Cleartext {'/'.join(apps) or 'payload'} on {_endpoint(row)}, where the document "
        f"requires {rule.security.upper()} ({rule.id})."
    )
    ev = {
        "apps": apps,
        "payload_bytes": int(row["payload_bytes"]),
        "http_methods": row["methods"] or [],
        "http_hosts": row["hosts"] or [],
        "required_security": rule.security,
        "flows": row["flows"],
    }
    out.add(
        "plaintext_where_tls_required",
        row,
        rule.id,
        msg,
        ev,
        out.severity("plaintext_where_tls_required", rule.id),
    )


def _mtls(out: _Findings, row: dict[str, Any]) -> None:
    rule = out.rules[row["rule_id"]]
    verdict = row["verdict"]
    ev: dict[str, Any]
    if verdict == "no_client_cert":
        msg = (
            f"Mutual TLS required ({rule.id}) but the client sent no certificate on "
            f"{_endpoint(row)} ({row['without_cert']} of {row['flows']} flows)."
        )
        sev = out.severity("mtls_not_observed", rule.id)
        ev = {
            "verifiable": True,
            "tls_versions": row["versions"] or [],
            "certificate_requested": row["cert_requested"],
            "flows_without_client_certificate": row["without_cert"],
        }
    else:
        why = (
            "TLS 1.3 encrypts the certificate exchange"
            if verdict == "tls13"
            else "the TLS handshake is not in the capture"
        )
        msg = f"Mutual TLS required ({rule.id}) on {_endpoint(row)}: not verifiable, {why}."
        sev = "info"
        ev = {"verifiable": False, "reason": why, "tls_versions": row["versions"] or []}
    out.add("mtls_not_observed", row, rule.id, msg, ev, sev)


def _weak_tls(out: _Findings, row: dict[str, Any]) -> None:
    versions = ", ".join(v for v in row["versions"] if v)
    msg = f"{versions} negotiated on documented port {_endpoint(row)}; TLS 1.2 or later expected."
    out.add(
        "weak_tls",
        row,
        row["rule_id"],
        msg,
        {"tls_versions": row["versions"], "flows": row["flows"]},
        out.severity("weak_tls", row["rule_id"]),
    )


def _unknown_host(out: _Findings, row: dict[str, Any]) -> None:
    msg = (
        f"{row['ip']} has no role in the inventory but talks to "
        f"{', '.join(sorted(set(row['peer_roles'])))} ({', '.join(sorted(row['ports']))})."
    )
    out.add(
        "unknown_host",
        {**row, "src_ip": row["ip"]},
        None,
        msg,
        {
            "peers": row["peers"],
            "ports": sorted(row["ports"]),
            "peer_roles": sorted(set(row["peer_roles"])),
        },
        out.severity("unknown_host", None),
    )


def _pair_json(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "src_role": p["src_role"],
        "dst_role": p["dst_role"],
        "proto": p["proto"],
        "dst_port": p["dst_port"],
        "port_hi": p["port_hi"] if p["port_hi"] != p["dst_port"] else None,
        "documented": bool(p["documented"]),
        "observed": bool(p["observed"]),
        "flows": int(p["flows"]),
        "rule_ids": list(p["rule_ids"]),
    }


def _ports_text(rule: Rule) -> str:
    parts = [str(p) for p in rule.ports] + [f"{lo}-{hi}" for lo, hi in rule.port_ranges]
    return f"{rule.proto}/{','.join(parts)}"


def _unexpected(
    out: _Findings,
    ruleset: Ruleset,
    row: dict[str, Any],
    inv: bool,
    by_pair: dict[tuple[str, str], list[Rule]],
) -> None:
    src, dst = row["src_roles"] or [], row["dst_roles"] or []
    between = [r for a in src for b in dst for r in by_pair.get((a, b), ())]
    reverse = [
        r
        for a in dst
        for b in src
        for r in by_pair.get((a, b), ())
        if r.proto == row["proto"] and _covers(r, row["dst_port"])
    ]
    ev: dict[str, Any] = {
        "states": row["states"] or [],
        "apps": [a for a in row["apps"] or [] if a],
        "flows": row["flows"],
        "documented_between_roles": sorted({_ports_text(r) for r in between}),
    }
    variant = row["variant"]
    rule_id = None
    if variant == "undocumented":
        if reverse:
            why = "documented only in the other direction"
            rule_id = reverse[0].id
            ev["reverse_rule_ids"] = [r.id for r in reverse]
        elif between:
            why = "a port not documented between these roles"
        else:
            why = "no documented path between these roles"
        msg = (
            f"{_roles(row['src_roles'])} -> {_roles(row['dst_roles'])} on "
            f"{row['proto']}/{row['dst_port']} ({_endpoint(row)}): {why}."
        )
        sev = out.severity("unexpected_port", rule_id)
    elif variant == "unknown_peer":
        who = row["src_ip"] if not src else row["dst_ip"]
        known = _roles(row["dst_roles"]) if not src else _roles(row["src_roles"])
        scope = "the inventory" if inv else "role inference"
        msg = (
            f"{who} (no role in {scope}) talks to {known} on "
            f"{row['proto']}/{row['dst_port']} ({_endpoint(row)})."
        )
        ev["unplaced_host"] = who
        sev = out.severity("unexpected_port", None, "low")
    else:
        msg = (
            f"Port {row['proto']}/{row['dst_port']} is documented nowhere in the "
            f"'{ruleset.name}' ruleset ({_endpoint(row)})."
        )
        sev = "low"
    if any(s == "rejected" for s in row["states"] or []):
        ev["note"] = "attempt answered by RST: someone tried"
    out.add("unexpected_port", row, rule_id, msg, ev, sev)


def _scan(out: _Findings, row: dict[str, Any], inv: bool) -> None:
    """One unexpected_port finding for a source that tried many ports (or hosts)."""
    everything = [str(x) for x in row["sample"]]
    sample = everything[:20]
    open_ = [str(x) for x in (row["open_sample"] or [])[:20]]
    span = f"{everything[0]} to {everything[-1]}"
    if row["scan"] == "ports":
        what = f"{row['targets']} undocumented {row['proto']} ports on {row['dst_ip']}"
        listed = f"ports {span}"
    else:
        what = f"{row['proto']}/{row['dst_port']}, undocumented, on {row['targets']} hosts"
        listed = f"hosts {span}"
    msg = (
        f"{row['src_ip']} tried {what} ({row['rejected']} refused, {row['answered']} "
        f"answered): a scan, reported once ({listed})."
    )
    ev = {
        "scan": row["scan"],
        "targets": row["targets"],
        "sample": sample,
        "answered": open_,
        "refused": row["rejected"],
        "flows": row["flows"],
        "states": row["states"] or [],
        "flow_ids_truncated": row["flows"] > len(row["flow_ids"] or []),
    }
    known = bool(row["src_roles"]) or bool(row["dst_roles"])
    sev = out.severity("unexpected_port", None, "medium" if known or inv else "low")
    out.add("unexpected_port", row, None, msg, ev, sev)


def _covers(rule: Rule, port: int) -> bool:
    return port in rule.ports or any(lo <= port <= hi for lo, hi in rule.port_ranges)


def _missing(out: _Findings, row: dict[str, Any], seconds: float) -> None:
    rule = out.rules[row["rule_id"]]
    # a rule's override sets the severity for a day or more; shorter captures cap it
    full = out.severity("missing_flow", rule.id)
    if seconds < HOUR:
        grade, sev = "too short to prove a flow missing", "info"
    elif seconds < DAY:
        grade = "shorter than a day: periodic flows may not have run"
        sev = max(full, "low", key=SEVERITIES.index)
    else:
        grade, sev = "a day or more", full
    msg = (
        f"Expected {row['from_role']} -> {row['to_role']} on {_ports_text(rule)} ({rule.id}) "
        f"was not seen in {_duration(seconds)} of capture ({grade})."
    )
    ev = {
        "capture_duration_s": round(seconds, 3),
        "src_hosts": row["src_hosts"],
        "dst_hosts": row["dst_hosts"],
        "expected_ports": _ports_text(rule),
        "pair": rule.pair,
    }
    out.add(
        "missing_flow",
        {
            "proto": rule.proto,
            "dst_port": row["port_lo"],
            "src_roles": [row["from_role"]],
            "dst_roles": [row["to_role"]],
        },
        rule.id,
        msg,
        ev,
        sev,
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * HOUR:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / DAY:.1f} days"


def exit_code_for(
    findings: Sequence[dict[str, Any]], fail_on: str, capture_errors: bool
) -> ExitCode:
    if capture_errors:
        return ExitCode.CAPTURE
    if fail_on != "never":
        limit = SEVERITIES.index(fail_on)
        if any(SEVERITIES.index(f["severity"]) <= limit for f in findings):
            return ExitCode.FINDINGS
    return ExitCode.OK


def audit(
    captures: Iterable[str | os.PathLike[str]],
    ruleset: Ruleset,
    inventory: Inventory | None = None,
    fail_on: str = "medium",
    progress: Callable[[str], None] | None = None,
) -> AuditResult:
    """Read the captures as one traffic set and audit it against ``ruleset``."""
    traffic = read_traffic(captures, progress=progress)
    assert traffic.flows is not None
    flows = public_flows(traffic.flows)
    roles = resolve_roles(ruleset, flows, inventory)
    first, last = traffic.span()
    seconds = (last - first).total_seconds() if first and last else 0.0
    findings, pairs = run_checks(ruleset, flows, roles, seconds)
    code = exit_code_for(findings, fail_on, bool(traffic.errors))
    by_kind = Counter(f["kind"] for f in findings)
    by_sev = Counter(f["severity"] for f in findings)
    doc = {
        "tool": {"name": "pcap-audit", "version": __version__},
        "ruleset": {
            "name": ruleset.name,
            "title": ruleset.title,
            "path": str(ruleset.path) if getattr(ruleset, "path", None) else None,
            "source_documents": list(ruleset.source_documents),
            "rules": [_rule_json(r) for r in ruleset.flows],
        },
        "inventory": str(inventory.path)
        if inventory is not None and getattr(inventory, "path", None)
        else None,
        "fail_on": fail_on,
        "captures": traffic.captures,
        "summary": {
            "packets": traffic.packets,
            "flows": flows.num_rows,
            "findings": len(findings),
            "by_kind": {k: by_kind[k] for k in KINDS if by_kind[k]},
            "by_severity": {s: by_sev[s] for s in SEVERITIES},
            "duration_s": round(seconds, 6),
            "exit_code": int(code),
        },
        "roles": [h.to_json() for h in roles.hosts],
        "role_pairs": pairs,
        "findings": findings,
    }
    return AuditResult(doc, traffic, code, [e.one_line() for e in traffic.errors])


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "from": rule.from_role,
        "to": rule.to_role,
        "proto": rule.proto,
        "ports": list(rule.ports),
        "port_ranges": [list(r) for r in rule.port_ranges],
        "app": rule.app,
        "security": rule.security,
        "disk_transfer": rule.disk_transfer,
        "expected": rule.expected,
        "source": {
            "document": rule.source.document,
            "section": rule.source.section,
            "text": rule.source.text,
        },
    }
