"""The one in-process DuckDB database that the audit's SQL runs in (roles, checks).

Opening a DuckDB database costs about 20 ms, more than most of the audit's queries, so the
process opens one, single-threaded, on first use, and each stage works in its own cursor:
a connection to that database with its own registered views and temporary tables, which
nothing else sees and which go when the cursor is closed. Single-threaded also means each
query reads and aggregates its rows in one fixed order, so what depends on that order (the
ties of an ordered aggregate, which 100 of a scan's community ids are kept) is the same from
run to run.

``duckdb`` itself is imported here and only here, on first use: its import costs ~0.1 s,
which the commands that run no SQL (flows, rulesets, --help) do not pay. (Importing it in
a thread while the captures are read was tried: no gain measured, on plain or gzip'd
captures, since the import needs the GIL the flow table holds.)
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_lock = threading.Lock()
_db: duckdb.DuckDBPyConnection | None = None


def _database() -> duckdb.DuckDBPyConnection:
    global _db
    with _lock:
        if _db is None:
            import duckdb

            _db = duckdb.connect(config={"threads": 1})
        return _db


def cursor() -> duckdb.DuckDBPyConnection:
    """A fresh connection to the shared database; close it (or use ``with``) when done."""
    return _database().cursor()
