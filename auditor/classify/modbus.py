"""Modbus/TCP (Modbus Messaging on TCP/IP Implementation Guide v1.0b, section 3.1.3).

The MBAP header: transaction id, protocol id 0, a length counting the unit id and the PDU,
the unit id; then a function code (public codes 1-127, exceptions with 0x80 set). On port
502 several ADUs may share a segment; elsewhere the first ADU must fill its segment exactly
and use a public function code, which keeps other length-prefixed protocols out.
Modbus has no security of its own: ``encrypted`` is false.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet

PORT = 502
#: public function codes (Modbus Application Protocol v1.1b3, section 5.1)
FUNCTIONS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43})


def is_adu(head: bytes, plen: int, port_hint: bool) -> bool:
    if len(head) < 8 or head[2] or head[3]:
        return False
    length = head[4] << 8 | head[5]
    if not 2 <= length <= 254:
        return False
    fc = head[7]
    if fc & 0x80:
        valid = fc & 0x7F in FUNCTIONS and length == 3 and len(head) > 8 and 1 <= head[8] <= 11
    else:
        valid = fc in FUNCTIONS
    if not valid:
        return False
    return length + 6 <= plen if port_hint else length + 6 == plen


def modbus_facts(packets: Sequence[Packet]) -> Facts:
    return {"encrypted": False}
