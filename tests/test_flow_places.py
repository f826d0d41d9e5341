"""Where every flow is: capture, captures, first_frame, last_frame, in every output."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import dpkt
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.evidence.packets import find_packets, flow_refs
from auditor.traffic import read_traffic

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "applayering" / "findings.pcap"
INVENTORY = ROOT / "samples" / "applayering" / "findings.inventory.yaml"
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek"
TSHARK = shutil.which("tshark")


def flows_json(*paths: Path) -> list[dict]:
    res = CliRunner().invoke(cli, ["flows", *map(str, paths), "--format", "json"])
    assert res.exit_code == ExitCode.OK, res.output
    return json.loads(res.stdout)["flows"]


def split(tmp_path: Path, at: int) -> tuple[Path, Path]:
    """The sample rotated after record ``at`` into two files."""
    with open(SAMPLE, "rb") as fh:
        recs = list(dpkt.pcap.Reader(fh))
    one, two = tmp_path / "a.pcap", tmp_path / "b.pcap"
    for path, part in ((one, recs[:at]), (two, recs[at:])):
        with open(path, "wb") as fh:
            w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
            for ts, buf in part:
                w.writepkt(buf, ts)
    return one, two


@pytest.mark.parametrize("path", sorted((ROOT / "samples").glob("*/*.pcap")), ids=str)
def test_first_and_last_frame_are_the_flows_packets(path: Path) -> None:
    traffic = read_traffic([path])
    assert traffic.flows is not None
    flows = traffic.flows.select(["flow_id", "capture", "captures", "first_frame", "last_frame"])
    refs, _ = flow_refs(traffic.flows, flows.column("flow_id").to_pylist())
    frames: dict[str, list[int]] = {}
    for p in find_packets([str(path)], refs):
        frames.setdefault(p.flow_id, []).append(p.frame)
    for f in flows.to_pylist():
        assert (f["capture"], f["captures"]) == (str(path), [str(path)])
        assert (f["first_frame"], f["last_frame"]) == (min(frames[f["flow_id"]]),
                                                       max(frames[f["flow_id"]]))  # fmt: skip


def test_a_flow_across_a_rotation_names_each_file(tmp_path: Path) -> None:
    one, two = split(tmp_path, 1600)
    flows = {f["dst_port"]: f for f in flows_json(one, two)}
    transfer = flows[3009]  # frames 1540-1823 of the whole sample
    assert (transfer["capture"], transfer["captures"]) == (str(one), [str(one), str(two)])
    assert (transfer["first_frame"], transfer["last_frame"]) == (1540, 1823 - 1600)
    later = flows[3015]  # wholly in the second file
    assert later["captures"] == [str(two)] and later["first_frame"] == 1824 - 1600
    res = CliRunner().invoke(cli, [str(one), str(two), "-r", "applayering", "-i", str(INVENTORY),
                                   "--format", "json"])  # fmt: skip
    finding = next(f for f in json.loads(res.stdout)["findings"] if f["dst_port"] == 3009)
    assert finding["evidence"]["frames"] == [f"{one} frame 1540 - {two} frame 223"]
    table = CliRunner().invoke(cli, ["flows", str(one), str(two)], env={"COLUMNS": "200"})
    row = next(line for line in table.stdout.splitlines() if ":3009" in line)
    assert "a.pcap … b.pcap" in row and "1540 … 223" in row  # capture and frames columns


def test_csv_parquet_and_table_carry_them(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["flows", str(SAMPLE), "--format", "csv"])
    row = next(csv.DictReader(io.StringIO(res.stdout)))
    assert (row["capture"], row["captures"], row["first_frame"], row["last_frame"]) == (
        str(SAMPLE), str(SAMPLE), "1", "15")  # fmt: skip
    out = tmp_path / "f.parquet"
    CliRunner().invoke(cli, ["flows", str(SAMPLE), "--format", "parquet", "-o", str(out)])
    t = pq.read_table(out, columns=["capture", "captures", "first_frame", "last_frame"])
    assert t.slice(0, 1).to_pylist() == [
        {"capture": str(SAMPLE), "captures": [str(SAMPLE)], "first_frame": 1, "last_frame": 15}
    ]
    lines = CliRunner().invoke(cli, ["flows", str(SAMPLE)]).stdout.splitlines()
    frames = lines[0].index("frames")  # one capture: no capture column, the frames column
    assert "capture" not in lines[0] and lines[2][frames:].split()[0] == "1-15"


def test_findings_carry_the_frames_of_their_flows() -> None:
    res = CliRunner().invoke(cli, [str(SAMPLE), "-r", "applayering", "-i", str(INVENTORY),
                                   "--format", "json"])  # fmt: skip
    for f in json.loads(res.stdout)["findings"]:
        assert len(f["evidence"].get("frames", [])) == len(f["flow_ids"]), f["id"]
    transfer = next(f for f in json.loads(res.stdout)["findings"] if f["dst_port"] == 3009)
    assert transfer["evidence"]["frames"] == [f"{SAMPLE} frames 1540-1823"]


@pytest.mark.corpus
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus/zeek not present")
@pytest.mark.parametrize("name", ["http__bro.org.pcap", "ftp__retr.pcap", "ssh__ssh.pcap"])
def test_frames_are_tsharks_stream_bounds(name: str) -> None:
    """Per TCP/UDP conversation held by one flow, tshark's first and last frame are the
    flow's (traces without IP fragments: tshark shows a datagram at its last fragment)."""
    path = CORPUS / name
    out = subprocess.run([TSHARK, "-n", "-r", str(path), "-T", "fields", "-e", "frame.number",
                          "-e", "tcp.stream", "-e", "udp.stream", "-e", "ip.src", "-e",
                          "tcp.srcport", "-e", "udp.srcport", "-e", "ip.dst", "-e", "tcp.dstport",
                          "-e", "udp.dstport"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    bounds: dict[frozenset, list[int]] = {}
    for line in out.splitlines():
        n, ts, us, sip, tsp, usp, dip, tdp, udp_ = line.split("\t")
        if not (ts or us) or "," in sip:
            continue
        key = frozenset({(sip, int(tsp or usp)), (dip, int(tdp or udp_))})
        b = bounds.setdefault(key, [int(n), int(n)])
        b[1] = int(n)
    flows = flows_json(path)

    def key(f: dict) -> frozenset:
        return frozenset({(f["src_ip"], f["src_port"]), (f["dst_ip"], f["dst_port"])})

    per_key: dict[frozenset, int] = {}
    for f in flows:
        per_key[key(f)] = per_key.get(key(f), 0) + 1
    checked = 0
    for f in flows:
        if f["proto"] in ("tcp", "udp") and per_key[key(f)] == 1 and key(f) in bounds:
            assert [f["first_frame"], f["last_frame"]] == bounds[key(f)], f["flow_id"]
            checked += 1
    assert checked
