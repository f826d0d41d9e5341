"""Waivers: a waived finding stays in every output, marked with its reason, and does not
count for the exit code; an expired waiver is a warning; a bad file is one line naming
the file and the line, exit USAGE."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.findings.model import Finding
from auditor.findings.waivers import WaiverError, apply_waivers, load_waivers

ROOT = Path(__file__).resolve().parent.parent
AL = ROOT / "samples" / "applayering"
ARGS = [str(AL / "findings.pcap"), "-r", "applayering", "-i", str(AL / "findings.inventory.yaml")]
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-2.1.0-schema.json"

# every finding of the sample at medium or above: the prohibited flows, 3 plaintext, the
# protocol mismatch, 2 unexpected_port, the address family
WAIVE_ALL = """\
waivers:
  - id: PLA-2f95d12e4ab0
    reason: BITS on 3009 until the HTTPS switch (CHG-1234)
    owner: alice@example.com
    expires: 2999-03-31
  - match: {kind: plaintext_disk_transfer, dst_ip: 10.10.0.0/24}
    reason: Hyper-V agent, same change
    owner: alice@example.com
    expires: 2999-03-31
  - match:
      kind: plaintext_where_tls_required
      src_role: admin
    reason: the admin console's test page
    owner: bob
    expires: "2999-01-01"
  - match: {kind: weak_tls, dst_port: 636}
    reason: the old domain controller, retired in spring
    owner: carol
    expires: 2999-05-01
  - match: {kind: unexpected_port, severity: medium}
    reason: being documented by the vendor
    owner: dave
    expires: 2999-05-01
  - match: {kind: prohibited_flow}
    reason: the lab appliance, isolated
    owner: erin
    expires: 2999-05-01
  - match: {kind: protocol_mismatch}
    reason: sslh in front of the console, being removed
    owner: erin
    expires: 2999-05-01
  - match: {kind: address_family}
    reason: IPv6 on the lab network only
    owner: erin
    expires: 2999-05-01
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="pcap-audit")


def waivers(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.yaml"
    path.write_text(text)
    return path


def test_waived_findings_stay_marked_and_do_not_count(tmp_path: Path) -> None:
    plain = run(*ARGS, "--format", "json")
    assert plain.exit_code == ExitCode.FINDINGS
    path = waivers(tmp_path, WAIVE_ALL)
    res = run(*ARGS, "--format", "json", "--waivers", str(path))
    assert res.exit_code == ExitCode.OK, res.output
    assert res.stderr == ""
    doc = json.loads(res.stdout)
    before = json.loads(plain.stdout)
    assert [f["id"] for f in doc["findings"]] == [f["id"] for f in before["findings"]]
    waived = {f["id"]: f["waiver"] for f in doc["findings"] if "waiver" in f}
    assert len(waived) == 12 == doc["summary"]["waived"]
    assert waived["PLA-2f95d12e4ab0"] == {
        "id": "PLA-2f95d12e4ab0",
        "reason": "BITS on 3009 until the HTTPS switch (CHG-1234)",
        "owner": "alice@example.com",
        "expires": "2999-03-31",
        "file": str(path),
        "line": 2,
    }
    assert waived["PLA-63c4e13bcd68"]["line"] == 6  # the match by kind and CIDR
    assert all(f["severity"] in ("low", "info") for f in doc["findings"] if "waiver" not in f)
    assert doc["summary"]["by_severity"] == before["summary"]["by_severity"]  # still counted
    assert doc["waivers"] == {"file": str(path), "waived": 12, "expired": [], "unused": []}
    # the low ones still count at --fail-on low
    assert run(*ARGS, "--waivers", str(path), "--fail-on", "low").exit_code == ExitCode.FINDINGS


def test_every_format_shows_the_waiver(tmp_path: Path) -> None:
    path = waivers(tmp_path, WAIVE_ALL)
    text = "waived until 2999-03-31 by alice@example.com: BITS on 3009 until the HTTPS switch"
    table = run(*ARGS, "--waivers", str(path)).stdout
    assert text in " ".join(table.split())
    markdown = run(*ARGS, "--waivers", str(path), "--format", "markdown").stdout
    assert "**waived until 2999-03-31 by alice@example.com: BITS on 3009" in markdown
    page = run(*ARGS, "--waivers", str(path), "--format", "html").stdout
    assert f'<span class="badge status-ok">waived</span> {text}' in page
    sarif = json.loads(run(*ARGS, "--waivers", str(path), "--format", "sarif").stdout)
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(sarif)] == []
    suppressed = [r for r in sarif["runs"][0]["results"] if r.get("suppressions")]
    assert len(suppressed) == 12
    justifications = [r["suppressions"][0]["justification"] for r in suppressed]
    assert any(j.startswith("BITS on 3009") for j in justifications)


def test_an_expired_waiver_is_a_warning_and_waives_nothing(tmp_path: Path) -> None:
    path = waivers(
        tmp_path,
        "waivers:\n"
        "  - id: PLA-2f95d12e4ab0\n"
        "    reason: until the change window\n"
        "    owner: alice\n"
        "    expires: 2020-01-31\n"
        "  - match: {kind: unknown_host}\n"
        "    reason: nobody\n"
        "    owner: bob\n"
        "    expires: 2020-01-01\n"
        "  - match: {kind: weak_tls, dst_port: 9999}\n"
        "    reason: nothing matches\n"
        "    owner: carol\n"
        "    expires: 2999-01-01\n",
    )
    res = run(*ARGS, "--format", "json", "--waivers", str(path))
    assert res.exit_code == ExitCode.FINDINGS
    assert res.stderr.splitlines() == [
        f"pcap-audit: {path}:2: warning: the waiver for finding PLA-2f95d12e4ab0 (owner alice) "
        "expired on 2020-01-31; 1 finding(s) count again",
        f"pcap-audit: {path}:6: warning: the waiver for findings matching kind=unknown_host "
        "(owner bob) expired on 2020-01-01; 1 finding(s) count again",
    ]
    doc = json.loads(res.stdout)
    assert not any("waiver" in f for f in doc["findings"])
    assert [w["line"] for w in doc["waivers"]["expired"]] == [2, 6]
    assert doc["waivers"]["expired"][0]["findings"] == ["PLA-2f95d12e4ab0"]
    assert [w["line"] for w in doc["waivers"]["unused"]] == [10]


def test_a_waiver_is_valid_through_its_expiry_day(tmp_path: Path) -> None:
    path = waivers(tmp_path, "waivers:\n- {id: X-1, reason: r, owner: o, expires: 2026-03-31}\n")
    loaded = load_waivers(path)
    for day, waived in ((date(2026, 3, 31), 1), (date(2026, 4, 1), 0)):
        findings = [Finding.from_json({"id": "X-1", "kind": "weak_tls", "severity": "medium"})]
        marked, outcome = apply_waivers(findings, loaded, today=day)
        assert outcome.waived == waived
        assert (marked[0].waiver is not None) == bool(waived)
        assert findings[0].waiver is None  # a new finding, the one given is frozen


BAD = {
    "not a list": ("waivers: 3\n", "1", "waivers: expected a list of waivers"),
    "no waivers key": (
        "- id: X\n",
        "1",
        "expected a mapping with the key 'waivers' (a list of waivers)",
    ),
    "unknown top key": (
        "waivers: []\nextra: 1\n",
        "2",
        "extra: unknown key 'extra'; the file holds only 'waivers'",
    ),
    "both id and match": (
        "waivers:\n  - id: X\n    match: {kind: weak_tls}\n    reason: r\n    owner: o\n    expires: 2026-01-01\n",
        "2",
        "waivers[0]: give either 'id' (one finding) or 'match' (finding fields), not both",
    ),
    "no reason": (
        "waivers:\n  - id: X\n    owner: o\n    expires: 2026-01-01\n",
        "2",
        "waivers[0]: 'reason' must be a non-empty text",
    ),
    "bad date": (
        "waivers:\n  - id: X\n    reason: r\n    owner: o\n    expires: soon\n",
        "5",
        "waivers[0].expires: expected a date YYYY-MM-DD, got 'soon'",
    ),
    "no expiry": (
        "waivers:\n  - id: X\n    reason: r\n    owner: o\n",
        "2",
        "waivers[0]: 'expires' is required: the date (YYYY-MM-DD) the waiver ends",
    ),
    "unknown key": (
        "waivers:\n  - id: X\n    reason: r\n    owner: o\n    expires: 2026-01-01\n    until: x\n",
        "6",
        "waivers[0].until: unknown key 'until'; allowed: id, match, reason, owner, expires",
    ),
    "unknown field": (
        "waivers:\n  - match:\n      port: 22\n    reason: r\n    owner: o\n    expires: 2026-01-01\n",
        "3",
        "waivers[0].match.port: unknown field 'port'; a match takes kind, severity, src_ip, "
        "dst_ip, src_role, dst_role, dst_port, proto, rule_id",
    ),
    "bad port": (
        "waivers:\n  - match: {dst_port: http}\n    reason: r\n    owner: o\n    expires: 2026-01-01\n",
        "2",
        "waivers[0].match.dst_port: expected a port number 0-65535, got 'http'",
    ),
    "bad kind": (
        "waivers:\n  - match: {kind: weak}\n    reason: r\n    owner: o\n    expires: 2026-01-01\n",
        "2",
        "waivers[0].match.kind: expected a finding kind (prohibited_flow, "
        "plaintext_disk_transfer, plaintext_where_tls_required, mtls_not_observed, weak_tls, "
        "protocol_mismatch, unexpected_port, address_family, missing_flow, unknown_host), "
        "got 'weak'",
    ),
    "bad address": (
        "waivers:\n  - match: {src_ip: 10.0.0.300}\n    reason: r\n    owner: o\n    expires: 2026-01-01\n",
        "2",
        "waivers[0].match.src_ip: expected an IP address or CIDR network, got '10.0.0.300'",
    ),
    "not yaml": ("waivers:\n  - id: [X\n", "3", None),
    "duplicate key": (
        "waivers:\n  - id: X\n    id: Y\n    reason: r\n    owner: o\n    expires: 2026-01-01\n",
        "3",
        "waivers[0].id: duplicate key 'id' (first at line 2)",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_waivers_file_is_one_line_with_file_and_line(tmp_path: Path, name: str) -> None:
    text, line, message = BAD[name]
    path = waivers(tmp_path, text)
    res = run(*ARGS, "--waivers", str(path))
    assert res.exit_code == ExitCode.USAGE
    assert res.stdout == ""
    (err,) = res.stderr.strip().splitlines()
    assert err.startswith(f"pcap-audit: {path}:{line}: "), err
    if message is not None:
        assert err == f"pcap-audit: {path}:{line}: {message}"
    with pytest.raises(WaiverError):
        load_waivers(path)


def test_a_missing_waivers_file(tmp_path: Path) -> None:
    res = run(*ARGS, "--waivers", str(tmp_path / "nope.yaml"))
    assert res.exit_code == ExitCode.USAGE
    assert res.stderr.strip() == f"pcap-audit: {tmp_path / 'nope.yaml'}: no such file"


def test_a_waived_new_finding_does_not_fail_the_diff(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    path = waivers(tmp_path, WAIVE_ALL)
    for capture in ("clean.pcap", "findings.pcap"):
        res = run(str(AL / capture), *ARGS[1:], "--store", str(store), "--waivers", str(path))
        assert res.exit_code == ExitCode.OK, res.output
    diff = run("diff", "--store", str(store), "--format", "json")
    assert diff.exit_code == ExitCode.OK
    new = json.loads(diff.stdout)["new_findings"]
    assert sum("waiver" in f for f in new) == 12
    assert run("diff", "--store", str(store), "--fail-on", "low").exit_code == ExitCode.FINDINGS
