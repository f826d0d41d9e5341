"""What the documents forbid or restrict (issue 8): prohibited flows, local-only ports, roles
that must not talk, the protocol on the wire, the address family, and role inference that
never learns from a forbidden flow.

Each check has a capture (auditor.synth) that triggers it and a near-identical one that does
not, audited with and without an inventory; one of each goes through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_audit import (
    AD,
    AD_INVENTORY,
    ADMIN,
    AL_INVENTORY,
    APPLIANCE,
    FILES,
    PVS,
    VDA,
    Runner,
    ad_dns,
    http,
    invoke,
    only,
    tls,
    write_inventory,
)

from auditor import synth
from auditor.errors import ExitCode
from auditor.rules import check_ruleset, load_ruleset

ROOT = Path(__file__).resolve().parent.parent
TELNET_FTP = "Access is not permitted on unsecured Telnet or FTP ports."
ACTIVEMQ = "access to this port is only available from within the App Layering appliance"
VDA_TEXT = "Virtual Desktops and Virtual App servers do not interface directly with the appliance."
APPLIANCE6 = "fd00:10::10"


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def console(c: synth.Capture) -> None:
    """Documented traffic that places the appliance and the admin without an inventory."""
    tls(c, ADMIN, APPLIANCE, 443, sport=40100)
    tls(c, APPLIANCE, PVS, 8016, sport=40101)
    tls(c, PVS, APPLIANCE, 443, sport=40102)
    c.tcp_session(PVS, APPLIANCE, 40103, 8787, [(0, b"PK\x03\x04" + b"\x11" * 900)])


def ssh(c: synth.Capture, port: int = 22, client: str = ADMIN, server: str = APPLIANCE) -> None:
    c.tcp_session(client, server, 40200, port, synth.ssh_exchange())


def telnet(c: synth.Capture, port: int = 23) -> None:
    c.tcp_session(ADMIN, APPLIANCE, 40300, port, synth.telnet_session())


def ftp(c: synth.Capture, port: int = 21) -> None:
    c.tcp_session(ADMIN, APPLIANCE, 40400, port, synth.ftp_login())


def activemq(c: synth.Capture, client: str = ADMIN, server: str = APPLIANCE) -> None:
    c.tcp_session(client, server, 40500, 8161, [(0, b"GET /admin/ HTTP/1.1\r\nHost: x\r\n\r\n")])


INVENTORIES = [pytest.param(AL_INVENTORY, id="inventory"), pytest.param(None, id="inferred")]


# --- prohibited_flow: a protocol forbidden on any port ----------------------------------


@pytest.mark.parametrize("inventory", INVENTORIES)
@pytest.mark.parametrize(("build", "port", "deny"), [
    (telnet, 23, "appliance-no-telnet"),
    (lambda c: telnet(c, 2323), 2323, "appliance-no-telnet"),
    (ftp, 21, "appliance-no-ftp"),
    (lambda c: ftp(c, 8888), 8888, "appliance-no-ftp"),  # FTP on the log-download port
])  # fmt: skip
def test_prohibited_protocol_to_the_appliance(run: Runner, build: object, port: int, deny: str,
                                              inventory: dict | None) -> None:  # fmt: skip
    found = run.findings(console, build, inventory=inventory)
    f = only([f for f in found if f["kind"] == "prohibited_flow"])
    assert (f["severity"], f["rule_id"], f["dst_port"]) == ("high", deny, port)
    assert (f["src_ip"], f["dst_ip"]) == (ADMIN, APPLIANCE)
    assert f["source"]["text"] == TELNET_FTP
    assert f["source"]["document"] == "003_8716eaddc5e9d753.txt"
    assert TELNET_FTP in f["message"] and "identified from payload" in f["message"]
    # the forbidden protocol is neither an unexpected port nor a protocol mismatch
    assert {g["kind"] for g in found} == {"prohibited_flow"}


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_ssh_to_the_appliance_is_not_prohibited(run: Runner, inventory: dict | None) -> None:
    assert run.findings(console, ssh, inventory=inventory) == []


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_http_on_the_log_download_port_is_not_prohibited(run: Runner,
                                                         inventory: dict | None) -> None:  # fmt: skip
    assert run.findings(console, lambda c: http(c, ADMIN, APPLIANCE, 8888, response=2000),
                        inventory=inventory) == []  # fmt: skip


def test_prohibited_flow_through_the_cli(tmp_path: Path) -> None:
    c = synth.Capture()
    console(c)
    telnet(c)
    pcap = c.write(tmp_path / "telnet.pcap")
    inv = write_inventory(tmp_path / "inv.yaml", AL_INVENTORY, "applayering")
    res = invoke([pcap, "-r", "applayering", "-i", inv, "--format", "json"])
    assert res.exit_code == ExitCode.FINDINGS
    doc = json.loads(res.output)
    assert doc["summary"]["by_kind"] == {"prohibited_flow": 1}
    assert [d["id"] for d in doc["ruleset"]["deny"]][:2] == [
        "appliance-no-telnet",
        "appliance-no-ftp",
    ]
    table = invoke([pcap, "-r", "applayering", "-i", inv])
    assert "prohibited_flow" in table.output and TELNET_FTP in table.output
    c2 = synth.Capture()
    console(c2)
    ssh(c2)
    clean = invoke([c2.write(tmp_path / "ssh.pcap"), "-r", "applayering", "-i", inv])
    assert clean.exit_code == ExitCode.OK, clean.output


# --- prohibited_flow: a port whose scope is local ---------------------------------------


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_activemq_from_another_host_is_prohibited(run: Runner, inventory: dict | None) -> None:
    found = run.findings(console, activemq, inventory=inventory)
    f = only(found)
    assert (f["kind"], f["severity"], f["rule_id"]) == ("prohibited_flow", "high",
                                                        "appliance-activemq")  # fmt: skip
    assert (f["src_ip"], f["dst_ip"], f["dst_port"]) == (ADMIN, APPLIANCE, 8161)
    assert ACTIVEMQ in f["source"]["text"] and ACTIVEMQ in f["message"]
    assert f["evidence"]["scope"] == "local"
    assert "only available from within the host" in f["message"]


@pytest.mark.parametrize("inventory", INVENTORIES)
@pytest.mark.parametrize("addr", ["127.0.0.1", APPLIANCE])
def test_activemq_within_the_appliance_is_silent(run: Runner, addr: str,
                                                 inventory: dict | None) -> None:  # fmt: skip
    assert run.findings(console, lambda c: activemq(c, addr, addr), inventory=inventory) == []


@pytest.mark.parametrize("port", [3001, 3501, 3505, 3510])
def test_connector_internal_ports_from_another_host_are_prohibited(run: Runner,
                                                                   port: int) -> None:  # fmt: skip
    def probe(c: synth.Capture) -> None:
        tls(c, ADMIN, APPLIANCE, port, sport=40600)

    f = only(run.findings(console, probe, inventory=AL_INVENTORY))
    assert (f["kind"], f["dst_port"]) == ("prohibited_flow", port)
    assert f["rule_id"].startswith("appliance-internal-")


def test_activemq_without_any_other_traffic_is_still_prohibited(run: Runner) -> None:
    # no inventory, nothing else in the capture: no role for either end, still forbidden
    f = only(run.findings(activemq))
    assert (f["kind"], f["rule_id"]) == ("prohibited_flow", "appliance-activemq")
    assert set(f["evidence"]["unplaced_hosts"]) == {ADMIN, APPLIANCE}
    # nothing says the destination is the appliance: one step lower, and the message says so
    assert f["severity"] == "medium" and f["evidence"]["role_unconfirmed"] == ["appliance"]
    assert "(if it is the appliance)" in f["message"]


def test_telnet_between_hosts_without_roles_is_prohibited_unconfirmed(run: Runner) -> None:
    f = only(run.findings(telnet))
    assert (f["kind"], f["severity"], f["rule_id"]) == ("prohibited_flow", "medium",
                                                        "appliance-no-telnet")  # fmt: skip
    assert f["evidence"]["role_unconfirmed"] == ["appliance"]


# --- role inference never learns from a forbidden or local-only flow ---------------------


def test_a_host_that_touched_8161_is_not_inferred_to_be_an_appliance(run: Runner) -> None:
    doc = run.result(console, activemq).document
    roles = {h["ip"]: h["roles"] for h in doc["roles"]}
    assert roles[APPLIANCE] == ["appliance"]
    assert "appliance" not in roles.get(ADMIN, [])
    evidence = [e for h in doc["roles"] for e in h["evidence"]]
    assert not any("8161" in e for e in evidence), evidence
    # and its console traffic is not read as appliance -> appliance
    assert not any(
        p["src_role"] == p["dst_role"] == "appliance" and p["observed"] for p in doc["role_pairs"]
    )


def test_local_only_flows_are_no_evidence(run: Runner) -> None:
    doc = run.result(lambda c: activemq(c, APPLIANCE, APPLIANCE)).document
    assert doc["roles"] == []


def test_a_prohibited_protocol_is_no_evidence(run: Runner) -> None:
    # Telnet to port 22 would otherwise say "serves SSH": the appliance's port
    doc = run.result(lambda c: telnet(c, 22), lambda c: ftp(c, 8888)).document
    assert doc["roles"] == []
    assert {f["kind"] for f in doc["findings"]} == {"prohibited_flow"}


# --- prohibited_flow: a pair of roles that must not talk ---------------------------------


def vda_to_appliance(c: synth.Capture) -> None:
    tls(c, VDA, APPLIANCE, 443, sport=40700)


def vda_to_files(c: synth.Capture) -> None:
    c.tcp_session(VDA, FILES, 40701, 445, [(0, b"\x00\x00\x00\x44\xfeSMB@\x00" + b"\x00" * 60)])


def test_vda_to_the_appliance_is_prohibited(run: Runner) -> None:
    inv = {**AL_INVENTORY, "vda": [VDA]}
    f = only(run.findings(console, vda_to_appliance, inventory=inv))
    assert (f["kind"], f["rule_id"], f["src_role"], f["dst_role"]) == (
        "prohibited_flow", "vda-not-to-appliance", "vda", "appliance")  # fmt: skip
    assert f["source"]["text"] == VDA_TEXT and VDA_TEXT in f["message"]
    assert "traffic between vda and appliance" in f["message"]


def test_appliance_to_a_vda_is_prohibited(run: Runner) -> None:
    inv = {**AL_INVENTORY, "vda": [VDA]}
    f = only(run.findings(console, lambda c: tls(c, APPLIANCE, VDA, 8016, sport=40702),
                          inventory=inv))  # fmt: skip
    assert (f["kind"], f["rule_id"]) == ("prohibited_flow", "appliance-not-to-vda")


def test_vda_to_its_file_share_is_not_prohibited(run: Runner) -> None:
    inv = {**AL_INVENTORY, "vda": [VDA], "file_server": [FILES]}
    found = run.findings(console, vda_to_files, inventory=inv)
    assert [f["kind"] for f in found if f["kind"] == "prohibited_flow"] == []


def test_a_pair_of_roles_needs_both_roles(run: Runner) -> None:
    # without an inventory nobody is a VDA: an unplaced client of the appliance is not one
    found = run.findings(console, vda_to_appliance)
    assert [f for f in found if f["kind"] == "prohibited_flow"] == []


# --- protocol_mismatch ---------------------------------------------------------------------


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_ssh_through_the_https_port_is_a_protocol_mismatch(run: Runner,
                                                           inventory: dict | None) -> None:  # fmt: skip
    found = run.findings(console, lambda c: ssh(c, 443), inventory=inventory)
    f = only(found)
    assert (f["kind"], f["severity"], f["dst_port"]) == ("protocol_mismatch", "medium", 443)
    assert f["evidence"]["seen"] == ["ssh"] and f["evidence"]["documented_app"] == ["https"]
    assert "SSH seen on" in f["message"] and "document names https" in f["message"]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_tls_on_the_https_port_is_no_mismatch(run: Runner, inventory: dict | None) -> None:
    assert run.findings(console, lambda c: tls(c, ADMIN, APPLIANCE, 443, sport=40800),
                        inventory=inventory) == []  # fmt: skip


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_unidentified_payload_is_never_a_mismatch(run: Runner, inventory: dict | None) -> None:
    def opaque(c: synth.Capture) -> None:
        c.tcp_session(PVS, APPLIANCE, 40801, 8787, [(0, b"\x8a\x01\x99" + b"\x42" * 500)])

    found = run.findings(console, opaque, inventory=inventory)
    assert [f for f in found if f["kind"] == "protocol_mismatch"] == []


def test_cleartext_on_a_tls_port_is_a_plaintext_finding_not_a_mismatch(run: Runner) -> None:
    found = run.findings(console, lambda c: http(c, ADMIN, APPLIANCE, 3509),
                         inventory=AL_INVENTORY)  # fmt: skip
    assert [f["kind"] for f in found] == ["plaintext_where_tls_required"]


def test_the_pair_variant_of_a_port_is_no_mismatch(run: Runner) -> None:
    # TLS on the LDAP port: the same purpose as LDAPS (the rules' pair), not another protocol
    found = run.findings(ad_dns, lambda c: tls(c, APPLIANCE, AD, 389), inventory=AD_INVENTORY)
    assert found == []


# --- address family ------------------------------------------------------------------------


def v6_console(c: synth.Capture) -> None:
    tls(c, "fd00:10::50", APPLIANCE6, 443, sport=40900)


def test_ipv6_traffic_of_an_ipv4_only_role_is_reported(run: Runner) -> None:
    inv = {**AL_INVENTORY, "appliance": [APPLIANCE, APPLIANCE6], "admin": [ADMIN, "fd00:10::50"]}
    found = run.findings(console, v6_console, inventory=inv)
    f = only(found)
    assert (f["kind"], f["severity"], f["dst_ip"]) == ("address_family", "medium", APPLIANCE6)
    assert f["evidence"]["allowed"] == "ipv4" and f["evidence"]["address_family"] == "ipv6"
    assert "IPv4 is required" in f["message"] and "IPv4 is required" in f["source"]["text"]


def test_ipv6_traffic_of_an_inferred_appliance_is_reported(run: Runner) -> None:
    def v6_agent(c: synth.Capture) -> None:
        c.tcp_session("fd00:10::21", APPLIANCE6, 40901, 8787, [(0, b"PK\x03\x04" + b"\x11" * 90)])
        tls(c, APPLIANCE6, "fd00:10::21", 8016, sport=40902)

    found = run.findings(v6_agent)
    assert {f["kind"] for f in found} == {"address_family"}
    assert {f["evidence"]["host"] for f in found} == {APPLIANCE6}


def test_ipv4_traffic_of_the_appliance_is_silent(run: Runner) -> None:
    inv = {**AL_INVENTORY, "appliance": [APPLIANCE, APPLIANCE6]}
    assert run.findings(console, inventory=inv) == []


def test_ipv6_traffic_of_an_unrestricted_role_is_silent(run: Runner) -> None:
    inv = {**AD_INVENTORY, "active_directory": [AD, "fd00:10::5"]}
    found = run.findings(ad_dns, lambda c: tls(c, "fd00:10::99", "fd00:10::5", 636),
                         inventory=inv)  # fmt: skip
    assert [f for f in found if f["kind"] == "address_family"] == []


# --- the ruleset format: deny entries, scope, validation -----------------------------------


def _ruleset_with(tmp_path: Path, deny_yaml: str) -> Path:
    text = (ROOT / "rulesets" / "applayering.yaml").read_text(encoding="utf-8")
    text = text.replace("\ndeny:\n", "\ndeny:\n" + deny_yaml, 1)
    path = tmp_path / "al.yaml"
    path.write_text(text, encoding="utf-8")
    return path


SOURCE = """    source:
      document: 003_8716eaddc5e9d753.txt
      section: x
      text: "y"
"""


def test_deny_contradicting_an_allow_rule_names_both(tmp_path: Path) -> None:
    path = _ruleset_with(tmp_path, "  - id: no-ssh\n    to: appliance\n    ports: 22\n" + SOURCE)
    errors = [p.text() for p in check_ruleset(path).errors]
    assert any("deny 'no-ssh' contradicts rule 'admin-ssh'" in e and "tcp/22" in e
               for e in errors), errors  # fmt: skip
    res = invoke(["rulesets", "validate", path])
    assert res.exit_code == ExitCode.USAGE
    assert "al.yaml:" in res.output and "'no-ssh'" in res.output and "'admin-ssh'" in res.output


def test_deny_by_protocol_contradicts_a_rule_naming_it(tmp_path: Path) -> None:
    path = _ruleset_with(tmp_path, "  - id: no-https\n    app: https\n" + SOURCE)
    errors = [p.text() for p in check_ruleset(path).errors]
    assert any("contradicts rule 'admin-console-https'" in e for e in errors), errors


def test_deny_that_meets_no_allow_rule_is_valid(tmp_path: Path) -> None:
    path = _ruleset_with(tmp_path, "  - id: no-rdp\n    to: appliance\n    app: rdp\n" + SOURCE)
    assert check_ruleset(path).errors == []


@pytest.mark.parametrize(("entry", "fragment"), [
    ("  - id: everything\n", "a deny entry needs 'app', 'ports', or both 'from' and 'to'"),
    ("  - id: x1\n    from: nobody\n    to: appliance\n", "unknown role 'nobody'"),
    ("  - id: admin-ssh\n    app: telnet\n", "deny id 'admin-ssh' is also a rule id"),
    ("  - id: x2\n    ports: 70000\n", "expected a port 1-65535"),
    ("  - id: x3\n    app: telnet\n    severity: extreme\n", "expected a severity"),
])  # fmt: skip
def test_bad_deny_entries(tmp_path: Path, entry: str, fragment: str) -> None:
    path = _ruleset_with(tmp_path, entry + SOURCE)
    errors = [p.text() for p in check_ruleset(path).errors]
    assert any(fragment in e for e in errors), errors
    assert all(":" in e for e in errors)


def test_unknown_app_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = _ruleset_with(tmp_path, "  - id: no-gopher\n    app: gopher\n" + SOURCE)
    result = check_ruleset(path)
    assert result.errors == []
    assert any("'gopher' is not in the vocabulary" in w.text() for w in result.warnings)
    assert load_ruleset(path).deny("no-gopher").apps == ("gopher",)


def test_deny_severity_override(run: Runner, tmp_path: Path) -> None:
    path = _ruleset_with(tmp_path, "")
    text = path.read_text(encoding="utf-8").replace(
        "    app: telnet\n", "    app: telnet\n    severity: medium\n", 1
    )
    path.write_text(text, encoding="utf-8")
    f = only(run.findings(console, telnet, ruleset=load_ruleset(path), inventory=AL_INVENTORY))
    assert (f["kind"], f["severity"]) == ("prohibited_flow", "medium")


def test_local_scope_rules_derive_no_role_hints() -> None:
    rs = load_ruleset("applayering")
    served = {lo for _p, lo, _hi in rs.role("appliance").hints.serves}
    assert 8161 not in served and 3001 not in served
    assert rs.rule("appliance-activemq").scope == "local"


# --- deployment expectations in the inventory: expect / ignore_expected -------------------

COMPOSITING = "10.10.0.30"


def compositing_api(c: synth.Capture) -> None:
    tls(c, COMPOSITING, APPLIANCE, 443, sport=41000)
    tls(c, APPLIANCE, COMPOSITING, 443, sport=41001)


def iscsi(c: synth.Capture) -> None:
    login = b"\x43\x87\x00\x00\x00\x00\x00\x30" + b"\x00" * 40 + b"InitiatorName=iqn.x\x00" * 3
    c.tcp_session(COMPOSITING, APPLIANCE, 41002, 3260, [(0, login)])


def _inventory_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "site.yaml"
    write_inventory(path, {**AL_INVENTORY, "compositing": [COMPOSITING],
                           "active_directory": [AD]}, "applayering")  # fmt: skip
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


EXPECT_ISCSI = "expect:\n  - {from: compositing, to: appliance, port: 3260}\n"
IGNORE_DNS = "ignore_expected:\n  - {from: appliance, to: active_directory, port: 53}\n"


def _missing(tmp_path: Path, extra: str, *builds: object) -> list[str]:
    c = synth.Capture()
    for build in builds:
        build(c)  # type: ignore[operator]
    pcap = c.write(tmp_path / "c.pcap")
    res = invoke([pcap, "-r", "applayering", "-i", _inventory_file(tmp_path, extra),
                  "--format", "json", "--fail-on", "never"])  # fmt: skip
    assert res.exit_code == ExitCode.OK, res.output
    doc = json.loads(res.output)
    return [f["rule_id"] for f in doc["findings"] if f["kind"] == "missing_flow"]


def test_expect_makes_a_documented_flow_expected(tmp_path: Path) -> None:
    assert _missing(tmp_path, EXPECT_ISCSI, console, compositing_api, ad_dns) == [
        "compositing-appliance-iscsi"
    ]


def test_expect_is_met_by_the_flow(tmp_path: Path) -> None:
    assert _missing(tmp_path, EXPECT_ISCSI, console, compositing_api, ad_dns, iscsi) == []


def test_without_expect_the_flow_is_on_demand(tmp_path: Path) -> None:
    assert _missing(tmp_path, "", console, compositing_api, ad_dns) == []


def test_ignore_expected_switches_an_expectation_off(tmp_path: Path) -> None:
    assert "appliance-ad-dns-udp" in _missing(tmp_path, "", console, compositing_api)
    assert _missing(tmp_path, IGNORE_DNS, console, compositing_api) == []


def test_expect_naming_no_documented_flow_is_a_usage_error(tmp_path: Path) -> None:
    c = synth.Capture()
    console(c)
    pcap = c.write(tmp_path / "c.pcap")
    bad = _inventory_file(tmp_path, "expect:\n  - {from: compositing, to: appliance, port: 3262}\n")
    res = invoke([pcap, "-r", "applayering", "-i", bad])
    assert res.exit_code == ExitCode.USAGE
    line = len(bad.read_text(encoding="utf-8").splitlines())
    assert f"site.yaml:{line}: expect[0]: names no documented flow" in res.output
    assert "Traceback" not in res.output and res.output.count("\n") == 1


# --- beyond TCP/UDP: icmp types, esp, sctp, tcp/udp, peers any / internet, source ports ----

BEYOND = """
name: beyond
title: Transports beyond TCP and UDP
source_documents: [vendor.txt]
roles:
  - {id: gateway, description: A VPN gateway.}
  - {id: server, description: A server.}
flows:
  - {id: ping, from: gateway, to: any, proto: icmp, ports: [0, 8], app: icmp,
     security: none, source: {document: vendor.txt, section: s, text: "Gateway pings"}}
  - {id: ipsec, from: gateway, to: internet, proto: esp, app: ipsec, security: ipsec,
     source: {document: vendor.txt, section: s, text: "ESP to peers on the Internet"}}
  - {id: dns, from: gateway, to: server, proto: tcp/udp, ports: 53, app: dns,
     security: none, source: {document: vendor.txt, section: s, text: "DNS, TCP and UDP"}}
  - {id: ntp, from: gateway, to: server, proto: udp, ports: 123, src_ports: 123, app: ntp,
     security: none, source: {document: vendor.txt, section: s, text: "NTP 123 -> 123"}}
  - {id: diameter, from: server, to: gateway, proto: sctp, ports: 3868, app: unspecified,
     security: none, source: {document: vendor.txt, section: s, text: "Diameter over SCTP"}}
"""
GW, SRV, PEER = "10.30.0.1", "10.30.0.2", "8.8.4.4"
BEYOND_INV = {"gateway": [GW], "server": [SRV]}


def _beyond(tmp_path: Path) -> object:
    path = tmp_path / "beyond.yaml"
    path.write_text(BEYOND, encoding="utf-8")
    return load_ruleset(path)


def icmp(c: synth.Capture, src: str, dst: str, kind: int) -> None:
    import dpkt

    msg = dpkt.icmp.ICMP(type=kind, code=0, data=dpkt.icmp.ICMP.Echo(id=7, seq=1, data=b"p" * 32))
    c.frame(src, dst, msg, dpkt.ip.IP_PROTO_ICMP)


def esp(c: synth.Capture, src: str, dst: str) -> None:
    import dpkt

    c.frame(src, dst, dpkt.esp.ESP(spi=0x1001, seq=1, data=b"\x11" * 64), dpkt.ip.IP_PROTO_ESP)
    c.frame(dst, src, dpkt.esp.ESP(spi=0x2002, seq=1, data=b"\x22" * 64), dpkt.ip.IP_PROTO_ESP)


def sctp(c: synth.Capture, src: str, dst: str, port: int) -> None:
    import struct

    init = struct.pack("!BBHIIHHI", 1, 0, 20, 0x1234, 65535, 1, 1, 1)
    header = struct.pack("!HHII", 40000, port, 0, 0)
    c.frame(src, dst, header + init, 132)  # type: ignore[arg-type]


@pytest.mark.parametrize("inventory", [pytest.param(BEYOND_INV, id="inventory"),
                                       pytest.param(None, id="inferred")])  # fmt: skip
def test_beyond_tcp_udp_documented_traffic_is_silent(run: Runner, tmp_path: Path,
                                                     inventory: dict | None) -> None:  # fmt: skip
    def documented(c: synth.Capture) -> None:
        icmp(c, GW, SRV, 8)
        icmp(c, GW, PEER, 8)
        esp(c, GW, PEER)
        q, a = synth.dns_exchange("srv.example", [SRV])
        c.udp(GW, SRV, 40001, 53, q)
        c.udp(SRV, GW, 53, 40001, a)
        c.tcp_session(GW, SRV, 40002, 53, [(0, b"\x00\x1d" + q)])
        c.udp(GW, SRV, 123, 123, b"\x23" + b"\x00" * 47)
        c.udp(SRV, GW, 123, 123, b"\x24\x02" + b"\x00" * 46)
        sctp(c, SRV, GW, 3868)

    rs = _beyond(tmp_path)
    found = run.findings(documented, ruleset=rs, inventory=inventory)  # type: ignore[arg-type]
    assert found == [], [f["message"] for f in found]


@pytest.mark.parametrize(("build", "proto", "port"), [
    (lambda c: icmp(c, GW, SRV, 13), "icmp", 13),  # a timestamp request: type 13
    (lambda c: esp(c, GW, "10.30.9.9"), "esp", 0),  # ESP to a private address
    (lambda c: c.udp(GW, SRV, 40123, 123, b"\x23" + b"\x00" * 47), "udp", 123),  # wrong sport
    (lambda c: sctp(c, SRV, GW, 2905), "sctp", 2905),
])  # fmt: skip
def test_beyond_tcp_udp_undocumented_traffic_is_reported(run: Runner, tmp_path: Path,
                                                         build: object, proto: str,
                                                         port: int) -> None:  # fmt: skip
    rs = _beyond(tmp_path)
    inv = {**BEYOND_INV, "server": [SRV, "10.30.9.9"]}
    f = only(run.findings(build, ruleset=rs, inventory=inv))  # type: ignore[arg-type]
    assert (f["kind"], f["proto"], f["dst_port"]) == ("unexpected_port", proto, port)


def test_tcp_udp_rule_is_two_transports(tmp_path: Path) -> None:
    rs = _beyond(tmp_path)
    rule = rs.rule("dns")  # type: ignore[attr-defined]
    assert rule.protos == ("tcp", "udp")
    assert rule.to_json()["proto"] == "tcp/udp"


@pytest.mark.parametrize(("text", "fragment"), [
    ("proto: esp, ports: 50,", "esp has no ports; leave 'ports' out"),
    ("proto: icmp, ports: 300,", "expected an ICMP type 0-255"),
    ("proto: icmp, ports: 8, src_ports: 1,", "icmp has no source ports"),
])  # fmt: skip
def test_beyond_tcp_udp_bad_rules(tmp_path: Path, text: str, fragment: str) -> None:
    yaml_text = BEYOND.replace("proto: tcp/udp, ports: 53,", text)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    errors = [p.text() for p in check_ruleset(path).errors]
    assert any(fragment in e for e in errors), errors


def test_peer_names_are_reserved(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BEYOND.replace("{id: server,", "{id: internet,"), encoding="utf-8")
    errors = [p.text() for p in check_ruleset(path).errors]
    assert any("'internet' is reserved for a peer" in e for e in errors), errors


def test_dhcp_source_ports_of_the_appliance(run: Runner) -> None:
    inv = {**AL_INVENTORY, "dhcp_server": ["10.10.0.2"]}
    discover = b"\x01\x01\x06\x00" + b"\x00" * 232 + b"\x63\x82\x53\x63\x35\x01\x01\xff"
    ok = run.findings(lambda c: c.udp(APPLIANCE, "10.10.0.2", 68, 67, discover), inventory=inv)
    assert ok == []
    bad = only(run.findings(lambda c: c.udp(APPLIANCE, "10.10.0.2", 5068, 67, discover),
                            inventory=inv))  # fmt: skip
    assert (bad["kind"], bad["dst_port"]) == ("unexpected_port", 67)


def test_rulesets_show_lists_deny_entries_scope_and_tls_policy() -> None:
    res = invoke(["rulesets", "show", "applayering"])
    assert res.exit_code == ExitCode.OK
    assert "Deny (5):" in res.output and "vda-not-to-appliance" in res.output
    assert "telnet, any host -> appliance" in res.output
    assert (
        "Scope local (only within the host):" in res.output and "appliance-activemq" in res.output
    )
    assert "TLS policy: TLS 1.2 or later" in res.output
    doc = json.loads(invoke(["rulesets", "show", "applayering", "--format", "json"]).output)
    assert [d["id"] for d in doc["deny"]][-1] == "appliance-not-to-vda"
    assert doc["tls"] == {"min_version": "TLS 1.2"}
    ldaps = next(f for f in doc["flows"] if f["id"] == "appliance-ldaps")
    assert ldaps["tls_allowed"]["versions"] == ["SSL 3.0", "TLS 1.1", "TLS 1.2"]


def test_ftp_data_connections_are_prohibited_too(run: Runner) -> None:
    def passive(c: synth.Capture, sport: int, port: int) -> None:
        hi, lo = divmod(port, 256)
        c.tcp_session(ADMIN, APPLIANCE, sport, 21, [
            *synth.ftp_login(),
            (1, f"227 Entering Passive Mode (10,10,0,10,{hi},{lo}).\r\n".encode()),
            (0, b"RETR layer.vhd\r\n"),
        ])  # fmt: skip
        c.tcp_session(ADMIN, APPLIANCE, sport + 1, port, [(1, b"\x00" * 3000)])

    found = run.findings(console, lambda c: passive(c, 40410, 50000),
                         lambda c: passive(c, 40420, 50001), inventory=AL_INVENTORY)  # fmt: skip
    assert {(f["kind"], f["dst_port"], f["rule_id"]) for f in found} == {
        ("prohibited_flow", 21, "appliance-no-ftp"),
        ("prohibited_flow", None, "appliance-no-ftp"),  # the data connections, together
    }
    data = next(f for f in found if f["dst_port"] is None)
    assert data["evidence"]["apps"] == ["ftp-data"] and data["evidence"]["ports"] == [50000, 50001]
    assert "ports 50000, 50001/tcp" in data["message"] and data["evidence"]["flows"] == 2


def test_sarif_describes_a_deny_entry_by_its_sentence() -> None:
    folder = ROOT / "samples" / "applayering"
    res = invoke([folder / "findings.pcap", "-r", "applayering", "-i",
                  folder / "findings.inventory.yaml", "--format", "sarif"])  # fmt: skip
    run_ = json.loads(res.output)["runs"][0]
    rules = {r["id"]: r for r in run_["tool"]["driver"]["rules"]}
    telnet_rule = rules["appliance-no-telnet"]
    assert telnet_rule["fullDescription"]["text"] == TELNET_FTP
    assert "any host -> appliance" in telnet_rule["shortDescription"]["text"]
    assert "003_8716eaddc5e9d753.txt" in telnet_rule["help"]["text"]
    result = next(r for r in run_["results"] if r["ruleId"] == "appliance-no-telnet")
    assert run_["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "appliance-no-telnet"


# --- one table of kinds: the docs agree with auditor/rules/kinds.py -----------------------


@pytest.mark.parametrize("doc", ["README.md", "docs/json-contract.md"])
def test_docs_list_every_kind_in_order_with_its_default_severity(doc: str) -> None:
    from auditor.rules.kinds import KIND_TABLE

    text = (ROOT / doc).read_text(encoding="utf-8")
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| `")]
    names = {k.name for k in KIND_TABLE}
    first: dict[str, list[str]] = {}  # the kinds' table comes first (then the evidence keys)
    for r in rows:
        if r[0].strip("| `") in names:
            first.setdefault(r[0].strip("| `"), r)
    table = list(first.items())
    assert [name for name, _ in table] == [k.name for k in KIND_TABLE]
    for (_name, cells), kind in zip(table, KIND_TABLE, strict=True):
        severity_cell = cells[1] if doc == "README.md" else cells[-1]
        assert severity_cell.lstrip().startswith(kind.severity), (kind.name, severity_cell)


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown"])
def test_new_kinds_through_the_cli_in_every_format(fmt: str) -> None:
    folder = ROOT / "samples" / "applayering"
    args = [folder / "findings.pcap", "-r", "applayering", "-i", folder / "findings.inventory.yaml"]
    res = invoke([*args, "--format", fmt, "--fail-on", "high"])
    assert res.exit_code == ExitCode.FINDINGS
    for kind in ("prohibited_flow", "protocol_mismatch", "address_family"):
        assert (kind.replace("_", "\\_") if fmt == "markdown" else kind) in res.output
    assert "IPv4 is required" in res.output and "SSH seen on" in res.output


def test_medium_kinds_pass_fail_on_high(tmp_path: Path) -> None:
    c = synth.Capture()
    console(c)
    ssh(c, 443)
    v6_console(c)
    pcap = c.write(tmp_path / "c.pcap")
    inv = write_inventory(tmp_path / "inv.yaml", {**AL_INVENTORY, "appliance": [APPLIANCE, APPLIANCE6],
                          "admin": [ADMIN, "fd00:10::50"]}, "applayering")  # fmt: skip
    high = invoke([pcap, "-r", "applayering", "-i", inv, "--fail-on", "high"])
    assert high.exit_code == ExitCode.OK, high.output
    medium = invoke([pcap, "-r", "applayering", "-i", inv, "--format", "json"])
    assert medium.exit_code == ExitCode.FINDINGS
    assert json.loads(medium.output)["summary"]["by_kind"] == {
        "protocol_mismatch": 1,
        "address_family": 1,
    }


def test_deny_icmp_types(run: Runner, tmp_path: Path) -> None:
    path = _ruleset_with(tmp_path, "  - id: no-redirects\n    proto: icmp\n    ports: 5\n" + SOURCE)
    rs = load_ruleset(path)
    assert rs.deny("no-redirects").ports == (5,)
    redirect = only(run.findings(console, lambda c: icmp(c, ADMIN, APPLIANCE, 5), ruleset=rs,
                                 inventory=AL_INVENTORY))  # fmt: skip
    assert (redirect["kind"], redirect["proto"], redirect["dst_port"]) == ("prohibited_flow",
                                                                           "icmp", 5)  # fmt: skip
    echo = only(run.findings(console, lambda c: icmp(c, ADMIN, APPLIANCE, 8), ruleset=rs,
                             inventory=AL_INVENTORY))  # fmt: skip
    assert (echo["kind"], echo["dst_port"]) == ("unexpected_port", 8)
