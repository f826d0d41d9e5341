"""flows x roles x rules -> findings -> the audit result (the JSON contract).

The joins are DuckDB SQL (``queries.py``); this module runs them and assembles the result
document that every renderer derives from. Turning rows into findings is split by job:
``content`` (what a rule says about the flows it covers: cleartext, mutual TLS, TLS policy),
``unexpected`` (flows no rule allows, scans), ``presence`` (missing flows, hosts without a
role), ``rulecheck`` (what the documents forbid or restrict), all collected by
``collector.Findings``. Severity defaults per kind are in the kinds' table
(``auditor.rules.kinds``); a rule may override them (``severity:`` in the ruleset).

A query whose answer is known to be empty is not run (MISSING_FLOW when the role pairs show
every expected flow seen, the scan findings when there is no scan, PROHIBITED without deny
entries or local-scope rules, ADDRESS_FAMILY without a restricted host).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from auditor import __version__, duck
from auditor.errors import ExitCode
from auditor.findings import content, queries, rulecheck
from auditor.findings.collector import Findings, rows, values
from auditor.findings.content import MIN_DISK_BYTES
from auditor.findings.model import AuditDocument, Finding, Summary
from auditor.findings.presence import may_miss as _may_miss
from auditor.findings.presence import missing, pair_json, unknown_host
from auditor.findings.unexpected import (
    SCAN_SAMPLE,
    SCAN_TARGETS,
    Paths,
    scan,
    unexpected_ports,
)
from auditor.findings.waivers import Waivers, apply_waivers
from auditor.flows import FLOW_LIMIT, ondisk, public_flows
from auditor.roles import RoleMap, distinct, resolve_roles
from auditor.rules import (
    FINDING_KINDS,
    SEVERITIES,
    Inventory,
    Rule,
    Ruleset,
    denies_table,
    rules_table,
)
from auditor.rules.model import TLS_VERSIONS
from auditor.traffic import Reading, Traffic, flow_places, read_traffic

if TYPE_CHECKING:
    import duckdb

    from auditor.capture.select import PacketFilter

__all__ = ["KINDS", "MIN_DISK_BYTES", "SCAN_TARGETS", "SEVERITIES", "AuditResult", "audit"]

KINDS = FINDING_KINDS  # the order findings sort and reports list them in


@dataclass
class AuditResult:
    """The audit's result (``result``, typed) and the traffic it stands on."""

    result: AuditDocument
    traffic: Traffic
    exit_code: ExitCode
    errors: list[str] = field(default_factory=list)
    #: every diagnostic line (errors, warnings, skipped files, duplicates), in order
    notes: list[str] = field(default_factory=list)

    @property
    def document(self) -> dict[str, Any]:
        """The result as the JSON contract's dict (a new one each time: changing it changes
        nothing here)."""
        return self.result.to_json()


def run_checks(
    ruleset: Ruleset,
    flows: pa.Table,
    roles: RoleMap,
    capture_seconds: float,
    min_tls: str | None = None,
) -> tuple[list[Finding], list[dict[str, Any]]]:
    """All checks over one flow table; returns (findings, role_pairs). ``min_tls`` (the
    ``--min-tls`` option) replaces the ruleset's TLS minimum; a rule's own still applies."""
    with duck.cursor() as con:
        return _run_checks(con, ruleset, flows, roles, capture_seconds, min_tls)


def _run_checks(
    con: duckdb.DuckDBPyConnection,
    ruleset: Ruleset,
    flows: pa.Table,
    roles: RoleMap,
    capture_seconds: float,
    min_tls: str | None = None,
) -> tuple[list[Finding], list[dict[str, Any]]]:
    held = roles.present()
    con.register("flows", _flow_input(flows))
    con.register("host_roles", roles.table())
    con.register("held_roles", pa.table({"role": pa.array(sorted(held), pa.string())}))
    con.register("rules", rules_table(ruleset))
    con.register("denies", denies_table(ruleset))
    inv = roles.from_inventory
    policy = min_tls or ruleset.min_tls
    tls_params = {"tls_versions": list(TLS_VERSIONS)}
    params: dict[str, Any] = {"inventory": inv, "min_tls": policy, **tls_params}
    src_ports = sorted(
        {p for r in ruleset.flows for lo, hi in r.src_spans() for p in range(lo, hi + 1)}
    )
    if src_ports:
        params["src_ports"] = src_ports
    internet = any("internet" in (r.from_role, r.to_role) for r in ruleset.flows)
    if internet:
        con.register("public_ips", pa.table({"ip": pa.array(_public_ips(flows), pa.string())}))
    local = any(r.scope == "local" for r in ruleset.flows)
    con.execute(queries.prepare(bool(src_ports), internet, local), params)
    ondisk.release()  # a flow table on disk: each query reads its pages in again
    out = Findings(ruleset)
    (scans,) = con.execute(
        f"CREATE OR REPLACE TEMP TABLE scans AS {queries.SCANS}", {"scan": SCAN_TARGETS}
    ).fetchone() or (0,)
    if scans:
        con.execute(queries.MARK_SCANS)

    paths = Paths(ruleset)
    per_kind: dict[str, Callable[[dict[str, Any]], None]] = {
        "plaintext_disk_transfer": lambda row: content.disk_transfer(out, row),
        "plaintext_where_tls_required": lambda row: content.tls_required(out, row),
        "mtls_not_observed": lambda row: content.mtls(out, row),
        "weak_tls": lambda row: content.weak_tls(out, row, policy, min_tls is not None),
        "protocol_mismatch": lambda row: rulecheck.protocol_mismatch(out, row),
    }
    role_lists = roles.role_lists()
    for row in _finding_rows(
        con, queries.FINDINGS, {"min_disk": MIN_DISK_BYTES, **tls_params}, role_lists
    ):
        per_kind[row["kind"]](row)
    (prohibited,) = (
        con.execute(queries.ANY_PROHIBITED).fetchone() or (0,) if ruleset.denies or local else (0,)
    )
    if prohibited:
        for row in _finding_rows(con, queries.PROHIBITED, None, role_lists):
            rulecheck.prohibited(out, row, inv)
    family_ips = rulecheck.family_hosts(ruleset, roles)
    if family_ips:
        for row in _finding_rows(
            con, queries.ADDRESS_FAMILY, {"family_ips": list(family_ips)}, role_lists
        ):
            rulecheck.address_family(out, row, family_ips)
    unexpected_ports(out, con.execute(queries.UNEXPECTED_PORT), ruleset, inv, role_lists, paths)
    ondisk.release()
    if scans:
        for row in rows(con, queries.UNEXPECTED_SCAN, {"sample": SCAN_SAMPLE}):
            scan(out, row, inv)

    pairs: list[dict[str, Any]] = []
    if held:  # without roles, nothing is documented or expected between them
        pairs = rows(con, queries.ROLE_PAIRS)
        if _may_miss(ruleset, roles, pairs):
            missing_rows = rows(con, queries.MISSING_FLOW)
            by_role = roles.hosts_by_role() if missing_rows else {}
            for row in missing_rows:
                row["src_hosts"] = list(by_role[row["from_role"]])
                row["dst_hosts"] = list(by_role[row["to_role"]])
                missing(out, row, capture_seconds)
        if inv:
            for row in rows(con, queries.UNKNOWN_HOST):
                unknown_host(out, row)

    order = {s: i for i, s in enumerate(SEVERITIES)}
    kinds = {k: i for i, k in enumerate(KINDS)}
    findings = sorted(
        out.items,
        key=lambda f: (
            order[f.severity],
            kinds[f.kind],
            str(f.src_ip),
            str(f.dst_ip),
            f.dst_port or 0,
            f.id,
        ),
    )
    return findings, [pair_json(p) for p in pairs]


def _public_ips(flows: pa.Table) -> list[str]:
    """The flows' addresses outside the private and special-purpose ranges (asked only when
    a rule names the peer 'internet': the test costs a parse per address)."""
    out = []
    for ip in set(distinct(flows.column("src_ip"))) | set(distinct(flows.column("dst_ip"))):
        try:
            if ipaddress.ip_address(ip).is_global:
                out.append(ip)
        except ValueError:
            continue
    return sorted(out)


def _finding_rows(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: dict[str, Any] | None,
    role_lists: dict[str, list[str]],
) -> Iterable[dict[str, Any]]:
    """The rows of FINDINGS with their lists unpacked and the role lists of their
    endpoints."""
    for row in rows(con, sql, params):
        row["src_roles"] = role_lists.get(row["src_ip"], [])
        row["dst_roles"] = role_lists.get(row["dst_ip"], [])
        row["flow_ids"] = row["flow_ids"] or []
        row["community_ids"] = list(dict.fromkeys(row["community_ids"] or ()))
        row["states"] = values(row["states"])
        row["apps"] = values(row["apps"])
        yield row


def _flow_input(flows: pa.Table) -> pa.Table:
    """The columns the queries read, plus ``i`` (the row number) to join back on."""
    flows = flows.select([c for c in queries.FLOW_COLUMNS if c in flows.column_names])
    # timestamps as int64 ns, which the queries write as ISO text (queries._iso): no time
    # zone in play, and no datetime objects through pytz
    ts_cols = [i for i, f in enumerate(flows.schema) if pa.types.is_timestamp(f.type)]
    for i in ts_cols:
        ns = pa.chunked_array([c.view(pa.int64()) for c in flows.column(i).chunks], pa.int64())
        flows = flows.set_column(i, flows.schema.field(i).name, ns)  # a view: no compute import
    flows = _icmp_type_as_port(flows)
    return flows.append_column("i", pa.array(np.arange(flows.num_rows, dtype=np.int64)))


def _icmp_type_as_port(flows: pa.Table) -> pa.Table:
    """For ICMP flows the type (the flow table's ``src_port``, as Zeek has it) is the "port"
    a rule names and a finding reports: put it in ``dst_port``. Done in numpy, once, only
    when there are ICMP flows (a view doing it in SQL costs every query that reads flows)."""
    if flows.num_rows == 0 or "src_port" not in flows.column_names:
        return flows
    proto = flows.column("proto").to_numpy(zero_copy_only=False)
    icmp = (proto == "icmp") | (proto == "icmp6")
    if not icmp.any():
        return flows
    src = flows.column("src_port").to_numpy(zero_copy_only=False)
    dst = flows.column("dst_port").to_numpy(zero_copy_only=False)
    port = pa.array(np.where(icmp, src, dst), flows.schema.field("dst_port").type)
    return flows.set_column(flows.column_names.index("dst_port"), "dst_port", port)


def exit_code_for(findings: Sequence[Finding], fail_on: str, capture_problems: bool) -> ExitCode:
    """FINDINGS for a finding at or above ``fail_on``, or'd with CAPTURE for a capture
    problem: one never hides the other."""
    code = ExitCode.CAPTURE if capture_problems else ExitCode.OK
    if fail_on != "never":
        limit = SEVERITIES.index(fail_on)
        if any(SEVERITIES.index(f.severity) <= limit for f in findings if f.waiver is None):
            code |= ExitCode.FINDINGS
    return code


def audit(
    captures: Iterable[str | os.PathLike[str]],
    ruleset: Ruleset,
    inventory: Inventory | None = None,
    fail_on: str = "medium",
    progress: Callable[[Reading], None] | None = None,
    dedup: float | None = None,
    min_tls: str | None = None,
    waivers: Waivers | None = None,
    jobs: int = 1,
    select: PacketFilter | None = None,
    read: Callable[[list[str]], Traffic] | None = None,
    flow_limit: int | None = FLOW_LIMIT,
) -> AuditResult:
    """Read the captures as one traffic set and audit it against ``ruleset``; ``dedup``
    drops SPAN duplicates seen again within that many seconds; ``min_tls`` replaces the
    ruleset's TLS minimum (``--min-tls``); findings that ``waivers`` cover are marked and do
    not count for the exit code; ``jobs`` decoders run at once (the result is the same for
    any number); ``select`` keeps only the packets it selects
    (--since/--until/--host/--port/--filter). ``read``: another engine's reader
    (``auditor.engines.spark.read_traffic_spark``) in place of the local one.
    ``flow_limit``: live flows held before the least recently seen are spilled to disk
    (:mod:`auditor.flows.spill`; None: no bound); the result is the same for any limit."""
    if read is not None:
        traffic = read([os.fspath(c) for c in captures])
    else:
        traffic = read_traffic(
            captures,
            progress=progress,
            dedup=dedup,
            jobs=jobs,
            select=select,
            flow_limit=flow_limit,
        )
    assert traffic.flows is not None
    flows = public_flows(traffic.flows)
    seconds = traffic.coverage_seconds()  # missing_flow is graded on the time covered
    # the deployment's expectations (inventory expect / ignore_expected) decide missing flows
    checked = inventory.apply_expectations(ruleset) if inventory is not None else ruleset
    # millions of flows (the read spilled): DuckDB bounded, the table's pages given back
    # after each stage that scans it (auditor.flows.ondisk)
    with duck.bounded() if traffic.spilled else contextlib.nullcontext():
        roles = resolve_roles(ruleset, flows, inventory)
        ondisk.release()
        findings, pairs = run_checks(checked, flows, roles, seconds, min_tls)
        ondisk.release()
    places = flow_places(flows, (x for f in findings for x in f.flow_ids or ()))
    ondisk.release()
    findings = [  # where each flow's packets are (README, "Forensics")
        f.with_evidence(frames=[places[x] for x in f.flow_ids if x in places]) if f.flow_ids else f
        for f in findings
    ]
    waived = None
    if waivers is not None:
        findings, waived = apply_waivers(findings, waivers)
    code = exit_code_for(findings, fail_on, not traffic.complete)
    by_kind = Counter(f.kind for f in findings)
    by_sev = Counter(f.severity for f in findings)
    doc = AuditDocument(
        tool={"name": "pcap-audit", "version": __version__},
        ruleset={
            "name": ruleset.name,
            "title": ruleset.title,
            "path": str(ruleset.path) if getattr(ruleset, "path", None) else None,
            "source_documents": list(ruleset.source_documents),
            "rules": [_rule_json(r) for r in checked.flows],
            "deny": [d.to_json() for d in ruleset.denies],
            "min_tls": min_tls or ruleset.min_tls,
        },
        inventory=str(inventory.path)
        if inventory is not None and getattr(inventory, "path", None)
        else None,
        fail_on=fail_on,
        captures=tuple(traffic.captures),
        summary=Summary(
            packets=traffic.packets,
            flows=flows.num_rows,
            findings=len(findings),
            by_kind={k: by_kind[k] for k in KINDS if by_kind[k]},
            by_severity={s: by_sev[s] for s in SEVERITIES},
            duration_s=round(traffic.span_seconds(), 6),
            coverage_s=round(seconds, 6),
            skipped_files=len(traffic.skipped),
            exit_code=int(code),
            duplicates_dropped=traffic.duplicates_dropped,  # --dedup
            waived=waived.waived if waived is not None else None,
        ),
        roles=roles.entries(),
        role_pairs=tuple(pairs),
        findings=tuple(findings),
        waivers=waived.to_json() if waived is not None else None,
    )
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
