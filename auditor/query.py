"""``pcap-audit query``: SQL over the audit's tables, as documented views.

Views (README, "pcap-audit query"):

* ``flows``: the flow table (``pcap-audit flows`` columns, native types: ``capture``,
  ``captures``, ``first_frame``, ``last_frame`` say where its packets are);
* ``captures``: one row per capture file (path, format, packets, bytes, first_seen,
  last_seen, truncated, decode_errors as JSON text, error, selected);
* ``findings``: the audit's findings (needs a ruleset): the JSON contract's fields, with
  ``evidence`` as JSON text and the vendor's words as ``source_document``,
  ``source_section``, ``source_text``;
* ``roles``: each host's roles (needs a ruleset): ``ip``, ``roles``, ``source``,
  ``confidence``, ``evidence``, ``names``.

The views are Arrow tables registered in a DuckDB cursor of the process's one database
(:mod:`auditor.duck`); the query's result comes back as an Arrow table, which the renderers
write as a table, JSON, CSV or Parquet.

Over a store (`query_store`), the views are SQL over the store file attached READ_ONLY in
that cursor (:mod:`auditor.store.views`: ``runs``, ``findings``, ``captures``, ``flows``),
and only queries run: a statement of another kind is refused before it runs, and DuckDB
would refuse a write to the attached file besides. Results come back in UTC.
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from auditor.errors import AuditorError, ExitCode
from auditor.flows import public_flows
from auditor.traffic import Traffic

if TYPE_CHECKING:
    import duckdb

    from auditor.findings.model import AuditDocument
    from auditor.store.db import Notify

VIEWS = ("flows", "captures", "findings", "roles")
_TS = pa.timestamp("us", tz="UTC")


class QueryError(AuditorError):
    """The SQL does not run (syntax, unknown column, a view that needs a ruleset)."""

    exit_code = ExitCode.USAGE


def _ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def flows_view(traffic: Traffic) -> pa.Table:
    """The flow table as ``pcap-audit flows`` writes it."""
    assert traffic.flows is not None
    return public_flows(traffic.flows)


def captures_view(traffic: Traffic) -> pa.Table:
    schema = pa.schema([("path", pa.string()), ("format", pa.string()),
                        ("compressed", pa.bool_()), ("packets", pa.int64()),
                        ("bytes", pa.int64()), ("first_seen", _TS), ("last_seen", _TS),
                        ("truncated", pa.bool_()), ("decode_errors", pa.string()),
                        ("error", pa.string()), ("selected", pa.int64())])  # fmt: skip
    rows = [
        {
            "path": c.path,
            "format": c.format,
            "compressed": bool(c.detail("compressed")),
            "packets": c.packets,
            "bytes": c.bytes,
            "first_seen": _ts(c.first_seen),
            "last_seen": _ts(c.last_seen),
            "truncated": c.truncated,
            "decode_errors": json.dumps(dict(c.decode_errors)),
            "error": c.error,
            "selected": c.detail("selected"),
        }
        for c in traffic.captures
    ]
    return pa.Table.from_pylist(rows, schema=schema)


def findings_view(document: AuditDocument) -> pa.Table:
    strs = pa.list_(pa.string())
    schema = pa.schema([("id", pa.string()), ("kind", pa.string()), ("severity", pa.string()),
                        ("src_ip", pa.string()), ("dst_ip", pa.string()),
                        ("dst_port", pa.int32()), ("proto", pa.string()),
                        ("src_role", pa.string()), ("dst_role", pa.string()),
                        ("rule_id", pa.string()), ("message", pa.string()),
                        ("first_seen", _TS), ("last_seen", _TS), ("packets", pa.int64()),
                        ("bytes", pa.int64()), ("flow_ids", strs), ("community_ids", strs),
                        ("evidence", pa.string()), ("source_document", pa.string()),
                        ("source_section", pa.string()), ("source_text", pa.string())])  # fmt: skip
    rows = []
    for f in document.findings:
        src = f.source or {}
        row = {k: getattr(f, k, None) for k in schema.names}
        row.update(
            first_seen=_ts(f.first_seen),
            last_seen=_ts(f.last_seen),
            flow_ids=list(f.flow_ids),
            community_ids=list(f.community_ids),
            evidence=json.dumps(dict(f.evidence), ensure_ascii=False),
            source_document=src.get("document"),
            source_section=src.get("section"),
            source_text=src.get("text"),
        )
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def roles_view(document: AuditDocument) -> pa.Table:
    strs = pa.list_(pa.string())
    schema = pa.schema([("ip", pa.string()), ("roles", strs), ("source", pa.string()),
                        ("confidence", pa.float64()), ("evidence", strs), ("names", strs)])  # fmt: skip
    rows = [
        {
            "ip": r.get("ip"),
            "roles": list(r.get("roles") or []),
            "source": r.get("source"),
            "confidence": r.get("confidence"),
            "evidence": [str(x) for x in r.get("evidence") or []],
            "names": [str(x) for x in r.get("names") or []],
        }
        for r in document.roles
    ]
    return pa.Table.from_pylist(rows, schema=schema)


def run_query(sql: str, views: dict[str, pa.Table]) -> pa.Table:
    """Run ``sql`` with ``views`` registered; a failing query is a QueryError with DuckDB's
    first line, and a hint when it names a view that needs a ruleset."""
    from auditor import duck

    with duck.cursor() as con:
        for name, table in views.items():
            con.register(name, table)
        return _run(con, sql, "query", views=list(views), read_only=False)


#: the statements a query over a store may be (DESCRIBE, SHOW, SUMMARIZE and WITH are
#: SELECTs to DuckDB); the store is attached read-only besides
_READING = ("SELECT",)


def query_store(sql: str, store: str | Path, notify: Notify | None = None) -> pa.Table:
    """Run ``sql`` over the views of the store at ``store`` (:mod:`auditor.store.views`).

    The store is opened as it is, never created nor migrated, and attached read-only under
    the store's shared lock (a run being recorded finishes first); a statement other than a
    query is refused before it runs. StoreError for a path that is not a store, QueryError
    for SQL that does not run; both name the store.
    """
    import duckdb

    from auditor import duck
    from auditor.store import views as store_views
    from auditor.store.db import StoreError, reading

    with reading(store, notify), duck.cursor() as con:
        path = str(store).replace("'", "''")
        try:
            con.execute(f"ATTACH '{path}' AS {_ALIAS} (READ_ONLY)")
        except duckdb.Error as exc:
            raise StoreError(store, f"cannot open the store: {_first_line(exc)}") from None
        try:
            for name, select in store_views.definitions(con, _ALIAS).items():
                con.execute(f"CREATE TEMP VIEW {name} AS {select}")
            return _run(con, sql, str(store), views=list(store_views.VIEWS), read_only=True)
        finally:
            with contextlib.suppress(duckdb.Error):  # the query's own error, if any, goes on
                con.execute(f"DETACH {_ALIAS}")


#: the name the store is attached under (its own tables: ``store.runs``, ...)
_ALIAS = "store"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _run(
    con: duckdb.DuckDBPyConnection, sql: str, where: str, *, views: list[str], read_only: bool
) -> pa.Table:
    """``sql`` run in ``con`` as an Arrow table; QueryError (naming ``where``) when it does
    not parse or run, or, with ``read_only``, is not a query."""
    import duckdb

    # timestamps come back in UTC, as every other output writes them, whatever TZ says
    con.execute("SET TimeZone = 'UTC'")
    try:
        if read_only:
            for statement in con.extract_statements(sql):
                kind = statement.type.name
                if kind not in _READING:
                    raise QueryError(
                        where,
                        f"a query over a store only reads it: {kind} refused "
                        "(SELECT, WITH, FROM, DESCRIBE, SHOW and SUMMARIZE run)",
                    )
        rel = con.sql(sql)
        return pa.table({}) if rel is None else rel.to_arrow_table()
    except duckdb.Error as exc:
        message = _first_line(exc)
        missing = [v for v in VIEWS if v not in views and v in message]
        if missing and not read_only:
            message += f" ({' and '.join(missing)} need --ruleset)"
        elif isinstance(exc, (duckdb.CatalogException, duckdb.BinderException)):
            roles = read_only and re.search(r"\broles\b", message)
            unstored = "; roles are not stored" if roles else ""
            message += f" (views: {', '.join(views)}{unstored})"
        raise QueryError(where, message) from None
