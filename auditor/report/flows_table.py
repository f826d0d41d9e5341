"""The flow table for a terminal (``pcap-audit flows``, the default format).

A flow has some 60 fields; JSON, CSV and Parquet carry them all. The terminal gets the
few that say what a flow is and where to find it: when it began, the protocol, client and
server, the application, its size, the capture file (when there are several) and frame
numbers (what Wireshark opens), its Community ID (elided: a prefix is enough to search with) and a detail (TLS
version and SNI, HTTP Host or SSH banner). State and detail are left out first when the
terminal is narrow. Laid out by :func:`auditor.report.grid.grid`, which escapes every cell.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from auditor.report.grid import Column, grid_lines

FIRST_SEEN = Column("first seen", min_width=10)
PROTO = Column("proto", overflow="keep")
ENDPOINTS = Column("client → server", min_width=18)
STATE = Column("state", min_width=6, drop=3)
APP = Column("app", min_width=7)
PACKETS = Column("pkts", overflow="keep", align="right")
BYTES = Column("bytes", overflow="keep", align="right")
CAPTURE = Column("capture", min_width=10)
FRAMES = Column("frames", overflow="keep")
COMMUNITY_ID = Column("community id", overflow="elide", min_width=12, drop=1)
DETAIL = Column("detail", min_width=16, drop=2)


#: the fields of a flow record the table shows
FIELDS = (
    "first_seen", "proto", "src_ip", "src_port", "dst_ip", "dst_port", "state", "app",
    "packets_fwd", "packets_rev", "bytes_fwd", "bytes_rev", "capture", "captures",
    "first_frame", "last_frame", "community_id", "sni", "http_host", "ssh_banner", "tls_version",
)  # fmt: skip


def _endpoint(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _names(r: Mapping[str, Any]) -> list[str]:
    return [os.path.basename(str(c)) for c in (r.get("captures") or [r.get("capture") or ""])]


def capture_text(r: Mapping[str, Any]) -> str:
    """The flow's capture file (no directory: the JSON has the path); ``a.pcap … b.pcap``
    for a flow that goes on into a later file (rotated captures)."""
    names = _names(r)
    return names[0] if len(names) == 1 else f"{names[0]} … {names[-1]}"


def frames_text(r: Mapping[str, Any]) -> str:
    """Frame numbers as Wireshark numbers them: ``1540-1823`` in the flow's capture,
    ``1540 … 223`` from frame 1540 of the first file to frame 223 of the last."""
    a, b = r.get("first_frame"), r.get("last_frame")
    if len(_names(r)) > 1:
        return f"{a} … {b}"
    return str(a) if a == b else f"{a}-{b}"


def _detail(r: Mapping[str, Any]) -> str:
    detail = r.get("sni") or r.get("http_host") or r.get("ssh_banner") or ""
    if r.get("tls_version"):
        detail = f"{r['tls_version']} {detail}".strip()
    return str(detail)


def render(rows: Sequence[Mapping[str, Any]], width: int) -> str:
    """Flow records (``flows_out.flow_records``) as a table of at most ``width`` columns.

    The capture column is there when the flows come from more than one capture file.
    """
    return "".join(line + "\n" for line in lines(lambda: [list(rows)], width))


def lines(
    batches: Callable[[], Iterable[Sequence[Mapping[str, Any]]]], width: int
) -> Iterator[str]:
    """:func:`render`'s lines, of flow records given a batch at a time: ``batches()`` gives
    them afresh each time it is called (``flows_out.record_batches`` of the table), so a
    table of millions of flows is printed without being held."""
    several = _several_captures(batches())
    columns = [FIRST_SEEN, PROTO, ENDPOINTS, STATE, APP, PACKETS, BYTES]
    columns += [CAPTURE] if several else []
    columns += [FRAMES, COMMUNITY_ID, DETAIL]

    def rows() -> Iterator[tuple[Any, ...]]:
        for batch in batches():
            for r in batch:
                yield _cells(r, several)

    return grid_lines(columns, rows, width)


def _several_captures(batches: Iterable[Sequence[Mapping[str, Any]]]) -> bool:
    seen: set[Any] = set()
    for batch in batches:
        for r in batch:
            seen.update(r.get("captures") or [r.get("capture")])
            if len(seen) > 1:
                return True
    return False


def _cells(r: Mapping[str, Any], several: bool) -> tuple[Any, ...]:
    return (
        (r.get("first_seen") or "")[:19].replace("T", " "),
        r.get("proto"),
        f"{_endpoint(r['src_ip'], r['src_port'])} → {_endpoint(r['dst_ip'], r['dst_port'])}",
        r.get("state"),
        r.get("app"),
        (r.get("packets_fwd") or 0) + (r.get("packets_rev") or 0),
        (r.get("bytes_fwd") or 0) + (r.get("bytes_rev") or 0),
        *([capture_text(r)] if several else []),
        frames_text(r),
        r.get("community_id"),
        _detail(r),
    )
