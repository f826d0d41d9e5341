"""Which host holds which role: from an inventory, or inferred from the traffic itself.

Inventory: addresses and CIDRs match directly; DNS names and wildcards match the names the
capture reveals for an address (TLS SNI and HTTP Host of the flows it serves, DNS answers).

Inference (no inventory): each flow is evidence. A host that *answered* on port P is evidence
for every role the ruleset documents as the destination of P; a host that *connected* to P is
evidence for every documented source role of P, unless the server refused it with a RST: a
probe of closed ports must not earn the prober the role that would make its probes look
documented. Evidence is weighted 1/k, k being the number of roles that share it (8016 names
the agent alone, 443 is shared by a dozen roles), and by how telling it is: serving a
registered port (>= 1024) counts 1, serving a well-known port 0.5, connecting to a registered
port 0.5, connecting to a well-known port 0.25 and all such generic client evidence together
at most 0.5 (every Windows host is an LDAP, SMB, DNS and NTP client; that does not make it an
App Layering appliance). Weights add up per role over
distinct ports; then name hints (SNI, HTTP Host, DNS answers matching a role's patterns)
add 1, and user-agent hints add 1 when seen on a flow that the role could have made (a
documented port of that role towards a host already placed as its peer, or a registered
port). A role is assigned at a score of 1 or more; confidence is ``score / (score + 0.5)``
capped at 0.95. Hosts below that stay unknown. The aggregation is SQL over the flow table;
Python only ranks the few candidate roles per host.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from auditor import duck
from auditor.rolemap import HostRoles, ListedHosts, RoleMap, host_roles_table, ip_sort_key
from auditor.rules import Inventory, Rule, Ruleset, denies_table, rules_table
from auditor.rules.model import PEERS

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "HostRoles",
    "RoleMap",
    "distinct",
    "host_roles_table",
    "infer_roles",
    "resolve_roles",
]

ASSIGN_AT = 1.0


def observed_names(flows: pa.Table) -> dict[str, set[tuple[str, str]]]:
    """ip -> {(name, how)} from SNI and HTTP Host (of the server) and DNS answers."""
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    cols = flows.column_names
    for col, how in (("sni", "TLS SNI"), ("http_host", "HTTP Host")):
        if col not in cols:
            continue
        for ip, name in _unique_pairs(flows.column("dst_ip"), flows.column(col)):
            if name:
                out[ip].add((_norm_name(name), how))
    if "dns_answers" in cols:
        for name, addr in _answers(flows.column("dns_answers")):
            if name and addr:
                out[addr].add((_norm_name(name), "DNS answer"))
    return out


def _unique_pairs(first: pa.ChunkedArray, second: pa.ChunkedArray) -> list[tuple[Any, Any]]:
    """The distinct (first, second) rows where ``second`` is set, in order of appearance.

    Array methods only, no ``pyarrow.compute``: importing that module costs ~45 ms, more than
    this whole stage. A column without a value costs nothing (millions of flows)."""
    if second.null_count == len(second):
        return []
    return list(
        dict.fromkeys(
            (a, b)
            for a, b in zip(first.to_pylist(), second.to_pylist(), strict=True)
            if b is not None
        )
    )


def _list_values(arr: pa.ListArray) -> pa.Array:
    """The values of a list array's lists, in order (ListArray.flatten without the
    pyarrow.compute import it brings)."""
    if len(arr) == 0:
        return arr.values.slice(0, 0)
    start, end = arr.offsets[0].as_py(), arr.offsets[len(arr)].as_py()
    return arr.values.slice(start, end - start)


def _answers(column: pa.ChunkedArray) -> list[tuple[Any, Any]]:
    """Distinct (name, address) pairs of a DNS answers column (list of 2-field structs)."""
    flat = pa.chunked_array([_list_values(c) for c in column.chunks], column.type.value_type)
    if not pa.types.is_struct(flat.type):
        return [_pair(p) for answers in column.to_pylist() for p in answers or ()]
    if flat.type.num_fields < 2:
        return []
    return _unique_pairs(
        pa.chunked_array([c.field(0) for c in flat.chunks], flat.type.field(0).type),
        pa.chunked_array([c.field(1) for c in flat.chunks], flat.type.field(1).type),
    )


def _pair(pair: Any) -> tuple[str | None, str | None]:
    if isinstance(pair, dict):
        vals = list(pair.values())
        return (vals[0], vals[1]) if len(vals) >= 2 else (None, None)
    return (pair[0], pair[1]) if pair and len(pair) >= 2 else (None, None)


def _norm_name(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    if name.startswith("[") or name.count(":") > 1:
        return name
    return name.rsplit(":", 1)[0] if ":" in name else name  # Host: name:port


def hosts_in(flows: pa.Table) -> list[str]:
    return sorted(set(distinct(flows.column("src_ip"))) | set(distinct(flows.column("dst_ip"))))


#: above this many rows, distinct() asks pyarrow.compute (whose import, ~45 ms, a small
#: capture need not pay) rather than make a Python string per row
_UNIQUE_ROWS = 50_000


def distinct(col: pa.ChunkedArray) -> list[Any]:
    """The column's distinct values (in no promised order)."""
    if len(col) > _UNIQUE_ROWS:
        return col.unique().to_pylist()
    return list(set(col.to_pylist()))


def roles_from_inventory(inventory: Inventory, flows: pa.Table) -> list[HostRoles]:
    """Roles of every address in the traffic that the inventory places (by address or name),
    and of the inventory's single addresses that the capture never shows (they still make
    their roles present, which is what lets a missing flow be noticed); sorted by address,
    IPv4 first. (:func:`inventory_roles` keeps the unseen addresses as columns.)"""
    return inventory_roles(inventory, flows).hosts


def inventory_roles(inventory: Inventory, flows: pa.Table) -> RoleMap:
    """What :func:`roles_from_inventory` lists, as a :class:`RoleMap`: the hosts of the
    traffic as :class:`HostRoles`, the listed addresses it never shows as
    :class:`ListedHosts` (an inventory may list 100,000: no object each)."""
    names = observed_names(flows)
    seen_ips = hosts_in(flows)
    # the roles of all unseen addresses at once, each distinct role combination sorted once
    addresses, held = inventory.address_roles(exclude=seen_ips)
    ordered = {roles: tuple(sorted(roles)) for roles in set(held)}
    listed = ListedHosts(tuple(addresses), tuple([ordered[roles] for roles in held]))
    seen_hosts: list[HostRoles] = []
    for ip in seen_ips:
        roles = set(inventory.roles_for_ip(ip))
        evidence = [f"inventory: address {ip}"] if roles else []
        seen = sorted(names.get(ip, ()))
        for name, how in seen:
            by_name = inventory.roles_for_name(name)
            if by_name - roles:
                evidence.append(f"inventory: {how} {name}")
            roles |= by_name
        if roles:
            seen_hosts.append(
                HostRoles(
                    ip,
                    tuple(sorted(roles)),
                    "inventory",
                    1.0,
                    tuple(evidence),
                    tuple(sorted({n for n, _ in seen})),
                )
            )
    seen_hosts.sort(key=lambda h: ip_sort_key(h.ip))
    return RoleMap(seen_hosts, True, listed)


# Evidence per (host, role): one row per served/used port, weighted (see the module doc).
# Forbidden flows are no evidence (auditor.rules.denies_table): a flow of a protocol the
# document forbids, and any flow on a local-scope port (reached from another host it is
# prohibited; within the host it says nothing about the host). Pairs of roles that must
# not talk cannot be judged before the roles are known: they are left to the audit.
_USABLE_SQL = """
CREATE OR REPLACE TEMP VIEW ef AS
SELECT * FROM flows fl
WHERE NOT EXISTS (
    SELECT 1 FROM denies d
    WHERE NOT d.roles_only
      AND (d.proto IS NULL OR d.proto = fl.proto)
      AND (d.port_lo IS NULL OR fl.dst_port BETWEEN d.port_lo AND d.port_hi)
      AND (d.app IS NULL OR d.app = fl.app)
)
"""

_EVIDENCE_SQL = """
CREATE OR REPLACE TEMP TABLE ev AS
WITH obs AS (
    SELECT dst_ip AS ip, 'serves' AS side, proto, dst_port AS port, count(*) AS n
    FROM ef
    WHERE proto IN ('tcp', 'udp') AND packets_rev > 0
      AND coalesce(state, 'udp') NOT IN ('rejected', 'attempted')
    GROUP BY ALL
    UNION ALL
    SELECT src_ip, 'uses', proto, dst_port, count(*)
    FROM ef
    WHERE proto IN ('tcp', 'udp') AND coalesce(state, 'udp') <> 'rejected'
    GROUP BY ALL
),
cand AS (
    SELECT o.ip, o.side, o.proto, o.port, o.n,
           CASE o.side WHEN 'serves' THEN r.to_role ELSE r.from_role END AS role
    FROM obs o JOIN rules r
      ON r.proto = o.proto AND o.port BETWEEN r.port_lo AND r.port_hi AND NOT r.local
    -- the peers 'any' and 'internet' are no role a host can hold
    WHERE CASE o.side WHEN 'serves' THEN r.to_role ELSE r.from_role END
          NOT IN ('any', 'internet')
    GROUP BY ALL
),
k AS (
    SELECT side, proto, port, count(DISTINCT role) AS k FROM cand GROUP BY ALL
)
SELECT c.ip, c.role, c.side, c.proto, c.port, c.n,
       CASE WHEN c.side = 'serves' AND c.port >= 1024 THEN 1.0
            WHEN c.side = 'serves' THEN 0.5
            WHEN c.port >= 1024 THEN 0.5
            ELSE 0.25 END / k.k AS w,
       c.side = 'uses' AND c.port < 1024 AS generic
FROM cand c JOIN k USING (side, proto, port);

CREATE OR REPLACE TEMP TABLE scores AS
SELECT ip, role,
       sum(w) FILTER (WHERE NOT generic)
         + least($cap, coalesce(sum(w) FILTER (WHERE generic), 0)) AS score
FROM ev GROUP BY ip, role;
"""

GENERIC_CLIENT_CAP = 0.5


def infer_roles(ruleset: Ruleset, flows: pa.Table) -> list[HostRoles]:
    """Infer roles from served/used ports and the ruleset's name and user-agent hints."""
    with duck.cursor() as con:
        return _infer_roles(con, ruleset, flows)


def _infer_roles(
    con: duckdb.DuckDBPyConnection, ruleset: Ruleset, flows: pa.Table
) -> list[HostRoles]:
    con.register("flows", flows.select(_needed(flows)))
    con.register("rules", rules_table(ruleset))
    con.register("denies", denies_table(ruleset))
    con.execute(_USABLE_SQL)
    con.execute(_EVIDENCE_SQL, {"cap": GENERIC_CLIENT_CAP})
    score: dict[str, dict[str, float]] = defaultdict(dict)
    subs = _implying(ruleset)
    # the assigned roles now, and the evidence for roles that imply another (for _sub_roles)
    implying: list[tuple[str, str, float]] = []
    for ip, role, v in con.execute(
        "SELECT ip, role, score FROM scores "
        "WHERE score >= $at OR (score > 0 AND list_contains($subs::VARCHAR[], role))",
        {"at": ASSIGN_AT - 1e-9, "subs": list(subs)},
    ).fetchall():
        if v >= ASSIGN_AT - 1e-9:
            score[ip][role] = v
        if v > 0 and role in subs:
            implying.append((ip, role, v))
    placed = {ip: set(roles) for ip, roles in score.items()}
    names = observed_names(flows)
    hinted: dict[tuple[str, str], list[str]] = defaultdict(list)
    for ip, role, how in _hint_matches(ruleset, flows, names, placed):
        hinted[(ip, role)].append(how)
    if hinted:
        con.register(
            "hinted", pa.table({"ip": [k[0] for k in hinted], "role": [k[1] for k in hinted]})
        )
        for ip, role, v in con.execute(
            "SELECT h.ip, h.role, coalesce(s.score, 0) FROM hinted h "
            "LEFT JOIN scores s USING (ip, role)"
        ).fetchall():
            score[ip][role] = v + len(hinted[(ip, role)])
    _peer_evidence(con, ruleset, score, hinted)
    _sub_roles(subs, implying, score, hinted)
    wanted = [
        (ip, r) for ip, roles in score.items() for r, v in roles.items() if v >= ASSIGN_AT - 1e-9
    ]
    if not wanted:
        return []
    why: dict[tuple[str, str], list[str]] = defaultdict(list)
    con.register("wanted", pa.table({"ip": [w[0] for w in wanted], "role": [w[1] for w in wanted]}))
    for ip, role, side, proto, port, n, w in con.execute(
        "SELECT ev.ip, ev.role, side, proto, port, n, w FROM ev JOIN wanted USING (ip, role) "
        "ORDER BY ev.ip, ev.role, w DESC, port"
    ).fetchall():
        verb = "answered on" if side == "serves" else "connected to"
        why[(ip, role)].append(f"{verb} {proto}/{port} ({n} flow{'s' if n != 1 else ''}, +{w:.2f})")
    for key, hows in hinted.items():
        why[key].extend(hows)
    chosen_by_ip: dict[str, list[str]] = defaultdict(list)
    for ip, role in wanted:
        chosen_by_ip[ip].append(role)
    out = []
    for ip in sorted(chosen_by_ip, key=ip_sort_key):
        chosen = sorted(chosen_by_ip[ip])
        best = min(score[ip][r] for r in chosen)
        conf = min(0.95, best / (best + 0.5))
        evidence = tuple(f"{r}: {e}" for r in chosen for e in why[(ip, r)])
        out.append(
            HostRoles(
                ip,
                tuple(chosen),
                "inferred",
                conf,
                evidence,
                tuple(sorted({n for n, _ in names.get(ip, ())})),
            )
        )
    return out


PEER_WEIGHT = 0.5

_PEER_SQL = """
SELECT DISTINCT f.src_ip, f.dst_ip, f.proto, f.dst_port
FROM ef f
WHERE f.proto IN ('tcp', 'udp') AND f.packets_rev > 0
  AND coalesce(f.state, 'udp') NOT IN ('rejected', 'attempted')
  AND (f.src_ip IN (SELECT ip FROM placed) OR f.dst_ip IN (SELECT ip FROM placed))
"""


def _peer_evidence(
    con: duckdb.DuckDBPyConnection,
    ruleset: Ruleset,
    score: dict[str, dict[str, float]],
    why: dict[tuple[str, str], list[str]],
) -> None:
    """Second pass: an answered flow with a placed host on one end says, through the rules
    that cover it, what the other end is (a client of the appliance on 8787 is an agent).
    Each distinct (peer, port) adds PEER_WEIGHT / k, k the candidate roles."""
    placed = {
        ip: frozenset(r for r, v in roles.items() if v >= ASSIGN_AT - 1e-9)
        for ip, roles in score.items()
    }
    placed = {ip: roles for ip, roles in placed.items() if roles}
    if not placed:
        return
    con.register("placed", pa.table({"ip": list(placed)}))
    rules = ruleset.flows
    added: dict[tuple[str, str], float] = defaultdict(float)
    # the candidate roles depend on the peer's roles, the port and the direction only
    cands: dict[tuple[bool, frozenset[str], str, int], set[str]] = {}
    for src, dst, proto, port in con.execute(_PEER_SQL).fetchall():
        for host, peer, outward in ((src, dst, True), (dst, src, False)):
            peer_roles = placed.get(peer)
            if not peer_roles or host in placed:
                continue
            cand = cands.get((outward, peer_roles, proto, port))
            if cand is None:
                if outward:  # host connected to a placed peer: host is a from-role
                    cand = {
                        r.from_role
                        for r in rules
                        if r.to_role in peer_roles and proto in r.protos and r.covers(port)
                    }
                else:  # a placed peer connected to host: host is a to-role
                    cand = {
                        r.to_role
                        for r in rules
                        if r.from_role in peer_roles and proto in r.protos and r.covers(port)
                    }
                cand -= set(PEERS)
                cands[(outward, peer_roles, proto, port)] = cand
            for role in cand:
                w = PEER_WEIGHT / len(cand)
                added[(host, role)] += w
                verb = "connected to" if outward else "was reached by"
                why[(host, role)].append(
                    f"{verb} {'+'.join(sorted(peer_roles))} {peer} on {proto}/{port} (+{w:.2f})"
                )
    if not added:
        return
    # the port evidence of these hosts was below the threshold, so not loaded yet
    con.register("added", pa.table({"ip": [k[0] for k in added], "role": [k[1] for k in added]}))
    base = {
        (ip, role): v
        for ip, role, v in con.execute(
            "SELECT a.ip, a.role, coalesce(s.score, 0) FROM added a LEFT JOIN scores s USING (ip, role)"
        ).fetchall()
    }
    for (host, role), w in added.items():
        score[host][role] = max(score[host].get(role, 0.0), base.get((host, role), 0.0)) + w


def _implying(ruleset: Ruleset) -> dict[str, set[str]]:
    """role -> the roles it implies, for the roles that imply any."""
    subs = {r.id: set(getattr(r, "implies", ()) or ()) for r in ruleset.roles}
    return {k: v for k, v in subs.items() if v}


def _sub_roles(
    subs: dict[str, set[str]],
    evidence: list[tuple[str, str, float]],
    score: dict[str, dict[str, float]],
    why: dict[tuple[str, str], list[str]],
) -> None:
    """A placed host also takes a role that implies one of its roles (pvs_agent implies
    agent) when it shows any evidence for it: the agent that fetched disks on 3009 is the
    agent on a Citrix Provisioning server. ``evidence``: (ip, role, score > 0) of the
    implying roles, in the order of the ``scores`` table."""
    for ip, role, v in evidence:
        have = {r for r, x in score.get(ip, {}).items() if x >= ASSIGN_AT - 1e-9}
        if subs[role] & have and role not in have:
            score[ip][role] = max(score[ip].get(role, 0.0) + v, ASSIGN_AT)
            why[(ip, role)].append(f"implies {'+'.join(sorted(subs[role] & have))}, which it holds")


def _needed(flows: pa.Table) -> list[str]:
    return [
        c
        for c in ("src_ip", "dst_ip", "proto", "dst_port", "packets_rev", "state", "app")
        if c in flows.column_names
    ]


def _hint_matches(
    ruleset: Ruleset,
    flows: pa.Table,
    names: dict[str, set[tuple[str, str]]],
    placed: dict[str, set[str]],
) -> Iterable[tuple[str, str, str]]:
    """(ip, role, evidence) from role hints: name patterns and HTTP user agents."""
    ua_flows: list[tuple[str, str, str, int, str]] = []
    agents = flows.column("http_user_agent") if "http_user_agent" in flows.column_names else None
    if agents is not None and agents.null_count < len(agents):
        # each distinct (source, destination, port, agent) once, first seen first: a repeat
        # decides nothing its first occurrence did not (rows picked in Python: a
        # Table.filter would load pyarrow.compute, ~45 ms)
        cols = [
            flows.column(c).to_pylist()
            for c in ("src_ip", "dst_ip", "proto", "dst_port", "http_user_agent")
        ]
        ua_flows = list(dict.fromkeys(row for row in zip(*cols, strict=True) if row[4] is not None))
    by_ip = {ip: sorted(seen) for ip, seen in names.items()}
    all_names = {name for seen in names.values() for name, _ in seen}
    for role in ruleset.roles:
        hints = getattr(role, "hints", None)
        if not hints:
            continue
        patterns = [p.lower() for p in _hint_list(hints, "names")]
        agents = [a.lower() for a in _hint_list(hints, "user_agents")]
        if patterns:
            # each distinct name tried once; then, per address, its first matching name
            hits = {n for n in all_names if any(_name_match(n, p) for p in patterns)}
            for ip, seen in by_ip.items() if hits else ():
                for name, how in seen:
                    if name in hits:
                        yield ip, role.id, f"{how} {name} matches the role's name hints"
                        break
        if agents:
            rules = [r for r in ruleset.flows if r.from_role == role.id]
            done: set[str] = set()
            agent_hit: dict[str, bool] = {}
            on_port: dict[tuple[str, int], list[Rule]] = {}
            for src, dst, proto, port, ua in ua_flows:
                if src in done:
                    continue
                hit = agent_hit.get(ua)
                if hit is None:
                    low = ua.lower()
                    hit = agent_hit[ua] = any(fnmatch.fnmatchcase(low, a) for a in agents)
                if not hit:
                    continue
                documented = on_port.get((proto, port))
                if documented is None:
                    documented = on_port[(proto, port)] = [
                        r for r in rules if proto in r.protos and r.covers(port)
                    ]
                fits = [r for r in documented if port >= 1024 or r.to_role in placed.get(dst, ())]
                if fits:
                    done.add(src)
                    yield (
                        src,
                        role.id,
                        (
                            f"HTTP User-Agent {ua!r} towards {dst}:{port} "
                            f"({fits[0].id}) matches the role's hints"
                        ),
                    )


def _hint_list(hints: Any, key: str) -> list[str]:
    val = hints.get(key) if isinstance(hints, dict) else getattr(hints, key, None)
    return list(val or ())


def _name_match(name: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return fnmatch.fnmatchcase(name, pattern)


def resolve_roles(ruleset: Ruleset, flows: pa.Table, inventory: Inventory | None) -> RoleMap:
    """Roles from the inventory when given, else inferred."""
    if inventory is not None:
        return inventory_roles(inventory, flows)
    return RoleMap(infer_roles(ruleset, flows), False)
