"""A flow's packets: found again in its captures, summarised one per line, exported to pcap.

Finding them: the captures are read again with the fast reader, and each packet batch is
matched against the flows wanted, vectorised: same protocol, the same two address/port
endpoints in either direction (ICMP: the two addresses), and a timestamp inside the flow's
``[first_seen, last_seen]`` (which tells apart two connections that reused one 5-tuple);
later IP fragments join with their first fragment. A flow that crosses a file rotation is
found in each file. The frame number is the record's 1-based index in its file, as
Wireshark numbers it.

Exporting: the frames found are copied, byte for byte with their capture headers, by
libpcap (through the pcapy-ng binding, which ``--filter`` also uses) into a new pcap. Each
copied record is checked against the one the fast reader saw (its captured length: libpcap
clips a record longer than the file's snapshot length, always to that length; any other
difference stops the export instead of writing the wrong packets). Timestamps are written
as libpcap reads them (microseconds; it does not mend impossible ones).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.capture import read_packets
from auditor.capture.select import PacketFilter, compression_of_file, decompressed_to_temp
from auditor.errors import AuditorError, CaptureError, ExitCode
from auditor.flows import fixed16, ip_text, values
from auditor.traffic import iso

ICMP = (1, 58)
_FLAG_LETTERS = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x20, "U"), (0x10, "."))


class ExportError(AuditorError):
    """The export could not be written (output file, link types)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class FlowRef:
    """What it takes to find a flow's packets again."""

    flow_id: str
    community_id: str
    proto: str
    proto_num: int
    src: str  # "ip:port"
    dst: str
    src_ip: bytes  # 16 bytes, IPv4-mapped for IPv4
    dst_ip: bytes
    src_port: int
    dst_port: int
    first_ns: int
    last_ns: int
    captures: tuple[str, ...] = ()  # the files holding its packets, first to last
    last_frame: int = 0  # in the last of captures

    def reading_ends(self, path: str) -> float:
        """The frame of ``path`` after which this flow has no packet (inf: it goes on in a
        later file, or the place is unknown)."""
        if self.captures and self.captures[-1] == path and self.last_frame:
            return self.last_frame
        return float("inf")


def flow_refs(flows: pa.Table, wanted: Iterable[str]) -> tuple[list[FlowRef], list[str]]:
    """The flows whose flow id or Community ID is in ``wanted``; and the ids not found."""
    keys = set(wanted)
    fid = flows.column("flow_id").to_pylist()
    cid = flows.column("community_id").to_pylist()
    rows = [i for i, (a, b) in enumerate(zip(fid, cid, strict=True)) if a in keys or b in keys]
    found = {fid[i] for i in rows} | {cid[i] for i in rows}
    cols = ["flow_id", "community_id", "proto", "proto_num", "src_ip", "src_port", "dst_ip",
            "dst_port", "src_ip_bytes", "dst_ip_bytes"]  # fmt: skip
    placed = "captures" in flows.column_names and "last_frame" in flows.column_names
    cols += ["captures", "last_frame"] if placed else []
    first = flows.column("first_seen").cast(pa.int64()).to_pylist()
    last = flows.column("last_seen").cast(pa.int64()).to_pylist()
    refs = []
    for i in rows:
        r = {c: flows.column(c)[i].as_py() for c in cols}
        refs.append(
            FlowRef(
                flow_id=r["flow_id"],
                community_id=r["community_id"],
                proto=r["proto"],
                proto_num=int(r["proto_num"]),
                src=_endpoint(r["src_ip"], r["src_port"]),
                dst=_endpoint(r["dst_ip"], r["dst_port"]),
                src_ip=r["src_ip_bytes"],
                dst_ip=r["dst_ip_bytes"],
                src_port=int(r["src_port"]),
                dst_port=int(r["dst_port"]),
                first_ns=int(first[i]),
                last_ns=int(last[i]),
                captures=tuple(r["captures"]) if placed else (),
                last_frame=int(r["last_frame"]) if placed else 0,
            )
        )
    return refs, sorted(k for k in keys if k not in found)


def _endpoint(ip: str, port: int | None) -> str:
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True)
class PacketLine:
    """One packet of a flow: where it is (capture, frame) and what it is, in one line."""

    capture: str
    frame: int
    ts_ns: int
    flow_id: str
    forward: bool  # sent by the flow's initiator
    src: str
    dst: str
    proto: str
    wire_len: int
    cap_len: int
    tcp_flags: int | None
    payload_len: int

    def flags_text(self) -> str:
        if self.tcp_flags is None:
            return ""
        return "[" + "".join(c for bit, c in _FLAG_LETTERS if self.tcp_flags & bit) + "]"

    def one_line(self) -> str:
        t = (iso(self.ts_ns) or "-").replace("T", " ").rstrip("Z")
        flags = self.flags_text()
        return (
            f"{self.frame:>8}  {t}  {self.src} -> {self.dst}  {self.proto}"
            f"{' ' + flags if flags else ''}  len {self.wire_len}  payload {self.payload_len}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "capture": self.capture,
            "frame": self.frame,
            "time": iso(self.ts_ns),
            "flow_id": self.flow_id,
            "direction": "fwd" if self.forward else "rev",
            "src": self.src,
            "dst": self.dst,
            "proto": self.proto,
            "wire_len": self.wire_len,
            "cap_len": self.cap_len,
            "tcp_flags": self.flags_text() or None,
            "payload_len": self.payload_len,
        }


def _as_u64x2(arr: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 -> (n, 2) uint64, so that an address compares in two operations."""
    return np.ascontiguousarray(arr).view(np.uint64).reshape(-1, 2)


def _addr_eq(col: np.ndarray, ip16: bytes) -> np.ndarray:
    want = np.frombuffer(ip16, dtype=np.uint64)
    return (col[:, 0] == want[0]) & (col[:, 1] == want[1])


def _match(batch: pa.RecordBatch, ref: FlowRef) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``batch`` in the flow ``ref`` (first fragments included), and which of
    them travel forward (from the initiator)."""
    col = batch.column
    status = values(col("status"))
    proto = values(col("proto"))
    ts = values(col("ts"))
    frag = values(col("frag"))
    sel = (status == 0) & (proto == ref.proto_num) & (ts >= ref.first_ns) & (ts <= ref.last_ns)
    sel &= frag != 2
    if not sel.any():
        return np.flatnonzero(sel), np.zeros(0, bool)
    rows = np.flatnonzero(sel)
    src = _as_u64x2(fixed16(col("src_ip"))[rows])
    dst = _as_u64x2(fixed16(col("dst_ip"))[rows])
    fwd = _addr_eq(src, ref.src_ip) & _addr_eq(dst, ref.dst_ip)
    rev = _addr_eq(src, ref.dst_ip) & _addr_eq(dst, ref.src_ip)
    if ref.proto_num not in ICMP:
        sp = values(col("src_port"))[rows]
        dp = values(col("dst_port"))[rows]
        fwd &= (sp == ref.src_port) & (dp == ref.dst_port)
        rev &= (sp == ref.dst_port) & (dp == ref.src_port)
    keep = fwd | rev
    return rows[keep], fwd[keep]


def _later_fragments(
    batch: pa.RecordBatch, firsts: dict[tuple[bytes, bytes, int, int], tuple[FlowRef, bool]]
) -> Iterator[tuple[int, FlowRef, bool]]:
    """Later fragments (frag == 2) whose first fragment belongs to a wanted flow."""
    col = batch.column
    rows = np.flatnonzero((values(col("frag")) == 2) & (values(col("status")) == 0))
    if not len(rows) or not firsts:
        return
    src, dst = fixed16(col("src_ip")), fixed16(col("dst_ip"))
    proto, ip_id = values(col("proto")), values(col("ip_id"))
    for i in rows.tolist():
        key = (src[i].tobytes(), dst[i].tobytes(), int(proto[i]), int(ip_id[i]))
        if key in firsts:
            ref, fwd = firsts[key]
            yield i, ref, fwd


def find_packets(
    captures: Sequence[str], refs: Sequence[FlowRef], select: PacketFilter | None = None
) -> list[PacketLine]:
    """Every packet of the flows ``refs`` in ``captures`` (each file read once), in capture
    order and frame order within a capture; only those ``select`` selects, when given."""
    out: list[PacketLine] = []
    selector = select.selector() if select is not None and select.active else None
    if not refs:
        return out
    lo = min(r.first_ns for r in refs)
    hi = max(r.last_ns for r in refs)
    for path in captures:
        here = [r for r in refs if not r.captures or path in r.captures]
        if not here and selector is None:
            continue  # none of the flows has a packet in this file: not read at all
        stop = max((r.reading_ends(path) for r in here), default=0)
        reader = read_packets(path)
        batches = reader if selector is None else selector.batches(path, reader)
        firsts: dict[tuple[bytes, bytes, int, int], tuple[FlowRef, bool]] = {}
        found: list[PacketLine] = []
        for batch in batches:
            if batch.num_rows and int(values(batch.column("frame"))[0]) > stop:
                break  # past the last packet of the flows in this file
            ts = values(batch.column("ts"))
            if selector is None and (not len(ts) or ts.max() < lo or ts.min() > hi):
                continue
            hits: list[tuple[int, FlowRef, bool]] = []
            for ref in here:
                rows, fwds = _match(batch, ref)
                hits.extend(zip(rows.tolist(), [ref] * len(rows), fwds.tolist(), strict=True))
            frag = values(batch.column("frag"))
            if any(frag[i] == 1 for i, _, _ in hits):
                src, dst = fixed16(batch.column("src_ip")), fixed16(batch.column("dst_ip"))
                ip_id = values(batch.column("ip_id"))
                for i, ref, fwd in hits:
                    if frag[i] == 1:
                        key = (src[i].tobytes(), dst[i].tobytes(), ref.proto_num, int(ip_id[i]))
                        firsts[key] = (ref, fwd)
            hits.extend(_later_fragments(batch, firsts))
            found.extend(_lines(path, batch, hits))
        found.sort(key=lambda p: p.frame)
        out.extend(found)
    return out


def _lines(
    path: str, batch: pa.RecordBatch, hits: list[tuple[int, FlowRef, bool]]
) -> Iterator[PacketLine]:
    if not hits:
        return
    col = batch.column
    frame, ts = values(col("frame")), values(col("ts"))
    wire, cap = values(col("wire_len")), values(col("cap_len"))
    flags, pay = values(col("tcp_flags")), values(col("payload_len"))
    sport, dport = values(col("src_port")), values(col("dst_port"))
    src, dst = fixed16(col("src_ip")), fixed16(col("dst_ip"))
    frag = values(col("frag"))
    for i, ref, fwd in hits:
        icmp = ref.proto_num in ICMP or frag[i] == 2
        yield PacketLine(
            capture=path,
            frame=int(frame[i]),
            ts_ns=int(ts[i]),
            flow_id=ref.flow_id,
            forward=fwd,
            src=_endpoint(ip_text(src[i].tobytes()), None if icmp else int(sport[i])),
            dst=_endpoint(ip_text(dst[i].tobytes()), None if icmp else int(dport[i])),
            proto=ref.proto,
            wire_len=int(wire[i]),
            cap_len=int(cap[i]),
            tcp_flags=int(flags[i]) if ref.proto == "tcp" and frag[i] != 2 else None,
            payload_len=int(pay[i]),
        )


@contextmanager
def _plain_file(path: str) -> Iterator[str]:
    """The capture as a file libpcap can open: gzip'd and zstd'd captures are decompressed
    to a temporary file first (libpcap reads neither)."""
    if not compression_of_file(path):
        yield path
        return
    tmp = decompressed_to_temp(path)
    try:
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def export_pcap(packets: Sequence[PacketLine], output: str) -> int:
    """Write exactly ``packets`` (records of their captures, headers and bytes as captured)
    to a new pcap file at ``output``; returns the number written."""
    import pcapy  # the libpcap binding: imported only by the commands that need it

    by_capture: dict[str, dict[int, PacketLine]] = {}
    for p in packets:
        by_capture.setdefault(p.capture, {})[p.frame] = p
    dumper: Any = None
    linktype: int | None = None
    written = 0
    try:
        for path, wanted in by_capture.items():
            with _plain_file(path) as plain:
                try:
                    handle = pcapy.open_offline(plain)
                except pcapy.PcapError as exc:
                    raise CaptureError(path, f"libpcap cannot read it for export: {exc}") from None
                if linktype is None:
                    linktype = handle.datalink()
                    try:
                        dumper = handle.dump_open(output)
                    except pcapy.PcapError as exc:
                        raise ExportError(output, f"cannot write: {exc}") from None
                elif handle.datalink() != linktype:
                    raise ExportError(
                        output,
                        f"{path} has link type {handle.datalink()}, the first capture "
                        f"{linktype}: a pcap holds one link type; export each capture alone",
                    )
                written += _copy(path, handle, dumper, wanted)
    finally:
        if dumper is not None:
            dumper.close()
    return written


def _copy(path: str, handle: Any, dumper: Any, wanted: dict[int, PacketLine]) -> int:
    """Copy the wanted frames of one capture; each checked against the fast reader's view."""
    last = max(wanted)
    frame = 0
    n = 0
    clip: int | None = None
    import pcapy

    while frame < last:
        try:
            header, data = handle.next()
        except pcapy.PcapError as exc:
            raise CaptureError(
                path, f"libpcap stopped reading it for export at frame {frame + 1}: {exc}"
            ) from None
        if header is None:
            break
        frame += 1
        p = wanted.get(frame)
        if p is None:
            continue
        got = header.getcaplen()
        # libpcap clips a record longer than the snapshot length (always to that length);
        # any other difference means the two readings are not on the same record
        if got != p.cap_len and (got > p.cap_len or clip not in (None, got)):
            raise CaptureError(
                path,
                f"libpcap's frame {frame} ({got} bytes) is not pcap-audit's ({p.cap_len} "
                "bytes): export stopped",
                f"frame {frame}",
            )
        if got < p.cap_len:
            clip = got
        dumper.dump(header, data)
        n += 1
    if n != len(wanted):
        raise CaptureError(path, f"libpcap read only {frame} frames: export incomplete")
    return n
