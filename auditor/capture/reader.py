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
pages are dropped from the process once scanned, the column arrays of a batch the caller
has let go of are refilled for a later batch, and only the batches the caller still holds
add up.

Payload heads (the ``payload`` column): the first bytes of the captured L4 payload, enough
for the classifier without carrying whole packets: up to 4096 bytes when the payload starts
like a TLS handshake record (``16 03``: a ClientHello/ServerHello with its extensions and,
in TLS 1.2, the certificates), up to 1024 bytes when its first 4 bytes are ASCII letters or
``-``, the 4th may be a space (``GET ``, ``POST``, ``HTTP``, ``SSH-``, SMTP/FTP/IMAP
commands), otherwise up to 128 bytes; empty when the packet has no captured payload.

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
import gzip
import io
import mmap
import os
import stat
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from math import gcd

import numpy as np
import pyarrow as pa

from auditor.capture import _fast
from auditor.capture.schema import PACKET_SCHEMA, STATUS_NAMES
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
MAX_SHB = 1 << 20  #: a pcapng Section Header Block longer than this is malformed
MAX_WARNINGS = 20  #: non-fatal problems kept in CaptureInfo.warnings
MAX_LISTED_INTERFACES = 1024  #: interfaces listed in CaptureInfo (all are decoded)
MAX_META_BLOCKS = 1_000_000  #: pcapng SHB/IDB/ISB blocks read before giving up on a file
PAYLOAD_BYTES_PER_ROW = 512  #: payload buffer per batch row; a batch ends early when it fills

#: LINKTYPE_* numbers (tcpdump.org/linktypes.html) -> short names used in CaptureInfo.
LINKTYPE_NAMES: dict[int, str] = {
    0: "null",
    1: "ethernet",
    3: "ax25",
    6: "ieee802_5",
    7: "arcnet_bsd",
    8: "slip",
    9: "ppp",
    10: "fddi",
    12: "raw",  # DLT_RAW as written by OpenBSD and some tools
    14: "raw",
    50: "ppp_hdlc",
    51: "ppp_ether",
    100: "atm_rfc1483",
    101: "raw",
    104: "c_hdlc",
    105: "ieee802_11",
    107: "frelay",
    108: "loop",
    113: "linux_sll",
    114: "ltalk",
    117: "pflog",
    119: "ieee802_11_prism",
    122: "ip_over_fc",
    123: "sunatm",
    127: "ieee802_11_radiotap",
    129: "arcnet_linux",
    138: "apple_ip_over_ieee1394",
    139: "mtp2_with_phdr",
    140: "mtp2",
    141: "mtp3",
    142: "sccp",
    143: "docsis",
    144: "linux_irda",
    163: "ieee802_11_avs",
    165: "bacnet_ms_tp",
    166: "ppp_pppd",
    169: "gprs_llc",
    177: "linux_lapd",
    187: "bluetooth_hci_h4",
    189: "usb_linux",
    192: "ppi",
    195: "ieee802_15_4_withfcs",
    196: "sita",
    197: "erf",
    201: "bluetooth_hci_h4_with_phdr",
    202: "ax25_kiss",
    203: "lapd",
    204: "ppp_with_dir",
    205: "c_hdlc_with_dir",
    206: "frelay_with_dir",
    209: "ipmb_linux",
    215: "ieee802_15_4_nonask_phy",
    220: "usb_linux_mmapped",
    224: "fc_2",
    225: "fc_2_with_frame_delims",
    226: "ipnet",
    227: "can_socketcan",
    228: "ipv4",
    229: "ipv6",
    230: "ieee802_15_4_nofcs",
    231: "dbus",
    235: "dvb_ci",
    236: "mux27010",
    237: "stanag_5066_d_pdu",
    239: "nflog",
    240: "netanalyzer",
    241: "netanalyzer_transparent",
    242: "ipoib",
    243: "mpeg_2_ts",
    244: "ng40",
    245: "nfc_llcp",
    247: "infiniband",
    248: "sctp",
    249: "usbpcap",
    250: "rtac_serial",
    251: "bluetooth_le_ll",
    253: "netlink",
    254: "bluetooth_linux_monitor",
    255: "bluetooth_bredr_bb",
    256: "bluetooth_le_ll_with_phdr",
    257: "profibus_dl",
    258: "pktap",
    259: "epon",
    260: "ipmi_hpm_2",
    261: "zwave_r1_r2",
    262: "zwave_r3",
    263: "wattstopper_dlm",
    264: "iso_14443",
    265: "rds",
    266: "usb_darwin",
    268: "sdlc",
    270: "loratap",
    271: "vsock",
    272: "nordic_ble",
    273: "docsis31_xra31",
    274: "ethernet_mpacket",
    275: "displayport_aux",
    276: "linux_sll2",
    278: "openvizsla",
    279: "ebhscr",
    280: "vpp_dispatch",
    281: "dsa_tag_brcm",
    282: "dsa_tag_brcm_prepend",
    283: "ieee802_15_4_tap",
    284: "dsa_tag_dsa",
    285: "dsa_tag_edsa",
    286: "elee",
    287: "z_wave_serial",
    288: "usb_2_0",
    289: "atsc_alp",
    290: "etw",
    292: "zboss_ncp",
    293: "usb_2_0_low_speed",
    294: "usb_2_0_full_speed",
    295: "usb_2_0_high_speed",
    296: "auerswald_log",
    297: "zwave_tap",
    298: "silabs_debug_channel",
    299: "fira_uci",
}

_STATUS_UNSUPPORTED = STATUS_NAMES.index("unsupported_linktype")
_STATUS_BAD = STATUS_NAMES.index("bad_record")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

# magic numbers, as the first 4 bytes of the file
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False),  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", True),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_GZIP = b"\x1f\x8b"
# things people mistake for captures, to say what was found instead
_OTHER_MAGICS = [
    (b"BZh", "a bzip2-compressed file (only gzip is read: decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file (only gzip is read: decompress it first)"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file (only gzip is read: decompress it first)"),
    (b"\x04\x22\x4d\x18", "an lz4-compressed file (only gzip is read: decompress it first)"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\xa1\xb2\xcd\x34", "a modified (Kuznetzov) pcap, which is not supported"),
    (b"\x34\xcd\xb2\xa1", "a modified (Kuznetzov) pcap, which is not supported"),
    (b"snoop\x00\x00\x00", "a Sun snoop capture, which is not supported"),
    (b"GMBU", "a Microsoft Network Monitor capture, which is not supported"),
    (b"\x7fELF", "an ELF executable"),
    (b"%PDF", "a PDF document"),
]

# pcapng block types and option codes (IETF draft-ietf-opsawg-pcapng)
_BT_IDB, _BT_ISB = 1, 5
_SHB_OPTS = {2: "hardware", 3: "os", 4: "application"}
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL, _IF_TSOFFSET = 2, 3, 9, 14
_ISB_IFRECV, _ISB_IFDROP, _ISB_OSDROP = 4, 5, 7

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


def linktype_name(linktype: int) -> str | int:
    """The short name of a LINKTYPE_* number, or the number itself when unknown."""
    return LINKTYPE_NAMES.get(linktype, linktype)


@dataclass
class InterfaceInfo:
    """One capture interface: the pcap file header, or a pcapng Interface Description Block."""

    section: int  #: pcapng section (0-based); always 0 for pcap
    index: int  #: interface id inside its section
    linktype: int
    snaplen: int
    name: str | None = None  #: if_name
    description: str | None = None  #: if_description
    ticks_per_second: int = 1_000_000  #: timestamp resolution (if_tsresol)
    ts_offset: int = 0  #: seconds added to every timestamp (if_tsoffset)
    packets: int = 0  #: records read for this interface
    received: int | None = None  #: isb_ifrecv of the last Interface Statistics Block
    drops: int | None = None  #: isb_ifdrop (dropped by the interface/capture buffer)
    os_drops: int | None = None  #: isb_osdrop (dropped by the operating system)


@dataclass
class CaptureInfo:
    """What a capture is and what reading it found; complete once iteration has ended.

    ``packets`` counts rows, including ``bad_record`` rows (a record whose header could not
    be right; its lengths are 0 and it counts in neither ``bytes`` nor the time span).
    ``first_seen``/``last_seen`` are the smallest and largest timestamps, not those of the
    first and last records (captures merged from several sources are not in time order).

    ``decode_errors`` counts rows by non-``ok`` status (keys are ``STATUS_NAMES``:
    ``non_ip``, ``unsupported_linktype``, ``truncated_ip``, ``bad_record``, ...); which link
    types were unsupported, and how many records each, is in ``unsupported_linktypes``.
    They count rows only: a malformed pcapng section header, which has no row, shows in
    ``truncated`` and ``warnings``.
    """

    path: str
    format: str = ""  #: "pcap", "pcap-ns" (nanosecond timestamps) or "pcapng"
    compressed: bool = False  #: gzip, detected by content
    byte_order: str = ""  #: "little" or "big" (of the first section)
    version: str = ""  #: format version from the file header, e.g. "2.4", "1.0"
    linktypes: list[str | int] = field(default_factory=list)  #: names; numbers if unknown
    snaplen: int = 0  #: largest snapshot length declared
    packets: int = 0  #: records read (rows produced)
    bytes: int = 0  #: sum of wire lengths
    first_seen: int | None = None  #: smallest timestamp, ns since the epoch
    last_seen: int | None = None  #: largest timestamp, ns since the epoch
    truncated: bool = False  #: reading stopped before a clean end of the file
    truncated_at: int | None = None  #: byte offset (in the uncompressed stream) of the stop
    decode_errors: dict[str, int] = field(default_factory=dict)
    unsupported_linktypes: dict[int, int] = field(default_factory=dict)
    interfaces: list[InterfaceInfo] = field(default_factory=list)
    drops: int | None = None  #: sum of the interfaces' ISB drop counts; None if never reported
    sections: int = 0  #: pcapng Section Header Blocks (1 for pcap)
    skipped_blocks: dict[str, int] = field(default_factory=dict)  #: pcapng blocks not used
    comments: dict[str, str] = field(default_factory=dict)  #: SHB hardware/os/application
    warnings: list[str] = field(default_factory=list)  #: non-fatal problems (first 20)

    @property
    def format_label(self) -> str:
        """``format`` with ``+gzip`` when compressed, e.g. ``pcapng+gzip``."""
        return self.format + ("+gzip" if self.compressed else "")

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)


@dataclass(frozen=True)
class _Header:
    """What the first bytes of a capture say (see :func:`_sniff`)."""

    kind: int  # _fast.K_PCAP or _fast.K_PCAPNG
    fmt: str
    compressed: bool
    order: str  # struct byte order of the file header / first section
    version: str
    linktype: int = 0  # pcap only
    snaplen: int = 0  # pcap only


# ---- opening and sniffing ------------------------------------------------------------------


def _open(path: str) -> io.FileIO:
    """Open a capture for reading, turning every OS refusal into a CaptureError."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CaptureError(path, "no such file") from None
    except OSError as exc:
        raise CaptureError(path, f"cannot access: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CaptureError(path, "is a directory, not a capture file")
    if not stat.S_ISREG(st.st_mode):
        raise CaptureError(path, "is not a regular file")
    if st.st_size == 0:
        raise CaptureError(path, "empty file (0 bytes)")
    try:
        return open(path, "rb", buffering=0)  # closed by the caller
    except OSError as exc:
        raise CaptureError(path, f"cannot open: {exc.strerror or exc}") from None


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
    """Reads the first bytes of a capture, through gzip when the file starts like gzip."""

    def __init__(self, path: str, raw: io.FileIO) -> None:
        self.path = path
        self.raw = raw
        self.gz: gzip.GzipFile | None = None
        first = self._raw_read(2)
        raw.seek(0)
        if first == _GZIP:
            self.gz = gzip.GzipFile(fileobj=raw)
            if not self.read(1):
                raise CaptureError(path, "gzip-compressed, but there is nothing inside")
            self.gz.seek(0)

    def _raw_read(self, n: int) -> bytes:
        try:
            return self.raw.read(n) or b""
        except OSError as exc:
            raise CaptureError(self.path, f"cannot read: {exc.strerror or exc}") from None

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end of the content)."""
        if self.gz is None:
            return self._raw_read(n)
        out = b""
        try:
            while len(out) < n:
                more = self.gz.read1(n - len(out))
                if not more:
                    break
                out += more
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            if not out:
                why = "ends early" if isinstance(exc, EOFError) else f"is corrupt ({exc})"
                raise CaptureError(
                    self.path, f"gzip-compressed, but the gzip stream {why}", "byte 0"
                ) from None
        except OSError as exc:
            raise CaptureError(self.path, f"cannot read: {exc.strerror or exc}") from None
        return out


def _sniff(path: str) -> _Header:
    """Identify a capture by its first bytes; raise CaptureError when it is not one.

    For pcap the file header and the first record header are checked, for pcapng the
    whole first Section Header Block: a file that passes has at least a valid start.
    """
    with _open(path) as raw:
        src = _HeadReader(path, raw)
        compressed = src.gz is not None
        head = src.read(64)
        inside = "inside gzip: " if compressed else ""
        magic = head[:4]
        if magic in _PCAP_MAGICS:
            return _sniff_pcap(path, head, compressed, inside)
        if magic == _PCAPNG_SHB:
            return _sniff_pcapng(path, src, head, compressed, inside)
    what = "an empty file" if not head else _describe(head)
    if compressed:
        raise CaptureError(path, f"gzip-compressed, but the content is not a capture: found {what}")
    raise CaptureError(path, f"not a pcap or pcapng capture: found {what}", "byte 0")


def _sniff_pcap(path: str, head: bytes, compressed: bool, inside: str) -> _Header:
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
        compressed,
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
    path: str, src: _HeadReader, head: bytes, compressed: bool, inside: str
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
    return _Header(_fast.K_PCAPNG, "pcapng", compressed, order, f"{major}.{minor}")


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of a capture, e.g. ``pcap``, ``pcap-ns``, ``pcapng`` or ``pcapng+gzip``.

    Raises CaptureError for anything that is not a readable capture (by content, not name).
    """
    h = _sniff(os.fspath(path))
    return h.fmt + ("+gzip" if h.compressed else "")


# ---- the batch buffers --------------------------------------------------------------------


_VALIDITY = {
    "ts": "valid_ts",
    "vlan": "valid_vlan",
    "vlan_inner": "valid_vlan_inner",
    "mpls": "valid_mpls",
    "tunnel_id": "valid_tunnel_id",
    "outer_src": "valid_outer",
    "outer_dst": "valid_outer",
    "src_ip": "valid_ip",
    "dst_ip": "valid_ip",
    "flow_key": "valid_ip",
    "flow_dir": "valid_ip",
}
_COLUMN_INDEX = {c[0]: i for i, c in enumerate(_fast.COLUMNS)}
_BITMAPS = [c[0] for c in _fast.COLUMNS if c[2] == "v"]


def _free_refs() -> int:
    """sys.getrefcount of an array held only in a tuple, seen as _Batch.released sees it."""
    arrays = (np.empty(1),)
    return max(sys.getrefcount(a) for a in arrays)


_FREE_REFS = _free_refs()
_FIRST_BITMAP = _COLUMN_INDEX["valid_ts"]


class _Batch:
    """The numpy arrays one batch is written into (layout from ``_fast.COLUMNS``)."""

    def __init__(self, rows: int, data_cap: int) -> None:
        arrays: list[np.ndarray] = []
        for _name, dtype, kind, width in _fast.COLUMNS:
            if kind == "o":
                a = np.empty(rows + 1, dtype)
                a[0] = 0
            elif kind == "d":
                a = np.empty(data_cap, dtype)
            elif kind == "v":
                a = np.zeros((rows + 7) // 8, dtype)
            else:
                a = np.empty(rows * (16 if width == 16 else 1), dtype)
            arrays.append(a)
        self.rows = rows
        self.data_cap = data_cap
        self.arrays = tuple(arrays)

    def column(self, name: str) -> np.ndarray:
        return self.arrays[_COLUMN_INDEX[name]]

    def released(self) -> bool:
        """True when nothing outside this object refers to its arrays any more (the Arrow
        batch made from them, and every view of it, is gone): they can be filled again."""
        return all(sys.getrefcount(a) <= _FREE_REFS for a in self.arrays)

    def clear(self) -> None:
        for name in _BITMAPS:
            self.column(name).fill(0)

    def record_batch(self, n: int, nulls: np.ndarray, data_used: int) -> pa.RecordBatch:
        """The first n rows as an Arrow batch sharing the numpy memory."""
        out = []
        for f in PACKET_SCHEMA:
            if f.name == "payload":
                offsets = self.column("payload_offsets")[: n + 1]
                data = self.column("payload_data")[:data_used]
                out.append(
                    pa.Array.from_buffers(
                        f.type, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)], 0
                    )
                )
                continue
            validity = None
            null_count = 0
            vname = _VALIDITY.get(f.name)
            if vname is not None:
                null_count = int(nulls[_COLUMN_INDEX[vname] - _FIRST_BITMAP])
                if null_count:
                    validity = pa.py_buffer(self.column(vname))
            values = pa.py_buffer(self.column(f.name))
            out.append(pa.Array.from_buffers(f.type, n, [validity, values], null_count))
        return pa.RecordBatch.from_arrays(out, schema=PACKET_SCHEMA)


# ---- reading --------------------------------------------------------------------------------


def _tsresol(value: int) -> tuple[int, int, int] | None:
    """if_tsresol -> (ticks per second, mul, div) with ns = ticks * mul / div; None if absurd."""
    if value & 0x80:
        if (value & 0x7F) > 62:
            return None
        tps = 1 << (value & 0x7F)
    else:
        if value > 18:
            return None
        tps = 10**value
    g = gcd(10**9, tps)
    return tps, 10**9 // g, tps // g


def _options(body: bytes, off: int, order: str) -> Iterator[tuple[int, bytes]]:
    """(code, value) of the pcapng options in body[off:], up to opt_endofopt or the end."""
    while off + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, off)
        if code == 0:
            return
        value = body[off + 4 : off + 4 + length]
        if len(value) < length:
            return
        yield code, value
        off += 4 + ((length + 3) & ~3)


def _text(value: bytes) -> str:
    return value.split(b"\x00", 1)[0].decode("utf-8", "replace")


class _Stream:
    """One pass over a capture: chunked reading, the scanner loop and the pcapng blocks."""

    def __init__(self, path: str, header: _Header, info: CaptureInfo, batch_size: int) -> None:
        self.path = path
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
        self.swap = 0
        self.order = header.order
        self.iftab = np.zeros((4, _fast.IF_W), np.int64)  # the current section's interfaces
        self.nif = 0  # ... rows of iftab in use
        self.iface_info: list[InterfaceInfo | None] = []  # ... their InterfaceInfo if listed
        self.meta_blocks = 0  # blocks parsed in Python (SHB, IDB, ISB)
        self.unlisted = False  # interfaces beyond MAX_LISTED_INTERFACES were seen
        self.raw: io.FileIO | None = None
        self.gz: gzip.GzipFile | None = None
        self.mm: mmap.mmap | None = None
        self.released = 0  # mapped bytes before this offset were dropped from our RSS
        self.size = 0  # uncompressed files: the size at open, read up to there
        self.shrunk_to: int | None = None  # the size found when the file shrank under us
        self.spare: list[_Batch] = []  # the last batches handed out, for reuse once released

    # -- input ---------------------------------------------------------------------------

    def open(self) -> None:
        """Uncompressed files are memory-mapped: the scanner reads the page cache directly,
        without a copy, and pages behind it are dropped (see release()); gzip streams and
        files that cannot be mapped are read in chunks into one reusable buffer. A file is
        read up to its size at open.

        A mapped file that another process truncates meanwhile (a ``tcpdump -W`` ring
        buffer rotating) would end the process with SIGBUS when a page past its new end is
        touched: every read of the mapping is guarded in C (``_fast.scan``, ``_fast.take``),
        and such a fault ends the read like a file that ends early (see shrunk()). Reading
        with ``readinto`` instead costs 10 % more CPU (0.58 s against 0.53 s for the flow
        table of the 1M-packet bench capture), hence the guard."""
        self.raw = _open(self.path)
        if self.header.compressed:
            self.gz = gzip.GzipFile(fileobj=self.raw)
        else:
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
            self.eof = True
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
        """Read into view; 0 at the end. A gzip stream is read with read1(), which never
        loses decompressed bytes when the stream then turns out to be cut or corrupt."""
        try:
            if self.gz is not None:
                data = self.gz.read1(len(view))
                view[: len(data)] = data
                return len(data)
            assert self.raw is not None
            left = self.size - (self.base + self.end)  # read up to the size at open
            if left <= 0:
                return 0
            n = self.raw.readinto(view[:left]) or 0
            if n == 0:  # before the size at open: the file shrank under us
                self.note_shrink()
            return n
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            reason = "gzip stream ends early" if isinstance(exc, EOFError) else f"gzip: {exc}"
            self.info.warn(f"{reason} (at uncompressed byte {self.base + self.end})")
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
        for i, old in enumerate(self.spare):
            if old.released():
                del self.spare[i]
                old.clear()
                return old
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
        self.spare = [*self.spare[-1:], batch]
        return rb

    def batches(self) -> Iterator[pa.RecordBatch]:
        kind = self.header.kind
        st = self.state
        if kind == _fast.K_PCAP:
            self.start_pcap()
        batch = self.new_batch()
        while True:
            st[_fast.S_POS] = self.pos
            st[_fast.S_END] = self.end
            st[_fast.S_SWAP] = self.swap
            rc = _fast.scan(kind, self.buf, st, self.iftab[: self.nif], batch.arrays)
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
                            f"({self.end - self.pos} bytes left)"
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
                    self.stop(f"bad record header at byte {where}: {reason}", where)
                    break
                self.info.warn(f"bad packet block at byte {where} skipped: {reason}")
                if len(self.info.warnings) >= MAX_WARNINGS:
                    st[_fast.S_QUIET] = 1  # counted in decode_errors from now on
            else:  # pragma: no cover - the scanner returns nothing else
                raise RuntimeError(f"scan returned {rc}")
        if st[_fast.S_ROW]:
            yield self.finish_batch(batch)

    def stop(self, message: str, where: int | None = None) -> None:
        self.info.truncated = True
        self.info.truncated_at = self.base + self.pos if where is None else where
        self.info.warn(message)

    def update_info(self) -> None:
        """Copy the running totals of the state vector and interface table into info."""
        st, info = self.state, self.info
        info.packets = int(st[_fast.S_FRAME])
        info.bytes = int(st[_fast.S_BYTES])
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
            self.stop(self.shrunk() or "file ends inside the pcap file header")
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

    # -- pcapng blocks ----------------------------------------------------------------------

    def block(self) -> bool:
        """Handle the non-packet block at self.pos; False when reading must stop."""
        if not self.fill(12):
            self.stop(self.shrunk() or "file ends inside a block header")
            return False
        head = self.take(12)
        if head is None:
            self.stop(self.shrunk() or "")
            return False
        at = self.base + self.pos
        order = self.order
        btype = struct.unpack_from(order + "I", head)[0]
        is_shb = btype == 0x0A0D0D0A
        if is_shb:
            problem = _shb_problem(head)
            if problem:
                return self.bad_section(f"bad section header at byte {at}: {problem[0]}")
            order = _PCAPNG_BOM[head[8:12]]
        blen = struct.unpack_from(order + "I", head, 4)[0]
        self.meta_blocks += 1
        if self.meta_blocks > MAX_META_BLOCKS:
            self.stop(f"more than {MAX_META_BLOCKS} header/interface/statistics blocks")
            return False
        if not self.fill(blen):
            self.stop(
                self.shrunk()
                or f"file ends inside a block (type {btype:#x}, {blen} bytes at byte {at})"
            )
            return False
        body = self.take(blen)
        if body is None:
            self.stop(self.shrunk() or "")
            return False
        if is_shb:
            trailer = struct.unpack_from(order + "I", body, blen - 4)[0]
            if trailer != blen:
                return self.bad_section(
                    f"bad section header at byte {at}: length {blen} at its start, "
                    f"{trailer} at its end"
                )
            self.section(body, order)
        elif btype == _BT_IDB:
            self.interface(body, at)
        elif btype == _BT_ISB:
            self.statistics(body, at)
        # the scanner skips (and counts) every other kind of block itself
        self.pos += blen
        return True

    def bad_section(self, message: str) -> bool:
        """A malformed SHB: nothing after it can be trusted (it has no row: no status)."""
        if self.info.sections == 0:  # _sniff checked it: the file changed under us
            raise CaptureError(self.path, message)
        self.stop(message)
        return False

    def section(self, body: bytes, order: str) -> None:
        self.update_info()  # interface packet counts of the ending section
        self.order = order
        self.swap = int(order != ("<" if sys.byteorder == "little" else ">"))
        info = self.info
        info.sections += 1
        if info.sections == 1:
            info.byte_order = "little" if order == "<" else "big"
        major, minor = struct.unpack_from(order + "HH", body, 12)
        if info.sections > 1 and major != 1:
            info.warn(f"section {info.sections - 1} has pcapng version {major}.{minor}")
        for code, value in _options(body[: len(body) - 4], 24, order):
            key = _SHB_OPTS.get(code)
            if key and key not in info.comments:
                info.comments[key] = _text(value)
        self.iftab = np.zeros((4, _fast.IF_W), np.int64)
        self.nif = 0
        self.iface_info = []

    def interface(self, body: bytes, at: int) -> None:
        order, info = self.order, self.info
        section = max(info.sections - 1, 0)
        iface = InterfaceInfo(section, self.nif, 0xFFFF, 0)
        row = [0] * _fast.IF_W
        row[_fast.IF_MUL], row[_fast.IF_DIV] = 1000, 1
        if len(body) < 20:
            info.warn(f"interface description block at byte {at} is too short")
        else:
            iface.linktype, _res, iface.snaplen = struct.unpack_from(order + "HHI", body, 8)
            for code, value in _options(body[: len(body) - 4], 16, order):
                if code == _IF_NAME:
                    iface.name = _text(value)
                elif code == _IF_DESCRIPTION:
                    iface.description = _text(value)
                elif code == _IF_TSRESOL and value:
                    res = _tsresol(value[0])
                    if res is None:
                        info.warn(f"interface at byte {at}: if_tsresol {value[0]:#x} ignored")
                    else:
                        iface.ticks_per_second, row[_fast.IF_MUL], row[_fast.IF_DIV] = res
                elif code == _IF_TSOFFSET and len(value) >= 8:
                    iface.ts_offset = struct.unpack_from(order + "q", value)[0]
        row[_fast.IF_LT] = iface.linktype
        row[_fast.IF_SNAP] = iface.snaplen
        row[_fast.IF_OFF] = iface.ts_offset  # seconds (int64); the scanner checks the sum
        if self.nif == len(self.iftab):
            self.iftab = np.concatenate([self.iftab, np.zeros_like(self.iftab)])
        self.iftab[self.nif] = row
        self.nif += 1
        if len(info.interfaces) < MAX_LISTED_INTERFACES:
            info.interfaces.append(iface)
            self.iface_info.append(iface)
        else:
            if not self.unlisted:
                self.unlisted = True
                info.warn(
                    f"more than {MAX_LISTED_INTERFACES} interfaces: the others are not listed"
                )
            self.iface_info.append(None)

    def statistics(self, body: bytes, at: int) -> None:
        if len(body) < 24:
            self.info.warn(f"interface statistics block at byte {at} is too short")
            return
        iid = struct.unpack_from(self.order + "I", body, 8)[0]
        if iid >= len(self.iface_info):
            self.info.warn(f"statistics at byte {at} for undefined interface {iid}")
            return
        iface = self.iface_info[iid]
        if iface is None:
            return
        for code, value in _options(body[: len(body) - 4], 20, self.order):
            if len(value) < 8:
                continue
            n = struct.unpack_from(self.order + "Q", value)[0]
            if code == _ISB_IFRECV:
                iface.received = n
            elif code == _ISB_IFDROP:
                iface.drops = n
            elif code == _ISB_OSDROP:
                iface.os_drops = n


class PacketReader:
    """An iterable of packet batches (RecordBatch, PACKET_SCHEMA) from one capture file.

    The file is identified when the reader is made (a CaptureError is raised then for
    anything unreadable) and read while it is iterated; ``info`` is the CaptureInfo of the
    current or last pass, complete once iteration has ended. Each iteration reads the file
    again from the start.
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 65536) -> None:
        if not 1 <= batch_size <= _fast.MAX_ROWS:
            raise ValueError(f"batch_size must be 1 to {_fast.MAX_ROWS}")
        self.path = os.fspath(path)
        self.batch_size = batch_size
        self._header = _sniff(self.path)
        self.info = self._new_info()

    def _new_info(self) -> CaptureInfo:
        h = self._header
        return CaptureInfo(
            path=self.path,
            format=h.fmt,
            compressed=h.compressed,
            byte_order="little" if h.order == "<" else "big",
            version=h.version,
        )

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        info = self._new_info()
        self.info = info
        stream = _Stream(self.path, self._header, info, self.batch_size)
        stream.open()
        try:
            yield from stream.batches()
        finally:
            stream.close()
            stream.update_info()

    def to_table(self) -> pa.Table:
        """Read the whole capture into one Table (convenient for small captures and tests)."""
        return pa.Table.from_batches(list(self), schema=PACKET_SCHEMA)


def read_packets(path: str | os.PathLike[str], batch_size: int = 65536) -> PacketReader:
    """Open a capture (pcap, pcap-ns, pcapng; gzip-compressed or not) for batch reading.

    Raises CaptureError at once when the file is missing, unreadable, empty or not a capture.
    Iterate the result for RecordBatches of at most ``batch_size`` rows; its ``info`` holds
    the capture's metadata once iteration ends.
    """
    return PacketReader(path, batch_size)
