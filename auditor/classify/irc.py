"""IRC (RFC 1459, RFC 2812, IRCv3 capability negotiation).

The client registers with ``NICK`` and a four-parameter ``USER`` (FTP's and POP3's ``USER``
take one), or opens with ``CAP LS``; the server's lines carry a prefix and a command or a
3-digit numeric (``:irc.example.net 001 nick :Welcome``), or a ``NOTICE`` before
registration (``NOTICE AUTH :*** Looking up your hostname``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet

PORTS = frozenset({194, 6665, 6666, 6667, 6668, 6669, 6697, 7000})
_NICK = rb"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,31}"
_CLIENT = re.compile(
    rb"NICK :?" + _NICK + rb"$"
    rb"|USER [^ ]{1,64} [^ ]{1,64} [^ ]{1,64} :.*$"
    rb"|CAP LS( \d+)?$",
    re.DOTALL,
)
_SERVER = re.compile(
    rb":[^ ]{1,255} ([0-9]{3}|[A-Z]{3,12}) [^ ]"
    rb"|NOTICE (AUTH|\*) :"
)


def is_client(line: bytes) -> bool:
    return _CLIENT.match(line) is not None


def registers(head: bytes) -> bool:
    """A head whose lines include an IRC ``NICK`` (some clients send a one-word ``USER``)."""
    return any(
        _CLIENT.match(line.rstrip(b"\r")) for line in head.split(b"\n")[:8] if line[:4] == b"NICK"
    )


def is_server(line: bytes) -> bool:
    return _SERVER.match(line) is not None


def irc_facts(packets: Sequence[Packet]) -> Facts:
    return {"encrypted": False}
