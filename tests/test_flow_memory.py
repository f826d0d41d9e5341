"""Memory per flow of the flow table (issue 10, item 8): a sweep of distinct flows, one
packet each, read into the flow table in a child process; its peak RSS above that of a
tiny capture, per flow. At 300k flows: ~730 B a flow (the Arrow table itself is 334 B);
1,460 B before the flow table stopped making Python objects per flow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
