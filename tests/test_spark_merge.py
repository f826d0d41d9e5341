"""The Spark engine's data path without Spark: splits decoded one by one in this process
and their segments merged must give exactly the local engine's traffic set (flow table,
captures, notes), however finely the captures are cut. This is what every Spark task runs;
tests/test_spark_engine.py runs the same through Spark itself."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest

from auditor.engines.spark.assemble import read_found_split
from auditor.engines.spark.splits import pcap_boundaries, plan
from auditor.sources import expand
from auditor.traffic import Traffic, read_traffic

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*/*.pcap"))
CORPUS = ROOT.parent / "shared" / "corpus"
#: real traces with TCP port reuse, IP fragments, tunnels, pcapng, several link types
CORPUS_FILES = [
    "zeek/http__bro.org.pcap",
    "zeek/ssh__ssh.pcap",
    "zeek/erspan.pcap",
    "zeek/ipv6-reassembly-state-leak.pcap",
    "zeek/tunnels__gtp__gtp1_gn_normal_incl_fragmentation.pcap",
    "zeek/irc-dcc-send.pcapng",
    "zeek/smb__smb2.pcap",
]


def same(a: Traffic, b: Traffic) -> None:
    assert a.flows is not None and b.flows is not None
    assert b.flows.num_rows == a.flows.num_rows
    for name in a.flows.column_names:
        assert b.flows.column(name).equals(a.flows.column(name)), name
    assert b.captures == a.captures
    assert b.notes == a.notes
    assert [e.one_line() for e in b.errors] == [e.one_line() for e in a.errors]


def split_read(paths: list[Path], split_bytes: int) -> Traffic:
    return read_found_split(list(expand([str(p) for p in paths])), split_bytes=split_bytes)


def records(path: Path) -> tuple[bytes, list[bytes]]:
    data = path.read_bytes()
    out, pos = [], 24
    while pos < len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos : pos + 16 + caplen])
        pos += 16 + caplen
    return data[:24], out


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("split_bytes", [256 << 20, 2000])
def test_every_sample_split_finely_is_the_local_traffic(path: Path, split_bytes: int) -> None:
    same(read_traffic([path]), split_read([path], split_bytes))


def test_splits_start_at_record_boundaries() -> None:
    path = SAMPLES[0]
    _, recs = records(path)
    starts, pos = set(), 24
    for r in recs:
        starts.add(pos)
        pos += len(r)
    cuts = pcap_boundaries(str(path), 4096)
    assert cuts and set(cuts) <= starts
    assert all(b - a >= 4096 for a, b in zip([24, *cuts], cuts, strict=False))
    splits = plan([(str(path), 0)], 4096)
    assert [s.start for s in splits] == [24, *cuts]
    assert [s.end for s in splits] == [*cuts, None]
    assert plan([(str(path), 0)], 1 << 30)[0].start is None  # small: the whole file


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_real_captures_split_are_the_local_traffic(name: str) -> None:
    path = CORPUS / name
    same(read_traffic([path]), split_read([path], 4096))


def test_a_rotated_capture_split_again_is_one_traffic_set(tmp_path: Path) -> None:
    src = ROOT / "samples" / "applayering" / "findings.pcap"
    header, recs = records(src)
    night = tmp_path / "night"
    night.mkdir()
    size = len(recs) // 3 + 1
    for i, name in enumerate(["span.pcap", "span.pcap1", "span.pcap2"]):
        (night / name).write_bytes(header + b"".join(recs[i * size : (i + 1) * size]))
    local = read_traffic([night])
    same(local, split_read([night], 5000))
    assert local.flows is not None
    assert local.flows.num_rows == read_traffic([src]).flows.num_rows  # type: ignore[union-attr]


def test_a_capture_cut_short_says_the_same_when_split(tmp_path: Path) -> None:
    data = SAMPLES[0].read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-30])
    os.utime(path, (1e9, 1e9))
    local = read_traffic([path])
    assert any("ends inside a record" in n for n in local.notes)
    same(local, split_read([path], 3000))


def test_a_bad_record_header_stops_the_split_read_where_it_stops_the_local_one(
    tmp_path: Path,
) -> None:
    header, recs = records(SAMPLES[0])
    bad = bytearray(recs[len(recs) // 2])
    struct.pack_into("<I", bad, 8, 10_000_000)  # caplen far beyond any record
    path = tmp_path / "bad.pcap"
    path.write_bytes(
        header
        + b"".join(recs[: len(recs) // 2])
        + bytes(bad)
        + b"".join(recs[len(recs) // 2 + 1 :])
    )
    local = read_traffic([path])
    assert any("bad record header" in n for n in local.notes)
    same(local, split_read([path], 2000))


def test_missing_not_a_capture_and_duplicates_are_said_as_locally(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all, but named like one" * 10)
    night = tmp_path / "night"
    night.mkdir()
    (night / "notes.txt").write_text("not a capture")
    (night / "copy.pcap").write_bytes(SAMPLES[1].read_bytes())
    paths = [SAMPLES[0], tmp_path / "missing.pcap", junk, SAMPLES[0], night, SAMPLES[1]]
    local = read_traffic(paths)
    assert local.skipped and any("same content" in n for n in local.notes)
    same(local, split_read(paths, 4096))


def test_without_pyspark_the_spark_engine_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from auditor.cli.main import cli
    from auditor.errors import ExitCode

    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    res = CliRunner().invoke(cli, ["flows", str(SAMPLES[0]), "--engine", "spark"])
    assert res.exit_code == ExitCode.USAGE
    assert res.stderr == (
        "pcap-audit: --engine spark: pyspark is not installed: "
        "pip install 'pcap-audit[spark]' (and a Java runtime)\n"
    )


def test_a_bad_split_size_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from auditor.cli.main import cli

    res = CliRunner().invoke(cli, ["flows", str(SAMPLES[0]), "--split-size", "lots"])
    assert res.exit_code == 2
    assert "'lots' is not a size" in res.stderr


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
def test_a_pcapng_of_several_sections_split_is_the_local_traffic(tmp_path: Path) -> None:
    """Three sections (interfaces, statistics, comments of their own) in one file, cut
    inside each: every part reads its section's header and interface blocks first."""
    path = tmp_path / "multi.pcapng"
    path.write_bytes(
        b"".join(
            (CORPUS / name).read_bytes()
            for name in (
                "zeek/irc-dcc-send.pcapng",
                "zeek/ldap__missing_ldap_logs.pcapng",
                "tcpdump/of13_ericsson.pcapng",
            )
        )
    )
    splits = plan([(str(path), 0)], 8192)
    assert {s.section for s in splits} == {0, 1, 2}
    assert all(s.preamble for s in splits[1:])
    local = read_traffic([path])
    assert [i["section"] for i in local.captures[0].detail("interfaces")] == [0, 1, 2]
    same(local, split_read([path], 8192))


def test_a_failed_spark_job_is_one_line() -> None:
    """py4j and worker errors carry the Java and Python tracebacks in their text: the user
    gets the task's error line, and out of memory is RESOURCE with what to change."""
    from auditor.engines.spark import _job_failure
    from auditor.errors import ExitCode

    text = (
        "An error occurred while calling o123.collect.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 1.0"
        " failed 1 times, most recent failure: Lost task 0.0:\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "/x/worker.py", line 1, in main\n'
        "ValueError: collect_heads: payload offsets out of range\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException(X.scala:1)\n"
    )
    failed = _job_failure(RuntimeError(text))
    assert failed.exit_code == ExitCode.INTERNAL
    assert failed.one_line() == (
        "--engine spark: Spark job failed: ValueError: collect_heads: payload offsets out of "
        "range (a bug in pcap-audit or the cluster; its log has more)"
    )
    assert "\n" not in failed.one_line()
    oom = _job_failure(RuntimeError("Job aborted:\njava.lang.OutOfMemoryError: Java heap space"))
    assert oom.exit_code == ExitCode.RESOURCE
    assert "spark.executor.memory" in oom.one_line() and "\n" not in oom.one_line()
