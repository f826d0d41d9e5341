"""FTP data connections: the connections that a captured FTP control channel announced.

A data connection carries a file or a listing and nothing that names FTP, so its payload
cannot say what it is; the control channel can. The server's ``227`` (PASV, RFC 959) and
``229`` (EPSV, RFC 2428) replies and the client's ``PORT`` and ``EPRT`` commands announce the
address and port the data connection goes to. These lines usually come after the login,
beyond the few payload heads per flow the classifier gets, so they are found in every
packet: :func:`scan` runs once per packet batch, a vectorised test of the payload's first
four bytes with a Python parse only of the rows that pass (a handful per FTP session).
After classification, :func:`mark` gives ``app = "ftp-data"`` to the flows whose endpoint
was announced on a flow the classifier called ``ftp``: a pass over the flow table, as the
answer spans flows.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Announcement:
    """A data connection endpoint announced on the control flow ``flow``."""

    flow: int  # the flow table's index of the control connection
    ip: str
    port: int


def parse(line: bytes, sender: str) -> tuple[str, int] | None:
    """(ip, port) a PASV/EPSV reply or PORT/EPRT command announces; EPSV names no address:
    the data connection goes to the sender of the reply."""
    m = _PASV.match(line) or _PORT.match(line)
    if m is not None:
        parts = [int(x) for x in m.groups()]
        if max(parts) > 255:
            return None
        return ".".join(map(str, parts[:4])), parts[4] << 8 | parts[5]
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


def _text(addr16: bytes) -> str:
    a = ipaddress.IPv6Address(addr16)
    return str(a.ipv4_mapped or a)


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
    room = (offsets[1:] - start >= 4) & (proto == TCP)
    rows = np.flatnonzero(room)
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
    for i in rows[np.isin(word, _CODES)].tolist():
        line = bytes(buf[offsets[i] : offsets[i + 1]])
        found = parse(line, _text(bytes(src_ip[i])))
        if found is not None and int(flow[i]) >= 0:
            out.append(Announcement(int(flow[i]), found[0], found[1]))


def mark(table: pa.Table, rows_of_flow: np.ndarray, announced: list[Announcement]) -> pa.Table:
    """The flow table with ``app = "ftp-data"`` (and ``encrypted`` false unless TLS was seen
    in it) on the TCP flows to an endpoint a ``ftp`` control flow announced.
    ``rows_of_flow[f]``: the table row of flow index f."""
    if not announced:
        return table
    app = table.column("app").to_pylist()
    endpoints = {
        (a.ip, a.port)
        for a in announced
        if a.flow < len(rows_of_flow) and app[int(rows_of_flow[a.flow])] == "ftp"
    }
    if not endpoints:
        return table
    proto = table.column("proto").to_pylist()
    cols = [table.column(c).to_pylist() for c in ("src_ip", "src_port", "dst_ip", "dst_port")]
    hit = [
        p == "tcp" and ((di, dp) in endpoints or (si, sp) in endpoints) and a != "ftp"
        for p, a, si, sp, di, dp in zip(proto, app, *cols, strict=True)
    ]
    if not any(hit):
        return table
    import pyarrow.compute as pc  # only here: its import alone costs tens of milliseconds

    mask = pa.array(hit)
    new_app = pc.if_else(mask, pa.scalar("ftp-data"), table.column("app"))
    enc = table.column("encrypted")
    new_enc = pc.if_else(pc.and_(mask, pc.not_equal(table.column("app"), "tls")), False, enc)
    table = table.set_column(table.schema.get_field_index("app"), "app", new_app)
    return table.set_column(table.schema.get_field_index("encrypted"), "encrypted", new_enc)
