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
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import pyarrow as pa

from auditor.errors import InventoryError
from auditor.escape import printable
from auditor.rules.model import Ruleset
from auditor.rules.names import VALID_NAME, name_pattern_problem, normalise_name
from auditor.rules.yamlmarks import (
    KeyPath,
    Located,
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


def _v6_int(text: str) -> int | None:
    """An IPv6 address in hex groups as an int, or None: the common case without
    ``ipaddress`` (10 µs an entry); forms with a dotted quad go that slow way. inet_pton
    takes what ``ipaddress`` takes: one to four hex digits a group, one ``::``."""
    if ":" not in text or "." in text:
        return None
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError):
        return None


def _v6_text(value: int) -> str | None:
    """The canonical text of an IPv6 address (as ``str(ipaddress.IPv6Address)``), or None
    for those inet_ntop writes with a dotted quad (v4-mapped and v4-compatible)."""
    text = socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
    return None if "." in text else text


def _shown(entry: str) -> str:
    return repr(excerpt(entry))


def _v4_text(value: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def parse_entry(entry: str) -> Entry:
    """:class:`Entry` for an inventory entry. Raises ValueError with the reason."""
    e = entry.strip()
    # a dotted quad first (six in ten entries of a large inventory), tried only on what
    # could be one: a refusal costs an exception
    value = _v4_int(e) if e[-1:].isdigit() and "/" not in e and ":" not in e else None
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
        value = _v4_int(addr) if ":" not in addr else None  # a refusal costs an exception
        if value is not None and length.isascii() and length.isdigit() and int(length) <= 32:
            prefixlen = int(length)
            bits = value >> (32 - prefixlen)
            return Entry(
                "network", f"{_v4_text(bits << (32 - prefixlen))}/{prefixlen}", 4, prefixlen, bits
            )
        value = _v6_int(addr)
        if value is not None and length.isascii() and length.isdigit() and int(length) <= 128:
            prefixlen = int(length)
            bits = value >> (128 - prefixlen)
            text = _v6_text(bits << (128 - prefixlen))
            if text is not None:
                return Entry("network", f"{text}/{prefixlen}", 6, prefixlen, bits)
        try:
            net = ipaddress.ip_network(e, strict=False)
        except ValueError:
            raise ValueError(f"{_shown(e)} is not a valid CIDR network") from None
        shift = net.max_prefixlen - net.prefixlen
        return Entry(
            "network", str(net), net.version, net.prefixlen, int(net.network_address) >> shift
        )
    value = _v6_int(e)
    if value is not None:
        text = _v6_text(value)
        if text is not None:
            return Entry("address", text, 6, 128, value)
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


def _plain_names(entries: list[str]) -> list[str | None]:
    """The canonical text of each entry that :func:`parse_entry` reads as a DNS name or
    ``*.`` wildcard, by one regular expression each (not the label-by-label check that
    says what is wrong with a bad one); None for any other (digits and dots only are an
    address to parse_entry, a bad name is explained there)."""
    low = [e.strip().lower().rstrip(".") for e in entries]
    return [
        n if len(n) <= 253 and VALID_NAME.fullmatch(n) and n.strip("0123456789.") else None
        for n in low
    ]


def _looks_v6_network(e: str) -> bool:
    return ":" in e and "/" in e and "%" not in e and "." not in e


def _v6_networks(entries: list[str]) -> tuple[list[str], list[int], list[int]] | None:
    """(canonical texts, prefix lengths, network bits) of IPv6 networks in hex groups, as
    :func:`parse_entry` gives them, in bulk; None when one is not in that form (a length
    that is not plain digits, a dotted quad in the text)."""
    parts = [e.partition("/") for e in entries]
    if not all(n.isascii() and n.isdigit() and int(n) <= 128 for _, _, n in parts):
        return None
    lengths = [int(n) for _, _, n in parts]
    try:
        bits = [
            int.from_bytes(socket.inet_pton(socket.AF_INET6, a), "big") >> (128 - n)
            for (a, _, _), n in zip(parts, lengths, strict=True)
        ]
    except (OSError, ValueError):
        return None
    texts = [
        socket.inet_ntop(socket.AF_INET6, (b << (128 - n)).to_bytes(16, "big"))
        for n, b in zip(lengths, bits, strict=True)
    ]
    if any("." in t for t in texts):  # v4-mapped: ipaddress writes those otherwise
        return None
    return [f"{t}/{n}" for t, n in zip(texts, lengths, strict=True)], lengths, bits


def _sorted_ints(values: Collection[int]) -> list[int]:
    """IPv4 addresses (ints below 2**32) sorted, in numpy (a fifth of the time of sorting
    60,000 Python ints)."""
    import numpy as np

    array = np.fromiter(values, dtype=np.int64, count=len(values))
    array.sort()
    return list(array.tolist())


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


class BadEntry(ValueError):
    """An entry of an inventory that is none of the kinds: which role, which of its
    entries (0-based), and why (the message)."""

    def __init__(self, role: str, index: int, reason: str) -> None:
        super().__init__(reason)
        self.role = role
        self.index = index


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
            ints = iter([_v4_int(e) for e in quads])
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
        net_canons = [f"{_v4_text(b << (32 - n))}/{n}" for n, b in zip(lengths, nbits, strict=True)]
        canons = list(entries)  # a dotted quad inet_pton takes is its own canonical text
        for i, canon in zip((i for i, k in enumerate(look) if k == 2), net_canons, strict=True):
            canons[i] = canon
        rest = [i for i, k in enumerate(look) if k == 0]
        # DNS names and wildcards, each by one regular expression
        plain = _plain_names([entries[i] for i in rest])
        names = [(i, n) for i, n in zip(rest, plain, strict=True) if n is not None]
        rest = [i for i, n in zip(rest, plain, strict=True) if n is None]
        for i, name in names:
            canons[i] = name
        # IPv6 networks in hex groups; if one is not, each the full way
        v6 = [i for i in rest if _looks_v6_network(entries[i])]
        v6_nets = _v6_networks([entries[i] for i in v6])
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
        for version, _width, value in _parse_ip(ip):
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
        drop = {v for v in map(_v4_int, skip) if v is not None and texts.get(v) in skip}
        values = _sorted_ints(texts.keys() - drop if drop else texts.keys())
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
    # entries are checked once, by the index that is built of them (BadEntry): the file
    # says where the entry is
    where: Callable[[BadEntry], InventoryError]
    if p.suffix.lower() == ".csv":
        mapping, where = _parse_csv(text, shown, rs)
        description = ""
    else:
        mapping, description, where = _parse_yaml(text, shown, rs, expect)
    try:
        return Inventory(
            rs.name,
            mapping,
            _implies_of(rs),
            p,
            description,
            expect["expect"],
            expect["ignore_expected"],
        )
    except BadEntry as bad:
        raise where(bad) from None


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


# The plain inventory, as dump_inventory writes it and most people would: top-level keys,
# ``roles:``, role ids, and one entry a line. Only lines whose YAML meaning is plain are
# taken: printable ASCII, no tabs, scalars quoted without escapes or plain without any
# character YAML gives a meaning (no '*', '&', '!', '#', ': ', flow brackets, no null word).
_QUICK_BAD = re.compile(r"[^\n\x20-\x7e]")
_QUICK_VALUE = r'"[ !#-\[\]-~]*"|\'[ -&(-~]*\'|[A-Za-z0-9_][A-Za-z0-9_.:/-]*'
_QUICK_TAIL = r"(?: +#.*)? *"
_QUICK_ITEM = re.compile(rf"( *)- ({_QUICK_VALUE}){_QUICK_TAIL}")
_QUICK_KEY = re.compile(rf"( *)([a-z_][a-z0-9_-]*):( \[\])?{_QUICK_TAIL}")
_QUICK_TOP = re.compile(rf"(ruleset|description): +({_QUICK_VALUE}){_QUICK_TAIL}")
# plain words YAML 1.1 reads as something else than text
_QUICK_WORDS = frozenset(
    form
    for word in ("null", "true", "false", "yes", "no", "on", "off")
    for form in (word, word.capitalize(), word.upper())
)


def _quick_value(text: str) -> str | None:
    if text[0] in "\"'":
        return text[1:-1]
    if text.endswith(":") or text in _QUICK_WORDS:
        return None
    return text


#: the value of each item line of a run of them (each line of a block that _quick_run took)
_QUICK_RUN_VALUE = re.compile(rf"^ *- ({_QUICK_VALUE}){_QUICK_TAIL}$", re.M)


@functools.cache
def _quick_run(indent: int, quoted: bool) -> re.Pattern[str]:
    """Consecutive item lines at ``indent``, each ended by a newline; with ``quoted`` only
    lines of a double-quoted value and nothing after it (a simpler and faster pattern)."""
    if quoted:
        return re.compile(rf'(?: {{{indent}}}- "[ !#-\[\]-~]*"\n)+')
    return re.compile(rf"(?: {{{indent}}}- (?:{_QUICK_VALUE}){_QUICK_TAIL}\n)+")


def _quick_yaml(text: str) -> dict[str, Any] | None:
    """The data of an inventory in the plain form (see above), as
    ``parse_yaml(text, strings=True)`` gives it, from one regular expression a line: a
    100,000-entry inventory in a tenth of the time PyYAML takes to compose it. None for
    anything else (flow lists, expectations, aliases, an error): the full parser reads
    those, and finds the lines of errors."""
    if _QUICK_BAD.search(text):
        return None
    data: dict[str, Any] = {}
    roles: dict[str, Any] | None = None  # the roles mapping, while in it
    role_indent = item_indent = -1
    items: list[str] | None = None  # the list the next item goes to
    role = ""
    pos = 0  # where the next line starts
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line, pos = text[pos:end], end + 1
        stripped = line.lstrip(" ")
        if not stripped or stripped[0] == "#":
            continue
        m = _QUICK_ITEM.fullmatch(line)
        if m:
            indent = len(m[1])
            value = _quick_value(m[2])
            if roles is None or not role or indent < role_indent or value is None:
                return None
            if items is None:
                if roles[role] is not None:  # after 'role: []'
                    return None
                items = roles[role] = []
                item_indent = indent
            elif indent != item_indent:
                return None
            items.append(value)
            # the item lines that follow at this indent, at once (100,000 of them)
            run = _quick_run(item_indent, True).match(text, pos)
            if run:  # each line '- "text"' and nothing else, as dump_inventory writes them
                skip = item_indent + 3
                items += [v[skip:-1] for v in run.group().split("\n")[:-1]]
                pos = run.end()
                continue
            run = _quick_run(item_indent, False).match(text, pos)
            if run:
                values = _QUICK_RUN_VALUE.findall(run.group())
                if any(v[-1] == ":" for v in values) or _QUICK_WORDS.intersection(values):
                    return None  # as _quick_value says
                items += [v[1:-1] if v[0] in "\"'" else v for v in values]
                pos = run.end()
            continue
        m = _QUICK_KEY.fullmatch(line)
        if m:
            indent, key = len(m[1]), m[2]
            if indent == 0:
                if key != "roles" or key in data or m[3]:
                    return None
                data["roles"] = None
                roles, role, role_indent = {}, "", -1
                continue
            if roles is None or key in roles or key in _QUICK_WORDS:
                return None
            if role_indent < 0:
                role_indent = indent
                data["roles"] = roles
            elif indent != role_indent:
                return None
            roles[key] = [] if m[3] else None
            role, items = key, None
            continue
        m = _QUICK_TOP.fullmatch(line)
        if m and m[1] not in data:
            value = _quick_value(m[2])
            if value is None:
                return None
            data[m[1]] = value
            roles, role = None, ""
            continue
        return None
    return data or None


def _parse_yaml(
    text: str, shown: str, rs: Ruleset, expect: dict[str, list[str]] | None = None
) -> tuple[dict[str, list[str]], str, Callable[[BadEntry], InventoryError]]:
    """The role -> entries mapping and description of an inventory in YAML, checked but
    for the entries themselves; and what to say of an entry found bad later."""
    quick = _quick_yaml(text)
    located = None
    if quick is None:
        try:
            located = parse_yaml(text, strings=True)
        except YamlProblem as exc:
            raise InventoryError(shown, exc.message, str(exc.line) if exc.line else None) from None

    def fail(kp: KeyPath, message: str) -> InventoryError:
        nonlocal located
        if located is None:  # read the quick way: the full parser finds the line
            try:
                located = parse_yaml(text, strings=True)
            except YamlProblem:
                located = Located(quick, {})
        line = located.line(kp)
        text_ = f"{keypath_text(kp)}: {message}" if kp else message
        return InventoryError(shown, text_, str(line) if line else None)

    data: Any = quick if located is None else located.data
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

    def where(bad: BadEntry) -> InventoryError:
        kp = _entry_kp(("roles", bad.role), bad.index, roles[bad.role])
        return fail(kp, f"{ENTRY_EXPECTED}; {bad}")

    roles = data["roles"]
    if roles is None:
        return {}, str(data.get("description") or ""), where
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
            out.append(entry.strip())
        mapping[role] = out
    return mapping, str(data.get("description") or ""), where


def _entry_kp(kp: KeyPath, i: int, entries: object) -> KeyPath:
    return (*kp, i) if isinstance(entries, list) else kp


def _parse_csv(
    text: str, shown: str, rs: Ruleset
) -> tuple[dict[str, list[str]], Callable[[BadEntry], InventoryError]]:
    """Like :func:`_parse_yaml`, for an inventory in CSV (``role,entry[,comment]``)."""
    known = set(rs.role_ids)
    mapping: dict[str, list[str]] = {}
    lines: dict[str, list[int]] = {}  # the line of each entry, per role
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
        mapping.setdefault(role, []).append(entry)
        lines.setdefault(role, []).append(lineno)

    def where(bad: BadEntry) -> InventoryError:
        return InventoryError(shown, f"{ENTRY_EXPECTED}; {bad}", str(lines[bad.role][bad.index]))

    return mapping, where


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
