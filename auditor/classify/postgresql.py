"""PostgreSQL frontend/backend protocol (version 3, "Message Formats" of the PostgreSQL docs).

A connection starts with an untyped message from the client: a StartupMessage (length,
protocol 3.0 = 196608, then ``user`` and other parameters) or an SSLRequest / GSSENCRequest
(length 8, a magic code). The server answers an SSLRequest with one byte, ``S`` (TLS
follows) or ``N``; its first typed message is an Authentication request (``R``, length,
code). ``encrypted``: true when TLS (or GSSAPI encryption) follows, false when the startup
parameters go in clear.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet
from auditor.classify.tls import starts_tls

PORTS = frozenset({5432})
PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
_AUTH_CODES = frozenset({0, 2, 3, 5, 7, 8, 9, 10, 11, 12})


def _u32(buf: bytes, pos: int) -> int:
    return int.from_bytes(buf[pos : pos + 4], "big")


def is_startup(head: bytes, plen: int) -> bool:
    if len(head) < 8:
        return False
    length, code = _u32(head, 0), _u32(head, 4)
    if code in (SSL_REQUEST, GSSENC_REQUEST):
        return length == 8 and plen == 8
    if code == CANCEL_REQUEST:
        return length == 16 and plen == 16
    # StartupMessage: NUL-terminated key/value pairs, the first one a known parameter
    return code == PROTOCOL_3 and 8 < length <= 10000 and head[8:13] in (b"user\0", b"datab")


def is_auth_request(head: bytes, plen: int) -> bool:
    """The server's first message: ``R``, a length of at least 8, a known request code."""
    if len(head) < 9 or head[0] != 0x52:
        return False
    length = _u32(head, 1)
    return 8 <= length <= 2048 and length + 1 <= plen and _u32(head, 5) in _AUTH_CODES


def postgresql_facts(packets: Sequence[Packet]) -> Facts:
    asked = False
    for _d, head, plen in packets:
        if len(head) >= 8 and _u32(head, 4) in (SSL_REQUEST, GSSENC_REQUEST) and plen == 8:
            asked = True
        elif (asked and plen == 1 and head[:1] in (b"S", b"G")) or starts_tls(head):
            return {"encrypted": True}
        elif len(head) >= 8 and _u32(head, 4) == PROTOCOL_3:
            return {"encrypted": False}  # the startup parameters in clear
    return {"encrypted": None}
