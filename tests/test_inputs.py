"""Nightly input, as users give it: rotated captures found by content, standard input,
duplicates, files cut or still being written, bad records, link types not decoded, the
exit-code bits, coverage across unrelated captures, and --each (issue 9)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dpkt
import pytest
import zstandard
from click.testing import CliRunner, Result

from auditor.capture import read_packets
from auditor.capture.inputs import MAX_REPLAY
from auditor.cli.main import cli
from auditor.errors import ExitCode, combine
from auditor.sources import expand, looks_like_capture_name
from auditor.sources.record import CaptureRecord
from auditor.traffic import DECODE_ERROR_SHARE, Traffic, read_traffic

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FINDINGS = SAMPLES / "applayering" / "findings.pcap"  # 2,093 packets, 60 s, high findings
CLEAN = SAMPLES / "applayering" / "clean.pcap"
INVENTORY = SAMPLES / "applayering" / "findings.inventory.yaml"
CLEAN_INVENTORY = SAMPLES / "applayering" / "clean.inventory.yaml"
CORPUS = ROOT.parent / "shared" / "corpus"
PCAP_AUDIT = Path(sys.executable).parent / "pcap-audit"


def invoke(args: Sequence[object], input: bytes | None = None) -> Result:
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res


def audit_json(args: Sequence[object], input: bytes | None = None) -> tuple[Result, dict[str, Any]]:
    res = invoke([*args, "-r", "applayering", "--format", "json"], input)
    return res, json.loads(res.stdout)


def records(path: Path) -> tuple[bytes, list[bytes]]:
    """A classic pcap's file header and its records (header and data), as bytes."""
    data = path.read_bytes()
    out, pos = [], 24
    while pos < len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos : pos + 16 + caplen])
        pos += 16 + caplen
    return data[:24], out


PACKETS = 2093  #: records in samples/applayering/findings.pcap (FINDINGS)

#: where a flow's packets are (file and frame numbers): differs between a capture and its
#: copies, rotations and pipes, whose flows are otherwise the same
PLACES = ("capture", "captures", "first_frame", "last_frame")


def unplaced(flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in f.items() if k not in PLACES} for f in flows]


def unframed(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings without ``evidence.frames`` (which names the file: ``-`` or its path)."""
    return [
        {**f, "evidence": {k: v for k, v in f["evidence"].items() if k != "frames"}}
        for f in findings
    ]


def flows_of(*paths: object) -> list[dict[str, Any]]:
    """The flows of ``paths`` without their places (:data:`PLACES`)."""
    res = invoke(["flows", *paths, "--format", "json"])
    return unplaced(json.loads(res.stdout)["flows"])


def old(path: Path) -> Path:
    """Set the file's mtime to long ago: closed, not being written."""
    os.utime(path, (1e9, 1e9))
    return path


def cut(tmp_path: Path, name: str = "cut.pcap", drop: int = 30) -> Path:
    """The clean sample cut inside its last record."""
    data = CLEAN.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) - drop])
    return path


def cut_message() -> str:
    """What the reader says of cut(): where the last record starts, what is left of it."""
    _, recs = records(CLEAN)
    at = 24 + sum(len(r) for r in recs[:-1])
    return f"file ends inside a record at byte {at} ({len(recs[-1]) - 30} bytes left)"


# --- rotation: captures found by content ---------------------------------------------


def _rotate(src: Path, tmp_path: Path, names: Sequence[str]) -> Path:
    """Split ``src`` into len(names) files as tcpdump -C does (each with the file header)."""
    header, recs = records(src)
    night = tmp_path / "night"
    night.mkdir()
    size = len(recs) // len(names) + 1
    for i, name in enumerate(names):
        (night / name).write_bytes(header + b"".join(recs[i * size : (i + 1) * size]))
    return night


ROTATED = [SAMPLES / "applayering" / "findings.pcap"]
if (CORPUS / "zeek" / "http__bro.org.pcap").exists():
    ROTATED.append(CORPUS / "zeek" / "http__bro.org.pcap")


@pytest.mark.parametrize("src", ROTATED, ids=lambda p: p.name)
def test_tcpdump_rotation_is_read_whole(tmp_path: Path, src: Path) -> None:
    night = _rotate(src, tmp_path, ["span.pcap", "span.pcap1", "span.pcap2"])
    res = invoke(["flows", night, "--format", "json"])
    assert res.exit_code == ExitCode.OK and res.stderr == ""
    doc = json.loads(res.stdout)
    assert [Path(c["path"]).name for c in doc["captures"]] == [
        "span.pcap",
        "span.pcap1",
        "span.pcap2",
    ]
    assert sum(c["packets"] for c in doc["captures"]) == len(records(src)[1])
    assert unplaced(doc["flows"]) == flows_of(src)  # a flow across files is one flow
    names = ["span.pcap", "span.pcap1", "span.pcap2"]
    for f in doc["flows"]:  # and names each file that holds its packets, in reading order
        held = [Path(c).name for c in f["captures"]]
        assert held[0] == Path(f["capture"]).name
        assert held == names[names.index(held[0]) : names.index(held[0]) + len(held)]


def test_rotation_names_gzip_and_zstd_are_read_by_content(tmp_path: Path) -> None:
    header, recs = records(FINDINGS)
    night = tmp_path / "night"
    night.mkdir()
    parts = [header + b"".join(recs[i::4]) for i in range(4)]
    (night / "span.pcap.0").write_bytes(parts[0])
    (night / "sensor-2026-12-02_0100").write_bytes(parts[1])  # tcpdump -G, no suffix
    (night / "span.dmp.gz").write_bytes(gzip.compress(parts[2]))
    (night / "span.3.zst").write_bytes(zstandard.ZstdCompressor().compress(parts[3]))
    res, doc = audit_json([night, "-i", INVENTORY])
    assert res.stderr == "" and res.exit_code == ExitCode.FINDINGS
    assert doc["summary"]["packets"] == len(recs)
    assert {c["compression"] for c in doc["captures"]} == {None, "gzip", "zstd"}


def test_a_file_that_is_not_a_capture_is_skipped_and_said(tmp_path: Path) -> None:
    night = _rotate(CLEAN, tmp_path, ["span.pcap", "span.pcap1"])
    (night / "span.pcap.sha256").write_text("0123abcd  span.pcap\n")
    (night / "notes.gz").write_bytes(gzip.compress(b"operator notes\n"))
    res, doc = audit_json([night, "-i", CLEAN_INVENTORY])
    assert res.exit_code == ExitCode.OK  # nothing that is traffic was lost
    assert res.stderr.splitlines() == [
        f"pcap-audit: {night / 'notes.gz'}: skipped, gzip-compressed, not a capture inside",
        f"pcap-audit: {night / 'span.pcap.sha256'}: skipped, not a capture (starts with 30 31 32 33)",
    ]
    assert doc["summary"]["skipped_files"] == 2 and len(doc["captures"]) == 2


def test_a_file_named_as_a_capture_that_is_not_one_is_a_capture_problem(tmp_path: Path) -> None:
    night = _rotate(CLEAN, tmp_path, ["span.pcap"])
    (night / "span.pcap1").write_bytes(b"")  # the file tcpdump just opened
    res, doc = audit_json([night, "-i", CLEAN_INVENTORY])
    assert res.exit_code == ExitCode.CAPTURE
    assert res.stderr == f"pcap-audit: {night / 'span.pcap1'}: empty file (0 bytes)\n"
    assert doc["captures"][1]["complete"] is False


@pytest.mark.parametrize(
    ("name", "says"),
    [("span.pcap", True), ("span.pcap12", True), ("span.pcapng.3.gz", True),
     ("x.dmp.zst", True), ("span.pcap.sha256", False), ("notes.txt", False)],
)  # fmt: skip
def test_capture_names(name: str, says: bool) -> None:
    assert looks_like_capture_name(name) is says


# --- standard input ----------------------------------------------------------------------


def _compressed(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


@pytest.mark.parametrize("how", ["plain", "gzip", "zstd"])
@pytest.mark.parametrize("arg", ["-", "/dev/stdin"])
def test_stdin_through_clirunner(how: str, arg: str) -> None:
    res, doc = audit_json([arg, "-i", INVENTORY], input=_compressed(FINDINGS.read_bytes(), how))
    _, by_file = audit_json([FINDINGS, "-i", INVENTORY])
    assert res.exit_code == ExitCode.FINDINGS and res.stderr == ""
    assert doc["captures"][0]["path"] == arg and doc["captures"][0]["packets"] == PACKETS
    assert unframed(doc["findings"]) == unframed(by_file["findings"])
    frames = [x for f in doc["findings"] for x in f["evidence"].get("frames", [])]
    assert frames and all(x.startswith(f"{arg} frame") for x in frames)


def test_stdin_pcapng() -> None:
    pcapng = CORPUS / "zeek" / "http__cooper-grill-dvwa.pcapng"
    if not pcapng.exists():
        pytest.skip("../shared/corpus not present")
    res = invoke(["flows", "-", "--format", "json"], input=pcapng.read_bytes())
    assert res.exit_code == ExitCode.OK and res.stderr == ""
    assert unplaced(json.loads(res.stdout)["flows"]) == flows_of(pcapng)


@pytest.mark.parametrize("how", ["plain", "gzip", "zstd"])
@pytest.mark.parametrize("arg", ["-", "/dev/stdin"])
def test_stdin_through_a_real_pipe(how: str, arg: str) -> None:
    """`tcpdump -w - | pcap-audit -`: a pipe, read in chunks, never rewound."""
    data = _compressed(FINDINGS.read_bytes(), how)
    proc = subprocess.run(
        [str(PCAP_AUDIT), "flows", arg, "--format", "json"],
        input=data,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert proc.stderr == b""
    assert unplaced(json.loads(proc.stdout)["flows"]) == flows_of(FINDINGS)


def test_stdin_redirected_from_a_file(tmp_path: Path) -> None:
    with FINDINGS.open("rb") as fh:
        proc = subprocess.run(
            [str(PCAP_AUDIT), "flows", "-", "--format", "json"],
            stdin=fh,
            capture_output=True,
            timeout=120,
        )
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert unplaced(json.loads(proc.stdout)["flows"]) == flows_of(FINDINGS)


def test_stdin_larger_than_what_is_kept_for_identification() -> None:
    """A stream many times larger than the replay buffer is read whole, in chunks."""
    header, recs = records(FINDINGS)
    body = b"".join(recs)
    copies = MAX_REPLAY // len(body) * 3 + 1
    res = invoke(["flows", "-", "--format", "csv"], input=header + body * copies)
    assert res.exit_code == ExitCode.OK and res.stderr == ""


def test_empty_stdin_and_stdin_given_twice() -> None:
    res = invoke(["flows", "-"], input=b"")
    assert res.exit_code == ExitCode.CAPTURE
    assert res.stderr == "pcap-audit: standard input: nothing to read (empty input)\n"
    res = invoke(["flows", "-", "-", "--format", "json"], input=FINDINGS.read_bytes())
    assert res.exit_code == ExitCode.OK
    assert (
        res.stderr
        == "pcap-audit: standard input: given twice (first as standard input): read once\n"
    )


# --- duplicates ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["twice", "hard link", "copy"])
def test_the_same_content_is_read_once(tmp_path: Path, how: str) -> None:
    first = tmp_path / "a.pcap"
    shutil.copy(FINDINGS, first)
    if how == "twice":
        second = first
        said = f"given twice (first as {first})"
    elif how == "hard link":
        second = tmp_path / "b.pcap"
        os.link(first, second)
        said = f"same content as {first} (a link)"
    else:
        second = tmp_path / "b.pcap"
        shutil.copy(first, second)
        said = f"same content as {first} (a copy)"
    res, doc = audit_json([first, second, "-i", INVENTORY])
    _, once = audit_json([first, "-i", INVENTORY])
    assert res.exit_code == ExitCode.FINDINGS  # nothing lost: no CAPTURE bit
    assert res.stderr == f"pcap-audit: {second}: {said}: read once\n"
    assert doc["summary"]["packets"] == PACKETS
    assert doc["findings"] == once["findings"]  # bytes not doubled
    assert doc["captures"][1]["duplicate_of"] == str(first)


def test_same_size_different_content_is_not_a_duplicate(tmp_path: Path) -> None:
    """Two captures of equal size that differ only in the middle are both read."""
    data = bytearray(FINDINGS.read_bytes())
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    a.write_bytes(bytes(data))
    _, recs = records(FINDINGS)
    middle = 24 + sum(len(r) for r in recs[:1000]) + 4  # a timestamp's microseconds
    data[middle] ^= 0x01
    b.write_bytes(bytes(data))
    traffic = read_traffic([a, b])
    assert traffic.notes == [] and traffic.packets == 2 * PACKETS


# --- every capture problem is said ---------------------------------------------------------


def test_a_capture_still_being_written(tmp_path: Path) -> None:
    path = cut(tmp_path)  # written just now
    res, doc = audit_json([path, "-i", CLEAN_INVENTORY])
    assert res.exit_code == ExitCode.CAPTURE
    line = res.stderr.strip()
    assert line.startswith(f"pcap-audit: {path}: still being written (modified ")
    assert line.endswith(f"{cut_message()}; audit it again once it is closed")
    assert doc["captures"][0]["warnings"] == [line.split(": ", 2)[2]]


def test_a_capture_cut_short_long_ago(tmp_path: Path) -> None:
    path = old(cut(tmp_path))
    res, doc = audit_json([path, "-i", CLEAN_INVENTORY])
    assert res.exit_code == ExitCode.CAPTURE
    assert res.stderr == f"pcap-audit: {path}: {cut_message()}\n"
    assert doc["captures"][0]["truncated"] and doc["captures"][0]["complete"] is False


def test_an_absurd_record_length_mid_file(tmp_path: Path) -> None:
    """The issue's case: the read stopped after 11 of 2,022 packets, exit 0, nothing said."""
    header, recs = records(FINDINGS)
    bad = bytearray(recs[11])
    bad[8:12] = struct.pack("<I", 0x7FFFFFF0)
    path = tmp_path / "bad.pcap"
    path.write_bytes(header + b"".join(recs[:11]) + bytes(bad) + b"".join(recs[12:]))
    at = 24 + sum(len(r) for r in recs[:11])
    rest = path.stat().st_size - at
    expected = (
        f"stopped at byte {at}: bad record header, captured length 2147483632 is over the "
        f"262144-byte limit; {rest:,} bytes not read"
    )
    res = invoke(
        [path, "-r", "applayering", "-i", INVENTORY, "--format", "csv", "--fail-on", "never"]
    )
    assert res.exit_code == ExitCode.CAPTURE
    assert res.stderr == f"pcap-audit: {path}: {expected}\n"
    rows = list(csv.DictReader(io.StringIO(res.stdout, newline="")))
    assert [r["message"] for r in rows if r["kind"] == "capture_warning"] == [f"{path}: {expected}"]


def test_fddi_is_not_supported_and_said() -> None:
    llc = CORPUS / "zeek" / "llc.pcap"
    if not llc.exists():
        pytest.skip("../shared/corpus not present")
    res, doc = audit_json([llc])
    assert res.exit_code == ExitCode.CAPTURE
    assert (
        res.stderr
        == f"pcap-audit: {llc}: link type fddi (10) is not supported: 1,333 packets skipped\n"
    )
    assert (
        doc["captures"][0]["warnings"][0]
        == "link type fddi (10) is not supported: 1,333 packets skipped"
    )
    table = invoke([llc, "-r", "applayering"])
    assert "1 capture (1 incomplete)" in table.stdout
    assert f"! {llc}: link type fddi (10) is not supported" in table.stdout


def _ip_packets(n_good: int, n_cut: int) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out)
    for i in range(n_good + n_cut):
        tcp = dpkt.tcp.TCP(sport=40000 + i, dport=443, flags=dpkt.tcp.TH_SYN)
        ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=6, data=tcp)
        frame = bytes(dpkt.ethernet.Ethernet(data=ip, type=dpkt.ethernet.ETH_TYPE_IP))
        writer.writepkt(frame[:24] if i >= n_good else frame, ts=1_700_000_000 + i)
    return out.getvalue()


def test_decode_errors_above_the_share_are_said(tmp_path: Path) -> None:
    few = tmp_path / "few.pcap"
    few.write_bytes(_ip_packets(200, 1))  # 0.5 %: below the share, counted only
    many = tmp_path / "many.pcap"
    many.write_bytes(_ip_packets(20, 5))
    assert DECODE_ERROR_SHARE == 0.01
    traffic = read_traffic([few, many])
    assert traffic.notes == [
        f"{many}: 5 of 25 packets (20.0 %) could not be decoded (truncated_ip 5): "
        "their flows may be missing"
    ]
    assert [c.complete for c in traffic.captures] == [True, False]


# --- exit codes: every combination -----------------------------------------------------------


@pytest.mark.parametrize(
    ("findings", "problem", "fail_on", "code"),
    [
        (False, False, "medium", ExitCode.OK),
        (True, False, "medium", ExitCode.FINDINGS),
        (False, True, "medium", ExitCode.CAPTURE),
        (True, True, "medium", ExitCode.FINDINGS | ExitCode.CAPTURE),
        (True, True, "never", ExitCode.CAPTURE),
        (True, False, "never", ExitCode.OK),
    ],
)  # fmt: skip
def test_exit_code_bits(
    tmp_path: Path, findings: bool, problem: bool, fail_on: str, code: int
) -> None:
    """One empty rotated file beside high findings must not hide them (it gave 3)."""
    args: list[object] = [FINDINGS if findings else CLEAN]
    if problem:
        (tmp_path / "span.pcap3").write_bytes(b"")
        args.append(tmp_path / "span.pcap3")
    inv = INVENTORY if findings else CLEAN_INVENTORY
    res = invoke([*args, "-r", "applayering", "-i", inv, "--format", "json", "--fail-on", fail_on])
    assert res.exit_code == code
    assert json.loads(res.stdout)["summary"]["exit_code"] == code
    assert (res.stderr != "") is problem


@pytest.mark.parametrize(
    "args",
    [["--ruleset", "no-such-ruleset"], ["--format", "pdf"], ["--each", "--format", "html"]],
)
def test_exit_code_usage(args: list[str]) -> None:
    res = invoke([FINDINGS, "-r", "applayering", *args])
    assert res.exit_code == ExitCode.USAGE == 2


def test_exit_code_values_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode.__members__.values()] == [0, 1, 2, 4, 8, 16, 130, 143]
    assert combine([ExitCode.FINDINGS, ExitCode.CAPTURE, ExitCode.OK]) == 5
    assert combine([ExitCode.OK, ExitCode.OK]) == ExitCode.OK
    readme = (ROOT / "README.md").read_text()
    for code in (
        "| 0 |",
        "| 1 |",
        "| 2 |",
        "| 4 |",
        "| 5 |",
        "| 8 |",
        "| 16 |",
        "| 130 |",
        "| 143 |",
    ):
        assert code in readme


# --- coverage, not span ------------------------------------------------------------------------


def test_coverage_of_unrelated_captures(tmp_path: Path) -> None:
    """A 6 s trace from 2011 beside today's 60 s capture: missing_flow stays info."""
    header, recs = records(CLEAN)
    t2011 = 1_300_000_000
    old_recs = []
    for i, rec in enumerate(recs[:31]):
        old_recs.append(struct.pack("<II", t2011 + i // 5, 0) + rec[8:])
    trace = tmp_path / "2011.pcap"
    trace.write_bytes(header + b"".join(old_recs))
    _, doc = audit_json([FINDINGS, trace, "-i", INVENTORY])
    summary = doc["summary"]
    assert summary["duration_s"] > 5000 * 86400  # the span: 15 years
    assert 66 <= summary["coverage_s"] < 67  # what is covered: 60 s + 6 s
    missing = [f for f in doc["findings"] if f["kind"] == "missing_flow"]
    assert missing and all(f["severity"] == "info" for f in missing)
    assert all("days" not in f["message"] for f in missing)
    # the same time (the finding rounds to milliseconds, the summary to microseconds)
    assert all(
        abs(f["evidence"]["capture_duration_s"] - summary["coverage_s"]) < 0.001 for f in missing
    )
    table = invoke([FINDINGS, trace, "-r", "applayering", "-i", INVENTORY])
    assert "coverage 1m 06s (span " in table.stdout


def test_coverage_unions_overlaps() -> None:
    def cap(a: str, b: str) -> CaptureRecord:
        return CaptureRecord("x.pcap", first_seen=f"2026-01-01T{a}Z", last_seen=f"2026-01-01T{b}Z")

    t = Traffic(captures=[cap("00:00:00", "00:10:00"), cap("00:05:00", "00:20:00"),
                          cap("01:00:00", "01:00:30"), CaptureRecord("empty.pcap")])  # fmt: skip
    assert t.coverage_seconds() == 20 * 60 + 30
    assert t.span_seconds() == 3630


# --- --each --------------------------------------------------------------------------------------


def test_each_audits_each_capture_as_its_own_set(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    res = invoke(["--each", FINDINGS, CLEAN, empty, "-r", "applayering", "--format", "json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == doc["exit_code"] == ExitCode.FINDINGS | ExitCode.CAPTURE
    results = doc["results"]
    assert [r["captures"][0]["path"] for r in results] == [str(FINDINGS), str(CLEAN), str(empty)]
    assert [r["summary"]["exit_code"] for r in results] == [1, 0, 4]
    _, alone = audit_json([FINDINGS])
    assert results[0]["findings"] == alone["findings"]
    table = invoke(["--each", FINDINGS, CLEAN, "-r", "applayering"])
    assert f"=== Set 1 of 2: {FINDINGS} ===" in table.stdout
    assert f"=== Set 2 of 2: {CLEAN} ===" in table.stdout
    assert table.stdout.endswith("2 sets | exit code 1\n")


@pytest.mark.parametrize("fmt", ["sarif", "csv", "markdown"])
def test_each_other_formats(fmt: str) -> None:
    res = invoke(["--each", FINDINGS, CLEAN, "-r", "applayering", "--format", fmt])
    assert res.exit_code == ExitCode.FINDINGS
    if fmt == "sarif":
        assert len(json.loads(res.stdout)["runs"]) == 2
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(res.stdout, newline="")))
        assert {r["set"] for r in rows} == {str(FINDINGS)}  # the clean set has no rows
    else:
        assert "# Set 1 of 2" in res.stdout and "# Set 2 of 2" in res.stdout


def test_expand_keeps_the_argument_of_each_file(tmp_path: Path) -> None:
    night = _rotate(CLEAN, tmp_path, ["a.pcap", "b.pcap"])
    found = expand([FINDINGS, night])
    assert [(Path(f.path).name, f.group) for f in found] == [
        ("findings.pcap", 0), ("a.pcap", 1), ("b.pcap", 1)]  # fmt: skip


def test_read_packets_of_stdin_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(FINDINGS.read_bytes())))
    reader = read_packets("-")
    assert sum(b.num_rows for b in reader) == PACKETS
    with pytest.raises(Exception, match="read only once"):
        list(reader)


# --- progress ------------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_within_one_file() -> None:
    from auditor.cli.progress import ProgressLine, progress_for
    from auditor.traffic import Reading

    now = [100.0]
    line = ProgressLine(_Tty(), clock=lambda: now[0])
    assert (
        line.text(Reading("span.pcap1", 1, 3, 0, 4_000_000_000, 0), 0) == "reading span.pcap1 (2/3)"
    )
    text = line.text(Reading("span.pcap1", 1, 3, 1_000_000_000, 4_000_000_000, 3_000_000), 2.0)
    assert text == "reading span.pcap1 (2/3): 1.0 GB of 4.0 GB, 1.5 M packets/s, ETA 0:06"
    piped = line.text(Reading("standard input", 0, 1, 5_000_000, None, 20_000), 0.5)
    assert piped == "reading standard input: 5.0 MB, 40 k packets/s"
    line(Reading("a.pcap", 0, 1, 0, 10, 0))
    now[0] += 0.01
    line(Reading("a.pcap", 0, 1, 5, 10, 1))  # too soon: not drawn
    assert line.stream.getvalue().count("\r") == 2
    line.clear()
    assert line.stream.getvalue().endswith("\r" + " " * len("reading a.pcap") + "\r")
    assert progress_for(_Tty(), quiet=True) is None
    assert progress_for(io.StringIO(), quiet=False) is None  # not a terminal
    assert isinstance(progress_for(_Tty(), quiet=False), ProgressLine)


def test_read_traffic_reports_progress_per_batch(tmp_path: Path) -> None:
    from auditor.traffic import Reading

    seen: list[Reading] = []
    read_traffic([FINDINGS, CLEAN], progress=seen.append)
    assert (seen[0].index, seen[0].count) == (0, 2)
    last = [r for r in seen if r.path == str(FINDINGS)][-1]
    assert last.done == last.total == FINDINGS.stat().st_size and last.packets == PACKETS


@pytest.mark.parametrize(
    "command",
    [[], ["flows"], ["roles", "-r", "applayering"], ["query", "SELECT count(*) FROM flows"],
     ["query", "SELECT count(*) FROM findings", "-r", "applayering"]],
)  # fmt: skip
def test_quiet_is_accepted(command: list[str]) -> None:
    """Every command that reads captures (and shows progress on a terminal) takes -q."""
    args = [*command, FINDINGS, "-q"] + ([] if command else ["-r", "applayering"])
    res = invoke(args)
    assert res.exit_code in (ExitCode.OK, ExitCode.FINDINGS) and res.stderr == ""


def test_query_reports_progress_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.cli import query as query_cli

    shown: list[str] = []

    class Line:
        def __call__(self, reading: object) -> None:
            shown.append(type(reading).__name__)

        def clear(self) -> None:
            shown.append("clear")

    monkeypatch.setattr(query_cli, "progress_for", lambda stream, quiet: None if quiet else Line())
    assert invoke(["query", "SELECT 1", FINDINGS]).exit_code == ExitCode.OK
    assert shown[0] == "Reading" and shown[-1] == "clear"
    shown.clear()
    assert invoke(["query", "SELECT 1", FINDINGS, "-q"]).exit_code == ExitCode.OK
    assert shown == []


# --- --dedup: SPAN duplicates ----------------------------------------------------------------


def _with_ip_ids(tmp_path: Path) -> tuple[bytes, list[bytes]]:
    """FINDINGS' IPv4 packets with a distinct identification in each, as real stacks send
    (its IPv6 packets are left out: without an identification --dedup keeps them)."""
    header, recs = records(FINDINGS)
    out = []
    for i, rec in enumerate(recs):
        b = bytearray(rec)
        if b[16 + 12 : 16 + 14] == b"\x86\xdd":  # Ethernet, IPv6
            continue
        assert b[16 + 12 : 16 + 14] == b"\x08\x00"  # Ethernet, IPv4
        b[16 + 14 + 4 : 16 + 14 + 6] = struct.pack("!H", i % 65535 + 1)
        out.append(bytes(b))
    return header, out


def _span_copy(rec: bytes, delay_us: int, vlan: int | None = 10) -> bytes:
    """The same frame again ``delay_us`` later, tagged with ``vlan`` (the egress copy)."""
    ts_s, ts_us, cap, wire = struct.unpack_from("<IIII", rec)
    frame = rec[16:]
    if vlan is not None:
        frame = frame[:12] + struct.pack("!HH", 0x8100, vlan) + frame[12:]
    us = ts_us + delay_us
    return (
        struct.pack("<IIII", ts_s + us // 10**6, us % 10**6, len(frame), wire + len(frame) - cap)
        + frame
    )


def test_dedup_drops_span_duplicates(tmp_path: Path) -> None:
    header, recs = _with_ip_ids(tmp_path)
    original = tmp_path / "one.pcap"
    original.write_bytes(header + b"".join(recs))
    doubled = tmp_path / "span.pcap"
    doubled.write_bytes(header + b"".join(r + _span_copy(r, 5) for r in recs))
    res = invoke(["flows", doubled, "--dedup", "--format", "json"])
    assert res.exit_code == ExitCode.OK and res.stderr == ""
    doc = json.loads(res.stdout)
    assert doc["captures"][0]["packets"] == 2 * len(recs)
    assert doc["captures"][0]["duplicates_dropped"] == len(recs)
    assert unplaced(doc["flows"]) == flows_of(
        original
    )  # packets, bytes and VLAN as without the copies
    without = flows_of(doubled)
    assert sum(f["packets_fwd"] + f["packets_rev"] for f in without) == 2 * len(recs)
    _, audited = audit_json([doubled, "-i", INVENTORY, "--dedup"])
    _, once = audit_json([original, "-i", INVENTORY])
    assert audited["summary"]["duplicates_dropped"] == len(recs)
    assert [f["bytes"] for f in audited["findings"]] == [f["bytes"] for f in once["findings"]]
    assert "duplicates_dropped" not in once["summary"]  # only with --dedup


def test_dedup_keeps_retransmissions_and_what_it_cannot_tell_apart(tmp_path: Path) -> None:
    header, recs = _with_ip_ids(tmp_path)
    later = [_span_copy(r, 300_000, vlan=None) for r in recs[:50]]  # the same bytes 300 ms on
    path = tmp_path / "retrans.pcap"
    path.write_bytes(header + b"".join(recs[:50]) + b"".join(later))
    kept = json.loads(invoke(["flows", path, "--dedup", "--format", "json"]).stdout)
    assert kept["captures"][0]["duplicates_dropped"] == 0
    wide = json.loads(
        invoke(["flows", path, "--dedup", "--dedup-window", "1", "--format", "json"]).stdout
    )
    assert wide["captures"][0]["duplicates_dropped"] == 50
    # pure ACKs without an IPv4 identification (the samples' are 0) cannot be told apart: kept
    header, plain = records(FINDINGS)
    acks = tmp_path / "acks.pcap"
    acks.write_bytes(header + b"".join(r + _span_copy(r, 5) for r in plain))
    doc = json.loads(invoke(["flows", acks, "--dedup", "--format", "json"]).stdout)
    assert 1900 < doc["captures"][0]["duplicates_dropped"] < len(plain)


def test_dedup_across_rotated_files(tmp_path: Path) -> None:
    """A copy in the next file (the rotation fell between the two) is still a duplicate."""
    header, recs = _with_ip_ids(tmp_path)
    night = tmp_path / "night"
    night.mkdir()
    (night / "span.pcap").write_bytes(header + b"".join(recs[:100]))
    (night / "span.pcap1").write_bytes(header + _span_copy(recs[99], 5) + b"".join(recs[100:]))
    doc = json.loads(invoke(["flows", night, "--dedup", "--format", "json"]).stdout)
    assert [c["duplicates_dropped"] for c in doc["captures"]] == [0, 1]


def test_stdin_that_is_a_terminal_is_refused_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    master, slave = os.openpty()
    try:
        with open(slave, "rb", closefd=False) as tty:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(tty))
            traffic = read_traffic(["-"])
        assert traffic.notes == [
            "standard input: is a terminal: pipe a capture into it (tcpdump -w - | pcap-audit -)"
        ]
    finally:
        os.close(master)
        os.close(slave)


def test_html_verdict_says_both_bits(tmp_path: Path) -> None:
    (tmp_path / "span.pcap1").write_bytes(b"")
    res = invoke(
        [
            FINDINGS,
            tmp_path / "span.pcap1",
            "-r",
            "applayering",
            "-i",
            INVENTORY,
            "--format",
            "html",
        ]
    )
    assert res.exit_code == ExitCode.FINDINGS | ExitCode.CAPTURE
    assert "and not every capture was read whole (exit code 5)" in res.stdout


def test_an_unreadable_file_in_a_directory_is_a_capture_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It may well be a capture (tcpdump -G names have no suffix): not skipped as a non-capture."""
    import auditor.sources as sources

    night = _rotate(CLEAN, tmp_path, ["span.pcap"])
    locked = night / "sensor-0100"
    locked.write_bytes(CLEAN.read_bytes())
    real_open = open

    def refuse(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(sources, "open", refuse, raising=False)
    traffic = read_traffic([night])
    assert traffic.notes == [f"{locked}: cannot read: Permission denied"]
    assert not traffic.complete
