"""Syslog over UDP (RFC 5424, BSD syslog RFC 3164): ``<PRI>`` (facility * 8 + severity,
at most 191) and then text, a version digit (5424) or a timestamp or host name (3164).
Always cleartext.
"""

from __future__ import annotations

import re

PORTS = frozenset({514})
#: PRI without leading zeros, then at least 8 printable characters (or all there is)
_PRI = re.compile(rb"<(0|[1-9]\d{0,2})>[\t\x20-\x7e]{1,8}")


def is_message(head: bytes, plen: int) -> bool:
    m = _PRI.match(head)
    if m is None or int(m.group(1)) > 191:
        return False
    return m.end() - len(m.group(1)) - 2 >= 8 or m.end() == min(len(head), plen)
