"""Capture files -> packet batches (:data:`~auditor.capture.schema.PACKET_SCHEMA`), streamed.

Why it is built this way: a per-record Python loop costs more than a microsecond per packet
before any decoding (iterating ``dpkt.pcap.Reader`` alone is ~2.6 s per million records), and
the target is over a million packets per second end to end. So Python only moves large
pieces: an uncompressed file is memory-mapped (every read of the mapping guarded, so that a
file truncated by another process while it is read ends the read, not the process), a gzip
stream (detected by its content, not its name) is decompressed in 16 MiB chunks into one
reusable buffer, and the C scanner
(``_fast.scan``) finds the record boundaries of the whole piece, decodes every record with
``pc_decode`` and fills numpy column arrays that become the Arrow batch without a copy. A
record cut by a chunk's end is carried over to the next chunk. For pcapng the scanner
handles the packet blocks (EPB, SPB, obsolete PB) itself, with a small per-interface table
(link type, timestamp scale and offset, snaplen), and hands every other block (SHB, IDB,
ISB, anything unknown) back to Python, which parses it and resumes. Memory stays flat: mapped
pages are dropped from the process once scanned, each batch's column arrays are its own
and go with it when the caller lets it go, and only the batches the caller still holds
add up.

Payload heads (the ``payload`` column): the first bytes of the captured L4 payload, enough
for the classifier without carrying whole packets: up to 4096 bytes when the payload starts
like a TLS handshake record (``16 03``: a ClientHello/ServerHello with its extensions and,
in TLS 1.2, the certificates; over UDP also a DTLS one, ``16 fe``), up to 1024 bytes when
its first 4 bytes are ASCII letters or ``-``, the 4th may be a space (``GET ``, ``POST``,
``HTTP``, ``SSH-``, SMTP/FTP/IMAP commands), up to 4096 bytes for a UDP datagram of at
least 1200 bytes that starts like a QUIC long-header packet of a known version (first byte
``0xC0``-``0xFF``; v1, v2, drafts, Google QUIC ``Q0xx``): an Initial, which the classifier
decrypts whole to read its ClientHello; otherwise up to 128 bytes; empty when the packet
has no captured payload.

Absent values are Arrow nulls: ``vlan``/``vlan_inner``/``mpls`` without a tag, ``tunnel_id``
when there is no tunnel, ``outer_src``/``outer_dst`` without a tunnel's outer IP header,
``src_ip``/``dst_ip``/``flow_key``/``flow_dir`` when the record is not IP, and ``ts`` for
pcapng Simple Packet Blocks, which carry no timestamp.

Damaged files: a record or block header that cannot be right (a captured length over
256 KiB or larger than its block, a pcapng block length that is not a multiple of 4, ...)
gives a row with status ``bad_record``. In classic pcap there is no way to find the next
record, so reading stops there and the capture is marked ``truncated``; pcapng resyncs on
the block length when that length is sane. A file that ends inside a record, or a gzip
stream that ends early or is corrupt, is also ``truncated``; what was read before is kept.
Only files that cannot be read at all raise :class:`~auditor.errors.CaptureError`.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import sys
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from auditor.capture import _fast
from auditor.capture.batches import _Batch as _Batch
from auditor.capture.info import LINKTYPE_NAMES as LINKTYPE_NAMES
from auditor.capture.info import MAX_LISTED_INTERFACES as MAX_LISTED_INTERFACES
from auditor.capture.info import MAX_WARNINGS, CaptureInfo, InterfaceInfo, linktype_name
from auditor.capture.inputs import Decompressed, DecompressError, Input, display_name
from auditor.capture.pcapng import MAX_META_BLOCKS as MAX_META_BLOCKS
from auditor.capture.pcapng import PcapngBlocks
from auditor.capture.schema import PACKET_SCHEMA, STATUS_NAMES
from auditor.capture.sniff import MAX_SHB as MAX_SHB
from auditor.capture.sniff import _Header, _sniff
from auditor.capture.sniff import detect_format as detect_format
from auditor.errors import CaptureError

__all__ = [
    "LINKTYPE_NAMES",
    "CaptureInfo",
    "InterfaceInfo",
    "PacketReader",
    "detect_format",
    "read_packets",
]

CHUNK_SIZE = 16 << 20  #: bytes read per chunk (the buffer grows only for a larger block)
MMAP = True  #: map uncompressed files instead of reading them in chunks
RELEASE_EVERY = 8 << 20  #: drop scanned mapped pages from RSS every this many bytes
PAYLOAD_BYTES_PER_ROW = 512  #: payload buffer per batch row; a batch ends early when it fills

_STATUS_UNSUPPORTED = STATUS_NAMES.index("unsupported_linktype")
_STATUS_BAD = STATUS_NAMES.index("bad_record")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

#: CaptureInfo.skipped_blocks keys, in the order of the scanner's SKIP_* counters
_SKIPPED_NAMES = (
    "name_resolution",
    "systemd_journal",
    "decryption_secrets",
    "custom",
    "custom_nocopy",
    "unknown",
)

_BAD_REASONS = {
    _fast.BAD_CAPLEN: "captured length {} is over the 262144-byte limit",
    _fast.BAD_BLOCKLEN: "block length {} is impossible",
    _fast.BAD_TRAILER: "trailing block length {} differs from the leading one",
    _fast.BAD_IFACE: "packet block for interface {}, which is not defined in this section",
    _fast.BAD_SHORT_BLOCK: "packet block of {} bytes is too short for its fields",
    _fast.BAD_CAPLEN_BLOCK: "captured length {} is larger than its block",
}


# ---- reading --------------------------------------------------------------------------------


class _Stream(PcapngBlocks):
    """One pass over a capture: chunked reading, the scanner loop and the pcapng blocks."""

    def __init__(
        self,
        source: Input,
        header: _Header,
        info: CaptureInfo,
        batch_size: int,
        span: tuple[int, int] | None = None,
    ) -> None:
        self.source = source
        self.span = span  # a part of a mapped pcap: [start, stop) on record boundaries
        self.path = display_name(source.path)
        self.header = header
        self.info = info
        self.batch_size = batch_size
        self.data_cap = batch_size * PAYLOAD_BYTES_PER_ROW + 2 * _fast.HEAD_TLS
        self.buf = np.empty(0, np.uint8)
        self.pos = 0  # next byte to scan in buf
        self.end = 0  # bytes valid in buf
        self.base = 0  # stream offset of buf[0]
        self.eof = False
        self.state = np.zeros(_fast.S_LEN, np.int64)
        self.state[_fast.S_TSMIN] = _INT64_MAX
        self.state[_fast.S_TSMAX] = _INT64_MIN
        # fragmented outer IP headers of tunnel packets (4 MiB, pages touched only when used)
        self.reasm = np.zeros(_fast.RA_BYTES, np.uint8)
        self.swap = 0
        self.order = header.order
        self.iftab = np.zeros((4, _fast.IF_W), np.int64)  # the current section's interfaces
        self.nif = 0  # ... rows of iftab in use
        self.iface_info: list[InterfaceInfo | None] = []  # ... their InterfaceInfo if listed
        self.meta_blocks = 0  # blocks parsed in Python (SHB, IDB, ISB)
        self.unlisted = False  # interfaces beyond MAX_LISTED_INTERFACES were seen
        self.raw: io.RawIOBase | None = None
        self.gz: Decompressed | None = None
        self.mm: mmap.mmap | None = None
        self.released = 0  # mapped bytes before this offset were dropped from our RSS
        self.size: int | None = None  # files, not streams: the size at open, read up to there
        self.shrunk_to: int | None = None  # the size found when the file shrank under us

    # -- input ---------------------------------------------------------------------------

    def open(self) -> None:
        """Uncompressed files are memory-mapped: the scanner reads the page cache directly,
        without a copy, and pages behind it are dropped (see release()); gzip streams and
        files that cannot be mapped are read in chunks into one reusable buffer; standard
        input and pipes are always read in chunks. A file is read up to its size at open.

        A mapped file that another process truncates meanwhile (a ``tcpdump -W`` ring
        buffer rotating) would end the process with SIGBUS when a page past its new end is
        touched: every read of the mapping is guarded in C (``_fast.scan``, ``_fast.take``),
        and such a fault ends the read like a file that ends early (see shrunk()). Reading
        with ``readinto`` instead costs 10 % more CPU (0.58 s against 0.53 s for the flow
        table of the 1M-packet bench capture), hence the guard."""
        self.raw = self.source.open()
        if self.header.compression:
            self.gz = Decompressed(self.header.compression, self.raw)
        elif not self.source.stream:
            self.size = os.fstat(self.raw.fileno()).st_size
            if MMAP:
                try:
                    self.mm = mmap.mmap(self.raw.fileno(), 0, access=mmap.ACCESS_READ)
                except (OSError, ValueError):
                    self.mm = None
        if self.mm is not None:
            if hasattr(mmap, "MADV_SEQUENTIAL"):
                self.mm.madvise(mmap.MADV_SEQUENTIAL)
            self.buf = np.frombuffer(self.mm, np.uint8)
            self.end = len(self.buf)
            if self.span is not None:
                self.end = min(self.end, self.span[1])
                self.released = self.span[0] - self.span[0] % mmap.PAGESIZE
            self.eof = True
        elif self.span is not None:
            raise CaptureError(self.path, "cannot be mapped to be read in parts")
        else:
            self.buf = np.empty(CHUNK_SIZE, np.uint8)

    def close(self) -> None:
        self.buf = np.empty(0, np.uint8)  # the mapping cannot close while exported
        if self.mm is not None:
            with contextlib.suppress(BufferError):
                self.mm.close()
        if self.gz is not None:
            self.gz.close()
        if self.raw is not None:
            self.raw.close()

    def release(self) -> None:
        """Drop the mapped pages already scanned from our RSS (they stay in the page cache),
        so that peak memory does not grow with the capture."""
        if self.mm is None or self.pos - self.released < RELEASE_EVERY:
            return
        upto = self.pos - self.pos % mmap.PAGESIZE
        if hasattr(mmap, "MADV_DONTNEED"):
            self.mm.madvise(mmap.MADV_DONTNEED, self.released, upto - self.released)
        self.released = upto

    def take(self, n: int) -> bytes | None:
        """The n bytes at self.pos (available: see fill()); None when the mapped file shrank
        under us, which is then recorded for shrunk()."""
        if self.mm is None:
            return self.buf[self.pos : self.pos + n].tobytes()
        data = _fast.take(self.buf, self.pos, n)
        if data is None:
            self.note_shrink()
        return data

    def note_shrink(self) -> None:
        assert self.raw is not None
        self.shrunk_to = os.fstat(self.raw.fileno()).st_size

    def shrunk(self) -> str | None:
        """The message for a file that shrank while it was read, else None."""
        if self.shrunk_to is None:
            return None
        return (
            f"file shrank from {self.size} to {self.shrunk_to} bytes while being read "
            f"(truncated by another process?); kept the records before byte "
            f"{self.base + self.pos}"
        )

    def _read(self, view: memoryview) -> int:
        """Read into view; 0 at the end. A compressed stream is read with read1(), which
        never loses decompressed bytes when the stream then turns out to be cut or corrupt."""
        try:
            if self.gz is not None:
                data = self.gz.read1(len(view))
                view[: len(data)] = data
                return len(data)
            assert self.raw is not None
            if self.size is None:  # standard input or a pipe: read to its end
                return self.raw.readinto(view) or 0
            left = self.size - (self.base + self.end)  # read up to the size at open
            if left <= 0:
                return 0
            n = self.raw.readinto(view[:left]) or 0
            if n == 0:  # before the size at open: the file shrank under us
                self.note_shrink()
            return n
        except DecompressError as exc:
            self.info.warn(f"{exc} (at uncompressed byte {self.base + self.end})")
            self.info.ends_early = exc.early
            self.info.truncated = True
            self.info.truncated_at = self.base + self.end
            self.eof = True
            return 0
        except OSError as exc:
            raise CaptureError(
                self.path, f"read error: {exc.strerror or exc}", f"byte {self.base + self.end}"
            ) from None

    def fill(self, need: int) -> bool:
        """Make at least `need` bytes available at self.pos; False at the end of the stream."""
        tail = self.end - self.pos
        if tail >= need or self.mm is not None:
            return tail >= need
        if self.pos:
            self.buf[:tail] = self.buf[self.pos : self.end]
            self.base += self.pos
            self.pos, self.end = 0, tail
        if need > len(self.buf):
            grown = np.empty(max(need, len(self.buf) * 2), np.uint8)
            grown[:tail] = self.buf[:tail]
            self.buf = grown
        view = memoryview(self.buf)  # type: ignore[arg-type]
        half = len(self.buf) // 2
        while not self.eof and (self.end < need or self.end < half):
            n = self._read(view[self.end :])
            if n == 0:
                self.eof = True
            self.end += n
        return self.end - self.pos >= need

    # -- the scanner loop -------------------------------------------------------------------

    def new_batch(self) -> _Batch:
        st = self.state
        st[_fast.S_ROW] = 0
        st[_fast.S_ROWCAP] = self.batch_size
        st[_fast.S_DUSED] = 0
        st[_fast.S_DCAP] = self.data_cap
        st[_fast.S_NULLS : _fast.S_NULLS + 7] = 0
        return _Batch(self.batch_size, self.data_cap)

    def finish_batch(self, batch: _Batch) -> pa.RecordBatch:
        st = self.state
        n = int(st[_fast.S_ROW])
        rb = batch.record_batch(
            n, st[_fast.S_NULLS : _fast.S_NULLS + 7].copy(), int(st[_fast.S_DUSED])
        )
        status = batch.column("status")[:n]
        sel = status == _STATUS_UNSUPPORTED
        if sel.any():
            lts, counts = np.unique(batch.column("linktype")[:n][sel], return_counts=True)
            for lt, c in zip(lts.tolist(), counts.tolist(), strict=True):
                self.info.unsupported_linktypes[lt] = self.info.unsupported_linktypes.get(lt, 0) + c
        self.update_info()
        return rb

    def batches(self) -> Iterator[pa.RecordBatch]:
        kind = self.header.kind
        st = self.state
        if kind == _fast.K_PCAP:
            self.start_pcap()
            if self.span is not None and self.span[0] > self.pos:
                self.pos = self.span[0]
        batch = self.new_batch()
        while True:
            st[_fast.S_POS] = self.pos
            st[_fast.S_END] = self.end
            st[_fast.S_SWAP] = self.swap
            rc = _fast.scan(kind, self.buf, st, self.iftab[: self.nif], batch.arrays, self.reasm)
            self.pos = int(st[_fast.S_POS])
            self.release()
            if rc == _fast.ST_FULL:
                yield self.finish_batch(batch)
                batch = self.new_batch()
            elif rc == _fast.ST_NEED:
                if not self.fill(int(st[_fast.S_NEED])):
                    if self.shrunk_to is not None:
                        self.stop(self.shrunk() or "")
                    elif self.pos < self.end:
                        self.stop(
                            f"file ends inside a record at byte {self.base + self.pos} "
                            f"({self.end - self.pos} bytes left)",
                            cut=True,
                        )
                    break
            elif rc == _fast.ST_FAULT:
                self.note_shrink()
                self.stop(self.shrunk() or "")
                break
            elif rc == _fast.ST_BLOCK:
                if not self.block():
                    break
            elif rc in (_fast.ST_BAD, _fast.ST_BADSKIP):
                code, val = int(st[_fast.S_BADCODE]), int(st[_fast.S_BADVAL])
                where = self.base + int(st[_fast.S_BADPOS])
                reason = _BAD_REASONS.get(code, "bad record ({})").format(val)
                if rc == _fast.ST_BAD:
                    self.stop(
                        f"stopped at byte {where}: bad record header, {reason}; "
                        f"{self.unread(where)} not read",
                        where,
                    )
                    break
                self.info.warn(f"bad packet block at byte {where} skipped: {reason}")
                if len(self.info.warnings) >= MAX_WARNINGS:
                    st[_fast.S_QUIET] = 1  # counted in decode_errors from now on
            else:  # pragma: no cover - the scanner returns nothing else
                raise RuntimeError(f"scan returned {rc}")
        if st[_fast.S_ROW]:
            yield self.finish_batch(batch)

    def unread(self, where: int) -> str:
        """What is left after byte ``where``: a byte count when the size is known."""
        if self.header.compression or self.source.size is None:
            return "the rest of the input"
        return f"{max(self.source.size - where, 0):,} bytes"

    def stop(self, message: str, where: int | None = None, cut: bool = False) -> None:
        """Reading ends before a clean end; ``cut``: because the content ends inside a
        record or block (a file cut short or still being written)."""
        self.info.truncated = True
        self.info.ends_early = self.info.ends_early or cut
        self.info.truncated_at = self.base + self.pos if where is None else where
        self.info.warn(message)

    def update_info(self) -> None:
        """Copy the running totals of the state vector and interface table into info."""
        st, info = self.state, self.info
        info.packets = int(st[_fast.S_FRAME])
        info.bytes = int(st[_fast.S_BYTES])
        info.tunnel_reassembled = int(st[_fast.S_RA_DONE])
        info.tunnel_fragments_lost = int(st[_fast.S_RA_LOST] + st[_fast.S_RA_HELD])
        if st[_fast.S_TSMIN] <= st[_fast.S_TSMAX]:
            info.first_seen = int(st[_fast.S_TSMIN])
            info.last_seen = int(st[_fast.S_TSMAX])
        counts = st[_fast.S_STATUS : _fast.S_STATUS + len(STATUS_NAMES)].tolist()
        info.decode_errors = {
            name: int(c) for name, c in zip(STATUS_NAMES, counts, strict=True) if c and name != "ok"
        }
        for i, iface in enumerate(self.iface_info):
            if iface is not None:
                iface.packets = int(self.iftab[i, _fast.IF_PKTS])
        skips = st[_fast.S_SKIP : _fast.S_SKIP + _fast.NSKIP].tolist()
        for kind, n in zip(_SKIPPED_NAMES, skips, strict=True):
            if n:
                info.skipped_blocks[kind] = int(n)
        names: list[str | int] = []
        for iface in info.interfaces:
            name = linktype_name(iface.linktype)
            if name not in names:
                names.append(name)
        info.linktypes = names
        info.snaplen = max((i.snaplen for i in info.interfaces), default=0)
        reported = [i.drops for i in info.interfaces if i.drops is not None]
        info.drops = sum(reported) if reported else None

    # -- pcap -----------------------------------------------------------------------------

    def start_pcap(self) -> None:
        h = self.header
        if not self.fill(24):  # checked by _sniff; the file changed under us
            self.stop(
                self.shrunk() or "file ends inside the pcap file header", cut=self.shrunk_to is None
            )
            return
        self.pos = 24
        self.swap = int(h.order != ("<" if sys.byteorder == "little" else ">"))
        self.info.sections = 1
        iface = InterfaceInfo(0, 0, h.linktype, h.snaplen)
        iface.ticks_per_second = 10**9 if h.fmt == "pcap-ns" else 10**6
        self.info.interfaces.append(iface)
        self.iface_info = [iface]
        self.nif = 1
        self.iftab[0, _fast.IF_LT] = h.linktype
        self.iftab[0, _fast.IF_SNAP] = h.snaplen
        self.iftab[0, _fast.IF_MUL] = 1 if h.fmt == "pcap-ns" else 1000
        self.iftab[0, _fast.IF_DIV] = 1


class PacketReader:
    """An iterable of packet batches (RecordBatch, PACKET_SCHEMA) from one capture file.

    The file is identified when the reader is made (a CaptureError is raised then for
    anything unreadable) and read while it is iterated; ``info`` is the CaptureInfo of the
    current or last pass, complete once iteration has ended. Each iteration reads the file
    again from the start; standard input (``-``) and other pipes can be iterated once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        batch_size: int = 65536,
        span: tuple[int, int] | None = None,
    ) -> None:
        if not 1 <= batch_size <= _fast.MAX_ROWS:
            raise ValueError(f"batch_size must be 1 to {_fast.MAX_ROWS}")
        self.path = os.fspath(path)
        self.batch_size = batch_size
        self.span = span  #: read only these bytes of the file (see split_pcap): one part
        self.source = Input(self.path)
        self._header = _sniff(self.source)
        self.info = self._new_info()
        self._stream: _Stream | None = None

    def _new_info(self) -> CaptureInfo:
        h = self._header
        return CaptureInfo(
            path=self.path,
            format=h.fmt,
            compressed=bool(h.compression),
            compression=h.compression or None,
            byte_order="little" if h.order == "<" else "big",
            version=h.version,
        )

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        info = self._new_info()
        self.info = info
        stream = _Stream(self.source, self._header, info, self.batch_size, self.span)
        self._stream = stream
        stream.open()
        try:
            yield from stream.batches()
        finally:
            stream.close()
            stream.update_info()

    def position(self) -> tuple[int, int | None]:
        """How far the current pass has read, for progress: (bytes done, bytes in all),
        in the file's own bytes (compressed files: compressed bytes); the total is None
        for a pipe. May be called from another thread than the one iterating."""
        stream, size = self._stream, self.source.size
        if stream is None:
            return 0, size
        if self._header.compression and stream.raw is not None and size is not None:
            with contextlib.suppress(OSError, ValueError):
                return stream.raw.tell(), size
        return stream.base + stream.pos, size

    def to_table(self) -> pa.Table:
        """Read the whole capture into one Table (convenient for small captures and tests)."""
        return pa.Table.from_batches(list(self), schema=PACKET_SCHEMA)


def read_packets(path: str | os.PathLike[str], batch_size: int = 65536) -> PacketReader:
    """Open a capture (pcap, pcap-ns, pcapng; gzip- or zstd-compressed or not) for batch
    reading; ``-`` is standard input.

    Raises CaptureError at once when the file is missing, unreadable, empty or not a capture.
    Iterate the result for RecordBatches of at most ``batch_size`` rows; its ``info`` holds
    the capture's metadata once iteration ends.
    """
    return PacketReader(path, batch_size)
