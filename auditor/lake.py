"""``--parquet-dir DIR``: the flow table and the findings as Hive-partitioned Parquet
datasets, for a data lake that keeps every night's results.

    DIR/flows/date=2025-11-22/capture=span.pcap1/<run>-0.parquet
    DIR/findings/date=2025-11-22/capture=span.pcap/<run>-0.parquet

``date`` is the UTC day of the flow's (the finding's) first packet; ``capture`` is the
file name of the capture holding the flow's first packet (for a finding: of its earliest
flow; none, Hive's default partition, for a finding without flows: a missing flow or a
scan summary). Each run adds files named by a run id, so nights accumulate in one tree.
Timestamps are microseconds (Spark and Trino do not read Parquet's nanosecond type);
nested evidence is a JSON string. DuckDB, Spark and Trino read the trees as they are.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from auditor.traffic import Traffic, micros

if TYPE_CHECKING:
    from auditor.findings.model import Finding

_TS = pa.timestamp("us", tz="UTC")


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None


@dataclass(frozen=True)
class Partitions:
    """Rows of a dataset by Hive partition: per key (``date``, ``capture``) a code a row
    (int64, numpy) and the value of each code (None: Hive's default partition)."""

    codes: tuple[np.ndarray, ...]
    values: tuple[list[str | None], ...]


def _coded(column: pa.ChunkedArray, name: Any = None) -> tuple[np.ndarray, list[str | None]]:
    """A string column as codes and their values (``name`` maps each distinct value)."""
    encoded = column.dictionary_encode().unify_dictionaries()
    values = encoded.chunks[0].dictionary.to_pylist() if encoded.num_chunks else []
    missing = len(values)
    codes = np.concatenate(
        [np.zeros(0, np.int64)]
        + [c.indices.fill_null(missing).to_numpy().astype(np.int64) for c in encoded.chunks]
    )
    if name is None:
        return codes, [*values, None]
    # distinct values can map to one (two captures named span.pcap in two directories):
    # one code each name, or two partitions would write the same file
    named = [name(v) for v in values] + [None]
    unique = list(dict.fromkeys(named))
    remap = np.array([unique.index(n) for n in named], np.int64)
    return remap[codes], unique


def _flow_partitions(flows: pa.Table) -> Partitions:
    """The flows' partitions: the UTC day of the first packet (floored before 1970, as a
    date32 cast), the file name of the first capture. Codes in numpy, a few values: no
    Python object a flow."""
    ns = flows.column("first_seen").cast(pa.int64())
    day = (
        np.concatenate([np.zeros(0, np.int64)] + [c.fill_null(0).to_numpy() for c in ns.chunks])
        // 86_400_000_000_000
    )
    days, day_code = np.unique(day, return_inverse=True)
    values = [str(d) for d in days.astype("datetime64[D]")]
    if ns.null_count:  # no first packet (never from a capture): the default partition
        nulls = np.concatenate([c.is_null().to_numpy(zero_copy_only=False) for c in ns.chunks])
        day_code = np.where(nulls, len(values), day_code)
    capture = _coded(flows.column("capture"), lambda p: os.path.basename(p) if p else None)
    from auditor.flows import ondisk

    ondisk.release()  # a flow table on disk: the two columns' pages go back
    return Partitions((day_code.astype(np.int64), capture[0]), ([*values, None], capture[1]))


def _flow_slice(part: pa.Table) -> pa.Table:
    """A slice of the public flows as the dataset has it: timestamps in µs."""
    for name in ("first_seen", "last_seen"):
        i = part.schema.get_field_index(name)
        part = part.set_column(i, name, micros(part.column(name)).cast(_TS))
    return part


def _captures_of(flows: pa.Table, flow_ids: set[str]) -> dict[str, str | None]:
    """flow id -> the file name of its first capture, for ``flow_ids`` only (the flows the
    findings list, not the table's millions)."""
    if not flow_ids:
        return {}
    import pyarrow.compute as pc

    rows = flows.select(["flow_id", "capture"]).filter(
        pc.is_in(flows.column("flow_id"), value_set=pa.array(sorted(flow_ids), pa.string()))
    )
    paths = rows.column("capture").to_pylist()
    names = [os.path.basename(p) if p else None for p in paths]
    return dict(zip(rows.column("flow_id").to_pylist(), names, strict=True))


def finding_dataset(findings: Sequence[Finding], traffic: Traffic, ruleset: str) -> pa.Table:
    """One row per finding: its scalar fields, lists of ids, evidence and source as JSON."""
    assert traffic.flows is not None
    capture_of = _captures_of(traffic.flows, {i for f in findings for i in f.flow_ids})
    rows = []
    for f in findings:
        first = _parse(f.first_seen)
        caps = [capture_of.get(i) for i in f.flow_ids]
        rows.append(
            {
                **{
                    k: getattr(f, k)
                    for k in ("id", "kind", "severity", "src_ip", "dst_ip", "dst_port", "proto")
                },
                **{k: getattr(f, k) for k in ("src_role", "dst_role", "rule_id", "message")},
                "ruleset": ruleset,
                "first_seen": first,
                "last_seen": _parse(f.last_seen),
                "packets": f.packets,
                "bytes": f.bytes,
                "flow_ids": list(f.flow_ids),
                "community_ids": list(f.community_ids),
                "evidence": json.dumps(dict(f.evidence), ensure_ascii=False),
                "source": json.dumps(dict(f.source or {}), ensure_ascii=False),
                "date": first.strftime("%Y-%m-%d") if first else None,
                "capture": next((c for c in caps if c is not None), None),
            }
        )
    schema = pa.schema(
        [
            *[(k, pa.string()) for k in ("id", "kind", "severity", "src_ip", "dst_ip")],
            ("dst_port", pa.int32()),
            *[(k, pa.string()) for k in ("proto", "src_role", "dst_role", "rule_id")],
            ("message", pa.string()),
            ("ruleset", pa.string()),
            ("first_seen", _TS),
            ("last_seen", _TS),
            ("packets", pa.int64()),
            ("bytes", pa.int64()),
            ("flow_ids", pa.list_(pa.string())),
            ("community_ids", pa.list_(pa.string())),
            ("evidence", pa.string()),
            ("source", pa.string()),
            ("date", pa.string()),
            ("capture", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


#: rows written at a time (and a row group's most): a flow table of millions of rows is
#: written a slice at a time into each partition's file
WRITE_ROWS = 65536


def _write(
    data: pa.Table,
    parts: Partitions,
    base: str,
    run: str,
    fix: Callable[[pa.Table], pa.Table] = lambda t: t,
) -> None:
    """``data`` (without its partition columns) into ``base`` as a Hive-partitioned
    dataset by ``date`` and ``capture``: one file ``<run>-0.parquet`` a partition, its
    directory named as pyarrow's dataset writer names it, each slice of rows made as the
    dataset has it by ``fix``. Partition by partition (rows sorted stably by partition,
    taken a slice at a time), not through ``pyarrow.dataset.write_dataset``, which held a
    copy of the whole table (+470 MB for 1 M flows)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from auditor.flows import ondisk

    keys = ("date", "capture")
    part = ds.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive")
    code = parts.codes[0] * len(parts.values[1]) + parts.codes[1]
    order = np.argsort(code, kind="stable")
    del code
    starts = np.flatnonzero(
        np.r_[True, (parts.codes[0][order][1:] != parts.codes[0][order][:-1])
              | (parts.codes[1][order][1:] != parts.codes[1][order][:-1])]
    )  # fmt: skip
    ends = np.r_[starts[1:], len(order)]
    schema = fix(data.slice(0, 0)).schema
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        first = int(order[a])
        expr = None
        for k, c, v in zip(keys, parts.codes, parts.values, strict=True):
            value = v[int(c[first])]
            term = ds.field(k).is_null() if value is None else ds.field(k) == value
            expr = term if expr is None else expr & term
        directory = os.path.join(base, part.format(expr)[0])
        os.makedirs(directory, exist_ok=True)
        with pq.ParquetWriter(os.path.join(directory, f"{run}-0.parquet"), schema) as w:
            for start, length, picked in _pieces(order[a:b]):
                rows = data.slice(start, length)
                rows = rows if picked is None else rows.take(picked)
                w.write_table(fix(rows), row_group_size=WRITE_ROWS)
                ondisk.release()  # a flow table on disk: its pages read so far go back


def _pieces(rows: np.ndarray) -> Iterator[tuple[int, int, pa.Array | None]]:
    """The ascending row numbers ``rows`` in pieces of at most WRITE_ROWS, each as a
    window of the table (start, length) and the rows to take from it (None: all of it):
    the window is the rows themselves where they are contiguous (a day of one capture
    file, the usual partition), else at most 4 x WRITE_ROWS rows around them. Never a take
    over the whole table: on a table of many chunks (one on disk) it joins every column's
    chunks first, 500 MB for 2 M flows."""
    lo, n = 0, len(rows)
    while lo < n:
        first = int(rows[lo])
        hi = min(n, lo + WRITE_ROWS, int(np.searchsorted(rows, first + 4 * WRITE_ROWS)))
        length = int(rows[hi - 1]) - first + 1
        yield first, length, None if length == hi - lo else pa.array(rows[lo:hi] - first)
        lo = hi


def write_lake(
    directory: str,
    traffic: Traffic,
    findings: Sequence[Finding] | None = None,
    ruleset: str | None = None,
    run: str | None = None,
) -> str:
    """Write ``DIR/flows`` (and ``DIR/findings`` when given) for one run; returns the run
    id that names the files written."""
    run = run or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    from auditor.flows import public_flows

    assert traffic.flows is not None
    if traffic.flows.num_rows:
        data = public_flows(traffic.flows).drop_columns(["capture"])
        parts = _flow_partitions(traffic.flows)
        _write(data, parts, os.path.join(directory, "flows"), run, _flow_slice)
    if findings:
        table = finding_dataset(findings, traffic, ruleset or "")
        coded = [_coded(table.column(k)) for k in ("date", "capture")]
        parts = Partitions(tuple(c for c, _ in coded), tuple(v for _, v in coded))
        _write(
            table.drop_columns(["date", "capture"]), parts, os.path.join(directory, "findings"), run
        )
    return run
