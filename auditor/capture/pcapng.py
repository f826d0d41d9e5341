"""pcapng blocks other than packets: Section Header, Interface Description and Interface
Statistics Blocks, which the C scanner hands back to Python (it handles the packet blocks
itself, with the per-interface table these fill). :class:`PcapngBlocks` is the part of the
reader's stream (:class:`auditor.capture.reader._Stream`) that parses them."""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from math import gcd

import numpy as np

from auditor.capture import _fast
from auditor.capture.info import MAX_LISTED_INTERFACES, CaptureInfo, InterfaceInfo
from auditor.capture.sniff import _PCAPNG_BOM, _shb_problem
from auditor.errors import CaptureError

MAX_META_BLOCKS = 1_000_000  #: pcapng SHB/IDB/ISB blocks read before giving up on a file

# pcapng block types and option codes (IETF draft-ietf-opsawg-pcapng)
_BT_IDB, _BT_ISB = 1, 5
_SHB_OPTS = {2: "hardware", 3: "os", 4: "application"}
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL, _IF_TSOFFSET = 2, 3, 9, 14
_ISB_IFRECV, _ISB_IFDROP, _ISB_OSDROP = 4, 5, 7


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


class PcapngBlocks:
    """The pcapng block handlers of the reader's stream, which provides the state and the
    input methods declared here."""

    info: CaptureInfo
    path: str
    base: int
    pos: int
    order: str
    swap: int
    iftab: np.ndarray
    nif: int
    iface_info: list[InterfaceInfo | None]
    meta_blocks: int
    unlisted: bool
    shrunk_to: int | None

    def fill(self, need: int) -> bool:
        raise NotImplementedError

    def take(self, n: int) -> bytes | None:
        raise NotImplementedError

    def shrunk(self) -> str | None:
        raise NotImplementedError

    def stop(self, message: str, where: int | None = None, cut: bool = False) -> None:
        raise NotImplementedError

    def update_info(self) -> None:
        raise NotImplementedError

    # -- pcapng blocks ----------------------------------------------------------------------

    def block(self) -> bool:
        """Handle the non-packet block at self.pos; False when reading must stop."""
        if not self.fill(12):
            self.stop(
                self.shrunk() or "file ends inside a block header", cut=self.shrunk_to is None
            )
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
                or f"file ends inside a block (type {btype:#x}, {blen} bytes at byte {at})",
                cut=self.shrunk_to is None,
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
