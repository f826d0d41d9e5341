"""NetBIOS over TCP/IP (RFC 1001/1002): the name service (UDP 137) and the datagram service
(UDP 138). The session service (TCP 139) carries SMB and is read as SMB.

Name service packets have DNS's header, but their questions are NetBIOS names: 32 bytes of
"half-ASCII" (each nibble + 'A', RFC 1001 section 14.1), so the question is a 0x20-long label
of the letters A-P. Datagram service packets start with a message type (0x10-0x16), flags, an
id, the source address and port (138) and, for the data messages, a length that must match.
Both carry names and workgroups in clear.
"""

from __future__ import annotations

NS_PORT, DGM_PORT = 137, 138
_HALF_ASCII = frozenset(b"ABCDEFGHIJKLMNOP")
_DGM_DATA = frozenset({0x10, 0x11, 0x12})
_DGM_OTHER = frozenset({0x13, 0x14, 0x15, 0x16})


def _encoded_name(buf: bytes, pos: int) -> bool:
    return (
        len(buf) >= pos + 33
        and buf[pos] == 0x20
        and all(b in _HALF_ASCII for b in buf[pos + 1 : pos + 33])
    )


def is_name_service(head: bytes) -> bool:
    """A name query/registration/response: DNS-shaped header, one encoded NetBIOS name."""
    if len(head) < 12 + 33 or head[2] & 0x78 not in (0x00, 0x28, 0x30, 0x40):  # opcode
        return False
    qd, an = head[4] << 8 | head[5], head[6] << 8 | head[7]
    return qd + an == 1 and _encoded_name(head, 12)


def is_datagram(head: bytes, plen: int) -> bool:
    if len(head) < 14 or head[0] not in _DGM_DATA | _DGM_OTHER or head[1] & 0xF0:
        return False
    if head[8:10] != DGM_PORT.to_bytes(2, "big"):  # the source port field
        return False
    if head[0] in _DGM_DATA:
        return (head[10] << 8 | head[11]) + 14 == plen and _encoded_name(head, 14)
    return True
