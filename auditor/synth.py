"""Deterministic synthetic traffic: the samples, the tests and the benchmark's fallback capture.

Whole conversations (TCP handshake, payload both ways, close; UDP exchanges) are built as
bytes with dpkt and written as classic pcap. Payload builders produce what the classifier
reads on real wires: TLS handshakes (with or without a client certificate, any version),
HTTP requests and responses (BITS uploads included), DNS answers, SSH banners, LDAP.
Nothing here is random unless a seed is given, so re-running makes identical files.
"""

from __future__ import annotations

import socket
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

MSS = 1448
TLS_VERSIONS = {
    "SSL 3.0": 0x0300,
    "TLS 1.0": 0x0301,
    "TLS 1.1": 0x0302,
    "TLS 1.2": 0x0303,
    "TLS 1.3": 0x0304,
}


def _ip(addr: str) -> tuple[bytes, bool]:
    if ":" in addr:
        return socket.inet_pton(socket.AF_INET6, addr), True
    return socket.inet_aton(addr), False


def _mac(n: int) -> bytes:
    return bytes([0x02, 0, 0, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])


@dataclass
class Capture:
    """A growing list of (timestamp, frame) written out as one pcap file."""

    start: float = 1_763_769_600.0  # 2025-11-22T00:00:00Z
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    clock: float = 0.0
    vlan: int | None = None
    isn: int = 1000  # initial sequence numbers: each connection gets a new one

    def at(self, seconds: float) -> Capture:
        """Move the clock to ``seconds`` after the start."""
        self.clock = seconds
        return self

    def _tick(self, step: float = 0.0005) -> float:
        self.clock += step
        return self.start + self.clock

    def frame(self, src: str, dst: str, l4: dpkt.Packet, proto: int) -> None:
        s, v6 = _ip(src)
        d, _ = _ip(dst)
        if v6:
            ip: dpkt.Packet = dpkt.ip6.IP6(src=s, dst=d, nxt=proto, hlim=64, data=l4)
            ip.plen = len(bytes(l4))
            etype = dpkt.ethernet.ETH_TYPE_IP6
        else:
            ip = dpkt.ip.IP(src=s, dst=d, p=proto, ttl=64, data=l4)
            ip.len = 20 + len(bytes(l4))
            etype = dpkt.ethernet.ETH_TYPE_IP
        eth = dpkt.ethernet.Ethernet(
            src=_mac(zlib.crc32(s)), dst=_mac(zlib.crc32(d)), type=etype, data=ip
        )
        raw = bytes(eth)
        if self.vlan is not None:
            raw = raw[:12] + struct.pack("!HH", 0x8100, self.vlan) + raw[12:]
        self.frames.append((self._tick(), raw))

    def tcp(
        self,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        flags: int,
        seq: int,
        ack: int,
        data: bytes = b"",
    ) -> None:
        seg = dpkt.tcp.TCP(
            sport=sport,
            dport=dport,
            flags=flags,
            seq=seq & 0xFFFFFFFF,
            ack=ack & 0xFFFFFFFF,
            win=65535,
            data=data,
        )
        self.frame(src, dst, seg, dpkt.ip.IP_PROTO_TCP)

    def tcp_session(
        self,
        client: str,
        server: str,
        sport: int,
        dport: int,
        exchange: list[tuple[int, bytes]] | None = None,
        handshake: bool = True,
        close: bool = True,
        reset: bool = False,
    ) -> None:
        """A TCP connection: handshake, ``exchange`` [(0 = client->server | 1, bytes)], close."""
        self.isn += 7919
        cseq, sseq = self.isn, self.isn * 3
        A, S, F, R, P = (
            dpkt.tcp.TH_ACK,
            dpkt.tcp.TH_SYN,
            dpkt.tcp.TH_FIN,
            dpkt.tcp.TH_RST,
            dpkt.tcp.TH_PUSH,
        )
        if handshake:
            self.tcp(client, server, sport, dport, S, cseq, 0)
            self.tcp(server, client, dport, sport, S | A, sseq, cseq + 1)
            cseq += 1
            sseq += 1
            self.tcp(client, server, sport, dport, A, cseq, sseq)
        for direction, data in exchange or []:
            for off in range(0, max(len(data), 1), MSS):
                chunk = data[off : off + MSS]
                if direction == 0:
                    self.tcp(client, server, sport, dport, A | P, cseq, sseq, chunk)
                    cseq += len(chunk)
                else:
                    self.tcp(server, client, dport, sport, A | P, sseq, cseq, chunk)
                    sseq += len(chunk)
        if reset:
            self.tcp(client, server, sport, dport, R | A, cseq, sseq)
        elif close:
            self.tcp(client, server, sport, dport, F | A, cseq, sseq)
            self.tcp(server, client, dport, sport, F | A, sseq, cseq + 1)
            self.tcp(client, server, sport, dport, A, cseq + 1, sseq + 1)

    def tcp_rejected(self, client: str, server: str, sport: int, dport: int) -> None:
        """A SYN answered by RST: a connection attempt to a closed port."""
        self.isn += 7919
        self.tcp(client, server, sport, dport, dpkt.tcp.TH_SYN, self.isn, 0)
        self.tcp(server, client, dport, sport, dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, 0, self.isn + 1)

    def udp(self, src: str, dst: str, sport: int, dport: int, data: bytes) -> None:
        dg = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
        dg.ulen = 8 + len(data)
        self.frame(src, dst, dg, dpkt.ip.IP_PROTO_UDP)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            w = dpkt.pcap.Writer(fh, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
            for ts, raw in sorted(self.frames, key=lambda x: x[0]):
                w.writepkt(raw, ts=ts)
        return path


# -- TLS ----------------------------------------------------------------------------------


def _u16(n: int) -> bytes:
    return struct.pack("!H", n)


def _u24(n: int) -> bytes:
    return struct.pack("!I", n)[1:]


def tls_record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", content_type, version, len(body)) + body


def _hs(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + _u24(len(body)) + body


def _ext(ext_type: int, body: bytes) -> bytes:
    return _u16(ext_type) + _u16(len(body)) + body


def client_hello(
    sni: str | None = None,
    versions: tuple[str, ...] = ("TLS 1.3", "TLS 1.2"),
    legacy: str = "TLS 1.2",
) -> bytes:
    """A ClientHello record offering ``versions`` (supported_versions when TLS 1.3 is offered)."""
    exts = b""
    if sni:
        name = sni.encode()
        entry = b"\x00" + _u16(len(name)) + name
        exts += _ext(0, _u16(len(entry)) + entry)
    if "TLS 1.3" in versions:
        vs = b"".join(_u16(TLS_VERSIONS[v]) for v in versions)
        exts += _ext(43, bytes([len(vs)]) + vs)
        exts += _ext(51, _u16(36) + _u16(29) + _u16(32) + b"\x11" * 32)
    body = (
        _u16(TLS_VERSIONS[legacy])
        + b"\x01" * 32
        + b"\x20"
        + b"\x02" * 32
        + _u16(4)
        + b"\x13\x01\xc0\x2f"
        + b"\x01\x00"
        + _u16(len(exts))
        + exts
    )
    return tls_record(22, _hs(1, body), 0x0301)


def server_hello(version: str = "TLS 1.2") -> bytes:
    exts = b""
    legacy = TLS_VERSIONS[version]
    if version == "TLS 1.3":
        exts = _ext(43, _u16(0x0304)) + _ext(51, _u16(29) + _u16(32) + b"\x22" * 32)
        legacy = 0x0303
    body = _u16(legacy) + b"\x03" * 32 + b"\x20" + b"\x04" * 32 + b"\xc0\x2f" + b"\x00"
    body += _u16(len(exts)) + exts
    return _hs(2, body)


def certificate(count: int = 1, size: int = 600) -> bytes:
    certs = b"".join(_u24(size) + b"\x30" + b"\x82" * (size - 1) for _ in range(count))
    return _hs(11, _u24(len(certs)) + certs)


def certificate_request() -> bytes:
    return _hs(13, b"\x01\x01" + _u16(2) + b"\x04\x01" + _u16(0))


def tls_handshake(
    version: str = "TLS 1.2",
    sni: str | None = None,
    mutual: bool = False,
    client_cert: bool = True,
    app_bytes: int = 2000,
) -> list[tuple[int, bytes]]:
    """The payload exchange of a TLS session. ``mutual``: the server asks for a certificate;
    ``client_cert``: whether the client's Certificate message then carries one."""
    rec_v = TLS_VERSIONS[version] if version != "TLS 1.3" else 0x0303
    offered = ("TLS 1.3", "TLS 1.2") if version == "TLS 1.3" else (version,)
    legacy = "TLS 1.2" if version == "TLS 1.3" else version
    out: list[tuple[int, bytes]] = [(0, client_hello(sni, offered, legacy))]
    if version == "TLS 1.3":
        out.append(
            (
                1,
                tls_record(22, server_hello(version), 0x0303)
                + tls_record(20, b"\x01", 0x0303)
                + tls_record(23, b"\x55" * 900, 0x0303),
            )
        )
        out.append((0, tls_record(20, b"\x01", 0x0303) + tls_record(23, b"\x66" * 300, 0x0303)))
    else:
        flight = server_hello(version) + certificate()
        if mutual:
            flight += certificate_request()
        flight += _hs(14, b"")
        out.append((1, tls_record(22, flight, rec_v)))
        second = b""
        if mutual:
            second += tls_record(22, certificate(1 if client_cert else 0), rec_v)
        second += tls_record(22, _hs(16, _u16(64) + b"\x07" * 64), rec_v)
        second += tls_record(20, b"\x01", rec_v) + tls_record(22, b"\x08" * 40, rec_v)
        out.append((0, second))
        out.append((1, tls_record(20, b"\x01", rec_v) + tls_record(22, b"\x09" * 40, rec_v)))
    out.append((0, app_data(app_bytes, rec_v, 0x5A)))
    out.append((1, app_data(app_bytes, rec_v, 0xA5)))
    return out


def app_data(size: int, version: int = 0x0303, fill: int = 0x5A) -> bytes:
    """``size`` bytes of application data as TLS records of at most 16 KiB."""
    chunk = bytes([fill]) * 16384
    out = []
    while size > 0:
        n = min(size, 16384)
        out.append(tls_record(23, chunk[:n], version))
        size -= n
    return b"".join(out)


# -- HTTP, DNS, others --------------------------------------------------------------------


def http_request(
    method: str, target: str, host: str, user_agent: str = "curl/8.5.0", body: int = 0
) -> bytes:
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n"
        f"Content-Length: {body}\r\n\r\n"
    ).encode()
    return head + bytes((i * 31) & 0xFF for i in range(body))


def http_response(status: int = 200, body: int = 0) -> bytes:
    return (f"HTTP/1.1 {status} OK\r\nContent-Length: {body}\r\n\r\n").encode() + b"x" * body


def bits_upload(target: str, host: str, size: int) -> list[tuple[int, bytes]]:
    """A BITS upload: Create-Session, then the fragment with the disk bytes, then the replies."""
    ua = "Microsoft BITS/7.8"
    create = (
        f"BITS_POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
        "BITS-Packet-Type: Create-Session\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    frag = (
        f"BITS_POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
        f"BITS-Packet-Type: Fragment\r\nContent-Range: bytes 0-{size - 1}/{size}\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    disk = bytes((i * 7) & 0xFF for i in range(size))
    ack = b"HTTP/1.1 200 OK\r\nBITS-Packet-Type: Ack\r\nContent-Length: 0\r\n\r\n"
    return [(0, create), (1, ack), (0, frag + disk), (1, ack)]


def dns_exchange(name: str, addrs: list[str], qid: int = 0x1234) -> tuple[bytes, bytes]:
    """(query, response) DNS messages answering ``name`` with ``addrs``."""
    q = dpkt.dns.DNS(id=qid, op=dpkt.dns.DNS_RD, qd=[dpkt.dns.DNS.Q(name=name)])
    r = dpkt.dns.DNS(
        id=qid,
        op=dpkt.dns.DNS_RD | dpkt.dns.DNS_QR | dpkt.dns.DNS_RA,
        qd=[dpkt.dns.DNS.Q(name=name)],
    )
    answers = []
    for a in addrs:
        raw, v6 = _ip(a)
        rr = dpkt.dns.DNS.RR(
            name=name, type=dpkt.dns.DNS_AAAA if v6 else dpkt.dns.DNS_A, ttl=60, rdata=raw
        )
        if v6:
            rr.ip6 = raw
        else:
            rr.ip = raw
        answers.append(rr)
    r.an = answers
    return bytes(q), bytes(r)


def ldap_bind() -> bytes:
    """A simple-bind LDAPMessage (cleartext)."""
    name = b"cn=svc-applayering,dc=corp,dc=example"
    pw = b"secret"
    bind = b"\x02\x01\x03" + b"\x04" + bytes([len(name)]) + name + b"\x80" + bytes([len(pw)]) + pw
    op = b"\x60" + bytes([len(bind)]) + bind
    msg = b"\x02\x01\x01" + op
    return b"\x30" + bytes([len(msg)]) + msg


def ssh_exchange() -> list[tuple[int, bytes]]:
    return [
        (1, b"SSH-2.0-OpenSSH_9.6\r\n"),
        (0, b"SSH-2.0-OpenSSH_9.6p1\r\n"),
        (0, b"\x00\x00\x05\xdc\x0a\x14" + b"\x33" * 300),
        (1, b"\x00\x00\x04\x1c\x0a\x14" + b"\x44" * 300),
    ]


def nats_exchange() -> list[tuple[int, bytes]]:
    return [
        (1, b'INFO {"server_id":"nats-0","version":"2.10.0","auth_required":true}\r\n'),
        (0, b'CONNECT {"user":"nats","pass":"secret","verbose":false}\r\n'),
        (0, b"PUB router.register 42\r\n" + b"{" + b"r" * 40 + b"}\r\n"),
    ]


def mysql_exchange() -> list[tuple[int, bytes]]:
    greet = b"\x0a" + b"8.0.36\x00" + b"\x01\x00\x00\x00" + b"abcdefgh\x00" + b"\xff\xf7" + b"\x21"
    greet += b"\x02\x00\xff\xc1\x15" + b"\x00" * 10 + b"ijklmnopqrst\x00mysql_native_password\x00"
    pkt = struct.pack("<I", len(greet))[:3] + b"\x00" + greet
    login = b"\x85\xa6\xff\x01\x00\x00\x00\x01\x21" + b"\x00" * 23 + b"diego\x00"
    return [(1, pkt), (0, struct.pack("<I", len(login))[:3] + b"\x01" + login)]


# -- cleartext administration (what App Layering forbids) ------------------------------------


def telnet_session() -> list[tuple[int, bytes]]:
    """A Telnet login: both sides negotiate options (IAC DO/WILL ...), then a prompt."""
    return [
        (1, b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"),
        (0, b"\xff\xfb\x18\xff\xfb\x20\xff\xfb\x23\xff\xfb\x27"),
        (1, b"\xff\xfb\x03\xff\xfb\x01\r\nelm login: "),
        (0, b"root\r\n"),
    ]


def ftp_login(user: str = "root") -> list[tuple[int, bytes]]:
    """An FTP control connection: banner, USER/PASS, a passive-mode listing."""
    return [
        (1, b"220 (vsFTPd 3.0.3)\r\n"),
        (0, f"USER {user}\r\n".encode()),
        (1, b"331 Please specify the password.\r\n"),
        (0, b"PASS secret\r\n"),
        (1, b"230 Login successful.\r\n"),
        (0, b"PASV\r\n"),
    ]
