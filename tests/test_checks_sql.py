"""The checks' SQL and its shortcuts: what the engine computes in DuckDB, or skips, must be
what it computed before, in Python or by running the query.

- queries._iso writes timestamps exactly as auditor.traffic.iso does;
- MISSING_FLOW is skipped when the role pairs show every expected flow seen: forcing it to
  run changes nothing on any sample;
- the value lists of the evidence (states, apps) keep the order in which flows showed them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditor import duck, synth
from auditor.findings import engine, queries
from auditor.flows_out import public_flows
from auditor.roles import resolve_roles
from auditor.rules import load_inventory, load_ruleset
from auditor.traffic import iso, read_traffic

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
NS = 1_000_000_000


@pytest.mark.parametrize(
    "ns",
    [
        0,
        1,
        999,
        1_000,
        NS,
        1_763_769_600 * NS,  # whole second: no fraction
        1_763_769_600 * NS + 123_456_789,
        1_763_769_600 * NS + 1_000,  # one microsecond
        1_763_769_600 * NS + 999,  # below a microsecond: no fraction either
        4_102_444_800 * NS + 5_000,  # 2100
        -1,  # before 1970: floored, as Python's // and %
        -1_000,
        -NS - 500_000_000,
        9_223_372_036_854_775_807,  # int64 limits
        -9_223_372_036_854_775_807,
    ],
)
def test_iso_in_sql_is_traffic_iso(ns: int) -> None:
    with duck.cursor() as con:
        (text,) = con.execute(f"SELECT {queries._iso('$ns::BIGINT')}", {"ns": ns}).fetchone() or (
            None,
        )
    assert text == iso(ns)


def _samples() -> list[tuple[str, str, str | None]]:
    cases: list[tuple[str, str, str | None]] = []
    for folder in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        for kind in ("clean", "findings"):
            cases.append((folder.name, kind, None))
            cases.append((folder.name, kind, f"{kind}.inventory.yaml"))
    return cases


@pytest.mark.parametrize(("ruleset", "capture", "inventory"), _samples())
def test_skipping_missing_flow_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, ruleset: str, capture: str, inventory: str | None
) -> None:
    rs = load_ruleset(ruleset)
    inv = load_inventory(SAMPLES / ruleset / inventory, rs) if inventory else None
    traffic = read_traffic([SAMPLES / ruleset / f"{capture}.pcap"])
    assert traffic.flows is not None
    flows = public_flows(traffic.flows)
    roles = resolve_roles(rs, flows, inv)
    shortcut = engine.run_checks(rs, flows, roles, 7200.0)
    monkeypatch.setattr(engine, "_may_miss", lambda *_: True)
    always = engine.run_checks(rs, flows, roles, 7200.0)
    assert shortcut == always


def test_evidence_lists_keep_first_appearance(tmp_path: Path) -> None:
    """Flows of one unexpected_port finding: refused, then answered (closed), then refused
    again; their states come once each, in the order the flows showed them."""
    c = synth.Capture()
    c.tcp_rejected("10.9.9.9", "10.10.1.1", 40000, 20202)
    c.tcp_session("10.9.9.9", "10.10.1.1", 40001, 20202, [(0, b"GET / HTTP/1.1\r\n\r\n")])
    c.tcp_rejected("10.9.9.9", "10.10.1.1", 40002, 20202)
    doc = engine.audit([c.write(tmp_path / "c.pcap")], load_ruleset("applayering")).document
    found: list[dict[str, Any]] = [f for f in doc["findings"] if f["dst_port"] == 20202]
    assert len(found) == 1
    assert found[0]["evidence"]["states"] == ["rejected", "closed"]
    assert found[0]["evidence"]["flows"] == 3
    assert len(found[0]["flow_ids"]) == 3
