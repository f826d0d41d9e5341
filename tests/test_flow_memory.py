"""Memory per flow of the flow table (issue 10, item 8): a sweep of distinct flows, one
packet each, read into the flow table in a child process; its peak RSS above that of a
tiny capture, per flow. At 300k flows: ~730 B a flow (the Arrow table itself is 334 B);
1,460 B before the flow table stopped making Python objects per flow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from sweep import write_sweep  # noqa: E402

FLOWS = 300_000
LIMIT = 1000  #: bytes a flow, peak RSS above a small capture's (today ~730 at 300k flows)
BUILD = "import sys; from auditor.traffic import read_traffic; read_traffic([sys.argv[1]])"


def peak_rss(path: Path) -> int:
    """Peak RSS in bytes of a child process that builds the flow table of ``path``."""
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(path)], cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss * 1024


def test_flow_table_memory_per_flow(tmp_path: Path) -> None:
    big, small = tmp_path / "sweep.pcap", tmp_path / "tiny.pcap"
    write_sweep(big, FLOWS)
    write_sweep(small, 10)
    per_flow = (peak_rss(big) - peak_rss(small)) / FLOWS
    assert per_flow < LIMIT, f"{per_flow:.0f} bytes a flow"


OUT_FLOWS = 100_000
OUT_LIMIT = 1000  #: bytes a flow for `flows --format F` (~460 at 100k flows; rendering the whole table at once took 4,800 for the table, 8,600 for JSON)


def peak_rss_cli(args: list[str]) -> int:
    """Peak RSS in bytes of ``pcap-audit ARGS`` in a child process."""
    code = "import sys; from auditor.cli.entry import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss * 1024


@pytest.mark.parametrize(
    ("command", "fmt", "limit"),
    [
        (["flows", "-q"], "json", OUT_LIMIT),
        (["flows", "-q"], "csv", OUT_LIMIT),
        (["flows", "-q"], "table", OUT_LIMIT),
        # the query's result is an Arrow copy of the table (~400 B a flow): ~900 in all,
        # 9,300 before
        (["query", "SELECT * FROM flows"], "json", 1500),
        (["query", "SELECT * FROM flows"], "csv", 1500),
    ],
)
def test_outputs_are_written_a_slice_at_a_time(
    tmp_path: Path, command: list[str], fmt: str, limit: int
) -> None:
    """`pcap-audit flows` and `query` of many flows hold a slice of the rows as Python
    objects, not all of them: 5 M flows took 18.6 GB as CSV and more than 24 GB as JSON
    before."""
    big, small = tmp_path / "sweep.pcap", tmp_path / "tiny.pcap"
    write_sweep(big, OUT_FLOWS)
    write_sweep(small, 10)
    out = tmp_path / f"out.{fmt}"
    peaks = [
        peak_rss_cli([*command, str(p), "--format", fmt, "-o", str(out)]) for p in (big, small)
    ]
    per_flow = (peaks[0] - peaks[1]) / OUT_FLOWS
    assert per_flow < limit, f"{per_flow:.0f} bytes a flow"
