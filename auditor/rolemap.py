"""The result of placing hosts in roles: each host's roles and why (:class:`HostRoles`), and
all of one audit's (:class:`RoleMap`), with the addresses an inventory lists but the
traffic never shows kept as columns (:class:`ListedHosts`: an inventory may list 100,000)
and read in bulk by the checks and the JSON writer (:class:`RoleEntries`).
"""

from __future__ import annotations

import bisect
import functools
import socket
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import pyarrow as pa

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class HostRoles:
    """The roles of one address, where they came from and why."""

    ip: str
    roles: tuple[str, ...]  # sorted
    source: str  # "inventory" | "inferred"
    confidence: float
    evidence: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "roles": list(self.roles),
            "source": self.source,
            "confidence": round(self.confidence, 2),
            "evidence": list(self.evidence),
            "names": list(self.names),
        }


def ip_sort_key(ip: str) -> tuple[int, bytes]:
    """Sort IPv4 before IPv6, each by address value."""
    if ":" in ip:
        return (6, socket.inet_pton(socket.AF_INET6, ip))
    return (4, socket.inet_pton(socket.AF_INET, ip))


def host_roles_table(hosts: Iterable[HostRoles]) -> pa.Table:
    """One row per (ip, role) for the SQL joins."""
    hosts = list(hosts)
    return pa.table(
        {
            "ip": pa.array([h.ip for h in hosts for _ in h.roles], pa.string()),
            "role": pa.array([r for h in hosts for r in h.roles], pa.string()),
            "source": pa.array([h.source for h in hosts for _ in h.roles], pa.string()),
            "confidence": pa.array([h.confidence for h in hosts for _ in h.roles], pa.float64()),
        }
    )


@dataclass(frozen=True, slots=True)
class ListedHosts:
    """The inventory's single addresses that the capture never shows, as two columns: the
    addresses (sorted, IPv4 first) and the roles of each (sorted; one tuple per distinct
    combination, shared). Each stands for ``host(i)``, a :class:`HostRoles` of source
    ``inventory``, confidence 1 and one piece of evidence, made only when asked for: an
    inventory may list 100,000 of them, and the audit needs their roles in bulk (the roles
    held, the hosts of each role for missing flows) and their JSON text (the document),
    not an object each."""

    addresses: tuple[str, ...] = ()
    roles: tuple[tuple[str, ...], ...] = ()

    def __len__(self) -> int:
        return len(self.addresses)

    @staticmethod
    def evidence(ip: str) -> str:
        return f"inventory: address {ip} (not seen in the capture)"

    def host(self, i: int) -> HostRoles:
        ip = self.addresses[i]
        return HostRoles(ip, self.roles[i], "inventory", 1.0, (self.evidence(ip),))

    def entry(self, i: int) -> dict[str, Any]:
        """``host(i).to_json()``."""
        ip = self.addresses[i]
        return _listed_entry(ip, self.roles[i])

    def encoded(self, encode: Callable[[Any], str]) -> list[str]:
        """``encode(self.entry(i))`` for every i: the entry of each role combination encoded
        once, with a stand-in address that the addresses then replace. An address is
        canonical IP text (digits, hex letters, '.', ':'), the same in and out of a JSON
        string; an encoding that does not show the stand-in exactly twice (the address and
        its evidence) is done entry by entry."""
        parts: dict[tuple[str, ...], list[str] | None] = {}
        for roles in set(self.roles):
            text = encode(_listed_entry(_STAND_IN, roles)).split(encode(_STAND_IN)[1:-1])
            parts[roles] = text if len(text) == 3 else None
        out = []
        for ip, roles in zip(self.addresses, self.roles, strict=True):
            around = parts[roles]
            out.append(ip.join(around) if around is not None else encode(_listed_entry(ip, roles)))
        return out


#: what stands for the address in the JSON text of a listed host's entry (encoded as an
#: escape, which an address, a role id or the evidence text never shows)
_STAND_IN = "\x00"


def _listed_entry(ip: str, roles: tuple[str, ...]) -> dict[str, Any]:
    return {
        "ip": ip,
        "roles": list(roles),
        "source": "inventory",
        "confidence": 1.0,
        "evidence": [ListedHosts.evidence(ip)],
        "names": [],
    }


@dataclass
class RoleMap:
    """All hosts' roles for one audit: ``seen``, the hosts of the traffic that hold a role
    (sorted by address, IPv4 first), and with an inventory ``listed``, its addresses the
    traffic never shows. ``hosts`` has both as :class:`HostRoles`, merged in address order
    (as the document lists them); the audit reads them in bulk instead."""

    seen: list[HostRoles] = field(default_factory=list)
    from_inventory: bool = False
    listed: ListedHosts = field(default_factory=ListedHosts)

    @functools.cached_property
    def _at(self) -> list[int]:
        """Where each seen host goes among the listed ones (a search each: no sort key
        computed for 100,000 listed addresses)."""
        out: list[int] = []
        start = 0
        addresses = self.listed.addresses
        for h in self.seen:
            start = bisect.bisect_left(addresses, ip_sort_key(h.ip), start, key=ip_sort_key)
            out.append(start)
        return out

    def _merged(self, seen: Sequence[_T], listed: Sequence[_T]) -> list[_T]:
        """One item for each seen host and one for each listed address, in address order."""
        out: list[_T] = []
        start = 0
        for item, at in zip(seen, self._at, strict=True):
            out += listed[start:at]
            out.append(item)
            start = at
        out += listed[start:]
        return out

    @property
    def hosts(self) -> list[HostRoles]:
        """Every host as a :class:`HostRoles`, sorted by address, IPv4 first."""
        if not self.listed:
            return list(self.seen)
        return self._merged(self.seen, [self.listed.host(i) for i in range(len(self.listed))])

    def entries(self) -> Sequence[dict[str, Any]]:
        """The document's ``roles``: ``h.to_json()`` of every host of ``hosts``; a
        :class:`RoleEntries` when there are listed addresses."""
        if not self.listed:
            return tuple(h.to_json() for h in self.seen)
        return RoleEntries(self)

    def present(self) -> set[str]:
        """The roles some host holds."""
        return {r for h in self.seen for r in h.roles} | {
            r for rs in set(self.listed.roles) for r in rs
        }

    def hosts_by_role(self) -> dict[str, list[str]]:
        """role -> the addresses of every host holding it, each once, sorted as text (the
        evidence of a missing flow)."""
        # the listed addresses grouped by role combination first: a list extended per
        # role and combination, not a set grown per role and address
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for ip, held in zip(self.listed.addresses, self.listed.roles, strict=True):
            groups[held].append(ip)
        by_role: dict[str, list[str]] = defaultdict(list)
        for held, ips in groups.items():
            for r in held:
                by_role[r] += ips
        for h in self.seen:
            for r in h.roles:
                by_role[r].append(h.ip)
        return {r: sorted(dict.fromkeys(ips)) for r, ips in by_role.items()}

    def table(self) -> pa.Table:
        """One row per (ip, role) of the hosts of the traffic, for the SQL joins (a listed
        address the traffic never shows is no endpoint of a flow: :meth:`present` has its
        roles)."""
        return host_roles_table(self.seen)

    def role_lists(self) -> dict[str, list[str]]:
        """ip -> its roles, sorted (the role lists the checks join on), for the hosts of the
        traffic: a listed address it never shows is no endpoint of a flow."""
        by_ip = {h.ip: list(h.roles) for h in self.seen}  # each host's roles come sorted
        if len(by_ip) < len(self.seen):  # an address listed twice: its roles merged
            merged: dict[str, set[str]] = {}
            for h in self.seen:
                merged.setdefault(h.ip, set()).update(h.roles)
            by_ip = {ip: sorted(roles) for ip, roles in merged.items()}
        return by_ip


class RoleEntries(Sequence[dict[str, Any]]):
    """The ``roles`` of a result document when an inventory lists addresses the traffic
    never shows: ``h.to_json()`` of each host of ``RoleMap.hosts``, made when read, and
    :meth:`encoded`, the JSON text of all at once (what the JSON renderer writes) without a
    dict for each listed address. Immutable, equal to any sequence of the same entries."""

    __slots__ = ("_pos", "_roles")

    def __init__(self, roles: RoleMap) -> None:
        self._roles = roles
        self._pos = [at + k for k, at in enumerate(roles._at)]  # the seen hosts' places

    def __len__(self) -> int:
        return len(self._roles.seen) + len(self._roles.listed)

    def _entry(self, i: int) -> dict[str, Any]:
        k = bisect.bisect_left(self._pos, i)
        if k < len(self._pos) and self._pos[k] == i:
            return self._roles.seen[k].to_json()
        return self._roles.listed.entry(i - k)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self._entry(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError("role entry index out of range")
        return self._entry(i % n)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        roles = self._roles
        listed = [roles.listed.entry(i) for i in range(len(roles.listed))]
        return iter(roles._merged([h.to_json() for h in roles.seen], listed))

    def encoded(self, encode: Callable[[Any], str]) -> list[str]:
        """``encode(entry)`` of every entry, in order (see :meth:`ListedHosts.encoded`)."""
        roles = self._roles
        return roles._merged(
            [encode(h.to_json()) for h in roles.seen], roles.listed.encoded(encode)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RoleEntries({len(self)} hosts)"
