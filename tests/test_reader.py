"""The capture reader: formats, chunking, metadata, damaged files and fatal errors.

Captures are written here, byte by byte where the point is the container (pcap byte orders,
pcapng sections, block kinds) and with dpkt where it is a real writer's output.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import dpkt
import numpy as np
import pyarrow as pa
import pytest

from auditor.capture import (
    PACKET_SCHEMA,
    STATUS_NAMES,
    CaptureInfo,
    _fast,
    detect_format,
    inputs,
    read_packets,
    reader,
)
from auditor.errors import CaptureError

T0 = 1_700_000_000  # seconds; timestamps below are T0 + small offsets

# ---- packets ----------------------------------------------------------------------------


def v4(addr: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, addr)


def mapped(addr: str) -> bytes:
    """The 16-byte column form of an address (IPv4 as ::ffff:a.b.c.d)."""
    if ":" in addr:
        return socket.inet_pton(socket.AF_INET6, addr)
    return b"\x00" * 10 + b"\xff\xff" + v4(addr)


def ether(payload: bytes, ethertype: int = 0x0800, vlan: int | None = None) -> bytes:
    head = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    ip = dpkt.ip.IP(src=v4(src), dst=v4(dst), p=proto, ttl=64, id=7, data=l4)
    return bytes(ip)


def tcp(
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    sport: int = 40000,
    dport: int = 80,
    payload: bytes = b"",
    flags: int = dpkt.tcp.TH_ACK,
    vlan: int | None = None,
) -> bytes:
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=1000, flags=flags, data=payload)
    return ether(ipv4(src, dst, 6, bytes(seg)), vlan=vlan)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"") -> bytes:
    dg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    dg.ulen = 8 + len(payload)
    return ether(ipv4(src, dst, 17, bytes(dg)))


def icmp(src: str, dst: str, itype: int, code: int = 0) -> bytes:
    msg = dpkt.icmp.ICMP(type=itype, code=code, data=b"\x00\x01\x00\x01ping")
    return ether(ipv4(src, dst, 1, bytes(msg)))


def arp() -> bytes:
    return ether(bytes(dpkt.arp.ARP()), ethertype=0x0806)


def raw_ipv4(src: str, dst: str, sport: int, dport: int) -> bytes:
    """An IPv4/UDP packet without link header (LINKTYPE_RAW)."""
    dg = dpkt.udp.UDP(sport=sport, dport=dport, data=b"hello")
    dg.ulen = 13
    return ipv4(src, dst, 17, bytes(dg))


# (timestamp ns, frame bytes, wire length or None for len(frame))
Record = tuple[int, bytes, int | None]


def records(n: int = 5) -> list[Record]:
    """A small TCP conversation, both directions, distinct timestamps."""
    out: list[Record] = []
    for i in range(n):
        if i % 2 == 0:
            frame = tcp("10.0.0.1", "10.0.0.2", 40000, 80, b"GET / HTTP/1.1\r\n" if i == 2 else b"")
        else:
            frame = tcp("10.0.0.2", "10.0.0.1", 80, 40000)
        out.append(((T0 + i) * 10**9 + i * 1000 + 123_000, frame, None))
    return out


# ---- capture writers ----------------------------------------------------------------------


def pcap_bytes(
    recs: Sequence[Record],
    order: str = "<",
    nano: bool = False,
    linktype: int = 1,
    snaplen: int = 65535,
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts, data, wire in recs:
        sec, frac = divmod(ts, 10**9)
        if not nano:
            frac //= 1000
        out.append(struct.pack(order + "IIII", sec, frac, len(data), wire or len(data)) + data)
    return b"".join(out)


def pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def opt(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + pad4(value)


def opts(*items: bytes, order: str = "<") -> bytes:
    return b"".join(items) + struct.pack(order + "HH", 0, 0) if items else b""


def block(btype: int, body: bytes, order: str = "<") -> bytes:
    body = pad4(body)
    n = 12 + len(body)
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def shb(order: str = "<", options: bytes = b"") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options, order)


def idb(linktype: int, snaplen: int = 0, order: str = "<", options: bytes = b"") -> bytes:
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + options, order)


def epb(iface: int, ticks: int, data: bytes, wire: int | None = None, order: str = "<") -> bytes:
    head = struct.pack(
        order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire or len(data)
    )
    return block(6, head + pad4(data), order)


def pb(iface: int, ticks: int, data: bytes, order: str = "<") -> bytes:
    head = struct.pack(
        order + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return block(2, head + pad4(data), order)


def spb(data: bytes, wire: int | None = None, order: str = "<") -> bytes:
    return block(3, struct.pack(order + "I", wire or len(data)) + pad4(data), order)


def isb(iface: int, options: bytes, order: str = "<") -> bytes:
    return block(5, struct.pack(order + "III", iface, 0, 0) + options, order)


def pcapng_bytes(recs: Sequence[Record], order: str = "<", linktype: int = 1) -> bytes:
    """One section, one interface (microsecond ticks), one EPB per record."""
    out = [shb(order), idb(linktype, 65535, order)]
    out += [epb(0, ts // 1000, data, wire, order) for ts, data, wire in recs]
    return b"".join(out)


def dpkt_pcap(path: Path, recs: Sequence[Record], nano: bool = False) -> None:
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f, nano=nano)
        for ts, data, _ in recs:
            w.writepkt(data, ts=ts / 1e9)


def dpkt_pcapng(path: Path, recs: Sequence[Record]) -> None:
    with path.open("wb") as f:
        w = dpkt.pcapng.Writer(f)
        for ts, data, _ in recs:
            w.writepkt(data, ts=ts / 1e9)


def write(tmp_path: Path, name: str, data: bytes, gz: bool = False) -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(data) if gz else data)
    return p


def read(path: Path, **kw: int) -> tuple[pa.Table, CaptureInfo]:
    r = read_packets(path, **kw)
    table = r.to_table()
    assert table.schema == PACKET_SCHEMA
    table.validate(full=True)
    assert table.num_rows == r.info.packets
    return table, r.info


def col(table: pa.Table, name: str) -> list[object]:
    return table.column(name).to_pylist()


def assert_close_ts(table: pa.Table, recs: Sequence[Record]) -> None:
    got = table.column("ts").to_pylist()
    assert len(got) == len(recs)
    assert all(abs(g - ts) < 2000 for g, (ts, _, _) in zip(got, recs, strict=True))


# ---- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("gz", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool, gz: bool) -> None:
    recs = records(6)
    path = write(tmp_path, "c.bin", pcap_bytes(recs, order, nano), gz)
    table, info = read(path)
    assert info.format == ("pcap-ns" if nano else "pcap")
    assert info.compressed is gz
    assert info.byte_order == ("little" if order == "<" else "big")
    assert detect_format(path) == info.format + ("+gzip" if gz else "")
    assert col(table, "frame") == [1, 2, 3, 4, 5, 6]
    expect_ts = [ts if nano else ts // 1000 * 1000 for ts, _, _ in recs]
    assert col(table, "ts") == expect_ts
    assert col(table, "wire_len") == [len(d) for _, d, _ in recs]
    assert col(table, "cap_len") == [len(d) for _, d, _ in recs]
    assert set(col(table, "linktype")) == {1}
    assert info.packets == 6 and not info.truncated
    assert info.bytes == sum(len(d) for _, d, _ in recs)
    assert (info.first_seen, info.last_seen) == (min(expect_ts), max(expect_ts))
    assert info.linktypes == ["ethernet"]
    assert info.snaplen == 65535 and info.sections == 1
    assert info.interfaces[0].packets == 6
    assert info.decode_errors == {}


@pytest.mark.parametrize("nano", [False, True])
def test_dpkt_pcap_writer(tmp_path: Path, nano: bool) -> None:
    recs = records(4)
    path = tmp_path / "w.pcap"
    dpkt_pcap(path, recs, nano)
    table, info = read(path)
    assert info.format == ("pcap-ns" if nano else "pcap")
    assert col(table, "frame") == [1, 2, 3, 4]
    assert_close_ts(table, recs)  # dpkt goes through a float
    assert col(table, "status") == [0, 0, 0, 0]


@pytest.mark.parametrize("gz", [False, True])
def test_dpkt_pcapng_writer(tmp_path: Path, gz: bool) -> None:
    recs = records(4)
    path = tmp_path / "w.pcapng"
    dpkt_pcapng(path, recs)
    if gz:
        path.write_bytes(gzip.compress(path.read_bytes()))
    table, info = read(path)
    assert info.format == "pcapng" and info.compressed is gz
    assert col(table, "frame") == [1, 2, 3, 4]
    assert_close_ts(table, recs)
    assert info.linktypes == ["ethernet"]
    assert col(table, "status") == [0, 0, 0, 0]


def multi_section_pcapng() -> bytes:
    """Two sections of opposite byte order; interfaces of different link types, tsresol and
    tsoffset; EPB, SPB, obsolete PB; an ISB with drops; unknown and custom blocks."""
    le, be = "<", ">"
    eth = tcp("10.0.0.1", "10.0.0.2", 1111, 22, b"SSH-2.0-OpenSSH_9.6\r\n")
    raw = raw_ipv4("192.168.1.1", "192.168.1.2", 5353, 53)
    return b"".join(
        [
            shb(le, opts(opt(4, b"test writer"), opt(3, b"Linux"))),
            idb(1, 65535, le, opts(opt(2, b"eth0"), opt(9, bytes([9])))),  # ns ticks
            idb(101, 2048, le, opts(opt(2, b"tun0"), opt(14, struct.pack("<q", 100)))),
            epb(0, (T0 * 10**9) + 5, eth),  # frame 1: eth, ns resolution
            epb(1, T0 * 10**6 + 7, raw),  # frame 2: raw, us + 100 s offset
            block(0x0BADBEEF, b"unknown block body", le),
            block(0x00000BAD, struct.pack("<I", 32473) + b"custom", le),
            spb(eth),  # frame 3: no timestamp, interface 0
            pb(1, T0 * 10**6 + 9, raw),  # frame 4: obsolete packet block
            isb(0, opts(opt(4, struct.pack("<Q", 1000)), opt(5, struct.pack("<Q", 17)))),
            isb(1, opts(opt(5, struct.pack("<Q", 3)), opt(7, struct.pack("<Q", 2)))),
            shb(be),
            idb(276, 0, be, opts(opt(9, bytes([0x80 | 10]), be), order=be)),  # 2^-10 s ticks
            epb(0, 1024 * (T0 + 1) + 512, sll2(raw), order=be),  # frame 5, big-endian
            isb(0, opts(opt(5, struct.pack(">Q", 4), be), order=be), be),
        ]
    )


def sll2(ip: bytes) -> bytes:
    """A LINKTYPE_LINUX_SLL2 header in front of an IPv4 packet."""
    return struct.pack("!HHIHBB", 0x0800, 0, 2, 1, 0, 6) + b"\x02\x00\x00\x00\x00\x01\x00\x00" + ip


@pytest.mark.parametrize("gz", [False, True])
def test_pcapng_sections_interfaces_and_blocks(tmp_path: Path, gz: bool) -> None:
    path = write(tmp_path, "multi", multi_section_pcapng(), gz)
    table, info = read(path)
    assert col(table, "frame") == [1, 2, 3, 4, 5]
    assert col(table, "linktype") == [1, 101, 1, 101, 276]
    assert col(table, "ts") == [
        T0 * 10**9 + 5,
        (T0 + 100) * 10**9 + 7000,
        None,  # SPB
        (T0 + 100) * 10**9 + 9000,
        (T0 + 1) * 10**9 + 500_000_000,
    ]
    assert col(table, "status") == [0, 0, 0, 0, 0]
    a, b = mapped("10.0.0.1"), mapped("192.168.1.1")
    assert col(table, "src_ip") == [a, b, a, b, b]
    assert col(table, "dst_port") == [22, 53, 22, 53, 53]
    assert info.format == "pcapng" and info.sections == 2 and info.byte_order == "little"
    assert info.linktypes == ["ethernet", "raw", "linux_sll2"]
    assert info.snaplen == 65535
    assert info.comments == {"application": "test writer", "os": "Linux"}
    ifs = info.interfaces
    assert [(i.section, i.index, i.linktype) for i in ifs] == [(0, 0, 1), (0, 1, 101), (1, 0, 276)]
    assert [i.name for i in ifs] == ["eth0", "tun0", None]
    assert [i.ticks_per_second for i in ifs] == [10**9, 10**6, 1024]
    assert [i.ts_offset for i in ifs] == [0, 100, 0]
    assert [i.packets for i in ifs] == [2, 2, 1]
    assert [(i.received, i.drops, i.os_drops) for i in ifs] == [
        (1000, 17, None),
        (None, 3, 2),
        (None, 4, None),
    ]
    assert info.drops == 24
    assert info.skipped_blocks == {"unknown": 1, "custom": 1}
    assert not info.truncated and info.warnings == []
    assert info.first_seen == T0 * 10**9 + 5
    assert info.last_seen == (T0 + 100) * 10**9 + 9000


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_spb_snaplen_and_padding(tmp_path: Path, order: str) -> None:
    frame = tcp(payload=b"x" * 61)  # odd length: padded in the block
    data = shb(order) + idb(1, 60, order) + spb(frame[:60], wire=len(frame), order=order)
    table, _ = read(write(tmp_path, "spb.pcapng", data))
    assert col(table, "cap_len") == [60]
    assert col(table, "wire_len") == [len(frame)]


# ---- decoded fields, payload heads, flow keys --------------------------------------------


def test_decoded_fields_and_flow_key(tmp_path: Path) -> None:
    recs = [
        (T0 * 10**9, tcp("10.0.0.1", "10.0.0.2", 40000, 443, flags=dpkt.tcp.TH_SYN), None),
        (T0 * 10**9, tcp("10.0.0.2", "10.0.0.1", 443, 40000, flags=0x12), None),
        (T0 * 10**9, tcp("10.0.0.1", "10.0.0.2", 40001, 443), None),
        (T0 * 10**9, tcp("10.0.0.1", "10.0.0.2", 40000, 443, vlan=10), None),
        (T0 * 10**9, udp("10.0.0.9", "10.0.0.3", 53, 5353), None),
    ]
    table, _ = read(write(tmp_path, "f.pcap", pcap_bytes(recs)))
    rows = table.to_pylist()
    assert rows[0]["src_ip"] == mapped("10.0.0.1") and rows[0]["dst_ip"] == mapped("10.0.0.2")
    assert (rows[0]["proto"], rows[0]["src_port"], rows[0]["dst_port"]) == (6, 40000, 443)
    assert rows[0]["tcp_flags"] == dpkt.tcp.TH_SYN and rows[0]["ip_version"] == 4
    assert rows[0]["vlan"] is None and rows[3]["vlan"] == 10
    assert rows[0]["tunnel_id"] is None and rows[0]["outer_src"] is None
    assert rows[0]["flow_key"] == rows[1]["flow_key"]
    assert (rows[0]["flow_dir"], rows[1]["flow_dir"]) == (0, 1)  # 10.0.0.1 is the lower end
    keys = {r["flow_key"] for r in rows}
    assert len(keys) == 3  # another port or protocol makes another flow; a VLAN does not
    assert rows[3]["flow_key"] == rows[0]["flow_key"]
    assert rows[4]["flow_dir"] == 1  # 10.0.0.9 > 10.0.0.3


def test_icmp_flows_ignore_type_and_code(tmp_path: Path) -> None:
    recs = [
        (T0 * 10**9, icmp("10.1.1.1", "10.1.1.2", 8), None),
        (T0 * 10**9, icmp("10.1.1.2", "10.1.1.1", 0), None),
        (T0 * 10**9, icmp("10.1.1.2", "10.1.1.1", 3, 3), None),
    ]
    table, _ = read(write(tmp_path, "i.pcap", pcap_bytes(recs)))
    assert col(table, "src_port") == [8, 0, 3]  # type stays in the column
    assert len(set(col(table, "flow_key"))) == 1
    assert col(table, "flow_dir") == [0, 1, 1]


def test_non_ip_and_unsupported_linktype(tmp_path: Path) -> None:
    table, info = read(write(tmp_path, "a.pcap", pcap_bytes([(T0 * 10**9, arp(), None)] * 3)))
    assert col(table, "status") == [STATUS_NAMES.index("non_ip")] * 3
    assert col(table, "src_ip") == [None] * 3 and col(table, "flow_key") == [None] * 3
    assert info.decode_errors == {"non_ip": 3}

    table, info = read(write(tmp_path, "u.pcap", pcap_bytes(records(2), linktype=147)))
    assert col(table, "status") == [STATUS_NAMES.index("unsupported_linktype")] * 2
    assert info.decode_errors == {"unsupported_linktype": 2}
    assert info.unsupported_linktypes == {147: 2}
    assert info.linktypes == [147]


@pytest.mark.parametrize(
    ("payload", "kept"),
    [
        (b"", 0),
        (b"\x16\x03\x01" + bytes(range(256)) * 20, 4096),  # TLS handshake record
        (b"\x16\x03", 2),
        (b"GET /" + b"a" * 2000, 1024),
        (b"SSH-2.0-x" + b"b" * 2000, 1024),
        (b"HTTP/1.1 200 OK\r\n" + b"c" * 2000, 1024),
        (b"GE1 " + b"d" * 500, 128),  # a digit in the first 4 bytes: not text
        (b"\x17\x03\x03" + b"e" * 500, 128),  # TLS application data
        (b"\x00" * 90, 90),
    ],
)
def test_payload_head_policy(tmp_path: Path, payload: bytes, kept: int) -> None:
    frame = tcp(dport=443, payload=payload)
    table, _ = read(write(tmp_path, "p.pcap", pcap_bytes([(T0 * 10**9, frame, None)])))
    assert col(table, "payload") == [payload[:kept]]
    assert col(table, "payload_len") == [len(payload)]


def test_flow_keys_function_matches_scanner(tmp_path: Path) -> None:
    recs = [
        (T0 * 10**9, tcp(f"10.0.0.{i % 7}", f"10.0.1.{i % 5}", 1000 + i, 80), None)
        for i in range(50)
    ]
    table, _ = read(write(tmp_path, "k.pcap", pcap_bytes(recs)))
    n = table.num_rows

    def arr(name: str, dtype: str) -> np.ndarray:
        a = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_binary(a.type):
            return np.frombuffer(a.buffers()[1], np.uint8)[: 16 * n].copy()
        return a.to_numpy(zero_copy_only=False).astype(dtype)

    vlan = table.column("vlan").fill_null(-1).to_numpy().astype(np.int32)
    key, dirs = np.zeros(n, np.uint64), np.zeros(n, np.uint8)
    done = _fast.flow_keys(
        arr("proto", "u1"), arr("src_ip", "u1"), arr("src_port", "<u2"),
        arr("dst_ip", "u1"), arr("dst_port", "<u2"), vlan, key, dirs,
    )  # fmt: skip
    assert done == n
    assert key.tolist() == col(table, "flow_key")
    assert dirs.tolist() == col(table, "flow_dir")
    # swapping the endpoints gives the same key, the other direction
    key2, dirs2 = np.zeros(n, np.uint64), np.zeros(n, np.uint8)
    _fast.flow_keys(
        arr("proto", "u1"), arr("dst_ip", "u1"), arr("dst_port", "<u2"),
        arr("src_ip", "u1"), arr("src_port", "<u2"), vlan, key2, dirs2,
    )  # fmt: skip
    assert key2.tolist() == key.tolist() and (dirs2 ^ dirs).all()


def test_flow_key_spread() -> None:
    """No collisions among 200k distinct 5-tuples; both halves of the key vary."""
    n = 200_000
    rng = np.random.default_rng(1)
    src = np.zeros((n, 16), np.uint8)
    dst = np.zeros((n, 16), np.uint8)
    src[:, 10:12] = dst[:, 10:12] = 0xFF
    src[:, 12:] = rng.integers(0, 4, (n, 4))  # few addresses ...
    dst[:, 12:] = rng.integers(0, 4, (n, 4))
    sport = np.arange(n, dtype=np.uint16) ^ 0x5A5A  # ... many ports
    dport = (np.arange(n) // 65536).astype(np.uint16)
    proto = np.full(n, 6, np.uint8)
    vlan = np.full(n, -1, np.int32)
    key, dirs = np.zeros(n, np.uint64), np.zeros(n, np.uint8)
    _fast.flow_keys(proto, src.ravel(), sport, dst.ravel(), dport, vlan, key, dirs)
    tuples = {
        (s.tobytes(), d.tobytes(), a, b) for s, d, a, b in zip(src, dst, sport, dport, strict=True)
    }
    assert len(np.unique(key)) == len(tuples)
    assert (
        len(np.unique(key >> np.uint64(48))) > 60000
        and len(np.unique(key & np.uint64(0xFFFF))) > 60000
    )


# ---- chunking and batching ------------------------------------------------------------------


def many_records(n: int) -> list[Record]:
    out: list[Record] = []
    for i in range(n):
        body = bytes([i % 251]) * (i * 37 % 300)
        out.append(
            (
                (T0 + i) * 10**9,
                tcp(f"10.9.0.{i % 200}", "10.9.1.1", 1024 + i % 999, 80, body),
                None,
            )
        )
    return out


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("gz", [False, True])
def test_small_chunks_and_batches_give_the_same_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, gz: bool
) -> None:
    recs = many_records(700)
    data = pcap_bytes(recs) if fmt == "pcap" else pcapng_bytes(recs)
    path = write(tmp_path, "m", data, gz)
    whole, info = read(path)
    assert whole.num_rows == 700 and not info.truncated
    monkeypatch.setattr(reader, "CHUNK_SIZE", 97)  # records straddle every chunk boundary
    r = read_packets(path, batch_size=33)
    batches = list(r)
    assert all(0 < b.num_rows <= 33 for b in batches)
    assert pa.Table.from_batches(batches).equals(whole)
    assert r.info == info


def test_payload_buffer_ends_batches_early(tmp_path: Path) -> None:
    """Batches of large TLS heads stop before the payload buffer overflows."""
    hello = b"\x16\x03\x01" + b"h" * 5000
    recs = [(T0 * 10**9, tcp(payload=hello), None)] * 40
    r = read_packets(write(tmp_path, "tls.pcap", pcap_bytes(recs)), batch_size=32)
    sizes = [b.num_rows for b in r]
    assert sum(sizes) == 40 and max(sizes) <= 32
    assert all(len(h) == 4096 for b in r for h in b.column("payload").to_pylist())


def test_block_larger_than_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "CHUNK_SIZE", 64)
    big = tcp(payload=b"z" * 9000)
    data = shb(options=opts(opt(1, b"c" * 3000))) + idb(1) + epb(0, 1, big) + epb(0, 2, big)
    table, info = read(write(tmp_path, "big.pcapng", data))
    assert col(table, "cap_len") == [len(big)] * 2 and not info.truncated


def test_batches_own_their_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch is written into arrays of its own (no reuse decided by reference
    counts): batches and columns kept, let go, or kept as slices all read what a single
    table of the capture holds, whatever the consumer does meanwhile."""
    path = write(tmp_path, "r.pcap", pcap_bytes(many_records(1000)))
    kept = read_packets(path, batch_size=50).to_table()
    made = 0
    init = reader._Batch.__init__

    def counting(self: reader._Batch, rows: int, data_cap: int) -> None:
        nonlocal made
        made += 1
        init(self, rows, data_cap)

    monkeypatch.setattr(reader._Batch, "__init__", counting)
    rows: list[dict[str, object]] = []
    held: list[pa.Array] = []
    payloads = []
    for i, batch in enumerate(read_packets(path, batch_size=50)):
        rows += batch.to_pylist()
        if i % 3 == 0:
            held.append(batch.column("src_ip"))  # a column kept, its batch let go
        payloads.append(batch.column("payload").slice(10, 5))  # a slice of every batch
        del batch
    assert rows == kept.to_pylist()
    assert made == 21  # arrays of its own for each of the 20 batches (and one begun after)
    src = kept.column("src_ip").to_pylist()
    assert [a.to_pylist() for a in held] == [src[i * 50 : i * 50 + 50] for i in range(0, 20, 3)]
    heads = kept.column("payload").to_pylist()
    assert [p.to_pylist() for p in payloads] == [
        heads[i * 50 + 10 : i * 50 + 15] for i in range(20)
    ]


def test_reading_twice(tmp_path: Path) -> None:
    r = read_packets(write(tmp_path, "t.pcap", pcap_bytes(records(3))))
    first = r.to_table()
    info = r.info
    assert r.to_table().equals(first) and r.info == info and r.info is not info


def test_empty_capture_and_batch_size(tmp_path: Path) -> None:
    table, info = read(write(tmp_path, "e.pcap", pcap_bytes([])))
    assert table.num_rows == 0 and info.packets == 0 and info.first_seen is None
    assert not info.truncated
    table, info = read(write(tmp_path, "e.pcapng", shb() + idb(1)))
    assert table.num_rows == 0 and info.linktypes == ["ethernet"]
    with pytest.raises(ValueError):
        read_packets(write(tmp_path, "x.pcap", pcap_bytes([])), batch_size=0)


# ---- damaged files --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("gz", [False, True])
def test_truncated_mid_record(tmp_path: Path, fmt: str, gz: bool) -> None:
    recs = records(5)
    data = pcap_bytes(recs) if fmt == "pcap" else pcapng_bytes(recs)
    path = write(tmp_path, "cut", data[:-10], gz)
    table, info = read(path)
    assert table.num_rows == 4 and info.packets == 4
    last = 16 + len(recs[-1][1]) if fmt == "pcap" else len(epb(0, 0, recs[-1][1]))
    assert info.truncated and info.truncated_at == len(data) - last
    assert "file ends inside a record" in info.warnings[0]
    assert col(table, "flow_key")[0] == col(table, "flow_key")[1]  # flows of the readable part


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    recs = many_records(3000)
    comp = gzip.compress(pcap_bytes(recs))
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(comp[: len(comp) * 2 // 3])
    table, info = read(path)
    assert 0 < table.num_rows < 3000 and info.truncated
    assert any("gzip stream ends early" in w for w in info.warnings)
    assert col(table, "frame") == list(range(1, table.num_rows + 1))


def test_corrupt_gzip_stream(tmp_path: Path) -> None:
    comp = bytearray(gzip.compress(pcap_bytes(many_records(3000))))
    comp[len(comp) // 2 : len(comp) // 2 + 64] = b"\xff" * 64
    table, info = read(write(tmp_path, "bad.gz", bytes(comp)))
    assert 0 < table.num_rows < 3000 and info.truncated
    assert any(w.startswith("gzip:") for w in info.warnings)


def test_pcap_bad_record_header_stops(tmp_path: Path) -> None:
    recs = records(3)
    data = bytearray(pcap_bytes(recs))
    second = 24 + 16 + len(recs[0][1])
    data[second + 8 : second + 12] = struct.pack("<I", 0xFFFFFFF0)  # caplen
    table, info = read(write(tmp_path, "b.pcap", bytes(data)))
    assert col(table, "status") == [0, STATUS_NAMES.index("bad_record")]
    assert info.decode_errors == {"bad_record": 1}
    assert info.truncated and info.truncated_at == second
    rest = len(data) - second
    assert info.warnings == [
        f"stopped at byte {second}: bad record header, captured length 4294967280 is over the "
        f"262144-byte limit; {rest} bytes not read"
    ]
    assert info.packets == 2 and info.bytes == len(recs[0][1])


def test_pcapng_resyncs_on_sane_block_length(tmp_path: Path) -> None:
    good = tcp()
    bad_caplen = bytearray(epb(0, 5, good))
    bad_caplen[20:24] = struct.pack("<I", 5000)  # caplen larger than the block
    data = shb() + idb(1) + epb(0, 1, good) + bytes(bad_caplen) + epb(3, 1, good) + epb(0, 9, good)
    table, info = read(write(tmp_path, "r.pcapng", data))
    bad = STATUS_NAMES.index("bad_record")
    assert col(table, "status") == [0, bad, bad, 0]
    assert col(table, "frame") == [1, 2, 3, 4]
    assert not info.truncated and info.decode_errors == {"bad_record": 2}
    assert "captured length 5000 is larger than its block" in info.warnings[0]
    assert "interface 3, which is not defined" in info.warnings[1]
    assert info.bytes == 2 * len(good)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[:4] + struct.pack("<I", 30) + b[8:], "block length 30 is impossible"),
        (lambda b: b[:-4] + struct.pack("<I", 999), "trailing block length 999 differs"),
    ],
)
def test_pcapng_insane_block_stops(
    tmp_path: Path, mangle: Callable[[bytes], bytes], message: str
) -> None:
    data = shb() + idb(1) + epb(0, 1, tcp()) + mangle(epb(0, 2, tcp())) + epb(0, 3, tcp())
    table, info = read(write(tmp_path, "s.pcapng", data))
    assert col(table, "status") == [0, STATUS_NAMES.index("bad_record")]
    assert info.truncated and message in info.warnings[0]


def test_pcapng_bad_second_section(tmp_path: Path) -> None:
    second = bytearray(shb())
    second[8:12] = b"XXXX"
    data = shb() + idb(1) + epb(0, 1, tcp()) + bytes(second) + idb(1) + epb(0, 1, tcp())
    table, info = read(write(tmp_path, "s2.pcapng", data))
    assert table.num_rows == 1 and info.truncated
    assert info.decode_errors == {}  # no row: reported by truncated and the warning
    assert info.warnings[0].startswith("bad section header at byte ")


def test_many_bad_blocks_and_many_interfaces(tmp_path: Path) -> None:
    """Floods of malformed packet blocks, unknown blocks and interfaces stay cheap and
    bounded: the scanner goes through them without a Python call each."""
    bad = bytearray(epb(0, 1, tcp()))
    bad[20:24] = struct.pack("<I", 5000)
    parts = [shb(), idb(1)]
    parts += [bytes(bad), block(0x0BADBEEF, b"junk")] * 3000
    parts += [idb(101)] * 2000 + [epb(1999, 5, raw_ipv4("1.1.1.1", "2.2.2.2", 1, 2))]
    table, info = read(write(tmp_path, "flood.pcapng", b"".join(parts)))
    assert table.num_rows == 3001 and not info.truncated
    assert info.decode_errors == {"bad_record": 3000}
    assert info.skipped_blocks == {"unknown": 3000}
    assert len(info.warnings) == reader.MAX_WARNINGS
    assert col(table, "linktype")[-1] == 101 and col(table, "status")[-1] == 0
    assert len(info.interfaces) == reader.MAX_LISTED_INTERFACES


def test_packets_before_any_interface(tmp_path: Path) -> None:
    table, info = read(write(tmp_path, "n.pcapng", shb() + epb(0, 1, tcp()) + spb(tcp())))
    assert col(table, "status") == [STATUS_NAMES.index("bad_record")] * 2
    assert not info.truncated


# ---- fatal errors ---------------------------------------------------------------------------


def expect_error(path: Path, message: str, where: str | None = None) -> CaptureError:
    with pytest.raises(CaptureError) as exc_info:
        read_packets(path)
    err = exc_info.value
    assert err.path == str(path)
    assert message in err.message, err.message
    assert err.where == where
    assert "\n" not in str(err) and str(err).startswith(str(path))
    return err


def test_missing_directory_empty(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.pcap", "no such file")
    expect_error(tmp_path, "is a directory, not a capture file")
    expect_error(write(tmp_path, "empty.pcap", b""), "empty file (0 bytes)")


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "secret.pcap", pcap_bytes(records(1)))
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads any file: refuse the open the way the OS would

        def refuse(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(inputs, "open", refuse, raising=False)
    expect_error(path, "cannot open: Permission denied")


@pytest.mark.parametrize(
    ("data", "message", "where"),
    [
        (
            b"hello, this is text\n",
            "not a pcap or pcapng capture: found text ('hello, this is t",
            "byte 0",
        ),
        (b"PK\x03\x04" + b"\x00" * 40, "found a zip archive", "byte 0"),
        (b"BZh91AY&SY" + b"\x00" * 40, "bzip2-compressed file (gzip and zstd are read", "byte 0"),
        (b"\x00\x01\x02\x03\xfe\xff" * 8, "found bytes 00 01 02 03 fe ff 00 01", "byte 0"),
        (
            b"\xd4\xc3\xb2\xa1\x02\x00",
            "file ends inside the pcap file header (6 of 24 bytes)",
            None,
        ),
        (
            b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00XXXX" + b"\x00" * 16,
            "byte-order magic is 58 58 58 58",
            "byte 8",
        ),
        (shb()[:4] + struct.pack("<I", 13) + shb()[8:], "section header length 13", "byte 4"),
        (
            shb()[:-4] + struct.pack("<I", 99),
            "section header length 28 at its start, 99 at its end",
            "byte 24",
        ),
        (shb()[:20], "file ends inside the pcapng section header (20 of 28 bytes)", None),
    ],
)
def test_not_a_capture(tmp_path: Path, data: bytes, message: str, where: str | None) -> None:
    expect_error(write(tmp_path, "x.pcap", data), message, where)


def test_bad_first_record_is_fatal(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(records(2)))
    data[32:36] = struct.pack("<I", 10**6)
    expect_error(
        write(tmp_path, "f.pcap", bytes(data)),
        "not a usable pcap: the first record claims 1000000 captured bytes",
        "byte 24",
    )


def test_gzip_fatal_cases(tmp_path: Path) -> None:
    expect_error(
        write(tmp_path, "t.gz", b"just some text, compressed" * 3, gz=True),
        "gzip-compressed, but the content is not a capture: found text",
    )
    expect_error(
        write(tmp_path, "e.gz", b"", gz=True), "gzip-compressed, but there is nothing inside"
    )
    expect_error(
        write(tmp_path, "c.gz", b"\x1f\x8b\x08\x00garbage-garbage"),
        "gzip-compressed, but the gzip stream",
        "byte 0",
    )
    expect_error(
        write(tmp_path, "h.gz", pcap_bytes([])[:10], gz=True),
        "inside gzip: file ends inside the pcap file header (10 of 24 bytes)",
    )


TRUNCATE_WHILE_READING = r"""
import os, sys
from auditor.capture import _fast, reader
from auditor.cli.entry import main

path, cut, mapped = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "mmap"
reader.MMAP = mapped
reader.CHUNK_SIZE = 1 << 20  # read in chunks: several, so that reading is under way at the cut
real_scan, calls = _fast.scan, 0


def scan(*args):
    global calls
    calls += 1
    if calls == 2:  # the first chunk is scanned: the file is cut, as `tcpdump -W` does
        os.truncate(path, cut)
    return real_scan(*args)


_fast.scan = scan
sys.argv = ["pcap-audit", "flows", path, "--format", "json"]
main()
"""


@pytest.mark.parametrize("how", ["mmap", "chunks"])
def test_file_truncated_while_read_is_a_truncated_capture(tmp_path: Path, how: str) -> None:
    """A capture cut by another process while it is read (a ring buffer rotating) ends the
    read, not the process (memory-mapped, it died of SIGBUS): what was read is kept."""
    n = 100_000
    recs = [
        (T0 * 10**9 + i, tcp(f"10.1.{i % 250}.1", "10.2.0.1", 1024 + i % 9, 80), None)
        for i in range(n)
    ]
    path = write(tmp_path, "ring.pcap", pcap_bytes(recs))
    size = path.stat().st_size
    cut = size // 3
    r = subprocess.run(
        [sys.executable, "-c", TRUNCATE_WHILE_READING, str(path), str(cut), how],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode >= 0, f"killed by signal {-r.returncode}: {r.stderr[-500:]}"
    assert "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    cap = doc["captures"][0]
    assert cap["truncated"] is True
    if how == "mmap":  # the first batch was scanned before the cut, the next read faulted
        assert cap["packets"] == 65536
    else:  # the first chunk was read before the cut, the rest up to it
        assert 0 < cap["packets"] < n and cap["truncated_at"] <= cut
    record = (size - 24) // n
    assert cap["packets"] == (cap["truncated_at"] - 24) // record  # every whole record kept
    assert cap["warnings"] == [
        f"file shrank from {size} to {cut} bytes while being read (truncated by another "
        f"process?); kept the records before byte {cap['truncated_at']}"
    ]
    assert sum(f["packets_fwd"] + f["packets_rev"] for f in doc["flows"]) == cap["packets"]


OTHER_SIGBUS = r"""
import mmap, os, signal, sys
import numpy as np
from auditor.capture import _fast

path = sys.argv[1]
assert _fast.take(np.zeros(8, np.uint8), 0, 8) == bytes(8)  # installs the guard
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGBUS)
else:  # a fault outside the guarded reads
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 0)
        os.truncate(path, 0)
        print(m[5000])
print("survived")
"""


@pytest.mark.parametrize("how", ["kill", "fault"])
def test_other_sigbus_still_ends_the_process(tmp_path: Path, how: str) -> None:
    """The guard catches only faults of its own reads; any other SIGBUS does what it did."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 8192)
    r = subprocess.run(
        [sys.executable, "-c", OTHER_SIGBUS, str(path), how], capture_output=True, timeout=60
    )
    assert r.returncode == -7 and b"survived" not in r.stdout, r.stderr[-500:]


I64_MAX = (1 << 63) - 1


@pytest.mark.parametrize(
    ("tsresol", "tsoffset", "ticks", "ns"),
    [
        (0, 1 << 62, 5, None),  # issue 10: if_tsoffset near 2^62 s overflowed to 1677-09-21
        (0, 0, (1 << 64) - 1, None),  # 2^64 s: ticks * 1e9 alone is past 2262
        (0, -(1 << 63), (1 << 64) - 1, None),  # both extremes: the sum is past 2262 too
        (0, -(1 << 63), 5, None),  # long before 1677
        (9, T0, 5, T0 * 10**9 + 5),
        (0, -T0, T0 + 1, 10**9),  # a negative offset, in range
        (9, 0, I64_MAX, I64_MAX),  # the last nanosecond an int64 holds (2262-04-11) is fine
        (9, 0, I64_MAX + 1, None),  # one more is not
        (0x80 | 62, 9, 1 << 63, 11 * 10**9),  # 2^-62 s ticks: 2^63 of them * 1953125 / 2^53
    ],
)
def test_pcapng_timestamp_that_does_not_fit_is_a_decode_error(
    tmp_path: Path, tsresol: int, tsoffset: int, ticks: int, ns: int | None
) -> None:
    """A timestamp outside what an int64 of ns holds is counted as ``bad_timestamp`` and its
    packet is not used, never wrapped into a wrong date (checked 128-bit arithmetic in C)."""
    options = opts(opt(9, bytes([tsresol])), opt(14, struct.pack("<q", tsoffset)))
    data = shb() + idb(1, options=options) + epb(0, ticks, tcp())
    table, info = read(write(tmp_path, "ts.pcapng", data))
    ts = table.column("ts").cast(pa.int64()).to_pylist()
    if ns is None:
        assert ts == [None]
        assert col(table, "status") == [STATUS_NAMES.index("bad_timestamp")]
        assert info.decode_errors == {"bad_timestamp": 1}
        assert info.first_seen is None and info.last_seen is None
    else:
        assert ts == [ns]
        assert col(table, "status") == [0] and info.decode_errors == {}
        assert info.first_seen == info.last_seen == ns


def test_flows_skip_a_packet_with_a_bad_timestamp(tmp_path: Path) -> None:
    """The flow table of the issue's capture: the good packet's flow, no flow in 1677."""
    from auditor.traffic import read_traffic

    bad = opts(opt(9, b"\x00"), opt(14, struct.pack("<q", 1 << 62)))
    data = (
        shb()
        + idb(1)
        + idb(1, options=bad)
        + epb(0, T0 * 10**6, tcp(sport=1111))
        + epb(1, 5, tcp(sport=2222))
    )
    t = read_traffic([write(tmp_path, "ts.pcapng", data)])
    assert t.flows is not None
    assert t.flows.column("src_port").to_pylist() == [1111]
    assert [str(v) for v in t.flows.column("first_seen").to_pylist()] == [
        "2023-11-14 22:13:20+00:00"
    ]
    assert t.captures[0].to_json()["decode_errors"] == {"bad_timestamp": 1}
    assert t.captures[0].to_json()["first_seen"] == "2023-11-14T22:13:20Z"


def test_batch_size_is_bounded(tmp_path: Path) -> None:
    path = write(tmp_path, "b.pcap", pcap_bytes([(T0 * 10**9, tcp(), None)]))
    with pytest.raises(ValueError, match="batch_size"):
        read_packets(path, batch_size=_fast.MAX_ROWS + 1)
    assert read_packets(path, batch_size=_fast.MAX_ROWS).to_table().num_rows == 1
