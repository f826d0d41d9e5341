"""POP3 (RFC 1939) and its STLS (RFC 2595).

The server greets with ``+OK`` and text; Redis answers ``+OK`` with nothing after it, so a
bare ``+OK`` or a ``-ERR`` alone is not evidence. From the client, the commands only POP3 has
(``CAPA``, ``STLS``, ``APOP``, ``UIDL``, ``TOP``). ``STLS`` answered by ``+OK`` makes the rest
of the connection TLS.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.lines import command_word, upgrade
from auditor.classify.stream import Packet

PORTS = frozenset({110, 995})
COMMANDS = frozenset({b"CAPA", b"STLS", b"APOP", b"UIDL", b"TOP"})


def is_greeting(line: bytes) -> bool:
    """``+OK`` followed by text (a greeting or an answer), not Redis's bare ``+OK``."""
    return line.startswith(b"+OK ") and len(line) > 4


def is_command(line: bytes) -> bool:
    word = command_word(line)
    if word == b"TOP":  # TOP msg n
        parts = line.split(b" ")
        return len(parts) == 3 and all(p.isdigit() for p in parts[1:])
    return word in COMMANDS and (len(line) == len(word) or line[len(word)] == 0x20)


def _stls(line: bytes) -> bool:
    return line.upper() == b"STLS"


def _answer(line: bytes) -> bool | None:
    if line.startswith(b"+OK"):
        return True
    if line.startswith(b"-ERR"):
        return False
    return None


def pop3_facts(packets: Sequence[Packet]) -> Facts:
    seen, ok = upgrade(packets, b"STLS", _stls, _answer)
    facts: Facts = {"encrypted": False}
    if seen:
        facts["starttls"] = True
        facts["encrypted"] = ok is not False
    return facts
