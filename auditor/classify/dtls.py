"""DTLS (RFC 6347, DTLS 1.3 RFC 9147) over UDP: records, the ClientHello and ServerHello.

A DTLS record header is 13 bytes: content type, version (``fe ff`` 1.0, ``fe fd`` 1.2 and
1.3's plaintext records), epoch, 48-bit sequence number, length. Handshake messages add a
message sequence number and a fragment offset and length to TLS's header, and the
ClientHello a cookie after the session id; with those taken out the TLS reader
(:mod:`auditor.classify.tls`) reads the hellos. A ClientHello sent again (after a
HelloVerifyRequest, or retransmitted) says the same: the first one whole in a head counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet
from auditor.classify.tls import (
    CLIENT_HELLO,
    HANDSHAKE,
    SERVER_HELLO,
    client_hello_facts,
    server_hello_facts,
)

VERSIONS = {0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3"}
RECORD_HEADER = 13
HANDSHAKE_HEADER = 12


def is_record(head: bytes, plen: int) -> bool:
    if len(head) < RECORD_HEADER or not 20 <= head[0] <= 25:
        return False
    if head[1] << 8 | head[2] not in VERSIONS:
        return False
    length = head[11] << 8 | head[12]
    return length > 0 and RECORD_HEADER + length <= plen


def _dtls_names(tls_names: tuple[str, ...]) -> tuple[str, ...]:
    """The TLS reader names versions it knows; DTLS's come out as hex: name them."""
    return tuple(VERSIONS.get(int(n, 16), n) if n.startswith("0x") else n for n in tls_names)


def _hello(head: bytes) -> tuple[int, bytes] | None:
    """(message type, body) of a whole, unfragmented handshake message in the first record."""
    if len(head) < RECORD_HEADER + HANDSHAKE_HEADER or head[0] != HANDSHAKE:
        return None
    msg = head[RECORD_HEADER:]
    length = int.from_bytes(msg[1:4], "big")
    offset, frag = int.from_bytes(msg[6:9], "big"), int.from_bytes(msg[9:12], "big")
    if offset != 0 or frag != length or HANDSHAKE_HEADER + length > len(msg):
        return None
    return msg[0], msg[HANDSHAKE_HEADER : HANDSHAKE_HEADER + length]


def _without_cookie(body: bytes) -> bytes:
    """A DTLS ClientHello body as TLS lays it out: the cookie after the session id removed."""
    i = 34
    if i >= len(body):
        return body
    i += 1 + body[i]  # session id
    if i >= len(body):
        return body
    return body[:i] + body[i + 1 + body[i] :]


def dtls_facts(packets: Sequence[Packet]) -> Facts:
    facts: Facts = {"encrypted": True}
    for _d, head, plen in packets:
        if not is_record(head, plen):
            continue
        facts.setdefault("tls_record_version", VERSIONS[head[1] << 8 | head[2]])
        hello = _hello(head)
        if hello is None:
            continue
        mtype, body = hello
        if mtype == CLIENT_HELLO and "sni" not in facts:
            found = client_hello_facts(_without_cookie(body))
            found["tls_client_versions"] = _dtls_names(found.get("tls_client_versions", ()))
            facts.update(found)
            facts.setdefault("sni", None)
        elif mtype == SERVER_HELLO and "tls_version" not in facts:
            found = server_hello_facts(body)
            version = found.get("tls_version")
            if isinstance(version, str) and version.startswith("0x"):
                found["tls_version"] = VERSIONS.get(int(version, 16), version)
            facts.update(found)
    return facts
