"""The one in-process DuckDB database that the audit's SQL runs in (roles, checks).

Opening a DuckDB database costs about 20 ms, more than most of the audit's queries, so the
process opens one, single-threaded, on first use, and each stage works in its own cursor:
a connection to that database with its own registered views and temporary tables, which
nothing else sees and which go when the cursor is closed. Single-threaded also means each
query reads and aggregates its rows in one fixed order, so what depends on that order (the
ties of an ordered aggregate, which 100 of a scan's community ids are kept) is the same from
run to run.

Its memory limit, thread count and spill directory are the user's (``--memory-limit``,
``--threads``, ``--temp-dir``; :func:`configure` before the first query). Without
``--memory-limit`` DuckDB would take 80 % of the machine's RAM as its limit, whatever
limit the process runs under (``ulimit -v``, a container): then its first large allocation
fails instead of spilling. So under an address-space limit the default is a quarter of
it, and DuckDB spills to disk beyond that.

``duckdb`` itself is imported here and only here, on first use: its import costs ~0.1 s,
which the commands that run no SQL (flows, rulesets, --help) do not pay. (Importing it in
a thread while the captures are read was tried: no gain measured, on plain or gzip'd
captures, since the import needs the GIL the flow table holds.)
"""

from __future__ import annotations

import resource
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

#: DuckDB's memory limit for the audit of a read that spilled (more flows than
#: --flow-limit) when none is set (--memory-limit, an address-space limit): see bounded()
SPILLED_MEMORY_LIMIT = "768MB"

_lock = threading.Lock()
_db: duckdb.DuckDBPyConnection | None = None


@dataclass(frozen=True)
class Settings:
    """How the process's DuckDB database is set up (see the module docstring)."""

    memory_limit: str | None = None  # DuckDB's syntax: "2GB", "512MiB"; None: see default
    threads: int = 1
    temp_dir: str | None = None  # where DuckDB spills; None: DuckDB's own (.tmp)


_settings = Settings()


def configure(settings: Settings) -> None:
    """Set up the database before its first use (the CLI's --memory-limit, --threads,
    --temp-dir); a database already open is changed in place."""
    global _settings
    with _lock:
        _settings = settings
        if _db is not None:
            config = _config(settings)
            for key in ("threads", "memory_limit", "temp_directory"):
                if key in config:
                    value = config[key].replace("'", "''")
                    _db.execute(f"SET {key} = '{value}'")
                else:
                    _db.execute(f"RESET {key}")


def memory_limit() -> tuple[str | None, bool]:
    """(the memory limit DuckDB gets or None for DuckDB's default, whether the user set it)."""
    return _settings.memory_limit or _default_memory_limit(), _settings.memory_limit is not None


def temp_dir() -> str | None:
    """The --temp-dir given, or None (the flow table's spill then uses the system's)."""
    return _settings.temp_dir


@contextmanager
def bounded(limit: str = SPILLED_MEMORY_LIMIT) -> Iterator[None]:
    """DuckDB under ``limit`` for the block, spilling to its temporary directory beyond it,
    unless a limit is set already. For the audit of millions of flows (a read that spilled
    its flow table): without one DuckDB would take up to 80 % of the machine's RAM for the
    scan aggregations of role inference and the checks, on top of the flow table."""
    if memory_limit()[0] is not None:
        yield
        return
    db = _database()
    with _lock:
        db.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        with _lock:
            db.execute("RESET memory_limit")


def _config(settings: Settings) -> dict[str, str]:
    config = {"threads": str(settings.threads)}
    limit = settings.memory_limit or _default_memory_limit()
    if limit:
        config["memory_limit"] = limit
    if settings.temp_dir:
        config["temp_directory"] = settings.temp_dir
    return config


def _default_memory_limit() -> str | None:
    """A quarter of the process's address-space limit, if it has one."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    return f"{max(soft // 4 // (1 << 20), 64)}MiB"


def _database() -> duckdb.DuckDBPyConnection:
    global _db
    with _lock:
        if _db is None:
            import duckdb

            _db = duckdb.connect(config=_config(_settings))  # type: ignore[arg-type]
        return _db


def cursor() -> duckdb.DuckDBPyConnection:
    """A fresh connection to the shared database; close it (or use ``with``) when done."""
    return _database().cursor()
