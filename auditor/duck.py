"""The one in-process DuckDB database that the audit's SQL runs in (roles, checks).

Opening a DuckDB database costs about 20 ms, more than most of the audit's queries, so the
process opens one, single-threaded, on first use, and each stage works in its own cursor:
a connection to that database with its own registered views and temporary tables, which
nothing else sees and which go when the cursor is closed. Single-threaded also makes the
order of ``list(DISTINCT ...)`` aggregates the order of first appearance, which the
findings' evidence lists inherit.
"""

from __future__ import annotations

import threading

import duckdb

_lock = threading.Lock()
_db: duckdb.DuckDBPyConnection | None = None


def cursor() -> duckdb.DuckDBPyConnection:
    """A fresh connection to the shared database; close it (or use ``with``) when done."""
    global _db
    with _lock:
        if _db is None:
            _db = duckdb.connect(config={"threads": 1})
        return _db.cursor()
