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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from auditor.capture import CaptureInfo, linktype_name, read_packets
from auditor.capture.inputs import display_name
from auditor.errors import CaptureError
from auditor.flows import FlowBuilder
from auditor.sources import Found, expand

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

    captures: list[dict[str, Any]] = field(default_factory=list)
    flows: pa.Table | None = None
    errors: list[CaptureError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: SPAN duplicates dropped (``dedup``); None when duplicates were not looked for
    duplicates_dropped: int | None = None
    #: the path of each capture read, by the flow table's ``capture`` index
    inputs: list[str] = field(default_factory=list)

    @property
    def packets(self) -> int:
        return sum(int(c.get("packets") or 0) for c in self.captures)

    @property
    def complete(self) -> bool:
        """Every capture given was read whole (duplicates count as read)."""
        return all(c.get("complete", c.get("error") is None) for c in self.captures)

    def intervals(self) -> list[tuple[datetime, datetime]]:
        """The time interval of each capture that has packets."""
        return [
            (datetime.fromisoformat(c["first_seen"]), datetime.fromisoformat(c["last_seen"]))
            for c in self.captures
            if c.get("first_seen") and c.get("last_seen")
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


def capture_record(info: Any) -> dict[str, Any]:
    """A reader's CaptureInfo -> the JSON contract's capture object."""
    d: dict[str, Any] = (
        asdict(info) if is_dataclass(info) and not isinstance(info, type) else dict(info)
    )
    for key in ("first_seen", "last_seen"):
        v = d.get(key)
        if isinstance(v, int):
            d[key] = iso(v)
    d.setdefault("error", None)
    d.setdefault("duplicate_of", None)
    d.setdefault("complete", d["error"] is None)
    return d


def failed_capture(
    path: str, exc: CaptureError | None, duplicate_of: str | None = None, same: str = "a copy"
) -> dict[str, Any]:
    """The capture object of a file that was not read: same keys, nothing counted. A
    duplicate (``duplicate_of``) is complete: its content was read under the other name."""
    return {
        "path": path,
        "format": None,
        "compressed": False,
        "linktypes": [],
        "packets": 0,
        "bytes": 0,
        "first_seen": None,
        "last_seen": None,
        "truncated": False,
        "decode_errors": {},
        "warnings": [_duplicate_warning(duplicate_of, same)] if duplicate_of else [],
        "error": exc.one_line() if exc else None,
        "duplicate_of": duplicate_of,
        "complete": exc is None,
    }


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


def read_traffic(
    paths: Iterable[str | os.PathLike[str]],
    progress: Callable[[Reading], None] | None = None,
    dedup: float | None = None,
) -> Traffic:
    """Read every capture named by ``paths`` (files, directories, ``-``) into one flow
    table; whatever was not read, or not whole, is said in ``notes`` and the captures'
    ``error``/``warnings``. ``dedup``: drop SPAN duplicates within this many seconds
    (:mod:`auditor.capture.dedup`)."""
    return read_found(expand(paths), progress, dedup)


def read_found(
    found: Iterable[Found],
    progress: Callable[[Reading], None] | None = None,
    dedup: float | None = None,
) -> Traffic:
    """:func:`read_traffic` of inputs already expanded (one ``--each`` group).

    ``progress`` is called before each capture and after each batch of it."""
    traffic = Traffic()
    builder = FlowBuilder()
    found = list(found)
    count = sum(1 for f in found if f.readable)
    dedup_filter = None
    if dedup is not None:
        from auditor.capture.dedup import Deduplicator

        dedup_filter = Deduplicator(dedup)
        traffic.duplicates_dropped = 0
    index = 0
    for f in found:
        name = display_name(f.path)
        if f.skipped is not None:
            traffic.skipped.append({"path": f.path, "reason": f.skipped})
            traffic.notes.append(f"{name}: skipped, {f.skipped}")
            continue
        if f.duplicate_of is not None:
            record = failed_capture(f.path, None, display_name(f.duplicate_of), f.same or "")
            traffic.captures.append(record)
            traffic.notes.append(f"{name}: {record['warnings'][0]}")
            continue
        if f.error is not None:
            traffic.errors.append(f.error)
            traffic.captures.append(failed_capture(f.path, f.error))
            traffic.notes.append(f.error.one_line())
            continue
        traffic.inputs.append(f.path)
        try:
            reader = read_packets(f.path)
            packets = 0
            dropped_before = dedup_filter.dropped if dedup_filter else 0
            if progress:
                progress(Reading(name, index, count, 0, reader.source.size, 0))
            for batch in prefetched(reader):
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
        record = capture_record(reader.info)
        if dedup_filter is not None:
            record["duplicates_dropped"] = dedup_filter.dropped - dropped_before
            traffic.duplicates_dropped = dedup_filter.dropped
        record["warnings"], record["complete"] = capture_warnings(reader.info, reader.source.mtime)
        traffic.captures.append(record)
        traffic.notes.extend(f"{name}: {w}" for w in record["warnings"])
        index += 1
    traffic.flows = builder.table()
    return traffic
