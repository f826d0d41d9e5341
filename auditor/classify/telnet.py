"""Telnet (RFC 854): option negotiation, ``IAC`` (255) followed by WILL/WONT/DO/DONT and an
option, or a subnegotiation ``IAC SB ... IAC SE``.

Both ends of a Telnet session negotiate options at once (terminal type, window size, echo,
suppress go-ahead), so the first payload of either side is a run of 3-byte commands. A
payload counts as Telnet when it starts with a negotiation of a known option and every byte
up to the end of the first text parses as commands: a lone ``ff fb`` in binary data does not.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet

PORTS = frozenset({23, 992})
IAC = 0xFF
SE, SB = 0xF0, 0xFA
WILL, WONT, DO, DONT = 0xFB, 0xFC, 0xFD, 0xFE
#: Options from the IANA registry (0-49, 138-140 and EXOPL 255).
_OPTIONS = frozenset({*range(50), 138, 139, 140, 255})
_NEGOTIATION = frozenset({WILL, WONT, DO, DONT})
#: IAC commands without an option: NOP, data mark, break, IP, AO, AYT, EC, EL, GA
_SIMPLE = frozenset(range(0xF1, 0xFA))
#: control characters in terminal text: NUL, BEL, BS, TAB, LF, CR, ESC
_TEXT_CONTROLS = frozenset({0, 7, 8, 9, 10, 13, 27})


def is_negotiation(head: bytes, plen: int) -> bool:
    if len(head) < 3 or head[0] != IAC or head[1] not in _NEGOTIATION or head[2] not in _OPTIONS:
        return False
    n = min(len(head), plen)
    i = 0
    commands = 0
    while i < n:
        if head[i] != IAC:
            # text after the negotiation (a banner, a login prompt), not binary data
            return commands >= 1 and all(b >= 0x20 or b in _TEXT_CONTROLS for b in head[i:n])
        if i + 1 >= n:
            return len(head) < plen
        cmd = head[i + 1]
        if cmd in _NEGOTIATION:
            if i + 2 >= n:
                return len(head) < plen  # cut by the head limit
            if head[i + 2] not in _OPTIONS:
                return False
            i += 3
        elif cmd == SB:
            end = head.find(bytes([IAC, SE]), i + 2, n)
            if end < 0:
                return len(head) < plen
            i = end + 2
        elif cmd in _SIMPLE:
            i += 2
        else:
            return False
        commands += 1
    return commands >= 1


def telnet_facts(packets: Sequence[Packet]) -> Facts:
    return {"encrypted": False}
