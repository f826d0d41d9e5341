"""Opening a store: the lock, the file check, the schema version and its migration.

DuckDB lets one process write a database file at a time and refuses a second one with an
error, so pcap-audit takes a lock of its own first: ``PATH.lock``, held with ``flock``
(exclusive for a writer, shared for a reader) for as long as the database is open. A
second audit writing the same store waits for the first, saying so on stderr, and then
records its run; the lock goes with the process, so a killed run leaves none behind.

Everything a run writes goes in one transaction: a run interrupted (Ctrl-C, SIGTERM, a
full disk) before its commit leaves the store as it was. A file that is not a store (not
DuckDB at all, or another application's DuckDB database, or a store from a newer
pcap-audit) is refused with `StoreError` (exit code USAGE) and never written to.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from auditor.errors import AuditorError, ExitCode
from auditor.store import schema

if TYPE_CHECKING:
    import duckdb

#: what a DuckDB database file has at byte 8
_MAGIC = b"DUCK"

Notify = Callable[[str], None]


class StoreError(AuditorError):
    """A store that cannot be opened or is not a store: the path and what is wrong."""

    exit_code = ExitCode.USAGE


@contextlib.contextmanager
def _locked(path: Path, exclusive: bool, notify: Notify | None) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        if not exclusive and exc.errno in (errno.EACCES, errno.EROFS):
            yield  # a reader in a directory it cannot write: DuckDB's own lock still holds
            return
        raise StoreError(lock, f"cannot create the store's lock file: {exc.strerror}") from None
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if notify:
                notify(f"{path}: the store is in use by another pcap-audit run; waiting for it")
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_file(path: Path) -> bool:
    """Whether ``path`` holds a DuckDB database (False: absent or empty, a new store);
    StoreError for anything else."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise StoreError(path, "is a directory, expected a store file") from None
    except OSError as exc:
        raise StoreError(path, f"cannot read: {exc.strerror or exc}") from None
    if not head:
        return False
    if head[8:12] != _MAGIC:
        raise StoreError(path, "not a pcap-audit store: not a DuckDB database file")
    return True


def is_duckdb_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a readable regular file holding a DuckDB database (a store given
    where a capture is expected, say). A pipe is not read: its bytes are the capture's."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as fh:
            return fh.read(12)[8:12] == _MAGIC
    except OSError:
        return False


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    import duckdb

    try:
        return duckdb.connect(str(path), read_only=read_only, config={"threads": 1})
    except duckdb.Error as exc:
        text = str(exc).split("\n", 1)[0]
        if "lock" in text.lower():
            text = "the store is open in another program (" + text + ")"
        raise StoreError(path, f"cannot open the store: {text}") from None


def _version(con: duckdb.DuckDBPyConnection, path: Path) -> int | None:
    """The store's schema version; None for a database without tables (a new store)."""
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    }
    if not tables:
        return None
    if "pcap_audit_meta" not in tables:
        raise StoreError(path, "not a pcap-audit store: a DuckDB database of another application")
    meta = dict(con.execute("SELECT key, value FROM pcap_audit_meta").fetchall())
    if meta.get("application") != schema.APPLICATION:
        raise StoreError(path, "not a pcap-audit store: its pcap_audit_meta names no pcap-audit")
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise StoreError(path, "not a pcap-audit store: no schema version") from None
    if version > schema.VERSION:
        raise StoreError(
            path,
            f"written by a newer pcap-audit (store schema {version}; this one reads up to "
            f"{schema.VERSION}): upgrade pcap-audit",
        )
    return version


def _prepare(con: duckdb.DuckDBPyConnection, path: Path, notify: Notify | None) -> None:
    """Create the tables of a new store, or migrate an older one, in one transaction."""
    version = _version(con, path)
    if version == schema.VERSION:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        if version is None:
            for statement in schema.CREATE:
                con.execute(statement)
        else:
            for v in range(version, schema.VERSION):
                for statement in schema.MIGRATIONS[v]:
                    con.execute(statement)
            if notify:
                notify(f"{path}: store migrated from schema {version} to {schema.VERSION}")
        con.execute(
            "INSERT OR REPLACE INTO pcap_audit_meta VALUES "
            "('application', ?), ('schema_version', ?)",
            [schema.APPLICATION, str(schema.VERSION)],
        )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def open_store(
    path: str | os.PathLike[str], *, write: bool, notify: Notify | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The store at ``path``, locked, checked and at the current schema version.

    ``write``: for recording a run (exclusive lock; a missing file becomes a new store).
    Otherwise the store must exist; it is opened read-only under a shared lock, unless it
    needs migrating, which takes the exclusive lock first. ``notify`` receives the
    one-line notes for stderr (waiting for the lock, a migration).
    """
    p = Path(path)
    exists = _check_file(p)
    if not write and not exists:
        raise StoreError(p, "no such store (an audit with --store creates it)")
    if write and not p.parent.is_dir():
        raise StoreError(p, "cannot create the store: its directory does not exist")
    if not write:
        with _locked(p, False, notify):
            con = _connect(p, read_only=True)
            try:
                version = _version(con, p)
                if version is None:
                    raise StoreError(p, "not a pcap-audit store: an empty DuckDB database")
                if version == schema.VERSION:
                    yield con
                    return
            finally:
                con.close()
        # an older store: migrate it (as a writer), then read it
    with _locked(p, True, notify):
        if p.exists() and p.stat().st_size == 0:
            p.unlink()  # an empty file (mktemp, touch): a new store
        con = _connect(p, read_only=False)
        try:
            _prepare(con, p, notify)
            yield con
        finally:
            con.close()


@contextlib.contextmanager
def reading(path: str | os.PathLike[str], notify: Notify | None = None) -> Iterator[int]:
    """The store at ``path`` checked for reading it as it is: its schema version, for as
    long as the block runs under the shared lock (no run is recorded meanwhile).

    Unlike `open_store`, never creates a store and never migrates one: an older store is
    read at its own version. StoreError for a missing path, an empty file, a file that is
    not a store and a store from a newer pcap-audit.
    """
    p = Path(path)
    if not _check_file(p):
        if p.exists():
            raise StoreError(p, "not a pcap-audit store: an empty file")
        raise StoreError(p, "no such store (an audit with --store creates it)")
    with _locked(p, False, notify):
        con = _connect(p, read_only=True)
        try:
            version = _version(con, p)
        finally:
            con.close()
        if version is None:
            raise StoreError(p, "not a pcap-audit store: an empty DuckDB database")
        yield version


class StoreResourceError(StoreError):
    """The store could not be written for want of disk space or memory: the run is not
    recorded (the store is as it was) and the message says what to change."""

    exit_code = ExitCode.RESOURCE


def _resource_problem(exc: BaseException) -> str | None:
    """What ran out, when ``exc`` is DuckDB (or the OS) running out of memory or disk."""
    text = str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryException":
        return "out of memory (give the process more memory)"
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        "No space left on device" in text or "Disk quota exceeded" in text
    ):
        return "out of disk space (free space where the store is)"
    return None


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection, path: str | os.PathLike[str]) -> Iterator[None]:
    """One transaction: committed when the block ends, rolled back on any exception,
    KeyboardInterrupt and SystemExit included. Running out of disk or memory is a
    `StoreResourceError`."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException as exc:
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")
        what = _resource_problem(exc)
        if what:
            raise StoreResourceError(
                path, f"the run is not recorded, the store is as it was: {what}"
            ) from None
        raise


def check_store(path: str | os.PathLike[str]) -> None:
    """Before an audit with ``--store``: StoreError now, not after the captures are
    read, when ``path`` cannot become or be a store. A store another run holds is left
    to the recording, which waits for it."""
    p = Path(path)
    if not p.parent.is_dir():
        raise StoreError(p, "cannot create the store: its directory does not exist")
    if not _check_file(p):
        return
    lock = p.with_name(p.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return  # the recording says what is wrong
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        con = _connect(p, read_only=True)
        try:
            _version(con, p)
        finally:
            con.close()
    finally:
        os.close(fd)
