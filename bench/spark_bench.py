"""``make bench``, second part: the Spark engine in local mode against the local engine.

On the bench capture (built by bench/bench.py): the local engine's flow table; one Spark
decode task's work (``decode_split``, run in this process on the whole file: what an
executor core does per split, without Spark's scheduling); the session's start-up; and
the whole Spark run (decode tasks, shuffle, merge tasks, table on the driver) on
``local[*]`` with the default and a smaller split size, with its throughput once started.
Prints figures; asserts nothing. Skips, saying so, without pyspark or java.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    if importlib.util.find_spec("pyspark") is None or shutil.which("java") is None:
        print("spark engine: skipped (needs pyspark and a Java runtime)")
        return
    from bench import DATA, build_capture

    pcap = DATA / "mixed-1m.pcap"
    if not pcap.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        build_capture(pcap)
    from auditor.engines.spark import read_traffic_spark
    from auditor.engines.spark.job import session
    from auditor.engines.spark.segments import decode_split
    from auditor.engines.spark.splits import Split
    from auditor.traffic import read_traffic

    size_mb = pcap.stat().st_size / 1e6
    t0 = time.perf_counter()
    local = read_traffic([pcap])
    t_local = time.perf_counter() - t0
    packets = local.packets
    t0 = time.perf_counter()
    seg, _info = decode_split(Split(str(pcap), 0, 0, 1))
    t_task = time.perf_counter() - t0
    t0 = time.perf_counter()
    master = os.environ.get("BENCH_SPARK_MASTER", "local[*]")
    spark = session(master)
    t_start = time.perf_counter() - t0
    cores = spark.sparkContext.defaultParallelism
    print(
        f"spark engine ({master}, {cores} cores): {pcap.name}  {packets:,} packets  {size_mb:.0f} MB"
    )
    print(f"{'':44} {'seconds':>8} {'packets/s':>12}")
    print(f"{'local engine, flow table (1 process)':44} {t_local:8.2f} {packets / t_local:12,.0f}")
    print(
        f"{'one decode task, whole file (1 core)':44} {t_task:8.2f} {packets / t_task:12,.0f}"
        f"   {seg.num_rows:,} segments"
    )
    print(f"{'SparkSession start-up (JVM, once)':44} {t_start:8.2f}")
    runs = (
        ("default split 256 MiB, first job", 256 << 20),
        ("default split 256 MiB, again", 256 << 20),
        ("split 64 MiB", 64 << 20),
    )
    for label, split in runs:
        t0 = time.perf_counter()
        got = read_traffic_spark([str(pcap)], split_bytes=split, spark=spark)
        t = time.perf_counter() - t0
        same = got.flows is not None and local.flows is not None and got.flows.equals(local.flows)
        print(
            f"{'spark run, ' + label:44} {t:8.2f} {packets / t:12,.0f}"
            f"   same flow table: {'yes' if same else 'NO'}"
        )
    spark.stop()


if __name__ == "__main__":
    main()
