"""`pcap-audit report AUDIT.json`: a saved audit rendered again without its captures, in
each format exactly as the audit itself renders it; the ten-line summary; what is not an
audit document."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.report import FORMATS

ROOT = Path(__file__).resolve().parent.parent
AL = ROOT / "samples" / "applayering"
INV = ["-r", "applayering", "-i", str(AL / "findings.inventory.yaml")]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="pcap-audit")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """An audit saved as JSON, its capture deleted since, and the audit's own output in
    every format (made while the capture was there)."""
    tmp = tmp_path_factory.mktemp("saved")
    capture = tmp / "night.pcap"
    shutil.copy(AL / "findings.pcap", capture)
    direct = {fmt: run(str(capture), *INV, "--format", fmt).stdout for fmt in FORMATS}
    doc = tmp / "night.json"
    doc.write_text(direct["json"])
    capture.unlink()
    return doc, direct


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_renders_as_the_audit_did(saved: tuple[Path, dict[str, str]], fmt: str) -> None:
    doc, direct = saved
    res = run("report", str(doc), "--format", fmt)
    assert res.exit_code == ExitCode.OK, res.output
    assert res.stdout == direct[fmt]


def test_report_to_a_file(saved: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    doc, direct = saved
    out = tmp_path / "report.html"
    res = run("report", str(doc), "--format", "html", "-o", str(out))
    assert res.exit_code == 0 and res.stdout == ""
    assert out.read_text() == direct["html"]
    res = run("report", str(doc), "-o", str(tmp_path / "no" / "such" / "dir.txt"))
    assert res.exit_code == ExitCode.USAGE
    assert res.stderr.strip().startswith(f"pcap-audit: {tmp_path / 'no' / 'such' / 'dir.txt'}: ")


def test_summary_is_ten_lines_at_most(saved: tuple[Path, dict[str, str]]) -> None:
    doc, _ = saved
    res = run("report", str(doc), "--format", "summary")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert len(lines) <= 10
    assert lines[0] == (
        "pcap-audit applayering: 15 findings (7 high, 5 medium, 1 low, 2 info); "
        "exit code 1 (fail on medium)"
    )
    assert lines[1].startswith("1 capture, 2,093 packets, 26 flows")
    assert lines[2] == "Top findings:"
    assert lines[3].split()[:2] == ["HIGH", "prohibited_flow"]
    assert lines[-1] == "  ... and 9 more"


def test_summary_says_what_is_new_since_the_store_s_run_before(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    night1, night2 = tmp_path / "1.json", tmp_path / "2.json"
    for capture, doc in (("clean.pcap", night1), ("findings.pcap", night2)):
        run(str(AL / capture), *INV, "--store", str(store), "--format", "json", "-o", str(doc))
    res = run("report", str(night2), "--format", "summary", "--store", str(store))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) <= 10
    assert lines[2].startswith("New since run 1 (")
    assert lines[2].endswith(
        ": 14 findings (7 high, 5 medium, 1 low, 1 info), 0 resolved, 11 new flows, 0 gone"
    )
    assert lines[4].endswith(" NEW")
    # the first night: nothing to compare with
    first = run("report", str(night1), "--format", "summary", "--store", str(store))
    assert "New: no baseline to compare with" in first.stdout
    # an explicit baseline, and a saved document as the baseline
    back = run(
        "report", str(night1), "--format", "summary", "--store", str(store), "--baseline", "2"
    )
    assert back.stdout.splitlines()[2].startswith("New since run 2 (")
    by_file = run("report", str(night2), "--format", "summary", "--baseline", str(night1))
    assert by_file.stdout.splitlines()[2].startswith(f"New since {night1}: 14 findings")


NOT_AUDITS = {
    "flows": (
        '{"captures": [], "flows": []}\n',
        "not a pcap-audit audit document: a flows document (pcap-audit flows), not an audit",
    ),
    "sarif": (
        '{"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": []}',
        "not a pcap-audit audit document: a SARIF file (render from the audit's --format json "
        "output instead)",
    ),
    "list": ("[1, 2]", "not a pcap-audit audit document: the JSON is not an object"),
    "each": (
        '{"exit_code": 1, "results": [{"tool": {"name": "pcap-audit"}}]}',
        "not a pcap-audit audit document: an --each document (one result per set): "
        "audit the sets one by one",
    ),
    "other tool": (
        '{"tool": {"name": "zeek"}}',
        'not a pcap-audit audit document: no "tool": {"name": "pcap-audit"}',
    ),
    "no findings": (
        '{"tool": {"name": "pcap-audit"}, "summary": {}, "captures": []}',
        'not a pcap-audit audit document: no "findings" list',
    ),
    "bad finding": (
        '{"tool": {"name": "pcap-audit"}, "summary": {}, "captures": [], "findings": [{"id": 1}]}',
        "findings[0]: expected an object with id, kind and severity strings",
    ),
    "not json": ('{"tool": \n  {"name": pcap}}', "2:12: not JSON: Expecting value"),
    "binary": (b"\xd4\xc3\xb2\xa1\x02\x00", "not UTF-8 text (byte offset 0)"),
}


@pytest.mark.parametrize("name", sorted(NOT_AUDITS))
def test_what_is_not_an_audit_document_is_one_line(tmp_path: Path, name: str) -> None:
    content, message = NOT_AUDITS[name]
    path = tmp_path / "thing.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    res = run("report", str(path), "--format", "html")
    assert res.exit_code == ExitCode.USAGE
    assert res.stdout == ""
    sep = "" if message[0].isdigit() else " "
    assert res.stderr.strip().splitlines() == [f"pcap-audit: {path}:{sep}{message}"]


def test_a_missing_document(tmp_path: Path) -> None:
    res = run("report", str(tmp_path / "gone.json"))
    assert res.exit_code == ExitCode.USAGE
    assert res.stderr.strip() == f"pcap-audit: {tmp_path / 'gone.json'}: no such file"


def test_store_options_are_for_the_summary(saved: tuple[Path, dict[str, str]]) -> None:
    doc, _ = saved
    res = run("report", str(doc), "--format", "html", "--baseline", "1")
    assert res.exit_code == ExitCode.USAGE
    assert "--store and --baseline apply to --format summary only" in res.stderr
