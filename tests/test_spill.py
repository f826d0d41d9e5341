"""Memory bounded by design (issue 10, item 8): beyond ``--flow-limit`` live flows, the least
recently seen are spilled to disk and merged back by their full key (auditor/flows/spill.py).
Never lost, same findings: the flow table and the audit are the same with a tiny limit as
with none, on the samples and on real captures read in tiny batches (so that flows are
evicted in the middle and continue in a new segment), and a TCP flow cut by evictions is
merged back into one flow (a port reused after a close stays two)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

from auditor import duck
from auditor.capture import read_packets
from auditor.classify.facts import FLOW_FACTS_SCHEMA, null_column, zeros
from auditor.cli.main import cli
from auditor.errors import ResourceError
from auditor.flows import FlowBuilder, ondisk
from auditor.traffic import read_traffic
from tests.packets import ACK, PSH, SYN, TCP, eth, ipv4, tcp

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*/*.pcap"))
CORPUS = ROOT.parent / "shared" / "corpus"
#: real traces with TCP port reuse, IP fragments, tunnels, FTP data, pcapng, many flows
CORPUS_FILES = [
    "zeek/http__bro.org.pcap",
    "zeek/ssh__ssh.pcap",
    "zeek/erspan.pcap",
    "zeek/ipv6-reassembly-state-leak.pcap",
    "zeek/tunnels__gtp__gtp1_gn_normal_incl_fragmentation.pcap",
    "zeek/irc-dcc-send.pcapng",
    "zeek/ftp__retr.pcap",
    "zeek/wikipedia.pcap",
]
FIN, RST = 0x01, 0x04


def flow_table(path: Path, limit: int | None, batch: int) -> tuple[pa.Table, int]:
    """The flow table of ``path`` read in batches of ``batch`` packets, and its segments
    (flows spilled, and live at the end; as many as flows when nothing was spilled)."""
    b = FlowBuilder(limit=limit)
    for rb in read_packets(path, batch_size=batch):
        b.add_batch(rb)
    segments = (b.spill.rows if b.spill is not None else 0) + b.n
    return b.table(), segments


def same_table(a: pa.Table, b: pa.Table) -> None:
    assert b.num_rows == a.num_rows
    assert b.schema == a.schema
    for name in a.column_names:
        assert b.column(name).equals(a.column(name)), name


def corpus(name: str) -> Path:
    if not CORPUS.exists():
        pytest.skip("../shared/corpus not present")
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"{name} not in ../shared/corpus")
    return path


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize(("limit", "batch"), [(1, 1), (2, 7), (10, 50)])
def test_samples_same_flows_with_tiny_limit(path: Path, limit: int, batch: int) -> None:
    want, none = flow_table(path, None, batch)
    got, segments = flow_table(path, limit, batch)
    assert none == want.num_rows
    assert segments >= want.num_rows
    if batch == 1:  # evicted after every packet: flows were cut into segments
        assert segments > want.num_rows
    same_table(want, got)


@pytest.mark.parametrize("name", CORPUS_FILES)
@pytest.mark.parametrize(("limit", "batch"), [(2, 7), (10, 64)])
def test_corpus_same_flows_with_tiny_limit(name: str, limit: int, batch: int) -> None:
    path = corpus(name)
    want, _ = flow_table(path, None, batch)
    got, segments = flow_table(path, limit, batch)
    assert segments >= want.num_rows
    same_table(want, got)


def write_pcap(path: Path, frames: list[bytes]) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(f), len(f)) + f)
    path.write_bytes(b"".join(out))
    return path


def seg(
    a: str, b: str, sport: int, dport: int, flags: int, data: bytes = b"", seq: int = 1000
) -> bytes:
    return eth(ipv4(a, b, TCP, tcp(sport, dport, data, seq=seq, flags=flags)))


def noise(i: int) -> bytes:
    """A one-packet flow of its own: pushes the others out of a tiny table."""
    return eth(
        ipv4("10.9.0.1", f"10.9.{1 + i // 250}.{1 + i % 250}", TCP, tcp(40000 + i, 9, flags=SYN))
    )


def conversation(tmp_path: Path) -> Path:
    """An HTTP connection whose packets straddle evictions (one-packet flows between its
    packets), closed, then the same 5-tuple reused by a new connection (another SYN)."""
    c, s = "10.0.0.1", "10.0.0.2"
    first = [
        seg(c, s, 50000, 80, SYN, seq=1),
        seg(s, c, 80, 50000, SYN | ACK),
        seg(c, s, 50000, 80, ACK),
        seg(c, s, 50000, 80, PSH | ACK, b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"),
        seg(s, c, 80, 50000, PSH | ACK, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        seg(c, s, 50000, 80, FIN | ACK),
        seg(s, c, 80, 50000, FIN | ACK),
        seg(c, s, 50000, 80, ACK),
    ]
    reused = [
        seg(c, s, 50000, 80, SYN, seq=9999),
        seg(s, c, 80, 50000, RST | ACK),
    ]
    frames: list[bytes] = []
    for i, f in enumerate(first + reused):
        frames += [f, noise(2 * i), noise(2 * i + 1)]
    return write_pcap(tmp_path / "straddle.pcap", frames)


def rows(table: pa.Table) -> list[dict[str, Any]]:
    t = table.filter(pa.compute.equal(table.column("dst_port"), 80))
    return t.select(["packets_fwd", "packets_rev", "state", "app", "http_host"]).to_pylist()


def test_flow_split_by_eviction_is_merged(tmp_path: Path) -> None:
    path = conversation(tmp_path)
    want, _ = flow_table(path, None, 1)
    got, segments = flow_table(path, 1, 1)
    assert segments >= want.num_rows + 8  # its packets were in segments of their own
    same_table(want, got)
    assert rows(got) == [
        {
            "packets_fwd": 5,
            "packets_rev": 3,
            "state": "closed",
            "app": "http",
            "http_host": "example.org",
        },
        {"packets_fwd": 1, "packets_rev": 1, "state": "rejected", "app": "none", "http_host": None},
    ]


def audit_json(args: list[str]) -> dict[str, Any]:
    res = CliRunner().invoke(cli, [*args, "--format", "json", "--fail-on", "never", "-j", "1"])
    assert res.exit_code in (0, 4), res.output
    doc = json.loads(res.stdout)
    doc["summary"].pop("duration_ms", None)
    return doc


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_audit_same_findings_with_tiny_limit(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ondisk, "SLICE", 3)  # the flow table on disk in many slices
    ruleset = path.parent.name
    inventory = path.with_suffix(".inventory.yaml")
    args = [str(path), "--ruleset", ruleset, "-i", str(inventory)]
    want = audit_json(args)
    for limit in ("2", "10"):
        got = audit_json([*args, "--flow-limit", limit, "--temp-dir", str(tmp_path)])
        assert got == want
    assert list(tmp_path.iterdir()) == []  # the spill is removed


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_flows_same_with_tiny_limit(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ondisk, "SLICE", 5)
    path = SAMPLES[0]
    runner = CliRunner()
    out: list[bytes] = []
    for extra in ([], ["--flow-limit", "2"]):
        dest = tmp_path / f"flows{len(out)}.{fmt}"
        res = runner.invoke(
            cli, ["flows", str(path), "--format", fmt, "-j", "1", "-o", str(dest), *extra]
        )
        assert res.exit_code == 0, res.output
        out.append(dest.read_bytes())
    assert out[0] == out[1]


@pytest.mark.parametrize("path", SAMPLES[:2], ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("rows", [1, 4, 1000])
def test_flow_table_on_disk_is_the_same_table(
    path: Path, rows: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that spilled hands over its flow table on disk (auditor.flows.ondisk), written in
    slices of ``rows``: the same schema and values as in memory, nothing left in the
    temporary directory (the file is unlinked once mapped), and the same after its pages
    are given back."""
    monkeypatch.setattr(ondisk, "SLICE", rows)
    monkeypatch.setattr(ondisk, "_temp_dir", lambda: str(tmp_path))
    want = read_traffic([path], flow_limit=None)
    got = read_traffic([path], flow_limit=2)
    assert not want.spilled and got.spilled
    assert want.flows is not None and got.flows is not None
    same_table(want.flows, got.flows)
    assert list(tmp_path.iterdir()) == []
    ondisk.release()
    same_table(want.flows, got.flows)
    # the classifier's columns without a value were not written: nulls on one buffer
    null = [
        c for c in want.flows.column_names if want.flows.column(c).null_count == want.flows.num_rows
    ]
    assert null and all(got.flows.column(c).num_chunks == 1 for c in null)


def test_flow_table_on_disk_when_it_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ResourceError, match="--temp-dir"):
        ondisk.on_disk(lambda: pa.table({"a": [1]}), where=str(blocker / "flows"))


def test_null_columns_share_one_buffer() -> None:
    n = 1000
    zero = zeros(n)
    for field in FLOW_FACTS_SCHEMA:
        col = null_column(n, field.type, zero)
        col.validate(full=True)
        assert col.equals(pa.nulls(n, field.type)), field.name
        assert col.buffers()[0].address == zero.address


def test_duckdb_bounded_only_without_a_limit() -> None:
    def limit() -> str:
        with duck.cursor() as con:
            row = con.execute("SELECT current_setting('memory_limit')").fetchone()
            assert row is not None
            return str(row[0])

    if duck.memory_limit()[0] is not None:
        pytest.skip("a memory limit is set (an address-space limit)")
    before = limit()
    with duck.bounded("300MB"):
        assert limit() != before and limit().startswith("28")  # 300 MB as MiB
    assert limit() == before


def test_spill_directory_that_cannot_be_made_is_a_resource_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = SAMPLES[0]
    res = CliRunner().invoke(
        cli,
        [
            str(path),
            "--ruleset",
            path.parent.name,
            "--flow-limit",
            "1",
            "--temp-dir",
            str(blocker / "spill"),
        ],
    )
    assert res.exit_code == 8, res.output
    assert "spill directory" in res.stderr and "--temp-dir" in res.stderr
    assert "Traceback" not in res.output


def test_spill_removed_when_a_read_ends_early(tmp_path: Path) -> None:
    from auditor.flows.spill import Spill

    b = FlowBuilder(limit=1)
    b.spill = Spill(str(tmp_path))
    for rb in read_packets(SAMPLES[0], batch_size=5):
        b.add_batch(rb)
    assert b.spill.rows and list(tmp_path.iterdir())
    del b  # what an exception unwinding the read does
    assert list(tmp_path.iterdir()) == []
