"""``make bench-memory``: pcap-audit's memory while it audits a capture of 10 GB from a pipe.

The capture is generated on the fly (bench/stream.py: 20,000 long-lived connections
carrying full-size segments) and written into ``pcap-audit -``'s standard input: nothing of
that size is on disk. At 1, 5 and 10 GB written, the child's resident memory (VmRSS) and
its peak so far (VmHWM) are read from /proc; at the end its peak over the whole run,
flow table and DuckDB audit included (wait4's ru_maxrss). Memory must not grow with the
packets: flat within 100 MB from 1 GB on, and under 500 MB. Prints the figures and the
verdict; exits 1 when a bound is broken. BENCH_MEMORY_GB sets the size (default 10).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stream import FLOWS, blocks  # bench/ is sys.path[0] when run as bench/memory.py

GB = 1_000_000_000
TOTAL_GB = float(os.environ.get("BENCH_MEMORY_GB", "10"))
MARKS_GB = [m for m in (1, 5, 10) if m <= TOTAL_GB] or [TOTAL_GB]
FLAT_MB = 100
LIMIT_MB = 500


def status_mb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) // 1024
    return values["VmRSS"], values["VmHWM"]


def main() -> int:
    cli = str(Path(sys.executable).with_name("pcap-audit"))
    cmd = [cli, "-", "--ruleset", "applayering", "--format", "json", "-o", os.devnull,
           "--fail-on", "never", "-q"]  # fmt: skip
    total = int(TOTAL_GB * GB)
    print(f"streaming {TOTAL_GB:g} GB ({FLOWS:,} long-lived connections) into: pcap-audit - ...")
    marks = [int(m * GB) for m in MARKS_GB]
    seen: list[tuple[float, int, int, float]] = []
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        fd = proc.stdin.fileno()
        sent = 0
        try:
            for block in blocks(total):
                view = block
                while view:
                    view = view[os.write(fd, view) :]
                sent += len(block)
                while marks and sent >= marks[0]:
                    rss, hwm = status_mb(proc.pid)
                    seen.append((marks.pop(0) / GB, rss, hwm, time.perf_counter() - t0))
        except BrokenPipeError:
            pass
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        message = err.read().decode(errors="replace").strip()
    if code != 0:
        print(f"pcap-audit exited {code}: {message[:400]}")
        return 1
    peak = usage.ru_maxrss // 1024
    print(f"{'written':>10} {'RSS':>8} {'peak so far':>12} {'elapsed':>9}")
    for gb, rss, hwm, at in seen:
        print(f"{gb:8g} GB {rss:5d} MB {hwm:9d} MB {at:8.1f} s")
    cpu = usage.ru_utime + usage.ru_stime
    print(
        f"whole run: peak {peak} MB, {sent / GB:.1f} GB in {wall:.1f} s "
        f"({sent / GB / wall:.2f} GB/s; pcap-audit CPU {cpu:.1f} s)"
    )
    growth = max(r for _, r, _, _ in seen) - seen[0][1]
    flat = growth <= FLAT_MB
    under = peak <= LIMIT_MB
    print(
        f"flat from {seen[0][0]:g} GB on: {'yes' if flat else 'NO'} (grew {growth} MB, "
        f"bound {FLAT_MB} MB); under {LIMIT_MB} MB: {'yes' if under else 'NO'}"
    )
    return 0 if flat and under else 1


if __name__ == "__main__":
    sys.exit(main())
