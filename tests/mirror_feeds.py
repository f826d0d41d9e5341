"""Captures of mirror feeds as they come, built from byte literals (tests/packets.py).

One inner conversation (a TCP connection with a request and an answer, and a DNS query)
carried in each encapsulation the decoder takes apart for mirrored traffic: Aruba GRE
(802.11 in GRE), VN-Tag, 802.1BR E-Tag, 802.1ah PBB, GTP-U, and tunnels whose OUTER IP
header was fragmented on its way (ERSPAN II over IPv4, fragments out of order; GRE over
IPv6; VXLAN). Used by tests/test_mirror_feeds.py (against tshark) and, mutated, by
tests/test_sanitizers.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from packets import (
    ACK,
    ET_ERSPAN,
    ET_ETAG,
    ET_PBB,
    ET_QINQ,
    ET_TEB,
    ET_VLAN,
    ET_VNTAG,
    FRAGMENT,
    GRE,
    GRE_ARUBA,
    PORT_GTPU,
    PSH,
    SYN,
    TCP,
    UDP,
    erspan2,
    etag,
    eth,
    frag6,
    gre,
    gtpu,
    ipv4,
    ipv6,
    pbb,
    tcp,
    udp,
    vntag,
    vxlan,
    wlan,
)

CLIENT, SERVER, RESOLVER = "10.1.0.5", "10.1.0.80", "10.1.0.53"
OUT_A, OUT_B = "192.0.2.1", "192.0.2.2"
OUT6_A, OUT6_B = "2001:db8::a", "2001:db8::b"
T0 = 1_764_547_200  # 2025-12-01 00:00:00 UTC
#: the answer is large, so that its tunnel packet exceeds a 576-byte path MTU
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 1200\r\n\r\n" + b"x" * 1200


def conversation() -> list[bytes]:
    """The inner IPv4 packets, in order: a TCP connection and a DNS query/answer."""
    c, s = (CLIENT, 40001), (SERVER, 80)

    def seg(a: tuple[str, int], b: tuple[str, int], flags: int, data: bytes = b"") -> bytes:
        return ipv4(a[0], b[0], TCP, tcp(a[1], b[1], data, flags=flags, seq=1000))

    return [
        seg(c, s, SYN),
        seg(s, c, SYN | ACK),
        seg(c, s, ACK),
        seg(c, s, PSH | ACK, b"GET /disk.vhd HTTP/1.1\r\nHost: appliance\r\n\r\n"),
        seg(s, c, PSH | ACK, ANSWER),
        seg(c, s, ACK),
        ipv4(CLIENT, RESOLVER, UDP, udp(53001, 53, b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6)),
        ipv4(RESOLVER, CLIENT, UDP, udp(53, 53001, b"\x12\x34\x81\x80\x00\x01" + b"\x00" * 6)),
    ]


def frag4(packet: bytes, mtu: int, ident: int) -> list[bytes]:
    """An IPv4 packet (20-byte header) cut into fragments of at most ``mtu`` bytes."""
    hdr, data = packet[:20], packet[20:]
    step = (mtu - 20) // 8 * 8
    out = []
    for off in range(0, len(data), step):
        part = data[off : off + step]
        more = off + step < len(data)
        flags = (0x2000 if more else 0) | off // 8
        h = hdr[:2] + struct.pack("!HHH", 20 + len(part), ident, flags) + hdr[8:]
        out.append(h + part)
    return out


def frag6_packets(src: str, dst: str, nh: int, payload: bytes, mtu: int, ident: int) -> list[bytes]:
    """An IPv6 packet of ``payload`` (next header ``nh``) cut into fragments."""
    step = (mtu - 48) // 8 * 8
    out = []
    for off in range(0, len(payload), step):
        part = payload[off : off + step]
        more = off + step < len(payload)
        out.append(
            ipv6(src, dst, FRAGMENT, frag6(nh, part, offset=off // 8, more=more, ident=ident))
        )
    return out


def outer(packet: bytes) -> bytes:
    return eth(packet, tags=((ET_VLAN, 900),))


def aruba() -> list[bytes]:
    frames = []
    for i, p in enumerate(conversation()):
        kind = GRE_ARUBA + 0x10 * (7 * i % 24)  # 0x8200 ... 0x8370
        frames.append(outer(ipv4(OUT_A, OUT_B, GRE, gre(kind, wlan(p, qos=i % 2 == 0)))))
    return frames


def vn_tag() -> list[bytes]:
    return [eth(vntag(p), ET_VNTAG) for p in conversation()]


def pbb_feed() -> list[bytes]:
    return [
        eth(pbb(eth(p, tags=((ET_VLAN, 20),)), 0x0ABCDE), ET_PBB, tags=((ET_QINQ, 300),))
        for p in conversation()
    ]


def gtp_u() -> list[bytes]:
    frames = []
    for i, p in enumerate(conversation()):
        teid = 0x1000 if i % 2 == 0 else 0x2000
        body = gtpu(p, teid, seq=i) if i % 3 else gtpu(p, teid, ext=(b"\x00\x09",))
        frames.append(outer(ipv4(OUT_A, OUT_B, UDP, udp(PORT_GTPU, PORT_GTPU, body))))
    return frames


def erspan_fragmented() -> list[bytes]:
    """ERSPAN II over IPv4, the outer header fragmented at 576 bytes, last fragment first."""
    frames = []
    for i, p in enumerate(conversation()):
        inner = eth(p)
        tunnel = ipv4(OUT_A, OUT_B, GRE, gre(ET_ERSPAN, erspan2(inner, 7), seq=i))
        frags = frag4(tunnel, 576, ident=100 + i)
        frames += [outer(f) for f in reversed(frags)]
    return frames


def gre6_fragmented() -> list[bytes]:
    """Ethernet in GRE over IPv6, the outer header fragmented at 600 bytes."""
    frames = []
    for i, p in enumerate(conversation()):
        payload = gre(ET_TEB, eth(p), key=5)
        frags = frag6_packets(OUT6_A, OUT6_B, GRE, payload, 600, ident=0x10000 + i)
        frames += [outer(f) for f in frags]
    return frames


def vxlan_fragmented() -> list[bytes]:
    """VXLAN, the outer UDP datagram fragmented at 576 bytes, in order."""
    frames = []
    for i, p in enumerate(conversation()):
        tunnel = ipv4(OUT_A, OUT_B, UDP, udp(50000 + i, 4789, vxlan(eth(p), 4242)))
        frames += [outer(f) for f in frag4(tunnel, 576, ident=200 + i)]
    return frames


def e_tag() -> list[bytes]:
    return [eth(etag(p), ET_ETAG) for p in conversation()]


#: name -> frame builder (Ethernet link type); the first five are compared with tshark
FEEDS: dict[str, Callable[[], list[bytes]]] = {
    "aruba": aruba,
    "vn-tag": vn_tag,
    "pbb": pbb_feed,
    "gtp-u": gtp_u,
    "erspan-fragmented": erspan_fragmented,
    "gre6-fragmented": gre6_fragmented,
    "vxlan-fragmented": vxlan_fragmented,
    "e-tag": e_tag,
}


def pcap(frames: list[bytes], start: int = T0) -> bytes:
    """A classic little-endian microsecond pcap, Ethernet, one frame every 10 ms."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", start + i // 100, (i % 100) * 10_000, len(f), len(f)) + f
    return out


def write_feed(directory: Path, name: str) -> Path:
    path = directory / f"{name}.pcap"
    path.write_bytes(pcap(FEEDS[name]()))
    return path


def all_feeds(directory: Path) -> list[Path]:
    return [write_feed(directory, name) for name in FEEDS]
