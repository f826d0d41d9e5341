"""The small protocols: SSH, NTP, DHCP, iSCSI, NATS, MySQL - a detector and a facts reader each.

Each detector checks the fixed fields of its protocol's first message. Where those are few
(NTP, DHCP, iSCSI) the well-known port relaxes the check and its absence tightens it, so
that random binary payloads on other ports do not match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet
from auditor.classify.tls import starts_tls

# --- SSH (RFC 4253 section 4.2) -------------------------------------------------------


def is_ssh(head: bytes) -> bool:
    return head.startswith(b"SSH-") and head[4:5].isdigit()


def _banner(head: bytes) -> str:
    eol = head.find(b"\n")
    line = head[:eol] if eol >= 0 else head[:255]
    return line.rstrip(b"\r").decode("utf-8", "replace")


def ssh_facts(packets: Sequence[Packet]) -> Facts:
    """Identification strings. The side that speaks first is not always the server (RFC
    4253 lets either send first), so the server is the responder, direction 1."""
    client = server = None
    for d, head, _plen in packets:
        if is_ssh(head):
            if d == 1 and server is None:
                server = _banner(head)
            elif d == 0 and client is None:
                client = _banner(head)
    return {
        "encrypted": True,
        "ssh_banner": server if server is not None else client,
        "ssh_client_banner": client,
    }


# --- NTP (RFC 5905 section 7.3) --------------------------------------------------------

NTP_PORT = 123
NTP_MODE_CONTROL = 6  # RFC 9327
NTP_MODE_PRIVATE = 7  # ntpd's mode 7 (monlist)
#: Header, plus a key id and an MD5 / SHA-1 digest (RFC 5905 section 7.3).
_NTP_SIZES = frozenset({48, 52, 68, 72})


def is_ntp(head: bytes, plen: int, port_hint: bool) -> bool:
    if not head:
        return False
    version = head[0] >> 3 & 7
    mode = head[0] & 7
    if port_hint:
        if mode >= NTP_MODE_CONTROL:
            return 1 <= version <= 4 and plen >= 8
        return 1 <= version <= 4 and mode != 0 and plen >= 48 and len(head) >= 2 and head[1] <= 16
    return (
        3 <= version <= 4
        and 1 <= mode <= 5
        and plen in _NTP_SIZES
        and len(head) >= 48
        and head[1] <= 16  # stratum
        and (head[2] <= 17 or head[2] >= 0xF9)  # poll, log2 seconds
    )


def ntp_facts(packets: Sequence[Packet]) -> Facts:
    head = next((h for _d, h, _p in packets if h), b"")
    facts: Facts = {"encrypted": False}
    if head:
        facts["ntp_version"] = head[0] >> 3 & 7
        facts["ntp_mode"] = head[0] & 7
    return facts


# --- DHCP (RFC 2131, BOOTP RFC 951) ----------------------------------------------------

DHCP_PORTS = frozenset({67, 68})
DHCP_COOKIE = b"\x63\x82\x53\x63"  # RFC 2131 section 3, at offset 236


def is_dhcp(head: bytes, plen: int, port_hint: bool) -> bool:
    if len(head) < 28 or head[0] not in (1, 2) or head[3] > 16 or plen < 240:
        return False
    if len(head) >= 240:
        return head[236:240] == DHCP_COOKIE
    if port_hint:
        return head[2] <= 16
    # Off the ports the cookie is usually beyond the head: ask for Ethernet hardware
    # addresses with the rest of chaddr zero.
    return head[1] == 1 and head[2] == 6 and len(head) >= 44 and not any(head[34:44])


# --- iSCSI (RFC 7143 section 11.12) ----------------------------------------------------

ISCSI_PORT = 3260
ISCSI_LOGIN_REQUEST = 0x03
ISCSI_LOGIN_RESPONSE = 0x23


def is_iscsi(head: bytes, plen: int, port_hint: bool) -> bool:
    """A Login Request (or Login Response): 48-byte BHS, version 0, no AHS."""
    if len(head) < 48 or head[0] & 0x3F not in (ISCSI_LOGIN_REQUEST, ISCSI_LOGIN_RESPONSE):
        return False
    flags = head[1]
    if flags & 0x30 or (flags >> 2 & 3) == 2 or head[4] != 0:  # reserved bits, CSG, AHS
        return False
    data_len = head[5] << 16 | head[6] << 8 | head[7]
    if head[2] != 0 or head[3] != 0:  # version-max/min (request), -max/-active (response)
        return False
    if port_hint:
        return data_len <= 65536 and 48 + data_len <= plen + 3
    padded = 48 + (data_len + 3) // 4 * 4
    if data_len == 0 or plen != padded:
        return False
    return len(head) == 48 or b"=" in head[48:]  # login text is key=value pairs


def iscsi_facts(packets: Sequence[Packet]) -> Facts:
    return {"encrypted": _tls_follows(packets)}


# --- NATS (https://docs.nats.io/reference/reference-protocols/nats-protocol) ----------

_NATS_TLS = re.compile(rb'"tls_required"\s*:\s*true')
_NATS_VERSION = re.compile(rb'"version"\s*:\s*"([^"]{1,64})"')


def is_nats(head: bytes) -> bool:
    return head.startswith((b"INFO {", b"CONNECT {"))


def nats_facts(packets: Sequence[Packet]) -> Facts:
    facts: Facts = {}
    tls = False
    for _d, head, _plen in packets:
        if head.startswith(b"INFO {"):
            tls = tls or _NATS_TLS.search(head) is not None
            m = _NATS_VERSION.search(head)
            if m is not None and "server_version" not in facts:
                facts["server_version"] = m.group(1).decode("ascii", "replace")
    facts["encrypted"] = tls or _tls_follows(packets)
    return facts


# --- MySQL (client/server protocol, HandshakeV10) ------------------------------------

MYSQL_PORT = 3306
MYSQL_CLIENT_SSL = 0x0800


def is_mysql_greeting(head: bytes, plen: int) -> bool:
    """Server greeting: 3-byte length, sequence 0, protocol 10, NUL-terminated version."""
    if len(head) < 10 or head[3] != 0 or head[4] != 10:
        return False
    length = head[0] | head[1] << 8 | head[2] << 16
    if not 20 <= length <= 1024 or length + 4 > plen:
        return False
    end = head.find(b"\0", 5, 5 + 64)
    if end < 0 and len(head) < 5 + 64:
        end = len(head)  # cut off inside the version string
    version = head[5:end]
    return version[:1].isdigit() and all(0x20 <= b < 0x7F for b in version)


def mysql_facts(packets: Sequence[Packet]) -> Facts:
    facts: Facts = {}
    greeting_dir: int | None = None
    encrypted: bool | None = None
    for d, head, plen in packets:
        if greeting_dir is None:
            if is_mysql_greeting(head, plen):
                greeting_dir = d
                end = head.find(b"\0", 5)
                version = head[5:end] if end >= 0 else head[5:69]
                facts["server_version"] = version.decode("ascii", "replace")
            continue
        if d != greeting_dir and len(head) >= 8 and head[3] == 1:
            # Client's answer (sequence 1): an SSLRequest (CLIENT_SSL set) comes before the
            # TLS handshake; a HandshakeResponse without it means everything goes in clear.
            encrypted = (head[4] | head[5] << 8) & MYSQL_CLIENT_SSL != 0
            break
    facts["encrypted"] = True if _tls_follows(packets) else encrypted
    return facts


def _tls_follows(packets: Sequence[Packet]) -> bool:
    return any(starts_tls(head) for _d, head, _p in packets)
