"""Several captures -> one traffic set: their metadata, their flows, and what failed.

A capture that cannot be read is recorded with its error and the others are still read:
one bad file never loses the results of the others. Directories are walked for capture
files (by content type suffix: .pcap, .pcapng, .cap, .dmp, and those .gz-compressed).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from auditor.capture import read_packets
from auditor.errors import CaptureError
from auditor.flows import FlowBuilder

if TYPE_CHECKING:
    from auditor.capture.select import PacketFilter

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp", ".pcap.gz", ".pcapng.gz", ".cap.gz")


@dataclass
class Traffic:
    """The result of reading captures: per-capture metadata, the flow table, errors."""

    captures: list[dict[str, Any]] = field(default_factory=list)
    flows: pa.Table | None = None
    errors: list[CaptureError] = field(default_factory=list)

    @property
    def packets(self) -> int:
        return sum(int(c.get("packets") or 0) for c in self.captures)

    def span(self) -> tuple[datetime | None, datetime | None]:
        firsts = [c["first_seen"] for c in self.captures if c.get("first_seen")]
        lasts = [c["last_seen"] for c in self.captures if c.get("last_seen")]
        if not firsts:
            return None, None
        return (
            datetime.fromisoformat(min(firsts)),
            datetime.fromisoformat(max(lasts)),
        )


def expand_paths(
    paths: Iterable[str | os.PathLike[str]],
) -> Iterator[tuple[str, CaptureError | None]]:
    """Yield capture file paths; directories are walked (sorted) for capture files."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(CAPTURE_SUFFIXES)
            )
            if not found:
                yield (
                    str(p),
                    CaptureError(p, "directory holds no capture files (.pcap, .pcapng, .cap, .gz)"),
                )
            for q in found:
                yield str(q), None
        else:
            yield str(p), None


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
    return d


def failed_capture(path: str, exc: CaptureError) -> dict[str, Any]:
    """The capture object of a file that could not be read: same keys, nothing counted."""
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
        "error": exc.one_line(),
    }


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
    progress: Callable[[str], None] | None = None,
    select: PacketFilter | None = None,
) -> Traffic:
    """Read every capture into one flow table; unreadable ones are reported in ``errors``.

    With ``select`` (the --since/--until/--host/--port/--filter options), only the packets
    it selects make flows; each capture record then says how many (``selected``)."""
    traffic = Traffic()
    builder = FlowBuilder()
    selector = select.selector() if select is not None and select.active else None
    index = 0
    read: list[str] = []  # capture index -> path
    for path, err in expand_paths(paths):
        if err is not None:
            traffic.errors.append(err)
            traffic.captures.append(failed_capture(path, err))
            continue
        read.append(path)
        if progress:
            progress(path)
        try:
            reader = read_packets(path)
            source = reader if selector is None else selector.batches(path, reader)
            for batch in prefetched(source):
                builder.add_batch(batch, index)
        except CaptureError as exc:
            traffic.errors.append(exc)
            traffic.captures.append(failed_capture(path, exc))
            index += 1
            continue
        record = capture_record(reader.info)
        if selector is not None:
            record["selected"] = selector.selected
        traffic.captures.append(record)
        index += 1
    traffic.flows = placed(builder.table(), read)
    return traffic


def placed(flows: pa.Table, paths: list[str]) -> pa.Table:
    """Name each flow's files: ``capture`` (the path of its first packet's file) and
    ``captures`` (every file from the first to the last that holds its packets, in reading
    order: a flow across a file rotation names each), beside ``first_frame`` (in
    ``capture``) and ``last_frame`` (in the last of ``captures``)."""
    import numpy as np

    first = flows.column("capture").to_numpy()
    last = flows.column("last_capture").to_numpy()
    names = np.array(paths or [""], dtype=object)
    spans: list[list[str]] = [
        paths[a : b + 1] for a, b in zip(first.tolist(), last.tolist(), strict=True)
    ]
    at = flows.schema.get_field_index("capture")
    flows = flows.set_column(at, "capture", pa.array(names[first], pa.string()))
    flows = flows.drop_columns(["last_capture"])
    return flows.add_column(at + 1, "captures", pa.array(spans, pa.list_(pa.string())))


def flow_places(flows: pa.Table) -> dict[str, str]:
    """Each flow's packets as a reader finds them: ``PATH frames A-B`` (``PATH frame A`` for
    one packet; ``PATH1 frame A - PATH2 frame B`` across files)."""
    cols = flows.select(["flow_id", "capture", "captures", "first_frame", "last_frame"])
    out = {}
    for fid, cap, caps, a, b in zip(*(c.to_pylist() for c in cols.columns), strict=True):
        last = caps[-1] if caps else cap
        if last != cap:
            out[fid] = f"{cap} frame {a} - {last} frame {b}"
        else:
            out[fid] = f"{cap} frame {a}" if a == b else f"{cap} frames {a}-{b}"
    return out
