"""A finding lists at most queries.FLOW_IDS flows (the first, by first packet) and says how
many there were: one finding of a million flows was 100 MB of JSON and most of an audit's
memory (a list of every flow's id, which DuckDB cannot spill)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auditor import synth
from auditor.findings.engine import audit
from auditor.findings.queries import FLOW_IDS
from auditor.rules import load_inventory, load_ruleset
from auditor.traffic import read_traffic

AL = load_ruleset("applayering")
MANY = FLOW_IDS + 37


@pytest.fixture(scope="module")
def many_flows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MANY connections from 10.9.9.9 to 10.10.1.1:9999 (undocumented), a port each."""
    c = synth.Capture()
    for k in range(MANY):
        c.tcp_rejected("10.9.9.9", "10.10.1.1", 20000 + k, 9999)
    return c.write(tmp_path_factory.mktemp("many") / "many.pcap")


def first_flow_ids(path: Path, n: int) -> list[str]:
    flows = read_traffic([str(path)]).flows
    assert flows is not None
    rows = flows.select(["flow_id", "first_seen"]).to_pylist()
    return [r["flow_id"] for r in sorted(rows, key=lambda r: r["first_seen"])][:n]


def only(found: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (f,) = [f for f in found if f["kind"] == kind]
    return f


def check_listed(f: dict[str, Any], path: Path) -> None:
    assert f["flow_ids"] == first_flow_ids(path, FLOW_IDS)
    assert len(f["community_ids"]) == FLOW_IDS  # those flows' (one each), sorted
    assert f["community_ids"] == sorted(f["community_ids"])
    assert f["evidence"]["flows"] == MANY
    assert f["evidence"]["flow_ids_truncated"] is True
    assert len(f["evidence"]["frames"]) == FLOW_IDS
    assert f["packets"] == 2 * MANY  # the counters still count every flow


def test_unexpected_port_lists_the_first_flows(many_flows: Path) -> None:
    found = audit([many_flows], AL).document["findings"]
    check_listed(only(found, "unexpected_port"), many_flows)


def test_unknown_host_lists_the_first_flows(many_flows: Path, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("roles:\n  appliance:\n    - 10.10.1.1\n")
    found = audit([many_flows], AL, load_inventory(inv, AL)).document["findings"]
    f = only(found, "unknown_host")
    check_listed(f, many_flows)
    assert f["src_ip"] == "10.9.9.9"


def test_a_finding_of_few_flows_lists_them_all(tmp_path: Path) -> None:
    c = synth.Capture()
    for k in range(3):
        c.tcp_rejected("10.9.9.9", "10.10.1.1", 20000 + k, 9999)
    path = c.write(tmp_path / "few.pcap")
    f = only(audit([path], AL).document["findings"], "unexpected_port")
    assert f["flow_ids"] == first_flow_ids(path, 3)
    assert "flow_ids_truncated" not in f["evidence"]
    assert f["evidence"]["flows"] == 3


def test_show_says_when_a_finding_lists_only_its_first_flows(
    many_flows: Path, tmp_path: Path
) -> None:
    """`show FINDING --from AUDIT.json` of such a finding shows the listed flows' packets
    and says, on stderr, that they are not all of the finding's (no silent part)."""
    from click.testing import CliRunner

    from auditor.cli.main import cli

    saved = tmp_path / "audit.json"
    res = CliRunner().invoke(
        cli, [str(many_flows), "-r", "applayering", "--format", "json", "-o", str(saved),
              "-q", "--fail-on", "never"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    f = only(json.loads(saved.read_text())["findings"], "unexpected_port")
    res = CliRunner().invoke(cli, ["show", f["id"], str(many_flows), "--from", str(saved)])
    assert res.exit_code == 0, res.output
    assert res.stderr == (
        f"pcap-audit: finding {f['id']} lists the first {FLOW_IDS:,} of its {MANY:,} flows "
        "(evidence.flow_ids_truncated): only their packets are shown and exported\n"
    )
    assert sum(line.startswith("flow F") for line in res.stdout.splitlines()) == FLOW_IDS
    few = CliRunner().invoke(cli, ["show", f["flow_ids"][0], str(many_flows)])
    assert few.exit_code == 0 and few.stderr == ""


def test_reports_for_people_show_the_first_evidence_items(many_flows: Path) -> None:
    """The terminal and Markdown reports show 20 items of a long evidence list and count
    the rest; the HTML, like the JSON, keeps them all."""
    from auditor.report import render

    doc = audit([many_flows], AL).result
    more = f"… {FLOW_IDS - 20:,} more"
    for fmt in ("table", "markdown"):
        text = render(doc, fmt)
        assert "frames 39-40, " + more in text.replace("\n        ", " "), fmt
        assert "frames 41-42" not in text
    html = render(doc, "html")
    assert f"frames {2 * FLOW_IDS - 1}-{2 * FLOW_IDS}" in html and more not in html
