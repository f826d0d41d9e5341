"""The console script's way out (auditor.cli.entry.main): the exit code of the command,
the interpreter's usual end (no ``os._exit``: atexit handlers and buffered files run), and
a reader that goes away early (``| head``) is no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from auditor.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "applayering" / "findings.pcap"
MAIN = "from auditor.cli.entry import main; main()"


def script(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", prelude + MAIN, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args,code",
    [
        (["--version"], ExitCode.OK),
        ([str(SAMPLE), "--ruleset", "applayering", "--format", "json"], ExitCode.FINDINGS),
        ([str(SAMPLE), "--ruleset", "nope"], ExitCode.USAGE),
    ],
)
def test_exit_code_of_the_command(args: list[str], code: ExitCode) -> None:
    assert script(*args).returncode == code


def test_the_interpreter_ends_as_usual() -> None:
    """atexit handlers run and what was written to a buffered file reaches it."""
    done = script(
        "--version",
        prelude="import atexit, sys; atexit.register(lambda: print('atexit ran'))\n",
    )
    assert done.returncode == 0 and done.stdout.rstrip().endswith("atexit ran")


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_reader_going_away_is_quiet(fmt: str, tmp_path: Path) -> None:
    """Output larger than a pipe holds (5,000 inventory hosts), its reader gone after 10
    bytes: the exit code of the audit, and not a word on stderr."""
    inventory = tmp_path / "hosts.csv"
    inventory.write_text("".join(f"agent,10.99.{i // 250}.{i % 250 + 1}\n" for i in range(5000)))
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN, str(SAMPLE), "--ruleset", "applayering", "--inventory",
         str(inventory), "--format", fmt, "--fail-on", "never"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # as `| head -c 10` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == ExitCode.OK
    assert err == "", err
