"""DNS messages (RFC 1035) over UDP and over TCP with the 2-byte length prefix (RFC 7766).

Names are read with compression pointers that must jump strictly before the start of the
run of labels they end (so every name terminates) and within 255 bytes of name. A message
cut off by the head limit gives the records before the cut. A/AAAA answers are reported
for their owner and, through the CNAME records of the same message, for every alias that
leads to it, because the inventory matches the name that was asked for.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet, direction_stream

PORTS = frozenset({53, 5353, 5355})  # DNS, mDNS (RFC 6762), LLMNR (RFC 4795)

TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
_OPCODES = frozenset({0, 1, 2, 4, 5})  # query, iquery, status, notify (RFC 1996), update
_CLASSES = frozenset({1, 3, 4, 254, 255})
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*/")
MAX_NAME = 255


def read_name(msg: bytes, pos: int) -> tuple[str | None, int]:
    """(lower-cased name without the trailing dot, offset after it), or (None, -1)."""
    labels: list[bytes] = []
    total = 0
    after = -1
    run_start = pos
    n = len(msg)
    while pos < n:
        ln = msg[pos]
        if ln == 0:
            if after < 0:
                after = pos + 1
            return b".".join(labels).decode("ascii", "replace").lower(), after
        if ln >= 0xC0:
            if pos + 1 >= n:
                return None, -1
            ptr = (ln & 0x3F) << 8 | msg[pos + 1]
            if ptr >= run_start:
                return None, -1
            if after < 0:
                after = pos + 2
            pos = run_start = ptr
            continue
        if ln >= 0x40:
            return None, -1  # extended label types (RFC 6891 obsoleted them)
        total += ln + 1
        if total > MAX_NAME or pos + 1 + ln > n:
            return None, -1
        labels.append(msg[pos + 1 : pos + 1 + ln])
        pos += 1 + ln
    return None, -1


def _plain(name: str) -> bool:
    return all(b in _NAME_BYTES or b == 0x2E for b in name.encode("ascii", "replace"))


def is_message(msg: bytes, port_hint: bool) -> bool:
    """A plausible DNS message. Without a DNS port, ask for one clean question."""
    if len(msg) < 12:
        return False
    opcode = msg[2] >> 3 & 0x0F
    if opcode not in _OPCODES:
        return False
    qd = msg[4] << 8 | msg[5]
    an = msg[6] << 8 | msg[7]
    ns = msg[8] << 8 | msg[9]
    ar = msg[10] << 8 | msg[11]
    if port_hint:
        if qd > 16:
            return False
        if qd == 0:
            return an + ns + ar > 0 or msg[2] & 0x80 != 0
        name, pos = read_name(msg, 12)
        return name is not None or len(msg) < 12 + 2 + 4  # cut off in the question is fine
    if qd != 1 or msg[3] & 0x40 or an > 256 or ns > 256 or ar > 256:
        return False
    if msg[2] & 0x80 == 0 and opcode == 0 and (an or ns or ar > 2):
        return False
    name, pos = read_name(msg, 12)
    if name is None or pos + 4 > len(msg) or not _plain(name):
        return False
    qclass = (msg[pos + 2] << 8 | msg[pos + 3]) & 0x7FFF  # mDNS: top bit is unicast-response
    return qclass in _CLASSES


def is_tcp_message(head: bytes, plen: int, port_hint: bool) -> bool:
    if len(head) < 2:
        return False
    ln = head[0] << 8 | head[1]
    if ln < 12:
        return False
    if plen == 2:
        return port_hint  # the length alone in its own segment
    if not port_hint and ln + 2 > plen:
        return False  # without the port, ask for a message that fits its segment
    return is_message(head[2 : 2 + ln], port_hint)


def _address(rtype: int, rdata: bytes) -> str | None:
    if rtype == TYPE_A and len(rdata) == 4:
        return f"{rdata[0]}.{rdata[1]}.{rdata[2]}.{rdata[3]}"
    if rtype == TYPE_AAAA and len(rdata) == 16:
        return socket.inet_ntop(socket.AF_INET6, rdata)
    return None


def parse_message(msg: bytes, queries: list[str], answers: list[tuple[str, str]]) -> None:
    """Append the question names and the (name, address) answers of one message."""
    if len(msg) < 12:
        return
    qd = msg[4] << 8 | msg[5]
    an = msg[6] << 8 | msg[7]
    pos = 12
    for _ in range(min(qd, 16)):
        name, pos = read_name(msg, pos)
        if name is None:
            return
        if name not in queries:
            queries.append(name)
        pos += 4
    if msg[2] & 0x80 == 0 or an == 0:
        return
    aliases: dict[str, list[str]] = {}  # CNAME target -> owners
    found: list[tuple[str, str]] = []
    n = len(msg)
    for _ in range(an):
        name, pos = read_name(msg, pos)
        if name is None or pos + 10 > n:
            break
        rtype = msg[pos] << 8 | msg[pos + 1]
        rdlen = msg[pos + 8] << 8 | msg[pos + 9]
        start = pos + 10
        pos = start + rdlen
        if pos > n:
            break
        if rtype == TYPE_CNAME:
            target, _end = read_name(msg, start)
            if target is not None:
                aliases.setdefault(target, []).append(name)
        else:
            addr = _address(rtype, msg[start:pos])
            if addr is not None:
                found.append((name, addr))
    for owner, addr in found:
        names = [owner]
        i = 0
        while i < len(names) and i < 32:
            for alias in aliases.get(names[i], ()):
                if alias not in names:
                    names.append(alias)
            i += 1
        for name in names:
            if (name, addr) not in answers:
                answers.append((name, addr))


def dns_facts(proto: str, packets: Sequence[Packet]) -> Facts:
    queries: list[str] = []
    answers: list[tuple[str, str]] = []
    if proto == "tcp":
        for direction in (0, 1):
            stream = direction_stream(packets, direction)
            pos = 0
            for _ in range(64):
                if pos + 2 > stream.size:
                    break
                ln_bytes = stream.get(pos, 2)
                if ln_bytes is None:
                    break
                ln = ln_bytes[0] << 8 | ln_bytes[1]
                parse_message(stream.avail(pos + 2, ln), queries, answers)
                pos += 2 + ln
    else:
        for _d, head, _plen in packets:
            parse_message(head, queries, answers)
    return {
        "encrypted": False,
        "dns_queries": tuple(queries),
        "dns_answers": tuple(answers),
    }
