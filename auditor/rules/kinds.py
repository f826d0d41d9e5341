"""The finding kinds and severities: one table for the engine, the ruleset loader, the
renderers and the docs.

Each kind has its default severity (a rule or deny entry may override it), a title and two
descriptions. The order of the table is the order reports list kinds in (after severity).
Adding a kind here is what makes the loader accept it in ``severity:`` overrides, the
renderers title it and the README's table (tests/test_docs check) mention it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Severities, highest first: the order findings sort and reports count them in.
SEVERITIES: tuple[str, ...] = ("high", "medium", "low", "info")


@dataclass(frozen=True)
class FindingKind:
    """A finding kind: its name, default severity, title, one-line and long description."""

    name: str
    severity: str
    title: str
    summary: str
    description: str


KIND_TABLE: tuple[FindingKind, ...] = (
    FindingKind(
        "prohibited_flow",
        "high",
        "Prohibited flow",
        "Traffic the vendor's document forbids.",
        "A flow matched a deny entry of the ruleset (a protocol the document forbids, a pair "
        "of roles that must not talk) or reached, from another host, a port whose scope is "
        "local to its host. The finding quotes the forbidding sentence.",
    ),
    FindingKind(
        "plaintext_disk_transfer",
        "high",  # low where the document offers no encrypted alternative
        "Disk image sent in clear text",
        "A virtual disk or layer was transferred without encryption.",
        "A disk transfer (layer, image or virtual disk upload or download) ran over a "
        "clear-text protocol although the vendor documents an encrypted alternative.",
    ),
    FindingKind(
        "plaintext_where_tls_required",
        "high",
        "Clear text where TLS is required",
        "A flow the vendor documents as TLS-protected ran in clear text.",
        "The ruleset documents this flow as protected by TLS, but the observed traffic "
        "carried application data in clear text.",
    ),
    FindingKind(
        "mtls_not_observed",
        "medium",  # info when not verifiable (TLS 1.3, handshake not seen)
        "Mutual TLS not observed",
        "A flow documented as mutual TLS showed no client certificate.",
        "The vendor documents mutual TLS for this flow, but no client certificate was seen "
        "in the handshake. With TLS 1.3 certificates are encrypted and the check cannot be "
        "verified from the capture (evidence 'verifiable': false).",
    ),
    FindingKind(
        "weak_tls",
        "medium",  # low where the document itself permits the version
        "Weak TLS",
        "A TLS session negotiated a protocol version below the TLS policy.",
        "A TLS handshake on a documented flow negotiated a protocol version below the "
        "minimum of the TLS policy (the rule's, else --min-tls, else the ruleset's, default "
        "TLS 1.2). Where the vendor's document permits the older version, the finding "
        "quotes that allowance and says it is the policy, not the document, that is broken.",
    ),
    FindingKind(
        "protocol_mismatch",
        "medium",
        "Protocol on the wire differs from the document",
        "The classifier identified a protocol other than the one the rule names.",
        "The payload of a flow on a documented port was positively identified as a "
        "protocol other than the rule's (SSH tunnelled through an HTTPS port, FTP on an HTTP "
        "port). Unidentified payload is never a mismatch.",
    ),
    FindingKind(
        "unexpected_port",
        "medium",  # low when one endpoint has no role
        "Undocumented flow",
        "Traffic to a port the vendor does not document for this pair of roles.",
        "A flow was observed on a protocol and destination port that the ruleset does not "
        "document between the two roles (or documents only in the other direction, or "
        "nowhere), or between a role and a host with no role. Either the documentation is "
        "incomplete or the traffic is not part of the product.",
    ),
    FindingKind(
        "address_family",
        "medium",
        "Address family the document excludes",
        "IPv6 traffic of a role the document says is IPv4-only.",
        "A host of a role whose address family the document restricts (App Layering: "
        "'IPv4 is required') sent or received traffic over the other family.",
    ),
    FindingKind(
        "missing_flow",
        "medium",  # graded by capture length: < 1 h info, < 24 h low
        "Documented flow not observed",
        "A flow the vendor documents was not seen in the captures.",
        "A documented flow between two roles present in the captures was not observed "
        "during the capture time span. It may be idle, blocked, or not deployed; the "
        "shorter the captures, the less its absence proves (and the lower the severity).",
    ),
    FindingKind(
        "unknown_host",
        "info",
        "Host with no role",
        "A host with no role in the inventory talks to hosts that have one.",
        "A host exchanged traffic with role-bearing hosts but has no role in the inventory, "
        "so its flows cannot be checked against the ruleset.",
    ),
)

#: kind name -> its row of the table
KIND_BY_NAME: dict[str, FindingKind] = {k.name: k for k in KIND_TABLE}
#: finding kinds in the order reports list them
FINDING_KINDS: tuple[str, ...] = tuple(k.name for k in KIND_TABLE)
#: kind -> default severity
DEFAULT_SEVERITY: dict[str, str] = {k.name: k.severity for k in KIND_TABLE}

if any(k.severity not in SEVERITIES for k in KIND_TABLE):  # pragma: no cover (a typo here)
    raise ValueError("a finding kind's default severity is not one of SEVERITIES")
