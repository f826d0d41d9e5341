"""Where the work is cut: one split per capture file, several for a large uncompressed pcap.

A classic pcap has no sync marker, so a record boundary can only be found by walking the
record headers from the file header on (each says how long its record is). The walk reads
16 bytes a record and jumps over the rest; it stops at the first header the scanner would
reject (caplen above ``MAX_CAPLEN``), so the record that stops the local reader also stops
the last split, at the same byte, with the same message. Compressed files and pcapng are
one split each (pcapng would need each split to carry its section's interface blocks).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass

from auditor.capture import _fast

#: target bytes per split of a large uncompressed pcap
SPLIT_BYTES = 256 << 20

_PCAP_ORDER = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\xa1\xb2\x3c\x4d": ">",
}


@dataclass(frozen=True)
class Split:
    """Bytes ``start``..``end`` of capture ``capture`` (its index among the files read),
    part ``part`` of ``parts``; ``start`` None: the whole file, read as the local reader does."""

    path: str
    capture: int
    part: int
    parts: int
    start: int | None = None
    end: int | None = None


def pcap_boundaries(path: str, split_bytes: int) -> list[int]:
    """Offsets of record starts at which to cut an uncompressed pcap into parts of about
    ``split_bytes`` (none when it is smaller, compressed, or not a classic pcap)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return []
    if size <= split_bytes + 24:
        return []
    with open(path, "rb") as fh:
        order = _PCAP_ORDER.get(fh.read(4))
        if order is None:
            return []
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return []
    with mm:
        caplen_at = struct.Struct(order + "I").unpack_from
        cuts: list[int] = []
        pos, nxt = 24, 24 + split_bytes
        while pos + 16 <= size:
            if pos >= nxt:
                cuts.append(pos)
                nxt = pos + split_bytes
            caplen = caplen_at(mm, pos + 8)[0]
            if caplen > _fast.MAX_CAPLEN:
                break  # the reader stops here: the last split keeps the rest
            pos += 16 + caplen
    return [c for c in cuts if c < size]


def plan(paths: list[tuple[str, int]], split_bytes: int = SPLIT_BYTES) -> list[Split]:
    """Splits of each (path, capture index), in reading order."""
    out: list[Split] = []
    for path, capture in paths:
        cuts = pcap_boundaries(path, split_bytes) if path != "-" else []
        if not cuts:
            out.append(Split(path, capture, 0, 1))
            continue
        edges = [24, *cuts, None]
        n = len(edges) - 1
        out.extend(Split(path, capture, i, n, edges[i], edges[i + 1]) for i in range(n))
    return out
