"""``pcap-audit show``: from a flow or a finding to its packets, frame numbers and a pcap."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest
from click.testing import CliRunner

from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.traffic import read_traffic

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "applayering" / "findings.pcap"
INVENTORY = ROOT / "samples" / "applayering" / "findings.inventory.yaml"
EXPECTED = ROOT / "samples" / "applayering" / "findings.expected.json"
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek"
TSHARK = shutil.which("tshark")


def flows_of(path: Path) -> list[dict]:
    traffic = read_traffic([path])
    assert traffic.flows is not None
    return traffic.flows.drop_columns(["src_ip_bytes", "dst_ip_bytes"]).to_pylist()


def records(path: Path) -> list[tuple[float, bytes]]:
    with open(path, "rb") as fh:
        return list(dpkt.pcap.Reader(fh))


def frames_in_show(stdout: str) -> list[int]:
    return [int(x.split()[0]) for x in stdout.splitlines() if x.split()[0].isdigit()]


def the_disk_transfer() -> dict:
    """The plaintext disk transfer finding of the sample (its id is stable)."""
    doc = json.loads(EXPECTED.read_text())
    return next(f for f in doc["findings"] if f["kind"] == "plaintext_disk_transfer")


def test_flow_id_lists_every_packet_with_its_frame_number() -> None:
    flow = max(flows_of(SAMPLE), key=lambda f: f["packets_fwd"] + f["packets_rev"])
    res = CliRunner().invoke(cli, ["show", flow["flow_id"], str(SAMPLE)])
    assert res.exit_code == ExitCode.OK, res.output
    frames = frames_in_show(res.stdout)
    assert len(frames) == flow["packets_fwd"] + flow["packets_rev"]
    assert frames == sorted(frames)
    head = res.stdout.splitlines()[0]
    assert head.startswith(f"flow {flow['flow_id']}  {flow['community_id']}  tcp ")
    # the frames are the flow's packets: each record's ports are the flow's
    recs = records(SAMPLE)
    ports = {flow["src_port"], flow["dst_port"]}
    for n in frames:
        tcp = dpkt.ethernet.Ethernet(recs[n - 1][1]).data.data
        assert {tcp.sport, tcp.dport} == ports


def test_community_id_and_json() -> None:
    flow = flows_of(SAMPLE)[5]
    res = CliRunner().invoke(cli, ["show", flow["community_id"], str(SAMPLE), "--format", "json"])
    assert res.exit_code == ExitCode.OK, res.output
    doc = json.loads(res.stdout)
    assert doc["flows"][0]["flow_id"] == flow["flow_id"]
    assert doc["finding"] is None
    pkts = doc["packets"]
    assert len(pkts) == flow["packets_fwd"] + flow["packets_rev"]
    assert sum(p["direction"] == "fwd" for p in pkts) == flow["packets_fwd"]
    assert sum(p["wire_len"] for p in pkts) == flow["bytes_fwd"] + flow["bytes_rev"]
    assert all(p["capture"] == str(SAMPLE) for p in pkts)


def test_finding_from_saved_audit_and_from_ruleset_agree(tmp_path: Path) -> None:
    finding = the_disk_transfer()
    saved = tmp_path / "audit.json"
    res = CliRunner().invoke(
        cli,
        [
            str(SAMPLE),
            "-r",
            "applayering",
            "-i",
            str(INVENTORY),
            "--format",
            "json",
            "-o",
            str(saved),
        ],
    )
    assert res.exit_code == ExitCode.FINDINGS
    a = CliRunner().invoke(cli, ["show", finding["id"], str(SAMPLE), "--from", str(saved)])
    b = CliRunner().invoke(
        cli, ["show", finding["id"], str(SAMPLE), "-r", "applayering", "-i", str(INVENTORY)]
    )
    assert a.exit_code == b.exit_code == ExitCode.OK, a.output + b.output
    assert a.stdout == b.stdout
    assert len(frames_in_show(a.stdout)) == finding["packets"]


def test_export_writes_exactly_those_packets(tmp_path: Path) -> None:
    finding = the_disk_transfer()
    out = tmp_path / "evidence.pcap"
    res = CliRunner().invoke(
        cli,
        [
            "show",
            finding["id"],
            str(SAMPLE),
            "-r",
            "applayering",
            "-i",
            str(INVENTORY),
            "--export-pcap",
            str(out),
        ],
    )
    assert res.exit_code == ExitCode.OK, res.output
    frames = frames_in_show(res.stdout)
    assert f"wrote {len(frames)} packets to {out}" in res.stderr
    original = records(SAMPLE)
    exported = records(out)
    assert [buf for _, buf in exported] == [original[n - 1][1] for n in frames]
    assert [ts for ts, _ in exported] == [original[n - 1][0] for n in frames]
    # and the export audits to the same finding
    again = CliRunner().invoke(cli, [str(out), "-r", "applayering", "-i", str(INVENTORY),
                                     "--format", "json"])  # fmt: skip
    kinds = [f["kind"] for f in json.loads(again.stdout)["findings"]]
    assert "plaintext_disk_transfer" in kinds


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_export_opens_in_tshark_with_those_packets(tmp_path: Path) -> None:
    finding = the_disk_transfer()
    out = tmp_path / "evidence.pcap"
    flow = finding["flow_ids"][0]
    res = CliRunner().invoke(cli, ["show", flow, str(SAMPLE), "--export-pcap", str(out)])
    frames = frames_in_show(res.stdout)
    fields = ["-T", "fields", "-e", "frame.number", "-e", "tcp.srcport", "-e", "frame.len"]
    theirs = subprocess.run([TSHARK, "-n", "-r", str(out), *fields], capture_output=True,
                            text=True, check=True).stdout.splitlines()  # fmt: skip
    assert len(theirs) == finding["packets"] == len(frames)
    everything = subprocess.run([TSHARK, "-n", "-r", str(SAMPLE), *fields], capture_output=True,
                                text=True, check=True).stdout.splitlines()  # fmt: skip
    orig = [everything[n - 1] for n in frames]
    assert [x.split("\t")[1:] for x in theirs] == [x.split("\t")[1:] for x in orig]


def test_flow_across_a_file_rotation(tmp_path: Path) -> None:
    """A flow cut by a rotation is found in both files, each with its own frame numbers."""
    finding = the_disk_transfer()
    recs = records(SAMPLE)
    one, two = tmp_path / "a.pcap", tmp_path / "b.pcap"
    for path, part in ((one, recs[:1600]), (two, recs[1600:])):
        with open(path, "wb") as fh:
            w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)  # µs, like the sample
            for ts, buf in part:
                w.writepkt(buf, ts)
    res = CliRunner().invoke(cli, ["show", finding["flow_ids"][0], str(one), str(two),
                                   "--format", "json"])  # fmt: skip
    assert res.exit_code == ExitCode.OK, res.output
    pkts = json.loads(res.stdout)["packets"]
    assert len(pkts) == finding["packets"]
    in_one = [p["frame"] for p in pkts if p["capture"] == str(one)]
    in_two = [p["frame"] for p in pkts if p["capture"] == str(two)]
    assert in_one and in_two
    assert max(in_one) <= 1600 and min(in_two) >= 1
    single = CliRunner().invoke(cli, ["show", finding["flow_ids"][0], str(SAMPLE),
                                      "--format", "json"])  # fmt: skip
    frames = [p["frame"] for p in json.loads(single.stdout)["packets"]]
    assert frames == in_one + [n + 1600 for n in in_two]


@pytest.mark.corpus
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus/zeek not present")
@pytest.mark.parametrize("name", ["http__bro.org.pcap", "ssl-and-ssh-using-sslh.pcap"])
def test_frames_are_tsharks_on_real_captures(name: str) -> None:
    path = CORPUS / name
    flow = max(flows_of(path), key=lambda f: f["packets_fwd"] + f["packets_rev"])
    res = CliRunner().invoke(cli, ["show", flow["flow_id"], str(path)])
    assert res.exit_code == ExitCode.OK, res.output
    a, b = (flow["src_ip"], flow["src_port"]), (flow["dst_ip"], flow["dst_port"])
    expr = f"ip.addr=={a[0]} && ip.addr=={b[0]} && tcp.port=={a[1]} && tcp.port=={b[1]}"
    theirs = subprocess.run([TSHARK, "-n", "-r", str(path), "-Y", expr, "-T", "fields", "-e",
                             "frame.number"], capture_output=True, text=True, check=True)  # fmt: skip
    assert frames_in_show(res.stdout) == [int(x) for x in theirs.stdout.split()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["XYZ"], "FLOW: 'XYZ' is neither a flow id (F + 16 hex digits) nor a Community ID"),
        (["F0000000000000000"], "F0000000000000000: no such flow in the 1 capture(s)"),
        (["PLA-000000000000", "--from", str(EXPECTED)], "no finding PLA-000000000000"),
        (["MIS-4b4c6f66b3f3", "--from", str(EXPECTED)], "names no flow"),
        (["PLA-000000000000", "--from", str(SAMPLE)], "not JSON"),
    ],
)
def test_bad_flow_is_one_line_and_usage(args: list[str], message: str) -> None:
    res = CliRunner().invoke(cli, ["show", args[0], str(SAMPLE), *args[1:]])
    assert res.exit_code == ExitCode.USAGE, res.output
    (line,) = res.stderr.splitlines()
    assert message in line


def test_export_to_an_unwritable_place(tmp_path: Path) -> None:
    flow = flows_of(SAMPLE)[0]
    bad = tmp_path / "no" / "such" / "dir" / "x.pcap"
    res = CliRunner().invoke(cli, ["show", flow["flow_id"], str(SAMPLE), "--export-pcap", str(bad)])
    assert res.exit_code == ExitCode.USAGE, res.output
    assert f"pcap-audit: {bad}: cannot write" in res.stderr


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_show_deep_adds_tsharks_columns() -> None:
    finding = the_disk_transfer()
    res = CliRunner().invoke(cli, ["show", finding["flow_ids"][0], str(SAMPLE), "--deep"])
    assert res.exit_code == ExitCode.OK, res.output
    lines = {int(x.split()[0]): x for x in res.stdout.splitlines() if x.split()[0].isdigit()}
    assert lines[1540].endswith("| TCP 52001 → 3009 [SYN] Seq=0 Win=65535 Len=0")
    assert lines[1543].endswith("| HTTP GET /disks/win2022-os-layer.vhd HTTP/1.1")
    res = CliRunner().invoke(cli, ["show", finding["flow_ids"][0], str(SAMPLE), "--deep",
                                   "--format", "json", "--port", "3009", "--until", "+60.0015"])  # fmt: skip
    pkts = json.loads(res.stdout)["packets"]
    assert [p["tshark"]["protocol"] for p in pkts] == ["TCP", "TCP", "TCP", "HTTP"]


def test_show_deep_without_tshark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PCAP_AUDIT_TSHARK", "no-such-tshark-binary")
    flow = flows_of(SAMPLE)[0]
    res = CliRunner().invoke(cli, ["show", flow["flow_id"], str(SAMPLE), "--deep"])
    assert res.exit_code == ExitCode.USAGE
    (line,) = res.stderr.splitlines()
    assert line.startswith("pcap-audit: tshark: not installed (not on PATH); show --deep needs")
    res = CliRunner().invoke(cli, ["show", flow["flow_id"], str(SAMPLE)])
    assert res.exit_code == ExitCode.OK


def test_export_from_a_gzipped_capture(tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "findings.pcap.gz"
    gz.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    flow = flows_of(SAMPLE)[3]
    out = tmp_path / "x.pcap"
    res = CliRunner().invoke(cli, ["show", flow["flow_id"], str(gz), "--export-pcap", str(out)])
    assert res.exit_code == ExitCode.OK, res.output
    frames = frames_in_show(res.stdout)
    original = records(SAMPLE)
    assert [buf for _, buf in records(out)] == [original[n - 1][1] for n in frames]


TCPDUMP = ROOT.parent / "shared" / "corpus" / "tcpdump"


@pytest.mark.corpus
@pytest.mark.skipif(not TCPDUMP.exists(), reason="../shared/corpus/tcpdump not present")
@pytest.mark.parametrize("name", ["pim-packet-assortment.pcap", "timestamp_invalid_micro.pcap",
                                  "time_2106.pcap", "mptcp-dss-oobr.pcap"])  # fmt: skip
def test_export_of_odd_captures(tmp_path: Path, name: str) -> None:
    """Records longer than the snapshot length (libpcap clips them to it) and impossible
    timestamps still export, record for record."""
    path = TCPDUMP / name
    flows = flows_of(path)
    out = tmp_path / "x.pcap"
    flow = max(flows, key=lambda f: f["packets_fwd"] + f["packets_rev"])
    res = CliRunner().invoke(cli, ["show", flow["flow_id"], str(path), "--export-pcap", str(out)])
    assert res.exit_code == ExitCode.OK, res.output
    assert len(records(out)) == flow["packets_fwd"] + flow["packets_rev"]


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus/zeek not present")
def test_export_libpcap_refuses_is_one_line(tmp_path: Path) -> None:
    """The libpcap bundled with pcapy-ng refuses pcapng interfaces of different snapshot
    lengths: the export says so in one line (the packets are still listed)."""
    path = CORPUS / "ldap__modify-request.pcapng"
    flow = flows_of(path)[0]
    res = CliRunner().invoke(cli, ["show", flow["flow_id"], str(path), "--export-pcap",
                                   str(tmp_path / "x.pcap")])  # fmt: skip
    assert res.exit_code == ExitCode.CAPTURE
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"pcap-audit: {path}: libpcap stopped reading it for export")
    assert frames_in_show(res.stdout)


def test_export_over_the_capture_itself_is_refused_before_reading(tmp_path: Path) -> None:
    """--export-pcap is an output like -o: checked first, never written over an input."""
    capture = tmp_path / "night.pcap"
    shutil.copy(SAMPLE, capture)
    before = capture.read_bytes()
    flow = flows_of(SAMPLE)[0]
    res = CliRunner().invoke(
        cli, ["show", flow["flow_id"], str(capture), "--export-pcap", str(capture)]
    )
    assert res.exit_code == ExitCode.USAGE, res.output
    assert res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert line == f"pcap-audit: {capture}: is also an input ({capture}); refusing to overwrite it"
    assert capture.read_bytes() == before


def test_export_replaces_the_file_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "evidence.pcap"
    out.write_bytes(b"the last good export")
    finding = the_disk_transfer()
    res = CliRunner().invoke(
        cli, ["show", finding["flow_ids"][0], str(SAMPLE), "--export-pcap", str(out)]
    )
    assert res.exit_code == ExitCode.OK, res.output
    assert len(records(out)) == 284
    assert [p.name for p in tmp_path.iterdir()] == ["evidence.pcap"]  # no temporary left
    res = CliRunner().invoke(cli, ["show", "F0000000000000000", str(SAMPLE), "--export-pcap",
                                   str(out)])  # fmt: skip
    assert res.exit_code == ExitCode.USAGE
    assert len(records(out)) == 284  # an unknown flow leaves the last export as it was


def test_standard_input_cannot_be_shown() -> None:
    """show reads the captures twice (flows, then packets): a pipe is refused, one line."""
    flow = flows_of(SAMPLE)[0]
    res = CliRunner().invoke(cli, ["show", flow["flow_id"], "-"], input=SAMPLE.read_bytes())
    assert res.exit_code == ExitCode.USAGE, res.output
    (line,) = res.stderr.splitlines()
    assert line.startswith("pcap-audit: -: standard input cannot be read twice")


def test_a_capture_not_read_whole_is_said_and_sets_the_capture_bit(tmp_path: Path) -> None:
    """show prints the traffic's notes (as the audit does) and exits CAPTURE."""
    cut = tmp_path / "cut.pcap"
    data = SAMPLE.read_bytes()
    cut.write_bytes(data[: len(data) - 100])  # ends inside the last record
    import os

    os.utime(cut, (1e9, 1e9))  # long closed, not being written
    finding = the_disk_transfer()
    res = CliRunner().invoke(cli, ["show", finding["flow_ids"][0], str(cut)])
    assert res.exit_code == ExitCode.CAPTURE, res.output
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"pcap-audit: {cut}: ")
    assert frames_in_show(res.stdout)[:2] == [1540, 1541]
