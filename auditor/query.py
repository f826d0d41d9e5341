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
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from auditor.errors import AuditorError, ExitCode
from auditor.escape import printable
from auditor.flows import public_flows

if TYPE_CHECKING:
    from auditor.findings.model import AuditDocument
from auditor.traffic import Traffic

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
    import duckdb

    from auditor import duck

    with duck.cursor() as con:
        for name, table in views.items():
            con.register(name, table)
        try:
            rel = con.sql(sql)
            return pa.table({}) if rel is None else rel.to_arrow_table()
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            missing = [v for v in VIEWS if v not in views and v in message]
            if missing:
                message += f" ({' and '.join(missing)} need --ruleset)"
            raise QueryError("query", message) from None


def table_text(table: pa.Table, width: int = 100) -> str:
    """A result as an aligned text table; cells longer than 40 characters are elided."""
    names = table.column_names
    rows = [[_cell(v) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    lines = [fmt.format(*names).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]
    lines.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        text = v.isoformat().replace("+00:00", "Z")
    elif isinstance(v, list):
        text = ",".join(map(str, v))
    else:
        text = str(v)
    text = printable(text.replace("\n", " "))  # wire content: escaped for the terminal
    return text if len(text) <= 40 else text[:39] + "…"
