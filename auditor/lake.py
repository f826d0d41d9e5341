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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from auditor.traffic import Traffic

if TYPE_CHECKING:
    from auditor.findings.model import Finding

_TS = pa.timestamp("us", tz="UTC")


def _day(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d")


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None


def _basenames(flows: pa.Table) -> list[str | None]:
    """The file name of each flow's first capture (the ``capture`` column holds its path)."""
    return [os.path.basename(p) if p else None for p in flows.column("capture").to_pylist()]


def flow_dataset(traffic: Traffic) -> pa.Table:
    """The public flow table with ``date`` and ``capture`` (the file name, the partition;
    ``captures`` keeps the paths) columns, timestamps in µs."""
    from auditor.flows import public_flows

    assert traffic.flows is not None
    flows = traffic.flows
    first_ns = flows.column("first_seen").cast(pa.int64()).to_pylist()
    names = _basenames(flows)
    table = public_flows(flows).drop_columns(["capture"])
    for name in ("first_seen", "last_seen"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(name).cast(_TS))
    table = table.append_column("date", pa.array([_day(t) for t in first_ns], pa.string()))
    return table.append_column("capture", pa.array(names, pa.string()))


def finding_dataset(findings: Sequence[Finding], traffic: Traffic, ruleset: str) -> pa.Table:
    """One row per finding: its scalar fields, lists of ids, evidence and source as JSON."""
    assert traffic.flows is not None
    flows = traffic.flows
    capture_of = dict(zip(flows.column("flow_id").to_pylist(), _basenames(flows), strict=True))
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


def _write(table: pa.Table, base: str, run: str) -> None:
    import pyarrow.dataset as ds

    part = ds.partitioning(
        pa.schema([("date", pa.string()), ("capture", pa.string())]), flavor="hive"
    )
    ds.write_dataset(
        table,
        base,
        format="parquet",
        partitioning=part,
        basename_template=f"{run}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
    )


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
    flows = flow_dataset(traffic)
    if flows.num_rows:
        _write(flows, os.path.join(directory, "flows"), run)
    if findings:
        table = finding_dataset(findings, traffic, ruleset or "")
        _write(table, os.path.join(directory, "findings"), run)
    return run
