"""One direction of a flow rebuilt from payload heads: bytes at their true stream offsets.

The capture layer keeps only the first bytes of each payload but the whole payload length,
so the offset of every head in its direction's byte stream is known and the stream is a
sequence of visible runs with holes between them. Readers ask for bytes at an offset and
get them only when they were captured, which lets a parser skip a message it cannot see by
its length and pick up the next one.
"""

from __future__ import annotations

from collections.abc import Sequence

#: (direction, head bytes, payload length) as the flow layer hands them over.
Packet = tuple[int, bytes, int]


class Sparse:
    """Bytes of a stream at known offsets with holes; chunks are added in increasing order."""

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list[tuple[int, bytes]] = []
        self.size = 0

    def put(self, off: int, data: bytes) -> None:
        if not data:
            return
        if self.chunks:
            start, last = self.chunks[-1]
            if start + len(last) == off:
                self.chunks[-1] = (start, last + data)
                return
        self.chunks.append((off, data))

    def get(self, off: int, n: int) -> bytes | None:
        """Exactly ``n`` bytes at ``off``, or None when any of them is not visible."""
        for start, data in self.chunks:
            if start <= off and off + n <= start + len(data):
                return data[off - start : off - start + n]
        return None

    def avail(self, off: int, n: int) -> bytes:
        """The visible bytes from ``off``, at most ``n``: a prefix, possibly empty."""
        for start, data in self.chunks:
            if start <= off < start + len(data):
                return data[off - start : off - start + n]
        return b""

    def pieces(self, off: int, n: int) -> list[tuple[int, bytes]]:
        """Visible pieces of ``[off, off+n)`` as (offset relative to ``off``, bytes)."""
        out = []
        end = off + n
        for start, data in self.chunks:
            lo = max(start, off)
            hi = min(start + len(data), end)
            if lo < hi:
                out.append((lo - off, data[lo - start : hi - start]))
        return out


def direction_stream(packets: Sequence[Packet], direction: int) -> Sparse:
    """One direction's payload heads at their stream offsets (exact retransmissions dropped)."""
    stream = Sparse()
    prev: tuple[bytes, int] | None = None
    off = 0
    for d, head, plen in packets:
        if d != direction or plen <= 0:
            continue
        if prev is not None and prev[1] == plen and prev[0] == head:
            continue
        prev = (head, plen)
        stream.put(off, head[:plen])
        off += plen
    stream.size = off
    return stream
