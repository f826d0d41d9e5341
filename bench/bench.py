"""``make bench``: pcap-audit's speed and memory against tshark and a plain dpkt loop.

Builds (once, cached under bench/data/) a capture of at least 1M packets of real mixed
traffic: the Ethernet traces of ../shared/corpus/zeek, merged and replicated with rewritten
IPv4 addresses (replica i adds i to the second octet) — or, where ../shared is absent, a
synthetic mix from auditor.synth. Converts it to pcapng with editcap when available. Then
runs each contender as a child process on the same file (BENCH_RUNS times, default 3) and
prints the median wall time, packets/s, CPU seconds, peak RSS and the ratio to
pcap-audit's flow table; the full audit with --jobs 1 and --jobs 2 (the scaling of
parallel decoding; on a shared machine compare CPU seconds too). BENCH_CAPTURE=PATH
benchmarks another capture (e.g. one of 4M packets, built with build_capture and
TARGET raised, kept out of the repository). Then peak memory per flow, on a sweep capture of BENCH_SWEEP_FLOWS (default 1M) flows
of one packet each (bench/sweep.py), the audit with the default --flow-limit and with
BENCH_FLOW_LIMIT (default 200,000); and what a 100,000-entry inventory adds to the audit
of a small sample (bench/big_inventory.py). Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
ZEEK = ROOT.parent / "shared" / "corpus" / "zeek"
TARGET = 1_000_000
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
#: BENCH_ONLY="deep,filter": run only the contenders whose label holds one of these words
ONLY = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w]
PY = sys.executable


def build_capture(path: Path) -> int:
    """Write the benchmark pcap; returns its packet count."""
    import dpkt

    frames: list[tuple[float, bytes]] = []
    if ZEEK.is_dir():
        for trace in sorted(ZEEK.iterdir()):
            try:
                with trace.open("rb") as fh:
                    head = fh.read(4)
                    fh.seek(0)
                    reader = (
                        dpkt.pcapng.Reader(fh)
                        if head == b"\x0a\x0d\x0d\x0a"
                        else dpkt.pcap.Reader(fh)
                    )
                    if reader.datalink() != dpkt.pcap.DLT_EN10MB:
                        continue
                    frames.extend((ts, bytes(buf)) for ts, buf in reader)
            except Exception:  # a trace dpkt cannot read is simply not part of the mix
                continue
    else:
        frames = _synthetic_frames()
    # traces are concatenated in name order; time advances 100 us a packet
    reps = -(-TARGET // len(frames))
    count = 0
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, snaplen=65535)
        for i in range(reps):
            for _, buf in frames:
                w.writepkt(_rewrite(buf, i), ts=1_700_000_000 + count * 1e-4)
                count += 1
    return count


def _rewrite(buf: bytes, i: int) -> bytes:
    if i == 0 or len(buf) < 34:
        return buf
    off = 14
    etype = int.from_bytes(buf[12:14], "big")
    while etype in (0x8100, 0x88A8) and len(buf) >= off + 4:
        etype = int.from_bytes(buf[off + 2 : off + 4], "big")
        off += 4
    if etype != 0x0800 or len(buf) < off + 20:
        return buf
    b = bytearray(buf)
    b[off + 13] = (b[off + 13] + i) & 0xFF
    b[off + 17] = (b[off + 17] + i) & 0xFF
    return bytes(b)


def _synthetic_frames() -> list[tuple[float, bytes]]:
    from auditor import synth

    c = synth.Capture()
    for n in range(2000):
        a, b = f"10.{n % 200}.{n % 7}.{n % 250 + 1}", f"10.200.0.{n % 50 + 1}"
        c.tcp_session(
            a,
            b,
            40000 + n % 20000,
            443,
            synth.tls_handshake("TLS 1.2", sni=f"h{n}.example", app_bytes=4000),
        )
        q, r = synth.dns_exchange(f"h{n}.example", [b])
        c.udp(a, "10.0.0.53", 50000 + n % 10000, 53, q)
        c.udp("10.0.0.53", a, 53, 50000 + n % 10000, r)
    return [(ts, raw) for ts, raw in c.frames]


def run(cmd: list[str]) -> tuple[float, int, int, float]:
    """Run ``cmd``; returns (wall seconds, peak RSS in MB, exit status, CPU seconds)."""
    with tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    if proc.returncode not in (0, 1):
        print(
            f"  ! {' '.join(cmd[:3])}... exited {proc.returncode}: {err.strip()[:200]}",
            file=sys.stderr,
        )
    return wall, usage.ru_maxrss // 1024, proc.returncode, usage.ru_utime + usage.ru_stime


FLOWS_ONLY = (
    "import sys; from auditor.traffic import read_traffic; "
    "t = read_traffic([sys.argv[1]]); print(t.flows.num_rows)"
)
DPKT_LOOP = """
import sys, dpkt
flows = {}
with open(sys.argv[1], 'rb') as fh:
    for ts, buf in dpkt.pcap.Reader(fh):
        try:
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            l4 = ip.data
            key = (ip.src, ip.dst, ip.p, getattr(l4, 'sport', 0), getattr(l4, 'dport', 0))
        except Exception:
            continue
        flows[key] = flows.get(key, 0) + 1
print(len(flows))
"""


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    pcap = DATA / "mixed-1m.pcap"
    if os.environ.get("BENCH_CAPTURE"):  # another capture, e.g. 4M packets built elsewhere
        pcap = Path(os.environ["BENCH_CAPTURE"]).resolve()
    if not pcap.exists():
        print(f"building {pcap} ...", file=sys.stderr)
        n = build_capture(pcap)
        print(f"  {n} packets", file=sys.stderr)
    pcapng = pcap.with_suffix(".pcapng")
    if not pcapng.exists() and shutil.which("editcap"):
        subprocess.run(["editcap", "-F", "pcapng", str(pcap), str(pcapng)], check=True)
    packets = _count(pcap)
    origin = "zeek corpus, replicated" if ZEEK.is_dir() else "synthetic"
    if os.environ.get("BENCH_CAPTURE"):
        origin = "BENCH_CAPTURE"
    size_mb = pcap.stat().st_size / 1e6
    print(f"capture: {pcap}  {packets:,} packets  {size_mb:.0f} MB  ({origin})")
    cli = str(Path(PY).with_name("pcap-audit"))
    audit_cmd = [cli, str(pcap), "--ruleset", "applayering", "--format", "json", "-o",
                 os.devnull, "--fail-on", "never", "-q"]  # fmt: skip
    flows = [cli, "flows", str(pcap), "--format", "json", "-o", os.devnull, "-q"]
    rows: list[tuple[str, float, int, float]] = []
    for label, cmd in [
        ("pcap-audit flows (pcap)", [PY, "-c", FLOWS_ONLY, str(pcap)]),
        ("pcap-audit flows (pcapng)", [PY, "-c", FLOWS_ONLY, str(pcapng)]),
        ("pcap-audit audit (pcap, --jobs 1)", [*audit_cmd, "--jobs", "1"]),
        ("pcap-audit audit (pcap, --jobs 2)", [*audit_cmd, "--jobs", "2"]),
        ("pcap-audit audit --deep (100 flows)", [*audit_cmd, "--jobs", "1", "--deep"]),
        ("pcap-audit flows CLI, no filter", flows),
        ("pcap-audit flows --port 80", [*flows, "--port", "80"]),
        ("pcap-audit flows --host 10.0.0.0/8", [*flows, "--host", "10.0.0.0/8"]),
        ("pcap-audit flows --filter 'tcp port 80'", [*flows, "--filter", "tcp port 80"]),
        (
            "tshark -z conv,tcp -z conv,udp",
            ["tshark", "-q", "-n", "-z", "conv,tcp", "-z", "conv,udp", "-r", str(pcap)],
        ),
        ("plain dpkt decode loop", [PY, "-c", DPKT_LOOP, str(pcap)]),
    ]:
        if ONLY and not any(word in label for word in ONLY):
            continue
        if (cmd[0] == "tshark" or "--deep" in cmd) and not shutil.which("tshark"):
            print(f"{label:40} skipped: tshark not installed")
            continue
        if "pcapng" in label and not pcapng.exists():
            print(f"{label:40} skipped: editcap not installed")
            continue
        runs = [run(cmd) for _ in range(RUNS)]
        wall = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        cpu = statistics.median(r[3] for r in runs)
        rows.append((label, wall, rss, cpu))
    ref = rows[0][1] if rows else 1.0
    print(f"median of {RUNS} runs each; peak RSS is the largest of them; CPU is user + system")
    print(
        f"{'':40} {'seconds':>8} {'packets/s':>12} {'CPU s':>7} {'peak RSS':>9} "
        f"{'vs pcap-audit':>14}"
    )
    for label, wall, rss, cpu in rows:
        print(
            f"{label:40} {wall:8.2f} {packets / wall:12,.0f} {cpu:7.2f} {rss:6d} MB "
            f"{wall / ref:13.1f}x"
        )
    memory_per_flow(cli)
    inventory_overhead()


SWEEP_FLOWS = int(os.environ.get("BENCH_SWEEP_FLOWS", "1000000"))
#: the audit of the sweep runs once more with this --flow-limit (live flows held in memory)
SWEEP_LIMIT = int(os.environ.get("BENCH_FLOW_LIMIT", "200000"))


def memory_per_flow(cli: str) -> None:
    """Peak memory against the number of flows: a sweep (one SYN to each of SWEEP_FLOWS
    host/port pairs, bench/sweep.py) read into the flow table and audited, once each; the
    same for a 2,022-packet sample gives the fixed part. The audit runs with the default
    --flow-limit (1,000,000 live flows) and with BENCH_FLOW_LIMIT (default 200,000)."""
    from sweep import write_sweep

    sweep = DATA / f"sweep-{SWEEP_FLOWS}.pcap"
    if not sweep.exists():
        write_sweep(sweep, SWEEP_FLOWS)
    small = ROOT / "samples" / "applayering" / "findings.pcap"
    audit = ["--ruleset", "applayering", "--format", "json", "-o", os.devnull, "--fail-on", "never"]
    commands: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("pcap-audit flows (flow table)", lambda p: [PY, "-c", FLOWS_ONLY, str(p)]),
        ("pcap-audit audit", lambda p: [cli, str(p), *audit]),
        (
            f"pcap-audit audit --flow-limit {SWEEP_LIMIT // 1000}k",
            lambda p: [cli, str(p), *audit, "--flow-limit", str(SWEEP_LIMIT)],
        ),
    ]
    print(f"memory: {sweep.relative_to(ROOT)}, {SWEEP_FLOWS:,} flows of one packet (a sweep)")
    print(f"{'':34} {'seconds':>8} {'peak RSS':>9} {'per flow':>9}")
    for label, command in commands:
        _, base, _, _ = run(command(small))
        wall, rss, _, _ = run(command(sweep))
        per = (rss - base) * 1e6 / SWEEP_FLOWS  # above what a small capture takes
        print(f"{label:34} {wall:8.2f} {rss:6d} MB {per:7.0f} B")


INVENTORY_ENTRIES = 100_000


def inventory_overhead() -> None:
    """What a large inventory adds to an audit: the 2,022-packet sample audited with its
    own inventory and with one of INVENTORY_ENTRIES entries (bench/big_inventory.py), the
    median of BENCH_RUNS runs each (the library in this checkout, not an installed one)."""
    from big_inventory import write_inventory

    path = DATA / f"inventory-{INVENTORY_ENTRIES}.yaml"
    if not path.exists():
        write_inventory(path, INVENTORY_ENTRIES)
    sample = ROOT / "samples" / "applayering" / "findings.pcap"
    entry = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from auditor.cli.entry import main; main()"
    )
    audit = [PY, "-c", entry, str(sample), "--ruleset", "applayering", "--format", "json",
             "-o", os.devnull, "--fail-on", "never"]  # fmt: skip
    small = [*audit, "--inventory", str(sample.with_suffix(".inventory.yaml"))]
    walls: dict[str, float] = {}
    cpus: dict[str, float] = {}
    for label, cmd in (("small", small), ("big", [*audit, "--inventory", str(path)])):
        runs = [run(cmd) for _ in range(RUNS)]
        walls[label] = statistics.median(r[0] for r in runs)
        cpus[label] = statistics.median(r[3] for r in runs)
    print(
        f"inventory of {INVENTORY_ENTRIES:,} entries on {sample.relative_to(ROOT)}: "
        f"audit {walls['big']:.2f} s against {walls['small']:.2f} s with the sample's own, "
        f"+{walls['big'] - walls['small']:.2f} s (CPU +{cpus['big'] - cpus['small']:.2f} s)"
    )


def _count(path: Path) -> int:
    from auditor.capture import read_packets

    r = read_packets(path)
    for _ in r:
        pass
    return r.info.packets


if __name__ == "__main__":
    main()
