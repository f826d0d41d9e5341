"""``pcap-audit verify``: the flow table against tshark, as a user runs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli.main import cli
from auditor.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*/*.pcap"))
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek"
SSLH = CORPUS / "ssl-and-ssh-using-sslh.pcap"

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


@needs_tshark
def test_samples_agree_with_tshark() -> None:
    """Every sample conversation agrees but one: the applayering findings sample carries SSH
    on port 443 (a protocol-on-the-wire finding), which tshark dissects as TLS by the port."""
    res = CliRunner().invoke(cli, ["verify", *map(str, SAMPLES)])
    assert res.exit_code == ExitCode.FINDINGS, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == len(SAMPLES) + 2
    (diff,) = [line for line in lines if line.startswith("  ")]
    assert "findings.pcap: tcp 10.10.0.10:443 <-> 10.10.0.50:52012: app ssh vs tls" in diff
    assert lines[-1].endswith("TCP/UDP conversations agree with tshark (99.09 %); 1 differ")


@needs_tshark
def test_json_report() -> None:
    sample = ROOT / "samples" / "applayering" / "clean.pcap"
    res = CliRunner().invoke(cli, ["verify", str(sample), "--format", "json"])
    assert res.exit_code == ExitCode.OK, res.output
    doc = json.loads(res.stdout)
    assert doc["summary"] == {
        "captures": 1,
        "conversations": 13,
        "agreeing": 13,
        "agreement_rate": 1.0,
        "differences": 0,
    }
    assert doc["captures"][0]["path"] == str(sample)


@needs_tshark
@pytest.mark.corpus
@pytest.mark.skipif(not SSLH.exists(), reason="../shared/corpus/zeek not present")
def test_a_difference_is_listed_with_flow_ids_and_frames(tmp_path: Path) -> None:
    """sslh puts SSH on 443: tshark dissects TLS by port, we read the SSH banner."""
    out = tmp_path / "v.json"
    res = CliRunner().invoke(cli, ["verify", str(SSLH), "--format", "json", "-o", str(out)])
    assert res.exit_code == ExitCode.FINDINGS, res.output
    doc = json.loads(out.read_text())
    assert doc["summary"]["agreement_rate"] == 0.5
    (diff,) = doc["differences"]
    assert diff["app"] == {"pcap_audit": ["ssh"], "tshark": ["tls"]}
    assert diff["packets"] == {"pcap_audit": 39, "tshark": 39}
    assert diff["frames"][:3] == [1, 2, 3]
    res = CliRunner().invoke(cli, ["verify", str(SSLH)])
    assert "app ssh vs tls (pcap-audit vs tshark; flows F" in res.stdout


@needs_tshark
def test_unreadable_capture_is_named_and_the_rest_verified(tmp_path: Path) -> None:
    missing = tmp_path / "gone.pcap"
    res = CliRunner().invoke(cli, ["verify", str(SAMPLES[0]), str(missing)])
    assert res.exit_code == ExitCode.CAPTURE
    assert f"pcap-audit: {missing}: no such file" in res.stderr
    assert "(100.00 %); 0 differ" in res.stdout


def test_without_tshark_one_line_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PCAP_AUDIT_TSHARK", "no-such-tshark-binary")
    res = CliRunner().invoke(cli, ["verify", str(SAMPLES[0])])
    assert res.exit_code == ExitCode.USAGE
    assert res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert line.startswith("pcap-audit: tshark: not installed (not on PATH); pcap-audit verify")
    assert "apt-get install tshark" in line


TCPDUMP = ROOT.parent / "shared" / "corpus" / "tcpdump"


@needs_tshark
@pytest.mark.corpus
@pytest.mark.skipif(not TCPDUMP.exists(), reason="../shared/corpus/tcpdump not present")
def test_a_header_tshark_cannot_dissect_is_a_difference_not_a_crash() -> None:
    """BIG TCP: IPv6 jumbograms (payload length 0, RFC 2675) that tshark 4.0 stops at."""
    path = TCPDUMP / "bigtcp-ipv6.pcap"
    res = CliRunner().invoke(cli, ["verify", str(path)])
    assert res.exit_code == ExitCode.FINDINGS, res.output
    assert "only pcap-audit sees it (pcap-audit vs tshark; flows F" in res.stdout


@needs_tshark
def test_a_capture_not_read_whole_is_said_and_sets_the_capture_bit(tmp_path: Path) -> None:
    """Verify prints the traffic's notes, as the audit does; a cut capture is still compared."""
    import os

    cut = tmp_path / "cut.pcap"
    data = SAMPLES[0].read_bytes()
    cut.write_bytes(data[: len(data) - 10])
    os.utime(cut, (1e9, 1e9))  # long closed: not "still being written"
    res = CliRunner().invoke(cli, ["verify", str(cut)])
    assert res.exit_code & ExitCode.CAPTURE, res.output
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"pcap-audit: {cut}: ")
    assert res.stdout.startswith(f"{cut}: ")


@needs_tshark
def test_standard_input_is_said_not_verified() -> None:
    res = CliRunner().invoke(cli, ["verify", "-"], input=SAMPLES[0].read_bytes())
    assert res.exit_code == ExitCode.CAPTURE, res.output
    (line,) = res.stderr.splitlines()
    assert line == (
        "pcap-audit: standard input: standard input cannot be read again by tshark: "
        "give verify a file"
    )


@needs_tshark
def test_output_over_an_input_is_refused(tmp_path: Path) -> None:
    capture = tmp_path / "a.pcap"
    capture.write_bytes(SAMPLES[0].read_bytes())
    res = CliRunner().invoke(cli, ["verify", str(capture), "-o", str(capture)])
    assert res.exit_code == ExitCode.USAGE
    assert "refusing to overwrite it" in res.stderr
    assert capture.read_bytes() == SAMPLES[0].read_bytes()
