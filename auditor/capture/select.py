"""Packet selection: the filters of every command that reads captures.

``--since``/``--until`` (capture time), ``--host ADDR|CIDR`` (repeatable), ``--port N``
(repeatable) and ``--filter EXPR`` (a capture filter exactly as tcpdump takes it) narrow the
packets before they reach the flow table; all given filters must hold (a packet matches
``--host`` when its source or destination is in any of the networks given, ``--port`` when
either TCP/UDP/SCTP port is one of those given).

Why it is built this way: time, host and port are columns of the packet batch, so they are
a few numpy comparisons per batch (addresses are compared as two big-endian 64-bit halves
under the network's mask). A capture filter needs the packet's bytes, which the batch does
not carry, and libpcap's semantics, which only libpcap has: the expression is compiled by
libpcap (through the pcapy-ng binding: no parser of ours) and run by libpcap's own BPF
interpreter on each record, which libpcap reads from the same file in step with the fast
reader, a batch at a time; the two readings are checked against each other (captured
length of every record) so a disagreement stops the run instead of mis-filtering. That
costs about 1 µs a packet on top of the read; the other filters cost next to nothing.

A packet left out is marked with the status ``filtered`` in its batch, so the flow table
skips it like a packet it cannot use; the capture's own counts (packets, bytes, decode
errors) still describe the whole file, and the capture record says how many packets were
selected.

Relative times (``+30s``, ``+5m``, ``+1h30m``, ``+90``) count from the first packet of the
first capture read, as Wireshark's "seconds since beginning of capture" does; absolute ones
are ISO 8601 (``2025-11-22T00:01:00Z``; without a zone, UTC).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.capture.inputs import (
    Decompressed,
    DecompressError,
    compression_of,
    display_name,
    is_stdin,
)
from auditor.capture.schema import STATUS_NAMES
from auditor.errors import AuditorError, CaptureError, ExitCode

#: status given to the rows a filter leaves out (after the reader's own reasons)
FILTERED = len(STATUS_NAMES)
_PORTED = (6, 17, 132)  # TCP, UDP, SCTP: the protocols whose ports --port means
_REL = re.compile(r"^\+(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")
_META = struct.Struct("=IIII")


class FilterError(AuditorError):
    """A filter option that does not parse (time, address, capture filter)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class TimeBound:
    """An absolute time (ns since the epoch) or an offset from the first packet (ns)."""

    ns: int
    relative: bool

    def resolve(self, origin: int) -> int:
        return origin + self.ns if self.relative else self.ns


def parse_time(text: str, option: str) -> TimeBound:
    """``+30s``/``+5m``/``+1h30m``/``+90`` or ISO 8601; FilterError naming the option."""
    t = text.strip()
    if t.startswith("+"):
        m = _REL.match(t)
        if not m or t == "+":
            raise FilterError(option, f"{text!r}: not a time (e.g. +30s, +5m, +1h30m)")
        h, mi, s = (float(x) if x else 0.0 for x in m.groups())
        return TimeBound(round((h * 3600 + mi * 60 + s) * 1e9), True)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FilterError(
            option, f"{text!r}: not a time (ISO 8601 such as 2025-11-22T00:01:00Z, or +30s)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = dt - epoch
    return TimeBound(
        (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000, False
    )


def parse_host(text: str) -> tuple[int, int, int, int]:
    """ADDR or CIDR -> (network high, network low, mask high, mask low) of its 128-bit
    IPv4-mapped form; FilterError for anything else."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise FilterError("--host", f"{text!r}: not an address or network (CIDR)") from None
    if isinstance(net, ipaddress.IPv4Network):
        value = (0xFFFF << 32) | int(net.network_address)
        bits = 96 + net.prefixlen
    else:
        value, bits = int(net.network_address), net.prefixlen
    mask = ((1 << 128) - 1) ^ ((1 << (128 - bits)) - 1)
    m64 = (1 << 64) - 1
    return (value >> 64) & m64, value & m64, (mask >> 64) & m64, mask & m64


@dataclass(frozen=True)
class PacketFilter:
    """The filters given on the command line (each None/empty when not given)."""

    since: TimeBound | None = None
    until: TimeBound | None = None
    hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    bpf: str | None = None

    def __post_init__(self) -> None:
        for h in self.hosts:
            parse_host(h)  # fail early, naming the option
        for p in self.ports:
            if not 0 <= p <= 65535:
                raise FilterError("--port", f"{p}: not a port (0-65535)")
        if self.bpf is not None:
            compile_bpf(self.bpf, 1)  # Ethernet: the syntax check; each capture compiles again

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.hosts or self.ports or self.bpf)

    def describe(self) -> str:
        parts = []
        if self.since:
            parts.append(f"since {_show_bound(self.since)}")
        if self.until:
            parts.append(f"until {_show_bound(self.until)}")
        if self.hosts:
            parts.append("host " + " or ".join(self.hosts))
        if self.ports:
            parts.append("port " + " or ".join(map(str, self.ports)))
        if self.bpf:
            parts.append(f"filter {self.bpf!r}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": _show_bound(self.since) if self.since else None,
            "until": _show_bound(self.until) if self.until else None,
            "hosts": list(self.hosts),
            "ports": list(self.ports),
            "filter": self.bpf,
        }

    def selector(self) -> Selector:
        """A selector for one traffic set (it fixes the origin of relative times)."""
        return Selector(self)


def _show_bound(b: TimeBound) -> str:
    if b.relative:
        return f"+{b.ns / 1e9:g}s"
    return datetime.fromtimestamp(b.ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def compile_bpf(expr: str, linktype: int) -> Any:
    """libpcap's compilation of ``expr`` for ``linktype``; FilterError with libpcap's words."""
    import pcapy  # the libpcap binding, loaded only when a capture filter is given

    try:
        return pcapy.compile(linktype, 262144, expr, 1, 0xFFFFFFFF)
    except (pcapy.BPFError, pcapy.PcapError) as exc:
        raise FilterError("--filter", f"{expr!r}: {exc}") from None


@dataclass
class Selector:
    """Applies a PacketFilter to the batches of the captures of one traffic set."""

    spec: PacketFilter
    origin: int | None = None
    selected: int = 0
    _hosts: list[tuple[int, int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._hosts = [parse_host(h) for h in self.spec.hosts]

    def batches(self, path: str, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The batches of one capture, with the rows left out marked ``FILTERED``."""
        self.selected = 0
        bpf = _BpfStream(path, self.spec.bpf) if self.spec.bpf else None
        try:
            for batch in batches:
                keep = self.mask(batch)
                if bpf is not None:
                    keep &= bpf.mask(batch)
                self.selected += int(np.count_nonzero(keep))
                yield _mark(batch, keep)
        finally:
            if bpf is not None:
                bpf.close()

    def mask(self, batch: pa.RecordBatch) -> np.ndarray:
        """Rows that pass the time, host and port filters."""
        from auditor.flows import fixed16, values

        n = batch.num_rows
        keep = np.ones(n, dtype=bool)
        spec = self.spec
        if spec.since or spec.until:
            ts = values(batch.column("ts"))
            if self.origin is None and n:
                self.origin = int(ts[0])
            origin = self.origin or 0
            if spec.since:
                keep &= ts >= spec.since.resolve(origin)
            if spec.until:
                keep &= ts <= spec.until.resolve(origin)
        if self._hosts:
            hit = np.zeros(n, dtype=bool)
            for name in ("src_ip", "dst_ip"):
                halves = np.ascontiguousarray(fixed16(batch.column(name))).view(">u8")
                hi, lo = halves[:, 0], halves[:, 1]
                for nh, nl, mh, ml in self._hosts:
                    hit |= ((hi & np.uint64(mh)) == nh) & ((lo & np.uint64(ml)) == nl)
            keep &= hit
        if spec.ports:
            proto = values(batch.column("proto"))
            sp, dp = values(batch.column("src_port")), values(batch.column("dst_port"))
            ports = np.array(spec.ports, dtype=sp.dtype)
            keep &= np.isin(proto, _PORTED) & (np.isin(sp, ports) | np.isin(dp, ports))
        return keep


def _mark(batch: pa.RecordBatch, keep: np.ndarray) -> pa.RecordBatch:
    """``batch`` with status FILTERED on the rows not kept (the others unchanged)."""
    if keep.all():
        return batch
    from auditor.flows import values

    i = batch.schema.get_field_index("status")
    status = np.where(keep, values(batch.column(i)), np.uint8(FILTERED)).astype(np.uint8)
    return batch.set_column(i, batch.schema.field(i), pa.array(status, pa.uint8()))


class _BpfStream:
    """libpcap reading the same capture in step with the fast reader: the capture filter's
    verdict for each of its records."""

    def __init__(self, path: str, expr: str) -> None:
        import pcapy

        self.path = path
        self.frame = 0
        self._tmp: str | None = None
        if is_stdin(path):
            raise CaptureError(
                display_name(path), "--filter reads a capture twice: give a file, not a pipe"
            )
        plain = path
        if compression_of_file(path):  # libpcap reads no gzip or zstd: a temporary copy
            plain = self._tmp = decompressed_to_temp(path)
        try:
            self.handle = pcapy.open_offline(plain)
        except pcapy.PcapError as exc:
            self.close()
            raise CaptureError(path, f"libpcap cannot read it for --filter: {exc}") from None
        self.plain = plain
        try:
            self.prog = compile_bpf(expr, self.handle.datalink())
        except FilterError as exc:  # the expression is fine; this link type is not
            self.close()
            raise CaptureError(path, f"--filter cannot be applied to its link type: "
                                     f"{exc.message.split(': ', 1)[-1]}") from None  # fmt: skip
        self.pending = b""
        self.meta: list[tuple[int, int, int, int]] = []
        self.at = 0
        self.delivered = 0  # records handed over by libpcap so far
        self.clip: int | None = None  # the length libpcap clips longer records to
        self.ended = False

    def _more(self) -> bool:
        import pcapy

        if self.ended:
            return False
        try:
            pkts, meta = self.handle.next_batch(65536)
        except pcapy.PcapError as exc:
            # a batch that hits a damaged or cut record loses the records before it: read
            # them again one by one, up to the damage (where the fast reader stops too)
            pkts, meta = self._up_to_damage(exc)
            self.ended = True
        if not meta:
            return False
        self.pending, self.meta, self.at = pkts, list(_META.iter_unpack(meta)), 0
        self.delivered += len(self.meta)
        return True

    def _up_to_damage(self, first: Exception) -> tuple[bytes, bytes]:
        import pcapy

        handle = pcapy.open_offline(self.plain)
        skip = self.delivered
        while skip:
            _, meta = handle.next_batch(min(skip, 65536))
            skip -= len(meta) // 16
        data, meta = bytearray(), bytearray()
        while True:
            try:
                header, pkt = handle.next()
            except pcapy.PcapError:
                break
            if header is None:
                break
            sec, usec = header.getts()
            meta += _META.pack(sec, usec, len(data), len(pkt))
            data += pkt
        if not meta and "truncated" not in str(first):
            raise CaptureError(self.path, f"libpcap stopped reading it for --filter: {first}")
        return bytes(data), bytes(meta)

    def mask(self, batch: pa.RecordBatch) -> np.ndarray:
        from auditor.flows import values

        n = batch.num_rows
        cap = values(batch.column("cap_len"))
        status = values(batch.column("status"))
        out = np.zeros(n, dtype=bool)
        verdict = self.prog.filter
        bad = STATUS_NAMES.index("bad_record")
        for i in range(n):
            if status[i] == bad:  # a record libpcap may read differently: never selected
                continue
            if self.at == len(self.meta) and not self._more():
                raise CaptureError(
                    self.path,
                    f"libpcap ends at frame {self.frame} where pcap-audit reads on: "
                    "--filter cannot be applied",
                )
            _, _, off, caplen = self.meta[self.at]
            self.at += 1
            self.frame += 1
            # libpcap clips a record longer than the file's snapshot length (always to that
            # length); any other difference means the readings are not on the same record
            if caplen != cap[i] and (caplen > cap[i] or self.clip not in (None, caplen)):
                raise CaptureError(
                    self.path,
                    f"frame {self.frame}: libpcap reads {caplen} bytes, pcap-audit {cap[i]}: "
                    "--filter cannot be applied",
                )
            if caplen < cap[i]:
                self.clip = caplen
            out[i] = bool(verdict(self.pending[off : off + caplen]))
        return out

    def close(self) -> None:
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None


def compression_of_file(path: str) -> str:
    """``"gzip"``, ``"zstd"`` or ``""`` for the capture file at ``path``."""
    with open(path, "rb") as fh:
        return compression_of(fh.read(4))


def decompressed_to_temp(path: str) -> str:
    """A gzip'd or zstd'd capture decompressed to a temporary file, as far as the stream is
    good (libpcap reads neither)."""
    fd, tmp = tempfile.mkstemp(suffix=".pcap", prefix="pcap-audit-")
    with os.fdopen(fd, "wb") as out, open(path, "rb", buffering=0) as raw:
        src = Decompressed(compression_of_file(path), raw)
        try:
            while chunk := src.read1(1 << 20):
                out.write(chunk)
        except (DecompressError, OSError):
            pass  # the good part is written; the fast reader says the capture is cut
        finally:
            src.close()
    return tmp
