"""FTP data connections: the connections that a captured FTP control channel announced.

A data connection carries a file or a listing and nothing that names FTP, so its payload
cannot say what it is; the control channel can. The server's ``227`` (PASV, RFC 959) and
``229`` (EPSV, RFC 2428) replies and the client's ``PORT`` and ``EPRT`` commands announce the
address and port the data connection goes to. These lines usually come after the login,
beyond the few payload heads per flow the classifier gets, so they are found in every
packet: :func:`scan` runs once per packet batch, a vectorised test of the payload's first
four bytes with a Python parse only of the rows that pass (a handful per FTP session).
After classification, :func:`mark` gives ``app = "ftp-data"`` to the flows whose endpoint
was announced on a flow the classifier called ``ftp`` (the announced address, or the
announcer's own, which is where the connection goes when a NAT rewrote the address): a pass
over the flow table, as the answer spans flows.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import NamedTuple

import numpy as np
import pyarrow as pa

#: first four payload bytes of the lines that announce a data connection
_CODES = np.array(
    [int.from_bytes(w, "little") for w in (b"227 ", b"229 ", b"PORT", b"EPRT", b"port", b"eprt")],
    dtype=np.uint32,
)
_FIRST = np.zeros(256, dtype=bool)
_FIRST[list(b"2PEpe")] = True
_H_P = rb"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})"
_PASV = re.compile(rb"227 [^\r\n]*?" + _H_P)
_PORT = re.compile(rb"(?i:PORT) " + _H_P)
_EPSV = re.compile(rb"229 [^\r\n]*?\((.)\1\1(\d{1,5})\1\)")
_EPRT = re.compile(rb"(?i:EPRT) (.)([12])\1([0-9A-Fa-f.:]{2,45})\1(\d{1,5})\1")
TCP = 6


class Announcement(NamedTuple):
    """A data connection endpoint announced on the control flow ``flow`` (a named tuple,
    not a dataclass: thousands are made per second of FTP-heavy traffic)."""

    flow: int  # the flow table's index of the control connection
    ip: str
    port: int
    #: who announced it: the endpoint the data connection goes to when a NAT rewrote it
    #: (a server behind NAT announces its private address in PASV)
    sender: str


def parse(line: bytes, sender: str) -> tuple[str, int] | None:
    """(ip, port) a PASV/EPSV reply or PORT/EPRT command announces; EPSV names no address:
    the data connection goes to the sender of the reply."""
    if line[:5] == b"227 E" and (i := line.find(b"(", 5)) > 0:  # the usual form, fast
        parts = line[i + 1 : line.find(b")", i)].split(b",")
        if len(parts) == 6 and all(x.isdigit() and len(x) <= 3 for x in parts):
            n = [int(x) for x in parts]
            if max(n) <= 255:
                return f"{n[0]}.{n[1]}.{n[2]}.{n[3]}", n[4] << 8 | n[5]
    m = _PASV.match(line) or _PORT.match(line)
    if m is not None:
        nums = [int(x) for x in m.groups()]
        if max(nums) > 255:
            return None
        return ".".join(map(str, nums[:4])), nums[4] << 8 | nums[5]
    m = _EPSV.match(line)
    if m is not None:
        port = int(m.group(2))
        return (sender, port) if 0 < port < 65536 else None
    m = _EPRT.match(line)
    if m is not None:
        try:
            ip = str(ipaddress.ip_address(m.group(3).decode("ascii")))
        except ValueError:
            return None
        port = int(m.group(4))
        return (ip, port) if 0 < port < 65536 else None
    return None


_V4_MAPPED = bytes(10) + b"\xff\xff"
#: memory stays bounded: announcements past this many (a flood of "227 (" lines) are not kept
MAX_ANNOUNCEMENTS = 200_000


def _text(addr16: bytes) -> str:
    """A 16-byte address as the flow table writes it (IPv4-mapped as IPv4)."""
    if addr16[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, addr16[12:])
    return socket.inet_ntop(socket.AF_INET6, addr16)


def scan(
    flow: np.ndarray,
    proto: np.ndarray,
    src_ip: np.ndarray,
    offsets: np.ndarray,
    data: pa.Buffer | bytes,
    out: list[Announcement],
) -> None:
    """Append the announcements in one packet batch (rows: flow index, IP protocol, 16-byte
    source address, payload head offsets (n + 1) into ``data``)."""
    if len(flow) == 0 or not len(data):
        return
    buf = np.frombuffer(data, dtype=np.uint8)
    start = offsets[:-1]
    rows = np.flatnonzero((offsets[1:] - start >= 4) & (proto == TCP))
    if not len(rows):
        return
    rows = rows[_FIRST[buf[start[rows]]]]  # cheap first: one byte
    if not len(rows):
        return
    s = start[rows]
    word = (
        buf[s].astype(np.uint32)
        | buf[s + 1].astype(np.uint32) << 8
        | buf[s + 2].astype(np.uint32) << 16
        | buf[s + 3].astype(np.uint32) << 24
    )
    rows = rows[np.isin(word, _CODES)]
    if not len(rows):
        return
    raw = memoryview(data)
    senders: dict[bytes, str] = {}
    for i, f, lo, hi in zip(
        rows.tolist(),
        flow[rows].tolist(),
        offsets[rows].tolist(),
        offsets[rows + 1].tolist(),
        strict=True,
    ):
        if f < 0 or len(out) >= MAX_ANNOUNCEMENTS:
            continue
        addr = src_ip[i].tobytes()
        sender = senders.get(addr)
        if sender is None:
            sender = senders[addr] = _text(addr)
        found = parse(bytes(raw[lo:hi]), sender)
        if found is not None:
            out.append(Announcement(f, found[0], found[1], sender))


def mark(table: pa.Table, rows_of_flow: np.ndarray, announced: list[Announcement]) -> pa.Table:
    """The flow table with ``app = "ftp-data"`` (and ``encrypted`` false unless TLS was seen
    in it) on the TCP flows to an endpoint a ``ftp`` control flow announced.
    ``rows_of_flow[f]``: the table row of flow index f."""
    if not announced:
        return table
    app = table.column("app").to_pylist()
    controls = {int(rows_of_flow[a.flow]) for a in announced if a.flow < len(rows_of_flow)}
    is_ftp = {r for r in controls if app[r] == "ftp"}
    endpoints = {
        e
        for a in announced
        if int(rows_of_flow[a.flow]) in is_ftp
        for e in ((a.ip, a.port), (a.sender, a.port))
    }
    if not endpoints:
        return table
    ports = np.array(sorted({p for _ip, p in endpoints}))
    sport = table.column("src_port").to_numpy()
    dport = table.column("dst_port").to_numpy()
    candidates = np.flatnonzero(np.isin(dport, ports) | np.isin(sport, ports))
    if not len(candidates):
        return table
    enc = table.column("encrypted").to_pylist()
    columns = [table.column(name) for name in ("proto", "src_ip", "dst_ip")]
    hits = 0
    for r in candidates.tolist():
        if app[r] == "ftp":
            continue
        proto, si, di = (c[r].as_py() for c in columns)  # a few hundred rows: by scalar
        if proto == "tcp" and (
            (di, int(dport[r])) in endpoints or (si, int(sport[r])) in endpoints
        ):
            if app[r] != "tls":
                enc[r] = False
            app[r] = "ftp-data"
            hits += 1
    if not hits:
        return table
    table = table.set_column(table.schema.get_field_index("app"), "app", pa.array(app, pa.string()))
    i = table.schema.get_field_index("encrypted")
    return table.set_column(i, "encrypted", pa.array(enc, pa.bool_()))
