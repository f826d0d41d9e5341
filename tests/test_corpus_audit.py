"""Every capture of ../shared/corpus (hundreds deliberately malformed) through the whole
audit at once — reader, flows, classifier, roles, checks — and every renderer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.findings.engine import audit
from auditor.report import FORMATS, render
from auditor.rules import load_ruleset

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")


@pytest.mark.parametrize("ruleset", ["applayering", "kubernetes", "tas-diego", "uforge"])
def test_whole_corpus_audits_and_renders(ruleset: str) -> None:
    files = sorted(p for p in CORPUS.glob("*/*") if p.suffix != ".md")
    assert len(files) > 900
    result = audit(files, load_ruleset(ruleset))
    doc = result.document
    # every file is accounted for: read (perhaps truncated) or rejected with a message
    assert len(doc["captures"]) == len(files)
    assert all(c["error"] is None or c["path"] in c["error"] for c in doc["captures"])
    assert doc["summary"]["packets"] == sum(c["packets"] for c in doc["captures"])
    assert doc["summary"]["flows"] > 1000
    assert any(c["decode_errors"] for c in doc["captures"])  # the malformed ones are counted
    json.loads(render(doc, "json"))
    for fmt in FORMATS:
        assert render(doc, fmt)
