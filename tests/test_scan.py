"""Scans: many unexpected ports (or hosts) from one source make one finding, not thousands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditor import synth
from auditor.findings.engine import SCAN_TARGETS, audit
from auditor.rules import load_ruleset

AL = load_ruleset("applayering")


def findings(tmp_path: Path, c: synth.Capture) -> list[dict[str, Any]]:
    return audit([c.write(tmp_path / "scan.pcap")], AL).document["findings"]


def test_port_scan_is_one_finding(tmp_path: Path) -> None:
    c = synth.Capture()
    ports = [p for p in range(20000, 20000 + SCAN_TARGETS + 30)]
    for p in ports:
        c.tcp_rejected("10.9.9.9", "10.10.1.1", 40000, p)
    c.tcp_session("10.9.9.9", "10.10.1.1", 40001, 20001, [(0, b"hi")])  # one port answered
    found = findings(tmp_path, c)
    assert len(found) == 1
    f = found[0]
    assert (f["kind"], f["src_ip"], f["dst_ip"], f["dst_port"]) == (
        "unexpected_port", "10.9.9.9", "10.10.1.1", None)  # fmt: skip
    assert f["evidence"]["scan"] == "ports"
    assert f["evidence"]["targets"] == len(ports)
    assert f["evidence"]["answered"] == ["20001"]
    assert "20000 to 20079" in f["message"]


def test_host_sweep_is_one_finding(tmp_path: Path) -> None:
    c = synth.Capture()
    for h in range(SCAN_TARGETS + 5):
        c.tcp_rejected("10.9.9.9", f"10.10.2.{h + 1}", 40000 + h, 23)
    found = findings(tmp_path, c)
    assert len(found) == 1
    f = found[0]
    assert (f["dst_ip"], f["dst_port"], f["evidence"]["scan"]) == (None, 23, "hosts")
    assert f["evidence"]["targets"] == SCAN_TARGETS + 5


@pytest.mark.parametrize("count", [3, SCAN_TARGETS])
def test_a_few_ports_are_reported_one_by_one(tmp_path: Path, count: int) -> None:
    c = synth.Capture()
    for p in range(20000, 20000 + count):
        c.tcp_rejected("10.9.9.9", "10.10.1.1", 40000, p)
    found = findings(tmp_path, c)
    assert len(found) == count
    assert all("scan" not in f["evidence"] for f in found)
