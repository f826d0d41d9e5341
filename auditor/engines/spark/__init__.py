"""The same audit on Apache Spark: ``--engine spark``.

The driver lists the captures (:func:`auditor.sources.expand`, as the local engine), cuts
large uncompressed pcaps at record boundaries (:mod:`.splits`), and runs one decode task
per split with the local C reader and flow builder (:mod:`.segments`); the per-flow
segments are shuffled by flow key and merged in capture order (:mod:`.merge`), so that a
flow spanning rotated files or splits is one flow, built by the local code. The result is
:class:`auditor.traffic.Traffic`, the local engine's, which roles and the checks read as
they read any. pyspark is imported only here, when the engine is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from auditor.engines.spark.splits import SPLIT_BYTES
from auditor.errors import AuditorError, ExitCode
from auditor.traffic import Traffic

__all__ = ["SPLIT_BYTES", "SparkJobFailed", "SparkUnavailable", "read_traffic_spark"]


class SparkUnavailable(AuditorError):
    """pyspark is not installed, or Spark (its JVM) cannot start."""

    exit_code = ExitCode.USAGE


class SparkJobFailed(AuditorError):
    """A Spark job failed: a bug (INTERNAL) or, out of memory, RESOURCE. One line."""

    exit_code = ExitCode.INTERNAL


def _job_failure(exc: Exception) -> SparkJobFailed:
    """A Spark failure (Java and worker tracebacks inside) -> one line: the first error line
    of the task's own Python traceback if there is one, else the first line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b.*:", ln)]
    text = (errors[-1] if errors else lines[0] if lines else type(exc).__name__)[:300]
    if "OutOfMemoryError" in str(exc) or "MemoryError" in text:
        failed = SparkJobFailed(
            "--engine spark",
            f"out of memory in a Spark task ({text}): give the executors more memory "
            "(spark.executor.memory) or use a smaller --split-size",
        )
        failed.exit_code = ExitCode.RESOURCE
        return failed
    return SparkJobFailed(
        "--engine spark",
        f"Spark job failed: {text} (a bug in pcap-audit or the cluster; its log has more)",
    )


def _session(master: str) -> Any:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(
            "--engine spark",
            "pyspark is not installed: pip install 'pcap-audit[spark]' (and a Java runtime)",
        ) from None
    from auditor.engines.spark.job import session

    try:
        return session(master)
    except Exception as exc:  # the JVM did not start: no java, a bad master URL, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SparkUnavailable(
            "--engine spark", f"Spark could not start (master {master}): {first}"
        ) from None


def read_traffic_spark(
    paths: Iterable[str | os.PathLike[str]],
    master: str = "local[*]",
    split_bytes: int = SPLIT_BYTES,
    spark: Any = None,
) -> Traffic:
    """:func:`auditor.traffic.read_traffic` on Spark: the same traffic set (captures, flow
    table, notes). ``spark``: a SparkSession to use (else one is made on ``master``);
    ``split_bytes``: the size above which an uncompressed pcap is cut into several tasks."""
    from auditor.engines.spark.assemble import read_found_split, unsupported
    from auditor.sources import expand

    names = [os.fspath(p) for p in paths]
    unsupported(names)
    from auditor.engines.spark.job import spark_runner
    from auditor.engines.spark.remote import binary_files_decoder, is_url, list_files

    spark = spark or _session(master)
    try:
        if any(is_url(n) for n in names):  # hdfs://, s3a://, file:, ...: read by Spark
            return read_found_split(
                list_files(spark, names),
                run=spark_runner(spark, binary_files_decoder),
                split_bytes=split_bytes,
            )
        return read_found_split(expand(names), run=spark_runner(spark), split_bytes=split_bytes)
    except AuditorError:
        raise
    except Exception as exc:  # py4j and worker errors carry whole tracebacks in their text
        if os.environ.get("PCAP_AUDIT_DEBUG"):
            raise
        raise _job_failure(exc) from None
