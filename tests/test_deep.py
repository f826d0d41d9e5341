"""``--deep``: tshark's reading of the flows behind findings, with frame numbers.

Each test checks an item against tshark's own field export of the same frame, so a
mis-numbered frame or a misread field fails here. Needs tshark (skips without it, except
the test of the one-line error where it is missing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor import synth
from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.evidence.deep import PACKETS_PER_FLOW, FlowEvidence, dissect
from auditor.traffic import read_traffic

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
AL = SAMPLES / "applayering" / "findings.pcap"
AL_INV = SAMPLES / "applayering" / "findings.inventory.yaml"
TD = SAMPLES / "tas-diego" / "findings.pcap"
TD_INV = SAMPLES / "tas-diego" / "findings.inventory.yaml"
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek"
TSHARK = shutil.which("tshark")

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
needs_corpus = pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus/zeek not present")


def deep_audit(capture: Path, ruleset: str, inventory: Path, *extra: str) -> dict:
    res = CliRunner().invoke(cli, [str(capture), "-r", ruleset, "-i", str(inventory), "--deep",
                                   "--format", "json", "--fail-on", "never", *extra])  # fmt: skip
    assert res.exit_code == ExitCode.OK, res.output
    return json.loads(res.stdout)


def tshark_field(capture: Path, frame: int, name: str) -> str:
    out = subprocess.run([TSHARK, "-n", "-r", str(capture), "-o", "http.desegment_body:FALSE",
                          "-T", "fields", "-e", name], capture_output=True, text=True,
                         check=True).stdout.splitlines()  # fmt: skip
    return out[frame - 1]


def evidence_of(capture: Path, flow_filter: dict) -> FlowEvidence:
    traffic = read_traffic([capture])
    assert traffic.flows is not None
    flows = traffic.flows.drop_columns(["src_ip_bytes", "dst_ip_bytes"]).to_pylist()
    flow = next(f for f in flows if all(f[k] == v for k, v in flow_filter.items()))
    found, _, passes = dissect([str(capture)], traffic.flows, [flow["flow_id"]])
    assert passes == 1
    return found[flow["flow_id"]]


def item(ev: FlowEvidence, name: str) -> tuple[int, str]:
    it = ev.first(name)
    assert it is not None, [i.one_line() for i in ev.items]
    return it.frame, it.value


@needs_tshark
def test_deep_audit_attaches_evidence_with_frame_numbers() -> None:
    doc = deep_audit(AL, "applayering", AL_INV)
    flows = {fid for f in doc["findings"] for fid in f["flow_ids"]}
    deep = doc["deep"]
    assert (deep["flows"], deep["tshark_passes"], deep["flows_left_out"]) == (len(flows), 1, 0)
    for f in doc["findings"]:
        assert bool(f["flow_ids"]) == ("wireshark" in f["evidence"]), f["id"]
    transfer = next(f for f in doc["findings"] if f["kind"] == "plaintext_disk_transfer")
    lines = transfer["evidence"]["wireshark"]
    get = next(x for x in lines if "http.request_line" in x)
    assert get == f"{AL} frame 1543: http.request_line GET /disks/win2022-os-layer.vhd HTTP/1.1"
    assert tshark_field(AL, 1543, "http.request.uri") == "/disks/win2022-os-layer.vhd"
    assert f"{AL} frame 1543: http.user_agent Microsoft BITS/7.8" in lines
    assert f"{AL} frame 1543: http.file_name win2022-os-layer.vhd" in lines
    assert any("payload_bytes_moved 124 from the client, 400043 from the server" in x
               for x in lines)  # fmt: skip
    weak = next(f for f in doc["findings"] if f["kind"] == "weak_tls")
    version = next(x for x in weak["evidence"]["wireshark"] if "tls.version" in x)
    frame = int(version.split(" frame ")[1].split(":")[0])
    assert version.endswith("tls.version TLS 1.0")
    assert tshark_field(AL, frame, "tls.handshake.type").split(",")[0] == "2"  # ServerHello


@needs_tshark
def test_deep_limit_takes_the_most_severe_first() -> None:
    doc = deep_audit(AL, "applayering", AL_INV, "--deep-limit", "1")
    assert doc["deep"]["flows"] == 1 and doc["deep"]["limit"] == 1
    assert doc["deep"]["flows_left_out"] > 0
    with_evidence = [f for f in doc["findings"] if "wireshark" in f["evidence"]]
    assert [f["severity"] for f in with_evidence] == ["high"]


@needs_tshark
def test_disagreement_with_the_fast_engine_is_said() -> None:
    """The samples' synthetic certificates are malformed for tshark, which then misses the
    CertificateRequest that follows in the same record: the finding says so."""
    doc = deep_audit(TD, "tas-diego", TD_INV)
    notes = [n for f in doc["findings"] for n in f["evidence"].get("wireshark_disagrees", [])]
    assert any("client certificate request: tshark reads none after the ServerHello" in n
               for n in notes)  # fmt: skip


@needs_tshark
def test_ldap_simple_bind_never_shows_the_password(tmp_path: Path) -> None:
    cap = synth.Capture()
    cap.tcp_session("10.10.0.10", "10.10.0.5", 40000, 389, [(0, synth.ldap_bind())])
    path = cap.write(tmp_path / "bind.pcap")
    ev = evidence_of(path, {"dst_port": 389})
    frame, bind = item(ev, "ldap.bind")
    assert bind == "simple bind as cn=svc-applayering,dc=corp,dc=example"
    assert "cleartext" in item(ev, "ldap.cleartext_password")[1]
    assert tshark_field(path, frame, "ldap.protocolOp") == "0"
    assert "secret" not in json.dumps(ev.to_json())


@needs_tshark
@needs_corpus
@pytest.mark.corpus
def test_tls_certificate_from_a_real_capture() -> None:
    path = CORPUS / "tls__signed_certificate_timestamp.pcap"
    ev = evidence_of(path, {"dst_port": 443})
    assert item(ev, "tls.sni")[1] == "ritter.vg"
    assert item(ev, "tls.version")[1] == "TLS 1.2"
    assert item(ev, "tls.cipher_suite")[1] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    frame, subject = item(ev, "tls.server_certificate_subject")
    assert subject.startswith("id-at-commonName=ritter.vg")
    assert tshark_field(path, frame, "tls.handshake.type").split(",")[0] == "11"
    assert "COMODO RSA Domain Validation" in item(ev, "tls.server_certificate_issuer")[1]
    assert item(ev, "tls.server_certificate_validity")[1] == (
        "2014-07-31 00:00:00 (UTC) - 2019-07-30 23:59:59 (UTC)"
    )
    assert not ev.disagreements()


@needs_tshark
@needs_corpus
@pytest.mark.corpus
def test_ftp_login_without_the_password_and_ssh_banners() -> None:
    ftp = evidence_of(CORPUS / "ftp__retr.pcap", {"dst_port": 21})
    assert item(ftp, "ftp.login") == (6, "anonymous")
    assert item(ftp, "ftp.password_sent")[0] == 10
    assert "chrome@example.com" not in json.dumps(ftp.to_json())
    ssh = evidence_of(CORPUS / "ssh__ssh.pcap", {"dst_port": 22})
    assert item(ssh, "ssh.server_banner") == (4, "SSH-2.0-OpenSSH_5.8")
    assert item(ssh, "ssh.client_banner") == (6, "SSH-2.0-OpenSSH_5.9")
    assert ssh.packets <= PACKETS_PER_FLOW


def test_without_tshark_deep_is_one_line_and_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PCAP_AUDIT_TSHARK", "no-such-tshark-binary")
    res = CliRunner().invoke(cli, [str(AL), "-r", "applayering", "--deep"])
    assert res.exit_code == ExitCode.USAGE
    assert res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert line.startswith("pcap-audit: tshark: not installed (not on PATH); --deep needs it")
    assert "apt-get install tshark" in line
    # everything else still works without it
    res = CliRunner().invoke(cli, [str(AL), "-r", "applayering", "--fail-on", "never"])
    assert res.exit_code == ExitCode.OK


@needs_tshark
@pytest.mark.parametrize("by_character", [False, True])
def test_telnet_login_name_never_the_password(tmp_path: Path, by_character: bool) -> None:
    def typed(text: bytes) -> list[tuple[int, bytes]]:
        return [(0, bytes([c])) for c in text] if by_character else [(0, text)]

    cap = synth.Capture()
    cap.tcp_session("10.10.0.50", "10.10.0.10", 40000, 23, [
        (1, b"\r\nlogin: "), *typed(b"alice\r\n"), (1, b"Password: "), *typed(b"s3cret\r\n"),
        (1, b"$ "),
    ])  # fmt: skip
    path = cap.write(tmp_path / "telnet.pcap")
    ev = evidence_of(path, {"dst_port": 23})
    frame, name = item(ev, "telnet.login")
    assert name == "alice"
    assert tshark_field(path, frame, "telnet.data").startswith("a")
    assert "s3cret" not in json.dumps(ev.to_json())
    assert "cleartext" in item(ev, "telnet.cleartext")[1]


@needs_tshark
@needs_corpus
@pytest.mark.corpus
def test_deep_that_cannot_read_its_packets_keeps_the_audit() -> None:
    """libpcap (bundled with pcapy-ng) refuses this pcapng's mixed snapshot lengths: the
    audit is still written, --deep says why it attached nothing, exit says a capture was
    not (fully) read."""
    path = CORPUS / "ldap__modify-request.pcapng"
    res = CliRunner().invoke(cli, [str(path), "-r", "uforge", "--deep", "--format", "json",
                                   "--fail-on", "never"])  # fmt: skip
    assert res.exit_code == ExitCode.CAPTURE
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"pcap-audit: --deep: no evidence attached: {path}: libpcap")
    doc = json.loads(res.stdout)
    assert doc["findings"] and doc["deep"]["error"].startswith(str(path))
    assert not any("wireshark" in f["evidence"] for f in doc["findings"])


@needs_tshark
def test_deep_with_each_dissects_each_set() -> None:
    """--each: every traffic set gets its own tshark evidence and its own deep summary."""
    clean = SAMPLES / "applayering" / "clean.pcap"
    res = CliRunner().invoke(cli, [str(AL), str(clean), "-r", "applayering", "-i", str(AL_INV),
                                   "--deep", "--each", "--format", "json", "--fail-on", "never"])  # fmt: skip
    assert res.exit_code == ExitCode.OK, res.output
    first, second = json.loads(res.stdout)["results"]
    assert first["deep"]["flows"] > 0 and first["deep"]["error"] is None
    assert any(f["evidence"].get("wireshark") for f in first["findings"])
    assert second["deep"]["flows"] == 0  # the clean capture: no finding names a flow


@needs_tshark
def test_deep_on_standard_input_keeps_the_audit() -> None:
    """A pipe is read once, for the flows: --deep says so in deep.error, exit CAPTURE."""
    res = CliRunner().invoke(cli, ["-", "-r", "applayering", "-i", str(AL_INV), "--deep",
                                   "--format", "json", "--fail-on", "never"],
                             input=AL.read_bytes())  # fmt: skip
    assert res.exit_code == ExitCode.CAPTURE, res.output
    doc = json.loads(res.stdout)
    assert doc["findings"] and doc["deep"]["error"] == (
        "standard input: cannot be read again for --deep"
    )
    (line,) = res.stderr.splitlines()
    assert line == (
        "pcap-audit: --deep: no evidence attached: standard input: cannot be read again for --deep"
    )
