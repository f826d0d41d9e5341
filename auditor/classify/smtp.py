"""SMTP (RFC 5321) and its STARTTLS (RFC 3207).

SMTP shares FTP's numeric reply form: a ``220`` banner is SMTP when it says so (``SMTP``,
``ESMTP``), else the client's commands decide (``EHLO``/``HELO``, ``MAIL FROM:``, ``RCPT TO:``)
and the replies SMTP has and FTP has not (``354`` start mail input, ``250-`` EHLO keywords).
``STARTTLS`` answered by ``220`` makes the rest of the connection TLS.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.lines import command_word, lines, reply_code, upgrade
from auditor.classify.stream import Packet

PORTS = frozenset({25, 465, 587, 2525})
_GREETINGS = frozenset({b"EHLO", b"HELO", b"LHLO"})
#: EHLO keywords (RFC 5321 section 4.1.1.1 and the extensions' RFCs) in a ``250-`` line
_KEYWORDS = (b"PIPELINING", b"8BITMIME", b"STARTTLS", b"SIZE", b"ENHANCEDSTATUSCODES",
             b"SMTPUTF8", b"CHUNKING", b"DSN", b"AUTH ")  # fmt: skip
START_MAIL_INPUT = 354
READY = 220


def says_smtp(text: bytes) -> bool:
    return b"SMTP" in text.upper()


def is_command(line: bytes) -> bool:
    """A command only SMTP has."""
    word = command_word(line)
    if word in _GREETINGS:
        return len(line) > 5 and line[4:5] == b" "
    upper = line[:10].upper()
    return upper.startswith((b"MAIL FROM:", b"RCPT TO:"))


def score(packets: Sequence[Packet]) -> int:
    n = 0
    for _d, line in lines(packets):
        if is_command(line):
            n += 1
            continue
        code = reply_code(line)
        if code == START_MAIL_INPUT or (
            code == 250 and line[3:4] == b"-" and line[4:].upper().startswith(_KEYWORDS)
        ):
            n += 1
    return n


def _starttls(line: bytes) -> bool:
    return line.upper() == b"STARTTLS"


def _answer(line: bytes) -> bool | None:
    code = reply_code(line)
    if code is None:
        return None
    return code == READY


def smtp_facts(packets: Sequence[Packet]) -> Facts:
    seen, ok = upgrade(packets, b"STARTTLS", _starttls, _answer)
    facts: Facts = {"encrypted": False}
    if seen:
        facts["starttls"] = True
        facts["encrypted"] = ok is not False
    return facts
