"""Format sniffing: what a capture is, from its first bytes (through gzip or zstd when the
content says so), before any record is read. A file that passes has at least a valid start
(the pcap file header and first record header, or the whole first pcapng Section Header
Block); anything else is a :class:`~auditor.errors.CaptureError` that says what was found
instead (a bzip2 file, a PDF, text...)."""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

from auditor.capture import _fast
from auditor.capture.inputs import (
    Decompressed,
    DecompressError,
    Input,
    compression_of,
    display_name,
)
from auditor.errors import CaptureError

MAX_SHB = 1 << 20  #: a pcapng Section Header Block longer than this is malformed

# magic numbers, as the first 4 bytes of the file
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False),  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", True),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
# things people mistake for captures, to say what was found instead
_OTHER_MAGICS = [
    (b"BZh", "a bzip2-compressed file (gzip and zstd are read: decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file (gzip and zstd are read: decompress it first)"),
    (b"\x04\x22\x4d\x18", "an lz4-compressed file (gzip and zstd are read: decompress it first)"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\xa1\xb2\xcd\x34", "a modified (Kuznetzov) pcap, which is not supported"),
    (b"\x34\xcd\xb2\xa1", "a modified (Kuznetzov) pcap, which is not supported"),
    (b"snoop\x00\x00\x00", "a Sun snoop capture, which is not supported"),
    (b"GMBU", "a Microsoft Network Monitor capture, which is not supported"),
    (b"\x7fELF", "an ELF executable"),
    (b"%PDF", "a PDF document"),
]


@dataclass(frozen=True)
class _Header:
    """What the first bytes of a capture say (see :func:`_sniff`)."""

    kind: int  # _fast.K_PCAP or _fast.K_PCAPNG
    fmt: str
    compression: str  # "", "gzip" or "zstd"
    order: str  # struct byte order of the file header / first section
    version: str
    linktype: int = 0  # pcap only
    snaplen: int = 0  # pcap only


# ---- opening and sniffing ------------------------------------------------------------------


def _describe(head: bytes) -> str:
    """Say what a file that is not a capture starts with."""
    for magic, what in _OTHER_MAGICS:
        if head.startswith(magic):
            return what
    hexed = " ".join(f"{b:02x}" for b in head[:8])
    text = head[:16].decode("latin-1")
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head[:16]):
        return f"text ({text.strip()[:16]!r}...)"
    return f"bytes {hexed}"


class _HeadReader:
    """Reads the first bytes of a capture, through gzip or zstd when the content says so."""

    def __init__(self, path: str, raw: io.RawIOBase) -> None:
        self.path = path
        self.raw = raw
        self.dec: Decompressed | None = None
        first = self._raw_read(4)
        self.compression = compression_of(first)
        if self.compression:
            raw.seek(0)
            self.dec = Decompressed(self.compression, raw)
            self.pending = b""
        else:
            self.pending = first

    def _raw_read(self, n: int) -> bytes:
        out = b""
        try:
            while len(out) < n:  # a pipe may give fewer bytes than asked
                more = self.raw.read(n - len(out))
                if not more:
                    break
                out += more
        except OSError as exc:
            raise CaptureError(self.path, f"cannot read: {exc.strerror or exc}") from None
        return out

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end of the content)."""
        out, self.pending = self.pending[:n], self.pending[n:]
        if self.dec is None:
            return out + self._raw_read(n - len(out))
        try:
            while len(out) < n:
                more = self.dec.read1(n - len(out))
                if not more:
                    break
                out += more
        except DecompressError as exc:
            if not out:
                why = "ends early" if exc.early else f"is corrupt ({exc})"
                raise CaptureError(
                    self.path,
                    f"{self.compression}-compressed, but the {self.compression} stream {why}",
                    "byte 0",
                ) from None
        except OSError as exc:
            raise CaptureError(self.path, f"cannot read: {exc.strerror or exc}") from None
        return out


def _sniff(source: Input) -> _Header:
    """Identify a capture by its first bytes; raise CaptureError when it is not one.

    For pcap the file header and the first record header are checked, for pcapng the
    whole first Section Header Block: a file that passes has at least a valid start.
    """
    path = display_name(source.path)
    raw = source.open()
    try:
        src = _HeadReader(path, raw)
        compression = src.compression
        head = src.read(64)
        inside = f"inside {compression}: " if compression else ""
        magic = head[:4]
        if magic in _PCAP_MAGICS:
            return _sniff_pcap(path, head, compression, inside)
        if magic == _PCAPNG_SHB:
            return _sniff_pcapng(path, src, head, compression, inside)
    finally:
        if not source.stream:
            raw.close()
    what = "an empty file" if not head else _describe(head)
    if compression and not head:
        raise CaptureError(path, f"{compression}-compressed, but there is nothing inside")
    if compression:
        raise CaptureError(
            path, f"{compression}-compressed, but the content is not a capture: found {what}"
        )
    if source.stream and not head:
        raise CaptureError(path, "nothing to read (empty input)")
    raise CaptureError(path, f"not a pcap or pcapng capture: found {what}", "byte 0")


def _sniff_pcap(path: str, head: bytes, compression: str, inside: str) -> _Header:
    order, ns = _PCAP_MAGICS[head[:4]]
    if len(head) < 24:
        raise CaptureError(
            path, f"{inside}file ends inside the pcap file header ({len(head)} of 24 bytes)"
        )
    major, minor, _zone, _sigfigs, snaplen, lt = struct.unpack_from(order + "HHiIII", head, 4)
    if len(head) >= 40:
        caplen = struct.unpack_from(order + "I", head, 32)[0]
        if caplen > _fast.MAX_CAPLEN:
            raise CaptureError(
                path,
                f"{inside}not a usable pcap: the first record claims {caplen} captured "
                f"bytes (the limit is {_fast.MAX_CAPLEN})",
                "byte 24",
            )
    return _Header(
        _fast.K_PCAP,
        "pcap-ns" if ns else "pcap",
        compression,
        order,
        f"{major}.{minor}",
        lt & 0xFFFF,  # upper bits: FCS length information (libpcap LT_LINKTYPE)
        snaplen,
    )


def _shb_problem(head: bytes) -> tuple[str, int] | None:
    """What is wrong with a Section Header Block's start (type, length, byte-order magic),
    with the offset of the field; None when it is fine."""
    order = _PCAPNG_BOM.get(head[8:12])
    if order is None:
        return f"byte-order magic is {head[8:12].hex(' ')}, expected 1a 2b 3c 4d", 8
    blen = struct.unpack_from(order + "I", head, 4)[0]
    if blen < 28 or blen % 4 or blen > MAX_SHB:
        return f"section header length {blen} is impossible", 4
    return None


def _sniff_pcapng(
    path: str, src: _HeadReader, head: bytes, compression: str, inside: str
) -> _Header:
    if len(head) < 12:
        raise CaptureError(
            path, f"{inside}file ends inside the pcapng section header ({len(head)} bytes)"
        )
    problem = _shb_problem(head)
    if problem:
        raise CaptureError(path, f"{inside}not a usable pcapng: {problem[0]}", f"byte {problem[1]}")
    order = _PCAPNG_BOM[head[8:12]]
    blen = struct.unpack_from(order + "I", head, 4)[0]
    if len(head) < blen:
        head += src.read(blen - len(head))
    if len(head) < blen:
        raise CaptureError(
            path,
            f"{inside}file ends inside the pcapng section header ({len(head)} of {blen} bytes)",
        )
    trailer = struct.unpack_from(order + "I", head, blen - 4)[0]
    if trailer != blen:
        raise CaptureError(
            path,
            f"{inside}not a usable pcapng: section header length {blen} at its start, "
            f"{trailer} at its end",
            f"byte {blen - 4}",
        )
    major, minor = struct.unpack_from(order + "HH", head, 12)
    if major != 1:
        raise CaptureError(path, f"{inside}unsupported pcapng version {major}.{minor}", "byte 12")
    return _Header(_fast.K_PCAPNG, "pcapng", compression, order, f"{major}.{minor}")


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of a capture, e.g. ``pcap``, ``pcap-ns``, ``pcapng`` or ``pcapng+zstd``.

    Raises CaptureError for anything that is not a readable capture (by content, not name).
    """
    h = _sniff(Input(os.fspath(path)))
    return h.fmt + (f"+{h.compression}" if h.compression else "")
