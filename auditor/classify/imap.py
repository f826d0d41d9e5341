"""IMAP (RFC 9051, RFC 3501) and its STARTTLS.

The server greets with an untagged ``* OK`` / ``* PREAUTH`` / ``* BYE``; the client's commands
carry a tag (``a001 LOGIN ...``). ``STARTTLS`` answered by the tagged ``OK`` makes the rest of
the connection TLS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.lines import upgrade
from auditor.classify.stream import Packet

PORTS = frozenset({143, 993})
_GREETING = re.compile(rb"\* (OK|PREAUTH|BYE)( |$)")
_COMMAND = re.compile(
    rb"[A-Za-z0-9.]{1,16} (CAPABILITY|LOGIN|AUTHENTICATE|STARTTLS|SELECT|EXAMINE|LSUB|"
    rb"NAMESPACE|LOGOUT|ID|ENABLE|IDLE|APPEND|UID FETCH|FETCH)( |$)",
    re.IGNORECASE,
)
_TAGGED = re.compile(rb"([A-Za-z0-9.]{1,16}) (OK|NO|BAD)( |$)")


def is_greeting(line: bytes) -> bool:
    return _GREETING.match(line) is not None


def is_command(line: bytes) -> bool:
    return _COMMAND.match(line) is not None


def _starttls(line: bytes) -> bool:
    parts = line.split(b" ")
    return len(parts) == 2 and parts[1].upper() == b"STARTTLS"


def _answer(line: bytes) -> bool | None:
    m = _TAGGED.match(line)
    if m is None or m.group(1) == b"*":
        return None
    return m.group(2) == b"OK"


def imap_facts(packets: Sequence[Packet]) -> Facts:
    seen, ok = upgrade(packets, b"STARTTLS", _starttls, _answer)
    facts: Facts = {"encrypted": False}
    if seen:
        facts["starttls"] = True
        facts["encrypted"] = ok is not False
    return facts
