"""LDAP (RFC 4511) messages in BER, StartTLS (RFC 4511 section 4.14) and SASL-wrapped traffic.

An LDAPMessage is ``SEQUENCE { messageID INTEGER, protocolOp [APPLICATION n] ... }``. Off
the LDAP ports only a BindRequest, SearchRequest or ExtendedRequest with the expected
first field counts, which keeps SNMP, Kerberos and other BER traffic out.

After a SASL bind with a security layer the messages are wrapped: a 4-byte length, then a
GSS-API token (RFC 4752). A Kerberos CFX wrap token (RFC 4121 section 4.2.6.2) says in its
flags whether it is sealed; an NTLM-signed message (MS-NLMP 3.4.4) carries the LDAP message
in clear after its 16-byte signature, a sealed one does not.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet
from auditor.classify.tls import starts_tls

PORTS = frozenset({389, 636, 3268, 3269})
STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"

BIND_REQUEST = 0x60
SEARCH_REQUEST = 0x63
EXTENDED_REQUEST = 0x77
EXTENDED_RESPONSE = 0x78
_REQUESTS = frozenset({0x60, 0x42, 0x63, 0x66, 0x68, 0x4A, 0x6C, 0x6E, 0x50, 0x77})
_RESPONSES = frozenset({0x61, 0x64, 0x65, 0x73, 0x67, 0x69, 0x6B, 0x6D, 0x6F, 0x78, 0x79})
_OPS = _REQUESTS | _RESPONSES


def tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, value offset, value length) of the BER element at ``pos``; tag -1 when unreadable.

    The length may run past the end of ``buf`` (a cut-off head); callers slice.
    """
    n = len(buf)
    if pos + 2 > n:
        return -1, 0, 0
    tag = buf[pos]
    first = buf[pos + 1]
    if first < 0x80:
        return tag, pos + 2, first
    k = first & 0x7F
    if k == 0 or k > 4 or pos + 2 + k > n:
        return -1, 0, 0
    return tag, pos + 2 + k, int.from_bytes(buf[pos + 2 : pos + 2 + k], "big")


def _message(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """(message id, op tag, op value offset, end of message) or op -1."""
    tag, start, length = tlv(buf, pos)
    if tag != 0x30:
        return 0, -1, 0, 0
    itag, istart, ilen = tlv(buf, start)
    if itag != 0x02 or not 1 <= ilen <= 4 or istart + ilen > len(buf):
        return 0, -1, 0, 0
    msgid = int.from_bytes(buf[istart : istart + ilen], "big")
    op, ostart, _olen = tlv(buf, istart + ilen)
    if op not in _OPS:
        return 0, -1, 0, 0
    return msgid, op, ostart, start + length


def is_message(head: bytes, plen: int, port_hint: bool) -> bool:
    _msgid, op, ostart, end = _message(head, 0)
    if op < 0:
        return False
    if port_hint:
        return True
    if end > plen:
        return False  # off the LDAP ports, ask for a request that fits its segment
    first, _s, _l = tlv(head, ostart)
    if op == BIND_REQUEST:
        return first == 0x02  # version
    if op == SEARCH_REQUEST:
        return first == 0x04  # baseObject
    if op == EXTENDED_REQUEST:
        return first == 0x80  # requestName
    return False


def _bind_kind(buf: bytes, pos: int) -> str | None:
    tag, start, length = tlv(buf, pos)  # version
    if tag != 0x02:
        return None
    tag, start, length = tlv(buf, start + length)  # name
    if tag != 0x04:
        return None
    tag, start, length = tlv(buf, start + length)  # authentication CHOICE
    if tag == 0x80:
        return "simple"
    if tag == 0xA3:
        mtag, mstart, mlen = tlv(buf, start)
        if mtag == 0x04 and mstart + mlen <= len(buf):
            return "sasl:" + buf[mstart : mstart + mlen].decode("ascii", "replace")
        return "sasl"
    return None


def _wrapped_sealed(head: bytes) -> bool | None:
    """Whether a SASL-wrapped LDAP buffer is encrypted; None when it cannot be told."""
    tok = head[4:]
    if tok[:2] == b"\x05\x04" and len(tok) >= 3:
        return tok[2] & 0x02 != 0  # CFX wrap token, flag Sealed
    if tok[:4] == b"\x01\x00\x00\x00" and len(tok) > 16:
        return _message(tok, 16)[1] < 0  # NTLM signature, then the message if not sealed
    return None


def ldap_facts(packets: Sequence[Packet]) -> Facts:
    facts: Facts = {}
    starttls_id: int | None = None
    starttls_ok: bool | None = None
    sasl = False
    wrapped: bool | None = None
    clear_after_bind = False
    tls_after = False
    for _d, head, plen in packets:
        if starttls_id is not None and starts_tls(head):
            tls_after = True
            break
        pos = 0
        parsed = False
        for _ in range(16):  # messages in this head
            msgid, op, ostart, end = _message(head, pos)
            if op < 0:
                break
            parsed = True
            if "ldap_bind" in facts and op not in (BIND_REQUEST, 0x61):
                clear_after_bind = True
            if op == BIND_REQUEST and "ldap_bind" not in facts:
                kind = _bind_kind(head, ostart)
                if kind is not None:
                    facts["ldap_bind"] = kind
                    sasl = kind.startswith("sasl")
            elif op == EXTENDED_REQUEST:
                tag, start, length = tlv(head, ostart)
                if tag == 0x80 and head[start : start + length] == STARTTLS_OID:
                    starttls_id = msgid
            elif op == EXTENDED_RESPONSE and msgid == starttls_id:
                tag, start, length = tlv(head, ostart)
                if tag == 0x0A and length == 1 and start < len(head):
                    starttls_ok = head[start] == 0
            if end >= len(head):
                break
            pos = end
        if not parsed and sasl and plen > 4 and int.from_bytes(head[:4], "big") + 4 <= plen:
            sealed = _wrapped_sealed(head)
            if sealed is not None and wrapped is not True:
                wrapped = sealed
    if starttls_id is not None:
        facts["ldap_starttls"] = True
        facts["encrypted"] = tls_after or starttls_ok is not False
    elif wrapped is not None:
        facts["encrypted"] = wrapped
    else:
        facts["encrypted"] = None if sasl and not clear_after_bind else False
    return facts
