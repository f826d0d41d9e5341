"""The one in-process DuckDB database that the audit's SQL runs in (roles, checks).

Opening a DuckDB database costs about 20 ms, more than most of the audit's queries, so the
process opens one, single-threaded, on first use, and each stage works in its own cursor:
a connection to that database with its own registered views and temporary tables, which
nothing else sees and which go when the cursor is closed. Single-threaded also means each
query reads and aggregates its rows in one fixed order, so what depends on that order (the
ties of an ordered aggregate, which 100 of a scan's community ids are kept) is the same from
run to run.

``duckdb`` itself is imported here and only here, on first use: importing it and opening
the database take ~0.1 s, which :func:`open_in_background` spends on the second core while
the captures are read (the reader thread and the flow table leave it mostly idle), instead
of before the read.
"""

from __future__ import annotations

import contextlib
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


def open_in_background() -> threading.Thread:
    """Import duckdb and open the shared database in a daemon thread; ``cursor()`` waits
    for it if it is still at work. An error there is not lost: ``cursor()`` meets it again."""

    def work() -> None:
        # an error is raised again, in the caller's thread, by the next cursor()
        with contextlib.suppress(Exception):
            _database()

    thread = threading.Thread(target=work, name="pcap-audit-duckdb", daemon=True)
    thread.start()
    return thread
