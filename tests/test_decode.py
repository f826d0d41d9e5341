"""The header decoder (decode.c) through ``_fast.decode_one``.

Three layers of evidence:

1. byte-literal packets, one per feature (link types, tags, MPLS, PPPoE, IPv4 options,
   IPv6 extension headers, fragments, transports, every tunnel), each with the fields it
   must produce;
2. robustness: every prefix and seeded random mutations of those packets, under every
   link type, must decode to a sane status; the same inputs plus the whole shared corpus
   go through an AddressSanitizer build of decode.c (exact-size buffers), which is what
   proves "never reads past caplen";
3. agreement with dpkt (plain Ethernet/IP/TCP/UDP in the Zeek traces) and with tshark
   (innermost conversation of tunnel traces).
"""

from __future__ import annotations

import ipaddress
import random
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dpkt
import pytest
from packets import (
    ACK,
    AH,
    DSTOPTS,
    ESP,
    ET_ARP,
    ET_ERSPAN,
    ET_ERSPAN3,
    ET_ETAG,
    ET_IPV4,
    ET_IPV6,
    ET_MPLS,
    ET_PBB,
    ET_PPPOE,
    ET_QINQ,
    ET_TEB,
    ET_VLAN,
    ET_VNTAG,
    FRAGMENT,
    GRE,
    GRE_ARUBA,
    HOPOPT,
    ICMP,
    ICMP6,
    IPIP,
    IPV6,
    NONEXT,
    OSPF,
    PORT_GTPU,
    PSH,
    ROUTING,
    SCTP,
    SYN,
    TCP,
    UDP,
    ah6,
    erspan2,
    erspan3,
    etag,
    eth,
    ext6,
    frag6,
    geneve,
    gre,
    gtpu,
    icmp,
    ipv4,
    ipv6,
    llc_snap,
    mpls,
    null_hdr,
    pbb,
    pppoe,
    sctp,
    sll,
    sll2,
    tcp,
    udp,
    vntag,
    vxlan,
    wlan,
)

from auditor.capture._fast import decode_one
from auditor.capture.schema import STATUS_NAMES, TUNNEL_NAMES

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus not present")

S = {name: i for i, name in enumerate(STATUS_NAMES)}
T = {name or "none": i for i, name in enumerate(TUNNEL_NAMES)}
LT_NULL, LT_ETH, LT_RAW, LT_LOOP = 0, 1, 101, 108
LT_SLL, LT_IPV4, LT_IPV6, LT_SLL2 = 113, 228, 229, 276
DECODED_LINKTYPES = (0, 1, 9, 12, 14, 50, 51, 101, 108, 113, 228, 229, 276)


def addr(b: bytes | None) -> str | None:
    if b is None:
        return None
    a = ipaddress.IPv6Address(b)
    return str(a.ipv4_mapped or a)


def decode(record: bytes, linktype: int) -> dict[str, Any]:
    """decode_one with addresses as strings (IPv4-mapped shown as dotted quad)."""
    d = decode_one(record, linktype)
    for k in ("src_ip", "dst_ip", "outer_src", "outer_dst"):
        d[k] = addr(d[k])
    return d


# ---------------------------------------------------------------- byte-literal cases

# fmt: off
V4A, V4B = "10.0.0.1", "10.0.0.2"
V6A, V6B = "2001:db8::1", "2001:db8::2"
OUT_A, OUT_B = "192.0.2.1", "192.0.2.2"
HTTP = b"GET / HTTP/1.1\r\n\r\n"
TCP4 = ipv4(V4A, V4B, TCP, tcp(40000, 80, HTTP, seq=7, flags=PSH | ACK))
UDP6 = ipv6(V6A, V6B, UDP, udp(5353, 53, b"query"))
ETH_TCP4 = eth(TCP4)

# fields of the two reference conversations
F_TCP4 = dict(status=0, ip_version=4, src_ip=V4A, dst_ip=V4B, proto=TCP, src_port=40000,
              dst_port=80, tcp_flags=PSH | ACK, tcp_seq=7, payload=HTTP, payload_len=len(HTTP),
              frag=0, vlan=-1, vlan_inner=-1, mpls=-1, tunnel=0, tunnel_id=0,
              outer_src=None)
F_UDP6 = dict(status=0, ip_version=6, src_ip=V6A, dst_ip=V6B, proto=UDP, src_port=5353,
              dst_port=53, payload=b"query", payload_len=5, frag=0, ip_id=0)


# fmt: on


def tunneled(tunnel: str, tunnel_id: int, src: str = OUT_A, dst: str = OUT_B) -> dict[str, Any]:
    return dict(tunnel=T[tunnel], tunnel_id=tunnel_id, outer_src=src, outer_dst=dst)


def outer4(proto: int, payload: bytes, **kw: Any) -> bytes:
    return eth(ipv4(OUT_A, OUT_B, proto, payload, **kw))


def nest(levels: int) -> bytes:
    """TCP4 inside `levels` IP-in-IP headers."""
    pkt = TCP4
    for _ in range(levels):
        pkt = ipv4(OUT_A, OUT_B, IPIP, pkt)
    return eth(pkt)


@dataclass(frozen=True)
class Case:
    name: str
    record: bytes
    expect: dict[str, Any]
    linktype: int = LT_ETH
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fields(self) -> dict[str, Any]:
        return {**self.expect, **self.extra}


def case(
    name: str, record: bytes, expect: dict[str, Any], linktype: int = LT_ETH, **extra: Any
) -> Case:
    return Case(name, record, expect, linktype, extra)


TCP_OPTS = b"\x02\x04\x05\xb4\x01\x01\x04\x02"  # MSS, NOP, NOP, SACK-permitted
PADDED = eth(ipv4(V4A, V4B, UDP, udp(1, 2, b"x"))) + b"\x00" * 17  # Ethernet minimum size
NOT_IP = dict(status=S["non_ip"], ip_version=0, proto=0)

# fmt: off
CASES: list[Case] = [
    # --- link types
    case("ethernet", ETH_TCP4, F_TCP4, ip_id=0x1234, inner_off=0),
    case("ethernet-fcs-bits-in-linktype", ETH_TCP4, F_TCP4, linktype=0x30000001),
    case("sll", sll(TCP4), F_TCP4, linktype=LT_SLL),
    case("sll-ipv6", sll(UDP6, ET_IPV6), F_UDP6, linktype=LT_SLL),
    case("sll-netlink", sll(b"\x00" * 20, 0x0010, hatype=824), NOT_IP, linktype=LT_SLL),
    case("sll2", sll2(UDP6, ET_IPV6), F_UDP6, linktype=LT_SLL2),
    case("sll2-vlan", sll2(struct.pack("!HH", 42, ET_IPV4) + TCP4, ET_VLAN), F_TCP4,
         linktype=LT_SLL2, vlan=42),
    case("raw-v4", TCP4, F_TCP4, linktype=LT_RAW),
    case("raw-v6", UDP6, F_UDP6, linktype=LT_RAW),
    case("raw12-v4", TCP4, F_TCP4, linktype=12),
    case("raw14-v6", UDP6, F_UDP6, linktype=14),
    case("raw12-openbsd-loop", null_hdr(2, TCP4, ">"), F_TCP4, linktype=12),
    case("raw-not-ip", b"\x10" * 40, {"status": S["bad_ip_header"]}, linktype=LT_RAW),
    case("linktype-ipv4", TCP4, F_TCP4, linktype=LT_IPV4),
    case("linktype-ipv6", UDP6, F_UDP6, linktype=LT_IPV6),
    case("linktype-ipv4-gets-v6", UDP6, {"status": S["bad_ip_header"]}, linktype=LT_IPV4),
    case("null-le-v4", null_hdr(2, TCP4, "<"), F_TCP4, linktype=LT_NULL),
    case("null-be-v4", null_hdr(2, TCP4, ">"), F_TCP4, linktype=LT_NULL),
    case("null-v6-24", null_hdr(24, UDP6), F_UDP6, linktype=LT_NULL),
    case("null-v6-28", null_hdr(28, UDP6), F_UDP6, linktype=LT_NULL),
    case("null-v6-30", null_hdr(30, UDP6, ">"), F_UDP6, linktype=LT_NULL),
    case("null-other-af", null_hdr(7, b"\x00" * 30), NOT_IP, linktype=LT_NULL),
    case("loop-v4", null_hdr(2, TCP4, ">"), F_TCP4, linktype=LT_LOOP),
    case("loop-v6", null_hdr(30, UDP6, ">"), F_UDP6, linktype=LT_LOOP),
    case("ppp-hdlc-v4", b"\xff\x03\x00\x21" + TCP4, F_TCP4, linktype=9),
    case("ppp-compressed-v6", b"\x57" + UDP6, F_UDP6, linktype=9),
    case("ppp-lcp", b"\xff\x03\xc0\x21" + b"\x01" * 10, NOT_IP, linktype=50),
    case("ppp-ether-v4", b"\x11\x00\x00\x01" + struct.pack("!H", len(TCP4) + 2) + b"\x00\x21"
         + TCP4, F_TCP4, linktype=51),
    case("unsupported-fddi", b"\x50" + b"\x00" * 12 + TCP4, {"status": S["unsupported_linktype"]},
         linktype=10),
    # --- Ethernet payloads: tags, MPLS, PPPoE, LLC, non-IP
    case("vlan", eth(TCP4, tags=((ET_VLAN, 100),)), F_TCP4, vlan=100),
    case("qinq", eth(TCP4, tags=((ET_QINQ, 200), (ET_VLAN, 300))), F_TCP4, vlan=200,
         vlan_inner=300),
    case("three-tags", eth(TCP4, tags=((0x9100, 10), (ET_QINQ, 20), (ET_VLAN, 30))), F_TCP4,
         vlan=10, vlan_inner=20),
    case("priority-tag", eth(TCP4, tags=((ET_VLAN, 0x6000),)), F_TCP4, vlan=-1),
    case("vlan-pcp-bits", eth(TCP4, tags=((ET_VLAN, 0xA000 | 5),)), F_TCP4, vlan=5),
    case("mpls", eth(mpls(TCP4, (16,)), ET_MPLS), F_TCP4, mpls=16),
    case("mpls-stack-v6", eth(mpls(UDP6, (1000, 2000, 3000)), ET_MPLS), F_UDP6, mpls=1000),
    case("mpls-pw-cw", eth(mpls(b"\x00\x00\x00\x01" + eth(TCP4, tags=((ET_VLAN, 7),)), (55,)),
         ET_MPLS, tags=((ET_VLAN, 99),)), F_TCP4, mpls=55, vlan=7),
    case("mpls-pw-no-cw", eth(mpls(ETH_TCP4, (56,)), ET_MPLS), F_TCP4, mpls=56),
    case("mpls-unknown", eth(mpls(b"\x91" * 40, (57,)), ET_MPLS), NOT_IP, mpls=57),
    case("pppoe-v4", eth(pppoe(TCP4), ET_PPPOE), F_TCP4),
    case("pppoe-v6", eth(pppoe(UDP6, 0x0057), ET_PPPOE, tags=((ET_QINQ, 5), (ET_VLAN, 6))),
         F_UDP6, vlan=5, vlan_inner=6),
    case("pppoe-lcp", eth(pppoe(b"\x01\x01\x00\x04", 0xC021), ET_PPPOE), NOT_IP),
    case("pppoe-discovery", eth(b"\x11\x09\x00\x00\x00\x00", 0x8863), NOT_IP),
    case("llc-snap", llc_snap(TCP4), F_TCP4),
    case("llc-stp", eth(b"\x42\x42\x03" + b"\x00" * 35, 38), NOT_IP),
    case("arp", eth(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, ET_ARP), NOT_IP),
    case("lldp", eth(b"\x02\x07\x04" + b"\x00" * 40, 0x88CC), NOT_IP),
    case("vn-tag", eth(vntag(TCP4), ET_VNTAG, tags=((ET_VLAN, 8),)), F_TCP4, vlan=8),
    case("vn-tag-then-vlan", eth(vntag(struct.pack("!HH", 31, ET_IPV6) + UDP6, ET_VLAN),
         ET_VNTAG), F_UDP6, vlan=31),
    case("vn-tag-cut", eth(vntag(TCP4), ET_VNTAG)[:14 + 5], {"status": S["truncated_link"]}),
    case("e-tag", eth(etag(TCP4), ET_ETAG), F_TCP4),
    case("pbb", eth(pbb(eth(TCP4, tags=((ET_VLAN, 77),)), 0x123456), ET_PBB,
         tags=((ET_QINQ, 400),)), F_TCP4, vlan=77),
    case("pbb-untagged-customer", eth(pbb(eth(UDP6), 5), ET_PBB, tags=((ET_QINQ, 400),)),
         F_UDP6, vlan=-1),
    case("pbb-cut", eth(pbb(ETH_TCP4, 5), ET_PBB)[:14 + 10], {"status": S["truncated_link"]}),
    # --- IPv4 header handling
    case("ipv4-options", eth(ipv4(V4A, V4B, TCP, tcp(40000, 80, HTTP, seq=7, flags=PSH | ACK),
         options=b"\x01\x01\x01\x00")), F_TCP4),
    case("ipv4-ihl-below-5", eth(ipv4(V4A, V4B, TCP, tcp(1, 2), ihl=4)),
         {"status": S["bad_ip_header"], "ip_version": 4}),
    case("ipv4-total-below-ihl", eth(ipv4(V4A, V4B, TCP, tcp(1, 2), total=12)),
         {"status": S["bad_ip_header"]}),
    case("ipv4-bad-version", eth(b"\x55" + TCP4[1:]), {"status": S["bad_ip_header"]}),
    case("ipv4-options-cut", eth(ipv4(V4A, V4B, TCP, b"", options=b"\x01" * 40)[:30]),
         {"status": S["truncated_ip"], "src_ip": V4A, "ip_version": 4}),
    case("ipv4-total-beyond-capture", eth(ipv4(V4A, V4B, UDP, udp(7, 9, b"abcd"),
         total=20 + 8 + 1000)), {"status": 0, "payload": b"abcd", "payload_len": 1000}),
    case("ipv4-total-zero-tso", eth(ipv4(V4A, V4B, UDP, udp(7, 9, b"abcd"), total=0)),
         {"status": 0, "payload": b"abcd", "payload_len": 4}),
    case("ethernet-padding", PADDED, {"status": 0, "payload": b"x", "payload_len": 1}),
    # --- IPv6 extension headers
    case("ipv6-ext-chain", eth(ipv6(V6A, V6B, HOPOPT, ext6(ROUTING, ext6(DSTOPTS, ext6(UDP,
         udp(5353, 53, b"query"), b"\x00" * 14))))), F_UDP6),
    case("ipv6-ah", eth(ipv6(V6A, V6B, AH, ah6(UDP, udp(5353, 53, b"query")))), F_UDP6),
    case("ipv4-ah", eth(ipv4(V4A, V4B, AH, ah6(TCP, TCP4[20:]))), F_TCP4),
    case("ipv6-esp", eth(ipv6(V6A, V6B, DSTOPTS, ext6(ESP, b"\x00\x00\x01\x00spi-data"))),
         {"status": 0, "proto": ESP, "src_port": 0, "payload": b"\x00\x00\x01\x00spi-data"}),
    case("ipv6-no-next", eth(ipv6(V6A, V6B, NONEXT, b"")), {"status": 0, "proto": NONEXT}),
    case("ipv6-ext-beyond-packet", eth(ipv6(V6A, V6B, HOPOPT, b"\x11\x05" + b"\x00" * 6)),
         {"status": S["bad_ip_header"], "ip_version": 6}),
    case("ipv6-jumbo-plen-zero", eth(ipv6(V6A, V6B, UDP, udp(5353, 53, b"query"), plen=0)),
         F_UDP6),
    # --- fragments
    case("ipv4-first-fragment", eth(ipv4(V4A, V4B, UDP, udp(1000, 2000, b"part1"), mf=True,
         ident=777)), {"frag": 1, "ip_id": 777, "src_port": 1000, "dst_port": 2000,
         "proto": UDP, "status": 0}),
    case("ipv4-later-fragment", eth(ipv4(V4A, V4B, UDP, b"rest-of-it", frag_offset=185,
         ident=777)), {"frag": 2, "ip_id": 777, "src_port": 0, "dst_port": 0, "proto": UDP,
         "status": 0, "payload": b"rest-of-it", "payload_len": 10}),
    case("ipv4-last-fragment-of-gre", eth(ipv4(V4A, V4B, GRE, b"zz", frag_offset=3)),
         {"frag": 2, "proto": GRE, "tunnel": 0, "status": 0}),
    case("ipv6-first-fragment", eth(ipv6(V6A, V6B, FRAGMENT, frag6(UDP, udp(5353, 53,
         b"query"), more=True, ident=0xDEADBEEF))), {**F_UDP6, "frag": 1,
         "ip_id": 0xDEADBEEF}),
    case("ipv6-later-fragment", eth(ipv6(V6A, V6B, HOPOPT, ext6(FRAGMENT, frag6(UDP, b"tail",
         offset=100, ident=99)))), {"frag": 2, "ip_id": 99, "proto": UDP, "src_port": 0,
         "payload": b"tail", "status": 0}),
    case("ipv6-atomic-fragment", eth(ipv6(V6A, V6B, FRAGMENT, frag6(UDP, udp(5353, 53,
         b"query"), ident=5))), {**F_UDP6, "frag": 0, "ip_id": 5}),
    # --- transports
    case("tcp-options", eth(ipv4(V4A, V4B, TCP, tcp(1, 2, b"data", options=TCP_OPTS,
         flags=SYN))), {"tcp_flags": SYN, "payload": b"data", "payload_len": 4}),
    case("tcp-options-cut-by-snaplen", eth(ipv4(V4A, V4B, TCP, tcp(1, 2, b"data",
         options=TCP_OPTS)))[:14 + 20 + 24], {"status": 0, "src_port": 1, "payload": b"",
         "payload_len": 4}),
    case("tcp-bad-data-offset", eth(ipv4(V4A, V4B, TCP, tcp(1, 2, b"data", doff=3))),
         {"status": 0, "src_port": 1, "dst_port": 2, "payload": b"", "payload_len": 0}),
    case("tcp-header-cut", eth(ipv4(V4A, V4B, TCP, tcp(1, 2)))[:14 + 20 + 10],
         {"status": S["truncated_transport"], "src_port": 1, "dst_port": 2,
          "tcp_seq": 1000}),
    case("udp", eth(ipv4(V4A, V4B, UDP, udp(68, 67, b"dhcp"))),
         {"proto": UDP, "src_port": 68, "dst_port": 67, "payload": b"dhcp"}),
    case("icmp", eth(ipv4(V4A, V4B, ICMP, icmp(8, 0, b"ping"))),
         {"proto": ICMP, "src_port": 8, "dst_port": 0, "payload": b"ping"}),
    case("icmp-unreachable", eth(ipv4(V4A, V4B, ICMP, icmp(3, 13))),
         {"proto": ICMP, "src_port": 3, "dst_port": 13}),
    case("icmpv6", eth(ipv6(V6A, V6B, ICMP6, icmp(135, 0, b"ns")), ET_IPV6),
         {"proto": ICMP6, "src_port": 135, "dst_port": 0, "payload": b"ns"}),
    case("sctp", eth(ipv4(V4A, V4B, SCTP, sctp(2905, 2906, b"chunk"))),
         {"proto": SCTP, "src_port": 2905, "dst_port": 2906, "payload": b"chunk"}),
    case("ospf", eth(ipv4(V4A, "224.0.0.5", OSPF, b"\x02\x01ospf")),
         {"proto": OSPF, "src_port": 0, "dst_port": 0, "payload": b"\x02\x01ospf"}),
    # --- GRE and ERSPAN
    case("gre-key-v4", outer4(GRE, gre(ET_IPV4, TCP4, key=42)), F_TCP4, **tunneled("gre", 42)),
    case("gre-csum-key-seq-v6", outer4(GRE, gre(ET_IPV6, UDP6, key=7, seq=9, csum=True)),
         F_UDP6, **tunneled("gre", 7)),
    case("gre-teb-vlan", eth(ipv4(OUT_A, OUT_B, GRE, gre(ET_TEB, eth(TCP4, tags=((ET_VLAN,
         12),)))), tags=((ET_VLAN, 500),)), F_TCP4, vlan=12, **tunneled("gre", 0)),
    case("gre-over-ipv6", eth(ipv6("fd00::a", "fd00::b", GRE, gre(ET_IPV4, TCP4)), ET_IPV6),
         F_TCP4, **tunneled("gre", 0, "fd00::a", "fd00::b")),
    case("gre-mpls", outer4(GRE, gre(ET_MPLS, mpls(TCP4, (77,)))), F_TCP4, mpls=77,
         **tunneled("gre", 0)),
    case("gre-pptp-v1", outer4(GRE, gre(0x880B, b"\x00\x10\x00\x01ppp", version=1)),
         {"status": 0, "proto": GRE, "tunnel": 0, "src_ip": OUT_A, "src_port": 0}),
    case("gre-unknown-payload", outer4(GRE, gre(0x2000, b"cdp")),
         {"status": 0, "proto": GRE, "tunnel": 0, "payload": gre(0x2000, b"cdp")}),
    case("gre-version-3", outer4(GRE, gre(ET_IPV4, TCP4, version=3)),
         {"status": S["bad_tunnel"], "proto": GRE, "src_ip": OUT_A}),
    case("gre-header-cut", outer4(GRE, gre(ET_IPV4, TCP4, key=1))[:14 + 20 + 6],
         {"status": S["truncated_transport"], "proto": GRE, "tunnel": 0}),
    case("erspan1", outer4(GRE, gre(ET_ERSPAN, eth(TCP4, tags=((ET_VLAN, 3),)))), F_TCP4,
         vlan=3, **tunneled("erspan1", 0)),
    case("erspan2", outer4(GRE, gre(ET_ERSPAN, erspan2(ETH_TCP4, 77, vlan=10), seq=1)), F_TCP4,
         **tunneled("erspan2", 77)),
    case("erspan2-bad-version", outer4(GRE, gre(ET_ERSPAN, b"\x70" + erspan2(ETH_TCP4, 1)[1:],
         seq=1)), {"status": S["bad_tunnel"], **tunneled("erspan2", 0)}),
    case("erspan3", outer4(GRE, gre(ET_ERSPAN3, erspan3(ETH_TCP4, 300), seq=1)), F_TCP4,
         **tunneled("erspan3", 300)),
    case("erspan3-subheader", outer4(GRE, gre(ET_ERSPAN3, erspan3(ETH_TCP4, 301,
         subheader=True), seq=1)), F_TCP4, **tunneled("erspan3", 301)),
    case("erspan3-ip-frame", outer4(GRE, gre(ET_ERSPAN3, erspan3(UDP6, 302, ft=2), seq=1)),
         F_UDP6, **tunneled("erspan3", 302)),
    case("erspan3-unknown-frame-type", outer4(GRE, gre(ET_ERSPAN3, erspan3(ETH_TCP4, 303,
         ft=7), seq=1)), {**NOT_IP, **tunneled("erspan3", 303)}),
    # --- Aruba GRE: 802.11 data frames
    case("aruba-qos-data", outer4(GRE, gre(GRE_ARUBA, wlan(TCP4))), F_TCP4,
         inner_off=14 + 20 + 4, **tunneled("aruba", 0)),
    case("aruba-8360-data-ipv6", outer4(GRE, gre(0x8360, wlan(UDP6, qos=False), key=3)),
         F_UDP6, **tunneled("aruba", 3)),
    case("aruba-four-address", outer4(GRE, gre(0x8370, wlan(TCP4, four_addr=True))), F_TCP4,
         **tunneled("aruba", 0)),
    case("aruba-protected", outer4(GRE, gre(GRE_ARUBA, wlan(TCP4, protected=True))),
         {**NOT_IP, **tunneled("aruba", 0)}),
    case("aruba-beacon", outer4(GRE, gre(GRE_ARUBA, wlan(TCP4, ftype=0, subtype=8))),
         {**NOT_IP, **tunneled("aruba", 0)}),
    case("aruba-null-data", outer4(GRE, gre(GRE_ARUBA, wlan(b"", subtype=12))),
         {**NOT_IP, **tunneled("aruba", 0)}),
    case("aruba-amsdu", outer4(GRE, gre(GRE_ARUBA, wlan(TCP4, amsdu=True))),
         {**NOT_IP, **tunneled("aruba", 0)}),
    case("aruba-later-80211-fragment", outer4(GRE, gre(GRE_ARUBA, wlan(TCP4, frag=1))),
         {**NOT_IP, **tunneled("aruba", 0)}),
    case("aruba-cut", outer4(GRE, gre(GRE_ARUBA, wlan(TCP4)))[:14 + 20 + 4 + 20],
         {"status": S["truncated_link"], **tunneled("aruba", 0)}),
    case("gre-8201-not-aruba", outer4(GRE, gre(0x8201, wlan(TCP4))),
         {"status": 0, "proto": GRE, "tunnel": 0}),
    case("gre-9000-not-aruba", outer4(GRE, gre(0x9000, wlan(TCP4))),
         {"status": 0, "proto": GRE, "tunnel": 0}),
    # --- UDP tunnels
    case("gtpu-ipv4", outer4(UDP, udp(PORT_GTPU, PORT_GTPU, gtpu(TCP4, 0xDEADBEEF))), F_TCP4,
         inner_off=14 + 20 + 8 + 8, **tunneled("gtpu", 0xDEADBEEF)),
    case("gtpu-seq-ipv6", outer4(UDP, udp(40000, PORT_GTPU, gtpu(UDP6, 9, seq=5))), F_UDP6,
         inner_off=14 + 20 + 8 + 12, **tunneled("gtpu", 9)),
    case("gtpu-from-2152", outer4(UDP, udp(PORT_GTPU, 40000, gtpu(TCP4, 10))), F_TCP4,
         **tunneled("gtpu", 10)),
    case("gtpu-extension-headers", outer4(UDP, udp(PORT_GTPU, PORT_GTPU, gtpu(TCP4, 11,
         ext=(b"\x00\x05", b"\x01" * 6)))), F_TCP4, **tunneled("gtpu", 11)),
    case("gtpu-echo-request", outer4(UDP, udp(PORT_GTPU, PORT_GTPU, gtpu(b"", 0, msg=1,
         seq=1))), {"status": 0, "proto": UDP, "dst_port": PORT_GTPU, "tunnel": 0}),
    case("gtpu-not-ip", outer4(UDP, udp(PORT_GTPU, PORT_GTPU, gtpu(b"\x00" * 20, 12))),
         {**NOT_IP, **tunneled("gtpu", 12)}),
    case("gtpu-extension-cut", outer4(UDP, udp(PORT_GTPU, PORT_GTPU, gtpu(TCP4, 13,
         ext=(b"\x00" * 10,))))[:14 + 20 + 8 + 14], {"status": S["truncated_link"],
         **tunneled("gtpu", 13)}),
    case("gtpu-extension-length-zero", outer4(UDP, udp(PORT_GTPU, PORT_GTPU,
         gtpu(TCP4, 14, ext=(b"\x00\x00",))[:12] + b"\x00" + TCP4)),
         {"status": S["bad_tunnel"], **tunneled("gtpu", 14)}),
    case("vxlan", outer4(UDP, udp(50000, 4789, vxlan(eth(TCP4, tags=((ET_VLAN, 9),)), 5000))),
         F_TCP4, vlan=9, inner_off=14 + 20 + 8 + 8, **tunneled("vxlan", 5000)),
    case("vxlan-8472", outer4(UDP, udp(50000, 8472, vxlan(ETH_TCP4, 1))), F_TCP4,
         **tunneled("vxlan", 1)),
    case("vxlan-gpe-ipv6", outer4(UDP, udp(50000, 4790, vxlan(UDP6, 2, 0x0C, next_proto=2))),
         F_UDP6, **tunneled("vxlan", 2)),
    case("vxlan-gpe-nsh", outer4(UDP, udp(50000, 4790, vxlan(b"\x00" * 24, 2, 0x0C, 4))),
         {"status": 0, "proto": UDP, "dst_port": 4790, "tunnel": 0}),
    case("vxlan-no-i-flag", outer4(UDP, udp(50000, 4789, vxlan(ETH_TCP4, 3, flags=0))),
         {"status": 0, "proto": UDP, "dst_port": 4789, "src_ip": OUT_A, "tunnel": 0}),
    case("vxlan-too-short", outer4(UDP, udp(50000, 4789, b"\x08\x00")),
         {"status": 0, "proto": UDP, "dst_port": 4789, "tunnel": 0}),
    case("vxlan-arp", outer4(UDP, udp(50000, 4789, vxlan(eth(b"\x00" * 28, ET_ARP), 4))),
         {**NOT_IP, **tunneled("vxlan", 4)}),
    case("vxlan-inner-cut", outer4(UDP, udp(50000, 4789, vxlan(b"\x02\x00\x00", 5))),
         {"status": S["truncated_link"], **tunneled("vxlan", 5)}),
    case("geneve-ethernet-options", outer4(UDP, udp(50000, 6081, geneve(ETH_TCP4, 0xABCDE,
         options=b"\x01\x02\x03\x01" + b"\x00" * 4))), F_TCP4,
         **tunneled("geneve", 0xABCDE)),
    case("geneve-ipv6", outer4(UDP, udp(50000, 6081, geneve(UDP6, 11, ET_IPV6))), F_UDP6,
         **tunneled("geneve", 11)),
    case("geneve-version-1", outer4(UDP, udp(50000, 6081, b"\x40" + geneve(ETH_TCP4, 1)[1:])),
         {"status": 0, "proto": UDP, "dst_port": 6081, "tunnel": 0}),
    case("geneve-options-cut", outer4(UDP, udp(50000, 6081, b"\x3f" + geneve(b"", 9)[1:])),
         {"status": S["truncated_link"], **tunneled("geneve", 9)}),
    # --- IP in IP, nesting
    case("ipip", outer4(IPIP, TCP4), F_TCP4, inner_off=14 + 20, **tunneled("ipip", 0)),
    case("ipv6-in-ipv4", outer4(IPV6, UDP6), F_UDP6, **tunneled("ipip", 0)),
    case("ipv4-in-ipv6", eth(ipv6("fd00::1", "fd00::2", IPIP, TCP4), ET_IPV6), F_TCP4,
         **tunneled("ipip", 0, "fd00::1", "fd00::2")),
    case("ipip-inner-version-mismatch", outer4(IPIP, UDP6),
         {"status": S["bad_ip_header"], **tunneled("ipip", 0)}),
    case("gre-in-vxlan", outer4(UDP, udp(1, 4789, vxlan(eth(ipv4("172.16.0.1", "172.16.0.2",
         GRE, gre(ET_IPV4, TCP4, key=5))), 6))), F_TCP4,
         **tunneled("gre", 5, "172.16.0.1", "172.16.0.2")),
    case("nested-4-levels", nest(4), F_TCP4, **tunneled("ipip", 0)),
    case("nested-5-levels", nest(5), {"status": S["bad_tunnel"], "proto": IPIP}),
    case("fragmented-gre-not-decapsulated", outer4(GRE, gre(ET_IPV4, TCP4), mf=True),
         {"status": 0, "proto": GRE, "frag": 1, "tunnel": 0, "src_ip": OUT_A}),
    # --- truncation at each layer
    case("empty-ethernet", b"", {"status": S["truncated_link"]}),
    case("ethernet-cut", ETH_TCP4[:13], {"status": S["truncated_link"]}),
    case("vlan-cut", eth(TCP4, tags=((ET_VLAN, 5),))[:16], {"status": S["truncated_link"]}),
    case("ipv4-cut", ETH_TCP4[:14 + 19], {"status": S["truncated_ip"], "ip_version": 4}),
    case("ipv6-cut", eth(UDP6, ET_IPV6)[:14 + 39], {"status": S["truncated_ip"],
         "ip_version": 6}),
    case("null-cut", b"\x02\x00", {"status": S["truncated_link"]}, linktype=LT_NULL),
    case("sll-cut", sll(TCP4)[:15], {"status": S["truncated_link"]}, linktype=LT_SLL),
]

# fmt: on
CASE_IDS = [c.name for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "duplicate case names"


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_decode_fields(c: Case) -> None:
    got = decode(c.record, c.linktype)
    want = c.fields
    assert {k: got[k] for k in want} == want


def test_case_table_covers_every_tunnel_and_link_type() -> None:
    tunnels = {c.fields.get("tunnel") for c in CASES}
    assert tunnels >= set(range(len(TUNNEL_NAMES)))
    assert {c.linktype for c in CASES} >= set(DECODED_LINKTYPES)


def test_ipv4_mapped_addresses() -> None:
    d = decode_one(ETH_TCP4, LT_ETH)
    assert d["src_ip"] == b"\x00" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1])
    assert d["outer_src"] is None


def test_tunnel_outer_addresses_are_the_innermost_tunnels() -> None:
    d = decode(nest(3), LT_ETH)
    assert (d["outer_src"], d["outer_dst"], d["src_ip"]) == (OUT_A, OUT_B, V4A)


# ---------------------------------------------------------------- robustness

VALID_STATUS = set(range(len(STATUS_NAMES))) - {S["ip_fragment"]}
TRUNCATION = {
    S["ok"],
    S["non_ip"],
    S["truncated_link"],
    S["truncated_ip"],
    S["truncated_transport"],
}


def check_sane(d: dict[str, Any], record: bytes) -> None:
    assert d["status"] in VALID_STATUS
    assert d["tunnel"] < len(TUNNEL_NAMES)
    assert d["ip_version"] in (0, 4, 6)
    assert d["frag"] in (0, 1, 2)
    assert len(d["payload"]) <= d["payload_len"]
    assert len(d["payload"]) <= len(record)
    assert d["inner_off"] <= len(record)
    assert d["payload"] in record
    assert (d["outer_src"] is None) == (d["tunnel"] == 0)
    if d["status"] == 0:
        assert d["ip_version"] in (4, 6)
    if d["ip_version"] == 0:
        assert d["src_ip"] == "::" and d["proto"] == 0
    if d["frag"] == 2:
        assert d["src_port"] == d["dst_port"] == 0


def mutations(record: bytes, n: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for _ in range(n):
        b = bytearray(record)
        for _ in range(rng.randint(1, 4)):
            if not b:
                break
            i = rng.randrange(len(b))
            b[i] = rng.choice((0, 0xFF, rng.randrange(256), b[i] ^ (1 << rng.randrange(8))))
        if rng.random() < 0.3:
            b = b[: rng.randrange(len(b) + 1)]
        yield bytes(b)


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_every_prefix_decodes_sanely(c: Case) -> None:
    full = decode(c.record, c.linktype)
    for n in range(len(c.record)):
        rec = c.record[:n]
        d = decode(rec, c.linktype)
        check_sane(d, rec)
        assert d["status"] in TRUNCATION | {full["status"]}, n


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_mutations_and_other_link_types_decode_sanely(c: Case) -> None:
    for i, rec in enumerate(mutations(c.record, 150, seed=CASE_IDS.index(c.name))):
        check_sane(decode(rec, c.linktype), rec)
        lt = DECODED_LINKTYPES[i % len(DECODED_LINKTYPES)]
        check_sane(decode(rec, lt), rec)


def test_unsupported_linktype_touches_nothing() -> None:
    for lt in (10, 105, 127, 0x0FFFFFFF, 2**32 - 1):
        d = decode(ETH_TCP4, lt)
        assert (d["status"], d["ip_version"], d["payload"]) == (S["unsupported_linktype"], 0, b"")


# ---------------------------------------------------------------- AddressSanitizer build

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "decode.h"

/* stdin: records of [u32 linktype][u32 length][bytes], little-endian. Each is decoded
 * from a malloc'ed buffer of exactly its length so ASan flags any read past caplen. */
int main(void)
{
    uint32_t hdr[2];
    unsigned long n = 0;
    while (fread(hdr, 4, 2, stdin) == 2) {
        uint8_t *buf = malloc(hdr[1] ? hdr[1] : 1);
        if (hdr[1] && fread(buf, 1, hdr[1], stdin) != hdr[1]) return 3;
        pc_pkt o;
        pc_decode(buf, hdr[1], hdr[0], &o);
        if (o.status > PC_BAD_RECORD || o.status == PC_IP_FRAGMENT || o.tunnel > PC_TUN_ARUBA ||
            o.payload_caplen > o.payload_len || o.payload_off > hdr[1] || o.inner_off > hdr[1] ||
            (o.fr_outer && (o.fr_ip_off > o.fr_data_off || o.fr_data_off > hdr[1])) ||
            o.payload_caplen > hdr[1] - o.payload_off || o.frag > 2) {
            fprintf(stderr, "record %lu: insane output status %d\n", n, o.status);
            return 2;
        }
        free(buf);
        n++;
    }
    printf("%lu\n", n);
    return 0;
}
"""


def corpus_records() -> Iterator[tuple[int, bytes]]:
    """(linktype, record) for every record dpkt can read in the corpus."""
    for path in sorted(CORPUS.glob("*/*")):
        if path.suffix not in (".pcap", ".pcapng", ".cap"):
            continue
        with path.open("rb") as f:
            try:
                try:
                    reader: Any = dpkt.pcap.Reader(f)
                except ValueError:
                    f.seek(0)
                    reader = dpkt.pcapng.Reader(f)
                linktype = reader.datalink()
                for _, buf in reader:
                    yield linktype, bytes(buf)
            except Exception:  # unreadable file or tail: the reader's problem, not ours
                continue


def asan_inputs() -> Iterator[tuple[int, bytes]]:
    for c in CASES:
        for n in range(len(c.record) + 1):
            yield c.linktype, c.record[:n]
        for i, rec in enumerate(mutations(c.record, 300, seed=1000 + CASE_IDS.index(c.name))):
            yield c.linktype, rec
            yield DECODED_LINKTYPES[i % len(DECODED_LINKTYPES)], rec
    if CORPUS.exists():
        rng = random.Random(7)
        for lt, rec in corpus_records():
            yield lt, rec
            yield lt, rec[: rng.randrange(len(rec) + 1)]


@pytest.fixture(scope="module")
def asan_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("asan")
    (d / "harness.c").write_text(HARNESS)
    exe = d / "harness"
    src = REPO / "auditor" / "capture"
    cmd = [
        cc,
        "-std=c99",
        "-O1",
        "-g",
        "-Wall",
        "-Werror",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-I",
        str(src),
        str(src / "decode.c"),
        str(d / "harness.c"),
        "-o",
        str(exe),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        if "sanitize" in r.stderr or "asan" in r.stderr:
            pytest.skip(f"no AddressSanitizer runtime: {r.stderr[:200]}")
        pytest.fail(f"decode.c does not compile cleanly with -Wall -Werror:\n{r.stderr}")
    return exe


def test_asan_no_read_past_caplen(asan_binary: Path, tmp_path: Path) -> None:
    stream = tmp_path / "records.bin"
    count = 0
    with stream.open("wb") as f:
        for lt, rec in asan_inputs():
            f.write(struct.pack("<II", lt & 0xFFFFFFFF, len(rec)) + rec)
            count += 1
    with stream.open("rb") as f:
        r = subprocess.run([str(asan_binary)], stdin=f, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout) == count


# ---------------------------------------------------------------- corpus agreement


def read_capture(path: Path) -> tuple[int, list[bytes]]:
    with path.open("rb") as f:
        try:
            reader: Any = dpkt.pcap.Reader(f)
        except ValueError:
            f.seek(0)
            reader = dpkt.pcapng.Reader(f)
        return reader.datalink(), [bytes(buf) for _, buf in reader]


def dpkt_ip(buf: bytes, linktype: int) -> Any:
    """The IP/IP6 object dpkt finds (through VLAN/MPLS/PPPoE), or None."""
    try:
        if linktype == LT_ETH:
            pkt: Any = dpkt.ethernet.Ethernet(buf)
        elif linktype == LT_NULL:
            pkt = dpkt.loopback.Loopback(buf)
        else:
            return None
    except (dpkt.dpkt.Error, struct.error, ValueError, IndexError):
        return None
    while pkt is not None and not isinstance(pkt, dpkt.ip.IP | dpkt.ip6.IP6):
        pkt = pkt.data if isinstance(pkt, dpkt.Packet) else None
    return pkt


def zeek_traces() -> list[Path]:
    return sorted((CORPUS / "zeek").glob("*.pcap*")) if CORPUS.exists() else []


@needs_corpus
@pytest.mark.corpus
def test_zeek_traces_agree_with_dpkt() -> None:
    compared = 0
    mismatches: list[str] = []
    for path in zeek_traces():
        linktype, records = read_capture(path)
        for i, buf in enumerate(records, 1):
            ip = dpkt_ip(buf, linktype)
            if ip is None or not isinstance(ip.data, dpkt.tcp.TCP | dpkt.udp.UDP):
                continue
            d = decode(buf, linktype)
            if d["tunnel"] or d["frag"]:
                continue  # dpkt does not decapsulate; fragments checked elsewhere
            src = ipaddress.ip_address(ip.src)
            dst = ipaddress.ip_address(ip.dst)
            proto = ip.p if isinstance(ip, dpkt.ip.IP) else ip.nxt
            if isinstance(ip, dpkt.ip6.IP6):
                proto = TCP if isinstance(ip.data, dpkt.tcp.TCP) else UDP
            want = (0, str(src), str(dst), proto, ip.data.sport, ip.data.dport)
            got = (d["status"], d["src_ip"], d["dst_ip"], d["proto"], d["src_port"], d["dst_port"])
            compared += 1
            if got != want:
                mismatches.append(f"{path.name}#{i}: dpkt {want} decode {got}")
    assert compared > 55_000
    assert not mismatches, "\n".join(mismatches[:20])


TUNNEL_TRACES = {
    # file: (tunnel name expected on its IP packets, minimum number of decapsulated ones)
    "zeek/erspan.pcap": ("gre", 200),
    "zeek/tunnels__gre-within-gre.pcap": ("gre", 600),
    "zeek/tunnels__geneve-47101.pcap": ("geneve", 20),
    "tcpdump/vxlan.pcap": ("vxlan", 8),
    "tcpdump/vxlan_port_8472.pcap": ("vxlan", 8),
    "tcpdump/geneve.pcap": ("geneve", 30),
    "tcpdump/erspan-type-i-1.pcap": ("erspan1", 2),
    "tcpdump/erspan-type-ii-2.pcap": ("erspan2", 16),
    "tcpdump/erspan-type-iii-ft-0.pcap": ("erspan3", 9),
    "tcpdump/wccp_redirect_gre.pcap": ("gre", 1),
    "tcpdump/gso-ipv4-vxlan-ipv6.pcap": ("vxlan", 1),
    "tcpdump/gso-ipv6-geneve-ipv4.pcap": ("geneve", 1),
    "tcpdump/bigtcp-ipv4-vxlan-ipv4.pcap": ("vxlan", 1),
    "tcpdump/bigtcp-ipv6-geneve-ipv6.pcap": ("geneve", 1),
}


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(TUNNEL_TRACES))
def test_tunnel_traces_are_decapsulated(name: str) -> None:
    tunnel, minimum = TUNNEL_TRACES[name]
    linktype, records = read_capture(CORPUS / name)
    decoded = [decode(r, linktype) for r in records]
    inner = [d for d in decoded if d["tunnel"] == T[tunnel] and d["status"] == 0]
    assert len(inner) >= minimum
    for d in inner:
        assert d["outer_src"] is not None and d["ip_version"] in (4, 6)
        assert d["src_ip"] != d["outer_src"]


def tshark_fields(path: Path) -> list[list[str]]:
    cmd = [
        "tshark",
        "-r",
        str(path),
        "-n",
        "-o",
        "ip.defragment:FALSE",
        "-o",
        "ipv6.defragment:FALSE",
        "-d",
        "udp.port==8472,vxlan",
        "-T",
        "fields",
        "-E",
        "occurrence=l",
        "-e",
        "frame.protocols",
        "-e",
        "ip.src",
        "-e",
        "ip.dst",
        "-e",
        "ipv6.src",
        "-e",
        "ipv6.dst",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.dstport",
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
        "-e",
        "_ws.malformed",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def tshark_innermost(row: list[str]) -> tuple[str, str, str, int, int] | None:
    """(src, dst, transport, sport, dport) of the innermost IP packet, None when unclear
    (malformed, or an ICMP error quoting an IP header, which tshark shows as a last IP)."""
    chain = row[0].split(":")
    ips = [i for i, p in enumerate(chain) if p in ("ip", "ipv6")]
    icmps = [i for i, p in enumerate(chain) if p in ("icmp", "icmpv6")]
    if row[-1] or (icmps and ips and ips[-1] > icmps[0]):
        return None
    if not ips:
        return None
    last = ips[-1]
    after = [p for p in chain[last + 1 :] if not p.startswith("ipv6.")]
    l4 = after[0] if after else ""
    src, dst = (row[1], row[2]) if chain[last] == "ip" else (row[3], row[4])
    if l4 == "tcp":
        return src, dst, l4, int(row[5]), int(row[6])
    if l4 == "udp":
        return src, dst, l4, int(row[7]), int(row[8])
    return src, dst, l4, 0, 0


TSHARK_TRACES = sorted(
    [n for n in TUNNEL_TRACES if "bigtcp" not in n]  # tshark calls BIG TCP malformed
    + [
        "tcpdump/various_gre.pcap",
        "zeek/pppoe-over-qinq.pcap",
        "zeek/ip6_esp.pcap",
        "tcpdump/ipv6-routing-header.pcap",
        "tcpdump/LINKTYPE_RAW_ipv4.pcap",
        "tcpdump/LINKTYPE_RAW_ipv6.pcap",
        "zeek/http__bro.org.pcap",
    ]
)


@needs_corpus
@pytest.mark.corpus
@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", TSHARK_TRACES)
def test_innermost_conversation_agrees_with_tshark(name: str) -> None:
    path = CORPUS / name
    linktype, records = read_capture(path)
    rows = tshark_fields(path)
    assert len(rows) == len(records)
    compared = 0
    mismatches = []
    for i, (buf, row) in enumerate(zip(records, rows, strict=True), 1):
        want = tshark_innermost(row)
        d = decode(buf, linktype)
        if want is None or d["frag"] or d["status"] != 0:
            continue
        compared += 1
        got: tuple[Any, ...] = (d["src_ip"], d["dst_ip"])
        want_cmp: tuple[Any, ...] = want[:2]
        if want[2] in ("tcp", "udp"):
            got += ({TCP: "tcp", UDP: "udp"}.get(d["proto"]), d["src_port"], d["dst_port"])
            want_cmp = want
        if got != want_cmp:
            mismatches.append(f"#{i}: tshark {want_cmp} decode {got} ({row[0]})")
    assert not mismatches, "\n".join(mismatches[:20])
    assert compared > 0
