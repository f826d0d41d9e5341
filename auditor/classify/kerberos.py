"""Kerberos V5 (RFC 4120): KDC requests and replies, over UDP and over TCP (section 7.2.2).

A KDC message is an ASN.1 ``[APPLICATION n]`` (10 AS-REQ, 11 AS-REP, 12 TGS-REQ, 13 TGS-REP,
30 KRB-ERROR) around a SEQUENCE whose first two fields are ``pvno [n] INTEGER 5`` and
``msg-type [n+1] INTEGER`` equal to the application number: eleven fixed bytes, specific
on any port. Over TCP a 4-byte length comes first. The secrets (tickets, authenticators,
the reply's session key) are encrypted by the protocol itself, so ``encrypted`` is true.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.ldap import tlv
from auditor.classify.stream import Packet

PORTS = frozenset({88, 464})
AS_REQ, AS_REP, TGS_REQ, TGS_REP, KRB_ERROR = 10, 11, 12, 13, 30
#: application tag -> the context tag of pvno (requests start at [1], replies and errors at [0])
_FIRST_FIELD = {0x6A: 0xA1, 0x6B: 0xA0, 0x6C: 0xA1, 0x6D: 0xA0, 0x7E: 0xA0}
TAGS = frozenset(_FIRST_FIELD)


def _integer(buf: bytes, pos: int, context: int) -> tuple[int, int]:
    """(value, end) of ``[context] INTEGER`` at pos; value -1 when it is not one."""
    tag, start, length = tlv(buf, pos)
    if tag != context or length < 3:
        return -1, 0
    itag, istart, ilen = tlv(buf, start)
    if itag != 0x02 or not 1 <= ilen <= 2 or istart + ilen > len(buf):
        return -1, 0
    return int.from_bytes(buf[istart : istart + ilen], "big"), start + length


def is_message(buf: bytes, pos: int = 0) -> bool:
    if pos >= len(buf):
        return False
    app = buf[pos]
    first = _FIRST_FIELD.get(app)
    if first is None:
        return False
    tag, start, _length = tlv(buf, pos)
    if tag != app:
        return False
    tag, start, _length = tlv(buf, start)
    if tag != 0x30:
        return False
    pvno, end = _integer(buf, start, first)
    if pvno != 5:
        return False
    msg_type, _end = _integer(buf, end, first + 1)
    return msg_type == app - 0x60


def is_tcp_message(head: bytes, plen: int) -> bool:
    """A 4-byte record mark (the high bit reserved, 0), then a KDC message."""
    if len(head) < 8 or head[0] & 0x80:
        return False
    length = int.from_bytes(head[:4], "big")
    return length + 4 >= plen and is_message(head, 4)


def kerberos_facts(packets: Sequence[Packet]) -> Facts:
    return {"encrypted": True}
