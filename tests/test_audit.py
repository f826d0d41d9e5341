"""The audit end to end: each finding kind triggered and not, exit codes, formats, the API.

Every check gets a small synthetic capture (auditor.synth) that triggers it and a
near-identical one that must not, so a check that fires on everything or on nothing
fails here. The CLI is driven with click's CliRunner; the Python API
(``auditor.findings.engine.audit``) is called directly where the CLI adds nothing.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result
from screenshots import CHROMIUM, png_pixels, screenshot

from auditor import synth
from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.findings.engine import KINDS, AuditResult, audit
from auditor.report import FORMATS
from auditor.rules import Inventory, Ruleset, dump_inventory, load_inventory, load_ruleset
from auditor.traffic import Reading

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DATA = Path(__file__).parent / "data"
BAD_INVENTORIES = DATA / "bad_inventories"
SARIF_SCHEMA = DATA / "sarif-2.1.0-schema.json"
MB = 1_000_000

# App Layering hosts (the same plan as the samples)
APPLIANCE, PVS, HYPERV, ADMIN = "10.10.0.10", "10.10.0.21", "10.10.0.22", "10.10.0.50"
AD, FILES, NTP, STRANGER = "10.10.0.5", "10.10.0.6", "10.10.0.7", "10.10.0.99"
VCENTER, VDA = "10.10.0.40", "10.10.0.60"
AL_INVENTORY = {
    "appliance": [APPLIANCE],
    "agent": [PVS, HYPERV],
    "pvs_agent": [PVS],
    "hyperv_agent": [HYPERV],
    "admin": [ADMIN],
}
# the directory has an expected flow (appliance-ad-dns-udp): tests with it include `ad_dns`
AD_INVENTORY = {**AL_INVENTORY, "active_directory": [AD]}
# TAS Diego hosts
CC, DB, BRAIN, CELL, MYSQL = "10.20.0.10", "10.20.1.10", "10.20.2.10", "10.20.3.10", "10.20.5.10"
TD_INVENTORY = {
    "cloud_controller": [CC],
    "diego_database": [DB],
    "diego_brain": [BRAIN],
    "diego_cell": [CELL],
    "mysql_proxy": [MYSQL],
}

Build = Callable[[synth.Capture], object]


# --- helpers ---------------------------------------------------------------------------


def tls(c: synth.Capture, client: str, server: str, port: int, sport: int = 40000,
        version: str = "TLS 1.2", mutual: bool = False, client_cert: bool = True,
        size: int = 3000) -> None:  # fmt: skip
    c.tcp_session(client, server, sport, port,
                  synth.tls_handshake(version, mutual=mutual, client_cert=client_cert,
                                      app_bytes=size))  # fmt: skip


def http(c: synth.Capture, client: str, server: str, port: int, sport: int = 41000,
         method: str = "GET", target: str = "/", agent: str = "curl/8.5.0",
         response: int = 100_000) -> None:  # fmt: skip
    c.tcp_session(client, server, sport, port, [
        (0, synth.http_request(method, target, f"{server}:{port}", agent)),
        (1, synth.http_response(200, response)),
    ])  # fmt: skip


def ad_dns(c: synth.Capture) -> None:
    query, answer = synth.dns_exchange("dc1.corp.example", [AD])
    c.udp(APPLIANCE, AD, 52000, 53, query)
    c.udp(AD, APPLIANCE, 53, 52000, answer)


def ntp(c: synth.Capture, client: str, server: str) -> None:
    c.udp(client, server, 123, 123, b"\x23" + b"\x00" * 47)
    c.udp(server, client, 123, 123, b"\x24\x02" + b"\x00" * 46)


class Runner:
    """Builds captures in a temporary directory and audits them through the Python API."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.count = 0

    def pcap(self, *builds: Build) -> Path:
        c = synth.Capture()
        for build in builds:
            build(c)
        self.count += 1
        return c.write(self.dir / f"capture{self.count}.pcap")

    def result(self, *builds: Build, ruleset: str | Ruleset = "applayering",
               inventory: dict[str, list[str]] | None = None,
               fail_on: str = "never") -> AuditResult:  # fmt: skip
        rs = load_ruleset(ruleset) if isinstance(ruleset, str) else ruleset
        inv = Inventory.from_mapping(inventory, rs) if inventory is not None else None
        return audit([self.pcap(*builds)], rs, inv, fail_on=fail_on)

    def findings(self, *builds: Build, kind: str | None = None,
                 ruleset: str | Ruleset = "applayering",
                 inventory: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:  # fmt: skip
        doc = self.result(*builds, ruleset=ruleset, inventory=inventory).document
        return [f for f in doc["findings"] if kind is None or f["kind"] == kind]


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def only(findings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    assert len(findings) == 1, [f["message"] for f in findings]
    return findings[0]


def invoke(args: Sequence[object]) -> Result:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res


def write_inventory(path: Path, mapping: dict[str, list[str]], ruleset: str) -> Path:
    dump_inventory(mapping, path, ruleset=ruleset)
    return path


# --- plaintext_disk_transfer -------------------------------------------------------------


def test_disk_download_over_http_is_flagged_with_the_https_alternative(run: Runner) -> None:
    f = only(run.findings(
        lambda c: http(c, PVS, APPLIANCE, 3009, target="/disks/os.vhd",
                       agent="Microsoft BITS/7.8", response=2 * MB),
        inventory=AL_INVENTORY))  # fmt: skip
    assert f["kind"] == "plaintext_disk_transfer" and f["severity"] == "high"
    assert f["rule_id"] == "pvs-agent-disk-download-http"
    assert (f["src_ip"], f["dst_ip"], f["dst_port"], f["proto"]) == (PVS, APPLIANCE, 3009, "tcp")
    assert f["evidence"]["encrypted_alternative"] == "tcp/3509"
    assert f["evidence"]["user_agents"] == ["Microsoft BITS/7.8"]
    assert f["evidence"]["targets"] == ["/disks/os.vhd"]
    assert f["evidence"]["bytes_cleartext"] > 2 * MB
    assert "tcp/3509 (HTTPS)" in f["message"]
    assert f["source"]["document"] and f["source"]["text"]


def test_disk_download_over_https_is_not_flagged(run: Runner) -> None:
    assert run.findings(lambda c: tls(c, PVS, APPLIANCE, 3509, size=2 * MB),
                        inventory=AL_INVENTORY) == []  # fmt: skip


def test_bits_upload_over_http_is_flagged(run: Runner) -> None:
    f = only(run.findings(
        lambda c: c.tcp_session(HYPERV, APPLIANCE, 40001, 3015,
                                synth.bits_upload("/up/disk.vhdx", "elm:3015", MB)),
        inventory=AL_INVENTORY))  # fmt: skip
    assert (f["kind"], f["rule_id"]) == ("plaintext_disk_transfer", "hyperv-agent-disk-upload-http")
    assert f["evidence"]["http_methods"] == ["BITS_POST"]
    assert f["evidence"]["encrypted_alternative"] == "tcp/3515"


def test_disk_transfer_without_encrypted_alternative_is_low(run: Runner) -> None:
    f = only(run.findings(lambda c: http(c, PVS, APPLIANCE, 8787, response=80_000),
                          inventory=AL_INVENTORY))  # fmt: skip
    assert (f["kind"], f["severity"], f["rule_id"]) == (
        "plaintext_disk_transfer",
        "low",
        "agent-log-export",
    )
    assert f["evidence"]["encrypted_alternative"] is None
    assert "no encrypted alternative" in f["message"]


def test_cleartext_on_an_encrypted_disk_rule_is_a_disk_transfer_finding(run: Runner) -> None:
    f = only(run.findings(lambda c: http(c, PVS, APPLIANCE, 3509), inventory=AL_INVENTORY))
    assert (f["kind"], f["severity"], f["rule_id"]) == (
        "plaintext_disk_transfer",
        "high",
        "pvs-agent-disk-download-https",
    )
    assert "requires TLS" in f["message"]


def test_small_cleartext_on_a_disk_rule_is_not_a_disk_transfer(run: Runner) -> None:
    """An API call or a BITS set-up on a disk port moves no disk: below 64 KiB it is judged
    as cleartext where TLS is required (3509), and not at all where HTTP is documented (3009)."""
    f = only(run.findings(lambda c: http(c, PVS, APPLIANCE, 3509, response=2000),
                          inventory=AL_INVENTORY))  # fmt: skip
    assert (f["kind"], f["rule_id"]) == (
        "plaintext_where_tls_required",
        "pvs-agent-disk-download-https",
    )
    assert run.findings(lambda c: http(c, PVS, APPLIANCE, 3009, response=2000),
                        inventory=AL_INVENTORY) == []  # fmt: skip


# --- plaintext_where_tls_required --------------------------------------------------------


def test_cleartext_where_tls_is_required(run: Runner) -> None:
    f = only(run.findings(lambda c: http(c, ADMIN, APPLIANCE, 3509, agent="Mozilla/5.0"),
                          inventory=AL_INVENTORY))  # fmt: skip
    assert (f["kind"], f["severity"], f["rule_id"]) == (
        "plaintext_where_tls_required",
        "high",
        "admin-pvs-connector-https",
    )
    assert f["evidence"]["apps"] == ["http"]
    assert f["evidence"]["required_security"] == "tls"
    assert f["evidence"]["http_methods"] == ["GET"]
    assert f["evidence"]["payload_bytes"] > 2000


def test_tls_where_tls_is_required_is_not_flagged(run: Runner) -> None:
    assert run.findings(lambda c: tls(c, ADMIN, APPLIANCE, 3509), inventory=AL_INVENTORY) == []


def test_cleartext_on_a_cleartext_rule_is_not_flagged(run: Runner) -> None:
    # admin-pvs-connector-http: the document gives HTTP on 3009 for the connector
    assert run.findings(lambda c: http(c, ADMIN, APPLIANCE, 3009), inventory=AL_INVENTORY) == []


# --- mtls_not_observed -------------------------------------------------------------------


def test_mtls_without_client_certificate(run: Runner) -> None:
    f = only(run.findings(lambda c: tls(c, CELL, DB, 8889, mutual=True, client_cert=False),
                          kind="mtls_not_observed", ruleset="tas-diego",
                          inventory=TD_INVENTORY))  # fmt: skip
    # two documented components of the cell talk to the BBS on 8889: one finding, both rules
    assert (f["severity"], f["rule_id"]) == ("medium", "rep-bbs")
    assert f["evidence"]["matching_rules"] == ["rep-bbs", "route-emitter-bbs"]
    assert f["evidence"]["verifiable"] is True
    assert f["evidence"]["certificate_requested"] is True
    assert f["evidence"]["flows_without_client_certificate"] == 1
    assert f["evidence"]["tls_versions"] == ["TLS 1.2"]


def test_mtls_with_client_certificate_is_not_flagged(run: Runner) -> None:
    assert run.findings(lambda c: tls(c, CELL, DB, 8889, mutual=True), kind="mtls_not_observed",
                        ruleset="tas-diego", inventory=TD_INVENTORY) == []  # fmt: skip


def test_mtls_over_tls13_is_not_verifiable_and_info(run: Runner) -> None:
    f = only(run.findings(lambda c: tls(c, BRAIN, CELL, 1801, version="TLS 1.3"),
                          kind="mtls_not_observed", ruleset="tas-diego",
                          inventory=TD_INVENTORY))  # fmt: skip
    assert (f["severity"], f["rule_id"]) == ("info", "auctioneer-rep")
    assert f["evidence"]["verifiable"] is False
    assert "TLS 1.3" in f["evidence"]["reason"] and "not verifiable" in f["message"]
    assert f["evidence"]["tls_versions"] == ["TLS 1.3"]


def test_mtls_without_the_handshake_is_not_verifiable(run: Runner) -> None:
    def midstream(c: synth.Capture) -> None:
        c.tcp_session(CELL, DB, 40000, 8889, [(0, synth.app_data(3000)),
                                              (1, synth.app_data(3000, fill=0xA5))],
                      handshake=False)  # fmt: skip

    f = only(run.findings(midstream, kind="mtls_not_observed", ruleset="tas-diego",
                          inventory=TD_INVENTORY))  # fmt: skip
    assert f["severity"] == "info"
    assert f["evidence"]["verifiable"] is False
    assert "handshake is not in the capture" in f["evidence"]["reason"]
    assert f["evidence"]["tls_versions"] == []  # an array, as in the other evidence


# --- weak_tls ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["SSL 3.0", "TLS 1.0", "TLS 1.1"])
def test_weak_tls_versions_are_flagged(run: Runner, version: str) -> None:
    f = only(run.findings(lambda c: tls(c, APPLIANCE, VCENTER, 443, version=version),
                          inventory={**AL_INVENTORY, "vcenter": [VCENTER]}))  # fmt: skip
    assert (f["kind"], f["severity"], f["rule_id"]) == ("weak_tls", "medium", "appliance-vcenter")
    assert f["evidence"]["tls_versions"] == [version]
    assert f["evidence"]["policy_min_tls"] == "TLS 1.2"
    assert version in f["message"] and "TLS policy requires TLS 1.2 or later" in f["message"]
    assert "document_allows" not in f["evidence"]


@pytest.mark.parametrize("version", ["SSL 3.0", "TLS 1.1"])
def test_weak_tls_the_document_permits_quotes_the_allowance(run: Runner, version: str) -> None:
    # 003: AD binding "is compatible with the SSL 3.0 ... and TLS 1.1 and 1.2": the policy
    # (TLS 1.2) is broken, not the document, and the finding says so
    f = only(run.findings(ad_dns, lambda c: tls(c, APPLIANCE, AD, 636, version=version),
                          inventory=AD_INVENTORY))  # fmt: skip
    assert (f["kind"], f["severity"], f["rule_id"]) == ("weak_tls", "low", "appliance-ldaps")
    assert "The document permits " + version in f["message"]
    assert "compatible with the SSL 3.0 Secure Socket Layer and TLS 1.1 and 1.2" in f["message"]
    assert "the policy is broken, not the document" in f["message"]
    assert version in f["evidence"]["document_allows"]["versions"]


def test_weak_tls_outside_the_document_allowance_is_medium(run: Runner) -> None:
    f = only(run.findings(ad_dns, lambda c: tls(c, APPLIANCE, AD, 636, version="TLS 1.0"),
                          inventory=AD_INVENTORY))  # fmt: skip
    assert (f["kind"], f["severity"]) == ("weak_tls", "medium")
    assert "document_allows" not in f["evidence"] and "permits" not in f["message"]


@pytest.mark.parametrize(("min_tls", "version", "flagged"), [
    ("TLS 1.3", "TLS 1.2", True), ("TLS 1.3", "TLS 1.3", False),
    ("TLS 1.0", "TLS 1.0", False), ("TLS 1.0", "SSL 3.0", True),
])  # fmt: skip
def test_weak_tls_min_tls_option(tmp_path: Path, min_tls: str, version: str,
                                 flagged: bool) -> None:  # fmt: skip
    c = synth.Capture()
    tls(c, APPLIANCE, VCENTER, 443, version=version)
    pcap = c.write(tmp_path / "c.pcap")
    inv = write_inventory(tmp_path / "inv.yaml", {**AL_INVENTORY, "vcenter": [VCENTER]},
                          "applayering")  # fmt: skip
    res = invoke([pcap, "-r", "applayering", "-i", inv, "--min-tls", min_tls, "--format", "json"])
    doc = json.loads(res.output)
    weak = [f for f in doc["findings"] if f["kind"] == "weak_tls"]
    assert bool(weak) == flagged, doc["findings"]
    assert doc["ruleset"]["min_tls"] == min_tls
    if flagged:
        assert f"--min-tls requires {min_tls} or later" in weak[0]["message"]


def test_weak_tls_min_tls_option_rejects_a_bad_version(tmp_path: Path) -> None:
    c = synth.Capture()
    tls(c, APPLIANCE, VCENTER, 443)
    res = invoke([c.write(tmp_path / "c.pcap"), "-r", "applayering", "--min-tls", "TLS 9"])
    assert res.exit_code == ExitCode.USAGE
    assert "--min-tls" in res.output


def test_weak_tls_rule_policy_overrides_the_ruleset(run: Runner, tmp_path: Path) -> None:
    text = (ROOT / "rulesets" / "applayering.yaml").read_text()
    text = text.replace("tls:\n  min_version: TLS 1.2", "tls:\n  min_version: TLS 1.0", 1)
    marker = "  - id: appliance-vcenter\n"
    text = text.replace(marker, marker + "    tls: {min_version: TLS 1.3}\n", 1)
    path = tmp_path / "al.yaml"
    path.write_text(text)
    rs = load_ruleset(path)
    assert rs.min_tls == "TLS 1.0" and rs.rule("appliance-vcenter").min_tls == "TLS 1.3"
    inv = {**AD_INVENTORY, "vcenter": [VCENTER]}
    found = run.findings(ad_dns, lambda c: tls(c, APPLIANCE, VCENTER, 443, version="TLS 1.2"),
                         lambda c: tls(c, APPLIANCE, AD, 636, version="TLS 1.1", sport=40001),
                         ruleset=rs, inventory=inv)  # fmt: skip
    f = only(found)
    assert (f["kind"], f["rule_id"]) == ("weak_tls", "appliance-vcenter")
    assert "rule appliance-vcenter requires TLS 1.3 or later" in f["message"]


def test_a_flow_matching_several_rules_is_counted_once(run: Runner) -> None:
    res = run.result(lambda c: tls(c, CELL, DB, 8889, version="TLS 1.0", mutual=True),
                     ruleset="tas-diego", inventory=TD_INVENTORY)  # fmt: skip
    f = only([f for f in res.document["findings"] if f["kind"] == "weak_tls"])
    assert f["rule_id"] == "rep-bbs"
    assert f["evidence"]["matching_rules"] == ["rep-bbs", "route-emitter-bbs"]
    assert f["evidence"]["flows"] == 1 and len(f["flow_ids"]) == 1
    assert f["packets"] == res.document["summary"]["packets"]
    assert f["bytes"] == res.document["captures"][0]["bytes"]


@pytest.mark.parametrize("version", ["TLS 1.2", "TLS 1.3"])
def test_current_tls_versions_are_not_flagged(run: Runner, version: str) -> None:
    assert run.findings(ad_dns, lambda c: tls(c, APPLIANCE, AD, 636, version=version),
                        inventory=AD_INVENTORY) == []  # fmt: skip


# --- unexpected_port ---------------------------------------------------------------------


def test_port_not_documented_between_known_roles(run: Runner) -> None:
    rdp = b"\x03\x00\x00\x13" + b"\x0e" * 15
    f = only(run.findings(ad_dns, lambda c: c.tcp_session(APPLIANCE, AD, 40000, 3389, [(0, rdp)]),
                          inventory=AD_INVENTORY))  # fmt: skip
    assert (f["kind"], f["severity"], f["rule_id"]) == ("unexpected_port", "medium", None)
    assert (f["src_role"], f["dst_role"]) == ("appliance", "active_directory")
    assert "a port not documented between these roles" in f["message"]
    assert "tcp/636" in f["evidence"]["documented_between_roles"]
    assert f["source"] is None


def test_documented_port_between_known_roles_is_not_flagged(run: Runner) -> None:
    assert run.findings(ad_dns, lambda c: tls(c, APPLIANCE, AD, 636), inventory=AD_INVENTORY) == []


def test_port_documented_only_in_the_other_direction(run: Runner) -> None:
    f = only(run.findings(lambda c: tls(c, APPLIANCE, PVS, 443), inventory=AL_INVENTORY))
    assert (f["kind"], f["severity"], f["rule_id"]) == (
        "unexpected_port",
        "medium",
        "agent-registration",
    )
    assert "documented only in the other direction" in f["message"]
    assert f["evidence"]["reverse_rule_ids"] == ["agent-registration"]
    assert f["source"]["text"]
    # the right direction is documented
    assert run.findings(lambda c: tls(c, PVS, APPLIANCE, 443), inventory=AL_INVENTORY) == []


def test_no_documented_path_between_roles(run: Runner) -> None:
    inventory = {**AD_INVENTORY, "file_server": [FILES]}
    f = only(run.findings(lambda c: tls(c, AD, FILES, 445), kind="unexpected_port",
                          inventory=inventory))  # fmt: skip
    assert (f["kind"], f["rule_id"]) == ("unexpected_port", None)
    assert "no documented path between these roles" in f["message"]
    assert f["evidence"]["documented_between_roles"] == []


def test_unknown_peer_with_an_inventory_is_low(run: Runner) -> None:
    found = run.findings(lambda c: tls(c, STRANGER, APPLIANCE, 443), inventory=AL_INVENTORY)
    f = only([f for f in found if f["kind"] == "unexpected_port"])
    assert f["severity"] == "low" and f["rule_id"] is None
    assert f["src_role"] is None and f["dst_role"] == "appliance"
    assert f["evidence"]["unplaced_host"] == STRANGER
    assert "no role in the inventory" in f["message"]
    # the same host, placed in the inventory, is audited as its role and is fine
    placed = {**AL_INVENTORY, "admin": [ADMIN, STRANGER]}
    assert run.findings(lambda c: tls(c, STRANGER, APPLIANCE, 443), inventory=placed) == []


def test_hosts_outside_the_inventory_are_out_of_scope(run: Runner) -> None:
    assert run.findings(lambda c: tls(c, "10.9.9.1", "10.9.9.2", 9999),
                        inventory=AL_INVENTORY) == []  # fmt: skip


def test_undocumented_port_between_inferred_roles(run: Runner) -> None:
    def base(c: synth.Capture) -> None:
        for n, client in enumerate((ADMIN, PVS, "10.10.0.51", "10.10.0.52")):
            tls(c, client, APPLIANCE, 443, sport=40000 + n)
        tls(c, APPLIANCE, PVS, 8016, sport=40009)
        tls(c, APPLIANCE, AD, 636, sport=40010)
        tls(c, APPLIANCE, AD, 389, sport=40011)
        ad_dns(c)

    def rdp(c: synth.Capture) -> None:
        c.tcp_session(APPLIANCE, AD, 40020, 3389, [(0, b"\x03\x00\x00\x13" + b"\x0e" * 15)])

    doc = run.result(base, rdp).document
    roles = {h["ip"]: h["roles"] for h in doc["roles"]}
    assert roles[APPLIANCE] == ["appliance"] and roles[AD] == ["active_directory"]
    f = only(doc["findings"])
    assert (f["kind"], f["dst_port"], f["src_role"], f["dst_role"], f["severity"]) == (
        "unexpected_port",
        3389,
        "appliance",
        "active_directory",
        "medium",
    )
    assert "a port not documented between these roles" in f["message"]
    assert run.findings(base) == []


def test_port_documented_nowhere_without_roles(run: Runner) -> None:
    f = only(run.findings(lambda c: tls(c, "10.9.9.1", "10.9.9.2", 9999)))
    assert (f["kind"], f["severity"], f["rule_id"]) == ("unexpected_port", "low", None)
    assert f["src_role"] is None and f["dst_role"] is None
    assert "documented nowhere in the 'applayering' ruleset" in f["message"]
    # a port the ruleset documents somewhere is not flagged between unplaced hosts
    assert run.findings(lambda c: tls(c, "10.9.9.1", "10.9.9.2", 9440)) == []


def test_rejected_syn_counts_as_an_attempt(run: Runner) -> None:
    f = only(run.findings(lambda c: c.tcp_rejected(PVS, APPLIANCE, 40000, 22),
                          inventory=AL_INVENTORY))  # fmt: skip
    assert (f["kind"], f["dst_port"], f["severity"]) == ("unexpected_port", 22, "medium")
    assert f["evidence"]["states"] == ["rejected"]
    assert "RST" in f["evidence"]["note"]
    assert f["packets"] == 2
    # rejected on a documented port: nothing unexpected
    assert run.findings(lambda c: c.tcp_rejected(ADMIN, APPLIANCE, 40000, 22),
                        inventory=AL_INVENTORY) == []  # fmt: skip


def test_refused_attempts_give_the_client_no_inferred_role(run: Runner) -> None:
    # An agent probing the appliance's connector ports (documented for admins only, every
    # attempt refused) must not be inferred as an admin: that would make its probes look
    # documented and hide them.
    def agent(c: synth.Capture) -> None:
        tls(c, APPLIANCE, PVS, 8016, sport=40001)
        tls(c, PVS, APPLIANCE, 443, sport=40002)
        tls(c, ADMIN, APPLIANCE, 3512, sport=40003)

    def probe(c: synth.Capture) -> None:
        for n, port in enumerate((3000, 3002, 3004, 3006)):
            c.tcp_rejected(PVS, APPLIANCE, 40100 + n, port)

    assert run.findings(agent) == []
    doc = run.result(agent, probe).document
    roles = {h["ip"]: h["roles"] for h in doc["roles"]}
    assert roles[PVS] == ["agent"] and roles[APPLIANCE] == ["appliance"], roles
    found = [f for f in doc["findings"] if f["src_ip"] == PVS]
    assert [f["dst_port"] for f in found] == [3000, 3002, 3004, 3006]
    for f in found:
        assert (f["kind"], f["severity"]) == ("unexpected_port", "medium")
        assert f["evidence"]["states"] == ["rejected"]


# --- missing_flow ------------------------------------------------------------------------

NTP_INVENTORY = {"appliance": [APPLIANCE], "admin": [ADMIN], "ntp_server": [NTP]}


def _console_for(seconds: float) -> Build:
    def build(c: synth.Capture) -> None:
        tls(c, ADMIN, APPLIANCE, 443, sport=40000)
        c.at(seconds)
        tls(c, ADMIN, APPLIANCE, 443, sport=40001)

    return build


@pytest.mark.parametrize(
    ("seconds", "severity"),
    [(60, "info"), (3599, "info"), (3600, "low"), (86399, "low"), (86400, "medium"),
     (3 * 86400, "medium")],
)  # fmt: skip
def test_missing_flow_is_graded_by_capture_duration(run: Runner, seconds: float,
                                                    severity: str) -> None:  # fmt: skip
    res = run.result(_console_for(seconds), inventory=NTP_INVENTORY)
    f = only(res.document["findings"])
    assert (f["kind"], f["rule_id"], f["severity"]) == ("missing_flow", "appliance-ntp-udp",
                                                        severity)  # fmt: skip
    assert f["src_ip"] is None and f["dst_ip"] is None and f["flow_ids"] == []
    assert (f["src_role"], f["dst_role"], f["proto"], f["dst_port"]) == (
        "appliance",
        "ntp_server",
        "udp",
        123,
    )
    assert f["evidence"]["src_hosts"] == [APPLIANCE] and f["evidence"]["dst_hosts"] == [NTP]
    duration = res.document["summary"]["duration_s"]
    assert seconds <= duration < seconds + 1
    assert f["evidence"]["capture_duration_s"] == pytest.approx(duration, abs=1e-3)


def test_seen_flow_is_not_missing(run: Runner) -> None:
    assert run.findings(_console_for(86400), lambda c: ntp(c, APPLIANCE, NTP),
                        inventory=NTP_INVENTORY) == []  # fmt: skip


def test_missing_flow_needs_both_roles(run: Runner) -> None:
    inv = {"appliance": [APPLIANCE], "admin": [ADMIN]}
    assert run.findings(_console_for(86400), inventory=inv) == []


def test_inventory_host_not_in_the_capture_still_makes_its_role_present(run: Runner) -> None:
    f = only(run.findings(_console_for(60), kind="missing_flow",
                          inventory={**NTP_INVENTORY, "ntp_server": ["10.10.0.8"]}))  # fmt: skip
    assert f["evidence"]["dst_hosts"] == ["10.10.0.8"]


# --- a user ruleset: pairs and severity overrides ------------------------------------

USER_RULESET = """\
name: acme-backup
title: ACME Backup appliance (test)
source_documents:
  - file: acme-backup-ports.pdf
    title: ACME Backup 7 installation guide, appendix B
roles:
  - id: backup_server
    description: The ACME backup server.
  - id: backup_agent
    description: A host running the ACME backup agent.
flows:
  - id: agent-data-http
    from: backup_agent
    to: backup_server
    ports: 8080
    app: http
    security: none
    disk_transfer: true
    transfer: upload
    expected: true
    pair: agent-data-https{http_severity}
    source:
      document: acme-backup-ports.pdf
      section: Table B-1
      text: "Agent | Server | 8080 (HTTP), 8443 (HTTPS) | Backup data"
  - id: agent-data-https
    from: backup_agent
    to: backup_server
    ports: 8443
    app: https
    security: mtls
    disk_transfer: true
    transfer: upload
    expected: true
    pair: agent-data-http{https_severity}
    source:
      document: acme-backup-ports.pdf
      section: Table B-1
      text: "Agent | Server | 8080 (HTTP), 8443 (HTTPS) | Backup data"
  - id: server-heartbeat
    from: backup_server
    to: backup_agent
    proto: udp
    ports: ["9100-9105"]
    app: unspecified
    security: unspecified
    source:
      document: acme-backup-ports.pdf
      section: Table B-2
      text: "Server | Agent | UDP 9100-9105 | Heartbeat"
"""
OVERRIDES = {
    "http_severity": "\n    severity:\n      plaintext_disk_transfer: medium",
    "https_severity": "\n    severity:\n      mtls_not_observed: high\n      missing_flow: high",
}
SERVER, AGENT = "192.0.2.10", "192.0.2.20"
ACME_INVENTORY = {"backup_server": [SERVER], "backup_agent": [AGENT]}


def user_ruleset(tmp_path: Path, overrides: bool = True) -> Ruleset:
    text = USER_RULESET.format(**(OVERRIDES if overrides else dict.fromkeys(OVERRIDES, "")))
    path = tmp_path / ("acme.yaml" if overrides else "acme-defaults.yaml")
    path.write_text(text, encoding="utf-8")
    return load_ruleset(path)


def heartbeat(seconds: float = 0) -> Build:
    def build(c: synth.Capture) -> None:
        c.udp(SERVER, AGENT, 40000, 9103, b"\x01" * 20)
        c.at(seconds)
        c.udp(SERVER, AGENT, 40000, 9103, b"\x02" * 20)
        c.udp(AGENT, SERVER, 9103, 40000, b"\x03" * 20)

    return build


def test_user_ruleset_loads(tmp_path: Path) -> None:
    rs = user_ruleset(tmp_path)
    assert rs.name == "acme-backup" and len(rs.flows) == 3
    assert {r.id: r.severity for r in rs.flows}["agent-data-https"] == {
        "mtls_not_observed": "high",
        "missing_flow": "high",
    }


@pytest.mark.parametrize(("overrides", "severity"), [(True, "medium"), (False, "high")])
def test_severity_override_plaintext_disk_transfer(run: Runner, tmp_path: Path,
                                                   overrides: bool, severity: str) -> None:  # fmt: skip
    f = only(run.findings(lambda c: http(c, AGENT, SERVER, 8080, method="PUT"),
                          ruleset=user_ruleset(tmp_path, overrides), inventory=ACME_INVENTORY))  # fmt: skip
    assert (f["kind"], f["rule_id"], f["severity"]) == (
        "plaintext_disk_transfer",
        "agent-data-http",
        severity,
    )
    assert f["evidence"]["encrypted_alternative"] == "tcp/8443"


@pytest.mark.parametrize(("overrides", "severity"), [(True, "high"), (False, "medium")])
def test_severity_override_mtls(run: Runner, tmp_path: Path, overrides: bool,
                                severity: str) -> None:  # fmt: skip
    rs = user_ruleset(tmp_path, overrides)
    f = only(run.findings(lambda c: tls(c, AGENT, SERVER, 8443, mutual=True, client_cert=False),
                          ruleset=rs, inventory=ACME_INVENTORY))  # fmt: skip
    assert (f["kind"], f["severity"]) == ("mtls_not_observed", severity)
    # not verifiable stays info whatever the override
    f = only(run.findings(lambda c: tls(c, AGENT, SERVER, 8443, version="TLS 1.3"),
                          ruleset=rs, inventory=ACME_INVENTORY))  # fmt: skip
    assert (f["kind"], f["severity"]) == ("mtls_not_observed", "info")


@pytest.mark.parametrize(
    ("overrides", "seconds", "severity"),
    [(True, 86400, "high"), (False, 86400, "medium"), (True, 60, "info"), (False, 60, "info")],
)  # fmt: skip
def test_severity_override_missing_flow(run: Runner, tmp_path: Path, overrides: bool,
                                        seconds: float, severity: str) -> None:  # fmt: skip
    f = only(run.findings(heartbeat(seconds), ruleset=user_ruleset(tmp_path, overrides),
                          inventory=ACME_INVENTORY))  # fmt: skip
    assert (f["kind"], f["severity"]) == ("missing_flow", severity)


def test_missing_pair_is_one_finding_on_the_encrypted_variant(run: Runner, tmp_path: Path) -> None:
    f = only(run.findings(heartbeat(86400), ruleset=user_ruleset(tmp_path, False),
                          inventory=ACME_INVENTORY))  # fmt: skip
    assert (f["kind"], f["rule_id"]) == ("missing_flow", "agent-data-https")
    assert f["evidence"]["pair"] == "agent-data-http"


@pytest.mark.parametrize("port", [8080, 8443])
def test_either_variant_of_a_pair_satisfies_it(run: Runner, tmp_path: Path, port: int) -> None:
    def data(c: synth.Capture) -> None:
        if port == 8443:
            tls(c, AGENT, SERVER, 8443, mutual=True)
        else:
            http(c, AGENT, SERVER, 8080, method="PUT")

    found = run.findings(heartbeat(86400), data, ruleset=user_ruleset(tmp_path, False),
                         inventory=ACME_INVENTORY)  # fmt: skip
    assert not [f for f in found if f["kind"] == "missing_flow"]
    assert len(found) == (1 if port == 8080 else 0)  # the cleartext upload itself


# --- unknown_host ------------------------------------------------------------------------


def test_unknown_host_with_an_inventory(run: Runner) -> None:
    f = only(run.findings(lambda c: tls(c, STRANGER, APPLIANCE, 443), kind="unknown_host",
                          inventory=AL_INVENTORY))  # fmt: skip
    assert (f["severity"], f["src_ip"], f["dst_ip"], f["dst_port"], f["proto"]) == (
        "info",
        STRANGER,
        None,
        None,
        None,
    )
    frames = f["evidence"].pop("frames")
    assert f["evidence"] == {
        "peers": [APPLIANCE],
        "ports": ["tcp/443"],
        "peer_roles": ["appliance"],
    }
    assert len(frames) == 1 and frames[0].endswith("capture1.pcap frames 1-16")
    assert f["rule_id"] is None and f["source"] is None


def test_no_unknown_host_without_an_inventory(run: Runner) -> None:
    assert run.findings(lambda c: tls(c, STRANGER, APPLIANCE, 443), kind="unknown_host") == []


def test_no_unknown_host_when_every_host_is_placed(run: Runner) -> None:
    assert run.findings(lambda c: tls(c, ADMIN, APPLIANCE, 443), kind="unknown_host",
                        inventory=AL_INVENTORY) == []  # fmt: skip


@pytest.mark.parametrize("ruleset", ["applayering", "kubernetes", "tas-diego", "uforge"])
def test_role_pairs_agree_with_unexpected_port(ruleset: str) -> None:
    # docs/json-contract.md: "observed && !documented is what unexpected_port (or, for a
    # flow the ruleset forbids, prohibited_flow) reports"
    rs = load_ruleset(ruleset)
    folder = SAMPLES / ruleset
    doc = audit([folder / "findings.pcap"], rs,
                load_inventory(folder / "findings.inventory.yaml", rs)).document  # fmt: skip
    reported = {
        (a, b, f["proto"], f["dst_port"])
        for f in doc["findings"]
        if f["kind"] in ("unexpected_port", "prohibited_flow") and f["src_role"] and f["dst_role"]
        for a in f["src_role"].split("+") for b in f["dst_role"].split("+")
    }  # fmt: skip
    # a forbidden protocol on a documented port is documented between the roles, and forbidden
    reported -= {
        (p["src_role"], p["dst_role"], p["proto"], p["dst_port"])
        for p in doc["role_pairs"] if p["documented"]
    }  # fmt: skip
    pairs = {
        (p["src_role"], p["dst_role"], p["proto"], p["dst_port"]): p for p in doc["role_pairs"]
    }
    undocumented = {k for k, p in pairs.items() if p["observed"] and not p["documented"]}
    assert undocumented == reported
    for k, p in pairs.items():
        assert p["observed"] == (p["flows"] > 0), k
        assert p["documented"] == bool(p["rule_ids"]), k
    assert sum(p["flows"] for p in pairs.values() if p["observed"]) >= 1


def test_every_kind_is_covered_here() -> None:
    import test_restrictions  # the kinds of what the documents forbid or restrict

    names = {n for n in [*globals(), *vars(test_restrictions)] if n.startswith("test_")}
    words = {
        "plaintext_disk_transfer": "disk", "plaintext_where_tls_required": "cleartext_where",
        "mtls_not_observed": "mtls", "weak_tls": "weak_tls", "unexpected_port": "port",
        "missing_flow": "missing", "unknown_host": "unknown_host",
        "prohibited_flow": "prohibited", "protocol_mismatch": "protocol_mismatch",
        "address_family": "ipv4_only_role",
    }  # fmt: skip
    assert set(words) == set(KINDS)
    for kind, word in words.items():
        assert any(word in n for n in names), kind


# --- exit codes ------------------------------------------------------------------------


def _sample(ruleset: str, kind: str) -> list[str]:
    folder = SAMPLES / ruleset
    return [str(folder / f"{kind}.pcap"), "--ruleset", ruleset,
            "--inventory", str(folder / f"{kind}.inventory.yaml")]  # fmt: skip


@pytest.mark.parametrize(
    ("fail_on", "code"),
    [("high", 1), ("medium", 1), ("low", 1), ("info", 1), ("never", 0)],
)  # fmt: skip
def test_exit_code_findings(fail_on: str, code: int) -> None:
    res = invoke([*_sample("applayering", "findings"), "--fail-on", fail_on, "--format", "json"])
    assert res.exit_code == code
    assert json.loads(res.stdout)["summary"]["exit_code"] == code


@pytest.mark.parametrize(
    ("fail_on", "code"),
    [("high", 0), ("medium", 0), ("low", 1), ("info", 1), ("never", 0)],
)  # fmt: skip
def test_exit_code_follows_the_worst_severity(tmp_path: Path, fail_on: str, code: int) -> None:
    # an unplaced client: unexpected_port (low) and unknown_host (info), nothing worse
    pcap = Runner(tmp_path).pcap(lambda c: tls(c, STRANGER, APPLIANCE, 443))
    inv = write_inventory(tmp_path / "hosts.yaml", AL_INVENTORY, "applayering")
    res = invoke([pcap, "-r", "applayering", "-i", inv, "--fail-on", fail_on, "--format", "json"])
    doc = json.loads(res.stdout)
    assert {f["severity"] for f in doc["findings"]} == {"low", "info"}
    assert res.exit_code == code == doc["summary"]["exit_code"]


def test_exit_code_default_fail_on_is_medium(tmp_path: Path) -> None:
    assert invoke(_sample("applayering", "findings")).exit_code == ExitCode.FINDINGS
    assert invoke(_sample("applayering", "clean")).exit_code == ExitCode.OK


@pytest.mark.parametrize("fail_on", ["high", "info"])
def test_exit_code_clean(fail_on: str) -> None:
    res = invoke([*_sample("uforge", "clean"), "--fail-on", fail_on])
    assert res.exit_code == ExitCode.OK
    assert "0 findings" in res.stdout


BAD_INPUT: dict[str, tuple[list[object], str]] = {
    "unknown ruleset": (["-r", "no-such-ruleset"], "unknown ruleset"),
    "ruleset file missing": (["-r", "missing.yaml"], "missing.yaml"),
    "bad inventory": (["-r", "applayering", "-i", BAD_INVENTORIES / "bad_ip.yaml"],
                      "bad_ip.yaml:6: roles.agent[1]"),
    "unknown role in inventory": (["-r", "applayering", "-i",
                                   BAD_INVENTORIES / "unknown_role.yaml"],
                                  "unknown role 'applaince'"),
    "inventory missing": (["-r", "applayering", "-i", "nowhere.yaml"], "nowhere.yaml"),
    "bad option": (["-r", "applayering", "--bogus"], "No such option"),
    "bad fail-on": (["-r", "applayering", "--fail-on", "critical"], "--fail-on"),
    "bad format": (["-r", "applayering", "--format", "pdf"], "--format"),
    "no ruleset": ([], "--ruleset"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_exit_code_usage(case: str) -> None:
    args, said = BAD_INPUT[case]
    res = invoke([SAMPLES / "applayering" / "clean.pcap", *args])
    assert res.exit_code == ExitCode.USAGE, res.output
    assert said in res.stderr
    assert res.stdout == ""


def test_exit_code_usage_without_capture() -> None:
    res = invoke(["audit", "-r", "applayering"])
    assert res.exit_code == ExitCode.USAGE
    assert "CAPTURES" in res.stderr


def _bad_captures(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty.pcap").write_bytes(b"")
    (tmp_path / "notes.pcap").write_text("<html>not a capture</html>\n")
    return {"missing": tmp_path / "missing.pcap", "empty": tmp_path / "empty.pcap",
            "foreign": tmp_path / "notes.pcap"}  # fmt: skip


@pytest.mark.parametrize("bad", ["missing", "empty", "foreign"])
@pytest.mark.parametrize("fail_on", ["never", "info"])
def test_exit_code_capture(tmp_path: Path, bad: str, fail_on: str) -> None:
    path = _bad_captures(tmp_path)[bad]
    good = SAMPLES / "applayering" / "findings.pcap"
    res = invoke([good, path, "-r", "applayering", "-i",
                  SAMPLES / "applayering" / "findings.inventory.yaml",
                  "--format", "json", "--fail-on", fail_on])  # fmt: skip
    code = ExitCode.CAPTURE | (ExitCode.FINDINGS if fail_on == "info" else ExitCode.OK)
    assert res.exit_code == code
    assert res.stderr.count("\n") == 1 and str(path) in res.stderr
    doc = json.loads(res.stdout)
    assert doc["summary"]["exit_code"] == code
    assert [c["path"] for c in doc["captures"]] == [str(good), str(path)]
    assert doc["captures"][0]["error"] is None and doc["captures"][0]["packets"] > 0
    assert doc["captures"][1]["error"] and doc["captures"][1]["packets"] == 0
    # the readable capture was still audited in full
    expected = json.loads((SAMPLES / "applayering" / "findings.expected.json").read_text())
    assert [f["id"] for f in doc["findings"]] == [f["id"] for f in expected["findings"]]


def test_exit_code_capture_all_bad_at_once(tmp_path: Path) -> None:
    bad = _bad_captures(tmp_path)
    res = invoke([*bad.values(), SAMPLES / "uforge" / "clean.pcap", "-r", "uforge",
                  "--format", "json"])  # fmt: skip
    assert res.exit_code == ExitCode.CAPTURE
    lines = res.stderr.splitlines()
    assert len(lines) == 3
    for line, path in zip(lines, bad.values(), strict=True):
        assert line.startswith(f"pcap-audit: {path}")
    assert "no such file" in lines[0] and "empty" in lines[1] and "not a pcap" in lines[2]
    doc = json.loads(res.stdout)
    assert doc["summary"]["packets"] > 0 and len(doc["captures"]) == 4


def test_exit_code_capture_only_bad(tmp_path: Path) -> None:
    res = invoke([tmp_path / "missing.pcap", "-r", "applayering", "--format", "json"])
    assert res.exit_code == ExitCode.CAPTURE
    doc = json.loads(res.stdout)
    assert doc["findings"] == [] and doc["summary"]["packets"] == 0


# --- output formats --------------------------------------------------------------------


def _check_format(fmt: str, text: str, doc: dict[str, Any]) -> None:
    assert text.endswith("\n")
    n = len(doc["findings"])
    if fmt == "json":
        assert json.loads(text) == doc
    elif fmt == "sarif":
        sarif = json.loads(text)
        schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
        validator = jsonschema.validators.validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(sarif), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
        run = sarif["runs"][0]
        assert len(run["results"]) == n
        assert [r["partialFingerprints"]["pcapAuditFindingId/v1"] for r in run["results"]] == [
            f["id"] for f in doc["findings"]
        ]
        assert run["invocations"][0]["exitCode"] == doc["summary"]["exit_code"]
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        problems = sum(1 if c["error"] else len(c.get("warnings") or []) for c in doc["captures"])
        assert rows[0][:3] == ["id", "severity", "kind"] and len(rows) == n + 1 + problems
        assert [r[0] for r in rows[1 : n + 1]] == [f["id"] for f in doc["findings"]]
        assert all(r[2] in ("capture_error", "capture_warning") for r in rows[n + 1 :])
    elif fmt == "markdown":
        assert "## Findings" in text
        assert sum(1 for f in doc["findings"] if f["id"] in text) == n
    elif fmt == "html":
        assert text.lstrip().lower().startswith("<!doctype html>")
        assert text.rstrip().endswith("</html>")
        assert all(f["id"] in text for f in doc["findings"])
    elif fmt == "table":
        assert f"{n} findings" in text.splitlines()[-1]
        assert "\x1b[" not in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_to_stdout_and_to_a_file(fmt: str, tmp_path: Path) -> None:
    args = [*_sample("tas-diego", "findings"), "--fail-on", "never"]
    doc = json.loads(invoke([*args, "--format", "json"]).stdout)
    to_stdout = invoke([*args, "--format", fmt])
    assert to_stdout.exit_code == 0 and to_stdout.stderr == ""
    out = tmp_path / f"report.{fmt}"
    to_file = invoke([*args, "--format", fmt, "-o", out])
    assert to_file.exit_code == 0
    assert to_file.stdout == "" and to_file.stderr == ""
    text = out.read_text(encoding="utf-8")
    assert text == to_stdout.stdout
    _check_format(fmt, text, doc)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_with_a_bad_capture(fmt: str, tmp_path: Path) -> None:
    bad = _bad_captures(tmp_path)["foreign"]
    args: list[object] = [SAMPLES / "uforge" / "findings.pcap", bad, "-r", "uforge"]
    args += ["--fail-on", "never"]
    doc = json.loads(invoke([*args, "--format", "json"]).stdout)
    res = invoke([*args, "--format", fmt])
    assert res.exit_code == ExitCode.CAPTURE
    _check_format(fmt, res.stdout, doc)
    if fmt != "csv":  # CSV is one row per finding, nothing else
        assert "notes.pcap" in res.stdout


def test_sarif_for_every_sample_validates(tmp_path: Path) -> None:
    for pcap in sorted(SAMPLES.glob("*/*.pcap")):
        args = [*_sample(pcap.parent.name, pcap.stem), "--fail-on", "never"]
        doc = json.loads(invoke([*args, "--format", "json"]).stdout)
        _check_format("sarif", invoke([*args, "--format", "sarif"]).stdout, doc)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_html_of_a_sample_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    res = invoke([*_sample("applayering", "findings"), "--fail-on", "never",
                  "--format", "html", "-o", page])  # fmt: skip
    assert res.exit_code == 0
    width, height, pixels = png_pixels(screenshot(page, tmp_path, 1280, 2400))
    assert (width, height) == (1280, 2400)
    assert len(set(pixels[::101])) > 50  # not a blank page


# --- the Python API --------------------------------------------------------------------


def test_api_gives_the_cli_document() -> None:
    folder = SAMPLES / "tas-diego"
    rs = load_ruleset("tas-diego")
    inv = load_inventory(folder / "findings.inventory.yaml", rs)
    seen: list[Reading] = []
    res = audit([folder / "findings.pcap"], rs, inv, fail_on="medium", progress=seen.append)
    assert isinstance(res, AuditResult)
    assert res.exit_code == ExitCode.FINDINGS and res.errors == []
    assert {r.path for r in seen} == {str(folder / "findings.pcap")}
    assert seen[0].packets == 0 and seen[-1].packets == res.document["summary"]["packets"]
    cli_doc = json.loads(invoke([*_sample("tas-diego", "findings"), "--format", "json"]).stdout)
    assert res.document == cli_doc
    assert res.document["summary"]["exit_code"] == 1 and res.document["fail_on"] == "medium"
    assert res.traffic.flows is not None
    assert res.traffic.flows.num_rows == res.document["summary"]["flows"]
    # the document is plain JSON data
    assert json.loads(json.dumps(res.document)) == res.document


def test_api_reports_unreadable_captures(tmp_path: Path) -> None:
    bad = _bad_captures(tmp_path)
    res = audit([*bad.values(), SAMPLES / "uforge" / "clean.pcap"], load_ruleset("uforge"))
    assert res.exit_code == ExitCode.CAPTURE
    assert len(res.errors) == 3 and all(isinstance(e, str) for e in res.errors)
    assert res.document["summary"]["packets"] > 0


@pytest.mark.parametrize("fail_on", ["high", "medium", "low", "info", "never"])
def test_api_exit_code(fail_on: str) -> None:
    rs = load_ruleset("uforge")
    inv = load_inventory(SAMPLES / "uforge" / "findings.inventory.yaml", rs)
    res = audit([SAMPLES / "uforge" / "findings.pcap"], rs, inv, fail_on=fail_on)
    assert res.exit_code == (ExitCode.OK if fail_on == "never" else ExitCode.FINDINGS)


def test_finding_ids_are_stable_across_counts(run: Runner) -> None:
    once = only(run.findings(ad_dns, lambda c: tls(c, APPLIANCE, AD, 636, version="TLS 1.0"),
                             inventory=AD_INVENTORY))  # fmt: skip

    def twice(c: synth.Capture) -> None:
        tls(c, APPLIANCE, AD, 636, sport=40000, version="TLS 1.0")
        c.at(30)
        tls(c, APPLIANCE, AD, 636, sport=40001, version="TLS 1.0", size=9000)

    again = only(run.findings(ad_dns, twice, inventory=AD_INVENTORY))
    assert again["id"] == once["id"] and again["evidence"]["flows"] == 2
    assert again["packets"] > once["packets"]


# --- directories as CAPTURE ----------------------------------------------------------


def test_directory_is_walked_recursively(tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    first = runner.pcap(ad_dns, lambda c: tls(c, APPLIANCE, AD, 636, version="TLS 1.0"))
    second = runner.pcap(lambda c: c.at(30), lambda c: c.tcp_rejected(PVS, APPLIANCE, 40000, 22))
    tree = tmp_path / "night"
    (tree / "b" / "deeper").mkdir(parents=True)
    shutil.copy(first, tree / "a.pcap")
    shutil.copy(second, tree / "b" / "deeper" / "c.pcap")
    (tree / "README.txt").write_text("not a capture")
    inv = write_inventory(tmp_path / "hosts.yaml", AD_INVENTORY, "applayering")
    base: list[object] = ["-r", "applayering", "-i", inv, "--format", "json", "--fail-on", "never"]
    res = invoke([tree, *base])
    by_dir = json.loads(res.stdout)
    by_files = json.loads(invoke([tree / "a.pcap", tree / "b" / "deeper" / "c.pcap", *base]).stdout)
    assert [c["path"] for c in by_dir["captures"]] == [
        str(tree / "a.pcap"),
        str(tree / "b" / "deeper" / "c.pcap"),
    ]
    # the README is skipped and said, not a capture problem
    assert res.exit_code == ExitCode.OK
    assert (
        res.stderr
        == f"pcap-audit: {tree / 'README.txt'}: skipped, not a capture (starts with 6e 6f 74 20)\n"
    )
    assert by_dir["summary"].pop("skipped_files") == 1
    assert by_files["summary"].pop("skipped_files") == 0
    assert by_dir == by_files
    assert {f["kind"] for f in by_dir["findings"]} == {"weak_tls", "unexpected_port"}
    assert by_dir["summary"]["duration_s"] >= 30


def test_directory_without_captures_is_a_capture_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = invoke([tmp_path / "empty", "-r", "applayering", "--format", "json"])
    assert res.exit_code == ExitCode.CAPTURE
    assert "no capture files" in res.stderr


# --- role inference ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ruleset", "ip", "role", "evidence"),
    [
        ("applayering", "10.10.0.10", "appliance", "appliance: answered on tcp/443"),
        ("tas-diego", "10.20.1.10", "diego_database", "diego_database: answered on tcp/8889"),
        ("uforge", "10.30.0.10", "uforge", "uforge: connected to tcp/9292"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["clean", "findings"])
def test_roles_are_inferred_with_evidence(request: pytest.FixtureRequest, ruleset: str, ip: str, role: str, evidence: str,
                                          kind: str) -> None:  # fmt: skip
    res = invoke(["roles", SAMPLES / ruleset / f"{kind}.pcap", "-r", ruleset, "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ruleset"] == ruleset
    hosts = {h["ip"]: h for h in doc["roles"]}
    host = hosts[ip]
    assert role in host["roles"]
    assert host["source"] == "inferred"
    assert 0.5 <= host["confidence"] <= 0.95
    assert any(e.startswith(evidence) for e in host["evidence"]), host["evidence"]
    assert all(h["source"] == "inferred" for h in doc["roles"])


@pytest.mark.parametrize("ruleset", ["applayering", "kubernetes", "tas-diego", "uforge"])
def test_inferred_inventory_loads_back(ruleset: str, tmp_path: Path) -> None:
    pcap = SAMPLES / ruleset / "findings.pcap"
    inferred = json.loads(invoke(["roles", pcap, "-r", ruleset, "--format", "json"]).stdout)
    out = tmp_path / "hosts.yaml"
    res = invoke(["roles", pcap, "-r", ruleset, "--format", "inventory", "-o", out])
    assert res.exit_code == 0 and res.stdout == ""
    assert out.read_text() == invoke(["roles", pcap, "-r", ruleset, "--format", "inventory"]).stdout
    text = out.read_text()
    assert text.startswith(f'ruleset: "{ruleset}"\n')
    for host in inferred["roles"]:  # each placement says why, for the person correcting it
        assert f'- "{host["ip"]}"  # inferred, confidence {host["confidence"]:.2f}; ' in text
    inv = load_inventory(out, ruleset)
    for host in inferred["roles"]:
        assert sorted(inv.roles_for_ip(host["ip"])) == host["roles"]
    # and the audit runs with it, the hosts now placed by the inventory
    res = invoke([pcap, "-r", ruleset, "-i", out, "--format", "json", "--fail-on", "never"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 0 and doc["inventory"] == str(out)
    assert {h["ip"] for h in doc["roles"]} == {h["ip"] for h in inferred["roles"]}


def test_roles_table_and_inventory_placement() -> None:
    folder = SAMPLES / "applayering"
    res = invoke(["roles", folder / "findings.pcap", "-r", "applayering",
                  "-i", folder / "findings.inventory.yaml", "--format", "json"])  # fmt: skip
    hosts = {h["ip"]: h for h in json.loads(res.stdout)["roles"]}
    assert hosts[APPLIANCE]["source"] == "inventory" and hosts[APPLIANCE]["confidence"] == 1.0
    assert hosts[PVS]["roles"] == ["agent", "pvs_agent"]
    assert STRANGER not in hosts
    assert "10.10.0.8" in hosts  # listed, never seen
    table = invoke(["roles", folder / "findings.pcap", "-r", "applayering"])
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["ip", "roles", "source"]
    assert any(line.startswith(APPLIANCE) for line in table.stdout.splitlines())
