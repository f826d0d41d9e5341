"""The ruleset as an Arrow table the audit can join on in DuckDB.

One row per (rule, port or range): a rule with ports 80, 443 and the range 61001-65534 gives
three rows, each with ``port_lo``/``port_hi`` (equal for a single port), so the join is a
plain ``flow.port BETWEEN port_lo AND port_hi``. Provenance travels with each row so a
finding can cite the vendor's words without going back to the Ruleset object. The table
is built once per ruleset (roles and checks both join on it; Arrow tables are immutable).
"""

from __future__ import annotations

import weakref

import pyarrow as pa

from auditor.rules.model import FINDING_KINDS, Ruleset

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


def _build(ruleset: Ruleset) -> pa.Table:
    rows: dict[str, list[object]] = {name: [] for name in RULES_SCHEMA.names}
    for rule in ruleset.flows:
        for lo, hi in rule.spans():
            values: dict[str, object] = {
                "rule_id": rule.id,
                "from_role": rule.from_role,
                "to_role": rule.to_role,
                "proto": rule.proto,
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
            }
            for kind in FINDING_KINDS:
                values[f"severity_{kind}"] = rule.severity.get(kind)
            for name in RULES_SCHEMA.names:
                rows[name].append(values[name])
    return pa.Table.from_pydict(rows, schema=RULES_SCHEMA)
