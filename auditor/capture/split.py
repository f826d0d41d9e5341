"""A large classic pcap file -> parts on record boundaries, to be decoded in parallel.

Classic pcap has no index and no sync marker: the only way to know where record N starts
is to walk the N - 1 before it. Walking a 1.6 GB file's record headers touches every page
before any decoding starts, so the split points are found the way parallel pcap readers do:
from a guessed offset, the first position from which a chain of CHAIN record headers is
plausible (captured length within the snap length and no larger than the wire length,
sub-second part below one second, timestamps within a day of the file's first record) and
lands exactly on the next header each time. A false sync would need CHAIN consecutive
fake headers in packet payload. A split point is moved past records that are fragments of
an outer IP header (the reassembly table is per part: a tunnel packet's fragments stay in
one part when they come one after the other, as they do on the wire).

Only uncompressed classic pcap files that can be memory-mapped are split; anything else is
one part. The parts' rows are numbered from 1 each; the caller adds the records of the
parts before (:func:`auditor.traffic.read_found` does).
"""

from __future__ import annotations

import contextlib
import copy
import mmap
import os
import struct

from auditor.capture import _fast
from auditor.capture.reader import CaptureInfo

CHAIN = 16  #: consecutive plausible record headers that make a split point
MIN_PART = 64 << 20  #: bytes: a file is split into parts of at least this size
SEARCH = 4 * (_fast.MAX_CAPLEN + 16)  #: bytes searched for a split point past a guess
_DAY = 86_400
_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_TUNNEL_PROTOS = (4, 17, 41, 47)


def split_pcap(path: str, parts: int, min_part: int = MIN_PART) -> list[tuple[int, int]]:
    """Byte ranges ``[start, stop)`` of the file, on record boundaries, covering every
    record from byte 24 to the end; one range when it is not worth or not possible to split."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(24)
            if len(head) < 24 or head[:4] not in _MAGICS or parts < 2 or size < 2 * min_part:
                return [(24, size)]
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _split(mm, head, size, min(parts, size // min_part))
    except (OSError, ValueError):
        return [(24, max(24, _size(path)))]


def _size(path: str) -> int:
    with contextlib.suppress(OSError):
        return os.stat(path).st_size
    return 0


def _split(mm: mmap.mmap, head: bytes, size: int, parts: int) -> list[tuple[int, int]]:
    order, ticks = _MAGICS[head[:4]]
    snaplen, linktype = struct.unpack_from(order + "II", head, 16)
    limit = min(snaplen or _fast.MAX_CAPLEN, _fast.MAX_CAPLEN)
    fmt = struct.Struct(order + "IIII")
    if size < 40:
        return [(24, size)]
    t0 = fmt.unpack_from(mm, 24)[0]

    def plausible(at: int) -> bool:
        for _ in range(CHAIN):
            if at == size:
                return True
            if at + 16 > size:
                return False
            sec, frac, cap, wire = fmt.unpack_from(mm, at)
            if cap > limit or cap > wire or frac >= ticks or abs(sec - t0) > _DAY:
                return False
            at += 16 + cap
            if at > size:
                return False
        return True

    points = [24]
    for k in range(1, parts):
        guess = max(size * k // parts, points[-1] + 1)
        at = next((p for p in range(guess, min(guess + SEARCH, size)) if plausible(p)), None)
        if at is None:
            continue
        at = _past_outer_fragments(mm, fmt, at, size, linktype)
        if at < size and at > points[-1]:
            points.append(at)
    return [(a, b) for a, b in zip(points, [*points[1:], size], strict=True)]


def _past_outer_fragments(
    mm: mmap.mmap, fmt: struct.Struct, at: int, size: int, linktype: int
) -> int:
    """``at``, or the first record after it that is not an IP fragment of a protocol that
    may be a tunnel (a run of at most 256 records)."""
    for _ in range(256):
        if at + 16 > size:
            return at
        cap = fmt.unpack_from(mm, at)[2]
        d = _fast.decode_one(mm[at + 16 : at + 16 + cap], linktype)
        if not (d["frag"] and d["proto"] in _TUNNEL_PROTOS):
            return at
        at += 16 + cap
    return at


def merge_infos(infos: list[CaptureInfo]) -> CaptureInfo:
    """The CaptureInfo of a file read in parts, from the parts' own (in file order)."""
    first, last = infos[0], infos[-1]
    out = copy.deepcopy(first)
    for part in infos[1:]:
        out.packets += part.packets
        out.bytes += part.bytes
        out.tunnel_reassembled += part.tunnel_reassembled
        out.tunnel_fragments_lost += part.tunnel_fragments_lost
        for key, n in part.decode_errors.items():
            out.decode_errors[key] = out.decode_errors.get(key, 0) + n
        for lt, n in part.unsupported_linktypes.items():
            out.unsupported_linktypes[lt] = out.unsupported_linktypes.get(lt, 0) + n
        for mine, theirs in zip(out.interfaces, part.interfaces, strict=False):
            mine.packets += theirs.packets
        for w in part.warnings:
            out.warn(w)
    seen = [i for i in infos if i.first_seen is not None]
    if seen:
        out.first_seen = min(i.first_seen for i in seen if i.first_seen is not None)
        out.last_seen = max(i.last_seen for i in seen if i.last_seen is not None)
    stopped = next((i for i in infos if i.truncated), None)
    out.truncated = stopped is not None
    out.truncated_at = stopped.truncated_at if stopped else None
    out.ends_early = last.ends_early
    return out
