"""The views `pcap-audit query --store` shows of a store: its tables with readable names.

The store's tables are laid out for recording (JSON text for the counts by kind and
severity, each finding whole as JSON, timestamps as ISO text); the views give a query
what it needs without knowing that: timestamps as timestamps, a run's counts by severity
as columns, and a finding with the same columns as the capture-mode ``findings`` view
(taken from its stored JSON), plus its run. They are SQL over the attached store, so a
query reads only what it asks for.

A store is read at its own schema version, never migrated by a query: a column an older
version lacks reads as what its migration would fill it with (`_DEFAULTS`), and the
``flows`` view of a store that kept no flows is empty. Roles are not stored (only the
labels the flows are aggregated by), so there is no ``roles`` view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditor.rules.model import SEVERITIES

if TYPE_CHECKING:
    import duckdb

#: the views, in the order the README documents them
VIEWS = ("runs", "findings", "captures", "flows")

#: what a column added by a later schema version reads as in an older store
_DEFAULTS = {
    ("runs", "waivers_path"): "NULL::VARCHAR",
    ("runs", "waivers_sha256"): "NULL::VARCHAR",
    ("runs", "waived"): "0",
    ("runs", "complete"): "true",
    ("runs", "flows_recorded"): "false",
    ("runs", "document_sha256"): "NULL::VARCHAR",
    ("findings", "waived"): "false",
}

_FLOW_COLUMNS = (
    ("run_id", "INTEGER"),
    ("src", "VARCHAR"),
    ("dst", "VARCHAR"),
    ("dst_port", "INTEGER"),
    ("proto", "VARCHAR"),
    ("app", "VARCHAR"),
    ("flows", "BIGINT"),
    ("packets", "BIGINT"),
    ("bytes", "BIGINT"),
)


def _tables(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = 'main'",
        [db],
    ).fetchall()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(str(table), set()).add(str(column))
    return tables


def _ts(expr: str) -> str:
    return f"TRY_CAST({expr} AS TIMESTAMPTZ)"


def definitions(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, str]:
    """The SELECT of each view over the store attached to ``con`` as ``db``."""
    tables = _tables(con, db)

    def col(alias: str, table: str, name: str) -> str:
        if name in tables.get(table, ()):
            return f"{alias}.{name}"
        return _DEFAULTS[(table, name)]

    severities = ",\n       ".join(
        f"coalesce(TRY_CAST(r.by_severity->>'$.{s}' AS INTEGER), 0) AS {s}" for s in SEVERITIES
    )
    runs = f"""
SELECT r.id, {_ts("r.started")} AS started, {_ts("r.finished")} AS finished,
       r.tool_version, r.ruleset_name AS ruleset, r.ruleset_sha256,
       r.inventory_path AS inventory, r.inventory_sha256,
       {col("r", "runs", "waivers_path")} AS waivers,
       {col("r", "runs", "waivers_sha256")} AS waivers_sha256, r.fail_on,
       (SELECT count(*) FROM {db}.run_captures c WHERE c.run_id = r.id) AS captures,
       r.packets, r.flows, r.findings,
       {severities},
       {col("r", "runs", "waived")} AS waived, r.by_kind, r.by_severity, r.duration_s,
       r.exit_code, {col("r", "runs", "complete")} AS complete,
       {col("r", "runs", "flows_recorded")} AS flows_recorded, r.inputs_sha256,
       {col("r", "runs", "document_sha256")} AS document_sha256
FROM {db}.runs r ORDER BY r.id"""
    findings = f"""
SELECT f.run_id, f.position, f.id, f.kind, f.severity, f.src_ip, f.dst_ip, f.dst_port,
       f.proto, f.src_role, f.dst_role, f.rule_id, f.message,
       {_ts("f.finding->>'$.first_seen'")} AS first_seen,
       {_ts("f.finding->>'$.last_seen'")} AS last_seen,
       TRY_CAST(f.finding->>'$.packets' AS BIGINT) AS packets,
       TRY_CAST(f.finding->>'$.bytes' AS BIGINT) AS bytes,
       coalesce(TRY_CAST(f.finding->'$.flow_ids' AS VARCHAR[]), []) AS flow_ids,
       coalesce(TRY_CAST(f.finding->'$.community_ids' AS VARCHAR[]), []) AS community_ids,
       coalesce(CAST(f.finding->'$.evidence' AS VARCHAR), '{{}}') AS evidence,
       f.finding->>'$.source.document' AS source_document,
       f.finding->>'$.source.section' AS source_section,
       f.finding->>'$.source.text' AS source_text,
       {col("f", "findings", "waived")} AS waived,
       CAST(f.finding->'$.waiver' AS VARCHAR) AS waiver,
       f.finding
FROM {db}.findings f ORDER BY f.run_id, f.position"""
    captures = f"""
SELECT rc.run_id, rc.position, rc.path, c.format, rc.packets, c.bytes,
       {_ts("c.first_seen")} AS first_seen, {_ts("c.last_seen")} AS last_seen,
       rc.error, rc.sha256, rc.new
FROM {db}.run_captures rc LEFT JOIN {db}.captures c ON c.sha256 = rc.sha256
ORDER BY rc.run_id, rc.position"""
    names = ", ".join(name for name, _ in _FLOW_COLUMNS)
    if "flows" in tables:
        flows = f"SELECT {names} FROM {db}.flows ORDER BY run_id, src, dst, dst_port, proto, app"
    else:  # a store from before flows were kept
        nulls = ", ".join(f"NULL::{kind}" for _, kind in _FLOW_COLUMNS)
        flows = f"SELECT * FROM (VALUES ({nulls})) AS t({names}) WHERE false"
    return {"runs": runs, "findings": findings, "captures": captures, "flows": flows}
