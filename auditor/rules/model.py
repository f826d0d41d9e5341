"""The ruleset as values: frozen dataclasses and the closed vocabularies they draw on.

A ruleset is data transcribed from a vendor's document (``rulesets/*.yaml``); this module
holds only what a loaded ruleset *is*, so that the audit, the renderers and the CLI share one
shape. Severities and transports are closed tuples: the loader rejects anything else, so a
typo is an error rather than a rule that silently never matches. Application protocols and
security requirements are open vocabularies (vocabulary.yaml): an unknown name is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from auditor.rules.kinds import FINDING_KINDS as FINDING_KINDS  # the kinds' table lives there
from auditor.rules.kinds import SEVERITIES as SEVERITIES
from auditor.rules.vocabulary import encrypted, vocabulary

Proto = Literal["tcp", "udp"]
#: Transports a rule may name; ``tcp/udp`` is both in one rule. ICMP's "ports" are its types.
PROTOS: tuple[str, ...] = ("tcp", "udp", "tcp/udp", "sctp", "icmp", "icmp6", "esp", "ah", "gre")
#: Transports without ports: a rule for them names none.
PORTLESS: tuple[str, ...] = ("esp", "ah", "gre")
#: Peers a rule may name instead of a role: ``any`` host, or an ``internet`` address (outside
#: the private and special-purpose ranges). They are not declared, and no host holds them.
PEERS: tuple[str, ...] = ("any", "internet")

#: Security requirement of a flow -> (requires an encrypted channel, meaning), and the
#: application protocols a rule may name: open vocabularies read from vocabulary.yaml (a name
#: outside them is a warning); ``encrypted_required`` drives the plaintext checks.
SECURITY: dict[str, tuple[bool, str]] = vocabulary().security
APPS: tuple[str, ...] = tuple(vocabulary().apps)


#: TLS versions, oldest first: a policy's minimum is one of them.
TLS_VERSIONS: tuple[str, ...] = ("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3")
#: The minimum TLS version when neither the ruleset, the rule nor --min-tls sets one.
DEFAULT_MIN_TLS = "TLS 1.2"

#: Where a rule's flow may come from: ``network`` (any host, the default) or ``local`` (only
#: within the host itself: another host reaching the port is a prohibited flow).
SCOPES: tuple[str, ...] = ("network", "local")

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
    #: the only address family the document allows the role ("ipv4" / "ipv6"), with its words
    address_family: str | None = None
    address_family_source: Source | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "implies": list(self.implies),
            "hints": self.hints.to_json(),
            "address_family": self.address_family,
            "address_family_source": (
                self.address_family_source.to_json() if self.address_family_source else None
            ),
        }


@dataclass(frozen=True)
class TlsAllowance:
    """TLS versions a document itself permits for a flow (003: AD binding "is compatible with
    the SSL 3.0 ... and TLS 1.1 and 1.2"), with its words: quoted when the policy is broken."""

    versions: tuple[str, ...]
    source: Source

    def to_json(self) -> dict[str, Any]:
        return {"versions": list(self.versions), "source": self.source.to_json()}


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
    scope: str = "network"
    #: source ports the initiator must use (DHCP 68 -> 67, NTP 123 -> 123); empty: any
    src_ports: tuple[int, ...] = ()
    src_port_ranges: tuple[tuple[int, int], ...] = ()
    #: the rule's own TLS minimum (None: the ruleset's / --min-tls)
    min_tls: str | None = None
    tls_allowed: TlsAllowance | None = None
    #: why the document makes this the default (quoted by findings): ``vendor_reason`` in YAML
    vendor_reason: tuple[str, ...] = ()

    @property
    def protos(self) -> tuple[str, ...]:
        """The transports the rule covers: ``tcp/udp`` is both."""
        return tuple(self.proto.split("/"))

    @property
    def encrypted_required(self) -> bool:
        """True when the security requirement implies an encrypted channel (tls, mtls, ...)."""
        return encrypted(self.security)

    def spans(self) -> tuple[tuple[int, int], ...]:
        """Every port and range as (lo, hi), single ports first."""
        return tuple((p, p) for p in self.ports) + self.port_ranges

    def src_spans(self) -> tuple[tuple[int, int], ...]:
        """The source ports as (lo, hi); empty when any source port will do."""
        return tuple((p, p) for p in self.src_ports) + self.src_port_ranges

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
            "scope": self.scope,
            "src_ports": list(self.src_ports),
            "src_port_ranges": [[lo, hi] for lo, hi in self.src_port_ranges],
            "min_tls": self.min_tls,
            "tls_allowed": self.tls_allowed.to_json() if self.tls_allowed else None,
            "vendor_reason": list(self.vendor_reason),
        }


@dataclass(frozen=True)
class Deny:
    """Traffic a document forbids: every condition given must hold for a flow to match.

    ``apps``: protocols identified from payload (on any port unless ``ports`` is given);
    ``from_role``/``to_role``: the endpoints' roles (None: any host); ``proto`` and ports: the
    transport and destination port. An endpoint with no role matches a role condition only
    when the entry also names a port or a protocol (a pair of roles alone needs both roles).
    """

    id: str
    source: Source
    from_role: str | None = None
    to_role: str | None = None
    proto: str | None = None
    ports: tuple[int, ...] = ()
    port_ranges: tuple[tuple[int, int], ...] = ()
    apps: tuple[str, ...] = ()
    severity: str | None = None
    notes: tuple[str, ...] = ()
    also_sources: tuple[Source, ...] = ()

    def spans(self) -> tuple[tuple[int, int], ...]:
        return tuple((p, p) for p in self.ports) + self.port_ranges

    def describe(self) -> str:
        """For humans: ``telnet, any host -> appliance``."""
        parts = []
        if self.apps:
            parts.append("/".join(self.apps))
        if self.proto or self.spans():
            ports = ", ".join(
                [str(p) for p in self.ports] + [f"{lo}-{hi}" for lo, hi in self.port_ranges]
            )
            parts.append(f"{self.proto or 'any'}/{ports or 'any port'}")
        parts.append(f"{self.from_role or 'any host'} -> {self.to_role or 'any host'}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.from_role,
            "to": self.to_role,
            "proto": self.proto,
            "ports": list(self.ports),
            "port_ranges": [[lo, hi] for lo, hi in self.port_ranges],
            "app": list(self.apps),
            "severity": self.severity,
            "source": self.source.to_json(),
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
    denies: tuple[Deny, ...] = ()
    min_tls: str = DEFAULT_MIN_TLS  # the ruleset's TLS policy

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

    def deny(self, deny_id: str) -> Deny:
        for d in self.denies:
            if d.id == deny_id:
                return d
        raise KeyError(deny_id)

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
            "deny": [d.to_json() for d in self.denies],
            "tls": {"min_version": self.min_tls},
        }
