"""Writes a sweep capture: one scanner sending a TCP SYN to each of N distinct (host, port)
pairs, one packet a flow (issue 10: 5 million of them, a 350 MB capture, drove an audit past
24 GB). Not committed data: ``make bench`` builds it under bench/data/.

    python bench/sweep.py OUT.pcap [FLOWS]     (default 5,000,000)

Flow i goes from 10.0.0.1:40000+(i % 20000) to 10.<16 + (i // 1000) as two octets>, port
1 + (i % 1000): 1,000 ports on each of FLOWS / 1,000 hosts, 1 ms apart. Built with numpy in
slices of 1M packets: a few seconds for 5M.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

SLICE = 1_000_000
T0 = 1_700_000_000


def _template() -> bytes:
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x00"
    )
    tcp = struct.pack("!HHIIBBHHH", 0, 0, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
    return eth + ip + tcp


def write_sweep(path: Path, flows: int) -> int:
    """Write the sweep capture of ``flows`` flows to ``path``; returns its size in bytes."""
    frame = np.frombuffer(_template(), np.uint8)
    rec = 16 + len(frame)
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for start in range(0, flows, SLICE):
            i = np.arange(start, min(flows, start + SLICE), dtype=np.int64)
            out = np.empty((len(i), rec), np.uint8)
            ts_us = i * 1000
            hdr = np.empty((len(i), 4), "<u4")
            hdr[:, 0] = T0 + ts_us // 1_000_000
            hdr[:, 1] = ts_us % 1_000_000
            hdr[:, 2] = hdr[:, 3] = len(frame)
            out[:, :16] = hdr.view(np.uint8).reshape(len(i), 16)
            out[:, 16:] = frame
            host = 16 * 65536 + i // 1000  # 10.16.0.0 on
            ip = 16 + 14
            out[:, ip + 17] = (host >> 16) & 0xFF  # 10.16.0.0 + i // 1000
            out[:, ip + 18] = (host >> 8) & 0xFF
            out[:, ip + 19] = host & 0xFF
            sport, dport = 40000 + i % 20000, 1 + i % 1000
            tcp = ip + 20
            out[:, tcp] = sport >> 8
            out[:, tcp + 1] = sport & 0xFF
            out[:, tcp + 2] = dport >> 8
            out[:, tcp + 3] = dport & 0xFF
            fh.write(out.tobytes())
    return path.stat().st_size


if __name__ == "__main__":
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000_000
    size = write_sweep(Path(sys.argv[1]), n)
    print(f"{sys.argv[1]}: {n:,} flows, {size / 1e6:.0f} MB")
