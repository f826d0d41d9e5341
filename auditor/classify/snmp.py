"""SNMP (v1 RFC 1157, v2c RFC 1901, v3 RFC 3412) messages in BER over UDP.

``SEQUENCE { version INTEGER, ... }``: v1 and v2c (versions 0 and 1) carry a community
string and then a PDU with a context tag 0xA0-0xA8; v3 (version 3) a header SEQUENCE whose
flags say whether the PDU is encrypted (privFlag). LDAP, also BER, has an application tag
where SNMP has the community. ``encrypted``: false for v1/v2c (the community travels in
clear), the privFlag for v3.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.ldap import tlv
from auditor.classify.stream import Packet

PORTS = frozenset({161, 162})
PRIV_FLAG = 0x02


def _version(head: bytes) -> tuple[int, int]:
    """(version, offset after it) of an SNMP message, version -1 when it is not one."""
    tag, start, _length = tlv(head, 0)
    if tag != 0x30:
        return -1, 0
    tag, vstart, vlen = tlv(head, start)
    if tag != 0x02 or vlen != 1 or vstart >= len(head) or head[vstart] not in (0, 1, 3):
        return -1, 0
    return head[vstart], vstart + 1


def is_message(head: bytes) -> bool:
    version, pos = _version(head)
    if version < 0:
        return False
    if version == 3:
        tag, start, _length = tlv(head, pos)  # msgGlobalData
        return tag == 0x30 and tlv(head, start)[0] == 0x02
    tag, start, length = tlv(head, pos)  # community
    if tag != 0x04 or length > 64 or start + length >= len(head):
        return False
    return 0xA0 <= head[start + length] <= 0xA8


def snmp_facts(packets: Sequence[Packet]) -> Facts:
    for _d, head, _n in packets:
        version, pos = _version(head)
        if version in (0, 1):
            return {"encrypted": False}
        if version == 3:
            _tag, start, _length = tlv(head, pos)  # msgGlobalData: id, max size, flags
            _t, s1, l1 = tlv(head, start)
            _t, s2, l2 = tlv(head, s1 + l1)
            tag, s3, l3 = tlv(head, s2 + l2)
            if tag == 0x04 and l3 == 1 and s3 < len(head):
                return {"encrypted": head[s3] & PRIV_FLAG != 0}
            return {"encrypted": None}
    return {"encrypted": None}
