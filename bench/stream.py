"""A capture of any size, generated on the fly: ``python bench/stream.py 10G | pcap-audit -``.

Nothing of that size touches the disk. The traffic is what a mirror port sees all night:
FLOWS long-lived TCP connections (TLS on 443, and cleartext HTTP on 3009 that the audit
reports) set up once, at the start, then carrying full-size data segments both ways, over
and over, time advancing 1 us a packet. The flows stay the same, so a reader whose memory
grows with packets rather than flows shows it. Written in blocks of about 16 MiB: one
block of records is built once and written again and again with its timestamps moved on
(numpy), so the generator costs little next to the reader.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Iterator

import numpy as np

FLOWS = 20_000
SEGMENT = 1400  #: TCP payload bytes of a data segment
_ETH = bytes.fromhex("020000000002020000000001") + b"\x08\x00"


def _frame(src: int, dst: int, sport: int, dport: int, flags: int, seq: int, data: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 0x50, flags, 65535, 0, 0) + data
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    return _ETH + ip + tcp


def _endpoints(i: int) -> tuple[int, int, int, int]:
    client = (10 << 24) | (50 << 16) | (i // 250 << 8) | (i % 250 + 1)
    server = (10 << 24) | (60 << 16) | (i % 40 + 1)
    port = 443 if i % 10 else 3009
    return client, server, 40000 + i % 20000, port


def setup_frames() -> list[bytes]:
    """The handshake and first payload of every connection."""
    out = []
    for i in range(FLOWS):
        c, s, cp, sp = _endpoints(i)
        hello = b"\x16\x03\x01\x00\x30\x01\x00\x00\x2c\x03\x03" + b"\x00" * 40
        first = hello if sp == 443 else b"GET /disk.vhd HTTP/1.1\r\nHost: appliance\r\n\r\n"
        out += [
            _frame(c, s, cp, sp, 0x02, 0, b""),
            _frame(s, c, sp, cp, 0x12, 0, b""),
            _frame(c, s, cp, sp, 0x10, 1, b""),
            _frame(c, s, cp, sp, 0x18, 1, first),
        ]
    return out


def data_frames() -> list[bytes]:
    """One round of data: a segment each way on every connection."""
    out = []
    fill = b"\x17\x03\x03\x05\x73" + b"\xa5" * (SEGMENT - 5)
    for i in range(FLOWS):
        c, s, cp, sp = _endpoints(i)
        body = fill if sp == 443 else b"\x00" * SEGMENT
        out += [_frame(s, c, sp, cp, 0x10, 2, body), _frame(c, s, cp, sp, 0x10, 2, b"")]
    return out


def _records(frames: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The frames as pcap records (timestamps 0) and the offset of each record."""
    parts, offsets, pos = [], [], 0
    for f in frames:
        offsets.append(pos)
        parts.append(struct.pack("<IIII", 0, 0, len(f), len(f)) + f)
        pos += 16 + len(f)
    return np.frombuffer(b"".join(parts), np.uint8).copy(), np.array(offsets, np.int64)


def blocks(total: int, start: int = 1_764_547_200) -> Iterator[memoryview]:
    """The capture, ``total`` bytes or a little more, in blocks."""
    yield memoryview(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    sent = 24
    packet = 0
    for frames in (setup_frames(), None):
        buf, offs = _records(frames if frames is not None else data_frames())
        reps = 1 if frames is not None else max(1, (16 << 20) // len(buf))
        if frames is None:
            buf, offs = (
                np.tile(buf, reps),
                np.concatenate([offs + k * len(buf) for k in range(reps)]),
            )
        # per record: seconds and microseconds of packet n at 1 us a packet
        sec = buf.view(np.uint8)
        n = len(offs)
        while sent < total:
            us = packet + np.arange(n, dtype=np.int64)
            secs = (start + us // 1_000_000).astype("<u4").view(np.uint8).reshape(-1, 4)
            frac = (us % 1_000_000).astype("<u4").view(np.uint8).reshape(-1, 4)
            for k in range(4):
                sec[offs + k] = secs[:, k]
                sec[offs + 4 + k] = frac[:, k]
            yield memoryview(buf)
            sent += len(buf)
            packet += n
            if frames is not None:
                break


def size(text: str) -> int:
    """'10G', '512M', '3000000' -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B")
    return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)


def main() -> None:
    total = size(sys.argv[1] if len(sys.argv) > 1 else "1G")
    out = sys.stdout.fileno()
    try:
        for b in blocks(total):
            view = b
            while view:
                view = view[os.write(out, view) :]
    except BrokenPipeError:
        pass


if __name__ == "__main__":
    main()
