"""The inventory: which hosts hold which roles, and the pure helpers that match against it.

An inventory maps role ids of one ruleset to entries: IPv4/IPv6 addresses, CIDR networks,
DNS names and ``*.`` wildcards. Addresses and networks are matched against the capture's
IPs (:meth:`Inventory.roles_for_ip`); names against what the capture reveals about a host
(TLS SNI, HTTP Host, DNS answers: :meth:`Inventory.roles_for_name`). A host may hold
several roles, and roles a ruleset declares as implied (``pvs_agent`` implies ``agent``)
come along. Reading (YAML or CSV) and writing (:func:`dump_inventory`, used by
``pcap-audit roles`` to write a file a user can correct) are the only I/O here.
"""

from __future__ import annotations

import csv
import functools
import io
import ipaddress
import json
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import pyarrow as pa

from auditor.errors import InventoryError
from auditor.escape import printable
from auditor.rules.model import Ruleset
from auditor.rules.names import name_pattern_problem, normalise_name
from auditor.rules.yamlmarks import (
    KeyPath,
    YamlProblem,
    display_path,
    excerpt,
    keypath_text,
    listing,
    parse_yaml,
    read_text,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TOP_KEYS = ("ruleset", "description", "roles", "expect", "ignore_expected")
EXPECT_KEYS = ("from", "to", "port", "proto")
ENTRY_EXPECTED = "expected an IPv4/IPv6 address, a CIDR network, a DNS name or a '*.' wildcard"


class Entry(NamedTuple):
    """One inventory entry, parsed once: its kind, its canonical text and, for addresses
    and networks, the key of the address index (version, prefix length, network bits)."""

    kind: str  # address / network / name / wildcard
    canon: str
    version: int = 0
    prefixlen: int = 0
    bits: int = 0  # the address shifted right by its host bits


def classify_entry(entry: str) -> tuple[str, str]:
    """``(kind, canonical)`` for an inventory entry; kind is address/network/name/wildcard.

    Raises ValueError with the reason when the entry is none of those.
    """
    parsed = parse_entry(entry)
    return parsed.kind, parsed.canon


def _v4_int(text: str) -> int | None:
    """A dotted-quad IPv4 address as an int, or None: the common case in a quarter of a
    microsecond instead of the ~5 µs of an ``ipaddress`` object (a 100,000-entry inventory
    is mostly these). inet_pton takes exactly four decimal octets, no leading zeros, as
    ``ipaddress`` does; anything else goes the slow way."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        return None


def _shown(entry: str) -> str:
    return repr(excerpt(entry))


def _v4_text(value: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


@functools.lru_cache(maxsize=1 << 17)
def parse_entry(entry: str) -> Entry:
    """:class:`Entry` for an inventory entry (cached: the loader validates and the index
    is built from the same strings). Raises ValueError with the reason."""
    e = entry.strip()
    value = _v4_int(e)
    if value is not None:  # inet_pton took it, so it is already in canonical form
        return Entry("address", e, 4, 32, value)
    if "%" in e and ":" in e:
        # Python reads fe80::1%eth0, but a capture's addresses carry no zone: it could
        # never match, and ip_network() refuses it.
        raise ValueError(
            f"{_shown(e)} has a zone index ('%...'), which a capture's addresses do not carry; "
            "write the address without it"
        )
    if "/" in e:
        addr, _, length = e.partition("/")
        value = _v4_int(addr)
        if value is not None and length.isascii() and length.isdigit() and int(length) <= 32:
            prefixlen = int(length)
            bits = value >> (32 - prefixlen)
            return Entry(
                "network", f"{_v4_text(bits << (32 - prefixlen))}/{prefixlen}", 4, prefixlen, bits
            )
        try:
            net = ipaddress.ip_network(e, strict=False)
        except ValueError:
            raise ValueError(f"{_shown(e)} is not a valid CIDR network") from None
        shift = net.max_prefixlen - net.prefixlen
        return Entry(
            "network", str(net), net.version, net.prefixlen, int(net.network_address) >> shift
        )
    if ":" in e or re.fullmatch(r"[\d.]+", e):
        try:
            ip = ipaddress.ip_address(e)
        except ValueError:
            raise ValueError(f"{_shown(e)} is not a valid IP address") from None
        return Entry("address", str(ip), ip.version, ip.max_prefixlen, int(ip))
    why = name_pattern_problem(e)
    if why:
        raise ValueError(f"{_shown(e)} is not a DNS name or wildcard: {why}")
    n = normalise_name(e)
    return Entry("wildcard" if n.startswith("*.") else "name", n)


def _parse_ip(ip: str) -> list[tuple[int, int, int]]:
    """``(version, address bits, int)`` for a capture's address text; both forms of a
    v4-mapped IPv6 address; nothing for what is not an address."""
    text = ip.strip()
    value = _v4_int(text)
    if value is not None:
        return [(4, 32, value)]
    try:
        addr = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return []
    out: list[tuple[int, int, int]] = [(addr.version, addr.max_prefixlen, int(addr))]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        out.append((4, 32, int(addr.ipv4_mapped)))
    return out


class Inventory:
    """Roles -> entries, with matching helpers. Build with :func:`load_inventory` or
    :meth:`from_mapping`; entries are kept as written (normalised) per role, in order."""

    def __init__(
        self,
        ruleset: str,
        roles: Mapping[str, Sequence[str]],
        implies: Mapping[str, frozenset[str]] | None = None,
        path: Path | None = None,
        description: str = "",
        expect: Sequence[str] = (),
        ignore_expected: Sequence[str] = (),
    ) -> None:
        self.ruleset = ruleset
        self.path = path
        self.description = description
        #: rule ids this deployment expects / does not expect (the inventory's ``expect`` and
        #: ``ignore_expected``), resolved against the ruleset when the file was read
        self.expect: tuple[str, ...] = tuple(expect)
        self.ignore_expected: tuple[str, ...] = tuple(ignore_expected)
        self._roles: dict[str, tuple[str, ...]] = {}
        self._implies = dict(implies or {})
        self._kinds: dict[str, str] = {}  # canonical entry -> address/network/name/wildcard
        # The address index: (version, prefix length) -> network bits -> roles. A single
        # address is a full-length prefix; a look-up masks the address once per prefix
        # length in use (at most 33 for IPv4), so it costs the same for 10 entries or 1 M.
        self._prefixes: dict[tuple[int, int], dict[int, set[str]]] = {}
        self._names: dict[str, set[str]] = {}
        self._wildcards: dict[str, set[str]] = {}  # suffix without "*." -> roles
        prefixes = self._prefixes
        for role, entries in roles.items():
            kept: dict[str, None] = {}
            for entry in entries:
                parsed = parse_entry(entry)
                kind, canon = parsed.kind, parsed.canon
                if canon in kept:
                    continue
                kept[canon] = None
                self._kinds[canon] = kind
                if kind == "address" or kind == "network":
                    key = (parsed.version, parsed.prefixlen)
                    table = prefixes.get(key)
                    if table is None:
                        table = prefixes[key] = {}
                    holders = table.get(parsed.bits)
                    if holders is None:
                        table[parsed.bits] = {role}
                    else:
                        holders.add(role)
                elif kind == "name":
                    self._names.setdefault(canon, set()).add(role)
                else:
                    self._wildcards.setdefault(canon[2:], set()).add(role)
            self._roles[role] = tuple(kept)

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Sequence[str]], ruleset: Ruleset, path: Path | None = None
    ) -> Inventory:
        """Validate a role -> entries mapping against ``ruleset`` (InventoryError if bad)."""
        shown = display_path(path) if path else "<inventory>"
        known = set(ruleset.role_ids)
        for role, entries in mapping.items():
            if role not in known:
                raise InventoryError(shown, _unknown_role(role, ruleset))
            for entry in entries:
                try:
                    classify_entry(entry)
                except ValueError as exc:
                    raise InventoryError(shown, f"roles.{role}: {ENTRY_EXPECTED}; {exc}") from None
        return cls(ruleset.name, mapping, _implies_of(ruleset), path)

    # -- matching --------------------------------------------------------------------------

    def _expand(self, roles: set[str]) -> set[str]:
        out = set(roles)
        todo = list(roles)
        while todo:
            for implied in self._implies.get(todo.pop(), ()):
                if implied not in out:
                    out.add(implied)
                    todo.append(implied)
        return out

    def roles_for_ip(self, ip: str) -> set[str]:
        """Roles whose addresses or networks contain ``ip`` (v4, v6, v4-mapped v6).

        An unparsable address holds no role.
        """
        found: set[str] = set()
        for addr_version, width, value in _parse_ip(ip):
            for (version, prefixlen), table in self._prefixes.items():
                if version == addr_version:
                    roles = table.get(value >> (width - prefixlen))
                    if roles:
                        found |= roles
        return self._expand(found)

    def kind(self, entry: str) -> str:
        """The kind of a canonical entry as listed (address/network/name/wildcard)."""
        return self._kinds[entry]

    def addresses(self) -> list[str]:
        """The single addresses listed (canonical), in no particular order."""
        return [e for e, kind in self._kinds.items() if kind == "address"]

    def roles_for_name(self, name: str) -> set[str]:
        """Roles whose names match ``name``: exact (case-insensitive, trailing dot ignored),
        or ``*.domain`` for any depth of subdomain of ``domain``."""
        n = normalise_name(name)
        if not n:
            return set()
        found = set(self._names.get(n, ()))
        labels = n.split(".")
        for i in range(1, len(labels)):
            found |= self._wildcards.get(".".join(labels[i:]), set())
        return self._expand(found)

    def apply_expectations(self, ruleset: Ruleset) -> Ruleset:
        """``ruleset`` with this deployment's expectations: the rules of ``expect`` expected,
        those of ``ignore_expected`` not (the ruleset itself when neither is given)."""
        if not self.expect and not self.ignore_expected:
            return ruleset
        on, off = set(self.expect), set(self.ignore_expected)
        flows = tuple(
            replace(r, expected=True)
            if r.id in on
            else replace(r, expected=False)
            if r.id in off
            else r
            for r in ruleset.flows
        )
        return replace(ruleset, flows=flows)

    # -- access and output -----------------------------------------------------------------

    @property
    def roles(self) -> dict[str, tuple[str, ...]]:
        """Role -> entries as listed (copy)."""
        return dict(self._roles)

    def entries(self, role: str) -> tuple[str, ...]:
        return self._roles.get(role, ())

    def to_mapping(self) -> dict[str, list[str]]:
        return {role: list(entries) for role, entries in self._roles.items()}

    def to_yaml(self, comments: dict[str, str] | None = None) -> str:
        buf = io.StringIO()
        dump_inventory(self.to_mapping(), buf, comments, ruleset=self.ruleset)
        return buf.getvalue()

    def entries_table(self) -> pa.Table:
        """One row per (role, entry): role, entry, kind (address/network/name/wildcard)."""
        rows: dict[str, list[str]] = {"role": [], "entry": [], "kind": []}
        for role, entries in self._roles.items():
            for entry in entries:
                rows["role"].append(role)
                rows["entry"].append(entry)
                rows["kind"].append(self._kinds[entry])
        return pa.Table.from_pydict(rows, schema=pa.schema([(k, pa.string()) for k in rows]))

    def __repr__(self) -> str:
        n = sum(len(e) for e in self._roles.values())
        return f"Inventory(ruleset={self.ruleset!r}, roles={len(self._roles)}, entries={n})"


def _implies_of(ruleset: Ruleset) -> dict[str, frozenset[str]]:
    return {r.id: frozenset(r.implies) for r in ruleset.roles if r.implies}


def _unknown_role(role: str, ruleset: Ruleset) -> str:
    return (
        f"roles.{excerpt(role)}: unknown role '{excerpt(role)}' for ruleset '{ruleset.name}'; "
        f"known roles: {listing(ruleset.role_ids)}"
    )


def _resolve(ruleset: Ruleset | str | Path) -> Ruleset:
    if isinstance(ruleset, Ruleset):
        return ruleset
    from auditor.rules.loader import load_ruleset

    return load_ruleset(ruleset)


def load_inventory(path: str | Path, ruleset: Ruleset | str | Path) -> Inventory:
    """Read an inventory (YAML, or CSV when the name ends in ``.csv``) for ``ruleset``.

    Raises :class:`InventoryError` (exit code 2) naming the file, the line, the key and
    what was expected; an unknown role lists the ruleset's roles.
    """
    rs = _resolve(ruleset)
    p = Path(path)
    shown = display_path(p)
    try:
        text = read_text(p)
    except YamlProblem as exc:
        raise InventoryError(shown, exc.message) from None
    expect: dict[str, list[str]] = {"expect": [], "ignore_expected": []}
    if p.suffix.lower() == ".csv":
        mapping, description = _parse_csv(text, shown, rs), ""
    else:
        mapping, description = _parse_yaml(text, shown, rs, expect)
    inv = Inventory(
        rs.name,
        mapping,
        _implies_of(rs),
        p,
        description,
        expect["expect"],
        expect["ignore_expected"],
    )
    parse_entry.cache_clear()  # it served validation and the index; don't keep 100k entries
    return inv


def _port(value: Any) -> int | None:
    text = str(value).strip()
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else None


def _expectations(
    data: dict[str, Any],
    key: str,
    rs: Ruleset,
    fail: Any,
) -> list[str]:
    """The rule ids an ``expect`` / ``ignore_expected`` list names: each entry
    ``{from, to, port[, proto]}`` must name a documented flow (every rule it covers)."""
    items = data.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise fail((key,), "expected a list of {from: role, to: role, port: N}")
    known = set(rs.role_ids)
    out: list[str] = []
    for i, item in enumerate(items):
        kp: KeyPath = (key, i)
        if not isinstance(item, dict):
            raise fail(kp, "expected a mapping {from: role, to: role, port: N}")
        for k in item:
            if k not in EXPECT_KEYS:
                raise fail((*kp, k), f"unknown key '{k}'; allowed keys: {', '.join(EXPECT_KEYS)}")
        missing = [k for k in ("from", "to", "port") if k not in item]
        if missing:
            raise fail(
                kp, f"missing required key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
            )
        for k in ("from", "to"):
            if item[k] not in known:
                raise fail((*kp, k), _unknown_role(str(item[k]), rs).split(": ", 1)[1])
        port = _port(item["port"])
        if port is None:
            raise fail((*kp, "port"), f"expected a port 1-65535, got {item['port']!r}")
        proto = item.get("proto")
        rules = [
            r
            for r in rs.flows
            if r.from_role == item["from"]
            and r.to_role == item["to"]
            and r.covers(port)
            and (proto is None or proto in r.protos)
        ]
        if not rules:
            between = sorted(
                {
                    f"{r.proto}/{r.port_text()}"
                    for r in rs.flows
                    if r.from_role == item["from"] and r.to_role == item["to"]
                }
            )
            what = f"{item['from']} -> {item['to']} {proto or 'tcp/udp'}/{port}"
            raise fail(
                kp,
                f"names no documented flow of ruleset '{rs.name}': {what}; documented from "
                f"{item['from']} to {item['to']}: {', '.join(between) or 'nothing'}",
            )
        out += [r.id for r in rules if r.id not in out]
    return out


def _parse_yaml(
    text: str, shown: str, rs: Ruleset, expect: dict[str, list[str]] | None = None
) -> tuple[dict[str, list[str]], str]:
    try:
        located = parse_yaml(text, strings=True)
    except YamlProblem as exc:
        raise InventoryError(shown, exc.message, str(exc.line) if exc.line else None) from None

    def fail(kp: KeyPath, message: str) -> InventoryError:
        line = located.line(kp)
        text = f"{keypath_text(kp)}: {message}" if kp else message
        return InventoryError(shown, text, str(line) if line else None)

    data: Any = located.data
    if data is None:
        raise fail((), "empty file: expected 'roles:' mapping role ids to addresses and names")
    if not isinstance(data, dict):
        raise fail((), "expected a mapping with the key 'roles' (role id -> list of entries)")
    for key in data:
        if key not in TOP_KEYS:
            raise fail((key,), f"unknown key '{excerpt(key)}'; allowed keys: {', '.join(TOP_KEYS)}")
    if "roles" not in data:
        raise fail((), "missing required key: roles")
    if data.get("ruleset") is not None and data["ruleset"] != rs.name:
        raise fail(
            ("ruleset",),
            f"this inventory is for ruleset '{data['ruleset']}', not '{rs.name}' "
            "(fix or remove the 'ruleset' key)",
        )
    if expect is not None:
        for key in ("expect", "ignore_expected"):
            expect[key] = _expectations(data, key, rs, fail)
        both = sorted(set(expect["expect"]) & set(expect["ignore_expected"]))
        if both:
            raise fail(("ignore_expected",), f"rule '{both[0]}' is both expected and ignored")
    roles = data["roles"]
    if roles is None:
        return {}, data.get("description") or ""
    if not isinstance(roles, dict):
        raise fail(("roles",), "expected a mapping of role id -> list of addresses and names")
    known = set(rs.role_ids)
    mapping: dict[str, list[str]] = {}
    for role, entries in roles.items():
        kp: KeyPath = ("roles", role)
        if role not in known:
            raise fail(kp, _unknown_role(role, rs).split(": ", 1)[1])
        if entries is None:
            items: list[Any] = []
        elif isinstance(entries, str):
            items = [entries]
        elif isinstance(entries, list):
            items = entries
        else:
            raise fail(kp, f"{ENTRY_EXPECTED}, or a list of them; got a mapping")
        out: list[str] = []
        for i, entry in enumerate(items):
            if not isinstance(entry, str):
                kind = "list" if isinstance(entry, list) else "mapping"
                raise fail(_entry_kp(kp, i, entries), f"{ENTRY_EXPECTED}; got a {kind}")
            try:
                parse_entry(entry)
            except ValueError as exc:
                raise fail(_entry_kp(kp, i, entries), f"{ENTRY_EXPECTED}; {exc}") from None
            out.append(entry.strip())
        mapping[role] = out
    return mapping, str(data.get("description") or "")


def _entry_kp(kp: KeyPath, i: int, entries: object) -> KeyPath:
    return (*kp, i) if isinstance(entries, list) else kp


def _parse_csv(text: str, shown: str, rs: Ruleset) -> dict[str, list[str]]:
    known = set(rs.role_ids)
    mapping: dict[str, list[str]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = [c.strip() for c in next(csv.reader([line]))]
        except csv.Error as exc:  # e.g. a field beyond the csv module's 128 kB limit
            raise InventoryError(shown, f"not a CSV row: {exc}", str(lineno)) from None
        if [c.lower() for c in row[:2]] == ["role", "entry"]:
            continue
        if len(row) < 2 or len(row) > 3 or not row[0] or not row[1]:
            raise InventoryError(
                shown,
                f"expected 'role,entry' or 'role,entry,comment', got {excerpt(line.strip())!r}",
                str(lineno),
            )
        role, entry = row[0], row[1]
        if role not in known:
            raise InventoryError(shown, _unknown_role(role, rs).split(": ", 1)[1], str(lineno))
        try:
            parse_entry(entry)
        except ValueError as exc:
            raise InventoryError(shown, f"{ENTRY_EXPECTED}; {exc}", str(lineno)) from None
        mapping.setdefault(role, []).append(entry)
    return mapping


def _comment_lines(text: str, indent: str) -> list[str]:
    return [f"{indent}# {printable(line)}".rstrip() for line in text.splitlines() or [""]]


def dump_inventory(
    mapping: Mapping[str, Sequence[str]],
    path_or_stream: str | Path | TextIO,
    comments: dict[str, str] | None = None,
    *,
    ruleset: Ruleset | str | None = None,
    entry_comments: Mapping[tuple[str, str], str] | None = None,
    header: str | None = None,
) -> None:
    """Write role -> entries as an inventory file a user can read, correct and load back.

    ``comments`` maps a role id to a comment written above it (why these hosts were given
    this role); ``entry_comments`` maps (role, entry) to a comment at the end of that line.
    With ``ruleset`` (a Ruleset or its name) the file names it, and when it is a Ruleset
    every role without entries is listed as ``role: []`` under its description.
    """
    comments = comments or {}
    entry_comments = entry_comments or {}
    out: list[str] = []
    if header:
        out += _comment_lines(header, "")
    name = ruleset.name if isinstance(ruleset, Ruleset) else ruleset
    if name:
        out.append(f"ruleset: {json.dumps(name)}")
    out.append("roles:" if mapping or isinstance(ruleset, Ruleset) else "roles: {}")
    for role, entries in mapping.items():
        if role in comments:
            out += _comment_lines(comments[role], "  ")
        if not entries:
            out.append(f"  {role}: []")
            continue
        out.append(f"  {role}:")
        for entry in entries:
            line = f"    - {json.dumps(entry)}"
            if (role, entry) in entry_comments:
                line += "  # " + printable(" ".join(entry_comments[(role, entry)].split()))
            out.append(line)
    if isinstance(ruleset, Ruleset):
        missing = [r for r in ruleset.roles if r.id not in mapping]
        if missing:
            out.append("  # Roles with no host yet: add addresses, CIDRs or names, or leave empty.")
        for role_obj in missing:
            out += _comment_lines(comments.get(role_obj.id, role_obj.description), "  ")
            out.append(f"  {role_obj.id}: []")
    text = "\n".join(out) + "\n"
    if isinstance(path_or_stream, str | Path):
        Path(path_or_stream).write_text(text, encoding="utf-8")
    else:
        path_or_stream.write(text)
