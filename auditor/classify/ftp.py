"""FTP control connections (RFC 959, security extensions RFC 2228 / RFC 4217, IPv6 RFC 2428).

The server speaks first with a numeric reply, as SMTP does: a ``220`` banner alone names
FTP only when it says so (``FTP`` in the text); otherwise the client's commands decide
(:data:`COMMANDS` are FTP's own, not SMTP's or POP3's), then the replies FTP has and SMTP
has not (``331`` password required, ``227`` entering passive mode, ...). ``AUTH TLS`` /
``AUTH SSL`` answered by ``234`` makes the control connection encrypted (FTPS, explicit).
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.lines import command_word, lines, reply_code, upgrade
from auditor.classify.stream import Packet

PORTS = frozenset({21, 2121})

#: Commands only FTP has (RFC 959, 2228, 2389, 2428, 3659, 4217); USER/PASS/LIST/RETR/QUIT
#: are shared with POP3 and are not evidence alone.
COMMANDS = frozenset(
    b"ACCT CWD CDUP SMNT REIN PORT PASV EPRT EPSV TYPE STRU MODE STOR STOU APPE ALLO "
    b"REST RNFR RNTO ABOR RMD MKD PWD XPWD XCWD XMKD NLST SITE SYST FEAT OPTS PBSZ PROT "
    b"CCC MLSD MLST SIZE MDTM CLNT".split()
)
#: Replies FTP has and SMTP has not: data connection and transfer (125, 150, 225-229),
#: user logged in (230), PATHNAME created (257), user name okay / need account (331, 332),
#: file status (211-215), pending further information (350).
REPLIES = frozenset(
    {125, 150, 211, 212, 213, 215, 225, 226, 227, 228, 229, 230, 257, 331, 332, 350}
)
AUTH_OK = 234


def says_ftp(text: bytes) -> bool:
    return b"FTP" in text.upper()


def is_command(line: bytes) -> bool:
    """A command only FTP has, or ``AUTH TLS``/``AUTH SSL``."""
    word = command_word(line)
    if word in (b"MODE", b"TYPE", b"STRU"):  # one-letter arguments (IRC has a MODE too)
        arg = line[5:].upper()
        return len(line) > 5 and line[4:5] == b" " and arg[:1] in b"ABCEFILPRSZ" and len(arg) <= 3
    if word in COMMANDS:
        return True
    return word == b"AUTH" and line[5:8].upper() in (b"TLS", b"SSL")


def _auth_tls(line: bytes) -> bool:
    return command_word(line) == b"AUTH" and line[5:8].upper() in (b"TLS", b"SSL")


def _auth_answer(line: bytes) -> bool | None:
    code = reply_code(line)
    if code is None:
        return None
    return code == AUTH_OK


def score(packets: Sequence[Packet]) -> int:
    """Evidence for FTP in a flow of numeric replies: commands and replies only FTP has."""
    n = 0
    for _d, line in lines(packets):
        if is_command(line):
            n += 1
        else:
            code = reply_code(line)
            if code in REPLIES and line[3:4] == b" ":
                n += 1
    return n


def ftp_facts(packets: Sequence[Packet]) -> Facts:
    seen, ok = upgrade(packets, b"AUTH", _auth_tls, _auth_answer)
    facts: Facts = {"encrypted": False}
    if seen:
        facts["starttls"] = True
        facts["encrypted"] = ok is not False
    return facts
