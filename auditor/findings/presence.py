"""Who is there and what is missing: missing flows, hosts without a role, the role pairs.

``missing_flow`` is graded by how long the capture is (a short one proves little);
:func:`may_miss` tells from the role pairs alone when MISSING_FLOW cannot find anything,
so the common case (every expected flow seen) runs no query for it.
"""

from __future__ import annotations

from typing import Any

from auditor.findings.collector import Findings, ports_text
from auditor.roles import RoleMap
from auditor.rules import SEVERITIES, Ruleset

HOUR, DAY = 3600.0, 86400.0


def may_miss(ruleset: Ruleset, roles: RoleMap, pairs: list[dict[str, Any]]) -> bool:
    """Whether MISSING_FLOW can find anything: an expected rule between two roles that have
    hosts, seen neither itself nor through its pair. A rule is seen exactly when it is
    among the rules of a documented role pair that was observed, so the role pairs answer
    this for the common case (every expected flow seen) without another query."""
    present = roles.present()
    seen = {i for p in pairs if p["documented"] and p["observed"] for i in p["rule_ids"]}
    return any(
        r.expected
        and {r.from_role, r.to_role} <= present
        and r.id not in seen
        and (r.pair is None or r.pair not in seen)
        for r in ruleset.flows
    )


def missing(out: Findings, row: dict[str, Any], seconds: float) -> None:
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
        f"Expected {row['from_role']} -> {row['to_role']} on {ports_text(rule)} ({rule.id}) "
        f"was not seen in {_duration(seconds)} of capture ({grade})."
    )
    ev = {
        "capture_duration_s": round(seconds, 6),  # = summary.coverage_s
        "src_hosts": row["src_hosts"],
        "dst_hosts": row["dst_hosts"],
        "expected_ports": ports_text(rule),
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


def unknown_host(out: Findings, row: dict[str, Any]) -> None:
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


def pair_json(p: dict[str, Any]) -> dict[str, Any]:
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
