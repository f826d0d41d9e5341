"""VNC's Remote Framebuffer protocol (RFC 6143): both sides open with a 12-byte version
string ``RFB xxx.yyy\\n``. The classic security types (VNC authentication, none) leave the
session in clear; a TLS-based one (VeNCrypt, 19; TLS, 18) shows as a TLS handshake after
the security exchange.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet
from auditor.classify.tls import starts_tls

_VERSION = re.compile(rb"RFB \d{3}\.\d{3}\n")


def is_version(head: bytes, plen: int) -> bool:
    return plen == 12 and _VERSION.fullmatch(head) is not None


def vnc_facts(packets: Sequence[Packet]) -> Facts:
    return {"encrypted": any(starts_tls(head) for _d, head, _n in packets)}
