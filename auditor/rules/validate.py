"""Cross-rule checks: what no single rule can get wrong on its own.

Duplicate ids, flows between undeclared roles, ``pair`` links that do not point back, and
contradictions: two rules for the same from/to/proto and an overlapping port where one says
the port is cleartext (``security: none``) and the other requires encryption, or one says
the disk transfer is an upload and the other a download. Warnings (exit 0) flag what is
legal but probably a slip: a role no rule mentions. Contradictions are looked for through a
port index per role pair and class, not by comparing every pair of rules, and at most
:data:`MAX_CONTRADICTIONS` are listed: a large or hostile ruleset is checked in time
proportional to its size.
"""

from __future__ import annotations

from collections.abc import Iterator

from auditor.rules.model import PEERS, Deny, Rule, Ruleset
from auditor.rules.yamlmarks import KeyPath, Located, Problem, keypath_text, listing


def _overlap(a: Rule | Deny, b: Rule | Deny) -> tuple[int, int] | None:
    """The first overlapping (lo, hi) between the port sets of ``a`` and ``b``."""
    for alo, ahi in a.spans():
        for blo, bhi in b.spans():
            lo, hi = max(alo, blo), min(ahi, bhi)
            if lo <= hi:
                return lo, hi
    return None


#: Contradictions listed at most (a hostile ruleset could hold millions of them).
MAX_CONTRADICTIONS = 1000
_PORTS = 1 << 16  # port numbers 0-65535: the leaves of the index trees


def _classes(rule: Rule) -> tuple[list[str], list[str]]:
    """(the classes ``rule`` is in, the classes it can contradict): cleartext against
    encrypted, upload against download."""
    mine, other = [], []
    if rule.security == "none":
        mine.append("clear")
        other.append("encrypted")
    if rule.encrypted_required:
        mine.append("encrypted")
        other.append("clear")
    if rule.transfer in ("upload", "download"):
        mine.append(rule.transfer)
        other.append("download" if rule.transfer == "upload" else "upload")
    return mine, other


class _PortIndex:
    """Earlier rules' port spans, answering "which overlap (lo, hi)" in time proportional
    to the answer (two trees over the 65,536 ports): a ruleset of thousands of rules on one
    role pair costs its size, not its square (it took 130 s for 8,000 rules)."""

    def __init__(self) -> None:
        self.covers: dict[int, list[int]] = {}  # tree node -> rules whose span covers it
        self.starts: dict[int, list[int]] = {}  # tree node -> rules starting below it
        self.counts: dict[int, int] = {}

    def add(self, lo: int, hi: int, rule: int) -> None:
        left, right = lo + _PORTS, hi + _PORTS + 1
        while left < right:  # the span's canonical tree nodes
            if left & 1:
                self.covers.setdefault(left, []).append(rule)
                left += 1
            if right & 1:
                right -= 1
                self.covers.setdefault(right, []).append(rule)
            left >>= 1
            right >>= 1
        node = lo + _PORTS
        self.starts.setdefault(node, []).append(rule)
        while node:
            self.counts[node] = self.counts.get(node, 0) + 1
            node >>= 1

    def overlapping(self, lo: int, hi: int) -> set[int]:
        found: set[int] = set()
        node = lo + _PORTS  # spans that contain lo
        while node:
            found.update(self.covers.get(node, ()))
            node >>= 1
        if hi > lo:  # spans that start in (lo, hi]
            self._starts_in(1, 0, _PORTS - 1, lo + 1, hi, found)
        return found

    def _starts_in(self, node: int, first: int, last: int, lo: int, hi: int, out: set[int]) -> None:
        if last < lo or first > hi or not self.counts.get(node):
            return
        if first == last:
            out.update(self.starts.get(node, ()))
            return
        middle = (first + last) // 2
        self._starts_in(2 * node, first, middle, lo, hi, out)
        self._starts_in(2 * node + 1, middle + 1, last, lo, hi, out)


def _contradiction_candidates(flows: tuple[Rule, ...]) -> Iterator[tuple[int, int]]:
    """(i, j) with i < j, in the order j then i: rules on the same from/to and a shared
    protocol whose ports
    overlap and that are of classes that contradict each other."""
    indexes: dict[tuple[str, str, str, str], _PortIndex] = {}
    for j, rule in enumerate(flows):
        groups = [(rule.from_role, rule.to_role, proto) for proto in rule.protos]
        mine, other = _classes(rule)
        found: set[int] = set()
        for group in groups:  # a tcp/udp rule meets the tcp rules and the udp rules
            for cls in other:
                index = indexes.get((*group, cls))
                if index is not None:
                    for lo, hi in rule.spans():
                        found |= index.overlapping(lo, hi)
        for i in sorted(found):
            yield i, j
        for group in groups:
            for cls in mine:
                index = indexes.setdefault((*group, cls), _PortIndex())
                for lo, hi in rule.spans():
                    index.add(lo, hi, j)


def validate(
    ruleset: Ruleset,
    located: Located,
    shown: str,
    role_keys: list[int],
    flow_keys: list[int],
    *,
    complete: bool = True,
    deny_keys: list[int] | None = None,
) -> list[Problem]:
    """Problems across roles and rules; ``*_keys`` give each object's index in the file.

    ``complete`` is False when some roles or rules could not be read: then the warnings
    that depend on seeing all of them are left out.
    """
    problems: list[Problem] = []

    def report(kp: KeyPath, message: str, level: str = "error") -> None:
        problems.append(Problem(shown, located.line(kp), keypath_text(kp), message, level))

    def flow_line(i: int) -> int | None:
        return located.line(("flows", flow_keys[i]))

    role_ids = set(ruleset.role_ids)
    known = listing(ruleset.role_ids)
    seen_roles: dict[str, int] = {}
    for i, role in enumerate(ruleset.roles):
        kp: KeyPath = ("roles", role_keys[i])
        if role.id in PEERS:
            report((*kp, "id"), f"'{role.id}' is reserved for a peer, not a role: rename it")
        if role.id in seen_roles:
            first = located.line(("roles", role_keys[seen_roles[role.id]]))
            report((*kp, "id"), f"duplicate role id '{role.id}' (first at line {first})")
        else:
            seen_roles[role.id] = i
        for j, implied in enumerate(role.implies):
            if implied not in role_ids:
                report((*kp, "implies", j), f"unknown role '{implied}'; known roles: {known}")
            elif implied == role.id:
                report((*kp, "implies", j), f"role '{role.id}' cannot imply itself")

    by_id: dict[str, int] = {}
    for i, rule in enumerate(ruleset.flows):
        kp = ("flows", flow_keys[i])
        if rule.id in by_id:
            report(
                (*kp, "id"),
                f"duplicate rule id '{rule.id}' (first at line {flow_line(by_id[rule.id])})",
            )
        else:
            by_id[rule.id] = i
        for key, role_id in (("from", rule.from_role), ("to", rule.to_role)):
            if role_id not in role_ids and role_id not in PEERS:
                report(
                    (*kp, key),
                    f"unknown role '{role_id}'; known roles: {known} (or the peers "
                    f"{', '.join(PEERS)})",
                )

    for i, rule in enumerate(ruleset.flows):
        if rule.pair is None:
            continue
        kp = ("flows", flow_keys[i], "pair")
        if rule.pair == rule.id:
            report(kp, f"rule '{rule.id}' cannot pair with itself")
            continue
        if rule.pair not in by_id:
            report(kp, f"unknown rule id '{rule.pair}'")
            continue
        other = ruleset.flows[by_id[rule.pair]]
        if other.pair != rule.id:
            report(kp, f"rule '{rule.pair}' must pair back with 'pair: {rule.id}'")
        elif (rule.from_role, rule.to_role, rule.proto) != (
            other.from_role,
            other.to_role,
            other.proto,
        ):
            report(
                kp,
                f"paired rules must share from/to/proto; '{rule.pair}' is "
                f"{other.from_role} -> {other.to_role} {other.proto}",
            )
        elif rule.encrypted_required == other.encrypted_required and i < by_id[rule.pair]:
            report(
                kp,
                "a pair links a cleartext rule and an encrypted one; both "
                f"'{rule.id}' and '{rule.pair}' have encrypted_required="
                f"{str(rule.encrypted_required).lower()}",
            )

    flows = ruleset.flows
    reported = 0
    for i, j in _contradiction_candidates(flows):
        if reported >= MAX_CONTRADICTIONS:
            report(
                ("flows", flow_keys[j]),
                f"more than {MAX_CONTRADICTIONS} contradictions between rules; the rest are "
                "not listed",
            )
            break
        a, b = flows[i], flows[j]
        span = _overlap(a, b)
        if span is None:
            continue
        port = str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"
        where = f"{b.from_role} -> {b.to_role} {b.proto}/{port}"
        kp = ("flows", flow_keys[j])
        clear = {a.security, b.security} & {"none"}
        if clear and (a.encrypted_required or b.encrypted_required):
            reported += 1
            report(
                (*kp, "security"),
                f"contradicts rule '{a.id}' (line {flow_line(i)}): {where} is "
                f"'{b.security}' here and '{a.security}' there",
            )
        if {a.transfer, b.transfer} == {"upload", "download"}:
            reported += 1
            report(
                (*kp, "transfer"),
                f"contradicts rule '{a.id}' (line {flow_line(i)}): {where} is an "
                f"'{b.transfer}' here and a '{a.transfer}' there (use 'both')",
            )

    problems += _check_denies(ruleset, located, shown, flow_keys, deny_keys or [], by_id)

    used = {r.from_role for r in flows} | {r.to_role for r in flows}
    implied_ids = {i for r in ruleset.roles for i in r.implies}
    used |= {d.from_role for d in ruleset.denies if d.from_role}
    used |= {d.to_role for d in ruleset.denies if d.to_role}
    for role in ruleset.roles if complete else ():
        if role.id not in used and role.id not in implied_ids:
            i = seen_roles.get(role.id, 0)
            report(
                ("roles", role_keys[i], "id") if role_keys else ("roles",),
                f"role '{role.id}' appears in no flow",
                "warning",
            )
    return problems


def _deny_overlap(deny: Deny, rule: Rule) -> str | None:
    """What a deny entry forbids of what ``rule`` allows (None when they do not meet)."""
    if rule.scope != "network":
        return None
    if deny.from_role not in (None, rule.from_role) or deny.to_role not in (None, rule.to_role):
        return None
    if deny.proto is not None and not set(deny.proto.split("/")) & set(rule.protos):
        return None
    span: tuple[int, int] | None = None
    if deny.spans():
        span = _overlap(deny, rule)
        if span is None:
            return None
    if deny.apps and rule.app not in deny.apps:
        return None
    where = f"{rule.from_role} -> {rule.to_role} {rule.proto}"
    if span:
        where += "/" + (str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}")
    if deny.apps:
        where += f" ({rule.app})"
    return where


def _check_denies(
    ruleset: Ruleset,
    located: Located,
    shown: str,
    flow_keys: list[int],
    deny_keys: list[int],
    rule_index: dict[str, int],
) -> list[Problem]:
    """Deny entries: known roles, ids unique (they share the rules' namespace: a finding
    cites either), and no contradiction with an allow rule, naming both."""
    problems: list[Problem] = []
    roles = ruleset.role_ids
    seen: dict[str, int] = {}
    for i, deny in enumerate(ruleset.denies):
        kp: KeyPath = ("deny", deny_keys[i] if i < len(deny_keys) else i)
        line = located.line(kp)

        def report(key: KeyPath, message: str) -> None:
            problems.append(Problem(shown, located.line(key), keypath_text(key), message))

        for key, role in (("from", deny.from_role), ("to", deny.to_role)):
            if role is not None and role not in roles:
                report((*kp, key), f"unknown role '{role}'; known roles: {listing(list(roles))}")
        if deny.id in rule_index:
            first = located.line(("flows", flow_keys[rule_index[deny.id]]))
            report((*kp, "id"), f"deny id '{deny.id}' is also a rule id (line {first})")
        elif deny.id in seen:
            report((*kp, "id"), f"duplicate deny id '{deny.id}' (first at line {seen[deny.id]})")
        else:
            seen[deny.id] = line or 0
        for j, rule in enumerate(ruleset.flows):
            where = _deny_overlap(deny, rule)
            if where is not None:
                report(
                    kp,
                    f"deny '{deny.id}' contradicts rule '{rule.id}' (line "
                    f"{located.line(('flows', flow_keys[j]))}): {where} is forbidden here "
                    "and allowed there",
                )
    return problems
