"""TLS (and SSL 3.0, SSLv2-compatible hellos) from the heads of one flow.

The heads of one direction are laid out at their true stream offsets (the payload lengths
are known even where the bytes are not), so a record or handshake message that spans
packets is followed across them, and a message whose bytes fell outside the heads is
skipped by its length instead of derailing the parse. Records are walked into a second
sparse stream of handshake bytes (handshake messages may span records), and the handshake
messages are read from that. Anything that does not fit (a record header in a hole, an
impossible type or length) stops that direction: we return what was learned so far.

Certificate facts follow RFC 5246 section 7.4: a client sends Certificate only when asked,
so the client's second flight tells whether a CertificateRequest was sent even when the
server's flight is cut off. TLS 1.3 encrypts both, so they stay None there.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet, Sparse, direction_stream

# Record content types (RFC 8446 section 5.1; 24 = heartbeat, RFC 6520).
CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
HEARTBEAT = 24

MAX_RECORD = 16384 + 2048  # TLSCiphertext limit, RFC 5246 section 6.2.3

# Handshake types (RFC 5246 section 7.4, RFC 8446 section 4).
HELLO_REQUEST = 0
CLIENT_HELLO = 1
SERVER_HELLO = 2
NEW_SESSION_TICKET = 4
CERTIFICATE = 11
SERVER_KEY_EXCHANGE = 12
CERTIFICATE_REQUEST = 13
SERVER_HELLO_DONE = 14
CERTIFICATE_VERIFY = 15
CLIENT_KEY_EXCHANGE = 16
_HANDSHAKE_TYPES = frozenset({0, 1, 2, 3, 4, 5, 6, 8, 11, 12, 13, 14, 15, 16, 20, 21, 22, 23, 24})

# Extensions.
EXT_SERVER_NAME = 0  # RFC 6066
EXT_ALPN = 16  # RFC 7301
EXT_SUPPORTED_VERSIONS = 43  # RFC 8446 section 4.2.1

ALERT_NO_CERTIFICATE = 41  # SSL 3.0's answer to a CertificateRequest without a certificate

#: ServerHello.random of a HelloRetryRequest (RFC 8446 section 4.1.3).
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

_VERSION_NAMES = {
    0x0002: "SSL 2.0",
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}

#: Cipher suites that authenticate but do not encrypt (IANA TLS Cipher Suites registry;
#: RFC 9150 for the TLS 1.3 integrity-only suites).
NULL_CIPHER_SUITES = frozenset(
    {
        0x0000, 0x0001, 0x0002, 0x002C, 0x002D, 0x002E, 0x003B, 0x00B0, 0x00B1, 0x00B4,
        0x00B5, 0x00B8, 0x00B9, 0xC001, 0xC006, 0xC00B, 0xC010, 0xC015, 0xC039, 0xC03A,
        0xC03B, 0xC0B4, 0xC0B5,
    }
)  # fmt: skip


def version_name(v: int) -> str:
    """``0x0303`` -> ``"TLS 1.2"``; TLS 1.3 drafts count as TLS 1.3; others as hex."""
    name = _VERSION_NAMES.get(v)
    if name is not None:
        return name
    if v >> 8 == 0x7F:
        return "TLS 1.3"
    return f"0x{v:04x}"


def _is_grease(v: int) -> bool:
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)  # RFC 8701


def is_record(head: bytes) -> bool:
    """A TLS/SSL 3.0 record header: type 20..24, version 3.0..3.4, sane length."""
    return (
        len(head) >= 5
        and 20 <= head[0] <= 24
        and head[1] == 3
        and head[2] <= 4
        and 0 < (head[3] << 8 | head[4]) <= MAX_RECORD
    )


def is_sslv2_hello(head: bytes) -> bool:
    """An SSLv2-format CLIENT-HELLO (2-byte header with the high bit set), as old clients send."""
    return (
        len(head) >= 5
        and head[0] & 0x80 != 0
        and head[2] == 1
        and ((head[3] == 3 and head[4] <= 4) or (head[3] == 0 and head[4] == 2))
        and ((head[0] & 0x7F) << 8 | head[1]) >= 9
    )


def starts_tls(head: bytes) -> bool:
    """The first bytes of a client's TLS hello (used to spot an upgrade inside a flow)."""
    return (is_record(head) and head[0] == HANDSHAKE) or is_sslv2_hello(head)


class _Dir:
    """What the record layer of one direction showed."""

    __slots__ = ("alerts", "ccs", "first_version", "handshake", "sslv2_version")

    def __init__(self) -> None:
        self.handshake = Sparse()
        self.first_version: int | None = None
        self.sslv2_version: int | None = None
        self.ccs = False
        self.alerts: list[int] = []  # descriptions of cleartext alerts


def _walk_records(stream: Sparse) -> _Dir:
    out = _Dir()
    hs = out.handshake
    pos = 0
    first = stream.get(0, 5)
    if first is not None and is_sslv2_hello(first):
        out.sslv2_version = first[3] << 8 | first[4]
        body = stream.avail(2, (first[0] & 0x7F) << 8 | first[1])
        # Re-frame the SSLv2 CLIENT-HELLO as a ClientHello carrying only the version.
        hs.put(0, bytes((CLIENT_HELLO, 0, 0, 2)) + body[1:3])
        hs.size = 6
        pos = 2 + ((first[0] & 0x7F) << 8 | first[1])
    while pos + 5 <= stream.size:
        hdr = stream.get(pos, 5)
        if hdr is None or not is_record(hdr):
            break
        ctype = hdr[0]
        length = hdr[3] << 8 | hdr[4]
        if out.first_version is None:
            out.first_version = hdr[1] << 8 | hdr[2]
        if ctype == HANDSHAKE:
            if not out.ccs:  # after ChangeCipherSpec, Finished is encrypted
                base = hs.size
                for rel, data in stream.pieces(pos + 5, length):
                    hs.put(base + rel, data)
                hs.size = base + length
        elif ctype == CHANGE_CIPHER_SPEC:
            out.ccs = True
        elif ctype == ALERT and not out.ccs:
            alert = stream.get(pos + 5, 2)
            if alert is not None and length == 2:
                out.alerts.append(alert[1])
        pos += 5 + length
    return out


def _messages(hs: Sparse) -> list[tuple[int, bytes]]:
    """(type, visible prefix of the body) of each handshake message, in order."""
    out = []
    pos = 0
    while pos + 4 <= hs.size:
        h = hs.get(pos, 4)
        if h is None or h[0] not in _HANDSHAKE_TYPES:
            break
        length = h[1] << 16 | h[2] << 8 | h[3]
        out.append((h[0], hs.avail(pos + 4, length)))
        pos += 4 + length
    return out


def _extensions(body: bytes, i: int) -> list[tuple[int, bytes]]:
    """Complete extensions from ``body[i:]`` (the 2-byte total length first); stops at a cut."""
    out: list[tuple[int, bytes]] = []
    if i + 2 > len(body):
        return out
    end = min(len(body), i + 2 + (body[i] << 8 | body[i + 1]))
    i += 2
    while i + 4 <= end:
        etype = body[i] << 8 | body[i + 1]
        elen = body[i + 2] << 8 | body[i + 3]
        i += 4
        if i + elen > end:
            break
        out.append((etype, body[i : i + elen]))
        i += elen
    return out


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace")


def _sni(data: bytes) -> str | None:
    # ServerNameList: u16 length, then (u8 type, u16 length, name)*
    i = 2
    while i + 3 <= len(data):
        ntype = data[i]
        nlen = data[i + 1] << 8 | data[i + 2]
        name = data[i + 3 : i + 3 + nlen]
        if ntype == 0 and len(name) == nlen and nlen:
            return _text(name).rstrip(".").lower()
        i += 3 + nlen
    return None


def _alpn(data: bytes) -> list[str]:
    # ProtocolNameList: u16 length, then (u8 length, name)*
    out = []
    i = 2
    while i < len(data):
        n = data[i]
        name = data[i + 1 : i + 1 + n]
        if len(name) != n or not n:
            break
        out.append(_text(name))
        i += 1 + n
    return out


def _client_hello(body: bytes, facts: Facts) -> None:
    if len(body) < 2:
        return
    legacy = body[0] << 8 | body[1]
    offered: list[str] = []
    i = 34
    if i < len(body):
        i += 1 + body[i]  # session id
        if i + 2 <= len(body):
            i += 2 + (body[i] << 8 | body[i + 1])  # cipher suites
            if i < len(body):
                i += 1 + body[i]  # compression methods
                for etype, data in _extensions(body, i):
                    if etype == EXT_SERVER_NAME:
                        facts["sni"] = _sni(data)
                    elif etype == EXT_ALPN:
                        facts["alpn"] = tuple(_alpn(data))
                    elif etype == EXT_SUPPORTED_VERSIONS and data:
                        vs = data[1 : 1 + data[0]]
                        for j in range(0, len(vs) - 1, 2):
                            v = vs[j] << 8 | vs[j + 1]
                            if not _is_grease(v):
                                name = version_name(v)
                                if name not in offered:
                                    offered.append(name)
    facts["tls_client_versions"] = tuple(offered) if offered else (version_name(legacy),)


def client_hello_facts(body: bytes) -> Facts:
    """SNI, ALPN and offered versions of a ClientHello body (QUIC carries it outside records)."""
    facts: Facts = {}
    _client_hello(body, facts)
    return facts


def server_hello_facts(body: bytes) -> Facts:
    """Negotiated version, suite and ALPN of a ServerHello body (QUIC: outside records)."""
    facts: Facts = {}
    _server_hello(body, facts)
    return facts


def _server_hello(body: bytes, facts: Facts) -> int | None:
    """Record the negotiated version, suite and ALPN; return the version number."""
    if len(body) < 2:
        return None
    version = body[0] << 8 | body[1]
    i = 34
    if i < len(body):
        i += 1 + body[i]
        if i + 2 <= len(body):
            facts["tls_cipher_suite"] = body[i] << 8 | body[i + 1]
            for etype, data in _extensions(body, i + 3):
                if etype == EXT_SUPPORTED_VERSIONS and len(data) == 2:
                    version = data[0] << 8 | data[1]
                elif etype == EXT_ALPN:
                    names = _alpn(data)
                    if names:
                        facts["alpn_selected"] = names[0]
    facts["tls_version"] = version_name(version)
    return version


def tls_facts(packets: Sequence[Packet], client: int = 0) -> Facts:
    """Facts of the TLS conversation in ``packets``; ``client`` is the direction that said hello.

    Heads that do not start a TLS stream in a direction leave that direction's facts unset,
    so this is safe to call on any flow.
    """
    facts: Facts = {}
    cdir = _walk_records(direction_stream(packets, client))
    sdir = _walk_records(direction_stream(packets, 1 - client))

    first = cdir.first_version if cdir.first_version is not None else sdir.first_version
    if cdir.sslv2_version is not None:
        facts["tls_record_version"] = "SSL 2.0"
    elif first is not None:
        facts["tls_record_version"] = version_name(first)

    # Client: the first ClientHello, then the first message of its second flight.
    second: int | None = None
    client_cert: bool | None = None
    seen_hello = False
    for mtype, body in _messages(cdir.handshake):
        if mtype == CLIENT_HELLO:
            if not seen_hello:
                _client_hello(body, facts)
            seen_hello = True
        elif seen_hello:
            second = mtype
            if mtype == CERTIFICATE and len(body) >= 3:
                client_cert = (body[0] << 16 | body[1] << 8 | body[2]) > 0
            break

    # Server: ServerHello, then whether a CertificateRequest came before ServerHelloDone.
    version: int | None = None
    server_says: bool | None = None
    for mtype, body in _messages(sdir.handshake):
        if mtype == SERVER_HELLO:
            if body[2:34] == HRR_RANDOM:
                continue
            version = _server_hello(body, facts)
        elif mtype == CERTIFICATE_REQUEST:
            server_says = True
            break
        elif mtype == SERVER_HELLO_DONE:
            server_says = False
            break

    suite = facts.get("tls_cipher_suite")
    facts["encrypted"] = not (isinstance(suite, int) and suite in NULL_CIPHER_SUITES)

    tls13 = version is not None and (version == 0x0304 or version >> 8 == 0x7F)
    if tls13:
        return facts
    no_cert_alert = ALERT_NO_CERTIFICATE in cdir.alerts
    requested: bool | None
    if server_says is True or second == CERTIFICATE or no_cert_alert:
        requested = True
    elif server_says is False or second == CLIENT_KEY_EXCHANGE:
        requested = False
    else:
        requested = None  # not visible, or an abbreviated (resumed) handshake
    if requested is not None:
        facts["tls_cert_requested"] = requested
    if client_cert is not None:
        facts["tls_client_cert"] = client_cert
    elif requested is False or second == CLIENT_KEY_EXCHANGE or no_cert_alert:
        facts["tls_client_cert"] = False
    return facts
