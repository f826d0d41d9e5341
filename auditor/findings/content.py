"""The kinds a rule speaks for on the flows it covers: cleartext disk transfers, cleartext
where TLS is required, mutual TLS not observed, TLS below the policy.

Their rows come from ``queries.FINDINGS`` (one per kind, source, destination, port and
protocol); each function here words one finding, citing the rule and its document.
"""

from __future__ import annotations

from typing import Any

from auditor.findings.collector import Findings, distinct, endpoint, ports_text
from auditor.units import human_bytes

#: cleartext payload from which a flow on a disk-transfer rule counts as a disk transfer
MIN_DISK_BYTES = 64 * 1024


def disk_transfer(out: Findings, row: dict[str, Any]) -> None:
    rule = out.rules[row["rule_id"]]
    methods = distinct(row["methods"])
    what = ", ".join(methods) or next(
        (a for a in row["apps"] if a not in ("unknown", "none")), "cleartext"
    )
    agents = distinct(row["agents"])
    pair = out.rules.get(rule.pair or "")
    tls_port = ports_text(pair) if pair and pair.encrypted_required else None
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
        "targets": distinct(row["targets"])[:10],
        "flows": row["flows"],
        "encrypted_alternative": tls_port,
        "vendor_reason": list(rule.vendor_reason),
    }
    out.add("plaintext_disk_transfer", row, rule.id, msg + ".", ev, sev)


def tls_required(out: Findings, row: dict[str, Any]) -> None:
    rule = out.rules[row["rule_id"]]
    apps = row["apps"]
    msg = (
        f"Cleartext {'/'.join(apps) or 'payload'} on {endpoint(row)}, where the document "
        f"requires {rule.security.upper()} ({rule.id})."
    )
    ev = {
        "apps": apps,
        "payload_bytes": int(row["payload_bytes"]),
        "http_methods": distinct(row["methods"]),
        "http_hosts": distinct(row["hosts"]),
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


def mtls(out: Findings, row: dict[str, Any]) -> None:
    rule = out.rules[row["rule_id"]]
    verdict = row["verdict"]
    ev: dict[str, Any]
    if verdict == "no_client_cert":
        msg = (
            f"Mutual TLS required ({rule.id}) but the client sent no certificate on "
            f"{endpoint(row)} ({row['without_cert']} of {row['flows']} flows)."
        )
        sev = out.severity("mtls_not_observed", rule.id)
        ev = {
            "verifiable": True,
            "tls_versions": distinct(row["versions"]),
            "certificate_requested": row["cert_requested"],
            "flows_without_client_certificate": row["without_cert"],
        }
    else:
        why = (
            "TLS 1.3 encrypts the certificate exchange"
            if verdict == "tls13"
            else "the TLS handshake is not in the capture"
        )
        msg = f"Mutual TLS required ({rule.id}) on {endpoint(row)}: not verifiable, {why}."
        sev = "info"
        ev = {"verifiable": False, "reason": why, "tls_versions": distinct(row["versions"])}
    out.add("mtls_not_observed", row, rule.id, msg, ev, sev)


def weak_tls(out: Findings, row: dict[str, Any], policy: str, from_cli: bool) -> None:
    """A version below the TLS policy: the rule's minimum, else ``--min-tls``, else the
    ruleset's. Where the document itself permits the version, the finding says so, quotes it,
    and is low: the policy is broken, not the document."""
    tls_versions = distinct(row["versions"])
    versions = ", ".join(v for v in tls_versions if v)
    rule = out.rules.get(row["rule_id"] or "")
    minimum = (rule.min_tls if rule else None) or policy
    where = (
        f"rule {rule.id}"
        if rule and rule.min_tls
        else ("--min-tls" if from_cli else "the ruleset's TLS policy")
    )
    allowance = rule.tls_allowed if rule else None
    allowed = [v for v in tls_versions if allowance and v in allowance.versions]
    ev: dict[str, Any] = {
        "tls_versions": tls_versions,
        "flows": row["flows"],
        "policy_min_tls": minimum,
        "policy": where,
    }
    msg = f"{versions} negotiated on documented port {endpoint(row)}; {where} requires {minimum} or later"
    if allowance and allowed and len(allowed) == len([v for v in tls_versions if v]):
        src = allowance.source
        msg += (
            f". The document permits {', '.join(allowed)} here ({src.document}, "
            f'"{src.section}": "{src.text}"): the policy is broken, not the document.'
        )
        ev["document_allows"] = allowance.to_json()
        sev = out.severity("weak_tls", row["rule_id"], "low")
    else:
        msg += "."
        sev = out.severity("weak_tls", row["rule_id"])
    out.add("weak_tls", row, row["rule_id"], msg, ev, sev)
