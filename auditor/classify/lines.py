"""Lines of the text protocols (FTP, SMTP, POP3, IMAP, IRC): the first line of a head, tested
with compiled patterns, never decoded as a whole.

A head may be cut before its line ends (the capture keeps 128 or 1024 bytes): a line
without its CRLF counts only when the cut, not the payload, ended it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from auditor.classify.stream import Packet
from auditor.classify.tls import starts_tls

#: one line of printable text (tabs and 8-bit bytes allowed), its end kept in group "eol"
_LINE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*(?P<eol>\r?\n)?")


def first_line(head: bytes, plen: int) -> bytes | None:
    """The head's first line without its end, or None when it is not one line of text."""
    m = _LINE.match(head)
    if m is None:
        return None
    if m.group("eol") is None and not (m.end() == len(head) and len(head) < plen):
        return None
    return head[: m.end()].rstrip(b"\r\n")


def lines(packets: Sequence[Packet], direction: int | None = None) -> list[tuple[int, bytes]]:
    """(direction, line) of every complete text line at the start of each head."""
    out = []
    for d, head, plen in packets:
        if direction is not None and d != direction:
            continue
        for raw in head[: min(len(head), plen)].split(b"\n")[:-1]:
            out.append((d, raw.rstrip(b"\r")))
    return out


#: a numeric reply line (FTP, RFC 959 section 4.2; SMTP, RFC 5321 section 4.2): code, then
#: a space (last line) or a hyphen (more lines follow)
_REPLY = re.compile(rb"([1-5][0-5][0-9])([ -]|$)")


def reply_code(line: bytes) -> int | None:
    m = _REPLY.match(line)
    return int(m.group(1)) if m is not None else None


def command_word(line: bytes) -> bytes:
    """The line's first word, upper-cased (b"" when it is not 3-8 letters)."""
    word = line.split(b" ", 1)[0]
    if 3 <= len(word) <= 8 and word.isalpha():
        return word.upper()
    return b""


def upgrade(
    packets: Sequence[Packet],
    needle: bytes,
    is_command: Callable[[bytes], bool],
    answer: Callable[[bytes], bool | None],
) -> tuple[bool, bool | None]:
    """(upgrade command seen, its outcome) of a STARTTLS-like exchange in a text protocol.

    The outcome is True when the server accepted (or a TLS handshake follows the command),
    False when it refused, None when its answer is not visible. ``needle``: the command's
    word, upper-case; heads without it (in either case) are not split into lines.
    """
    lower = needle.lower()
    if not any(needle in head or lower in head for _d, head, _n in packets):
        return False, None
    cmd_dir: int | None = None
    outcome: bool | None = None
    for d, head, plen in packets:
        if cmd_dir is None:
            if any(is_command(line) for _d, line in lines([(d, head, plen)])):
                cmd_dir = d
            continue
        if starts_tls(head):
            return True, True
        if d != cmd_dir and outcome is None:
            for _d, line in lines([(d, head, plen)]):
                outcome = answer(line)
                if outcome is not None:
                    break
    return cmd_dir is not None, outcome
