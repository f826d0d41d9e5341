"""Cross-rule checks: what no single rule can get wrong on its own.

Duplicate ids, flows between undeclared roles, ``pair`` links that do not point back, and
contradictions: two rules for the same from/to/proto and an overlapping port where one says
the port is cleartext (``security: none``) and the other requires encryption, or one says
the disk transfer is an upload and the other a download. Warnings (exit 0) flag what is
legal but probably a slip: a role no rule mentions.
"""

from __future__ import annotations

from auditor.rules.model import PEERS, Deny, Rule, Ruleset
from auditor.rules.yamlmarks import KeyPath, Located, Problem, keypath_text


def _overlap(a: Rule | Deny, b: Rule | Deny) -> tuple[int, int] | None:
    """The first overlapping (lo, hi) between the port sets of ``a`` and ``b``."""
    for alo, ahi in a.spans():
        for blo, bhi in b.spans():
            lo, hi = max(alo, blo), min(ahi, bhi)
            if lo <= hi:
                return lo, hi
    return None


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

    role_ids = ruleset.role_ids
    known = ", ".join(role_ids)
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
    for j, b in enumerate(flows):
        for i in range(j):
            a = flows[i]
            if (a.from_role, a.to_role) != (b.from_role, b.to_role) or not set(a.protos) & set(
                b.protos
            ):
                continue
            span = _overlap(a, b)
            if span is None:
                continue
            port = str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"
            where = f"{b.from_role} -> {b.to_role} {b.proto}/{port}"
            kp = ("flows", flow_keys[j])
            clear = {a.security, b.security} & {"none"}
            if clear and (a.encrypted_required or b.encrypted_required):
                report(
                    (*kp, "security"),
                    f"contradicts rule '{a.id}' (line {flow_line(i)}): {where} is "
                    f"'{b.security}' here and '{a.security}' there",
                )
            if {a.transfer, b.transfer} == {"upload", "download"}:
                report(
                    (*kp, "transfer"),
                    f"contradicts rule '{a.id}' (line {flow_line(i)}): {where} is an "
                    f"'{b.transfer}' here and a '{a.transfer}' there (use 'both')",
                )

    problems += _check_denies(ruleset, located, shown, flow_keys, deny_keys or [], by_id)

    used = {r.from_role for r in flows} | {r.to_role for r in flows}
    used |= {d.from_role for d in ruleset.denies if d.from_role}
    used |= {d.to_role for d in ruleset.denies if d.to_role}
    for role in ruleset.roles if complete else ():
        implied_by = any(role.id in r.implies for r in ruleset.roles)
        if role.id not in used and not implied_by:
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
                report((*kp, key), f"unknown role '{role}'; known roles: {', '.join(roles)}")
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
