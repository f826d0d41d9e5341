"""Out of memory or disk is the machine, not a bug: exit RESOURCE and what to change.

The issue's case: under a 2 GB address-space limit the audit of the 2,022-packet sample
died with "internal error: OutOfMemoryException" (DuckDB took 80 % of the machine's RAM
as its limit, and Arrow's allocator reserved 1 GiB of address space up front). These
tests run the console script under real limits (``resource.setrlimit`` in the child).
"""

from __future__ import annotations

import errno
import resource
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from auditor import duck
from auditor.cli.common import resource_problem
from auditor.cli.main import cli
from auditor.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = str(ROOT / "samples" / "applayering" / "findings.pcap")
SCRIPT = Path(sys.executable).with_name("pcap-audit")
needs_script = pytest.mark.skipif(not SCRIPT.exists(), reason="pcap-audit script not installed")


def _limited(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [str(SCRIPT), *args],
        preexec_fn=apply,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@needs_script
@pytest.mark.parametrize("megabytes", [2048, 1536, 1024])
def test_audit_under_an_address_space_limit(megabytes: int) -> None:
    for _ in range(3):  # it failed at random before (1.5 GB: every time): several runs
        res = _limited(megabytes << 20, SAMPLE, "-r", "applayering", "--format", "json")
        assert res.returncode == ExitCode.FINDINGS, res.stderr
        assert res.stderr == ""


@needs_script
def test_duckdb_out_of_memory_is_a_resource_error(tmp_path: Path) -> None:
    res = subprocess.run(
        [str(SCRIPT), SAMPLE, "-r", "applayering", "--memory-limit", "1MB"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == ExitCode.RESOURCE
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("pcap-audit: DuckDB ran out of memory (")
    assert "raise --memory-limit (now 1MB)" in lines[0]
    assert res.stdout == ""


def test_memory_limit_default_follows_the_process_limit() -> None:
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from auditor import duck\n"
        "print(duck.memory_limit())\n"
        "print(duck.cursor().execute(\"select current_setting('memory_limit')\").fetchone()[0])"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["('512MiB', False)", "512.0 MiB"]


@pytest.mark.parametrize("command", [[], ["roles"]])
def test_duckdb_options(command: list[str], tmp_path: Path) -> None:
    args = [*command, SAMPLE, "-r", "applayering"]
    spill = tmp_path / "spill"
    res = CliRunner().invoke(
        cli, [*args, "--memory-limit", "300MB", "--threads", "2", "--temp-dir", str(spill)]
    )
    assert res.exit_code in (ExitCode.OK, ExitCode.FINDINGS), res.stderr
    with duck.cursor() as con:
        settings = con.execute(
            "select current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('temp_directory')"
        ).fetchone()
    assert settings == ("286.1 MiB", 2, str(spill))
    res = CliRunner().invoke(cli, args)  # the next run is back to the defaults
    with duck.cursor() as con:
        threads = con.execute("select current_setting('threads')").fetchone()
    assert threads == (1,)


@pytest.mark.parametrize("bad", ["lots", "12", "2 PB", "-1GB"])
def test_bad_memory_limit_is_a_usage_error(bad: str) -> None:
    res = CliRunner().invoke(cli, [SAMPLE, "-r", "applayering", "--memory-limit", bad])
    assert res.exit_code == ExitCode.USAGE
    assert "--memory-limit" in res.stderr


def test_full_disk_is_a_resource_error() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    for args in ([SAMPLE, "-r", "applayering"], ["flows", SAMPLE]):
        res = CliRunner().invoke(cli, [*args, "-o", "/dev/full"])
        assert res.exit_code == ExitCode.RESOURCE, res.stderr
        assert res.stderr == (
            "pcap-audit: /dev/full: no space left on the device; free space or write elsewhere\n"
        )


def test_resource_problem_wording() -> None:
    assert resource_problem(ValueError("x")) is None
    assert resource_problem(OSError(errno.EACCES, "denied")) is None
    full = resource_problem(OSError(errno.ENOSPC, "No space left on device", "/var/tmp/x"))
    assert full is not None and "/var/tmp/x" in full and "--temp-dir" in full
    memory = resource_problem(MemoryError())
    assert memory is not None and memory.startswith("out of memory (MemoryError)")
    oom = resource_problem(duckdb.OutOfMemoryException("Out of Memory Error: x"))
    assert oom is not None and "--memory-limit" in oom and "--threads" in oom
