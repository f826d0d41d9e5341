"""--since/--until/--host/--port/--filter on the commands that read captures."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pcapy
import pytest
from click.testing import CliRunner

from auditor.capture.select import FilterError, PacketFilter, parse_time
from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.traffic import read_traffic

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "applayering" / "findings.pcap"
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek"
START = 1763769600_000500000  # the sample's first packet, ns


def flows(*args: str) -> dict:
    res = CliRunner().invoke(cli, ["flows", str(SAMPLE), "--format", "json", *args])
    assert res.exit_code == ExitCode.OK, res.output
    return json.loads(res.stdout)


def libpcap_count(path: Path, expr: str) -> int:
    """How many records libpcap itself selects with ``expr`` (its own filtered read)."""
    h = pcapy.open_offline(str(path))
    h.setfilter(expr)
    n = 0
    while True:
        _, meta = h.next_batch(65536)
        if not meta:
            return n
        n += len(meta) // 16


@pytest.mark.parametrize(
    ("text", "ns", "relative"),
    [
        ("+30s", 30 * 10**9, True),
        ("+90", 90 * 10**9, True),
        ("+1.5s", 1_500_000_000, True),
        ("+5m", 300 * 10**9, True),
        ("+1h30m", 5400 * 10**9, True),
        ("2025-11-22T00:01:00Z", 1763769660 * 10**9, False),
        ("2025-11-22 00:01:00", 1763769660 * 10**9, False),
        ("2025-11-22T01:01:00.25+01:00", 1763769660_250_000_000, False),
    ],
)
def test_times(text: str, ns: int, relative: bool) -> None:
    bound = parse_time(text, "--since")
    assert (bound.ns, bound.relative) == (ns, relative)


@pytest.mark.parametrize("text", ["+", "+5x", "yesterday", "2025-13-01", "+-3s"])
def test_bad_times(text: str) -> None:
    with pytest.raises(FilterError, match="not a time"):
        parse_time(text, "--since")


def test_port_host_and_time_select_packets_before_flows() -> None:
    whole = flows()
    assert len(whole["flows"]) == 26 and "selected" not in whole["captures"][0]
    by_port = flows("--port", "3009")
    assert [f["dst_port"] for f in by_port["flows"]] == [3009]
    assert by_port["captures"][0]["selected"] == 284
    assert by_port["captures"][0]["packets"] == 2093  # the capture is still described whole
    by_host = flows("--host", "10.10.0.21")
    assert by_host["flows"] and all(
        "10.10.0.21" in (f["src_ip"], f["dst_ip"]) for f in by_host["flows"]
    )
    by_net = flows("--host", "10.10.0.20/30", "--host", "10.10.0.99")
    assert {f["src_ip"] for f in by_net["flows"]} | {f["dst_ip"] for f in by_net["flows"]} >= {
        "10.10.0.21"
    }
    both = flows("--host", "10.10.0.21", "--port", "3009")
    assert len(both["flows"]) == 1
    early = flows("--until", "+30s")
    late = flows("--since", "2025-11-22T00:00:30Z")
    assert all(f["first_seen"] < "2025-11-22T00:00:30.0006" for f in early["flows"])
    assert all(f["first_seen"] >= "2025-11-22T00:00:30" for f in late["flows"])
    assert early["captures"][0]["selected"] + late["captures"][0]["selected"] == 2093


@pytest.mark.parametrize(
    "expr",
    ["tcp port 3009", "tcp[tcpflags] & tcp-syn != 0", "host 10.10.0.21 and not port 3009",
     "udp or icmp", "ip[8] < 64", "net 10.10.0.0/28 and greater 1000"],
)  # fmt: skip
def test_capture_filter_selects_what_libpcap_selects(expr: str) -> None:
    traffic = read_traffic([SAMPLE], select=PacketFilter(bpf=expr))
    assert traffic.captures[0].detail("selected") == libpcap_count(SAMPLE, expr)


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus/zeek not present")
@pytest.mark.parametrize(
    ("name", "expr"),
    [
        ("ipv6-reassembly-state-leak.pcap", "ip6"),
        ("http__bro.org.pcap", "tcp port 80 and tcp[tcpflags] & tcp-fin != 0"),
        ("dns-edns-ecs.pcap", "udp port 53"),
        ("smb__smb2.pcap", "vlan or host 192.168.10.31"),
        ("tunnels__Teredo.pcap", "udp port 3544"),
    ],
)
def test_capture_filter_on_real_captures(name: str, expr: str) -> None:
    path = CORPUS / name
    traffic = read_traffic([path], select=PacketFilter(bpf=expr))
    assert not traffic.errors
    assert traffic.captures[0].detail("selected") == libpcap_count(path, expr)


def test_capture_filter_on_a_gzipped_capture(tmp_path: Path) -> None:
    gz = tmp_path / "findings.pcap.gz"
    with gzip.open(gz, "wb") as out, open(SAMPLE, "rb") as src:
        shutil.copyfileobj(src, out)
    res = CliRunner().invoke(cli, ["flows", str(gz), "--filter", "tcp port 3009", "--format",
                                   "json"])  # fmt: skip
    assert res.exit_code == ExitCode.OK, res.output
    doc = json.loads(res.stdout)
    assert doc["captures"][0]["selected"] == 284
    assert [f["dst_port"] for f in doc["flows"]] == [3009]


def test_audit_and_roles_take_the_filters() -> None:
    res = CliRunner().invoke(cli, [str(SAMPLE), "-r", "applayering", "--port", "3009",
                                   "--format", "json", "--fail-on", "never"])  # fmt: skip
    assert res.exit_code == ExitCode.OK, res.output
    doc = json.loads(res.stdout)
    assert doc["summary"]["flows"] == 1
    assert {f["kind"] for f in doc["findings"]} <= {"plaintext_disk_transfer", "unexpected_port"}
    res = CliRunner().invoke(cli, ["roles", str(SAMPLE), "-r", "applayering",
                                   "--filter", "port 3009", "--format", "json"])  # fmt: skip
    assert res.exit_code == ExitCode.OK, res.output


def test_show_filters_the_packets_not_the_flow_lookup() -> None:
    flow = flows()["flows"]
    transfer = next(f for f in flow if f["dst_port"] == 3009)
    res = CliRunner().invoke(cli, ["show", transfer["flow_id"], str(SAMPLE), "--filter",
                                   "tcp[tcpflags] & tcp-syn != 0", "--format", "json"])  # fmt: skip
    assert res.exit_code == ExitCode.OK, res.output
    pkts = json.loads(res.stdout)["packets"]
    assert [p["tcp_flags"] for p in pkts] == ["[S]", "[S.]"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "tcp prt 80"], "pcap-audit: --filter: 'tcp prt 80': can't parse filter"),
        (["--since", "yesterday"], "pcap-audit: --since: 'yesterday': not a time"),
        (["--until", "+3x"], "pcap-audit: --until: '+3x': not a time"),
        (["--host", "10.0.0.300"], "pcap-audit: --host: '10.0.0.300': not an address"),
    ],
)
@pytest.mark.parametrize("command", [["flows"], ["audit", "-r", "applayering"]])
def test_bad_filters_are_usage_errors(command: list[str], args: list[str], message: str) -> None:
    res = CliRunner().invoke(cli, [*command, str(SAMPLE), *args])
    assert res.exit_code == ExitCode.USAGE, res.output
    assert res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert line.startswith(message)


def test_bad_port_is_clicks_usage_error() -> None:
    res = CliRunner().invoke(cli, ["flows", str(SAMPLE), "--port", "70000"])
    assert res.exit_code == ExitCode.USAGE
    assert "--port" in res.stderr


def test_capture_filter_on_a_capture_cut_mid_record(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(SAMPLE.read_bytes()[:2_000_000])  # ends inside record 1377
    traffic = read_traffic([cut], select=PacketFilter(bpf="tcp"))
    assert not traffic.errors
    capture = traffic.captures[0].to_json()
    assert capture["truncated"] and capture["packets"] == 1376
    assert capture["selected"] == 1376  # the records before the cut, as libpcap reads them


TCPDUMP = ROOT.parent / "shared" / "corpus" / "tcpdump"


@pytest.mark.corpus
@pytest.mark.skipif(not TCPDUMP.exists(), reason="../shared/corpus/tcpdump not present")
def test_a_link_type_libpcap_cannot_filter_fails_that_capture_only() -> None:
    nflog = TCPDUMP / "nflog.pcap"
    res = CliRunner().invoke(cli, ["flows", str(nflog), str(SAMPLE), "--filter", "tcp port 3009",
                                   "--format", "json"])  # fmt: skip
    assert res.exit_code == ExitCode.CAPTURE, res.output
    (line,) = res.stderr.splitlines()
    assert line == (f"pcap-audit: {nflog}: --filter cannot be applied to its link type: "
                    "NFLOG link-layer type filtering not implemented")  # fmt: skip
    doc = json.loads(res.stdout)
    assert [f["dst_port"] for f in doc["flows"]] == [3009]


@pytest.mark.corpus
@pytest.mark.skipif(not TCPDUMP.exists(), reason="../shared/corpus/tcpdump not present")
@pytest.mark.parametrize("name", ["timestamp_invalid_micro.pcap", "pim-packet-assortment.pcap",
                                  "bgp_mp_reach_nlri-oobr.pcap", "time_2106_overflow.pcapng"])  # fmt: skip
def test_capture_filter_on_odd_captures(name: str) -> None:
    """Records longer than the snapshot length (libpcap clips them), impossible timestamps."""
    path = TCPDUMP / name
    traffic = read_traffic([path], select=PacketFilter(bpf="ip or ip6"))
    assert not traffic.errors, traffic.errors[0].one_line()
    assert traffic.captures[0].detail("selected") == libpcap_count(path, "ip or ip6")


def test_capture_filter_on_a_zstd_capture(tmp_path: Path) -> None:
    """libpcap reads no zstd: a temporary decompressed copy, as for gzip."""
    import zstandard

    zst = tmp_path / "findings.pcap.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(SAMPLE.read_bytes()))
    traffic = read_traffic([zst], select=PacketFilter(bpf="tcp port 3009"))
    assert traffic.complete and traffic.captures[0].detail("selected") == 284


def test_capture_filter_on_standard_input_is_a_capture_problem() -> None:
    """libpcap would have to read the pipe a second time: one line, exit CAPTURE."""
    res = CliRunner().invoke(
        cli, ["flows", "-", "--filter", "tcp", "--format", "json"], input=SAMPLE.read_bytes()
    )
    assert res.exit_code == ExitCode.CAPTURE, res.output
    (line,) = res.stderr.splitlines()
    assert line == (
        "pcap-audit: standard input: --filter reads a capture twice: give a file, not a pipe"
    )
    res = CliRunner().invoke(
        cli, ["flows", "-", "--port", "3009", "--format", "json"], input=SAMPLE.read_bytes()
    )
    assert res.exit_code == ExitCode.OK, res.output
    assert json.loads(res.stdout)["captures"][0]["selected"] == 284


def test_filters_with_dedup_and_each(tmp_path: Path) -> None:
    """The filters combine with --dedup and --each (one result per set, each filtered)."""
    res = CliRunner().invoke(
        cli,
        [str(SAMPLE), str(SAMPLE.with_name("clean.pcap")), "-r", "applayering", "--each",
         "--port", "3009", "--dedup", "--format", "json", "--fail-on", "never"],
    )  # fmt: skip
    assert res.exit_code == ExitCode.OK, res.output
    results = json.loads(res.stdout)["results"]
    assert [r["summary"]["flows"] for r in results] == [1, 0]  # clean.pcap: nothing on 3009
    assert [r["captures"][0]["selected"] for r in results] == [284, 0]
    assert results[0]["summary"]["duplicates_dropped"] == 0
