"""The ruleset as an Arrow table the audit can join on in DuckDB.

One row per (rule, transport, port or range, source port or range): a rule with ports 80,
443 and the range 61001-65534 gives three rows (six for ``tcp/udp``), each with ``port_lo``/``port_hi`` (equal for a single port), so the join is a
plain ``flow.port BETWEEN port_lo AND port_hi``. Provenance travels with each row so a
finding can cite the vendor's words without going back to the Ruleset object. The table
is built once per ruleset (roles and checks both join on it; Arrow tables are immutable).
"""

from __future__ import annotations

import weakref

import pyarrow as pa

from auditor.rules.model import FINDING_KINDS, Rule, Ruleset
from auditor.rules.vocabulary import wire_apps

RULES_SCHEMA = pa.schema(
    [
        ("rule_id", pa.string()),
        ("from_role", pa.string()),
        ("to_role", pa.string()),
        ("proto", pa.string()),
        ("port_lo", pa.int32()),
        ("port_hi", pa.int32()),
        ("app", pa.string()),
        ("security", pa.string()),
        ("disk_transfer", pa.bool_()),
        ("expected", pa.bool_()),
        ("pair", pa.string()),
        ("encrypted_required", pa.bool_()),
        ("transfer", pa.string()),
        ("component", pa.string()),
        ("from_component", pa.string()),
        ("source_document", pa.string()),
        ("source_section", pa.string()),
        ("source_text", pa.string()),
        ("notes", pa.list_(pa.string())),
        ("local", pa.bool_()),  # scope: local (only within the host)
        ("src_lo", pa.int32()),  # the source ports the rule requires (null: any)
        ("src_hi", pa.int32()),
        ("min_tls", pa.string()),  # the rule's own TLS minimum, if any
        ("wire_apps", pa.list_(pa.string())),  # classifier apps that fit (empty: any)
        # one nullable column per finding kind: the rule's severity override, if any
        *((f"severity_{kind}", pa.string()) for kind in FINDING_KINDS),
    ]
)


_TABLES: weakref.WeakKeyDictionary[Ruleset, pa.Table] = weakref.WeakKeyDictionary()


def rules_table(ruleset: Ruleset) -> pa.Table:
    """One row per (rule, port or range) with the columns of :data:`RULES_SCHEMA`."""
    table = _TABLES.get(ruleset)
    if table is None:
        table = _TABLES[ruleset] = _build(ruleset)
    return table


def _fitting(ruleset: Ruleset, rule: Rule) -> list[str]:
    """The classifier's apps that fit a rule: its own app's, and its pair's (the same purpose
    over the other of cleartext/TLS: TLS on the LDAP port 389 is not a protocol mismatch)."""
    fits = list(wire_apps(rule.app))
    pair = next((r for r in ruleset.flows if r.id == rule.pair), None)
    if pair is not None and fits:
        other = wire_apps(pair.app)
        fits = [*fits, *(a for a in other if a not in fits)] if other else []
    return fits


def _build(ruleset: Ruleset) -> pa.Table:
    rows: dict[str, list[object]] = {name: [] for name in RULES_SCHEMA.names}
    for rule in ruleset.flows:
        src: tuple[tuple[int | None, int | None], ...] = rule.src_spans() or ((None, None),)
        for proto, (lo, hi), (slo, shi) in (
            (p, s, t) for p in rule.protos for s in rule.spans() for t in src
        ):
            values: dict[str, object] = {
                "rule_id": rule.id,
                "from_role": rule.from_role,
                "to_role": rule.to_role,
                "proto": proto,
                "port_lo": lo,
                "port_hi": hi,
                "app": rule.app,
                "security": rule.security,
                "disk_transfer": rule.disk_transfer,
                "expected": rule.expected,
                "pair": rule.pair,
                "encrypted_required": rule.encrypted_required,
                "transfer": rule.transfer,
                "component": rule.component,
                "from_component": rule.from_component,
                "source_document": rule.source.document,
                "source_section": rule.source.section,
                "source_text": rule.source.text,
                "notes": list(rule.notes),
                "local": rule.scope == "local",
                "src_lo": slo,
                "src_hi": shi,
                "min_tls": rule.min_tls,
                "wire_apps": _fitting(ruleset, rule),
            }
            for kind in FINDING_KINDS:
                values[f"severity_{kind}"] = rule.severity.get(kind)
            for name in RULES_SCHEMA.names:
                rows[name].append(values[name])
    return pa.Table.from_pydict(rows, schema=RULES_SCHEMA)


DENIES_SCHEMA = pa.schema(
    [
        ("deny_id", pa.string()),
        ("from_role", pa.string()),  # null: any host
        ("to_role", pa.string()),
        ("proto", pa.string()),  # null: any transport
        ("port_lo", pa.int32()),  # null: any port
        ("port_hi", pa.int32()),
        ("app", pa.string()),  # null: any payload
        ("local", pa.bool_()),  # from a local-scope rule: matches flows between two hosts
        ("roles_only", pa.bool_()),  # names only roles: both endpoints must hold them
    ]
)

_DENIES: weakref.WeakKeyDictionary[Ruleset, pa.Table] = weakref.WeakKeyDictionary()


def denies_table(ruleset: Ruleset) -> pa.Table:
    """What the ruleset forbids, one row per (entry, transport, port span, app): its deny
    entries, and each local-scope rule as "this port, from another host" (the rule's id)."""
    table = _DENIES.get(ruleset)
    if table is None:
        table = _DENIES[ruleset] = _build_denies(ruleset)
    return table


def _build_denies(ruleset: Ruleset) -> pa.Table:
    rows: list[tuple[object, ...]] = []
    for d in ruleset.denies:
        protos: tuple[str | None, ...] = tuple(d.proto.split("/")) if d.proto else (None,)
        spans: tuple[tuple[int | None, int | None], ...] = d.spans() or ((None, None),)
        apps: tuple[str | None, ...] = d.apps or (None,)
        roles_only = not d.apps and not d.spans()
        for proto in protos:
            for lo, hi in spans:
                for app in apps:
                    rows.append(
                        (d.id, d.from_role, d.to_role, proto, lo, hi, app, False, roles_only)
                    )
    for r in ruleset.flows:
        if r.scope == "local":
            for proto in r.protos:
                for lo, hi in r.spans():
                    rows.append((r.id, None, r.to_role, proto, lo, hi, None, True, False))
    cols = [[row[i] for row in rows] for i in range(len(DENIES_SCHEMA))]
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(cols, DENIES_SCHEMA, strict=True)],
        schema=DENIES_SCHEMA,
    )
