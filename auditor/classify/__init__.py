"""Payload classifier: the first payload heads of a flow -> application protocol and its facts.

:func:`classify_flow` is called once per flow with its first payload-carrying packets of
each direction (the flow table keeps four). It finds the protocol from the first bytes of the first packet that any detector
accepts (either direction, any port; the well-known port only relaxes the weaker checks),
then lets that protocol's reader go over all the packets. Readers are pure functions that
never raise on bad input: they return what they learned before the bytes stopped making
sense. A protocol that upgrades to TLS in the same flow (LDAP StartTLS, SMTP/IMAP STARTTLS,
POP3 STLS, FTP AUTH TLS, MySQL, NATS, HTTP CONNECT, RDP) gets the TLS facts of what follows.

One packet does not always tell: a numeric reply line is FTP's or SMTP's, so :func:`detect`
answers :data:`REPLY` and the whole flow settles it (banner text, commands and replies only
one of them has, then the port). FTP data connections are named across flows, after this:
:mod:`auditor.classify.ftp_data`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditor.classify import (
    dcerpc,
    dns,
    dtls,
    ftp,
    http,
    imap,
    irc,
    kerberos,
    ldap,
    lines,
    modbus,
    netbios,
    onc_rpc,
    others,
    pop3,
    postgresql,
    quic,
    rdp,
    redis,
    smb,
    smtp,
    snmp,
    syslog,
    telnet,
    tls,
    vnc,
)
from auditor.classify.facts import (
    APPS,
    FLOW_FACTS_FIELDS,
    FLOW_FACTS_SCHEMA,
    NO_PAYLOAD,
    UNKNOWN,
    Facts,
    FlowFacts,
    facts_table,
)
from auditor.classify.stream import Packet

NBNS_PORT = 137  # RFC 1002
#: detect()'s answer for a numeric reply line (FTP or SMTP): the whole flow decides
REPLY = "reply"
#: the IP protocols whose payload may be an application protocol worth looking for
_TRANSPORTS = frozenset({"tcp", "udp", "sctp"})

__all__ = [
    "APPS",
    "FLOW_FACTS_FIELDS",
    "FLOW_FACTS_SCHEMA",
    "FlowFacts",
    "Packet",
    "classify_flow",
    "detect",
    "facts_table",
]


def detect(proto: str, dst_port: int, head: bytes, payload_len: int) -> str | None:
    """The application protocol one payload head shows, :data:`REPLY` for a numeric reply
    line (FTP or SMTP: see :func:`classify_flow`), or None. Dispatches on byte 0."""
    if not head:
        return None
    b0 = head[0]
    if proto == "udp":
        app = _detect_udp(dst_port, head, payload_len)
        if app is not None:
            return app
    stream = proto == "tcp"  # the line-based protocols and Telnet run over TCP only
    if 20 <= b0 <= 24:
        if tls.is_record(head):
            return "tls"
    elif 0x41 <= b0 <= 0x5A or 0x61 <= b0 <= 0x7A:  # letters: text protocols
        if others.is_ssh(head):
            return "ssh"
        if others.is_nats(head):
            return "nats"
        if http.is_request(head) or http.is_response(head):
            return "http"
        if stream:
            if b0 == 0x52:  # R
                if vnc.is_version(head, payload_len):
                    return "vnc"
                if postgresql.is_auth_request(head, payload_len):
                    return "postgresql"
            app = _text_command(head, payload_len)
            if app is not None:
                return app
            inline = dst_port in redis.PORTS and redis.is_inline(
                lines.first_line(head, payload_len) or b""
            )
            if inline:
                return "redis"
    elif b0 in _SYMBOLS:  # * + - : (IMAP, POP3, IRC, Redis)
        app = _symbol_text(head, payload_len) if stream else None
        if app is not None:
            return app
    elif 0x31 <= b0 <= 0x35:  # 1-5: a numeric reply (FTP, SMTP)?
        reply = lines.first_line(head, payload_len) if stream else None
        if reply is not None and lines.reply_code(reply) is not None:
            return REPLY
    elif b0 == 0x30:
        if ldap.is_message(head, payload_len, dst_port in ldap.PORTS):
            return "ldap"
    elif b0 == 0:
        if smb.is_smb(head):
            return "smb"
    elif b0 == telnet.IAC:
        if stream and telnet.is_negotiation(head, payload_len):
            return "telnet"
    elif b0 & 0x80 and tls.is_sslv2_hello(head):
        return "tls"
    if proto != "tcp":
        return None
    if b0 == rdp.TPKT_VERSION and rdp.is_connection(head, payload_len, dst_port in rdp.PORTS):
        return "rdp"
    if b0 == 5 and dcerpc.is_co_pdu(head, payload_len, dst_port in dcerpc.PORTS):
        return "dcerpc"
    if b0 == 0:
        if kerberos.is_tcp_message(head, payload_len):
            return "kerberos"
        if postgresql.is_startup(head, payload_len):
            return "postgresql"
    if b0 & 0x80 and (rpc := onc_rpc.tcp_call(head, payload_len)) is not None:
        return rpc
    if b0 & 0x3F in (others.ISCSI_LOGIN_REQUEST, others.ISCSI_LOGIN_RESPONSE) and others.is_iscsi(
        head, payload_len, dst_port == others.ISCSI_PORT
    ):
        return "iscsi"
    if others.is_mysql_greeting(head, payload_len):
        return "mysql"
    if modbus.is_adu(head, payload_len, dst_port == modbus.PORT):
        return "modbus"
    if dns.is_tcp_message(head, payload_len, dst_port in dns.PORTS):
        return "dns"
    return None


def _text_command(head: bytes, plen: int) -> str | None:
    """A command line (or IRC's pre-registration notice) that names its protocol."""
    line = lines.first_line(head, plen)
    if line is None:
        return None
    if ftp.is_command(line):
        return "ftp"
    if line[:5] in (b"USER ", b"PASS ") and irc.registers(head):
        return "irc"
    if smtp.is_command(line):
        return "smtp"
    if pop3.is_command(line):
        return "pop3"
    if irc.is_client(line) or irc.is_server(line):
        return "irc"
    if imap.is_command(line):
        return "imap"
    return None


_SYMBOLS = frozenset(b"*+-:")


def _symbol_text(head: bytes, plen: int) -> str | None:
    b0 = head[0]
    if b0 == 0x2A and redis.is_command(head):  # *
        return "redis"
    if b0 != 0x3A and redis.is_reply(head):  # + -
        return "redis"
    line = lines.first_line(head, plen)
    if line is None:
        return None
    if b0 == 0x2A:
        return "imap" if imap.is_greeting(line) else None
    if b0 == 0x2B:
        return "pop3" if pop3.is_greeting(line) else None
    if b0 == 0x3A:
        return "irc" if irc.is_server(line) else None
    return None


def _settle_reply(packets: Sequence[Packet], port: int) -> str | None:
    """FTP or SMTP, for a flow whose first recognisable payload is a numeric reply."""
    for _d, line in lines.lines(packets):
        if lines.reply_code(line) == 220:
            if ftp.says_ftp(line):
                return "ftp"
            if smtp.says_smtp(line):
                return "smtp"
    ftp_score, smtp_score = ftp.score(packets), smtp.score(packets)
    if ftp_score != smtp_score:
        return "ftp" if ftp_score > smtp_score else "smtp"
    if port in ftp.PORTS:
        return "ftp"
    if port in smtp.PORTS:
        return "smtp"
    return None


def _detect_udp(port: int, head: bytes, plen: int) -> str | None:
    # The well-known port first, with its relaxed check; then the strict checks.
    if port == NBNS_PORT:  # DNS-shaped, but its names are not host names
        return "netbios-ns" if netbios.is_name_service(head) else None
    b0 = head[0]
    if b0 >= 0xC0 and quic.is_packet(head, plen):
        return "quic"
    if port == netbios.DGM_PORT and netbios.is_datagram(head, plen):
        return "netbios-dgm"
    if 20 <= b0 <= 25 and dtls.is_record(head, plen):
        return "dtls"
    if b0 in kerberos.TAGS and kerberos.is_message(head):
        return "kerberos"
    if b0 == 4 and dcerpc.is_cl_pdu(head, plen):
        return "dcerpc"
    if b0 == 0x30 and snmp.is_message(head):
        return "snmp"
    if b0 == 0x3C and syslog.is_message(head, plen):  # <
        return "syslog"
    rpc = onc_rpc.udp_call(head)
    if rpc is not None:
        return rpc
    if port in dns.PORTS and dns.is_message(head, True):
        return "dns"
    if port == others.NTP_PORT and others.is_ntp(head, plen, True):
        return "ntp"
    if port in others.DHCP_PORTS and others.is_dhcp(head, plen, True):
        return "dhcp"
    if others.is_dhcp(head, plen, False):
        return "dhcp"
    if dns.is_message(head, False):
        return "dns"
    if others.is_ntp(head, plen, False):
        return "ntp"
    return None


def _client_direction(packets: Sequence[Packet]) -> int:
    """The direction whose stream starts with a ClientHello (the flow may be seen reversed)."""
    for d, head, _plen in packets:
        if (
            len(head) > 5 and tls.is_record(head) and head[0] == tls.HANDSHAKE and head[5] == 1
        ) or (tls.is_sslv2_hello(head)):
            return d
    return 0


def _tls_upgrade(packets: Sequence[Packet], facts: Facts) -> None:
    """Add the TLS facts of a handshake that starts inside the flow (StartTLS and the like)."""
    for i, (d, head, _plen) in enumerate(packets):
        if tls.starts_tls(head):
            found = tls.tls_facts(packets[i:], d)
            found.pop("encrypted", None)
            facts.update(found)
            facts["encrypted"] = True
            return


def classify_flow(proto: str, dst_port: int, packets: Sequence[Packet]) -> FlowFacts:
    """Classify one flow from its first payload heads.

    ``packets``: (direction, head, payload_len) in capture order; direction 0 is
    initiator -> responder. ``dst_port`` is the responder's port. Never raises on bad bytes.
    """
    if proto not in _TRANSPORTS:  # ICMP, IGMP, GRE, ESP...: no application protocol to find
        return UNKNOWN if any(plen > 0 or head for _d, head, plen in packets) else NO_PAYLOAD
    app: str | None = None
    any_payload = False
    first = 0  # index of the packet that showed the protocol
    settled = False  # a numeric reply was looked into: FTP, SMTP or neither
    for i, (_d, head, plen) in enumerate(packets):
        if plen <= 0 and not head:
            continue
        any_payload = True
        app = detect(proto, dst_port, head, plen)
        if app == REPLY:
            if settled:
                app = None
                continue
            settled = True
            app = _settle_reply(packets, dst_port)
        if app is not None:
            first = i
            break
    if app is None:
        return UNKNOWN if any_payload else NO_PAYLOAD

    facts: Facts
    if app == "tls":
        # From the first record on: TLS may follow a preamble we do not know (RDP's X.224).
        rest = packets[first:] if first else packets
        facts = tls.tls_facts(rest, _client_direction(rest))
    elif app == "http":
        facts = http.http_facts(packets)
        if facts.get("http_method") == "CONNECT":
            _tls_upgrade(packets, facts)
    elif app == "ssh":
        facts = others.ssh_facts(packets)
    elif app == "ldap":
        facts = ldap.ldap_facts(packets)
        if facts.get("ldap_starttls"):
            _tls_upgrade(packets, facts)
    elif app == "smb":
        facts = smb.smb_facts(packets)
    elif app == "dns":
        facts = dns.dns_facts(proto, packets)
    elif app == "ntp":
        facts = others.ntp_facts(packets)
    elif app == "dhcp":
        facts = {"encrypted": False}
    elif app == "iscsi":
        facts = others.iscsi_facts(packets)
    elif app == "nats":
        facts = others.nats_facts(packets)
        _tls_upgrade(packets, facts)
    elif app == "telnet":
        facts = telnet.telnet_facts(packets)
    elif app in _STARTTLS_READERS:
        facts = _STARTTLS_READERS[app](packets)
        if facts.get("starttls"):
            _tls_upgrade(packets, facts)
    elif app == "irc":
        facts = irc.irc_facts(packets)
    elif app == "redis":
        facts = redis.redis_facts(packets)
    elif app == "kerberos":
        facts = kerberos.kerberos_facts(packets)
    elif app == "dcerpc":
        facts = dcerpc.dcerpc_facts(packets)
    elif app == "rdp":
        facts = rdp.rdp_facts(packets)
        _tls_upgrade(packets, facts)
    elif app == "modbus":
        facts = modbus.modbus_facts(packets)
    elif app == "dtls":
        facts = dtls.dtls_facts(packets)
    elif app == "quic":
        facts = quic.quic_facts(packets)
    elif app in ("nfs", "portmap"):
        facts = onc_rpc.rpc_facts(packets, proto)
    elif app == "postgresql":
        facts = postgresql.postgresql_facts(packets)
        _tls_upgrade(packets, facts)
    elif app == "vnc":
        facts = vnc.vnc_facts(packets)
        _tls_upgrade(packets, facts)
    elif app == "snmp":
        facts = snmp.snmp_facts(packets)
    elif app in ("syslog", "netbios-ns", "netbios-dgm"):
        facts = {"encrypted": False}
    else:  # mysql
        facts = others.mysql_facts(packets)
        _tls_upgrade(packets, facts)
    return _facts(app, facts)


_STARTTLS_READERS = {
    "ftp": ftp.ftp_facts,
    "smtp": smtp.smtp_facts,
    "pop3": pop3.pop3_facts,
    "imap": imap.imap_facts,
}

_CACHE: dict[tuple[Any, ...], FlowFacts] = {}
_CACHE_MAX = 4096


def _facts(app: str, found: Facts) -> FlowFacts:
    """FlowFacts for these findings, shared between flows that found the same (thousands of
    DHCP or plain-TLS flows do): building a frozen 30-field dataclass costs more than
    looking it up, and the flow table writes each distinct object once."""
    try:
        key = (app, *sorted(found.items()))
        hit = _CACHE.get(key)
    except TypeError:  # an unhashable value: build it
        return FlowFacts(app=app, **found)
    if hit is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        hit = _CACHE[key] = FlowFacts(app=app, **found)
    return hit
