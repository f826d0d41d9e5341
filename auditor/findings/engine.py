"""flows x roles x rules -> findings -> the audit result (the JSON contract).

The joins are DuckDB SQL (``queries.py``); this module runs them, turns each result row into
a finding (message, severity, evidence, the vendor's words) and assembles the result
document that every renderer derives from. Severity defaults per kind are in
``DEFAULT_SEVERITY``; a rule may override them (``severity:`` in the ruleset).

A busy capture makes thousands of findings, nearly all unexpected_port: their rows are
unpacked in place and the rules between two role lists are looked up once per pair of
lists. A query whose answer is known to be empty is not run (MISSING_FLOW when the role
pairs show every expected flow seen, the scan findings when there is no scan).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
from auditor.traffic import Reading, Traffic, read_traffic
from auditor.units import human_bytes

if TYPE_CHECKING:
    import duckdb

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
    #: every diagnostic line (errors, warnings, skipped files, duplicates), in order
    notes: list[str] = field(default_factory=list)


def _distinct(values: list[Any] | None) -> list[Any]:
    """Each value once, in order of first appearance (what list(DISTINCT) gives, one thread)."""
    return list(dict.fromkeys(values)) if values else []


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
        row: dict[str, Any],
        rule_id: str | None,
        message: str,
        evidence: dict[str, Any],
        severity: str,
    ) -> None:
        """A finding from a query row; the columns every finding reports may be missing."""
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
            _roles(row.get("src_roles")),
            _roles(row.get("dst_roles")),
            row.get("first_seen"),
            row.get("last_seen"),
            row.get("packets"),
            row.get("bytes"),
            row.get("flow_ids") or [],
            row.get("community_ids") or [],
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
    ) -> None:
        """A finding from its parts. Timestamps come as ISO text, written by the queries."""
        # stable night to night: what and where, not the (possibly inferred) roles, unless
        # there is no address to say where (missing_flow)
        ident = f"{kind}|{rule_id}|{src_ip}|{dst_ip}|{dst_port}|{proto}"
        if src_ip is None:
            ident += f"|{src_role}|{dst_role}"
        digest = hashlib.blake2b(ident.encode(), digest_size=6).hexdigest()
        self.items.append(
            {
                "id": f"{kind[:3].upper()}-{digest}",
                "kind": kind,
                "severity": severity,
                "src_ip": src_ip,
                "dst_ip": dst_ip,
                "dst_port": dst_port,
                "proto": proto,
                "src_role": src_role,
                "dst_role": dst_role,
                "rule_id": rule_id,
                "message": message,
                "first_seen": first_seen,
                "last_seen": last_seen,
                "packets": int(packets or 0),
                "bytes": int(nbytes or 0),
                "flow_ids": flow_ids,
                "community_ids": (
                    sorted(set(community_ids)) if len(community_ids) > 1 else community_ids
                ),
                "evidence": evidence,
                "source": self.source(rule_id),
            }
        )


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
    return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]


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

    paths = _Paths(ruleset)
    per_kind: dict[str, Callable[[dict[str, Any]], None]] = {
        "plaintext_disk_transfer": lambda row: _disk_transfer(out, row),
        "plaintext_where_tls_required": lambda row: _tls_required(out, row),
        "mtls_not_observed": lambda row: _mtls(out, row),
        "weak_tls": lambda row: _weak_tls(out, row),
    }
    role_lists = _role_lists(roles)
    for row in _finding_rows(con, queries.FINDINGS, {"min_disk": MIN_DISK_BYTES}, role_lists):
        per_kind[row["kind"]](row)
    _unexpected_ports(out, con.execute(queries.UNEXPECTED_PORT), ruleset, inv, role_lists, paths)
    if scans:
        for row in _rows(con, queries.UNEXPECTED_SCAN):
            _scan(out, row, inv)

    pairs: list[dict[str, Any]] = []
    if host_roles.num_rows:  # without roles, nothing is documented or expected between them
        pairs = _rows(con, queries.ROLE_PAIRS)
        if _may_miss(ruleset, roles, pairs):
            for row in _rows(con, queries.MISSING_FLOW):
                _missing(out, row, capture_seconds)
        if inv:
            for row in _rows(con, queries.UNKNOWN_HOST):
                _unknown_host(out, row)

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


def _may_miss(ruleset: Ruleset, roles: RoleMap, pairs: list[dict[str, Any]]) -> bool:
    """Whether MISSING_FLOW can find anything: an expected rule between two roles that have
    hosts, seen neither itself nor through its pair. A rule is seen exactly when it is
    among the rules of a documented role pair that was observed, so the role pairs answer
    this for the common case (every expected flow seen) without another query."""
    present = {r for h in roles.hosts for r in h.roles}
    seen = {i for p in pairs if p["documented"] and p["observed"] for i in p["rule_ids"]}
    return any(
        r.expected
        and {r.from_role, r.to_role} <= present
        and r.id not in seen
        and (r.pair is None or r.pair not in seen)
        for r in ruleset.flows
    )


def _role_lists(roles: RoleMap) -> dict[str, list[str]]:
    """ip -> its roles, sorted: the role lists the queries join on (``hr``)."""
    by_ip: dict[str, set[str]] = {}
    for h in roles.hosts:
        by_ip.setdefault(h.ip, set()).update(h.roles)
    return {ip: sorted(r) for ip, r in by_ip.items()}


def _finding_rows(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: dict[str, Any] | None,
    role_lists: dict[str, list[str]],
) -> Iterable[dict[str, Any]]:
    """The rows of FINDINGS with their lists unpacked and the role lists of their
    endpoints."""
    for row in _rows(con, sql, params):
        row["src_roles"] = role_lists.get(row["src_ip"], [])
        row["dst_roles"] = role_lists.get(row["dst_ip"], [])
        row["flow_ids"] = row["flow_ids"].split(" ") if row["flow_ids"] else []
        row["community_ids"] = _values(row["community_ids"])
        row["states"] = _values(row["states"])
        row["apps"] = _values(row["apps"])
        yield row


def _values(joined: str | None) -> list[str]:
    """A string_agg(..., ' ') column back into its values, each once, in order of first
    appearance: what list(DISTINCT ...) gives single-threaded."""
    if not joined:
        return []
    if " " not in joined:  # one flow, or one value: most findings
        return [joined]
    return [v for v in dict.fromkeys(joined.split(" ")) if v]


def _flow_input(flows: pa.Table) -> pa.Table:
    """The columns the queries read, plus ``i`` (the row number) to join back on."""
    flows = flows.select([c for c in queries.FLOW_COLUMNS if c in flows.column_names])
    # timestamps as int64 ns, which the queries write as ISO text (queries._iso): no time
    # zone in play, and no datetime objects through pytz
    ts_cols = [i for i, f in enumerate(flows.schema) if pa.types.is_timestamp(f.type)]
    for i in ts_cols:
        ns = pa.chunked_array([c.view(pa.int64()) for c in flows.column(i).chunks], pa.int64())
        flows = flows.set_column(i, flows.schema.field(i).name, ns)  # a view: no compute import
    return flows.append_column("i", pa.array(np.arange(flows.num_rows, dtype=np.int64)))


def _disk_transfer(out: _Findings, row: dict[str, Any]) -> None:
    rule = out.rules[row["rule_id"]]
    methods = _distinct(row["methods"])
    what = ", ".join(methods) or next(
        (a for a in row["apps"] if a not in ("unknown", "none")), "cleartext"
    )
    agents = _distinct(row["agents"])
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
        "http_methods": methods,
        "user_agents": agents,
        "targets": _distinct(row["targets"])[:10],
        "flows": row["flows"],
        "encrypted_alternative": tls_port,
        "vendor_reason": [
            n for n in rule.notes if "force HTTPS" in n or "performance reasons" in n
        ],
    }
    out.add("plaintext_disk_transfer", row, rule.id, msg + ".", ev, sev)


def _tls_required(out: _Findings, row: dict[str, Any]) -> None:
    rule = out.rules[row["rule_id"]]
    apps = row["apps"]
    msg = (
        f"Cleartext {'/'.join(apps) or 'payload'} on {_endpoint(row)}, where the document "
        f"requires {rule.security.upper()} ({rule.id})."
    )
    ev = {
        "apps": apps,
        "payload_bytes": int(row["payload_bytes"]),
        "http_methods": _distinct(row["methods"]),
        "http_hosts": _distinct(row["hosts"]),
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
            "tls_versions": _distinct(row["versions"]),
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
        ev = {"verifiable": False, "reason": why, "tls_versions": _distinct(row["versions"])}
    out.add("mtls_not_observed", row, rule.id, msg, ev, sev)


def _weak_tls(out: _Findings, row: dict[str, Any]) -> None:
    tls_versions = _distinct(row["versions"])
    versions = ", ".join(v for v in tls_versions if v)
    msg = f"{versions} negotiated on documented port {_endpoint(row)}; TLS 1.2 or later expected."
    out.add(
        "weak_tls",
        row,
        row["rule_id"],
        msg,
        {"tls_versions": tls_versions, "flows": row["flows"]},
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


class _Paths:
    """The rules documented between two hosts' role lists, looked up once per pair of lists
    (thousands of unexpected flows share a few dozen)."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.by_pair: dict[tuple[str, str], list[Rule]] = {}
        for r in ruleset.flows:
            self.by_pair.setdefault((r.from_role, r.to_role), []).append(r)
        self._between: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
        self._reverse: dict[tuple[tuple[str, ...], tuple[str, ...], str, int], list[Rule]] = {}

    def between(self, src: Sequence[str], dst: Sequence[str]) -> list[str]:
        """The documented ports from any of ``src`` to any of ``dst`` (as text, sorted)."""
        key = (tuple(src), tuple(dst))
        hit = self._between.get(key)
        if hit is None:
            rules = [r for a in src for b in dst for r in self.by_pair.get((a, b), ())]
            hit = self._between[key] = sorted({_ports_text(r) for r in rules})
        return list(hit)

    def reverse(self, src: Sequence[str], dst: Sequence[str], proto: str, port: int) -> list[Rule]:
        """The rules from any of ``dst`` to any of ``src`` covering ``proto``/``port``."""
        key = (tuple(src), tuple(dst), proto, port)
        hit = self._reverse.get(key)
        if hit is None:
            hit = self._reverse[key] = [
                r
                for a in dst
                for b in src
                for r in self.by_pair.get((a, b), ())
                if r.proto == proto and _covers(r, port)
            ]
        return hit


def _unexpected_ports(
    out: _Findings,
    cur: duckdb.DuckDBPyConnection,
    ruleset: Ruleset,
    inv: bool,
    role_lists: dict[str, list[str]],
    paths: _Paths,
) -> None:
    """unexpected_port findings from the rows of UNEXPECTED_PORT: thousands on a busy
    network, so each row is unpacked in place rather than made into a dict."""
    names = tuple(d[0] for d in cur.description)
    assert names == queries.UNEXPECTED_PORT_COLUMNS, names
    for (
        src_ip,
        dst_ip,
        dst_port,
        proto,
        first_seen,
        last_seen,
        packets,
        nbytes,
        flows,
        flow_ids,
        community_ids,
        states,
        apps,
    ) in cur.fetchall():
        src, dst = role_lists.get(src_ip, _NO_ROLES), role_lists.get(dst_ip, _NO_ROLES)
        states = _values(states)
        ev: dict[str, Any] = {
            "states": states,
            "apps": _values(apps),
            "flows": flows,
            "documented_between_roles": paths.between(src, dst) if src and dst else [],
        }
        endpoint = f"{src_ip} -> {dst_ip}:{dst_port}/{proto}"
        rule_id = None
        if src and dst:  # between two placed hosts
            reverse = paths.reverse(src, dst, proto, dst_port)
            if reverse:
                why = "documented only in the other direction"
                rule_id = reverse[0].id
                ev["reverse_rule_ids"] = [r.id for r in reverse]
            elif ev["documented_between_roles"]:
                why = "a port not documented between these roles"
            else:
                why = "no documented path between these roles"
            msg = f"{_roles(src)} -> {_roles(dst)} on {proto}/{dst_port} ({endpoint}): {why}."
            sev = out.severity("unexpected_port", rule_id)
        elif src or dst:  # from or to a host without a role
            who = src_ip if not src else dst_ip
            known = _roles(dst) if not src else _roles(src)
            scope = "the inventory" if inv else "role inference"
            msg = f"{who} (no role in {scope}) talks to {known} on {proto}/{dst_port} ({endpoint})."
            ev["unplaced_host"] = who
            sev = out.severity("unexpected_port", None, "low")
        else:  # between two hosts without a role
            msg = (
                f"Port {proto}/{dst_port} is documented nowhere in the "
                f"'{ruleset.name}' ruleset ({endpoint})."
            )
            sev = "low"
        if "rejected" in states:
            ev["note"] = "attempt answered by RST: someone tried"
        out.put(
            "unexpected_port",
            sev,
            rule_id,
            msg,
            ev,
            src_ip,
            dst_ip,
            dst_port,
            proto,
            _roles(src),
            _roles(dst),
            first_seen,
            last_seen,
            packets,
            nbytes,
            flow_ids.split(" ") if flow_ids else [],
            community_ids.split(" ") if community_ids else [],
        )


_NO_ROLES: list[str] = []


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
    findings: Sequence[dict[str, Any]], fail_on: str, capture_problems: bool
) -> ExitCode:
    """FINDINGS for a finding at or above ``fail_on``, or'd with CAPTURE for a capture
    problem: one never hides the other."""
    code = ExitCode.CAPTURE if capture_problems else ExitCode.OK
    if fail_on != "never":
        limit = SEVERITIES.index(fail_on)
        if any(SEVERITIES.index(f["severity"]) <= limit for f in findings):
            code |= ExitCode.FINDINGS
    return code


def audit(
    captures: Iterable[str | os.PathLike[str]],
    ruleset: Ruleset,
    inventory: Inventory | None = None,
    fail_on: str = "medium",
    progress: Callable[[Reading], None] | None = None,
    dedup: float | None = None,
    read: Callable[[list[str]], Traffic] | None = None,
) -> AuditResult:
    """Read the captures as one traffic set and audit it against ``ruleset``; ``dedup``
    drops SPAN duplicates seen again within that many seconds. ``read``: another engine's
    reader (``auditor.engines.spark.read_traffic_spark``) in place of the local one."""
    if read is not None:
        traffic = read([os.fspath(c) for c in captures])
    else:
        traffic = read_traffic(captures, progress=progress, dedup=dedup)
    assert traffic.flows is not None
    flows = public_flows(traffic.flows)
    roles = resolve_roles(ruleset, flows, inventory)
    seconds = traffic.coverage_seconds()  # missing_flow is graded on the time covered
    findings, pairs = run_checks(ruleset, flows, roles, seconds)
    code = exit_code_for(findings, fail_on, not traffic.complete)
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
            "duration_s": round(traffic.span_seconds(), 6),
            "coverage_s": round(seconds, 6),
            "skipped_files": len(traffic.skipped),
            "exit_code": int(code),
        },
        "roles": [h.to_json() for h in roles.hosts],
        "role_pairs": pairs,
        "findings": findings,
    }
    if traffic.duplicates_dropped is not None:  # --dedup
        summary: dict[str, Any] = doc["summary"]  # type: ignore[assignment]
        summary["duplicates_dropped"] = traffic.duplicates_dropped
    return AuditResult(doc, traffic, code, [e.one_line() for e in traffic.errors], traffic.notes)


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
