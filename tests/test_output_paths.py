"""``-o``: checked before any capture is read, never an input, replaced only when complete;
SIGINT and SIGTERM: one line, exit 130 / 143, the last good report left in place.

The signal tests run the real console script in a child process on a capture of 100,000
one-packet flows (written here in a fraction of a second) and signal it once it has
mapped the capture, i.e. in the middle of the work.
"""

from __future__ import annotations

import os
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli.main import cli
from auditor.cli.output import OutputError, output_file
from auditor.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "applayering"
SAMPLE = SAMPLES / "findings.pcap"
INVENTORY = SAMPLES / "findings.inventory.yaml"
SCRIPT = Path(sys.executable).with_name("pcap-audit")

#: each command that writes a file, with the arguments it needs besides captures and -o
COMMANDS = {
    "audit": ["audit", "-r", "applayering"],
    "flows": ["flows"],
    "roles": ["roles", "-r", "applayering"],
}


def _run(args: list[str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, args)
    return res.exit_code, res.stdout, res.stderr


def _line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_missing_directory_is_refused_before_reading(command: str, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "report.out"
    # the capture does not exist either: the output is checked first, so that is not what
    # the one line is about, and the exit code is USAGE, not CAPTURE
    code, out, err = _run([*COMMANDS[command], str(tmp_path / "missing.pcap"), "-o", str(target)])
    assert code == ExitCode.USAGE
    assert out == ""
    assert _line(err) == (
        f"pcap-audit: {target}: cannot write: no such directory '{target.parent}'"
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_output_that_is_an_input_capture_is_refused(command: str, tmp_path: Path) -> None:
    capture = tmp_path / "night.pcap"
    capture.write_bytes(SAMPLE.read_bytes())
    before = capture.read_bytes()
    code, _, err = _run([*COMMANDS[command], str(capture), "-o", str(capture)])
    assert code == ExitCode.USAGE
    assert "is also an input" in _line(err) and str(capture) in err
    assert capture.read_bytes() == before
    # another name for the same file (a hard link), and a capture inside a directory given
    link = tmp_path / "link.pcap"
    os.link(capture, link)
    code, _, err = _run([*COMMANDS[command], str(capture), "-o", str(link)])
    assert code == ExitCode.USAGE and "is also an input" in err
    code, _, err = _run([*COMMANDS[command], str(tmp_path), "-o", str(capture)])
    assert code == ExitCode.USAGE and f"is also an input ({tmp_path})" in err
    assert capture.read_bytes() == before


def test_output_that_is_the_inventory_is_refused(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(INVENTORY.read_text())
    for command in ("audit", "roles"):
        code, _, err = _run(
            [*COMMANDS[command], str(SAMPLE), "-i", str(inventory), "-o", str(inventory)]
        )
        assert code == ExitCode.USAGE, err
        assert "is also an input" in _line(err)
    assert inventory.read_text() == INVENTORY.read_text()


def test_unwritable_place_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anyway: a place no one can create in
            target = Path("/proc/pcap-audit-report.json")
        else:
            target = locked / "report.json"
        code, _, err = _run([str(SAMPLE), "-r", "applayering", "-o", str(target)])
    finally:
        locked.chmod(0o700)
    assert code == ExitCode.USAGE
    assert _line(err).startswith(f"pcap-audit: {target}: cannot write: ")


def test_directory_as_output_is_refused(tmp_path: Path) -> None:
    code, _, err = _run([str(SAMPLE), "-r", "applayering", "-o", str(tmp_path)])
    assert code == ExitCode.USAGE
    assert "is a directory" in err


def test_report_replaces_the_old_one_keeping_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old report\n")
    target.chmod(0o640)
    code, out, err = _run([str(SAMPLE), "-r", "applayering", "--format", "json", "-o", str(target)])
    assert code == ExitCode.FINDINGS, err
    assert out == ""
    assert target.read_text().startswith("{")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temp left


def test_a_link_is_followed_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    real = tmp_path / "reports" / "night.json"
    real.write_text("old\n")
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    code, _, err = _run([str(SAMPLE), "-r", "applayering", "--format", "json", "-o", str(link)])
    assert code == ExitCode.FINDINGS, err
    assert link.is_symlink()
    assert real.read_text().startswith("{")


def test_devices_are_written_in_place() -> None:
    code, _, err = _run([str(SAMPLE), "-r", "applayering", "-o", os.devnull])
    assert code == ExitCode.FINDINGS, err
    assert Path(os.devnull).is_char_device()


def test_failed_run_leaves_the_last_good_report(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("last good report\n")
    with pytest.raises(RuntimeError), output_file(target, []) as out:
        assert out is not None
        out.write_text("half a rep")
        raise RuntimeError("the audit failed")
    assert target.read_text() == "last good report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    with pytest.raises(SystemExit), output_file(target, []) as out:
        raise SystemExit(2)  # a command leaving early does not commit an empty report
    assert target.read_text() == "last good report\n"


def test_output_error_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as err, output_file(tmp_path / "x" / "y.json", []):
        pass
    assert err.value.exit_code == ExitCode.USAGE
    assert str(tmp_path / "x" / "y.json") in err.value.one_line()


# --- signals ---------------------------------------------------------------------------


def _many_flows_pcap(path: Path, flows: int) -> None:
    """A pcap of ``flows`` one-packet UDP flows (minimal Ethernet/IPv4/UDP frames)."""
    eth = b"\x02" * 12 + b"\x08\x00"
    records = []
    for i in range(flows):
        ip = struct.pack(
            "!BBHHHBBH4sI", 0x45, 0, 28, 0, 0, 64, 17, 0, b"\x0a\x00\x00\x01", 0x0B000000 + i
        )
        frame = eth + ip + struct.pack("!HHHH", 40000 + i % 20000, 53, 8, 0)
        head = struct.pack("<IIII", 1_700_000_000 + i // 1000, i % 1000 * 1000, 42, 42)
        records.append(head + frame)
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        fh.write(b"".join(records))


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signals") / "many-flows.pcap"
    _many_flows_pcap(path, 100_000)
    return path


@pytest.mark.skipif(not SCRIPT.exists(), reason="the pcap-audit console script is not installed")
@pytest.mark.parametrize(
    "signum,code,line",
    [
        (signal.SIGINT, ExitCode.INTERRUPTED, "interrupted by SIGINT"),
        (signal.SIGTERM, ExitCode.TERMINATED, "terminated by SIGTERM"),
    ],
)
@pytest.mark.parametrize("command", ["audit", "flows"])
def test_signal_mid_run(
    command: str, signum: int, code: ExitCode, line: str, big_capture: Path, tmp_path: Path
) -> None:
    target = tmp_path / "report.out"
    target.write_text("last good report\n")
    proc = subprocess.Popen(
        [str(SCRIPT), *COMMANDS[command], str(big_capture), "-o", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    maps = Path(f"/proc/{proc.pid}/maps")
    while time.monotonic() - started < 60 and proc.poll() is None:
        try:
            if str(big_capture) in maps.read_text():
                break  # the capture is being read
        except OSError:
            pass
        time.sleep(0.002)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err == f"pcap-audit: {line}; no output file was written or replaced\n"
    assert out == ""
    assert target.read_text() == "last good report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.out"]
