"""Where the work is cut: one split per capture file, several for a large uncompressed pcap.

A classic pcap has no sync marker, so a record boundary can only be found by walking the
record headers from the file header on (each says how long its record is). The walk reads
16 bytes a record and jumps over the rest; it stops at the first header the scanner would
reject (caplen above ``MAX_CAPLEN``), so the record that stops the local reader also stops
the last split, at the same byte, with the same message. Compressed files and pcapng are
one split each.

pcapng is cut before packet blocks, found by walking the block lengths (each block says
its length at both ends; the walk stops cutting at the first block the reader would reject).
A pcapng split carries its *preamble*: the offsets of its section's header block and of the
interface blocks seen so far, which the task reads first, so that its packets have their
link types, snapshot lengths and timestamp resolutions.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass

from auditor.capture import _fast
from auditor.capture.split import _past_outer_fragments as past_outer_fragments

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
    #: pcapng: offsets of the section header and interface blocks to read before ``start``
    preamble: tuple[int, ...] = ()
    #: pcapng: the section (0-based) that ``start`` is in
    section: int = 0
    #: the flow hash's seed for this run (the reader's is random per process: every task of
    #: a run must key flows alike, or a flow's segments would not meet)
    seed: int | None = None


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
        linktype = struct.unpack_from(order + "I", mm, 20)[0]
        record = struct.Struct(order + "IIII")
        cuts: list[int] = []
        pos, nxt = 24, 24 + split_bytes
        while pos + 16 <= size:
            if pos >= nxt:
                # as the --jobs splitter does: a tunnel packet's outer fragments stay in one
                # split (each split reassembles its own)
                pos = past_outer_fragments(mm, record, pos, size, linktype)
                if pos + 16 > size:
                    break
                cuts.append(pos)
                nxt = pos + split_bytes
            caplen = caplen_at(mm, pos + 8)[0]
            if caplen > _fast.MAX_CAPLEN:
                break  # the reader stops here: the last split keeps the rest
            pos += 16 + caplen
    return [c for c in cuts if c < size]


_BT_SHB, _BT_IDB = 0x0A0D0D0A, 0x00000001
_PACKET_BLOCKS = (0x00000006, 0x00000003, 0x00000002)  # EPB, SPB, obsolete PB
_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}


def pcapng_boundaries(path: str, split_bytes: int) -> list[tuple[int, tuple[int, ...], int]]:
    """(cut offset, preamble offsets, section index) at which to cut an uncompressed pcapng
    into parts of about ``split_bytes`` (none when small, compressed or not pcapng)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return []
    if size <= split_bytes:
        return []
    with open(path, "rb") as fh:
        if fh.read(4) != b"\x0a\x0d\x0d\x0a":
            return []
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return []
    cuts: list[tuple[int, tuple[int, ...], int]] = []
    with mm:
        pos, nxt = 0, split_bytes
        order = "<"
        preamble: list[int] = []
        section = -1
        while pos + 12 <= size:
            head = mm[pos : pos + 12]
            if head[:4] == b"\x0a\x0d\x0d\x0a":
                bom = _BOM.get(head[8:12])
                if bom is None:
                    break
                order = bom
            btype, blen = struct.unpack_from(order + "II", head)
            if blen < 12 or blen & 3 or blen > _fast.MAX_BLOCK or pos + blen > size:
                break
            if struct.unpack_from(order + "I", mm, pos + blen - 4)[0] != blen:
                break
            if btype == _BT_SHB:
                section += 1
                preamble = [pos]
            elif btype == _BT_IDB:
                preamble.append(pos)
            elif btype in _PACKET_BLOCKS and pos >= nxt and section >= 0:
                cuts.append((pos, tuple(preamble), section))
                nxt = pos + split_bytes
            pos += blen
    return cuts


def plan(paths: list[tuple[str, int]], split_bytes: int = SPLIT_BYTES) -> list[Split]:
    """Splits of each (path, capture index), in reading order."""
    out: list[Split] = []
    for path, capture in paths:
        ng = pcapng_boundaries(path, split_bytes) if path != "-" else []
        if ng:
            starts: list[tuple[int | None, tuple[int, ...], int]] = [(None, (), 0), *ng]
            n = len(starts)
            for i, (start, pre, sec) in enumerate(starts):
                end = starts[i + 1][0] if i + 1 < n else None
                out.append(Split(path, capture, i, n, start, end, pre, sec))
            continue
        cuts = pcap_boundaries(path, split_bytes) if path != "-" else []
        if not cuts:
            out.append(Split(path, capture, 0, 1))
            continue
        edges = [24, *cuts, None]
        n = len(edges) - 1
        out.extend(Split(path, capture, i, n, edges[i], edges[i + 1]) for i in range(n))
    return out
