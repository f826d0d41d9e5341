"""Typed results (issue 10 item 10): the result document, its findings and capture records
are frozen values whose one ``to_json()`` is the JSON contract, and a user's mypy sees the
API's real signatures through ``from auditor import ...``."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from auditor import audit, load_inventory, load_ruleset
from auditor.findings.model import AuditDocument, CaptureRecord, Finding
from auditor.report import render

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CASES = sorted(SAMPLES.glob("*/*.pcap"))


def _audited(pcap: Path) -> AuditDocument:
    rs = load_ruleset(pcap.parent.name)
    inventory = pcap.with_suffix(".inventory.yaml")
    inv = load_inventory(inventory, rs) if inventory.exists() else None
    return audit([pcap], rs, inv).result


@pytest.mark.parametrize("pcap", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_to_json_is_the_document_and_reads_back_the_same(pcap: Path) -> None:
    doc = _audited(pcap)
    data = doc.to_json()
    # one JSON text: what --format json writes, key order included
    assert render(doc, "json") == render(data, "json")
    assert json.loads(json.dumps(data)) == data  # plain JSON values only
    again = AuditDocument.from_json(json.loads(render(doc, "json")))
    assert again == doc
    assert render(again, "json") == render(doc, "json")
    for fmt in ("table", "markdown", "csv", "sarif"):
        assert render(again, fmt) == render(data, fmt)
    assert [f.to_json() for f in doc.findings] == data["findings"]
    assert [c.to_json() for c in doc.captures] == data["captures"]


def test_results_are_frozen() -> None:
    doc = _audited(SAMPLES / "applayering" / "findings.pcap")
    finding, capture = doc.findings[0], doc.captures[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.severity = "info"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        capture.packets = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.findings = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        finding.evidence["flows"] = 0  # type: ignore[index]
    with pytest.raises(TypeError):
        capture.decode_errors["x"] = 1  # type: ignore[index]
    # the JSON is a copy: changing it changes nothing in the result
    data = doc.to_json()
    data["findings"][0]["evidence"]["flows"] = -1
    assert doc.to_json()["findings"][0]["evidence"] != data["findings"][0]["evidence"]


def test_a_capture_record_writes_the_contract_order_whatever_its_reader() -> None:
    unread = CaptureRecord("x.pcap", error="x.pcap: no such file", complete=False)
    assert list(unread.to_json()) == [
        "path", "format", "linktypes", "packets", "bytes", "first_seen", "last_seen",
        "truncated", "decode_errors", "warnings", "error", "duplicate_of", "complete",
    ]  # fmt: skip
    rec = CaptureRecord.from_json(
        {"selected": 3, "path": "a", "snaplen": 9, "logs": {}, "later": 1, "format": "pcap"}
    )
    keys = list(rec.to_json())
    assert keys.index("snaplen") < keys.index("packets") < keys.index("logs")
    assert keys.index("later") < keys.index("error") < keys.index("complete")
    assert keys[-1] == "selected" and rec.detail("selected") == 3


def test_a_finding_reads_back_what_it_wrote() -> None:
    f = Finding.from_json({"id": "UNK-1", "kind": "unknown_host", "severity": "info"})
    assert f.waiver is None and f.evidence == {} and f.flow_ids == ()
    assert Finding.from_json(f.to_json()) == f
    marked = dataclasses.replace(f, waiver={"id": "UNK-1", "reason": "r"})
    assert marked.to_json()["waiver"] == {"id": "UNK-1", "reason": "r"}
    assert "waiver" not in f.to_json()


USER_SCRIPT = """\
from auditor import audit, load_ruleset, read_flows
from auditor.findings.model import AuditDocument, Finding

rs = load_ruleset("applayering")
result = audit(["c.pcap"], rs, fail_on="high")
doc: AuditDocument = result.result
first: Finding = doc.findings[0]
severity: str = first.severity.upper()
packets: int = read_flows(["c.pcap"]).packets
wrong = audit(["c.pcap"], "applayering")  # the deliberate error
"""


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_a_users_mypy_sees_the_real_signatures(tmp_path: Path) -> None:
    """Through ``from auditor import audit``, mypy knows audit's parameters: the wrong
    argument is reported with the type it expected (with __getattr__ alone, audit is an
    ``object`` and mypy says only that it is not callable, or nothing)."""
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), "--config-file", "", "user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, out.stdout + out.stderr
    (error,) = errors
    assert error.startswith("user.py:10:"), error
    assert 'Argument 2 to "audit" has incompatible type "str"; expected "Ruleset"' in error


def test_the_findings_import_no_output_module() -> None:
    code = textwrap.dedent(
        """\
        import sys
        import auditor.findings.engine
        bad = [m for m in sys.modules if m.startswith(("auditor.report", "auditor.flows_out",
               "auditor.cli", "auditor.store", "click"))]
        print(bad)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_every_renderer_knows_every_severity_of_the_table() -> None:
    from auditor.report import html, sarif, table
    from auditor.rules.kinds import KIND_TABLE, SEVERITIES

    assert {k.severity for k in KIND_TABLE} <= set(SEVERITIES)
    for known in (
        table._SEVERITY_STYLE,
        html._SEVERITY_TITLES,
        html._SEVERITY_COLOURS,
        sarif.LEVELS,
    ):
        assert set(known) == set(SEVERITIES)


class _FakeEvidence:
    def __init__(self, fid: str) -> None:
        self.fid = fid

    def lines(self) -> list[str]:
        return [f"c.pcap frame 1: http.host {self.fid}"]

    def disagreements(self) -> list[str]:
        return []

    def to_json(self) -> dict[str, str]:
        return {"flow_id": self.fid}


def test_deep_returns_a_new_document_with_tshark_evidence(monkeypatch: pytest.MonkeyPatch) -> None:
    """--deep's evidence goes into a new document (the frozen one given is unchanged);
    tshark itself replaced by a fake, so this runs where tshark is absent."""
    from auditor.evidence import deep

    pcap = SAMPLES / "applayering" / "findings.pcap"
    rs = load_ruleset("applayering")
    result = audit([pcap], rs, load_inventory(pcap.with_suffix(".inventory.yaml"), rs))
    before = result.result.to_json()
    monkeypatch.setattr(
        deep, "dissect", lambda captures, flows, ids: ({i: _FakeEvidence(i) for i in ids}, 7, 1)
    )
    doc, summary = deep.deepen(result.result, result.traffic, limit=3)
    assert result.result.to_json() == before and result.result.deep is None
    assert summary.flows == 3 and doc.deep is not None and doc.deep["packets"] == 7
    deepened = [f for f in doc.findings if "wireshark" in f.evidence]
    assert deepened and all(f.evidence["wireshark"][0].startswith("c.pcap") for f in deepened)
    assert [f.id for f in doc.findings] == [f.id for f in result.result.findings]
    assert list(doc.to_json())[-1] == "deep"

    def fail(*_: object) -> None:
        raise deep.DeepError("tshark", "exited with 2")

    monkeypatch.setattr(deep, "dissect", fail)
    doc, summary = deep.deepen(result.result, result.traffic)
    assert summary.error and doc.deep is not None and doc.deep["evidence"] == []
    assert doc.findings == result.result.findings
