"""Golden pairs: every ``samples/<ruleset>/<kind>.pcap`` audits to its ``.expected.json``.

The samples are synthesised by ``samples/make_samples.py`` (auditor.synth, no randomness);
the comparison uses that script's own ``normalise`` (tool version, ruleset path, capture and
inventory paths), so the expected files are exactly what ``make samples`` writes. When the
audit's output changes on purpose, run ``make samples`` and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.cli.main import cli
from auditor.findings.engine import KINDS

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()
PCAPS = sorted(SAMPLES.glob("*/*.pcap"))
CASES = [(p.parent.name, p.stem) for p in PCAPS]
IDS = [f"{r}/{k}" for r, k in CASES]


def _audit_cli(ruleset: str, kind: str) -> dict[str, Any]:
    folder = SAMPLES / ruleset
    args = [str(folder / f"{kind}.pcap"), "--ruleset", ruleset,
            "--inventory", str(folder / f"{kind}.inventory.yaml"),
            "--format", "json", "--fail-on", "never"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def _expected(ruleset: str, kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (SAMPLES / ruleset / f"{kind}.expected.json").read_text(encoding="utf-8")
    )
    return doc


def test_every_generated_sample_is_checked_in() -> None:
    generated = {(r, k) for r, kinds in GEN.SAMPLES.items() for k in kinds}
    assert set(CASES) == generated
    for ruleset, kind in CASES:
        for suffix in (".inventory.yaml", ".expected.json", ".flows.json"):
            assert (SAMPLES / ruleset / f"{kind}{suffix}").is_file(), (ruleset, kind, suffix)


@pytest.mark.parametrize(("ruleset", "kind"), CASES, ids=IDS)
def test_flows_match_the_expected_json(ruleset: str, kind: str) -> None:
    res = CliRunner().invoke(
        cli, ["flows", str(SAMPLES / ruleset / f"{kind}.pcap"), "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    got = GEN.normalise_flows(json.loads(res.stdout))
    want = json.loads((SAMPLES / ruleset / f"{kind}.flows.json").read_text(encoding="utf-8"))
    assert got["captures"] == want["captures"]
    assert [f["flow_id"] for f in got["flows"]] == [f["flow_id"] for f in want["flows"]]
    for g, w in zip(got["flows"], want["flows"], strict=True):
        assert g == w
    assert got == want


@pytest.mark.parametrize(("ruleset", "kind"), CASES, ids=IDS)
def test_audit_matches_the_expected_json(ruleset: str, kind: str) -> None:
    got = GEN.normalise(_audit_cli(ruleset, kind), SAMPLES / ruleset)
    want = _expected(ruleset, kind)
    if got != want:  # name the first differing finding rather than dump two 50 kB dicts
        assert got["summary"] == want["summary"]
        assert [f["id"] for f in got["findings"]] == [f["id"] for f in want["findings"]]
        for g, w in zip(got["findings"], want["findings"], strict=True):
            assert g == w
        for key in want:
            assert got[key] == want[key], key
    assert got == want


@pytest.mark.parametrize("ruleset", sorted(GEN.SAMPLES))
def test_clean_sample_has_no_findings(ruleset: str) -> None:
    doc = _audit_cli(ruleset, "clean")
    assert doc["findings"] == []
    assert doc["summary"]["findings"] == 0
    assert doc["summary"]["by_severity"] == {"high": 0, "medium": 0, "low": 0, "info": 0}
    assert doc["summary"]["flows"] > 0 and doc["summary"]["packets"] > 0
    assert all(c["error"] is None for c in doc["captures"])


@pytest.mark.parametrize("ruleset", sorted(GEN.SAMPLES))
def test_findings_sample_has_findings(ruleset: str) -> None:
    doc = _expected(ruleset, "findings")
    assert doc["findings"], ruleset
    assert doc["summary"]["findings"] == len(doc["findings"])
    ids = [f["id"] for f in doc["findings"]]
    assert len(ids) == len(set(ids))


def test_findings_samples_together_show_every_kind() -> None:
    seen = {f["kind"] for r in GEN.SAMPLES for f in _expected(r, "findings")["findings"]}
    assert seen == set(KINDS)


@pytest.mark.parametrize(("ruleset", "kind"), CASES, ids=IDS)
def test_generator_is_deterministic(ruleset: str, kind: str, tmp_path: Path) -> None:
    capture, roles = GEN.SAMPLES[ruleset][kind]()
    pcap = capture.write(tmp_path / f"{kind}.pcap")
    assert pcap.read_bytes() == (SAMPLES / ruleset / f"{kind}.pcap").read_bytes()
    inv = tmp_path / f"{kind}.inventory.yaml"
    GEN.write_inventory(inv, ruleset, roles)
    assert inv.read_text() == (SAMPLES / ruleset / f"{kind}.inventory.yaml").read_text()
    again, _ = GEN.SAMPLES[ruleset][kind]()
    assert again.write(tmp_path / "again.pcap").read_bytes() == pcap.read_bytes()
