"""Findings for what the documents forbid or restrict: prohibited flows, the protocol on the
wire, and the address family of a role.

The SQL that finds the flows is in ``queries`` (``PROHIBITED``, ``ADDRESS_FAMILY`` and the
``protocol_mismatch`` case of ``FINDINGS``); this module turns each row into a finding that
quotes the document's sentence and says what was seen. It is kept apart from ``engine`` so
that the vendor-restriction kinds are read in one place.
"""

from __future__ import annotations

from typing import Any

from auditor.findings.collector import Findings, endpoint
from auditor.roles import RoleMap
from auditor.rules import SEVERITIES, Ruleset
from auditor.rules.vocabulary import wire_apps


def _roles(roles: list[str]) -> str:
    return "+".join(roles) if roles else "no role"


def _seen(apps: list[str]) -> list[str]:
    return [a for a in apps if a not in ("unknown", "none")]


def prohibited(out: Findings, row: dict[str, Any], inventory: bool) -> None:
    """A prohibited_flow: the flows of one source, destination and port that a deny entry or a
    local-scope rule matches, quoting the forbidding sentence."""
    cited = row["rule_id"]
    deny = out.denies.get(cited)
    rule = out.rules.get(cited)
    src, dst = row["src_roles"], row["dst_roles"]
    who = f"{_roles(src)} -> {_roles(dst)}"
    seen = _seen(row["apps"])
    ev: dict[str, Any] = {
        "apps": row["apps"],
        "states": row["states"],
        "flows": row["flows"],
    }
    where = endpoint(row)
    if row["dst_port"] is None:  # FTP data connections, one port each
        ports = [int(p) for p in row["ports"]]
        ev["ports"] = ports[:100]
        shown = ", ".join(map(str, ports[:5])) + (", ..." if len(ports) > 5 else "")
        where = f"{row['src_ip']} -> {row['dst_ip']} ports {shown}/{row['proto']}"
    # the roles the entry forbids: an endpoint without any role does not confirm them
    wanted: list[tuple[str | None, list[str]]]
    if deny is not None:
        wanted = [(deny.from_role, src), (deny.to_role, dst)]
        ev["deny"] = deny.describe()
        if deny.apps:
            what = f"{'/'.join(seen) or 'traffic'} identified from payload"
        elif deny.from_role and deny.to_role and not deny.spans():
            what = f"traffic between {deny.from_role} and {deny.to_role}"
        else:
            what = "traffic"
        msg = f"Prohibited: {what} on {where} ({who})"
    else:
        assert rule is not None  # a local-scope rule
        wanted = [(rule.to_role, dst)]
        ev["scope"] = "local"
        msg = (
            f"Prohibited: {where} ({who}) reaches {rule.proto}/{rule.port_text()}, "
            f"which is only available from within the host ({rule.id})"
        )
    unplaced = [ip for ip, r in ((row["src_ip"], src), (row["dst_ip"], dst)) if not r]
    unconfirmed = [role for role, held in wanted if role and not held]
    if unplaced:
        ev["unplaced_hosts"] = unplaced
        scope = "the inventory" if inventory else "role inference"
        verb = "has" if len(unplaced) == 1 else "have"
        msg += f"; {' and '.join(unplaced)} {verb} no role in {scope}"
    sev = out.severity("prohibited_flow", cited)
    if unconfirmed:
        ev["role_unconfirmed"] = unconfirmed
        msg += f" (if it is the {' / '.join(unconfirmed)})"
        if not (deny and deny.severity):
            sev = SEVERITIES[min(SEVERITIES.index(sev) + 1, len(SEVERITIES) - 1)]
    source = out.source(cited)
    assert source is not None
    msg += f'. The document says: "{source["text"]}"'
    out.add("prohibited_flow", row, cited, msg, ev, sev)


def protocol_mismatch(out: Findings, row: dict[str, Any]) -> None:
    """The classifier positively identified a protocol that fits none of the rules covering
    the flow; ``unknown`` / ``none`` never get here (the query leaves them out)."""
    rule = out.rules[row["rule_id"]]
    covering = [out.rules[r] for r in row.get("rule_ids") or [rule.id] if r in out.rules]
    seen = _seen(row["apps"])
    documented = sorted({r.app for r in covering})
    msg = (
        f"{'/'.join(seen).upper() or 'Another protocol'} seen on {endpoint(row)}, where the "
        f"document names {'/'.join(documented)} ({rule.id})."
    )
    ev = {
        "apps": row["apps"],
        "seen": seen,
        "documented_app": documented,
        "expected_on_wire": sorted({w for r in covering for w in wire_apps(r.app)}),
        "flows": row["flows"],
        "payload_bytes": int(row["payload_bytes"] or 0),
    }
    out.add("protocol_mismatch", row, rule.id, msg, ev, out.severity("protocol_mismatch", rule.id))


def family_hosts(ruleset: Ruleset, roles: RoleMap) -> dict[str, tuple[str, str]]:
    """Addresses of the family a role of theirs excludes -> (role, allowed family), among the
    hosts of the traffic (an inventory's address the capture never shows has no traffic to
    report, and may be one of 100,000)."""
    only = {r.id: r.address_family for r in ruleset.roles if r.address_family}
    out: dict[str, tuple[str, str]] = {}
    if not only:
        return out
    for host in roles.seen:
        family = "ipv6" if ":" in host.ip else "ipv4"
        for role in host.roles:
            allowed = only.get(role)
            if allowed and allowed != family:
                out[host.ip] = (role, allowed)
                break
    return out


def address_family(out: Findings, row: dict[str, Any], hosts: dict[str, tuple[str, str]]) -> None:
    """Traffic of a host whose role the document restricts to the other address family."""
    ruleset_roles = out.roles_by_id
    ip = row["src_ip"] if row["src_ip"] in hosts else row["dst_ip"]
    role_id, allowed = hosts[ip]
    role = ruleset_roles[role_id]
    family = "IPv6" if allowed == "ipv4" else "IPv4"
    source = role.address_family_source
    msg = (
        f"{family} traffic of {role_id} {ip} on {endpoint(row)}: the document allows "
        f"{allowed.replace('ip', 'IP')} only"
    )
    if source is not None:
        msg += f' ("{source.text}")'
    ev: dict[str, Any] = {
        "host": ip,
        "role": role_id,
        "address_family": family.lower(),
        "allowed": allowed,
        "flows": row["flows"],
        "apps": row["apps"],
    }
    found = (
        {
            "document": source.document,
            "section": source.section,
            "text": source.text,
            "notes": [],
        }
        if source
        else None
    )
    severity = out.severity("address_family", None)
    out.add("address_family", row, None, msg + ".", ev, severity, found)
