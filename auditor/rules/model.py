"""The ruleset as values: frozen dataclasses and the closed vocabularies they draw on.

A ruleset is data transcribed from a vendor's document (``rulesets/*.yaml``); this module
holds only what a loaded ruleset *is*, so that the audit, the renderers and the CLI share one
shape and nothing here reads files. Vocabularies (security, application protocol, finding
kinds, severities) are closed tuples: the loader rejects anything else, so a typo in a
ruleset is an error rather than a rule that silently never matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Proto = Literal["tcp", "udp"]
PROTOS: tuple[str, ...] = ("tcp", "udp")

#: Security requirement of a flow -> (requires an encrypted channel, meaning).
#: ``encrypted_required`` drives the plaintext checks; the meaning is quoted in docs and findings.
SECURITY: dict[str, tuple[bool, str]] = {
    "none": (False, "a cleartext protocol with no transport security (HTTP, LDAP, iSCSI, ...)"),
    "unspecified": (False, "the document states no security requirement for this flow"),
    "tls": (True, "TLS, server certificate only"),
    "mtls": (True, "mutual TLS: both sides present certificates"),
    "ssh": (True, "the SSH transport protocol"),
    "oauth": (True, "OAuth 2.0 bearer tokens carried over HTTPS"),
    "basic": (False, "username/password (basic) authentication, no transport encryption"),
    "mysql_auth": (False, "MySQL authentication (native password method)"),
    "signed_url": (False, "pre-signed URLs; the transport may be HTTP or HTTPS"),
}

#: Application protocols a rule may name: what a classifier can see on the wire.
APPS: tuple[str, ...] = (
    "http",
    "https",
    "tls",  # TLS carrying something other than HTTP
    "ssh",
    "ldap",
    "ldaps",
    "dns",
    "smb",
    "ntp",
    "nfs",
    "dhcp",
    "iscsi",
    "mysql",
    "postgresql",
    "nats",
    "kerberos",
    "rdp",
    "vnc",
    "smtp",
    "snmp",
    "syslog",
    "ftp",
    "telnet",
    "unspecified",  # the document names no protocol
)

#: Severities, highest first.
SEVERITIES: tuple[str, ...] = ("high", "medium", "low", "info")

#: Finding kinds (a rule may override the severity of each), in the order reports list them.
FINDING_KINDS: tuple[str, ...] = (
    "plaintext_disk_transfer",
    "plaintext_where_tls_required",
    "mtls_not_observed",
    "weak_tls",
    "unexpected_port",
    "missing_flow",
    "unknown_host",
)

#: Direction of the data in a disk/file transfer, relative to the connection:
#: ``upload`` = from the initiator (``from``) to the responder (``to``); ``download`` = back.
TRANSFERS: tuple[str, ...] = ("upload", "download", "both")


@dataclass(frozen=True)
class SourceDocument:
    """A vendor document a ruleset transcribes: the file name it is cited by and its title."""

    file: str
    title: str = ""
    url: str = ""


@dataclass(frozen=True)
class Source:
    """Provenance of a rule: which document, which table or section, and the vendor's words."""

    document: str
    section: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"document": self.document, "section": self.section, "text": self.text}


@dataclass(frozen=True)
class Hints:
    """What helps recognise a host of a role in traffic.

    ``names`` are DNS/SNI/Host patterns (``*.`` wildcard allowed), ``user_agents`` are glob
    patterns on HTTP User-Agent; ``serves``/``connects`` are derived from the rules: the
    (proto, lo, hi) port spans the role listens on / connects to.
    """

    names: tuple[str, ...] = ()
    user_agents: tuple[str, ...] = ()
    serves: tuple[tuple[str, int, int], ...] = ()
    connects: tuple[tuple[str, int, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "user_agents": list(self.user_agents),
            "serves": [{"proto": p, "port_lo": lo, "port_hi": hi} for p, lo, hi in self.serves],
            "connects": [{"proto": p, "port_lo": lo, "port_hi": hi} for p, lo, hi in self.connects],
        }


@dataclass(frozen=True)
class Role:
    """A kind of host in the vendor's architecture (appliance, agent, diego_cell, ...).

    ``implies`` lists roles a host of this role always also holds (an agent on a Citrix
    Provisioning server is both ``pvs_agent`` and ``agent``).
    """

    id: str
    description: str
    hints: Hints = Hints()
    implies: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "implies": list(self.implies),
            "hints": self.hints.to_json(),
        }


@dataclass(frozen=True)
class Rule:
    """One documented flow: from-role -> to-role on a transport and a set of ports.

    ``pair`` is the id of the rule for the same purpose over the other of cleartext/TLS
    (3009 HTTP <-> 3509 HTTPS). ``severity`` maps finding kinds to severity overrides.
    """

    id: str
    from_role: str
    to_role: str
    proto: str
    ports: tuple[int, ...]
    port_ranges: tuple[tuple[int, int], ...]
    app: str
    security: str
    disk_transfer: bool
    expected: bool
    source: Source
    pair: str | None = None
    component: str | None = None
    from_component: str | None = None
    transfer: str | None = None
    severity: dict[str, str] = field(default_factory=dict, hash=False)
    notes: tuple[str, ...] = ()
    also_sources: tuple[Source, ...] = ()

    @property
    def encrypted_required(self) -> bool:
        """True when the security requirement implies an encrypted channel (tls, mtls, ...)."""
        return SECURITY[self.security][0]

    def spans(self) -> tuple[tuple[int, int], ...]:
        """Every port and range as (lo, hi), single ports first."""
        return tuple((p, p) for p in self.ports) + self.port_ranges

    def covers(self, port: int) -> bool:
        return port in self.ports or any(lo <= port <= hi for lo, hi in self.port_ranges)

    def port_text(self) -> str:
        """Ports for humans: ``80, 443, 61001-65534``."""
        parts = [str(p) for p in self.ports] + [f"{lo}-{hi}" for lo, hi in self.port_ranges]
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.from_role,
            "to": self.to_role,
            "proto": self.proto,
            "ports": list(self.ports),
            "port_ranges": [[lo, hi] for lo, hi in self.port_ranges],
            "app": self.app,
            "security": self.security,
            "encrypted_required": self.encrypted_required,
            "disk_transfer": self.disk_transfer,
            "transfer": self.transfer,
            "expected": self.expected,
            "pair": self.pair,
            "component": self.component,
            "from_component": self.from_component,
            "severity": dict(self.severity),
            "source": {"document": self.source.document, "section": self.source.section},
            "text": self.source.text,
            "also_sources": [s.to_json() for s in self.also_sources],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Ruleset:
    """A vendor's documented flows: roles, rules and the documents they come from."""

    name: str
    title: str
    description: str
    source_documents: tuple[str, ...]  # file names, as rules cite them
    roles: tuple[Role, ...]
    flows: tuple[Rule, ...]
    path: Path | None = None
    notes: tuple[str, ...] = ()
    documents: tuple[SourceDocument, ...] = ()  # the same documents with titles and URLs

    @property
    def role_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.roles)

    def role(self, role_id: str) -> Role:
        for r in self.roles:
            if r.id == role_id:
                return r
        raise KeyError(role_id)

    def rule(self, rule_id: str) -> Rule:
        for r in self.flows:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def implied_roles(self, role_ids: set[str] | frozenset[str]) -> set[str]:
        """``role_ids`` plus every role they imply, transitively."""
        by_id = {r.id: r for r in self.roles}
        out = set(role_ids)
        todo = list(role_ids)
        while todo:
            role = by_id.get(todo.pop())
            for implied in role.implies if role else ():
                if implied not in out:
                    out.add(implied)
                    todo.append(implied)
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``pcap-audit rulesets show --format json`` contract (docs/rulesets.md)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "source_documents": list(self.source_documents),
            "documents": [{"file": d.file, "title": d.title, "url": d.url} for d in self.documents],
            "notes": list(self.notes),
            "path": str(self.path) if self.path else None,
            "roles": [r.to_json() for r in self.roles],
            "flows": [r.to_json() for r in self.flows],
        }
