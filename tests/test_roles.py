"""Hosts -> roles: inventory addresses, CIDRs and names matched through SNI, Host and DNS."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor import synth
from auditor.flows_out import public_flows
from auditor.roles import infer_roles, resolve_roles
from auditor.rules import load_inventory, load_ruleset
from auditor.traffic import read_traffic

UF = load_ruleset("uforge")
AL = load_ruleset("applayering")


def flows(tmp_path: Path, c: synth.Capture):
    t = read_traffic([c.write(tmp_path / "c.pcap")])
    assert t.flows is not None
    return public_flows(t.flows)


def inventory(tmp_path: Path, text: str, ruleset=UF):
    p = tmp_path / "inv.yaml"
    p.write_text(text)
    return load_inventory(p, ruleset)


def roles_of(rolemap) -> dict[str, tuple[str, ...]]:
    hosts = rolemap if isinstance(rolemap, list) else rolemap.hosts
    return {h.ip: h.roles for h in hosts}


@pytest.mark.parametrize("how", ["sni", "host", "dns"])
def test_names_place_cloud_endpoints(tmp_path: Path, how: str) -> None:
    c = synth.Capture()
    aws = "52.94.133.131"
    if how == "sni":
        c.tcp_session(
            "10.0.0.1",
            aws,
            40000,
            443,
            synth.tls_handshake("TLS 1.3", sni="S3.eu-west-1.AmazonAWS.com"),
        )
    elif how == "host":
        c.tcp_session(
            "10.0.0.1",
            aws,
            40000,
            80,
            [(0, synth.http_request("PUT", "/img", "s3.eu-west-1.amazonaws.com:80"))],
        )
    else:
        q, r = synth.dns_exchange("s3.eu-west-1.amazonaws.com", [aws])
        c.udp("10.0.0.1", "10.0.0.53", 50000, 53, q)
        c.udp("10.0.0.53", "10.0.0.1", 53, 50000, r)
        c.tcp_session("10.0.0.1", aws, 40000, 443, [(0, b"\x17\x03\x03\x00\x01x")])
    inv = inventory(tmp_path, 'roles:\n  uforge: [10.0.0.1]\n  aws: ["*.amazonaws.com"]\n')
    got = roles_of(resolve_roles(UF, flows(tmp_path, c), inv))
    assert got[aws] == ("aws",)
    assert got["10.0.0.1"] == ("uforge",)
    host = next(h for h in resolve_roles(UF, flows(tmp_path, c), inv).hosts if h.ip == aws)
    assert any("amazonaws.com" in e for e in host.evidence)


def test_wildcard_does_not_match_the_bare_domain_or_a_lookalike(tmp_path: Path) -> None:
    c = synth.Capture()
    c.tcp_session(
        "10.0.0.1",
        "198.51.100.7",
        40000,
        443,
        synth.tls_handshake("TLS 1.3", sni="amazonaws.com.evil.example"),
    )
    inv = inventory(tmp_path, 'roles:\n  uforge: [10.0.0.1]\n  aws: ["*.amazonaws.com"]\n')
    assert "198.51.100.7" not in roles_of(resolve_roles(UF, flows(tmp_path, c), inv))


def test_cidr_ipv6_and_multiple_roles(tmp_path: Path) -> None:
    c = synth.Capture()
    c.tcp_session("10.10.0.21", "10.10.0.10", 40000, 3509, [(0, b"\x16\x03\x01\x00\x01\x01")])
    inv = inventory(
        tmp_path,
        "roles:\n  appliance: [10.10.0.8/29]\n  agent: [10.10.0.21]\n  pvs_agent: [10.10.0.21]\n",
        AL,
    )
    got = roles_of(resolve_roles(AL, flows(tmp_path, c), inv))
    assert got["10.10.0.10"] == ("appliance",)
    assert got["10.10.0.21"] == ("agent", "pvs_agent")


def test_inventory_hosts_not_in_the_capture_still_count(tmp_path: Path) -> None:
    c = synth.Capture()
    c.tcp_session("10.10.0.21", "10.10.0.10", 40000, 443, [(0, b"x")])
    inv = inventory(tmp_path, "roles:\n  appliance: [10.10.0.10]\n  ntp_server: [10.10.0.7]\n", AL)
    hosts = {h.ip: h for h in resolve_roles(AL, flows(tmp_path, c), inv).hosts}
    assert hosts["10.10.0.7"].roles == ("ntp_server",)
    assert "not seen" in hosts["10.10.0.7"].evidence[0]


def test_inference_uses_distinctive_served_ports(tmp_path: Path) -> None:
    c = synth.Capture()
    c.tcp_session(
        "10.10.0.10", "10.10.0.21", 40000, 8016, synth.tls_handshake("TLS 1.2", app_bytes=100)
    )
    c.tcp_session(
        "10.10.0.21", "10.10.0.10", 40001, 3509, synth.tls_handshake("TLS 1.2", app_bytes=100)
    )
    got = roles_of(infer_roles(AL, flows(tmp_path, c)))
    # served 8016: an agent; fetched from the PVS disk port 3509: the agent on a PVS server
    assert got["10.10.0.21"] == ("agent", "pvs_agent")
    assert got["10.10.0.10"] == ("appliance",)


def test_generic_clients_are_not_placed(tmp_path: Path) -> None:
    """An LDAP, SMB, DNS and NTP client is every Windows host, not an App Layering appliance."""
    c = synth.Capture()
    for port in (389, 445, 123):
        c.tcp_session("10.0.0.50", "10.0.0.5", 40000 + port, port, [(0, b"\x30\x05")])
    q, r = synth.dns_exchange("dc.corp.example", ["10.0.0.5"])
    c.udp("10.0.0.50", "10.0.0.5", 50000, 53, q)
    c.udp("10.0.0.5", "10.0.0.50", 53, 50000, r)
    c.udp("0.0.0.0", "255.255.255.255", 68, 67, b"\x01" + b"\x00" * 239 + b"\x63\x82\x53\x63")
    got = roles_of(infer_roles(AL, flows(tmp_path, c)))
    assert "10.0.0.50" not in got
    assert "0.0.0.0" not in got


def test_user_agent_hint_needs_a_plausible_flow(tmp_path: Path) -> None:
    c = synth.Capture()
    # BITS towards the appliance's disk port: an agent; a browser on the web: not an admin
    c.tcp_session("10.10.0.10", "10.10.0.21", 40000, 8016, [(0, b"\x16\x03\x01\x00\x01\x01")])
    c.tcp_session(
        "10.10.0.21",
        "10.10.0.10",
        40001,
        3009,
        [(0, synth.http_request("GET", "/d.vhd", "elm", "Microsoft BITS/7.8"))],
    )
    c.tcp_session(
        "10.10.0.77",
        "93.184.216.34",
        40002,
        80,
        [(0, synth.http_request("GET", "/", "example.com", "Mozilla/5.0"))],
    )
    got = roles_of(infer_roles(AL, flows(tmp_path, c)))
    assert "pvs_agent" in got["10.10.0.21"]
    assert "10.10.0.77" not in got


def test_placed_peers_place_the_other_end(tmp_path: Path) -> None:
    """The appliance (placed by its own ports) reaching a host on LDAPS and DNS makes that
    host the Active Directory; UForge is placed through the platforms it pushes to."""
    c = synth.Capture()
    c.tcp_session(
        "10.10.0.21", "10.10.0.10", 40001, 3509, synth.tls_handshake("TLS 1.2", app_bytes=100)
    )
    c.tcp_session(
        "10.10.0.10", "10.10.0.5", 40002, 636, synth.tls_handshake("TLS 1.2", app_bytes=100)
    )
    got = roles_of(infer_roles(AL, flows(tmp_path, c)))
    assert got["10.10.0.5"] == ("active_directory",)
    hosts = {h.ip: h for h in infer_roles(AL, flows(tmp_path, c))}
    assert any("was reached by appliance" in e for e in hosts["10.10.0.5"].evidence)
