"""Capture reader throughput: packets/s and peak RSS of read_packets over ~1M packets.

    python bench/reader_bench.py            # builds bench/data/ on first use, then times
    python bench/reader_bench.py FILE...    # time given captures

The data set is the Ethernet traces of ../shared/corpus/zeek, merged and replicated 16
times with rewritten IPv4/IPv6 addresses (each replica its own hosts, hence its own flows),
written as classic pcap, converted to pcapng with editcap, and gzip-compressed. Each capture
is timed in a fresh interpreter so that peak RSS is its own and start-up is included.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
ZEEK = ROOT.parent / "shared" / "corpus" / "zeek"
REPLICAS = 16

CHILD = r"""
import resource, sys, time
t0 = time.perf_counter()
from auditor.capture import read_packets
r = read_packets(sys.argv[1])
n = 0
for b in r:
    n += b.num_rows
t = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{n} {t:.3f} {rss:.0f} {r.info.format_label}")
"""


def zeek_records() -> list[tuple[int, int, bytes]]:
    """(ts_sec, ts_usec, frame) of every record of the Ethernet zeek traces."""
    sys.path.insert(0, str(ROOT))
    from auditor.capture import read_packets

    out: list[tuple[int, int, bytes]] = []
    for path in sorted(ZEEK.glob("*.pcap*")):
        reader = read_packets(path)
        if reader.info.format not in ("pcap", "pcap-ns") or reader.info.compressed:
            continue
        table = reader.to_table()
        if reader.info.linktypes != ["ethernet"] or reader.info.truncated:
            continue
        # frames again, straight from the file: the table holds only payload heads
        data = path.read_bytes()
        order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        pos = 24
        for _ in range(table.num_rows):
            sec, frac, caplen, _wire = struct.unpack_from(order + "IIII", data, pos)
            out.append((sec, frac // 1000 if nano else frac, data[pos + 16 : pos + 16 + caplen]))
            pos += 16 + caplen
    return out


def rewrite(frame: bytes, k: int) -> bytes:
    """The frame with replica k's addresses (second byte of each IP address xor k)."""
    if k == 0 or len(frame) < 14:
        return frame
    b = bytearray(frame)
    etype = b[12] << 8 | b[13]
    if etype == 0x0800 and len(b) >= 34:
        b[27] ^= k
        b[31] ^= k
    elif etype == 0x86DD and len(b) >= 54:
        b[23] ^= k
        b[39] ^= k
    return bytes(b)


def make() -> list[Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    pcap, pcapng, gz = DATA / "zeek-x16.pcap", DATA / "zeek-x16.pcapng", DATA / "zeek-x16.pcap.gz"
    if not pcap.exists():
        recs = zeek_records()
        with pcap.open("wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
            for k in range(REPLICAS):
                for sec, usec, frame in recs:
                    f.write(struct.pack("<IIII", sec + k * 86400, usec, len(frame), len(frame)))
                    f.write(rewrite(frame, k))
    if not pcapng.exists():
        subprocess.run(["editcap", "-F", "pcapng", str(pcap), str(pcapng)], check=True)
    if not gz.exists():
        with pcap.open("rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return [pcap, pcapng, gz]


def main() -> None:
    files = [Path(a) for a in sys.argv[1:]] or make()
    for path in files:
        best = None
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout.split()
            n, t, rss, fmt = int(out[0]), float(out[1]), float(out[2]), out[3]
            if best is None or t < best[1]:
                best = (n, t, rss, fmt)
        assert best is not None
        n, t, rss, fmt = best
        size = path.stat().st_size / 1e6
        print(
            f"{path.name:22} {fmt:12} {size:7.0f} MB {n:9d} pkts {t:6.2f} s "
            f"{n / t / 1e6:5.2f} Mpkt/s  peak RSS {rss:4.0f} MB"
        )


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
