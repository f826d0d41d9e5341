"""Captures on any filesystem Spark reads (``hdfs://``, ``s3a://``, ``file:``, ...).

The C reader needs a local file (it memory-maps it), and Python tasks have no Hadoop
client; so the driver lists the URLs with Spark's own Hadoop FileSystem, and each file is
read whole by Spark (``binaryFiles``) into the task that decodes it, which writes it to
the executor's local scratch directory and runs the local reader on that. Such a file is
one task (no split: it is in the task's memory whole), and it must fit in an executor's
memory. Unlike local directories, every file of a remote directory is taken for a capture
(one that is not is a capture problem, said as such), and duplicates are not looked for.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from auditor.engines.spark.splits import Split
from auditor.sources import Found

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_url(path: str) -> bool:
    """``hdfs://...``, ``s3a://...``, ``file:/...``; not a Windows drive (``C:\\``)."""
    return bool(_URL.match(path)) and not re.match(r"^[A-Za-z]:[\\\\/]", path)


def list_files(spark: Any, paths: list[str]) -> list[Found]:
    """The files named by ``paths`` (URLs or local paths, made URLs), directories walked
    recursively in name order, as Spark's Hadoop FileSystem qualifies them."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    found: list[Found] = []
    for group, raw in enumerate(paths):
        url = raw if is_url(raw) else "file:" + os.path.abspath(raw)
        path = jvm.org.apache.hadoop.fs.Path(url)
        try:
            fs = path.getFileSystem(conf)
            status = fs.getFileStatus(path)
        except Exception as exc:  # missing, no permission, unknown scheme, ...
            from auditor.errors import CaptureError

            java = getattr(exc, "java_exception", None)
            text = str(java.getMessage() if java is not None else exc).strip()
            text = text.splitlines()[0] if text else type(exc).__name__
            found.append(Found(raw, group, error=CaptureError(raw, f"cannot be read: {text}")))
            continue
        if not status.isDirectory():
            found.append(Found(str(fs.makeQualified(path).toString()), group))
            continue
        names = []
        it = fs.listFiles(path, True)
        while it.hasNext():
            names.append(str(it.next().getPath().toString()))
        for name in sorted(names):
            found.append(Found(name, group))
    return found


def _decode_bytes(
    parts: int, capture_of: dict[str, int], seed: int | None
) -> Callable[[Iterable[tuple[str, bytes]]], Iterator[tuple[int, Any]]]:
    def run(files: Iterable[tuple[str, bytes]]) -> Iterator[tuple[int, Any]]:
        from auditor.engines.spark.job import INFO, _buckets
        from auditor.engines.spark.segments import decode_split

        for url, data in files:
            with tempfile.NamedTemporaryFile(prefix="pcap-audit-", suffix=".cap") as tmp:
                tmp.write(data)
                tmp.flush()
                split = Split(tmp.name, capture_of[url], 0, 1, seed=seed)
                seg, info = decode_split(split)
            text = json.dumps(info).replace(json.dumps(tmp.name)[1:-1], json.dumps(url)[1:-1])
            info = json.loads(text)
            info["mtime"] = None
            yield from _buckets(seg, parts)
            yield INFO, (split.capture, 0, json.dumps(info))

    return run


def binary_files_decoder(spark: Any, splits: list[Split], parts: int) -> Any:
    """Stage 1 for URLs: ``binaryFiles`` of every split's file, decoded in its task."""
    capture_of = {s.path: s.capture for s in splits}
    rdd = spark.sparkContext.binaryFiles(",".join(capture_of), minPartitions=len(splits))
    return rdd.mapPartitions(_decode_bytes(parts, capture_of, splits[0].seed))
