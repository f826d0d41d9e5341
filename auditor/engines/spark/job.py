"""The Spark job: an RDD of Arrow IPC. Splits -> decode tasks -> segments bucketed by flow
key -> merge tasks -> flow table rows back to the driver.

Stage 1 runs :func:`decode_split` once per split (one partition each); it yields, per
bucket (flow key modulo the merge tasks), the Arrow IPC of its segments, and one item
carrying the split's CaptureInfo as JSON. The decoded RDD is cached, the infos collected,
and the later fragments whose first fragment was in another split resolved on the driver
(a few rows). Stage 2 partitions the buckets, so that every segment of a key meets in one
task, which folds them in capture order and builds its flows' rows with the local builder
(classification included); the rows travel back as Arrow IPC. Arrow IPC rather than
DataFrames and ``mapInArrow``: Spark has no unsigned or nanosecond types, and pyspark's
``mapInArrow`` requires pandas, whose presence makes pyarrow import it (and
``pyarrow.compute``) in every local audit too. Roles and the checks then run on the
driver on that table (DuckDB, the local engine's code): the flow table is orders of
magnitude smaller than the packets.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.engines.spark.merge import Offsets, flow_table, fold, frame_offsets
from auditor.engines.spark.segments import SEGMENT_SCHEMA, decode_split, fragment_segments
from auditor.engines.spark.splits import Split

#: the bucket of a decode task's (capture, part, CaptureInfo as JSON)
INFO = -1


def _ipc(table: pa.Table | pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return bytes(sink.getvalue().to_pybytes())


def _table(blobs: Iterable[bytes], schema: pa.Schema) -> pa.Table:
    batches = [b for blob in blobs for b in pa.ipc.open_stream(blob)]
    return pa.Table.from_batches(batches, schema=schema)


def _buckets(seg: pa.RecordBatch, parts: int) -> Iterator[tuple[int, bytes]]:
    """Segments -> (bucket, Arrow IPC of its rows): a key's segments all go to one bucket."""
    if not seg.num_rows:
        return
    bucket = seg.column("key").to_numpy().view(np.uint64) % np.uint64(parts)
    for b in np.unique(bucket).tolist():
        yield int(b), _ipc(seg.filter(pa.array(bucket == b)))


def _decode_task(parts: int) -> Callable[[Iterable[Split]], Iterator[tuple[int, Any]]]:
    def run(splits: Iterable[Split]) -> Iterator[tuple[int, Any]]:
        for split in splits:
            seg, info = decode_split(split)
            yield from _buckets(seg, parts)
            yield INFO, (split.capture, split.part, json.dumps(info))

    return run


def _merge_task(offsets: Offsets) -> Callable[[Iterable[tuple[int, bytes]]], Iterator[bytes]]:
    def run(items: Iterable[tuple[int, bytes]]) -> Iterator[bytes]:
        table = _table((blob for _b, blob in items), SEGMENT_SCHEMA)
        flows = flow_table(fold(table, offsets))
        if flows.num_rows:
            yield _ipc(flows)

    return run


def session(master: str = "local[*]") -> Any:
    """The SparkSession (an existing one is reused, as under spark-submit)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if "PYSPARK_SUBMIT_ARGS" not in os.environ:  # not under spark-submit: quiet the JVM's log
        props = Path(__file__).with_name("log4j2.properties")
        os.environ["PYSPARK_SUBMIT_ARGS"] = (
            f"--driver-java-options -Dlog4j2.configurationFile=file:{props} pyspark-shell"
        )
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"pyspark\..*")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("pcap-audit")
    launch = "PYSPARK_GATEWAY_PORT" not in os.environ  # else spark-submit's JVM runs already
    if master and launch:
        builder = builder.master(master)
    builder = builder.config("spark.ui.enabled", "false").config(
        "spark.ui.showConsoleProgress", "false"
    )
    if launch and SparkSession.getActiveSession() is None:
        with _jvm_stderr_filtered():
            spark = builder.getOrCreate()
    else:
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


#: what the JVM says on every start, whatever its log level: not pcap-audit's diagnostics
_NOISE = re.compile(
    rb"^(WARNING: Using incubator modules|Setting default log level|"
    rb"To adjust logging level use sc\.setLogLevel)"
)


@contextlib.contextmanager
def _jvm_stderr_filtered() -> Iterator[None]:
    """Start the JVM with a pipe for its stderr, which a thread copies to ours without
    the start-up notices (the JVM and its Python workers keep the pipe for life)."""
    try:
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        saved = os.dup(2)
    except OSError:
        yield
        return
    out = os.dup(saved)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not _NOISE.match(line):
                    os.write(out, line)
        os.close(out)

    threading.Thread(target=forward, name="pcap-audit-jvm-stderr", daemon=True).start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def spark_runner(
    spark: Any, decode: Callable[[Any, list[Split], int], Any] | None = None
) -> Callable[[list[Split]], tuple[list[dict[str, Any]], pa.Table]]:
    """A :data:`auditor.engines.spark.assemble.Runner` on ``spark``; ``decode(spark,
    splits, parts)``: the RDD of stage 1 (default: each split read from its path)."""

    def run(splits: list[Split]) -> tuple[list[dict[str, Any]], pa.Table]:
        from auditor.engines.spark.assemble import sort_flows

        sc = spark.sparkContext
        parts = max(1, min(len(splits) * 2, sc.defaultParallelism * 2))
        if decode is None:
            decoded = sc.parallelize(splits, len(splits)).mapPartitions(_decode_task(parts))
        else:
            decoded = decode(spark, splits, parts)
        from pyspark import StorageLevel

        # read twice (infos, then segments): kept, spilled to disk rather than decoded again
        decoded = decoded.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            got = decoded.filter(lambda kv: kv[0] == INFO).values().collect()
            found = {(c, p): json.loads(text) for c, p, text in got}
            infos = [found[(s.capture, s.part)] for s in splits]
            segments = decoded.filter(lambda kv: kv[0] != INFO)
            extra = list(_buckets(fragment_segments(splits, infos), parts))
            if extra:
                segments = segments.union(sc.parallelize(extra, 1))
            merged = segments.partitionBy(parts, lambda b: b).mapPartitions(
                _merge_task(frame_offsets(splits, infos))
            )
            tables = [pa.ipc.open_stream(blob).read_all() for blob in merged.collect()]
        finally:
            decoded.unpersist()
        return infos, sort_flows(tables)

    return run
