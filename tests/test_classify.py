"""Payload classifier on hand-built byte-literal flows, plus truncation and garbage robustness.

Packets go through :func:`pkt`, which keeps only the head the capture layer keeps (4096
bytes after ``16 03``, 1024 after four ASCII letters or ``GET ``-like, else 128), so every test sees what
the classifier will see in production.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path

import pytest

from auditor.classify import (
    APPS,
    FLOW_FACTS_FIELDS,
    FLOW_FACTS_SCHEMA,
    FlowFacts,
    classify_flow,
    detect,
    facts_table,
    quic,
)
from auditor.classify.dns import read_name

Packet = tuple[int, bytes, int]


_TEXT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")


def head_of(payload: bytes) -> bytes:
    """The capture layer's head policy (auditor/capture/reader.py)."""
    if payload[:2] == b"\x16\x03":
        return payload[:4096]
    if len(payload) >= 4 and all(b in _TEXT for b in payload[:3]) and payload[3] in _TEXT | {0x20}:
        return payload[:1024]
    return payload[:128]


def pkt(direction: int, payload: bytes) -> Packet:
    return (direction, head_of(payload), len(payload))


def segments(direction: int, stream: bytes, mss: int = 1460) -> list[Packet]:
    """A byte stream cut into TCP segments, each kept as the capture layer keeps it."""
    return [pkt(direction, stream[i : i + mss]) for i in range(0, len(stream), mss)]


# --- TLS builders ----------------------------------------------------------------------


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return bytes([ctype]) + u16(version) + u16(len(body)) + body


def handshake(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + u24(len(body)) + body


def ext(etype: int, data: bytes) -> bytes:
    return u16(etype) + u16(len(data)) + data


def client_hello(
    version: int = 0x0303,
    sni: str | None = "example.com",
    alpn: Iterable[bytes] = (),
    versions: Iterable[int] = (),
    padding: int = 0,
) -> bytes:
    exts = b""
    if sni is not None:
        name = sni.encode()
        entry = b"\x00" + u16(len(name)) + name
        exts += ext(0, u16(len(entry)) + entry)
    protos = b"".join(bytes([len(p)]) + p for p in alpn)
    if protos:
        exts += ext(16, u16(len(protos)) + protos)
    vs = b"".join(u16(v) for v in versions)
    if vs:
        exts += ext(43, bytes([len(vs)]) + vs)
    if padding:
        exts += ext(21, bytes(padding))
    suites = u16(0xC02F) + u16(0x009C)
    body = u16(version) + bytes(range(32)) + b"\x00" + u16(len(suites)) + suites + b"\x01\x00"
    return handshake(1, body + u16(len(exts)) + exts)


def server_hello(
    version: int = 0x0303,
    suite: int = 0xC02F,
    selected: int | None = None,
    alpn: bytes | None = None,
    rand: bytes = bytes(range(100, 132)),
) -> bytes:
    exts = b""
    if selected is not None:
        exts += ext(43, u16(selected))
    if alpn is not None:
        exts += ext(16, u16(len(alpn) + 1) + bytes([len(alpn)]) + alpn)
    body = u16(version) + rand + b"\x00" + u16(suite) + b"\x00" + u16(len(exts)) + exts
    return handshake(2, body)


def certificate(*certs: bytes) -> bytes:
    chain = b"".join(u24(len(c)) + c for c in certs)
    return handshake(11, u24(len(chain)) + chain)


FAKE_CERT = b"\x30\x82\x03\x00" + bytes(range(256)) * 3
CERT_REQUEST = handshake(13, b"\x01\x01" + u16(4) + b"\x04\x01\x08\x04" + u16(0))
SERVER_KEY_EXCHANGE = handshake(
    12, b"\x03\x00\x17\x41" + bytes(65) + b"\x04\x01" + u16(8) + bytes(8)
)
SERVER_HELLO_DONE = handshake(14, b"")
CLIENT_KEY_EXCHANGE = handshake(16, b"\x41" + bytes(range(65)))
CERT_VERIFY = handshake(15, b"\x04\x01" + u16(16) + bytes(16))
CCS = record(20, b"\x01")
FINISHED = record(22, bytes(range(40)))  # encrypted: any bytes
APP_DATA = record(23, bytes(range(200)))
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def tls12_flow(
    *,
    request: bool,
    client_certs: tuple[bytes, ...] | None,
    version: int = 0x0303,
    record_version: int = 0x0301,
    suite: int = 0xC02F,
) -> list[Packet]:
    """Full TLS <= 1.2 handshake; ``client_certs`` None means no client Certificate message."""
    server = server_hello(version, suite=suite) + certificate(FAKE_CERT) + SERVER_KEY_EXCHANGE
    if request:
        server += CERT_REQUEST
    server += SERVER_HELLO_DONE
    flight2 = b""
    if client_certs is not None:
        flight2 += certificate(*client_certs)
    flight2 += CLIENT_KEY_EXCHANGE
    if client_certs:
        flight2 += CERT_VERIFY
    return [
        pkt(0, record(22, client_hello(version), record_version)),
        *segments(1, record(22, server, version)),
        pkt(0, record(22, flight2, version) + record(20, b"\x01", version) + FINISHED),
        pkt(1, CCS + FINISHED),
        pkt(0, APP_DATA),
        pkt(1, APP_DATA),
    ]


def tls13_flow() -> list[Packet]:
    ch = client_hello(versions=(0x0A0A, 0x0304, 0x0303), alpn=(b"h2", b"http/1.1"))
    return [
        pkt(0, record(22, ch, 0x0301)),
        pkt(1, record(22, server_hello(0x0303, 0x1301, selected=0x0304)) + CCS + APP_DATA),
        pkt(0, CCS + APP_DATA),
        pkt(0, APP_DATA),
        pkt(1, APP_DATA),
    ]


# --- Other protocols' first messages ---------------------------------------------------


def ber(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    return bytes([tag, 0x82]) + u16(n) + body


def ldap_msg(msgid: int, op: bytes) -> bytes:
    return ber(0x30, ber(0x02, bytes([msgid])) + op)


LDAP_SIMPLE_BIND = ldap_msg(
    1, ber(0x60, ber(0x02, b"\x03") + ber(0x04, b"cn=admin,dc=example") + ber(0x80, b"secret"))
)
LDAP_SASL_BIND = ldap_msg(
    1, ber(0x60, ber(0x02, b"\x03") + ber(0x04, b"") + ber(0xA3, ber(0x04, b"GSS-SPNEGO")))
)
LDAP_BIND_OK = ldap_msg(1, ber(0x61, ber(0x0A, b"\x00") + ber(0x04, b"") + ber(0x04, b"")))
LDAP_SEARCH = ldap_msg(
    2,
    ber(
        0x63,
        ber(0x04, b"dc=example")
        + ber(0x0A, b"\x02")
        + ber(0x0A, b"\x00")
        + ber(0x02, b"\x00")
        + ber(0x02, b"\x00")
        + ber(0x01, b"\x00")
        + ber(0x87, b"objectClass")
        + ber(0x30, b""),
    ),
)
LDAP_SEARCH_DONE = ldap_msg(2, ber(0x65, ber(0x0A, b"\x00") + ber(0x04, b"") + ber(0x04, b"")))
LDAP_STARTTLS = ldap_msg(1, ber(0x77, ber(0x80, b"1.3.6.1.4.1.1466.20037")))
LDAP_STARTTLS_OK = ldap_msg(1, ber(0x78, ber(0x0A, b"\x00") + ber(0x04, b"") + ber(0x04, b"")))
LDAP_STARTTLS_REFUSED = ldap_msg(
    1, ber(0x78, ber(0x0A, b"\x02") + ber(0x04, b"") + ber(0x04, b"no"))
)


def sasl_wrap(token: bytes) -> bytes:
    return len(token).to_bytes(4, "big") + token


def cfx_wrap(sealed: bool, inner: bytes) -> bytes:
    flags = 0x06 if sealed else 0x04  # Sealed | AcceptorSubkey
    header = b"\x05\x04" + bytes([flags]) + b"\xff" + u16(12) + u16(12) + bytes(8)
    return sasl_wrap(header + (bytes(range(len(inner))) if sealed else inner) + bytes(12))


def netbios(msg: bytes) -> bytes:
    return b"\x00" + u24(len(msg)) + msg


def smb2(command: int, body: bytes, response: bool = False, next_command: int = 0) -> bytes:
    header = (
        b"\xfeSMB"
        + struct.pack("<HHIHHII", 64, 0, 0, command, 1, 1 if response else 0, next_command)
        + bytes(40)
    )
    return header + body


SMB2_NEGOTIATE_REQ = netbios(
    smb2(0, struct.pack("<HHHHI", 36, 2, 1, 0, 0) + bytes(28) + b"\x11\x03\x02\x03")
)
SMB2_NEGOTIATE_RESP_311 = netbios(smb2(0, struct.pack("<HHH", 65, 3, 0x0311) + bytes(58), True))
SMB2_NEGOTIATE_RESP_202 = netbios(smb2(0, struct.pack("<HHH", 65, 1, 0x0202) + bytes(58), True))
SMB2_SESSION_SETUP_ENC = netbios(smb2(1, struct.pack("<HHHH", 9, 0x0004, 72, 0), True))
SMB2_TREE_CONNECT_ENC = netbios(
    smb2(3, struct.pack("<HBBIII", 16, 1, 0, 0x0008, 0, 0x1F01FF), True)
)
SMB2_CREATE = netbios(smb2(5, struct.pack("<HBB", 57, 0, 0) + bytes(60)))
SMB3_TRANSFORM = netbios(
    b"\xfdSMB" + bytes(16) + bytes(16) + struct.pack("<IHHQ", 100, 0, 1, 7) + bytes(100)
)


def smb1(command: int, response: bool, words: bytes, data: bytes) -> bytes:
    header = b"\xffSMB" + bytes([command]) + bytes(4) + bytes([0x80 if response else 0x18])
    header += bytes(22)
    return header + bytes([len(words) // 2]) + words + u16(len(data)) + data


SMB1_DIALECTS = b"".join(b"\x02" + d + b"\x00" for d in (b"PC NETWORK PROGRAM 1.0", b"NT LM 0.12"))
SMB1_NEGOTIATE_REQ = netbios(smb1(0x72, False, b"", SMB1_DIALECTS))
SMB1_NEGOTIATE_RESP = netbios(smb1(0x72, True, u16(1)[::-1] + b"\x03" + bytes(31), b""))
SMB1_READ = netbios(smb1(0x2E, False, bytes(24), b""))


def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def dns_query(name: str, txid: int = 0x1234, qtype: int = 1) -> bytes:
    return (
        struct.pack(">HHHHHH", txid, 0x0100, 1, 0, 0, 0)
        + dns_name(name)
        + struct.pack(">HH", qtype, 1)
    )


def dns_cname_response(txid: int = 0x1234) -> bytes:
    """www.example.com CNAME edge.cdn.example.net (compressed), which has A and AAAA."""
    question = dns_name("www.example.com") + struct.pack(">HH", 1, 1)
    target = b"\x04edge\x03cdn\xc0\x10"  # edge.cdn + pointer to "example.com" at 16
    cname = b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, len(target)) + target
    target_at = 12 + len(question) + 12
    a = struct.pack(">HHHIH", 0xC000 | target_at, 1, 1, 60, 4) + bytes([192, 0, 2, 7])
    aaaa = struct.pack(">HHHIH", 0xC000 | target_at, 28, 1, 60, 16) + bytes.fromhex(
        "20010db8000000000000000000000001"
    )
    header = struct.pack(">HHHHHH", txid, 0x8180, 1, 3, 0, 0)
    return header + question + cname + a + aaaa


NTP_CLIENT = bytes([0x23, 0, 6, 0xE9]) + bytes(36) + bytes(range(8))  # v4, mode 3
NTP_SERVER = bytes([0x24, 2, 6, 0xE9]) + bytes(4) + bytes(4) + b"GPS\x00" + bytes(range(32))
NTP_CONTROL = bytes([0x16, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0])  # v2, mode 6, READVAR


def dhcp_discover(mac: bytes = bytes.fromhex("001122334455")) -> bytes:
    bootp = bytes([1, 1, 6, 0]) + b"\x39\x03\xf3\x26" + bytes(4) + bytes(16) + mac + bytes(10)
    bootp += bytes(64 + 128) + b"\x63\x82\x53\x63" + b"\x35\x01\x01\xff"
    return bootp + bytes(300 - len(bootp))


def iscsi_login(
    text: bytes = b"InitiatorName=iqn.1994-05.com.redhat:abc\x00SessionType=Normal\x00",
) -> bytes:
    padded = text + bytes(-len(text) % 4)
    bhs = bytes([0x43, 0x87, 0, 0, 0]) + u24(len(text)) + bytes.fromhex("400001370000") + bytes(2)
    bhs += bytes(4) + bytes(4) + bytes(4) + bytes(4) + bytes(16)
    return bhs + padded


NATS_INFO = (
    b'INFO {"server_id":"NCX","version":"2.10.4","go":"go1.21","host":"0.0.0.0","port":4222,'
    b'"headers":true,"max_payload":1048576,"proto":1}\r\n'
)
NATS_INFO_TLS = NATS_INFO.replace(b'"proto":1', b'"proto":1,"tls_required": true')
NATS_CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"name":"app","lang":"go"}\r\nPING\r\n'


def mysql_greeting(version: bytes = b"8.0.36-0ubuntu0.22.04.1", ssl: bool = True) -> bytes:
    caps = 0xFFFF if ssl else 0xF7FF
    body = b"\x0a" + version + b"\x00" + struct.pack("<I", 9) + bytes(8) + b"\x00"
    body += struct.pack("<HBHH", caps, 0xFF, 2, 0xDFFF) + bytes([21]) + bytes(10) + bytes(13)
    body += b"caching_sha2_password\x00"
    return u24(len(body))[::-1] + b"\x00" + body


def mysql_client(seq: int, ssl: bool) -> bytes:
    caps = 0x000FA68D | (0x800 if ssl else 0)
    body = struct.pack("<IIB", caps, 16777216, 255) + bytes(23)
    if not ssl:
        body += b"root\x00" + b"\x14" + bytes(20) + b"caching_sha2_password\x00"
    return u24(len(body))[::-1] + bytes([seq]) + body


# --- Named sample flows (used by the robustness tests as well) -------------------------

GET = b"GET /index.html HTTP/1.1\r\nHost: www.Example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.24.0\r\nContent-Length: 0\r\n\r\n"
BITS = (
    b"BITS_POST /upload/file.bin HTTP/1.1\r\nHost: updates.example.com\r\n"
    b"User-Agent: Microsoft BITS/7.8\r\nBITS-Packet-Type: Create-Session\r\n\r\n"
)

FTP_LOGIN = [
    pkt(1, b"220 Welcome to the log server\r\n"),
    pkt(0, b"USER admin\r\n"),
    pkt(1, b"331 Please specify the password.\r\n"),
    pkt(0, b"PASS secret\r\n"),
    pkt(1, b"230 Login successful.\r\n"),
    pkt(0, b"SYST\r\n"),
]
FTP_AUTH_TLS = [
    pkt(1, b"220 ProFTPD Server (Debian) [::ffff:10.0.0.1]\r\n"),
    pkt(0, b"AUTH TLS\r\n"),
    pkt(1, b"234 AUTH TLS successful\r\n"),
]
#: IAC DO TERMINAL-TYPE, DO TSPEED, DO XDISPLOC, DO NEW-ENVIRON; the client's WILL / SB
TELNET = [
    pkt(1, bytes.fromhex("fffd18fffd20fffd23fffd27")),
    pkt(0, bytes.fromhex("fffb18fffb1ffffb20fffb21fffb22fffb27fffd05")),
    pkt(1, bytes.fromhex("fffa1801fff0") + b"\r\nlogin: "),
]

SMTP = [
    pkt(1, b"220 mx.example.com ESMTP Postfix (Debian/GNU)\r\n"),
    pkt(0, b"EHLO client.example.com\r\n"),
    pkt(1, b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"),
    pkt(0, b"MAIL FROM:<alice@example.com>\r\n"),
]
SMTP_STARTTLS = [
    pkt(1, b"220 mail.example.org Microsoft ESMTP MAIL Service ready\r\n"),
    pkt(0, b"EHLO client\r\n"),
    pkt(1, b"250-mail.example.org Hello\r\n250-STARTTLS\r\n250 SIZE 37748736\r\n"),
    pkt(0, b"STARTTLS\r\n"),
    pkt(1, b"220 2.0.0 SMTP server ready\r\n"),
]
POP3 = [
    pkt(1, b"+OK Dovecot ready.\r\n"),
    pkt(0, b"USER alice\r\n"),
    pkt(1, b"+OK\r\n"),
    pkt(0, b"PASS secret\r\n"),
]
POP3_STLS = [
    pkt(1, b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"),
    pkt(0, b"STLS\r\n"),
    pkt(1, b"+OK Begin TLS negotiation\r\n"),
]
IMAP = [
    pkt(1, b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"),
    pkt(0, b"a001 LOGIN alice secret\r\n"),
    pkt(1, b"a001 OK Logged in\r\n"),
]
IMAP_STARTTLS = [
    pkt(1, b"* OK IMAP4rev1 Service Ready\r\n"),
    pkt(0, b"a001 STARTTLS\r\n"),
    pkt(1, b"a001 OK Begin TLS negotiation now\r\n"),
]
IRC = [
    pkt(0, b"NICK alice\r\nUSER alice 0 * :Alice Liddell\r\n"),
    pkt(1, b":irc.example.net 001 alice :Welcome to the Internet Relay Network alice\r\n"),
]
REDIS = [
    pkt(0, b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"),
    pkt(1, b"+OK\r\n"),
    pkt(0, b"*1\r\n$4\r\nPING\r\n"),
    pkt(1, b"+PONG\r\n"),
]


def krb(app: int, first: int, msg_type: int, rest: bytes = b"") -> bytes:
    """A KDC message: [APPLICATION app] SEQUENCE { pvno [first] 5, msg-type [first+1] ... }."""
    fields_ = ber(0xA0 + first, ber(0x02, b"\x05")) + ber(
        0xA1 + first, ber(0x02, bytes([msg_type]))
    )
    return ber(app, ber(0x30, fields_ + rest))


KRB_AS_REQ = krb(0x6A, 1, 10, ber(0xA4, ber(0x30, ber(0xA0, ber(0x03, b"\x00\x50\x80\x00\x00")))))
KRB_ERROR = krb(0x7E, 0, 30, ber(0xA4, ber(0x18, b"20261202171500Z")))


def dcerpc_pdu(ptype: int, body: bytes, auth_level: int | None = None) -> bytes:
    auth = b"" if auth_level is None else bytes([0x0A, auth_level, 0, 0]) + bytes(4) + bytes(16)
    auth_len = 16 if auth_level is not None else 0
    frag = 16 + len(body) + len(auth)
    return (
        bytes([5, 0, ptype, 3, 0x10, 0, 0, 0])
        + struct.pack("<HHI", frag, auth_len, 1)
        + body
        + auth
    )


DCERPC_BIND_BODY = (
    struct.pack("<HHIB3x", 5840, 5840, 0, 1)
    + struct.pack("<HBx", 0, 1)
    + bytes.fromhex("c4fefc9960521b10bbcb00aa0021347a")  # IRemoteSCMActivator
    + struct.pack("<I", 0)
    + bytes.fromhex("045d888aeb1cc9119fe808002b104860")  # NDR
    + struct.pack("<I", 2)
)
DCERPC_ACK_BODY = struct.pack("<HHI", 5840, 5840, 0x1234) + b"\x04\x00135\x00" + bytes(2)


def x224(code: int, rest: bytes, src_ref: int = 0) -> bytes:
    tpdu = bytes([code]) + u16(0) + u16(src_ref) + b"\x00" + rest
    return bytes([3, 0]) + u16(5 + len(tpdu)) + bytes([len(tpdu)]) + tpdu


RDP_CR = x224(0xE0, b"Cookie: mstshash=admin\r\n" + bytes.fromhex("0100080003000000"))
RDP_CC_TLS = x224(0xD0, bytes.fromhex("0200080001000000"), 0x1234)
RDP_CC_STANDARD = x224(0xD0, bytes.fromhex("0200080000000000"), 0x1234)
#: ISO-on-TCP as S7comm opens it: TSAP parameters, no RDP negotiation
COTP_CR = x224(0xE0, bytes.fromhex("c1020100c2020102c0010a"), 1)

MODBUS_READ = bytes.fromhex("0001000000060103006b0003")
MODBUS_REPLY = bytes.fromhex("000100000009010306022b00000064")

# --- QUIC Initial packets, protected as RFC 9001 section 5 says ----------------------------

#: RFC 9001 appendix A.1 (v1) and RFC 9369 appendix A.1 (v2): the client's Initial keys
#: for the Destination Connection ID 8394c8f03e515708 (key, iv, hp)
QUIC_DCID = bytes.fromhex("8394c8f03e515708")
QUIC_KEYS = {
    1: (
        bytes.fromhex("1f369613dd76d5467730efcbe3b1a22d"),
        bytes.fromhex("fa044b2f42a3fd3b46fb255c"),
        bytes.fromhex("9f50449e04a0e810283a1e9933adedd2"),
    ),
    0x6B3343CF: (
        bytes.fromhex("8b1a0bc121284290a29e0971b5cd045d"),
        bytes.fromhex("91f73e2351d8fa91660e909f"),
        bytes.fromhex("45b95e15235d6f45a6b19cbcb0294ba9"),
    ),
}


def quic_crypto(offset: int, data: bytes) -> bytes:
    return b"\x06" + u16(0x4000 | offset) + u16(0x4000 | len(data)) + data


#: RFC 9001 appendix A.1: the server's Initial keys for the same DCID
QUIC_SERVER_KEYS_V1 = (
    bytes.fromhex("cf3a5331653c364c88f0f379b6067e37"),
    bytes.fromhex("0ac1493ca1905853b0bba03e"),
    bytes.fromhex("c206b8d9b9f0f37644430b490eeaa314"),
)


def quic_initial(
    frames: bytes,
    version: int = 1,
    pn: int = 2,
    size: int = 1200,
    keys: tuple[bytes, bytes, bytes] | None = None,
    dcid: bytes = QUIC_DCID,
    scid: bytes = b"",
) -> bytes:
    """An Initial, padded to ``size`` bytes, protected with the RFC's keys (the client's
    unless ``keys``)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key, iv, hp = keys or QUIC_KEYS[version]
    ptype = 1 if version == 0x6B3343CF else 0
    first = 0xC0 | ptype << 4 | 3  # 4-byte packet number
    cids = bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    head_wo_len = bytes([first]) + version.to_bytes(4, "big") + cids + b"\x00"
    plain_len = size - len(head_wo_len) - 2 - 4 - 16
    payload = frames + bytes(plain_len - len(frames))
    pn_bytes = pn.to_bytes(4, "big")
    header = head_wo_len + u16(0x4000 | (4 + len(payload) + 16)) + pn_bytes
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, payload, header)
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sealed[:16]) + enc.finalize()  # sample: 4 bytes after the pn offset
    protected = bytearray(header + sealed)
    protected[0] ^= mask[0] & 0x0F
    pn_at = len(header) - 4
    for i in range(4):
        protected[pn_at + i] ^= mask[1 + i]
    return bytes(protected)


def udp_pkt(direction: int, payload: bytes) -> Packet:
    """A UDP datagram as the capture keeps it: QUIC long headers of 1200+ bytes and DTLS
    handshake records up to 4096."""
    if (len(payload) >= 1200 and payload[0] >= 0xC0) or payload[:2] == b"\x16\xfe":
        return (direction, payload[:4096], len(payload))
    return pkt(direction, payload)


def dtls_record(ctype: int, body: bytes, seq: int = 0, version: int = 0xFEFD) -> bytes:
    return bytes([ctype]) + u16(version) + u16(0) + seq.to_bytes(6, "big") + u16(len(body)) + body


def dtls_handshake(tls_message: bytes, msg_seq: int = 0, cookie: bytes | None = None) -> bytes:
    """A TLS handshake message in DTLS's form: message sequence, unfragmented; a ClientHello
    gets its cookie after the session id."""
    mtype, body = tls_message[0], tls_message[4:]
    if mtype == 1 and cookie is not None:
        i = 35 + body[34]
        body = body[:i] + bytes([len(cookie)]) + cookie + body[i:]
    n = u24(len(body))
    return bytes([mtype]) + n + u16(msg_seq) + u24(0) + n + body


DTLS_HELLO = dtls_handshake(
    client_hello(0xFEFD, "vpn.example.com", versions=(0xFEFC, 0xFEFD)), cookie=b"\x11" * 20
)
DTLS_SERVER_HELLO = dtls_handshake(server_hello(0xFEFD, 0x1301, selected=0xFEFC))


QUIC_HELLO = client_hello(0x0303, "www.example.org", (b"h3",), (0x0304,))


def rpc_call(xid: int, prog: int, vers: int, proc: int, flavor: int = 1) -> bytes:
    cred = struct.pack(">IIII", 0x12345678, 4, 0, 0) + struct.pack(">III", 0, 0, 0)
    return (
        struct.pack(">IIIIII", xid, 0, 2, prog, vers, proc)
        + struct.pack(">II", flavor, len(cred))
        + cred
        + bytes(8)
    )


def rpc_reply(xid: int) -> bytes:
    return struct.pack(">IIIII", xid, 1, 0, 0, 0) + bytes(4) + struct.pack(">I", 2049)


def record_mark(msg: bytes) -> bytes:
    return struct.pack(">I", 0x80000000 | len(msg)) + msg


PG_SSL_REQUEST = struct.pack(">II", 8, 80877103)
PG_STARTUP = (lambda body: struct.pack(">II", 8 + len(body), 196608) + body)(
    b"user\x00app\x00database\x00shop\x00\x00"
)
PG_AUTH_MD5 = b"R" + struct.pack(">II", 12, 5) + b"salt"
RFB_SERVER, RFB_CLIENT = b"RFB 003.008\n", b"RFB 003.008\n"
SNMP_GET = bytes.fromhex(
    "302602010104067075626c6963a019020409584e45020100020100300b300906052b060102010500"
)
SYSLOG = b"<34>1 2026-12-02T17:00:00Z host app - - - login failed for admin"

SAMPLES: dict[str, tuple[str, str, int, list[Packet]]] = {
    # name: (expected app, proto, responder port, packets)
    "tls12": ("tls", "tcp", 443, tls12_flow(request=False, client_certs=None)),
    "tls12_mutual": (
        "tls",
        "tcp",
        8443,
        tls12_flow(request=True, client_certs=(FAKE_CERT, FAKE_CERT)),
    ),
    "tls12_empty_client_cert": ("tls", "tcp", 443, tls12_flow(request=True, client_certs=())),
    "tls13": ("tls", "tcp", 443, tls13_flow()),
    "tls10": ("tls", "tcp", 443, tls12_flow(request=False, client_certs=None, version=0x0301)),
    "http": ("http", "tcp", 80, [pkt(0, GET), pkt(1, RESPONSE)]),
    "http_bits": ("http", "tcp", 8530, [pkt(0, BITS), pkt(1, b"HTTP/1.1 200 OK\r\n\r\n")]),
    "ssh": (
        "ssh",
        "tcp",
        22,
        [pkt(1, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n"), pkt(0, b"SSH-2.0-PuTTY_0.80\r\n")],
    ),
    "ldap": (
        "ldap",
        "tcp",
        389,
        [pkt(0, LDAP_SIMPLE_BIND), pkt(1, LDAP_BIND_OK), pkt(0, LDAP_SEARCH)],
    ),
    "ldap_starttls": (
        "ldap",
        "tcp",
        389,
        [
            pkt(0, LDAP_STARTTLS),
            pkt(1, LDAP_STARTTLS_OK),
            *tls12_flow(request=False, client_certs=None),
        ],
    ),
    "smb2": (
        "smb",
        "tcp",
        445,
        [pkt(0, SMB2_NEGOTIATE_REQ), pkt(1, SMB2_NEGOTIATE_RESP_311), pkt(0, SMB3_TRANSFORM)],
    ),
    "smb1": (
        "smb",
        "tcp",
        139,
        [pkt(0, SMB1_NEGOTIATE_REQ), pkt(1, SMB1_NEGOTIATE_RESP), pkt(0, SMB1_READ)],
    ),
    "dns_udp": (
        "dns",
        "udp",
        53,
        [pkt(0, dns_query("www.example.com")), pkt(1, dns_cname_response())],
    ),
    "dns_tcp": (
        "dns",
        "tcp",
        53,
        [
            pkt(0, u16(33) + dns_query("www.example.com")),
            pkt(1, u16(len(dns_cname_response())) + dns_cname_response()),
        ],
    ),
    "ntp": ("ntp", "udp", 123, [pkt(0, NTP_CLIENT), pkt(1, NTP_SERVER)]),
    "dhcp": ("dhcp", "udp", 67, [pkt(0, dhcp_discover())]),
    "iscsi": ("iscsi", "tcp", 3260, [pkt(0, iscsi_login())]),
    "nats": ("nats", "tcp", 4222, [pkt(1, NATS_INFO), pkt(0, NATS_CONNECT)]),
    "mysql": ("mysql", "tcp", 3306, [pkt(1, mysql_greeting()), pkt(0, mysql_client(1, ssl=False))]),
    "ftp": ("ftp", "tcp", 21, FTP_LOGIN),
    "ftp_auth_tls": (
        "ftp",
        "tcp",
        21,
        [*FTP_AUTH_TLS, *tls12_flow(request=False, client_certs=None)],
    ),
    "telnet": ("telnet", "tcp", 23, TELNET),
    "smtp": ("smtp", "tcp", 25, SMTP),
    "smtp_starttls": (
        "smtp",
        "tcp",
        587,
        [*SMTP_STARTTLS, *tls12_flow(request=False, client_certs=None)],
    ),
    "pop3": ("pop3", "tcp", 110, POP3),
    "pop3_stls": ("pop3", "tcp", 110, [*POP3_STLS, *tls13_flow()]),
    "imap": ("imap", "tcp", 143, IMAP),
    "imap_starttls": ("imap", "tcp", 143, [*IMAP_STARTTLS, *tls13_flow()]),
    "irc": ("irc", "tcp", 6667, IRC),
    "redis": ("redis", "tcp", 6379, REDIS),
    "kerberos_udp": ("kerberos", "udp", 88, [pkt(0, KRB_AS_REQ), pkt(1, KRB_ERROR)]),
    "kerberos_tcp": (
        "kerberos",
        "tcp",
        88,
        [
            pkt(0, u16(0) + u16(len(KRB_AS_REQ)) + KRB_AS_REQ),
            pkt(1, u16(0) + u16(len(KRB_ERROR)) + KRB_ERROR),
        ],
    ),
    "dcerpc": (
        "dcerpc",
        "tcp",
        135,
        [pkt(0, dcerpc_pdu(11, DCERPC_BIND_BODY)), pkt(1, dcerpc_pdu(12, DCERPC_ACK_BODY))],
    ),
    "rdp": (
        "rdp",
        "tcp",
        3389,
        [pkt(0, RDP_CR), pkt(1, RDP_CC_TLS), *tls12_flow(request=False, client_certs=None)],
    ),
    "modbus": ("modbus", "tcp", 502, [pkt(0, MODBUS_READ), pkt(1, MODBUS_REPLY)]),
    "nfs_tcp": (
        "nfs",
        "tcp",
        2049,
        [pkt(0, record_mark(rpc_call(7, 100003, 3, 0))), pkt(1, record_mark(rpc_reply(7)))],
    ),
    "mount_udp": ("nfs", "udp", 20048, [pkt(0, rpc_call(8, 100005, 3, 0)), pkt(1, rpc_reply(8))]),
    "portmap": ("portmap", "udp", 111, [pkt(0, rpc_call(9, 100000, 2, 3)), pkt(1, rpc_reply(9))]),
    "postgresql": (
        "postgresql",
        "tcp",
        5432,
        [pkt(0, PG_SSL_REQUEST), pkt(1, b"N"), pkt(0, PG_STARTUP), pkt(1, PG_AUTH_MD5)],
    ),
    "vnc": ("vnc", "tcp", 5900, [pkt(1, RFB_SERVER), pkt(0, RFB_CLIENT)]),
    "snmp": ("snmp", "udp", 161, [pkt(0, SNMP_GET)]),
    "syslog": ("syslog", "udp", 514, [pkt(0, SYSLOG)]),
    "dtls": (
        "dtls",
        "udp",
        4433,
        [udp_pkt(0, dtls_record(22, DTLS_HELLO)), udp_pkt(1, dtls_record(22, DTLS_SERVER_HELLO))],
    ),
    "quic": ("quic", "udp", 443, [udp_pkt(0, quic_initial(quic_crypto(0, QUIC_HELLO)))]),
}


def classify(name: str) -> FlowFacts:
    _app, proto, port, packets = SAMPLES[name]
    return classify_flow(proto, port, packets)


# --- Detection of every sample, on its port and on an unrelated one --------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_app(name: str) -> None:
    assert classify(name).app == SAMPLES[name][0]


# NTP, DHCP, DNS and iSCSI off their ports need the stricter checks to pass: the samples do.
@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("port", [40000, 443])
def test_sample_app_on_other_port(name: str, port: int) -> None:
    app, proto, _port, packets = SAMPLES[name]
    assert classify_flow(proto, port, packets).app == app


@pytest.mark.parametrize(
    "name",
    [
        "tls12",
        "tls13",
        "http",
        "ssh",
        "ldap",
        "smb2",
        "dns_udp",
        "dns_tcp",
        "ntp",
        "nats",
        "mysql",
        "ftp",
        "telnet",
        "smtp",
        "pop3",
        "imap",
        "irc",
        "redis",
        "kerberos_udp",
        "kerberos_tcp",
        "dcerpc",
        "rdp",
        "modbus",
    ],
)
def test_sample_app_from_responder_side_only(name: str) -> None:
    """Half-duplex captures: only the responder's packets (still direction 1)."""
    app, proto, port, packets = SAMPLES[name]
    only_server = [p for p in packets if p[0] == 1]
    assert classify_flow(proto, port, only_server).app == app


def test_no_payload_and_unknown() -> None:
    assert classify_flow("tcp", 443, []).app == "none"
    assert classify_flow("tcp", 443, [(0, b"", 0)]).app == "none"
    facts = classify_flow("tcp", 443, [(0, b"\x01\x02\x03 hello", 9)])
    assert facts.app == "unknown"
    assert facts.encrypted is None


# --- TLS facts -------------------------------------------------------------------------


def test_tls12_non_mutual() -> None:
    f = classify("tls12")
    assert f.encrypted is True
    assert f.tls_record_version == "TLS 1.0"
    assert f.tls_client_versions == ("TLS 1.2",)
    assert f.tls_version == "TLS 1.2"
    assert f.tls_cipher_suite == 0xC02F
    assert f.sni == "example.com"
    assert f.tls_cert_requested is False
    assert f.tls_client_cert is False


def test_tls12_mutual() -> None:
    f = classify("tls12_mutual")
    assert f.tls_cert_requested is True
    assert f.tls_client_cert is True


def test_tls12_empty_client_certificate() -> None:
    f = classify("tls12_empty_client_cert")
    assert f.tls_cert_requested is True
    assert f.tls_client_cert is False


def test_tls13_cert_facts_unknown() -> None:
    f = classify("tls13")
    assert f.tls_record_version == "TLS 1.0"
    assert f.tls_client_versions == ("TLS 1.3", "TLS 1.2")  # GREASE dropped
    assert f.tls_version == "TLS 1.3"
    assert f.alpn == ("h2", "http/1.1")
    assert f.tls_cert_requested is None
    assert f.tls_client_cert is None
    assert f.encrypted is True


def test_tls10() -> None:
    f = classify("tls10")
    assert (f.tls_record_version, f.tls_client_versions, f.tls_version) == (
        "TLS 1.0",
        ("TLS 1.0",),
        "TLS 1.0",
    )
    assert f.tls_cert_requested is False


def test_ssl30_no_certificate_alert() -> None:
    """SSL 3.0 answers a CertificateRequest it cannot satisfy with a no_certificate alert."""
    server = (
        server_hello(0x0300, 0x000A) + certificate(FAKE_CERT) + CERT_REQUEST + SERVER_HELLO_DONE
    )
    packets = [
        pkt(0, record(22, client_hello(0x0300, sni=None), 0x0300)),
        pkt(1, record(22, server, 0x0300)),
        pkt(0, record(21, b"\x01\x29", 0x0300) + record(22, CLIENT_KEY_EXCHANGE, 0x0300)),
    ]
    f = classify_flow("tcp", 443, packets)
    assert f.tls_version == "SSL 3.0"
    assert f.tls_cert_requested is True
    assert f.tls_client_cert is False
    # Even with the server's flight lost, the alert says a certificate was asked for.
    f = classify_flow("tcp", 443, [packets[0], packets[2]])
    assert (f.tls_cert_requested, f.tls_client_cert) == (True, False)


@pytest.mark.parametrize(
    ("client_certs", "requested", "sent"),
    [((FAKE_CERT,), True, True), ((), True, False), (None, False, False)],
)
def test_tls12_cert_inferred_from_client_flight(
    client_certs: tuple[bytes, ...] | None, requested: bool, sent: bool
) -> None:
    """The server's flight is a large certificate chain whose later segments are cut to 128
    bytes by the head limit: the client's second flight still tells."""
    big = certificate(*([FAKE_CERT] * 8))
    server = record(22, server_hello() + big) + record(22, SERVER_KEY_EXCHANGE)
    if requested:
        server += record(22, CERT_REQUEST)
    server += record(22, SERVER_HELLO_DONE)
    flight2 = b"" if client_certs is None else certificate(*client_certs)
    flight2 += CLIENT_KEY_EXCHANGE
    packets = [
        pkt(0, record(22, client_hello(), 0x0301)),
        *segments(1, server),
        pkt(0, record(22, flight2) + CCS + FINISHED),
    ]
    assert any(len(h) < n for _d, h, n in packets)  # the middle of the chain is not visible
    f = classify_flow("tcp", 443, packets)
    assert (f.tls_cert_requested, f.tls_client_cert) == (requested, sent)


def test_tls12_certificate_request_seen_in_last_segment() -> None:
    """CertificateRequest at the start of a short last segment is read at its stream offset."""
    server_records = record(22, server_hello()) + record(22, certificate(*([FAKE_CERT] * 3)))
    tail = record(22, CERT_REQUEST) + record(22, SERVER_HELLO_DONE)
    packets = [pkt(0, record(22, client_hello(), 0x0301))]
    packets += segments(1, server_records, mss=1000)
    packets.append(pkt(1, tail))
    assert packets[-1][1][:2] == b"\x16\x03"
    f = classify_flow("tcp", 443, packets)
    assert f.tls_cert_requested is True
    assert f.tls_client_cert is None  # asked, but the client's answer is not in the heads


def test_tls_resumed_session_cert_facts_unknown() -> None:
    packets = [
        pkt(0, record(22, client_hello(), 0x0301)),
        pkt(1, record(22, server_hello()) + CCS + FINISHED),
        pkt(0, CCS + FINISHED),
        pkt(0, APP_DATA),
    ]
    f = classify_flow("tcp", 443, packets)
    assert f.tls_version == "TLS 1.2"
    assert (f.tls_cert_requested, f.tls_client_cert) == (None, None)


def test_tls_null_cipher_is_not_encrypted() -> None:
    f = classify_flow("tcp", 443, tls12_flow(request=False, client_certs=None, suite=0x003B))
    assert f.app == "tls"
    assert f.encrypted is False


def test_tls_server_alpn_and_hello_retry() -> None:
    ch = client_hello(versions=(0x0304,), alpn=(b"h2",))
    hrr = server_hello(0x0303, 0x1301, selected=0x0304, rand=HRR_RANDOM)
    packets = [
        pkt(0, record(22, ch, 0x0301)),
        pkt(1, record(22, hrr)),
        pkt(0, record(22, ch)),
        pkt(1, record(22, server_hello(0x0303, 0x1302, selected=0x0304)) + APP_DATA),
    ]
    f = classify_flow("tcp", 443, packets)
    assert (f.tls_version, f.tls_cipher_suite) == ("TLS 1.3", 0x1302)
    tls12 = [
        pkt(0, record(22, client_hello(alpn=(b"h2", b"http/1.1")), 0x0301)),
        pkt(1, record(22, server_hello(alpn=b"http/1.1") + SERVER_HELLO_DONE)),
    ]
    f = classify_flow("tcp", 443, tls12)
    assert (f.alpn, f.alpn_selected) == (("h2", "http/1.1"), "http/1.1")
    assert f.tls_cert_requested is False


def test_tls_truncated_client_hello() -> None:
    """A ClientHello cut at 128 bytes: version and what fits are read, the rest is unknown."""
    full = record(22, client_hello(versions=(0x0304, 0x0303), padding=200), 0x0301)
    f = classify_flow("tcp", 443, [(0, full[:128], len(full))])
    assert f.app == "tls"
    assert f.tls_record_version == "TLS 1.0"
    assert f.sni == "example.com"  # the first extension fits
    assert f.tls_client_versions in (("TLS 1.3", "TLS 1.2"), ("TLS 1.2",))
    f = classify_flow("tcp", 443, [(0, full[:60], len(full))])
    assert f.tls_client_versions == ("TLS 1.2",)
    assert f.sni is None


def test_tls_client_in_direction_1_and_retransmission() -> None:
    packets = [(1 - d, h, n) for d, h, n in tls12_flow(request=True, client_certs=(FAKE_CERT,))]
    packets.insert(1, packets[0])  # the ClientHello retransmitted
    f = classify_flow("tcp", 443, packets)
    assert f.sni == "example.com"
    assert (f.tls_cert_requested, f.tls_client_cert) == (True, True)


def test_tls_after_unknown_preamble() -> None:
    """RDP's X.224 exchange, then TLS in the same flow: facts from the first record on."""
    x224 = bytes.fromhex(
        "0300002a25e00000000000436f6f6b69653a206d737473686173683d610d0a0100080003000000"
    )
    packets = [pkt(0, x224), pkt(1, bytes.fromhex("0300001302f08000000000020008000200000000"))]
    packets += tls12_flow(request=False, client_certs=None)
    f = classify_flow("tcp", 3389, packets)
    assert (f.app, f.sni, f.tls_cert_requested) == ("tls", "example.com", False)


def test_sslv2_compatible_client_hello() -> None:
    body = b"\x01\x03\x01" + u16(3) + u16(0) + u16(16) + b"\x00\x00\x04" + bytes(16)
    hello = bytes([0x80 | len(body) >> 8, len(body) & 0xFF]) + body
    packets = [
        pkt(0, hello),
        pkt(1, record(22, server_hello(0x0301, 0x0004) + SERVER_HELLO_DONE, 0x0301)),
    ]
    f = classify_flow("tcp", 443, packets)
    assert f.app == "tls"
    assert f.tls_record_version == "SSL 2.0"
    assert f.tls_client_versions == ("TLS 1.0",)
    assert f.tls_version == "TLS 1.0"


@pytest.mark.parametrize(
    "head",
    [
        b"\x16\x03\x01\x00\x00",  # zero length
        b"\x16\x03\x09\x00\x10",  # version 3.9
        b"\x16\x02\x00\x00\x10",  # version 2.0 record
        b"\x19\x03\x03\x00\x10",  # content type 25
        b"\x17\x03\x03\xff\xff",  # longer than any record may be
    ],
)
def test_not_a_tls_record(head: bytes) -> None:
    assert detect("tcp", 443, head + bytes(16), 21) != "tls"


# --- HTTP ------------------------------------------------------------------------------


def test_http_request_and_response() -> None:
    f = classify("http")
    assert (f.http_method, f.http_target, f.http_host) == ("GET", "/index.html", "www.example.com")
    assert f.http_user_agent == "curl/8.5.0"
    assert f.http_status == 404
    assert f.server_version == "nginx/1.24.0"
    assert f.encrypted is False


def test_http_bits_upload() -> None:
    f = classify("http_bits")
    assert (f.http_method, f.http_user_agent, f.http_host) == (
        "BITS_POST",
        "Microsoft BITS/7.8",
        "updates.example.com",
    )
    assert f.http_status == 200


@pytest.mark.parametrize(
    "line",
    [
        b"CCM_POST /ccm_system/request HTTP/1.1\r\n",
        b"RPC_IN_DATA /rpc/rpcproxy.dll?dc1:6004 HTTP/1.1\r\n",
        b"RPC_OUT_DATA /rpc/rpcproxy.dll?dc1:6004 HTTP/1.1\r\n",
        b"PROPFIND /dav/ HTTP/1.1\r\n",
        b"M-SEARCH * HTTP/1.1\r\n",
        b"CONNECT proxy.example.com:443 HTTP/1.1\r\n",
        b"FROBNICATE /x HTTP/1.0\r\n",  # unknown method, but a complete HTTP request line
        b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n",
        b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n",  # known method, line cut by the head limit
    ],
)
def test_http_methods(line: bytes) -> None:
    f = classify_flow("tcp", 8080, [pkt(0, line + b"Host: h\r\n\r\n")])
    assert f.app == "http"
    assert f.http_method == line.split(b" ")[0].decode()


@pytest.mark.parametrize(
    "payload",
    [
        b"OPTIONS rtsp://cam.example.com/stream RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"GETTING /x HTTP\r\n",
        b"USER anonymous\r\n",
        b"220 ftp.example.com FTP server ready\r\n",
    ],
)
def test_not_http(payload: bytes) -> None:
    assert classify_flow("tcp", 80, [pkt(0, payload)]).app != "http"


def test_http_connect_then_tls() -> None:
    packets = [
        pkt(0, b"CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n\r\n"),
        pkt(1, b"HTTP/1.1 200 Connection established\r\n\r\n"),
        *tls12_flow(request=False, client_certs=None),
    ]
    f = classify_flow("tcp", 3128, packets)
    assert (f.app, f.http_method, f.http_status) == ("http", "CONNECT", 200)
    assert (f.encrypted, f.sni, f.tls_version) == (True, "example.com", "TLS 1.2")


def test_http_headers_beyond_head_are_unknown() -> None:
    """A Host header past the 1024-byte head is not seen; a cut-off line is not guessed."""
    request = b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\nHost: late.example.com\r\n\r\n"
    f = classify_flow("tcp", 80, [pkt(0, request)])
    assert (f.app, f.http_method, f.http_target, f.http_host) == ("http", "GET", None, None)
    request = b"POST /x HTTP/1.1\r\nUser-Agent: " + b"b" * 1100 + b"\r\nHost: h\r\n\r\n"
    f = classify_flow("tcp", 80, [pkt(0, request)])
    assert (f.http_target, f.http_user_agent, f.http_host) == ("/x", None, None)


# --- SSH -------------------------------------------------------------------------------


def test_ssh_banners() -> None:
    f = classify("ssh")
    assert f.ssh_banner == "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3"
    assert f.ssh_client_banner == "SSH-2.0-PuTTY_0.80"
    assert f.encrypted is True


def test_ssh_client_only() -> None:
    f = classify_flow("tcp", 2222, [pkt(0, b"SSH-2.0-OpenSSH_9.6\r\n")])
    assert (f.app, f.ssh_banner, f.ssh_client_banner) == (
        "ssh",
        "SSH-2.0-OpenSSH_9.6",
        "SSH-2.0-OpenSSH_9.6",
    )


# --- LDAP ------------------------------------------------------------------------------


def test_ldap_plain_simple_bind() -> None:
    f = classify("ldap")
    assert (f.app, f.ldap_bind, f.ldap_starttls, f.encrypted) == ("ldap", "simple", False, False)


def test_ldap_starttls() -> None:
    f = classify("ldap_starttls")
    assert (f.app, f.ldap_starttls, f.encrypted) == ("ldap", True, True)
    assert (f.tls_version, f.sni, f.tls_cert_requested) == ("TLS 1.2", "example.com", False)


def test_ldap_starttls_refused() -> None:
    packets = [pkt(0, LDAP_STARTTLS), pkt(1, LDAP_STARTTLS_REFUSED), pkt(0, LDAP_SIMPLE_BIND)]
    f = classify_flow("tcp", 389, packets)
    assert (f.ldap_starttls, f.encrypted) == (True, False)


@pytest.mark.parametrize(("sealed", "encrypted"), [(True, True), (False, False)])
def test_ldap_sasl_wrapped(sealed: bool, encrypted: bool) -> None:
    packets = [
        pkt(0, LDAP_SASL_BIND),
        pkt(1, LDAP_BIND_OK),
        pkt(0, cfx_wrap(sealed, LDAP_SEARCH)),
        pkt(1, cfx_wrap(sealed, LDAP_SEARCH_DONE)),
    ]
    f = classify_flow("tcp", 389, packets)
    assert (f.ldap_bind, f.encrypted) == ("sasl:GSS-SPNEGO", encrypted)


def test_ldap_off_port_needs_a_request() -> None:
    assert classify_flow("tcp", 10389, [pkt(0, LDAP_SEARCH)]).app == "ldap"
    assert classify_flow("tcp", 10389, [pkt(1, LDAP_BIND_OK)]).app == "unknown"
    assert classify_flow("tcp", 389, [pkt(1, LDAP_BIND_OK)]).app == "ldap"
    snmp = bytes.fromhex("302602010104067075626c6963a1190204") + bytes(20)
    assert classify_flow("udp", 161, [pkt(0, snmp)]).app == "snmp"  # BER, but not LDAP


# --- SMB -------------------------------------------------------------------------------


def test_smb2_dialect_and_transform() -> None:
    f = classify("smb2")
    assert (f.smb_dialect, f.smb_signing_required, f.encrypted) == ("3.1.1", True, True)


@pytest.mark.parametrize(
    ("packets", "encrypted"),
    [
        ([SMB2_NEGOTIATE_REQ, SMB2_NEGOTIATE_RESP_202], None),
        ([SMB2_NEGOTIATE_REQ, SMB2_NEGOTIATE_RESP_202, SMB2_CREATE], False),
        ([SMB2_NEGOTIATE_RESP_311, SMB2_SESSION_SETUP_ENC], True),
        ([SMB2_NEGOTIATE_RESP_311, SMB2_TREE_CONNECT_ENC], True),
    ],
)
def test_smb2_encryption(packets: list[bytes], encrypted: bool | None) -> None:
    flow = [pkt(i % 2, p) for i, p in enumerate(packets)]
    assert classify_flow("tcp", 445, flow).encrypted is encrypted


def test_smb1_dialect() -> None:
    f = classify("smb1")
    assert (f.app, f.smb_dialect, f.smb_signing_required, f.encrypted) == (
        "smb",
        "NT LM 0.12",
        False,
        False,
    )


def test_smb_after_netbios_session_request() -> None:
    session_request = (
        b"\x81\x00\x00\x44" + b"\x20" + b"CKFDENECFDEFFCFGEFFCCACACACACACA" + b"\x00" * 35
    )
    packets = [pkt(0, session_request), pkt(1, b"\x82\x00\x00\x00"), pkt(0, SMB1_NEGOTIATE_REQ)]
    assert classify_flow("tcp", 139, packets).app == "smb"


# --- DNS -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dns_udp", "dns_tcp"])
def test_dns_cname_chain(name: str) -> None:
    f = classify(name)
    assert f.dns_queries == ("www.example.com",)
    assert set(f.dns_answers) == {
        ("edge.cdn.example.com", "192.0.2.7"),
        ("www.example.com", "192.0.2.7"),
        ("edge.cdn.example.com", "2001:db8::1"),
        ("www.example.com", "2001:db8::1"),
    }
    assert f.encrypted is False


def test_dns_tcp_length_in_its_own_segment() -> None:
    query = dns_query("host.corp.example")
    packets = [pkt(0, u16(len(query))), pkt(0, query)]
    f = classify_flow("tcp", 53, packets)
    assert (f.app, f.dns_queries) == ("dns", ("host.corp.example",))


def test_dns_off_port_and_mdns() -> None:
    assert classify_flow("udp", 8053, [pkt(0, dns_query("www.example.com"))]).app == "dns"
    mdns = (
        struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 0)
        + dns_name("printer.local")
        + struct.pack(">HH", 12, 0x8001)
    )
    assert classify_flow("udp", 5353, [pkt(0, mdns)]).dns_queries == ("printer.local",)
    nbns = struct.pack(">HHHHHH", 0x8D02, 0x0110, 1, 0, 0, 0) + dns_name(
        "CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    )
    f = classify_flow("udp", 137, [pkt(0, nbns + struct.pack(">HH", 0x21, 1))])
    assert (f.app, f.dns_queries) == ("netbios-ns", ())  # NetBIOS, its names not host names


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (b"\x03www\x07example\x03com\x00", ("www.example.com", 17)),
        (b"\x00", ("", 1)),
        (b"\xc0\x00", (None, -1)),  # points at itself
        (b"\x01a\xc0\x00", (None, -1)),  # points back into its own run of labels
        (b"\x01a\xc0\x05\x01b\x00", (None, -1)),  # points forward
        (b"\x05ab", (None, -1)),  # label runs past the end
        (b"\x41" + b"a" * 70, (None, -1)),  # label type 01
        (
            b"\x3f"
            + b"a" * 63
            + b"\x3f"
            + b"a" * 63
            + b"\x3f"
            + b"a" * 63
            + b"\x3f"
            + b"a" * 63
            + b"\x00",
            (None, -1),
        ),
    ],
)
def test_dns_read_name(msg: bytes, expected: tuple[str | None, int]) -> None:
    assert read_name(msg, 0) == expected


def test_dns_pointer_loop_between_two_names() -> None:
    # An answer name at 19 points to 21, which points back to 19: both must stop.
    question = b"\x01a\x00" + struct.pack(">HH", 1, 1)
    answers = b"\xc0\x15\xc0\x13" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes(4)
    response = struct.pack(">HHHHHH", 1, 0x8180, 1, 2, 0, 0) + question + answers
    assert read_name(response, 19) == (None, -1)
    assert read_name(response, 21) == (None, -1)
    f = classify_flow("udp", 53, [pkt(1, response)])
    assert (f.app, f.dns_queries, f.dns_answers) == ("dns", ("a",), ())


def test_dns_answers_cut_by_head_limit() -> None:
    response = dns_cname_response()
    f = classify_flow("udp", 53, [(1, response[:70], len(response))])
    assert f.dns_queries == ("www.example.com",)
    assert f.dns_answers == ()


# --- NTP, DHCP, iSCSI, NATS, MySQL ---------------------------------------------------


def test_ntp() -> None:
    f = classify("ntp")
    assert (f.app, f.ntp_version, f.ntp_mode, f.encrypted) == ("ntp", 4, 3, False)
    f = classify_flow("udp", 123, [pkt(0, NTP_CONTROL)])
    assert (f.app, f.ntp_version, f.ntp_mode) == ("ntp", 2, 6)
    assert classify_flow("udp", 4000, [pkt(0, NTP_CONTROL)]).app == "unknown"


def test_dhcp() -> None:
    f = classify("dhcp")
    assert (f.app, f.encrypted) == ("dhcp", False)
    head = SAMPLES["dhcp"][3][0][1]
    assert len(head) == 128  # the magic cookie at 236 is beyond the head
    not_bootp = bytes([1, 1, 6, 0]) + bytes(24) + bytes(range(16)) + bytes(84)
    assert classify_flow("udp", 9999, [(0, not_bootp, 300)]).app == "unknown"


def test_iscsi() -> None:
    f = classify("iscsi")
    assert (f.app, f.encrypted) == ("iscsi", False)
    bad_version = bytearray(iscsi_login())
    bad_version[2] = 7
    assert classify_flow("tcp", 13260, [pkt(0, bytes(bad_version))]).app == "unknown"


def test_nats() -> None:
    f = classify("nats")
    assert (f.app, f.server_version, f.encrypted) == ("nats", "2.10.4", False)
    f = classify_flow(
        "tcp", 4222, [pkt(1, NATS_INFO_TLS), pkt(0, record(22, client_hello(), 0x0301))]
    )
    assert (f.app, f.encrypted, f.sni) == ("nats", True, "example.com")


def test_mysql_plain() -> None:
    f = classify("mysql")
    assert (f.app, f.server_version, f.encrypted) == ("mysql", "8.0.36-0ubuntu0.22.04.1", False)


def test_mysql_tls() -> None:
    packets = [
        pkt(1, mysql_greeting()),
        pkt(0, mysql_client(1, ssl=True)),
        *tls12_flow(request=True, client_certs=(FAKE_CERT,)),
    ]
    f = classify_flow("tcp", 3307, packets)
    assert (f.app, f.encrypted, f.tls_cert_requested, f.tls_client_cert) == (
        "mysql",
        True,
        True,
        True,
    )


# --- FTP, Telnet ---------------------------------------------------------------------


def test_ftp_plain_login() -> None:
    f = classify("ftp")
    assert (f.app, f.encrypted, f.starttls) == ("ftp", False, False)


def test_ftp_auth_tls() -> None:
    f = classify("ftp_auth_tls")
    assert (f.app, f.starttls, f.encrypted, f.sni) == ("ftp", True, True, "example.com")
    refused = [*FTP_AUTH_TLS[:2], pkt(1, b"534 Request denied for policy reasons.\r\n")]
    f = classify_flow("tcp", 21, refused)
    assert (f.app, f.starttls, f.encrypted) == ("ftp", True, False)


@pytest.mark.parametrize(
    ("port", "packets", "app"),
    [
        # the banner names FTP: enough on any port
        (8888, [pkt(1, b"220 Microsoft FTP Service\r\n")], "ftp"),
        (8888, [pkt(1, b"220-Welcome\r\n220 ProFTPD 1.3.8 Server ready.\r\n")], "ftp"),
        # a bare 220 on its port
        (21, [pkt(1, b"220 Welcome\r\n")], "ftp"),
        # an FTP-only command without any reply (half-duplex capture)
        (40000, [pkt(0, b"PASV\r\n")], "ftp"),
        (40000, [pkt(0, b"feat\r\n")], "ftp"),
        (40000, [pkt(0, b"TYPE I\r\n")], "ftp"),
        (40000, [pkt(0, b"TYPE L 8\r\n")], "ftp"),
    ],
)
def test_ftp_detected(port: int, packets: list[Packet], app: str) -> None:
    assert classify_flow("tcp", port, packets).app == app


@pytest.mark.parametrize(
    "packets",
    [
        [pkt(1, b"220 Welcome\r\n")],  # a bare reply off the FTP ports: FTP or SMTP?
        [pkt(0, b"USER admin\r\n")],  # USER alone: FTP or POP3
        [pkt(1, b"220\x00\x01\x02binary")],  # digits, then binary
        [pkt(1, b"699 no such reply class\r\n")],
        [pkt(0, b"PASVX\r\n")],
        [pkt(0, b"MODE #channel +o alice\r\n")],  # IRC's MODE
        [pkt(0, b"TYPE\r\n")],
        [pkt(0, b"AUTH PLAIN\r\n")],  # SMTP's or IMAP's AUTH, not FTP's
    ],
)
def test_ftp_near_misses(packets: list[Packet]) -> None:
    assert classify_flow("tcp", 40000, packets).app != "ftp"


def test_numeric_line_that_is_neither_ftp_nor_smtp_does_not_hide_the_protocol() -> None:
    # a status line first, then a protocol the detectors know
    packets = [pkt(1, b"200 ready\r\n"), pkt(0, b"SSH-2.0-OpenSSH_9.6\r\n")]
    assert classify_flow("tcp", 40000, packets).app == "ssh"


def test_telnet() -> None:
    f = classify("telnet")
    assert (f.app, f.encrypted) == ("telnet", False)
    # one negotiation then a banner
    f = classify_flow("tcp", 2323, [pkt(1, bytes.fromhex("fffb01") + b"Welcome\r\n")])
    assert f.app == "telnet"


@pytest.mark.parametrize(
    "payload",
    [
        bytes.fromhex("fffb"),  # cut short
        bytes.fromhex("fffb9b"),  # option 155 is not assigned
        bytes.fromhex("fffb01") + bytes(range(1, 40)),  # then binary
        bytes.fromhex("ff00ff00"),  # IAC, not a command
        bytes.fromhex("fffa18"),  # a subnegotiation that never ends
    ],
)
def test_telnet_near_misses(payload: bytes) -> None:
    assert classify_flow("tcp", 23, [pkt(0, payload)]).app == "unknown"


# --- SMTP, POP3, IMAP and their STARTTLS; IRC; Redis -----------------------------------


@pytest.mark.parametrize(
    ("name", "app", "starttls", "encrypted"),
    [
        ("smtp", "smtp", False, False),
        ("smtp_starttls", "smtp", True, True),
        ("pop3", "pop3", False, False),
        ("pop3_stls", "pop3", True, True),
        ("imap", "imap", False, False),
        ("imap_starttls", "imap", True, True),
        ("irc", "irc", False, False),
        ("redis", "redis", False, False),
    ],
)
def test_text_protocol_facts(name: str, app: str, starttls: bool, encrypted: bool) -> None:
    f = classify(name)
    assert (f.app, f.starttls, f.encrypted) == (app, starttls, encrypted)


def test_starttls_answer_without_handshake() -> None:
    # accepted, the handshake not captured: encrypted from the answer
    f = classify_flow("tcp", 25, SMTP_STARTTLS)
    assert (f.app, f.starttls, f.encrypted, f.tls_version) == ("smtp", True, True, None)
    refused = [*SMTP_STARTTLS[:4], pkt(1, b"454 4.7.0 TLS not available\r\n")]
    f = classify_flow("tcp", 25, refused)
    assert (f.starttls, f.encrypted) == (True, False)
    f = classify_flow("tcp", 110, [*POP3_STLS[:2], pkt(1, b"-ERR Command not permitted\r\n")])
    assert (f.app, f.starttls, f.encrypted) == ("pop3", True, False)
    f = classify_flow("tcp", 143, [*IMAP_STARTTLS[:2], pkt(1, b"a001 BAD not now\r\n")])
    assert (f.app, f.starttls, f.encrypted) == ("imap", True, False)


def test_starttls_then_tls_facts() -> None:
    f = classify("smtp_starttls")
    assert (f.sni, f.tls_version) == ("example.com", "TLS 1.2")


def test_redis_inline_commands_on_its_port_only() -> None:
    inline = [pkt(0, b"set test 1\r\n"), pkt(1, b"+OK\r\n")]
    assert classify_flow("tcp", 6379, inline).app == "redis"
    assert classify_flow("tcp", 40000, inline).app == "unknown"
    assert classify_flow("tcp", 6379, [pkt(0, b"settle down\r\n")]).app == "unknown"
    error = [pkt(1, b"-ERR Protocol error: invalid multibulk length\r\n")]
    assert classify_flow("tcp", 40000, error).app == "redis"


@pytest.mark.parametrize(
    "payload",
    [b"PASV\r\n", b"220 Microsoft FTP Service\r\n", b"EHLO x\r\n", b"+OK ready\r\n",
     b"* OK ready\r\n", b"NICK alice\r\n", bytes.fromhex("fffd18fffd20")],
)  # fmt: skip
def test_line_protocols_and_telnet_over_tcp_only(payload: bytes) -> None:
    assert classify_flow("tcp", 40000, [pkt(0, payload)]).app != "unknown"
    assert classify_flow("udp", 40000, [pkt(0, payload)]).app == "unknown"


@pytest.mark.parametrize(
    ("packets", "app"),
    [
        # a bare 220 off the ports: the client's EHLO decides, and the EHLO keywords
        ([pkt(1, b"220 Welcome\r\n"), pkt(0, b"EHLO x\r\n")], "smtp"),
        ([pkt(1, b"220 Welcome\r\n"), pkt(1, b"250-host\r\n250-PIPELINING\r\n")], "smtp"),
        ([pkt(0, b"RCPT TO:<bob@example.com>\r\n")], "smtp"),
        ([pkt(0, b"USER bob\r\n"), pkt(1, b"+OK password required\r\n")], "pop3"),
        ([pkt(0, b"CAPA\r\n")], "pop3"),
        ([pkt(0, b"TOP 1 10\r\n")], "pop3"),
        ([pkt(1, b"* PREAUTH IMAP4rev1 server logged in as Smith\r\n")], "imap"),
        ([pkt(0, b"A1 CAPABILITY\r\n")], "imap"),
        ([pkt(0, b"CAP LS 302\r\n")], "irc"),
        ([pkt(0, b"USER foo\nNICK foo\n")], "irc"),
        ([pkt(1, b"NOTICE AUTH :*** Looking up your hostname...\r\n")], "irc"),
        ([pkt(1, b"-NOAUTH Authentication required.\r\n")], "redis"),
    ],
)
def test_text_protocols_off_port(packets: list[Packet], app: str) -> None:
    assert classify_flow("tcp", 40000, packets).app == app


@pytest.mark.parametrize(
    "payload",
    [
        b"+OK\r\n",  # Redis or POP3
        b"-ERR no such message\r\n",  # POP3 or Redis
        b"* 12 EXISTS\r\n",  # an untagged IMAP response, but also just a star
        b"*3\r\n$3\r\nS\x00T\r\n",  # a RESP array whose command is not a word
        b"*3\r\n$5\r\nSET\r\n",  # length of the first string wrong
        b"EHLO\r\n",  # EHLO needs a domain
        b"MAIL\r\n",
        b"NICK 9lives\r\n",  # nicknames do not start with a digit
        b"USER a b c d\r\n",  # IRC's USER ends with a :realname
        b":x\r\n",
        b"TOP ten\r\n",
        b"a001 FROBNICATE\r\n",
        b"250 OK\r\n",  # a reply off the ports without any other evidence
    ],
)
def test_text_near_misses(payload: bytes) -> None:
    assert classify_flow("tcp", 40000, [pkt(0, payload)]).app == "unknown"


# --- Kerberos, DCE/RPC, RDP, Modbus ----------------------------------------------------


def test_kerberos() -> None:
    assert (classify("kerberos_udp").app, classify("kerberos_udp").encrypted) == ("kerberos", True)
    assert classify("kerberos_tcp").app == "kerberos"


@pytest.mark.parametrize(
    "payload",
    [
        krb(0x6A, 1, 12),  # AS-REQ tag with TGS-REQ's message type
        krb(0x6A, 0, 10),  # pvno in the reply's place
        krb(0x6B, 0, 11)[:2] + b"\x31" + krb(0x6B, 0, 11)[3:],  # SET instead of SEQUENCE
        ber(0x6A, ber(0x30, ber(0xA1, ber(0x02, b"\x04")) + ber(0xA2, ber(0x02, b"\x0a")))),  # v4
    ],
)
def test_kerberos_near_misses(payload: bytes) -> None:
    assert classify_flow("udp", 88, [pkt(0, payload)]).app == "unknown"
    assert classify_flow("tcp", 88, [pkt(0, u16(0) + u16(len(payload)) + payload)]).app == "unknown"


@pytest.mark.parametrize(("level", "encrypted"), [(None, False), (2, False), (6, True)])
def test_dcerpc_auth_level(level: int | None, encrypted: bool) -> None:
    f = classify_flow("tcp", 49667, [pkt(0, dcerpc_pdu(11, DCERPC_BIND_BODY, level))])
    assert (f.app, f.encrypted) == ("dcerpc", encrypted)


def test_dcerpc_request_midstream_and_connectionless() -> None:
    request = dcerpc_pdu(0, struct.pack("<IHH", 24, 0, 4) + bytes(24))
    assert classify_flow("tcp", 49152, [pkt(0, request)]).app == "dcerpc"
    body = bytes(20)
    cl = (
        bytes([4, 0, 0x20, 0, 0x10, 0, 0])
        + bytes(67)
        + struct.pack("<HHBB", len(body), 0, 0, 0)
        + body
    )
    assert classify_flow("udp", 1054, [pkt(0, cl)]).app == "dcerpc"


@pytest.mark.parametrize(
    "payload",
    [
        bytes([4]) + dcerpc_pdu(11, DCERPC_BIND_BODY)[1:],  # version 4 over TCP
        dcerpc_pdu(11, DCERPC_BIND_BODY)[:4] + b"\x10\x00\x00\x01" + dcerpc_pdu(11, b"")[8:],
        dcerpc_pdu(11, DCERPC_BIND_BODY)[:8] + struct.pack("<H", 12) + bytes(6),  # frag < header
        dcerpc_pdu(0x30, b""),  # no such packet type
    ],
)
def test_dcerpc_near_misses(payload: bytes) -> None:
    assert classify_flow("tcp", 40000, [pkt(0, payload)]).app == "unknown"


def test_rdp() -> None:
    f = classify("rdp")
    assert (f.app, f.rdp_security, f.encrypted, f.sni) == ("rdp", "tls", True, "example.com")
    f = classify_flow("tcp", 3389, [pkt(0, RDP_CR), pkt(1, RDP_CC_STANDARD)])
    assert (f.app, f.rdp_security, f.encrypted) == ("rdp", "rdp", True)
    # an old client without negotiation: RDP only on its port
    bare = x224(0xE0, b"")
    assert classify_flow("tcp", 3389, [pkt(0, bare)]).app == "rdp"
    assert classify_flow("tcp", 40000, [pkt(0, bare)]).app == "unknown"


@pytest.mark.parametrize(
    "payload",
    [
        COTP_CR,  # S7comm / ISO-on-TCP
        RDP_CR[:1] + b"\x01" + RDP_CR[2:],  # TPKT reserved byte set
        RDP_CR[:4] + bytes([RDP_CR[4] + 1]) + RDP_CR[5:],  # LI disagrees with the TPKT length
        x224(0xE0, bytes.fromhex("0100070003000000")),  # negotiation of length 7
    ],
)
def test_rdp_near_misses(payload: bytes) -> None:
    assert classify_flow("tcp", 3389, [pkt(0, payload)]).app != "rdp"


@pytest.mark.parametrize(
    ("port", "payload", "app"),
    [
        (40000, MODBUS_READ, "modbus"),
        (40000, bytes.fromhex("000100000003018302"), "modbus"),  # exception response
        (40000, bytes.fromhex("0001000100060103006b0003"), "unknown"),  # protocol id 1
        (40000, bytes.fromhex("0001000000070103006b0003"), "unknown"),  # length one too many
        (40000, bytes.fromhex("0001000000060163006b0003"), "unknown"),  # function 0x63
        (40000, bytes.fromhex("000100000003018302") + MODBUS_READ, "unknown"),  # two ADUs...
        (502, bytes.fromhex("000100000003018302") + MODBUS_READ, "modbus"),  # ...on its port
    ],
)
def test_modbus(port: int, payload: bytes, app: str) -> None:
    f = classify_flow("tcp", port, [pkt(0, payload)])
    assert f.app == app
    if app == "modbus":
        assert f.encrypted is False


# --- QUIC -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encrypted"),
    [
        ("nfs_tcp", False),
        ("mount_udp", False),
        ("portmap", False),
        ("postgresql", False),
        ("vnc", False),
        ("snmp", False),
        ("syslog", False),
    ],
)
def test_more_protocols_cleartext(name: str, encrypted: bool) -> None:
    assert classify(name).encrypted is encrypted


def test_rpcsec_gss_privacy_and_postgresql_ssl() -> None:
    gss = rpc_call(7, 100003, 4, 1, flavor=6)
    sealed = gss[:44] + struct.pack(">I", 3) + gss[48:]  # service: privacy
    assert classify_flow("udp", 2049, [pkt(0, sealed)]).encrypted is True
    assert classify_flow("udp", 2049, [pkt(0, gss)]).encrypted is False
    f = classify_flow("tcp", 5432, [pkt(0, PG_SSL_REQUEST), pkt(1, b"S"), *tls13_flow()])
    assert (f.app, f.encrypted, f.tls_version) == ("postgresql", True, "TLS 1.3")


@pytest.mark.parametrize(
    ("proto", "payload"),
    [
        ("udp", rpc_call(7, 100004, 2, 0)),  # NIS: a program not named
        (
            "udp",
            rpc_call(7, 100003, 3, 0)[:8] + struct.pack(">I", 3) + rpc_call(7, 100003, 3, 0)[12:],
        ),
        ("udp", rpc_call(7, 100003, 9, 0)),  # version 9
        ("udp", rpc_call(7, 100003, 3, 0, flavor=77)),  # no such credential flavor
        ("tcp", struct.pack(">I", 0x80000010) + rpc_call(7, 100003, 3, 0)),  # record too short
        ("tcp", struct.pack(">II", 8, 80877199)),  # not the SSLRequest code
        ("tcp", struct.pack(">II", 40, 196608) + b"xyzzy\x00" + bytes(26)),  # unknown parameter
        ("tcp", b"R" + struct.pack(">II", 12, 99) + b"salt"),  # no such authentication request
        ("tcp", b"RFB 3.8\n"),
        ("tcp", b"RFB 003.008\nmore"),
        ("udp", bytes.fromhex("302602010204067075626c6963a019020409584e45")),  # SNMP version 2?
        ("udp", bytes.fromhex("30260201010406707562") + bytes(20)),  # community, then no PDU
        ("udp", b"<192>too high a priority value"),
        ("udp", b"<034>leading zero in the priority"),
        ("udp", b"<34>\x00\x01\x02\x03"),
    ],
)
def test_more_protocols_near_misses(proto: str, payload: bytes) -> None:
    assert classify_flow(proto, 40000, [pkt(0, payload)]).app == "unknown"


def test_dtls_hellos() -> None:
    f = classify("dtls")
    assert (f.app, f.encrypted, f.sni, f.tls_record_version) == (
        "dtls",
        True,
        "vpn.example.com",
        "DTLS 1.2",
    )
    assert (f.tls_client_versions, f.tls_version, f.tls_cipher_suite) == (
        ("DTLS 1.3", "DTLS 1.2"),
        "DTLS 1.3",
        0x1301,
    )


@pytest.mark.parametrize(
    "payload",
    [
        dtls_record(22, DTLS_HELLO, version=0xFEFE),  # no such DTLS version
        dtls_record(22, DTLS_HELLO)[:11] + u16(len(DTLS_HELLO) + 1) + DTLS_HELLO,  # too long
        dtls_record(30, DTLS_HELLO),  # content type 30
        record(22, client_hello()),  # TLS over UDP is not DTLS
    ],
)
def test_dtls_near_misses(payload: bytes) -> None:
    assert classify_flow("udp", 4433, [udp_pkt(0, payload)]).app != "dtls"


def nb_name(name: str) -> bytes:
    """A NetBIOS name in RFC 1001's half-ASCII encoding, as one 32-byte label."""
    raw = name.upper().ljust(15).encode() + b"\x00"
    return b"\x20" + bytes(c for b in raw for c in (0x41 + (b >> 4), 0x41 + (b & 15))) + b"\x00"


NBNS_QUERY = (
    struct.pack(">HHHHHH", 0x2469, 0x0110, 1, 0, 0, 0) + nb_name("FILESRV") + u16(32) + u16(1)
)
NBDGM_BODY = nb_name("HOST1") + nb_name("WORKGROUP") + b"\xffSMB%" + bytes(20)
NBDGM = bytes([0x11, 0x02, 0xB0, 0xC4, 10, 0, 0, 5]) + u16(138) + u16(len(NBDGM_BODY)) + u16(0)
NBDGM += NBDGM_BODY


def test_netbios_name_and_datagram_services() -> None:
    f = classify_flow("udp", 137, [pkt(0, NBNS_QUERY)])
    assert (f.app, f.encrypted, f.dns_queries) == ("netbios-ns", False, ())
    f = classify_flow("udp", 138, [pkt(0, NBDGM)])
    assert (f.app, f.encrypted) == ("netbios-dgm", False)
    # a DNS query to port 137 is not NetBIOS, and is not read as DNS there either
    assert classify_flow("udp", 137, [pkt(0, dns_query("www.example.com"))]).app == "unknown"
    assert classify_flow("udp", 138, [pkt(0, NBDGM[:8] + u16(139) + NBDGM[10:])]).app == "unknown"
    assert classify_flow("udp", 138, [pkt(0, NBDGM + b"x")]).app == "unknown"  # length


def test_quic_initial_keys_are_the_rfcs() -> None:
    assert quic.client_keys(1, QUIC_DCID) == QUIC_KEYS[1]
    assert quic.client_keys(0x6B3343CF, QUIC_DCID) == QUIC_KEYS[0x6B3343CF]


def test_quic_sni() -> None:
    f = classify("quic")
    assert (f.app, f.quic_version, f.sni, f.alpn, f.tls_client_versions, f.encrypted) == (
        "quic",
        "1",
        "www.example.org",
        ("h3",),
        ("TLS 1.3",),
        True,
    )


def test_quic_server_initial_gives_the_negotiated_version() -> None:
    assert quic.initial_keys(1, QUIC_DCID, b"server in") == QUIC_SERVER_KEYS_V1
    hello = server_hello(0x0303, 0x1301, selected=0x0304)
    packets = [
        udp_pkt(0, quic_initial(quic_crypto(0, QUIC_HELLO), scid=b"\x01\x02\x03\x04")),
        # the server's Initial: to the client's SCID, keyed by the client's first DCID
        udp_pkt(
            1,
            quic_initial(
                b"\x02\x00\x00\x00\x00" + quic_crypto(0, hello),
                size=300,
                keys=QUIC_SERVER_KEYS_V1,
                dcid=b"\x01\x02\x03\x04",
                scid=b"\xaa" * 8,
            ),
        ),
    ]
    f = classify_flow("udp", 443, packets)
    assert (f.sni, f.tls_version, f.tls_cipher_suite) == ("www.example.org", "TLS 1.3", 0x1301)
    # without the client's Initial the server's cannot be opened
    f = classify_flow("udp", 443, packets[1:])
    assert (f.app, f.quic_version, f.tls_version) == ("quic", "1", None)


def test_quic_v2_and_hello_split_over_two_packets_out_of_order() -> None:
    half = len(QUIC_HELLO) // 2
    packets = [
        udp_pkt(0, quic_initial(quic_crypto(half, QUIC_HELLO[half:]), 0x6B3343CF, pn=0)),
        udp_pkt(0, quic_initial(quic_crypto(0, QUIC_HELLO[:half]), 0x6B3343CF, pn=1)),
    ]
    f = classify_flow("udp", 40000, packets)
    assert (f.app, f.quic_version, f.sni) == ("quic", "2", "www.example.org")


def test_quic_initial_cut_by_the_snaplen() -> None:
    # only the first 300 bytes captured: decrypted as far as they go, tag unchecked
    datagram = quic_initial(quic_crypto(0, QUIC_HELLO))
    f = classify_flow("udp", 443, [(0, datagram[:300], len(datagram))])
    assert (f.app, f.sni) == ("quic", "www.example.org")


def test_quic_tampered_initial_keeps_version_only() -> None:
    datagram = bytearray(quic_initial(quic_crypto(0, QUIC_HELLO)))
    datagram[100] ^= 1  # the GCM tag no longer matches
    f = classify_flow("udp", 443, [udp_pkt(0, bytes(datagram))])
    assert (f.app, f.quic_version, f.sni) == ("quic", "1", None)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc3\x12\x34\x56\x78\x08" + bytes(1194),  # unknown version
        b"\xc3\x00\x00\x00\x01\x30" + bytes(1194),  # DCID of 48 bytes
        b"\x83\x00\x00\x00\x01\x08" + bytes(1194),  # fixed bit clear
        b"\x43\x00\x00\x00\x01\x08" + bytes(1194),  # short header
    ],
)
def test_quic_near_misses(payload: bytes) -> None:
    assert classify_flow("udp", 443, [udp_pkt(0, payload)]).app == "unknown"


# --- FlowFacts as columns --------------------------------------------------------------


def test_facts_fields_and_schema_agree() -> None:
    assert tuple(f.name for f in fields(FlowFacts)) == FLOW_FACTS_FIELDS
    assert tuple(FLOW_FACTS_SCHEMA.names) == FLOW_FACTS_FIELDS
    assert {app for app, *_rest in SAMPLES.values()} <= set(APPS)


def test_facts_table() -> None:
    facts = [classify(name) for name in sorted(SAMPLES)] + [classify_flow("tcp", 1, [])]
    table = facts_table(facts)
    assert table.schema == FLOW_FACTS_SCHEMA
    assert table.num_rows == len(facts)
    row = table.slice(sorted(SAMPLES).index("dns_udp"), 1).to_pylist()[0]
    assert {"name": "www.example.com", "address": "192.0.2.7"} in row["dns_answers"]
    assert table.column("app").to_pylist()[-1] == "none"
    assert table.column("encrypted").to_pylist().count(True) >= 5


# --- Robustness: truncation, lying lengths, garbage ------------------------------------


def _check(proto: str, port: int, packets: list[Packet]) -> None:
    f = classify_flow(proto, port, packets)
    assert f.app in APPS


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_prefix_never_raises(name: str) -> None:
    _app, proto, port, packets = SAMPLES[name]
    for i, (d, head, plen) in enumerate(packets):
        for cut in range(len(head) + 1):
            prefix = head[:cut]
            _check(
                proto, port, [*packets[:i], (d, prefix, plen), *packets[i + 1 :]]
            )  # cut by the head limit
            _check(proto, port, [*packets[:i], (d, prefix, cut)])  # short payload
            _check(proto, 40000, [(d, prefix, plen + 17)])  # length that lies


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    lambda r, b: bytes(x ^ (1 << r.randrange(8)) if r.random() < 0.05 else x for x in b),
    lambda r, b: (
        b[: r.randrange(len(b) + 1)] + bytes(r.randrange(256) for _ in range(r.randrange(40)))
    ),
    lambda r, b: bytes(0xFF if r.random() < 0.1 else x for x in b),
    lambda r, b: bytes(0x00 if r.random() < 0.1 else x for x in b),
]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_mutated_samples_never_raise(name: str) -> None:
    _app, proto, port, packets = SAMPLES[name]
    rng = random.Random(name)
    for _ in range(150):
        mutate = rng.choice(MUTATIONS)
        flow = [(d, mutate(rng, h), max(0, n + rng.randrange(-20, 20))) for d, h, n in packets]
        _check(proto, port, flow)


# First bytes that reach each parser, followed by random bytes.
PREFIXES = [
    b"",
    b"\x16\x03\x01",
    b"\x16\x03\x03\x00\x40\x01\x00\x00\x3c\x03\x03",
    b"\x16\x03\x03\x00\x40\x02\x00\x00\x3c\x03\x03",
    b"\x16\x03\x03\x00\x40\x0b\x00\x00\x3c",
    b"\x15\x03\x03\x00\x02",
    b"\x80\x2e\x01\x03\x01",
    b"SSH-2.0-",
    b"GET / HTTP/1.1\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"INFO {",
    b"0\x84\x00\x00\x01\x00\x02\x01\x01\x60",
    b"0\x82\x01\x00\x02\x01\x01\x77\x82",
    b"\x00\x00\x01\x00\xfeSMB\x40\x00",
    b"\x00\x00\x01\x00\xffSMB\x72",
    b"\x00\x00\x01\x00\xfdSMB",
    b"\x12\x34\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00",
    b"\x00\x40\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",
    b"\x23\x02\x06\xe9",
    b"\x01\x01\x06\x00",
    b"\x43\x87\x00\x00\x00\x00\x00\x30",
    b"\x4a\x00\x00\x00\x0a\x35\x2e",
    # the protocols of issue 8
    b"220 ",
    b"220-",
    b"USER a\r\nNICK ",
    b"AUTH TLS\r\n",
    b"* OK ",
    b"+OK ",
    b"*3\r\n$3\r\n",
    b":irc ",
    b"\xff\xfb\x18",
    b"\xff\xfa\x18",
    b"\x6a\x81\x80\x30\x81\x7d\xa1\x03\x02\x01\x05\xa2\x03\x02\x01\x0a",
    b"\x00\x00\x00\x90\x6c\x81\x8d\x30",
    b"\x05\x00\x0b\x03\x10\x00\x00\x00",
    b"\x04\x00\x20\x00\x10\x00\x00",
    b"\x03\x00\x00\x2a\x25\xe0\x00\x00\x00\x00\x00",
    b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x00\x08\x00",
    b"\x00\x01\x00\x00\x00\x06\x01\x03",
    b"\xc3\x00\x00\x00\x01\x08" + QUIC_DCID + b"\x00\x00",
    b"\xd3\x6b\x33\x43\xcf\x08" + QUIC_DCID + b"\x00\x00\x44\xd0",
    b"\xc3\x51\x30\x34\x36\x50",
    b"\xc0\x00\x00\x00\x00\x08",
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_random_bytes_never_raise(prefix: bytes, proto: str) -> None:
    rng = random.Random(prefix + proto.encode())
    for _ in range(200):
        n = rng.choice((0, 5, 30, 128, 600, 4096))
        packets = []
        for _ in range(rng.randrange(1, 8)):
            body = prefix + rng.randbytes(n)
            packets.append((rng.randrange(2), body, len(body) + rng.choice((0, 0, 1, 1000, 70000))))
        for port in (rng.randrange(65536), 53, 389, 445, 123, 67, 3260, 21, 3389, 502, 6379):
            _check(proto, port, packets)


# --- Through the capture layer: the C reader keeps what the classifier needs ------------


def test_capture_to_flows_new_protocols(tmp_path: Path) -> None:
    """A pcap with a QUIC Initial (head kept whole by the C reader), an FTP login on the
    HTTP log-download port, Telnet and Redis: the flow table names each."""
    from auditor import read_flows
    from auditor.synth import Capture

    cap = Capture()
    # PADDING frames first: the SNI lies far beyond the 128 bytes other datagrams keep
    initial = quic_initial(bytes(400) + quic_crypto(0, QUIC_HELLO))
    cap.udp("10.0.0.5", "192.0.2.10", 51000, 443, initial)
    cap.tcp_session("10.0.0.5", "10.0.0.10", 51001, 8888, [(d, h) for d, h, _n in FTP_LOGIN])
    cap.tcp_session("10.0.0.5", "10.0.0.10", 51002, 23, [(d, h) for d, h, _n in TELNET])
    cap.tcp_session("10.0.0.5", "10.0.0.11", 51003, 6380, [(d, h) for d, h, _n in REDIS])
    not_quic = b"\xc3\x12\x34\x56\x78" + bytes(1195)  # unknown version: 128 bytes kept
    cap.udp("10.0.0.5", "192.0.2.10", 51004, 4433, not_quic)
    dtls_hello = dtls_record(22, DTLS_HELLO)  # kept whole: its SNI lies past 128 bytes
    cap.udp("10.0.0.5", "192.0.2.11", 51005, 4433, dtls_hello)
    path = cap.write(tmp_path / "new.pcap")
    from auditor import read_packets

    heads = {
        len(h)
        for b in read_packets(path)
        for h, p in zip(b.column("payload").to_pylist(), b.column("proto").to_pylist(), strict=True)
        if p == 17
    }
    assert heads == {1200, 128, len(dtls_hello)}
    table = read_flows([path]).flows
    assert table is not None
    rows = {r["dst_port"]: r for r in table.to_pylist()}
    assert (rows[443]["app"], rows[443]["quic_version"], rows[443]["sni"]) == (
        "quic",
        "1",
        "www.example.org",
    )
    assert rows[8888]["app"] == "ftp"
    dtls_row = next(r for r in table.to_pylist() if r["src_port"] == 51005)
    assert dtls_row["sni"] == "vpn.example.com"
    assert rows[23]["app"] == "telnet"
    assert rows[6380]["app"] == "redis"


# --- FTP data connections ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "sender", "expected"),
    [
        (b"227 Entering Passive Mode (192,168,1,2,19,137).\r\n", "10.0.0.1", ("192.168.1.2", 5001)),
        (b"227 =192,168,1,2,19,137\r\n", "10.0.0.1", ("192.168.1.2", 5001)),  # no brackets
        (b"PORT 10,0,0,5,200,10\r\n", "10.0.0.5", ("10.0.0.5", 51210)),
        (b"port 10,0,0,5,200,10\r\n", "10.0.0.5", ("10.0.0.5", 51210)),
        (
            b"229 Entering Extended Passive Mode (|||6446|)\r\n",
            "2001:db8::1",
            ("2001:db8::1", 6446),
        ),
        (b"EPRT |2|2001:db8::5|5282|\r\n", "2001:db8::5", ("2001:db8::5", 5282)),
        (b"EPRT |1|132.235.1.2|6275|\r\n", "132.235.1.2", ("132.235.1.2", 6275)),
        (b"227 Entering Passive Mode (192,168,1,256,19,137).\r\n", "10.0.0.1", None),
        (b"229 Entering Extended Passive Mode (|||0|)\r\n", "10.0.0.1", None),
        (b"229 Entering Extended Passive Mode (|!|6446|)\r\n", "10.0.0.1", None),
        (b"EPRT |1|not-an-ip|6275|\r\n", "10.0.0.1", None),
        (b"PORT 10,0,0,5\r\n", "10.0.0.1", None),
        (b"226 Transfer complete (10,0,0,5,200,10)\r\n", "10.0.0.1", None),
    ],
)
def test_ftp_data_announcements(line: bytes, sender: str, expected: tuple[str, int] | None) -> None:
    from auditor.classify.ftp_data import parse

    assert parse(line, sender) == expected


def test_ftp_data_connections_marked(tmp_path: Path) -> None:
    """PASV after a long login (beyond the classifier's payload heads), EPSV, PORT: the data
    connections to the announced endpoints are ftp-data; one to another port, and one to an
    endpoint announced in a flow that is not FTP, are not."""
    from auditor import read_flows
    from auditor.synth import Capture

    client, server, other = "10.0.0.5", "10.0.0.10", "10.0.0.11"
    control = [
        *[(d, h) for d, h, _n in FTP_LOGIN],
        (1, b"215 UNIX Type: L8\r\n"),
        (0, b"PWD\r\n"),
        (1, b'257 "/" is the current directory\r\n'),
        (0, b"TYPE I\r\n"),
        (1, b"200 Switching to Binary mode.\r\n"),
        (0, b"PASV\r\n"),
        (1, b"227 Entering Passive Mode (10,0,0,10,78,33).\r\n"),  # 20001
        (0, b"RETR a.bin\r\n"),
        (0, b"EPSV\r\n"),
        (1, b"229 Entering Extended Passive Mode (|||20002|)\r\n"),
        (0, b"PORT 10,0,0,5,200,10\r\n"),  # 51210: the server connects back
        (0, b"PASV\r\n"),
        (1, b"227 Entering Passive Mode (192,168,7,10,78,37).\r\n"),  # behind NAT: 20005
    ]
    cap = Capture()
    cap.tcp_session(client, server, 40000, 21, control)
    binary = bytes(range(256)) * 4
    cap.tcp_session(client, server, 40001, 20001, [(1, binary)])
    cap.tcp_session(client, server, 40002, 20002, [(1, b"-rw-r--r-- 1 ftp ftp 1024 a.bin\r\n")])
    cap.tcp_session(server, client, 20, 51210, [(0, binary)])
    cap.tcp_session(client, server, 40003, 20003, [(1, binary)])  # not announced
    cap.tcp_session(client, server, 40006, 20005, [(1, binary)])  # to the server's public address
    # "227 ..." inside an HTTP response body's first segment is no announcement
    http = b"HTTP/1.1 200 OK\r\n\r\n"
    cap.tcp_session(
        client, other, 40004, 80, [(0, GET), (1, http), (1, b"227 (10,0,0,11,78,36)\r\n")]
    )
    cap.tcp_session(client, other, 40005, 20004, [(1, binary)])
    table = read_flows([cap.write(tmp_path / "ftp.pcap")]).flows
    assert table is not None
    apps = {r["dst_port"]: (r["app"], r["encrypted"]) for r in table.to_pylist()}
    assert apps[21] == ("ftp", False)
    assert apps[20001] == ("ftp-data", False)
    assert apps[20002] == ("ftp-data", False)
    assert apps[51210] == ("ftp-data", False)
    assert apps[20005] == ("ftp-data", False)
    assert apps[20003][0] == "unknown"
    assert apps[20004][0] == "unknown"


def test_flows_command_shows_the_new_apps(tmp_path: Path) -> None:
    """What a user sees: ``pcap-audit flows --format json`` on a capture with a Telnet
    session, an SMTP session upgraded by STARTTLS and a QUIC Initial."""
    import json

    from click.testing import CliRunner

    from auditor.cli.main import cli
    from auditor.synth import Capture

    cap = Capture()
    cap.tcp_session("10.0.0.5", "10.0.0.10", 51002, 2323, [(d, h) for d, h, _n in TELNET])
    smtp_tls = [*SMTP_STARTTLS, *tls12_flow(request=False, client_certs=None)]
    cap.tcp_session("10.0.0.5", "10.0.0.12", 51003, 587, [(d, h) for d, h, _n in smtp_tls])
    cap.udp("10.0.0.5", "192.0.2.10", 51000, 443, quic_initial(quic_crypto(0, QUIC_HELLO)))
    path = cap.write(tmp_path / "c.pcap")
    res = CliRunner().invoke(cli, ["flows", str(path), "--format", "json"])
    assert res.exit_code == 0, res.output
    flows = {f["dst_port"]: f for f in json.loads(res.stdout)["flows"]}
    assert (flows[2323]["app"], flows[2323]["encrypted"]) == ("telnet", False)
    assert (flows[587]["app"], flows[587]["starttls"], flows[587]["encrypted"]) == (
        "smtp",
        True,
        True,
    )
    assert (flows[443]["app"], flows[443]["quic_version"], flows[443]["sni"]) == (
        "quic",
        "1",
        "www.example.org",
    )
