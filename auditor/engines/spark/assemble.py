"""The driver's side, with or without Spark: which files are read (the local engine's
:func:`auditor.sources.expand`), the splits to decode, and the traffic set built from what
the tasks returned, with the captures' records, warnings and notes as the local engine
writes them (:mod:`auditor.traffic`)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import pyarrow as pa

from auditor.capture.inputs import display_name
from auditor.engines.spark.merge import flow_table, fold, frame_offsets, mark_ftp_data
from auditor.engines.spark.segments import (
    SEGMENT_SCHEMA,
    decode_split,
    fragment_segments,
    merge_infos,
)
from auditor.engines.spark.splits import SPLIT_BYTES, Split, plan
from auditor.errors import AuditorError, CaptureError
from auditor.sources import Found
from auditor.sources.zeek import is_zeek_dir
from auditor.traffic import (
    Traffic,
    capture_record,
    failed_capture,
    placed,
    said_unread,
)

#: decode the splits and merge their segments: (each split's info, in the order given;
#: the flow table)
Runner = Callable[[list[Split]], tuple[list[dict[str, Any]], pa.Table]]


def run_local(splits: list[Split]) -> tuple[list[dict[str, Any]], pa.Table]:
    """Every split in this process, one after the other: the tests' reference for Spark."""
    results = [decode_split(s) for s in splits]
    infos = [info for _seg, info in results]
    segments = [seg for seg, _info in results]
    segments.append(fragment_segments(splits, infos))
    offsets = frame_offsets(splits, infos)
    return infos, sort_flows([flow_table(fold(pa.Table.from_batches(segments), offsets))])


def sort_flows(tables: list[pa.Table]) -> pa.Table:
    """Partial flow tables -> one, in the local engine's order (first packet, flow id),
    with the FTP data connections their flows announced marked."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return mark_ftp_data(flow_table(fold(SEGMENT_SCHEMA.empty_table())))
    table = pa.concat_tables(tables)
    return mark_ftp_data(table.sort_by([("first_seen", "ascending"), ("flow_id", "ascending")]))


def unsupported(paths: Iterable[str]) -> None:
    """Standard input and Zeek logs cannot be handed to executors: say so before anything
    is read."""
    for p in paths:
        if p in ("-", "/dev/stdin"):
            raise AuditorError(  # USAGE: nothing is read
                p, "standard input cannot be read by the Spark engine: write it to a file"
            )
        if is_zeek_dir(p):
            raise AuditorError(
                p, "Zeek logs cannot be read by the Spark engine: use --engine local"
            )


def read_found_split(
    found: list[Found],
    run: Runner = run_local,
    split_bytes: int = SPLIT_BYTES,
) -> Traffic:
    """The traffic set of ``found`` read split by split: the local engine's result."""
    traffic = Traffic()
    readable: list[tuple[str, int]] = []
    for f in found:
        if f.skipped is None and f.duplicate_of is None and f.error is None:
            readable.append((f.path, len(readable)))
    seed = secrets.randbits(64)  # one per run, secret as the reader's own
    splits = [replace(s, seed=seed) for s in plan(readable, split_bytes)]
    infos, flows = run(splits) if splits else ([], sort_flows([]))
    by_capture: dict[int, list[dict[str, Any]]] = {}
    for s, info in zip(splits, infos, strict=True):
        by_capture.setdefault(s.capture, []).append(info)
    index = 0
    read: list[str] = []  # capture index -> path (the flows' capture/captures)
    for f in found:
        name = display_name(f.path)
        if said_unread(f, traffic):
            continue
        infos = by_capture[index]
        index += 1
        read.append(f.path)
        bad = next((i["error"] for i in infos if "error" in i), None)
        if bad is not None:
            exc = CaptureError(*bad)
            traffic.errors.append(exc)
            traffic.captures.append(failed_capture(f.path, exc))
            traffic.notes.append(exc.one_line())
            continue
        whole = merge_infos(infos)
        record = capture_record(whole, infos[0].get("mtime"))
        traffic.captures.append(record)
        traffic.notes.extend(f"{name}: {w}" for w in record.warnings)
    traffic.flows = placed(flows, read)
    return traffic
