"""The inventory: which hosts hold which roles, and the pure helpers that match against it.

An inventory maps role ids of one ruleset to entries: IPv4/IPv6 addresses, CIDR networks,
DNS names and ``*.`` wildcards. Addresses and networks are matched against the capture's
IPs (:meth:`Inventory.roles_for_ip`); names against what the capture reveals about a host
(TLS SNI, HTTP Host, DNS answers: :meth:`Inventory.roles_for_name`). A host may hold
several roles, and roles a ruleset declares as implied (``pvs_agent`` implies ``agent``)
come along. Writing (:func:`dump_inventory`, used by ``pcap-audit roles`` to write a
file a user can correct) is the only I/O here; reading a file is
:mod:`auditor.rules.inventory_reader`, telling entries apart :mod:`auditor.rules.entries`.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import json
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import pyarrow as pa

from auditor.errors import InventoryError
from auditor.escape import printable
from auditor.rules.entries import (
    ENTRY_EXPECTED,
    BadEntry,
    Entry,
    classify_entry,
    looks_v6_network,
    parse_entry,
    parse_ip,
    plain_names,
    sorted_ints,
    v4_int,
    v4_text,
    v6_networks,
)
from auditor.rules.model import Ruleset
from auditor.rules.names import normalise_name
from auditor.rules.yamlmarks import (
    display_path,
    excerpt,
    listing,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["Entry", "Inventory", "classify_entry", "dump_inventory", "parse_entry"]


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
        # The address index: (version, prefix length) -> network bits -> a bit mask of the
        # roles listed there (bit i: self._bit_roles[i]). A single address is a full-length
        # prefix; a look-up masks the address once per prefix length in use (at most 33
        # for IPv4), so it costs the same for 10 entries or 1 M, and the roles found are
        # or-ed ints, made a set once per distinct combination (:meth:`_roles_of`).
        self._prefixes: dict[tuple[int, int], dict[int, int]] = {}
        self._role_bit: dict[str, int] = {}
        self._bit_roles: list[str] = []
        self._mask_roles: dict[int, frozenset[str]] = {0: frozenset()}
        self._v4_addresses: dict[int, str] = {}  # the single IPv4 addresses, by value
        self._v6_addresses: dict[str, None] = {}  # and the IPv6 ones (canonical text)
        self._names: dict[str, set[str]] = {}
        self._wildcards: dict[str, set[str]] = {}  # suffix without "*." -> roles
        for role, entries in roles.items():
            self._add(role, entries)
        # per address family, (shift, table) for each prefix length in use
        self._by_version: dict[int, list[tuple[int, dict[int, int]]]] = {4: [], 6: []}
        for (version, prefixlen), table in sorted(self._prefixes.items()):
            width = 32 if version == 4 else 128
            self._by_version[version].append((width - prefixlen, table))

    def _add(self, role: str, entries: Sequence[str]) -> None:
        """Index the entries of one role (BadEntry for the first that is none of the kinds).

        The kinds a large inventory is made of in bulk, each picked by its look and read
        in comprehensions, then added to the index with dictionary updates: dotted quads,
        IPv4 networks, DNS names and wildcards (one regular expression each), IPv6
        networks in hex groups. Every other entry goes through :func:`parse_entry` one by
        one, in order, and so does one that only looked like a quad (a name ``host1``) or
        a name, and every IPv4 or IPv6 network of a role where one of them is not in the
        plain form: the first bad entry is the one named, with parse_entry's reason."""
        # 1: looks like a dotted quad, 2: like an IPv4 network, 0: anything else
        look = [(2 if "/" in e else 1) if e[-1:].isdigit() and ":" not in e else 0 for e in entries]
        quads = [e for e, k in zip(entries, look, strict=True) if k == 1]
        try:  # inet_pton takes what parse_entry would, and gives the canonical text back
            values = [int.from_bytes(socket.inet_pton(socket.AF_INET, e), "big") for e in quads]
        except (OSError, ValueError):  # some only look like one: those go one by one
            ints = iter([v4_int(e) for e in quads])
            look = [(0 if next(ints) is None else 1) if k == 1 else k for k in look]
            quads = [e for e, k in zip(entries, look, strict=True) if k == 1]
            values = [int.from_bytes(socket.inet_pton(socket.AF_INET, e), "big") for e in quads]
        nets = [e.partition("/") for e, k in zip(entries, look, strict=True) if k == 2]
        try:
            if not all(n.isascii() and n.isdigit() and int(n) <= 32 for _, _, n in nets):
                raise ValueError
            lengths = [int(n) for _, _, n in nets]
            nbits = [
                int.from_bytes(socket.inet_pton(socket.AF_INET, a), "big") >> (32 - n)
                for (a, _, _), n in zip(nets, lengths, strict=True)
            ]
        except (OSError, ValueError):  # not all in the plain form: each the full way
            look = [0 if k == 2 else k for k in look]
            lengths, nbits = [], []
        net_canons = [f"{v4_text(b << (32 - n))}/{n}" for n, b in zip(lengths, nbits, strict=True)]
        canons = list(entries)  # a dotted quad inet_pton takes is its own canonical text
        for i, canon in zip((i for i, k in enumerate(look) if k == 2), net_canons, strict=True):
            canons[i] = canon
        rest = [i for i, k in enumerate(look) if k == 0]
        # DNS names and wildcards, each by one regular expression
        plain = plain_names([entries[i] for i in rest])
        names = [(i, n) for i, n in zip(rest, plain, strict=True) if n is not None]
        rest = [i for i, n in zip(rest, plain, strict=True) if n is None]
        for i, name in names:
            canons[i] = name
        # IPv6 networks in hex groups; if one is not, each the full way
        v6 = [i for i in rest if looks_v6_network(entries[i])]
        v6_nets = v6_networks([entries[i] for i in v6])
        if v6_nets is None:
            v6, v6_nets = [], ([], [], [])
        else:
            done = set(v6)
            rest = [i for i in rest if i not in done]
        v6_canons, v6_lengths, v6_bits = v6_nets
        for i, canon in zip(v6, v6_canons, strict=True):
            canons[i] = canon
        parsed: list[Entry] = []
        for i in rest:
            try:
                entry = parse_entry(entries[i])
            except ValueError as exc:
                raise BadEntry(role, i, str(exc)) from None
            canons[i] = entry.canon
            parsed.append(entry)
        self._roles[role] = tuple(dict.fromkeys(canons))
        bit = 0
        if (
            values
            or nbits
            or v6_bits
            or any(p.kind == "address" or p.kind == "network" for p in parsed)
        ):
            bit = self._bit_of(role)
        prefixes, kinds = self._prefixes, self._kinds
        if values:
            full = prefixes.setdefault((4, 32), {})
            get = full.get
            full.update({v: get(v, 0) | bit for v in values})
            self._v4_addresses.update(zip(values, quads, strict=True))
            kinds.update(dict.fromkeys(quads, "address"))
        for version, plens, pbits in ((4, lengths, nbits), (6, v6_lengths, v6_bits)):
            for n, b in zip(plens, pbits, strict=True):
                table = prefixes.setdefault((version, n), {})
                table[b] = table.get(b, 0) | bit
        kinds.update(dict.fromkeys(net_canons, "network"))
        kinds.update(dict.fromkeys(v6_canons, "network"))
        for _, name in names:
            if name.startswith("*."):
                kinds[name] = "wildcard"
                self._wildcards.setdefault(name[2:], set()).add(role)
            else:
                kinds[name] = "name"
                self._names.setdefault(name, set()).add(role)
        for kind, canon, version, prefixlen, bits in parsed:
            kinds[canon] = kind
            if kind == "address" or kind == "network":
                table = prefixes.setdefault((version, prefixlen), {})
                table[bits] = table.get(bits, 0) | bit
                if kind == "address":
                    if version == 4:
                        self._v4_addresses[bits] = canon
                    else:
                        self._v6_addresses[canon] = None
            elif kind == "name":
                self._names.setdefault(canon, set()).add(role)
            else:
                self._wildcards.setdefault(canon[2:], set()).add(role)

    def _bit_of(self, role: str) -> int:
        bit = self._role_bit.get(role)
        if bit is None:
            bit = self._role_bit[role] = 1 << len(self._bit_roles)
            self._bit_roles.append(role)
        return bit

    def _roles_of(self, mask: int) -> frozenset[str]:
        """The roles of a bit mask, with the roles they imply."""
        roles = self._mask_roles.get(mask)
        if roles is None:
            listed = {r for i, r in enumerate(self._bit_roles) if mask >> i & 1}
            roles = self._mask_roles[mask] = frozenset(self._expand(listed))
        return roles

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Sequence[str]], ruleset: Ruleset, path: Path | None = None
    ) -> Inventory:
        """Validate a role -> entries mapping against ``ruleset`` (InventoryError if bad)."""
        shown = display_path(path) if path else "<inventory>"
        known = set(ruleset.role_ids)
        for role in mapping:
            if role not in known:
                raise InventoryError(shown, _unknown_role(role, ruleset))
        try:
            return cls(ruleset.name, mapping, _implies_of(ruleset), path)
        except BadEntry as bad:
            raise InventoryError(shown, f"roles.{bad.role}: {ENTRY_EXPECTED}; {bad}") from None

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
        mask = 0
        for version, _width, value in parse_ip(ip):
            for shift, table in self._by_version[version]:
                mask |= table.get(value >> shift, 0)
        return set(self._roles_of(mask))

    def address_roles(self, exclude: Iterable[str] = ()) -> tuple[list[str], list[frozenset[str]]]:
        """Every single address listed but those in ``exclude``, in address order (IPv4
        first), and the roles of each: two lists of the same length.

        The same answer as :meth:`roles_for_ip` for each, for all IPv4 addresses at once:
        a 100,000-entry inventory's addresses are looked up in numpy, one sorted search of
        each prefix length's networks (a few ms), not a dictionary probe per address and
        prefix length (a second).
        """
        skip = set(exclude)
        texts = self._v4_addresses
        # the excluded among them by value (a few hosts of a capture, not 100,000 texts)
        drop = {v for v in map(v4_int, skip) if v is not None and texts.get(v) in skip}
        values = sorted_ints(texts.keys() - drop if drop else texts.keys())
        addresses = [texts[v] for v in values]
        masks = self._v4_masks(values)
        found = {m: self._roles_of(m) for m in set(masks)}
        roles = [found[m] for m in masks]
        other = [ipaddress.ip_address(e) for e in self._v6_addresses if e not in skip]
        for a in sorted(other):
            addresses.append(str(a))
            roles.append(frozenset(self.roles_for_ip(str(a))))
        return addresses, roles

    def _v4_masks(self, values: list[int]) -> list[int]:
        """The role masks of IPv4 addresses (as ints), in numpy when the masks fit 63 bits."""
        tables = self._by_version[4]
        if not values or len(self._bit_roles) > 63:
            return [
                functools.reduce(lambda m, st: m | st[1].get(v >> st[0], 0), tables, 0)
                for v in values
            ]
        import numpy as np

        addrs = np.array(values, dtype=np.int64)
        masks = np.zeros(len(values), dtype=np.int64)
        for shift, table in tables:
            keys = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
            vals = np.fromiter(table.values(), dtype=np.int64, count=len(table))
            order = np.argsort(keys)
            keys, vals = keys[order], vals[order]
            wanted = addrs >> shift
            at = np.searchsorted(keys, wanted)
            at[at == len(keys)] = 0
            hit = keys[at] == wanted
            masks |= np.where(hit, vals[at], 0)
        return list(masks.tolist())

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
