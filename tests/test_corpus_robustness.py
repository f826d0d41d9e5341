"""Every capture of ../shared/corpus read to its end or refused with a clean CaptureError.

The tcpdump files include crash reproducers and deliberately malformed captures; the zeek
files are real traffic whose record counts, byte totals and time spans must agree with
capinfos. A mutation pass (cut and scribbled-over copies) checks damaged files the same
way. Each read runs under a deadline: SIGALRM for a loop in Python, and faulthandler's
watchdog, which dumps the stacks and ends the run, for a loop inside the C scanner.
"""

from __future__ import annotations

import faulthandler
import gzip
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from types import FrameType

import numpy as np
import pytest

from auditor.capture import PACKET_SCHEMA, CaptureInfo, read_packets
from auditor.errors import CaptureError

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
FILES = sorted(CORPUS.glob("*/*.pcap*")) if CORPUS.exists() else []
ZEEK = [p for p in FILES if p.parent.name == "zeek"]
SECONDS = 20  # per file; the largest corpus file reads in well under a second

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus not present"),
]


@contextmanager
def deadline(seconds: int = SECONDS) -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still reading after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(seconds * 3, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def read_all(path: Path) -> CaptureInfo | CaptureError:
    """Read a capture to its end, checking every batch; the error if it is refused."""
    with deadline():
        try:
            reader = read_packets(path, batch_size=4096)
        except CaptureError as exc:
            assert exc.path == str(path) and "\n" not in str(exc)
            return exc
        rows = 0
        for batch in reader:
            assert batch.schema == PACKET_SCHEMA
            assert 0 < batch.num_rows <= 4096
            batch.validate(full=True)
            frames = batch.column("frame").to_numpy()
            assert (frames == np.arange(rows + 1, rows + 1 + batch.num_rows)).all()
            rows += batch.num_rows
    info = reader.info
    assert info.packets == rows
    assert sum(info.decode_errors.values()) <= rows
    assert info.truncated == (info.truncated_at is not None)
    assert info.warnings or not info.truncated
    return info


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_reads_to_the_end_or_fails_cleanly(path: Path) -> None:
    read_all(path)


def capinfos(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["capinfos", "-c", "-d", "-a", "-e", "-S", "-M", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("capinfos") is None, reason="capinfos (wireshark) not installed")
@pytest.mark.parametrize("path", ZEEK, ids=[p.name for p in ZEEK])
def test_zeek_counts_agree_with_capinfos(path: Path) -> None:
    info = read_all(path)
    assert isinstance(info, CaptureInfo) and not info.truncated
    ref = capinfos(path)
    assert info.packets == int(ref["Number of packets"])
    assert f"{info.bytes} bytes" == ref["Data size"]
    if info.packets:
        for ours, theirs in (
            (info.first_seen, "First packet time"),
            (info.last_seen, "Last packet time"),
        ):
            assert ours == int(Decimal(ref[theirs]) * 10**9)


def mutants(data: bytes, rng: np.random.Generator) -> Iterator[tuple[str, bytes]]:
    """Cut and scribbled-over copies of a capture."""
    n = len(data)
    for cut in sorted(set(rng.integers(1, n, 4).tolist())):
        yield f"cut{cut}", data[:cut]
    for k in range(4):
        buf = bytearray(data)
        # scribble over a few spots, mostly early where the headers are
        for pos in rng.integers(0, min(n, 4096 if k < 2 else n), 6).tolist():
            buf[pos : pos + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        yield f"scribble{k}", bytes(buf[:n])


MUTATED = [p for p in FILES if p.stat().st_size < 200_000][::9]


@pytest.mark.parametrize("path", MUTATED, ids=[f"{p.parent.name}/{p.name}" for p in MUTATED])
def test_damaged_copies(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    rng = np.random.default_rng(len(data))
    for name, blob in mutants(data, rng):
        for gz in (False, True):
            copy = tmp_path / f"{name}{'.gz' if gz else ''}"
            copy.write_bytes(gzip.compress(blob, 1) if gz else blob)
            read_all(copy)


def tshark_frames(path: Path) -> list[tuple[int, int, int]] | None:
    """(ts ns, wire length, captured length) per frame by tshark; None if tshark failed."""
    proc = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch",
         "-e", "frame.len", "-e", "frame.cap_len"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return None
    frames = []
    for line in proc.stdout.splitlines():
        ts, wire, cap = line.split("\t")
        frames.append((int(Decimal(ts) * 10**9), int(wire), int(cap)))
    return frames


def _timestamp_files() -> list[Path]:
    """pcapng files (interfaces, tsresol, sections) and nanosecond pcaps of the corpus."""
    ns = (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    return [p for p in FILES if p.suffix == ".pcapng" or p.read_bytes()[:4] in ns]


TIMESTAMPED = _timestamp_files()
#: files where we differ from tshark on purpose
TSHARK_DIFFERS = {
    "timestamp_invalid_nano.pcap": "fractions >= 1e9 ns: tshark prints the digits, we carry",
}


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (wireshark) not installed")
@pytest.mark.parametrize(
    "path", TIMESTAMPED, ids=[f"{p.parent.name}/{p.name}" for p in TIMESTAMPED]
)
def test_timestamps_and_lengths_agree_with_tshark(path: Path) -> None:
    if path.name in TSHARK_DIFFERS:
        pytest.skip(TSHARK_DIFFERS[path.name])
    ref = tshark_frames(path)
    if ref is None:
        pytest.skip("tshark cannot read it either")
    with deadline():
        try:
            table = read_packets(path).to_table()
        except CaptureError:
            pytest.fail("tshark reads it, we refuse it")
    ours = list(
        zip(
            table.column("ts").to_pylist(),
            table.column("wire_len").to_pylist(),
            table.column("cap_len").to_pylist(),
            strict=True,
        )
    )
    if path.parent.name == "zeek":
        assert len(ours) == len(ref)
    n = min(len(ours), len(ref))  # tshark may stop earlier or later on a damaged file
    assert ours[:n] == ref[:n]
