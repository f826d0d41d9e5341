"""RDP's connection start (MS-RDPBCGR 2.2.1.1-2): TPKT (RFC 1006), then an X.224 Connection
Request or Confirm carrying RDP's negotiation.

TPKT + X.224 is also ISO-on-TCP (S7comm, MMS): what makes it RDP is the variable part of
the Connection Request, a ``Cookie: mstshash=`` or routing token and/or an RDP_NEG_REQ
(type 1, length 8), or of the Confirm, an RDP_NEG_RSP / RDP_NEG_FAILURE (type 2 / 3); ISO
parameters start with 0xC0-0xC2 instead. The security protocol the server selected goes in
``rdp_security``: ``rdp`` (standard RDP security, RC4), ``tls``, ``credssp``, ``rdstls``,
``credssp_ex``. After TLS or CredSSP the TLS handshake follows in the same flow.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet

PORTS = frozenset({3389})
TPKT_VERSION = 3
X224_CR, X224_CC = 0xE0, 0xD0
NEG_REQ, NEG_RSP, NEG_FAILURE = 1, 2, 3
#: selectedProtocol values (MS-RDPBCGR 2.2.1.2.1)
PROTOCOLS = {0: "rdp", 1: "tls", 2: "credssp", 4: "rdstls", 8: "credssp_ex"}


def _x224(head: bytes, plen: int) -> tuple[int, bytes] | None:
    """(TPDU code, variable part) of a TPKT-framed X.224 CR/CC, or None."""
    if len(head) < 11 or head[0] != TPKT_VERSION or head[1] != 0:
        return None
    length = head[2] << 8 | head[3]
    li = head[4]
    if length != plen or li != length - 5 or head[5] not in (X224_CR, X224_CC):
        return None
    if head[10] & 0xF0:  # class 0 (RDP uses it; ISO classes 1-4 set the high nibble)
        return None
    return head[5], head[11 : 5 + 1 + li]


def is_connection(head: bytes, plen: int, port_hint: bool) -> bool:
    """An X.224 CR/CC with RDP's negotiation; without one (old clients) only on RDP's port."""
    x = _x224(head, plen)
    if x is None:
        return False
    code, rest = x
    if code == X224_CR:
        if rest.startswith(b"Cookie: "):
            return True
        return (not rest and port_hint) or (
            len(rest) >= 8 and rest[0] == NEG_REQ and rest[2:4] == b"\x08\x00"
        )
    # a Confirm: empty (standard security) or a negotiation response / failure
    if not rest:
        return port_hint
    return len(rest) == 8 and rest[0] in (NEG_RSP, NEG_FAILURE) and rest[2:4] == b"\x08\x00"


def rdp_facts(packets: Sequence[Packet]) -> Facts:
    facts: Facts = {}
    for _d, head, plen in packets:
        x = _x224(head, plen)
        if x is None or x[0] != X224_CC:
            continue
        rest = x[1]
        if len(rest) == 8 and rest[0] == NEG_RSP:
            facts["rdp_security"] = PROTOCOLS.get(int.from_bytes(rest[4:8], "little"), "other")
        elif not rest:
            facts["rdp_security"] = "rdp"
        break
    # Standard RDP security encrypts with RC4 (weak, but not cleartext); the others are TLS
    facts["encrypted"] = True if "rdp_security" in facts else None
    return facts
