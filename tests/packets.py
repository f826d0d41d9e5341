"""Byte-literal packet builders for decoder tests.

Plain ``struct`` packing, one small function per header, so a test reads like the packet
it builds (``eth(ipv4(..., tcp(...)))``). Checksums are left zero: the decoder never looks
at them. Addresses are given as strings.
"""

from __future__ import annotations

import ipaddress
import struct

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")

# Ethertypes / GRE protocol types
ET_IPV4 = 0x0800
ET_IPV6 = 0x86DD
ET_ARP = 0x0806
ET_VLAN = 0x8100
ET_QINQ = 0x88A8
ET_MPLS = 0x8847
ET_PPPOE = 0x8864
ET_TEB = 0x6558
ET_ERSPAN = 0x88BE
ET_ERSPAN3 = 0x22EB

# IP protocol numbers
ICMP, IPIP, TCP, UDP, IPV6, GRE, ESP, ICMP6, SCTP, OSPF = 1, 4, 6, 17, 41, 47, 50, 58, 132, 89
HOPOPT, ROUTING, FRAGMENT, AH, NONEXT, DSTOPTS = 0, 43, 44, 51, 59, 60

# TCP flags
SYN, ACK, PSH = 0x02, 0x10, 0x08


def a4(addr: str) -> bytes:
    return ipaddress.IPv4Address(addr).packed


def a6(addr: str) -> bytes:
    return ipaddress.IPv6Address(addr).packed


def eth(
    payload: bytes, ethertype: int | None = None, tags: tuple[tuple[int, int], ...] = ()
) -> bytes:
    """Ethernet II frame; tags are (TPID, VID) from the outermost in. The ethertype
    defaults to IPv6 or IPv4 by the payload's version nibble."""
    if ethertype is None:
        ethertype = ET_IPV6 if payload[:1] and payload[0] >> 4 == 6 else ET_IPV4
    hdr = MAC_B + MAC_A
    for tpid, vid in tags:
        hdr += struct.pack("!HH", tpid, vid)
    return hdr + struct.pack("!H", ethertype) + payload


def llc_snap(payload: bytes, ethertype: int = ET_IPV4) -> bytes:
    """802.3 frame with LLC/SNAP header (length field instead of an ethertype)."""
    body = b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ethertype) + payload
    return MAC_B + MAC_A + struct.pack("!H", len(body)) + body


def mpls(payload: bytes, labels: tuple[int, ...] = (100,)) -> bytes:
    out = b""
    for i, label in enumerate(labels):
        bos = 1 if i == len(labels) - 1 else 0
        out += struct.pack("!I", label << 12 | bos << 8 | 64)
    return out + payload


def pppoe(payload: bytes, ppp_proto: int = 0x0021, session: int = 0x1234) -> bytes:
    ppp = struct.pack("!H", ppp_proto) + payload
    return struct.pack("!BBHH", 0x11, 0, session, len(ppp)) + ppp


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    ident: int = 0x1234,
    mf: bool = False,
    frag_offset: int = 0,
    options: bytes = b"",
    total: int | None = None,
    ihl: int | None = None,
) -> bytes:
    """IPv4 header; frag_offset in 8-byte units; total/ihl override the computed fields."""
    hl = 20 + len(options)
    if ihl is None:
        ihl = hl // 4
    if total is None:
        total = hl + len(payload)
    flags = (0x2000 if mf else 0) | frag_offset
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, total, ident, flags, 64, proto, 0, a4(src), a4(dst)
    )
    return hdr + options + payload


def ipv6(src: str, dst: str, nh: int, payload: bytes, *, plen: int | None = None) -> bytes:
    if plen is None:
        plen = len(payload)
    return struct.pack("!IHBB", 0x60000000, plen, nh, 64) + a6(src) + a6(dst) + payload


def ext6(nh: int, payload: bytes, body: bytes = b"\x01\x04\x00\x00\x00\x00") -> bytes:
    """Hop-by-hop / routing / destination options header: 8-byte units (body = 6 + 8k)."""
    assert (len(body) + 2) % 8 == 0
    return struct.pack("!BB", nh, (len(body) + 2) // 8 - 1) + body + payload


def ah6(nh: int, payload: bytes, icv: bytes = b"\x00" * 12) -> bytes:
    """Authentication header: length in 4-byte units minus 2."""
    body = struct.pack("!HII", 0, 0x100, 1) + icv
    return struct.pack("!BB", nh, (len(body) + 2) // 4 - 2) + body + payload


def frag6(nh: int, payload: bytes, *, offset: int = 0, more: bool = False, ident: int = 7) -> bytes:
    """IPv6 fragment header; offset in 8-byte units."""
    return struct.pack("!BBHI", nh, 0, offset << 3 | int(more), ident) + payload


def tcp(
    sport: int,
    dport: int,
    payload: bytes = b"",
    *,
    seq: int = 1000,
    flags: int = SYN,
    options: bytes = b"",
    doff: int | None = None,
) -> bytes:
    if doff is None:
        doff = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, doff << 4, flags, 65535, 0, 0)
    return hdr + options + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(icmp_type: int, code: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BBHHH", icmp_type, code, 0, 1, 1) + payload


def sctp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHII", sport, dport, 0, 0) + payload


def gre(
    proto: int,
    payload: bytes,
    *,
    key: int | None = None,
    seq: int | None = None,
    csum: bool = False,
    version: int = 0,
) -> bytes:
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0)
    flags |= (0x1000 if seq is not None else 0) | version
    hdr = struct.pack("!HH", flags, proto)
    if csum:
        hdr += b"\x00\x00\x00\x00"
    if key is not None:
        hdr += struct.pack("!I", key)
    if seq is not None:
        hdr += struct.pack("!I", seq)
    return hdr + payload


def erspan2(frame: bytes, session: int, vlan: int = 0) -> bytes:
    return struct.pack("!HHI", 0x1000 | vlan, session & 0x3FF, 0) + frame


def erspan3(frame: bytes, session: int, *, ft: int = 0, subheader: bool = False) -> bytes:
    word3 = ft << 10 | (1 if subheader else 0)
    hdr = struct.pack("!HHIHH", 0x2000, session & 0x3FF, 0x12345678, 0, word3)
    if subheader:
        hdr += b"\x00" * 8
    return hdr + frame


def vxlan(frame: bytes, vni: int, flags: int = 0x08, next_proto: int = 0) -> bytes:
    """VXLAN header; with flags 0x0C and next_proto it is VXLAN-GPE (1 IPv4, 2 IPv6, 3 Eth)."""
    return struct.pack("!BBBBI", flags, 0, 0, next_proto, vni << 8) + frame


def geneve(payload: bytes, vni: int, proto: int = ET_TEB, options: bytes = b"") -> bytes:
    assert len(options) % 4 == 0
    return struct.pack("!BBHI", len(options) // 4, 0, proto, vni << 8) + options + payload


def sll(payload: bytes, proto: int = ET_IPV4, hatype: int = 1) -> bytes:
    """Linux cooked capture v1 header (16 bytes)."""
    return struct.pack("!HHH8sH", 0, hatype, 6, MAC_A + b"\x00\x00", proto) + payload


def sll2(payload: bytes, proto: int = ET_IPV4, hatype: int = 1) -> bytes:
    """Linux cooked capture v2 header (20 bytes)."""
    return struct.pack("!HHIHBB8s", proto, 0, 2, hatype, 0, 6, MAC_A + b"\x00\x00") + payload


def null_hdr(af: int, payload: bytes, byteorder: str = "<") -> bytes:
    """BSD loopback: address family in the writer's byte order ('<' or '>')."""
    return struct.pack(byteorder + "I", af) + payload


ET_VNTAG = 0x8926  # Cisco VN-Tag
ET_ETAG = 0x893F  # IEEE 802.1BR E-Tag
ET_PBB = 0x88E7  # IEEE 802.1ah I-Tag
GRE_ARUBA = 0x8200  # Aruba GRE encapsulation IDs 0x8200-0x8370 (step 0x10)
PORT_GTPU = 2152


def vntag(frame_payload: bytes, ethertype: int = ET_IPV4) -> bytes:
    """What follows ethertype 0x8926: the 4-byte VN-Tag, then the frame's own ethertype."""
    return struct.pack("!HHH", 0x8001, 0x0002, ethertype) + frame_payload


def etag(frame_payload: bytes, ethertype: int = ET_IPV4) -> bytes:
    """What follows ethertype 0x893F: the 6-byte E-Tag, then the frame's own ethertype."""
    return struct.pack("!HIH", 0x2001, 0x00030000, ethertype) + frame_payload


def pbb(customer_frame: bytes, isid: int) -> bytes:
    """What follows ethertype 0x88E7: the I-TAG (flags, 24-bit I-SID), the customer frame."""
    return struct.pack("!I", isid & 0xFFFFFF) + customer_frame


def gtpu(payload: bytes, teid: int, *, msg: int = 0xFF, seq: int | None = None,
         ext: tuple[bytes, ...] = ()) -> bytes:  # fmt: skip
    """GTPv1-U header (TS 29.281); ext: extension header contents (padded to 4n - 2 bytes)."""
    flags = 0x30 | (0x02 if seq is not None else 0) | (0x04 if ext else 0)
    opt = b""
    if flags & 0x06:
        body = b""
        for i, x in enumerate(ext):
            units = (len(x) + 2 + 3) // 4
            x = x.ljust(4 * units - 2, b"\x00")
            nxt = 0x85 if i + 1 < len(ext) else 0
            body += bytes([units]) + x + bytes([nxt])
        opt = struct.pack("!HBB", seq or 0, 0, 0x85 if ext else 0) + body
    return struct.pack("!BBHI", flags, msg, len(opt) + len(payload), teid) + opt + payload


def wlan(payload: bytes, *, qos: bool = True, four_addr: bool = False, protected: bool = False,
         ftype: int = 2, subtype: int | None = None, amsdu: bool = False,
         frag: int = 0) -> bytes:  # fmt: skip
    """An 802.11 frame without FCS as Aruba mirrors it; a data frame carries LLC/SNAP + payload
    (an IPv4/IPv6 packet, by its version nibble)."""
    if subtype is None:
        subtype = 8 if qos else 0
    fc0 = (subtype << 4) | (ftype << 2)
    fc1 = (0x03 if four_addr else 0x01) | (0x40 if protected else 0)
    hdr = bytes([fc0, fc1]) + b"\x00\x00" + MAC_A + MAC_B + MAC_A + struct.pack("<H", frag)
    if four_addr:
        hdr += MAC_B
    if subtype & 8:
        hdr += bytes([0x80 if amsdu else 0, 0])
    et = ET_IPV6 if payload[:1] and payload[0] >> 4 == 6 else ET_IPV4
    return hdr + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", et) + payload
