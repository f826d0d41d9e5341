"""Several captures -> one traffic set: their metadata, their flows, and every problem said.

A capture that cannot be read is recorded with its error and the others are still read:
one bad file never loses the results of the others. Which files are read is decided by
:func:`auditor.sources.expand` (by content; duplicates read once). After each capture
this module says, in ``warnings``, what was not audited: a file cut short or still being
written, a bad record that stopped the read, link types the decoder does not know (with
the packets skipped), decode errors above :data:`DECODE_ERROR_SHARE`, packets the capture
interface dropped. Such a capture is not ``complete``; that sets the CAPTURE exit bit.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from auditor.capture import CaptureInfo, PacketReader, linktype_name, read_packets
from auditor.capture.inputs import display_name
from auditor.capture.split import MIN_PART, merge_infos, split_pcap
from auditor.errors import CaptureError
from auditor.flows import FLOW_LIMIT, FlowBuilder, flow_schema
from auditor.sources import Found, expand
from auditor.sources.record import CaptureRecord
from auditor.sources.zeek import is_zeek_dir, read_zeek

if TYPE_CHECKING:
    from auditor.capture.select import PacketFilter

#: a capture cut inside a record and modified less than this many seconds ago is said to
#: be "still being written" (tcpdump flushes its buffer every few seconds at most)
STILL_WRITING_S = 120.0
#: decode errors are said (and the capture is not complete) above this share of its packets
DECODE_ERROR_SHARE = 0.01
#: statuses that are decode errors (``non_ip`` and ``ip_fragment`` are not: ARP, LLDP and
#: a later fragment of a packet begun before the capture are normal traffic);
#: ``unsupported_linktype`` and ``bad_record`` are said on their own
DECODE_ERRORS = (
    "truncated_link",
    "truncated_ip",
    "bad_ip_header",
    "truncated_transport",
    "bad_tunnel",
)


@dataclass(frozen=True)
class Reading:
    """Where reading stands, for a progress display: capture ``index`` of ``count``, its
    bytes read of ``total`` (None for a pipe), and its packets so far."""

    path: str
    index: int
    count: int
    done: int
    total: int | None
    packets: int


@dataclass
class Traffic:
    """The result of reading captures: per-capture metadata, the flow table, what failed.

    ``notes`` are the diagnostic lines to print, in order (``path: message``): errors,
    warnings, skipped files and duplicates. ``skipped`` lists the files of directories that
    are not captures (``path``, ``reason``).
    """

    captures: list[CaptureRecord] = field(default_factory=list)
    flows: pa.Table | None = None
    errors: list[CaptureError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: SPAN duplicates dropped (``dedup``); None when duplicates were not looked for
    duplicates_dropped: int | None = None
    #: the read had more flows than its --flow-limit: its flow table is on disk
    #: (:mod:`auditor.flows.ondisk`) and the audit's DuckDB bounded (:func:`auditor.duck.bounded`)
    spilled: bool = False

    @property
    def packets(self) -> int:
        return sum(c.packets for c in self.captures)

    @property
    def complete(self) -> bool:
        """Every capture given was read whole (duplicates count as read)."""
        return all(c.complete for c in self.captures)

    def intervals(self) -> list[tuple[datetime, datetime]]:
        """The time interval of each capture that has packets."""
        return [
            (datetime.fromisoformat(c.first_seen), datetime.fromisoformat(c.last_seen))
            for c in self.captures
            if c.first_seen and c.last_seen
        ]

    def span(self) -> tuple[datetime | None, datetime | None]:
        """First and last packet over all captures."""
        iv = self.intervals()
        if not iv:
            return None, None
        return min(a for a, _ in iv), max(b for _, b in iv)

    def span_seconds(self) -> float:
        first, last = self.span()
        return (last - first).total_seconds() if first and last else 0.0

    def coverage_seconds(self) -> float:
        """The time the captures cover: the length of the union of their intervals. A 6 s
        trace from 2011 beside a 60 s capture of today covers 66 s, not 15 years."""
        total = 0.0
        end: datetime | None = None
        for a, b in sorted(self.intervals()):
            if end is None or a > end:
                total += (b - a).total_seconds()
                end = b
            elif b > end:
                total += (b - end).total_seconds()
                end = b
        return total


def iso(ns: int | None) -> str | None:
    """Nanoseconds since the epoch -> ISO 8601 UTC with microseconds (None stays None)."""
    if ns is None:
        return None
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )
    return dt.isoformat().replace("+00:00", "Z")


def micros(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps of a finer unit as microseconds, floored, the time zone kept: what every
    output writes (a cast refuses to drop the nanoseconds of a pcapng or pcap-ns capture,
    and Python's datetime has no nanoseconds)."""
    typ = column.type
    if not pa.types.is_timestamp(typ) or typ.unit in ("s", "ms", "us"):
        return column
    per_us = {"ns": 1000}[typ.unit]
    out = pa.timestamp("us", tz=typ.tz)
    chunks = []
    for c in column.cast(pa.int64()).chunks:
        us = np.asarray(c.fill_null(0).to_numpy()) // per_us
        mask = c.is_null().to_numpy(zero_copy_only=False) if c.null_count else None
        chunks.append(pa.array(us, pa.int64(), mask=mask).cast(out))
    return pa.chunked_array(chunks, out)


def _in_micros(typ: pa.DataType) -> pa.DataType:
    """``typ`` with every nanosecond timestamp in it (lists, structs, maps) in µs."""
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", tz=typ.tz) if typ.unit == "ns" else typ
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        field = typ.value_field.with_type(_in_micros(typ.value_type))
        return pa.list_(field) if pa.types.is_list(typ) else pa.large_list(field)
    if pa.types.is_struct(typ):
        return pa.struct([f.with_type(_in_micros(f.type)) for f in typ])
    if pa.types.is_map(typ):
        return pa.map_(_in_micros(typ.key_type), _in_micros(typ.item_type))
    return typ


def with_micros(table: pa.Table) -> pa.Table:
    """``table`` with its nanosecond timestamps in microseconds, for Python's datetime:
    columns floored (:func:`micros`), timestamps nested in lists or structs (a query's
    ``list(first_seen)``) cut by a cast."""
    for i, f in enumerate(table.schema):
        target = _in_micros(f.type)
        if target == f.type:
            continue
        if pa.types.is_timestamp(f.type):
            column = micros(table.column(i))
        else:
            column = table.column(i).cast(target, safe=False)
        table = table.set_column(i, f.name, column)
    return table


def iso_column(ns: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """:func:`iso` of a column of nanosecond timestamps, the same texts, formatted by
    numpy rather than a datetime object each (a flow table has two such columns a row)."""
    if ns.null_count:
        return [iso(v) for v in ns.cast(pa.int64()).to_pylist()]
    us = np.asarray(ns.cast(pa.int64()).to_numpy(zero_copy_only=False)) // 1000
    texts = np.datetime_as_string(us.astype("datetime64[us]"), unit="us").tolist()
    # isoformat() leaves out a zero fraction
    return [t[:-7] + "Z" if t.endswith(".000000") else t + "Z" for t in texts]


def capture_record(info: Any, mtime: float | None = None, **details: Any) -> CaptureRecord:
    """A reader's CaptureInfo -> the JSON contract's capture object, with what reading it
    did not audit (``capture_warnings``; ``mtime``: the file's, for "still being written")
    and the reading's own details (``duplicates_dropped``, ``selected``)."""
    d: dict[str, Any] = (
        asdict(info) if is_dataclass(info) and not isinstance(info, type) else dict(info)
    )
    for key in ("first_seen", "last_seen"):
        v = d.get(key)
        if isinstance(v, int):
            d[key] = iso(v)
    warnings, complete = capture_warnings(info, mtime)
    d.update(warnings=warnings, complete=complete, **details)
    return CaptureRecord.from_json(d)


def failed_capture(
    path: str, exc: CaptureError | None, duplicate_of: str | None = None, same: str = "a copy"
) -> CaptureRecord:
    """The capture object of a file that was not read: same keys, nothing counted. A
    duplicate (``duplicate_of``) is complete: its content was read under the other name."""
    return CaptureRecord(
        path=path,
        warnings=(_duplicate_warning(duplicate_of, same),) if duplicate_of else (),
        error=exc.one_line() if exc else None,
        duplicate_of=duplicate_of,
        complete=exc is None,
        details={"compressed": False},
    )


def _duplicate_warning(first: str, same: str) -> str:
    if same == "given twice":
        return f"given twice (first as {first}): read once"
    return f"same content as {first} ({same}): read once"


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def capture_warnings(
    info: CaptureInfo, mtime: float | None, now: float | None = None
) -> tuple[list[str], bool]:
    """What reading ``info``'s capture did not audit, one line each, and whether it is
    complete. The reader's own warnings follow (the first 20)."""
    found = list(info.warnings)
    complete = not info.truncated
    if info.truncated and info.ends_early and mtime is not None:
        age = (time.time() if now is None else now) - mtime
        if age < STILL_WRITING_S:
            cut = next(
                (i for i, w in enumerate(found) if "ends inside" in w or "ends early" in w), None
            )
            head = f"still being written (modified {max(age, 0):.0f} s ago)"
            if cut is None:
                found.insert(0, head)
            else:
                found[cut] = f"{head}: {found[cut]}; audit it again once it is closed"
    ahead: list[str] = []
    for lt, n in sorted(info.unsupported_linktypes.items()):
        name = linktype_name(lt)
        label = f"{name} ({lt})" if name != lt else str(lt)
        ahead.append(f"link type {label} is not supported: {_count(n, 'packet')} skipped")
        complete = False
    errors = {k: info.decode_errors[k] for k in DECODE_ERRORS if info.decode_errors.get(k)}
    n_err = sum(errors.values())
    if info.packets and n_err > DECODE_ERROR_SHARE * info.packets:
        detail = ", ".join(f"{k} {v:,}" for k, v in errors.items())
        ahead.append(
            f"{n_err:,} of {_count(info.packets, 'packet')} ({100 * n_err / info.packets:.1f} %) "
            f"could not be decoded ({detail}): their flows may be missing"
        )
        complete = False
    if info.decode_errors.get("bad_record"):
        complete = False
    lost = info.tunnel_fragments_lost
    if lost:
        ahead.append(
            f"{_count(lost, 'fragment')} of tunnel packets whose outer IP header was "
            "fragmented could not be reassembled (a fragment missing, not complete 30 s "
            "after the first, or more than 64 in progress): their packets are in no flow"
        )
        if lost > DECODE_ERROR_SHARE * info.packets:
            complete = False
    if info.drops:
        ahead.append(
            f"the capture interface dropped {_count(info.drops, 'packet')} "
            "(pcapng statistics): they are not in the capture"
        )
        complete = False
    return ahead + found, complete


def prefetched(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``items`` in a worker thread, up to ``depth`` items ahead of the caller.

    The capture reader spends its time in C without the GIL (``_fast.scan``), and so does
    the flow table (``FlowTable.add``): with the reader in its own thread the two overlap
    on two cores. An exception in the worker is raised here, in the caller's thread; a
    caller that stops early stops the worker.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
        except BaseException as exc:  # handed to the caller, who raises it
            put(("error", exc))
        else:
            put(("end", None))

    worker = threading.Thread(target=work, name="pcap-audit-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()


def default_jobs() -> int:
    """The machine's cores (those this process may run on)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def read_traffic(
    paths: Iterable[str | os.PathLike[str]],
    progress: Callable[[Reading], None] | None = None,
    dedup: float | None = None,
    jobs: int = 1,
    select: PacketFilter | None = None,
    flow_limit: int | None = FLOW_LIMIT,
) -> Traffic:
    """Read every capture named by ``paths`` (files, directories, ``-``) into one flow
    table; whatever was not read, or not whole, is said in ``notes`` and the captures'
    ``error``/``warnings``. ``dedup``: drop SPAN duplicates within this many seconds
    (:mod:`auditor.capture.dedup`). ``jobs``: captures and parts of large pcap files
    decoded at once (:func:`ordered_batches`); the result is the same for any number. With
    ``select`` (the --since/--until/--host/--port/--filter options), only the packets it
    selects make flows; each capture record then says how many (``selected``).
    ``flow_limit``: live flows held before the least recently seen are spilled to disk
    (:mod:`auditor.flows.spill`; None: no bound); the flow table is the same for any limit."""
    return read_found(expand(paths), progress, dedup, jobs, select=select, flow_limit=flow_limit)


class _Part:
    """One reader decoded in a worker thread, its batches queued (at most ``depth``)."""

    def __init__(self, reader: PacketReader, depth: int = 2) -> None:
        self.reader = reader
        self.q: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.work, name="pcap-audit-decode", daemon=True)
        self.thread.start()

    def put(self, item: tuple[str, Any]) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work(self) -> None:
        try:
            for batch in self.reader:
                if not self.put(("item", batch)):
                    return
        except BaseException as exc:  # handed to the consumer
            self.put(("error", exc))
        else:
            self.put(("end", None))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def ordered_batches(
    readers: list[PacketReader], jobs: int
) -> Generator[tuple[int, pa.RecordBatch | BaseException | None], None, None]:
    """``(i, batch)`` for the batches of ``readers[0]``, then ``readers[1]``, ...: in file
    order, whatever order they were decoded in. Up to ``jobs`` readers are decoded at once,
    each in its own thread (the scanner releases the GIL), each at most 2 batches ahead of
    the consumer; ``(i, None)`` ends reader i, ``(i, exception)`` ends it on an error. The
    consumer stops a reader early by asking for the next one (see ``skip``)."""
    parts: dict[int, _Part] = {}
    try:
        for i in range(len(readers)):
            for j in range(i, min(i + jobs, len(readers))):
                if j not in parts:
                    parts[j] = _Part(readers[j])
            part = parts[i]
            while True:
                kind, value = part.q.get()
                if kind == "item":
                    yield i, value
                elif kind == "error":
                    yield i, value
                    break
                else:
                    yield i, None
                    break
            parts.pop(i).close()
    finally:
        for part in parts.values():
            part.close()


def _plan(f: Found, jobs: int, split_bytes: int) -> list[PacketReader]:
    """The readers of one capture: its parts when it is a large uncompressed pcap file."""
    reader = read_packets(f.path)
    info = reader.info
    if jobs < 2 or info.format not in ("pcap", "pcap-ns") or info.compressed:
        return [reader]
    if reader.source.stream or reader.source.size is None or reader.source.size < 2 * split_bytes:
        return [reader]
    spans = split_pcap(f.path, jobs, split_bytes)
    if len(spans) < 2:
        return [reader]
    return [PacketReader(f.path, span=span) for span in spans]


def _renumbered(batch: pa.RecordBatch, before: int) -> pa.RecordBatch:
    """A part's batch with frame numbers counted from the start of the file."""
    if not before:
        return batch
    i = batch.schema.get_field_index("frame")
    frames = batch.column(i).to_numpy() + np.uint64(before)
    return batch.set_column(i, "frame", pa.array(frames, pa.uint64()))


def read_found(
    found: Iterable[Found],
    progress: Callable[[Reading], None] | None = None,
    dedup: float | None = None,
    jobs: int = 1,
    split_bytes: int = MIN_PART,
    select: PacketFilter | None = None,
    flow_limit: int | None = FLOW_LIMIT,
) -> Traffic:
    """:func:`read_traffic` of inputs already expanded (one ``--each`` group).

    ``progress`` is called before each capture and after each batch of it. With ``jobs``
    above 1, captures (and parts of pcap files of at least twice ``split_bytes``) are
    decoded ahead in parallel by :func:`ordered_batches` and fed to the one flow table in
    file order: the same batches' rows in the same order as with one job. With a packet
    filter (``select``), captures are read with one decoder: libpcap's ``--filter`` reads
    each file beside ours, in step."""
    if jobs > 1 and (select is None or not select.active):
        return _read_parallel(list(found), progress, dedup, jobs, split_bytes, flow_limit)
    traffic = Traffic()
    builder = FlowBuilder(limit=flow_limit)
    found = list(found)
    count = sum(1 for f in found if f.readable)
    selector = select.selector() if select is not None and select.active else None
    dedup_filter = None
    if dedup is not None:
        from auditor.capture.dedup import Deduplicator

        dedup_filter = Deduplicator(dedup)
        traffic.duplicates_dropped = 0
    index = 0
    logs: list[pa.Table] = []  # flow tables of directories of Zeek logs
    read: list[str] = []  # capture index -> path (the flows' capture/captures)
    for f in found:
        name = display_name(f.path)
        if said_unread(f, traffic):
            continue
        read.append(f.path)
        if is_zeek_dir(f.path):  # Zeek logs: flows of their own, appended at the end
            _read_zeek(f.path, index, traffic, logs)
            index += 1
            continue
        try:
            reader = read_packets(f.path)
            packets = 0
            dropped_before = dedup_filter.dropped if dedup_filter else 0
            if progress:
                progress(Reading(name, index, count, 0, reader.source.size, 0))
            source = reader if selector is None else selector.batches(f.path, reader)
            for batch in prefetched(source):
                if progress:
                    packets += batch.num_rows
                if dedup_filter is not None:
                    batch = dedup_filter.filter(batch)
                builder.add_batch(batch, index)
                if progress:
                    progress(Reading(name, index, count, *reader.position(), packets))
        except CaptureError as exc:
            traffic.errors.append(exc)
            traffic.captures.append(failed_capture(f.path, exc))
            traffic.notes.append(exc.one_line())
            index += 1
            continue
        details: dict[str, int] = {}
        if dedup_filter is not None:
            details["duplicates_dropped"] = dedup_filter.dropped - dropped_before
            traffic.duplicates_dropped = dedup_filter.dropped
        if selector is not None:
            details["selected"] = selector.selected
        record = capture_record(reader.info, reader.source.mtime, **details)
        traffic.captures.append(record)
        traffic.notes.extend(f"{name}: {w}" for w in record.warnings)
        index += 1
    traffic.spilled = builder.spill is not None
    traffic.flows = _finished(builder, logs, read)
    return traffic


def said_unread(f: Found, traffic: Traffic) -> bool:
    """An input that is not read (skipped, a duplicate, or not readable): its record and one
    note in ``traffic``; True when ``f`` is such an input."""
    name = display_name(f.path)
    if f.skipped is not None:
        traffic.skipped.append({"path": f.path, "reason": f.skipped})
        traffic.notes.append(f"{name}: skipped, {f.skipped}")
    elif f.duplicate_of is not None:
        record = failed_capture(f.path, None, display_name(f.duplicate_of), f.same or "")
        traffic.captures.append(record)
        traffic.notes.append(f"{name}: {record.warnings[0]}")
    elif f.error is not None:
        traffic.errors.append(f.error)
        traffic.captures.append(failed_capture(f.path, f.error))
        traffic.notes.append(f.error.one_line())
    else:
        return False
    return True


def _read_zeek(path: str, index: int, traffic: Traffic, logs: list[pa.Table]) -> None:
    """A directory of Zeek logs: its capture record into ``traffic``, its flows into ``logs``
    (appended to the flow table at the end)."""
    try:
        record, table = read_zeek(path, index, flow_schema())
    except CaptureError as exc:
        traffic.errors.append(exc)
        traffic.captures.append(failed_capture(path, exc))
        traffic.notes.append(exc.one_line())
        return
    traffic.captures.append(record)
    traffic.notes.extend(f"{display_name(path)}: {w}" for w in record.warnings)
    logs.append(table)


def _read_parallel(
    found: list[Found],
    progress: Callable[[Reading], None] | None,
    dedup: float | None,
    jobs: int,
    split_bytes: int,
    flow_limit: int | None = FLOW_LIMIT,
) -> Traffic:
    """read_found with ``jobs`` decoders: every capture is opened (identified) first, its
    readers planned, then all readers' batches are consumed in order."""
    traffic = Traffic()
    builder = FlowBuilder(limit=flow_limit)
    count = sum(1 for f in found if f.readable)
    dedup_filter = None
    if dedup is not None:
        from auditor.capture.dedup import Deduplicator

        dedup_filter = Deduplicator(dedup)
        traffic.duplicates_dropped = 0
    plans: list[list[PacketReader] | CaptureError | None] = []
    readers: list[PacketReader] = []
    for f in found:
        if not f.readable or is_zeek_dir(f.path):
            plans.append(None)
            continue
        try:
            mine = _plan(f, jobs, split_bytes)
        except CaptureError as exc:
            plans.append(exc)
            continue
        plans.append(mine)
        readers += mine
    stream = ordered_batches(readers, jobs)
    index = 0
    logs: list[pa.Table] = []  # flow tables of directories of Zeek logs
    read: list[str] = []  # capture index -> path (the flows' capture/captures)
    try:
        for f, plan in zip(found, plans, strict=True):
            name = display_name(f.path)
            if said_unread(f, traffic):
                continue
            read.append(f.path)  # it gets a capture index (read, or failed while planned)
            if plan is None:  # a directory of Zeek logs
                _read_zeek(f.path, index, traffic, logs)
                index += 1
                continue
            if isinstance(plan, CaptureError):
                traffic.errors.append(plan)
                traffic.captures.append(failed_capture(f.path, plan))
                traffic.notes.append(plan.one_line())
                index += 1
                continue
            assert isinstance(plan, list)
            dropped_before = dedup_filter.dropped if dedup_filter else 0
            if progress:
                progress(Reading(name, index, count, 0, plan[0].source.size, 0))
            failed: CaptureError | None = None
            infos: list[CaptureInfo] = []
            packets = 0
            for k, reader in enumerate(plan):
                stopped = failed is not None or any(i.truncated for i in infos)
                for _, item in _take(stream, len(readers)):
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        if not isinstance(item, CaptureError):
                            raise item
                        failed = failed or item
                        break
                    if stopped:  # an earlier part stopped: as one reader, nothing more
                        continue
                    batch = _renumbered(item, sum(i.packets for i in infos)) if k else item
                    packets += batch.num_rows
                    if dedup_filter is not None:
                        batch = dedup_filter.filter(batch)
                    builder.add_batch(batch, index)
                    if progress:
                        progress(Reading(name, index, count, *reader.position(), packets))
                if not stopped:
                    infos.append(reader.info)
            if failed is not None:
                traffic.errors.append(failed)
                traffic.captures.append(failed_capture(f.path, failed))
                traffic.notes.append(failed.one_line())
                index += 1
                continue
            info = merge_infos(infos) if len(infos) > 1 else infos[0]
            details: dict[str, int] = {}
            if dedup_filter is not None:
                details["duplicates_dropped"] = dedup_filter.dropped - dropped_before
                traffic.duplicates_dropped = dedup_filter.dropped
            record = capture_record(info, plan[0].source.mtime, **details)
            traffic.captures.append(record)
            traffic.notes.extend(f"{name}: {w}" for w in record.warnings)
            index += 1
    finally:
        stream.close()
    traffic.spilled = builder.spill is not None
    traffic.flows = _finished(builder, logs, read)
    return traffic


def _take(
    stream: Iterator[tuple[int, pa.RecordBatch | BaseException | None]], _n: int
) -> Iterator[tuple[int, pa.RecordBatch | BaseException | None]]:
    """The items of the next reader of ``stream``, up to and including its end."""
    for item in stream:
        yield item
        if item[1] is None or isinstance(item[1], BaseException):
            return


def _finished(builder: FlowBuilder, logs: list[pa.Table], paths: list[str]) -> pa.Table:
    """The flow table (:func:`placed`, with the Zeek logs' flows); when the read spilled
    (more flows than ``--flow-limit``), on disk (:mod:`auditor.flows.ondisk`)."""
    if builder.spill is None:
        return placed(_with_logs(builder.table(), logs), paths)
    from auditor.flows.ondisk import on_disk

    return on_disk(lambda: _with_logs(builder.table(), logs), lambda t: placed(t, paths))


def _with_logs(flows: pa.Table, logs: list[pa.Table]) -> pa.Table:
    """The flow table with the flows of directories of Zeek logs after the captures'."""
    return pa.concat_tables([flows, *logs]) if logs else flows


def placed(flows: pa.Table, paths: list[str]) -> pa.Table:
    """Name each flow's files: ``capture`` (the path of its first packet's file) and
    ``captures`` (every file from the first to the last that holds its packets, in reading
    order: a flow across a file rotation names each), beside ``first_frame`` (in
    ``capture``) and ``last_frame`` (in the last of ``captures``)."""
    first = flows.column("capture").to_numpy().astype(np.int64)
    last = flows.column("last_capture").to_numpy().astype(np.int64)
    names = np.array(paths or [""], dtype=object)
    # the lists built from arrays (no Python list per flow: millions of flows)
    count = last - first + 1
    offsets = np.zeros(len(first) + 1, np.int32)
    np.cumsum(count, out=offsets[1:])
    at_file = np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1] - first, count)
    spans = pa.ListArray.from_arrays(pa.array(offsets), pa.array(names[at_file], pa.string()))
    at = flows.schema.get_field_index("capture")
    flows = flows.set_column(at, "capture", pa.array(names[first], pa.string()))
    flows = flows.drop_columns(["last_capture"])
    return flows.add_column(at + 1, "captures", spans)


#: above this many flows, flow_places() picks the flows asked for with pyarrow.compute
#: (whose import, ~45 ms, a small capture need not pay)
_PICK_ROWS = 50_000


def flow_places(flows: pa.Table, ids: Iterable[str] | None = None) -> dict[str, str]:
    """Each flow's packets as a reader finds them: ``PATH frames A-B`` (``PATH frame A`` for
    one packet; ``PATH1 frame A - PATH2 frame B`` across files); of the flows ``ids`` only
    when given (and maybe a few more)."""
    cols = flows.select(["flow_id", "capture", "captures", "first_frame", "last_frame"])
    if ids is not None and flows.num_rows > _PICK_ROWS:
        import pyarrow.compute as pc

        wanted = pa.array(sorted(set(ids)), pa.string())
        cols = cols.filter(pc.is_in(cols.column("flow_id"), value_set=wanted))
    out = {}
    for fid, cap, caps, a, b in zip(*(c.to_pylist() for c in cols.columns), strict=True):
        if a is None:  # a flow of Zeek logs: they name no frames
            continue
        last = caps[-1] if caps else cap
        if last != cap:
            out[fid] = f"{cap} frame {a} - {last} frame {b}"
        else:
            out[fid] = f"{cap} frame {a}" if a == b else f"{cap} frames {a}-{b}"
    return out
