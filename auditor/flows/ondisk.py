"""The finished flow table of a spilled read: written to disk in slices, read back mapped.

Why: past ``--flow-limit`` the live flow table is bounded (:mod:`auditor.flows.spill`), but the
finished table is still about 300 bytes a flow, and role inference and the checks then
add DuckDB's own memory on top: 5 M flows did not fit in 2 GB. So when the read spilled,
:func:`on_disk` writes the table, slice by slice (:data:`SLICE` rows, each given its
``capture``/``captures`` columns there: :func:`auditor.traffic.placed`), to an Arrow IPC
file in the spill directory (``--temp-dir``), and returns the same table read back
zero-copy from a read-only memory map of it. Its pages are the file's: they are read in
as a column is scanned and, being clean, given back by :func:`release` (``madvise``)
after each stage that scans them (roles, checks), so what stays resident is what the
current stage reads, not the whole table. The file is unlinked as soon as it is mapped:
nothing is left behind, whatever ends the process.

Columns without a value (most of the classifier's facts on most captures) are not
written: they come back as nulls on one zeroed buffer (``null_column``), untouched memory.
Every reader sees the same schema and values as from the in-memory table; only the
chunking differs (a chunk per slice).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
import weakref
from collections.abc import Callable

import pyarrow as pa

from auditor._flowtab import release_free_memory
from auditor.classify.facts import null_column, zeros
from auditor.errors import ResourceError

#: rows written at a time (each slice's ``placed`` columns are built for it alone)
SLICE = 262_144
#: the maps of tables on disk still in use (a map goes with the last column that uses it)
_MAPS: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()
#: columns that ``transform`` rebuilds: kept even when null
_KEEP = ("capture", "last_capture")


def _temp_dir() -> str | None:
    from auditor import duck

    return duck.temp_dir()


def on_disk(
    take: Callable[[], pa.Table],
    transform: Callable[[pa.Table], pa.Table] = lambda t: t,
    where: str | None = None,
) -> pa.Table:
    """``transform`` of the table ``take()`` returns, written slice by slice to a file in
    ``where`` (default: --temp-dir, else the system's temporary directory) and read back
    mapped (see the module docstring). ``take`` hands the table over: it is dropped once
    written, before the file is mapped."""
    table = take()
    n = table.num_rows
    schema = transform(table.slice(0, 0)).schema
    nulls = {
        name
        for name in table.column_names
        if n and name not in _KEEP and table.column(name).null_count == n
    }
    where = where or _temp_dir()
    try:
        if where:
            os.makedirs(where, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="pcap-audit-flows-", suffix=".arrow", dir=where)
    except OSError as exc:
        raise ResourceError(
            where or tempfile.gettempdir(),
            f"cannot write the flow table to disk ({exc.strerror or exc}): point --temp-dir "
            "at a writable directory, or raise --flow-limit",
        ) from exc
    try:
        kept = table.drop_columns(sorted(nulls))
        del table
        written = pa.schema([f for f in schema if f.name not in nulls])
        os.close(fd)
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, written) as writer:
            for start in range(0, n, SLICE):
                writer.write_table(transform(kept.slice(start, SLICE)))
        del kept
        # the table built in memory is garbage now: its pages go back to the system
        release_free_memory()
        pa.default_memory_pool().release_unused()
        with open(path, "rb") as src:
            mapped = mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise ResourceError(
            path,
            f"cannot write the flow table to disk ({exc.strerror or exc}): free space "
            "there, point --temp-dir elsewhere, or raise --flow-limit",
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    _MAPS.add(mapped)
    read = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapped))).read_all()
    zero = zeros(n) if nulls else None
    columns = []
    for field in schema:
        if field.name in nulls:
            assert zero is not None
            columns.append(pa.chunked_array([null_column(n, field.type, zero)], field.type))
        else:
            columns.append(read.column(field.name))
    return pa.Table.from_arrays(columns, schema=schema)


def release() -> None:
    """Give back the pages of the tables on disk read so far (they are read in again
    when next scanned): called after each stage that scans a whole table."""
    advice = getattr(mmap, "MADV_DONTNEED", None)  # not on Windows: pages then stay
    if advice is None:
        return
    for mapped in list(_MAPS):
        if not mapped.closed:
            mapped.madvise(advice)
