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
import io
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa

from auditor.errors import InventoryError
from auditor.rules.model import Ruleset
from auditor.rules.names import name_pattern_problem, normalise_name
from auditor.rules.yamlmarks import (
    KeyPath,
    YamlProblem,
    display_path,
    keypath_text,
    parse_yaml,
    read_text,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TOP_KEYS = ("ruleset", "description", "roles", "expect", "ignore_expected")
EXPECT_KEYS = ("from", "to", "port", "proto")
ENTRY_EXPECTED = "expected an IPv4/IPv6 address, a CIDR network, a DNS name or a '*.' wildcard"


def classify_entry(entry: str) -> tuple[str, str]:
    """``(kind, canonical)`` for an inventory entry; kind is address/network/name/wildcard.

    Raises ValueError with the reason when the entry is none of those.
    """
    e = entry.strip()
    if "/" in e:
        try:
            net = ipaddress.ip_network(e, strict=False)
        except ValueError:
            raise ValueError(f"{e!r} is not a valid CIDR network") from None
        return "network", str(net)
    if ":" in e or re.fullmatch(r"[\d.]+", e):
        try:
            return "address", str(ipaddress.ip_address(e))
        except ValueError:
            raise ValueError(f"{e!r} is not a valid IP address") from None
    why = name_pattern_problem(e)
    if why:
        raise ValueError(f"{e!r} is not a DNS name or wildcard: {why}")
    n = normalise_name(e)
    return ("wildcard" if n.startswith("*.") else "name"), n


def _parse_ip(ip: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        addr = ipaddress.ip_address(ip.strip().split("%")[0])
    except ValueError:
        return []
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return [addr, addr.ipv4_mapped]
    return [addr]


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
        self._networks: list[tuple[IPNetwork, str]] = []
        self._names: dict[str, set[str]] = {}
        self._wildcards: dict[str, set[str]] = {}  # suffix without "*." -> roles
        for role, entries in roles.items():
            kept: list[str] = []
            for entry in entries:
                kind, canon = classify_entry(entry)
                if canon in kept:
                    continue
                kept.append(canon)
                if kind == "address" or kind == "network":
                    self._networks.append((ipaddress.ip_network(canon), role))
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
        for addr in _parse_ip(ip):
            for net, role in self._networks:
                if addr.version == net.version and addr in net:
                    found.add(role)
        return self._expand(found)

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
                rows["kind"].append(classify_entry(entry)[0])
        return pa.Table.from_pydict(rows, schema=pa.schema([(k, pa.string()) for k in rows]))

    def __repr__(self) -> str:
        n = sum(len(e) for e in self._roles.values())
        return f"Inventory(ruleset={self.ruleset!r}, roles={len(self._roles)}, entries={n})"


def _implies_of(ruleset: Ruleset) -> dict[str, frozenset[str]]:
    return {r.id: frozenset(r.implies) for r in ruleset.roles if r.implies}


def _unknown_role(role: str, ruleset: Ruleset) -> str:
    return (
        f"roles.{role}: unknown role '{role}' for ruleset '{ruleset.name}'; "
        f"known roles: {', '.join(ruleset.role_ids)}"
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
            raise fail((key,), f"unknown key '{key}'; allowed keys: {', '.join(TOP_KEYS)}")
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
            ekp = (*kp, i) if isinstance(entries, list) else kp
            if not isinstance(entry, str):
                raise fail(
                    ekp,
                    f"{ENTRY_EXPECTED}; got a {'list' if isinstance(entry, list) else 'mapping'}",
                )
            try:
                classify_entry(entry)
            except ValueError as exc:
                raise fail(ekp, f"{ENTRY_EXPECTED}; {exc}") from None
            out.append(entry.strip())
        mapping[role] = out
    return mapping, str(data.get("description") or "")


def _parse_csv(text: str, shown: str, rs: Ruleset) -> dict[str, list[str]]:
    known = set(rs.role_ids)
    mapping: dict[str, list[str]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = [c.strip() for c in next(csv.reader([line]))]
        if [c.lower() for c in row[:2]] == ["role", "entry"]:
            continue
        if len(row) < 2 or len(row) > 3 or not row[0] or not row[1]:
            raise InventoryError(
                shown,
                f"expected 'role,entry' or 'role,entry,comment', got {line.strip()!r}",
                str(lineno),
            )
        role, entry = row[0], row[1]
        if role not in known:
            raise InventoryError(shown, _unknown_role(role, rs).split(": ", 1)[1], str(lineno))
        try:
            classify_entry(entry)
        except ValueError as exc:
            raise InventoryError(shown, f"{ENTRY_EXPECTED}; {exc}", str(lineno)) from None
        mapping.setdefault(role, []).append(entry)
    return mapping


def _comment_lines(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines() or [""]]


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
                line += "  # " + " ".join(entry_comments[(role, entry)].split())
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
