"""DCE/RPC (C706 chapter 12, MS-RPCE): connection-oriented PDUs over TCP, connectionless over UDP.

A connection-oriented PDU starts with version 5.0/5.1, a packet type, flags, a data
representation label whose unused bytes are zero, and a fragment length that covers at
least the 16-byte header and the authentication data: eight bytes that are specific enough
on any port (the endpoint mapper hands out dynamic ports, so most DCE/RPC is elsewhere). A connectionless PDU (version 4) has an 80-byte header whose
fragment length must equal the rest of the datagram.

``encrypted`` comes from the first authentication verifier: ``auth_level`` 6 (packet
privacy) seals the stubs; a lower level or no verifier leaves them in clear.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet

PORTS = frozenset({135, 593})
REQUEST, RESPONSE, FAULT = 0, 2, 3
BIND, BIND_ACK, BIND_NAK, ALTER_CONTEXT, ALTER_CONTEXT_RESP, AUTH3 = 11, 12, 13, 14, 15, 16
_CO_TYPES = frozenset({0, 2, 3, 11, 12, 13, 14, 15, 16, 17, 18, 19})
AUTH_LEVEL_PRIVACY = 6


def _u16(buf: bytes, pos: int, little: bool) -> int:
    return int.from_bytes(buf[pos : pos + 2], "little" if little else "big")


def is_co_pdu(head: bytes, plen: int, port_hint: bool) -> bool:
    if len(head) < 16 or head[0] != 5 or head[1] > 1 or head[2] not in _CO_TYPES:
        return False
    if head[4] not in (0x10, 0x00) or head[5] > 3 or head[6] or head[7]:
        return False
    little = head[4] == 0x10
    frag, auth = _u16(head, 8, little), _u16(head, 10, little)
    if frag < 16 + auth + (8 if auth else 0):
        return False
    # Off the mapper's port: the eight fixed header bytes, and a PDU that fits its segment
    # unless it is a request or response (those may be fragmented over segments).
    return port_hint or frag <= plen or head[2] in (REQUEST, RESPONSE)


def is_cl_pdu(head: bytes, plen: int) -> bool:
    if len(head) < 80 or head[0] != 4 or head[1] > 10 or head[4] not in (0x10, 0x00):
        return False
    little = head[4] & 0x10 != 0
    return head[5] <= 3 and head[6] == 0 and _u16(head, 74, little) == plen - 80


def dcerpc_facts(packets: Sequence[Packet]) -> Facts:
    for _d, head, plen in packets:
        if len(head) < 16 or head[0] != 5:
            continue
        little = head[4] == 0x10
        frag, auth = _u16(head, 8, little), _u16(head, 10, little)
        if not auth:
            return {"encrypted": False}
        level_at = frag - auth - 8 + 1  # sec_trailer: auth_type, auth_level, ...
        if frag <= plen and 16 <= level_at < len(head):
            return {"encrypted": head[level_at] >= AUTH_LEVEL_PRIVACY}
        return {"encrypted": None}
    return {"encrypted": None}
