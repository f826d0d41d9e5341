"""--jobs N (issue 9, item 8): decoding in parallel gives the output of one job, byte for byte.

Parity on the samples, on rotated sets (several files, one traffic set), on corpus traces
and on a file split into several parts (parts forced small with ``split_bytes``), on files
that stop early (a bad record in a middle part, a cut last record), with --dedup, and
through the CLI.
"""

from __future__ import annotations

import itertools
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mirror_feeds import all_feeds, pcap

from auditor.capture.split import split_pcap
from auditor.cli.main import cli
from auditor.flows_out import write_flows
from auditor.sources import expand
from auditor.traffic import Traffic, read_found

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "zeek"
SAMPLES = sorted(REPO.glob("samples/*/*.pcap"))
SMALL = 4096  #: split_bytes that splits even the samples into parts


def flows_json(traffic: Traffic) -> bytes:
    import io

    out = io.BytesIO()
    write_flows(traffic, "json", out)
    return out.getvalue()


def read(paths: list[Path], jobs: int, split_bytes: int = SMALL, **kw: Any) -> Traffic:
    return read_found(expand(paths), jobs=jobs, split_bytes=split_bytes, **kw)


def assert_same(paths: list[Path], jobs: int = 3, **kw: Any) -> Traffic:
    one = read(paths, 1, **kw)
    many = read(paths, jobs, **kw)
    assert flows_json(many) == flows_json(one)
    assert many.notes == one.notes
    return many


@pytest.mark.parametrize("path", SAMPLES, ids=[f"{p.parent.name}/{p.name}" for p in SAMPLES])
def test_samples_split_into_parts(path: Path) -> None:
    spans = split_pcap(str(path), 4, SMALL)
    assert len(spans) == 4
    assert spans[0][0] == 24 and spans[-1][1] == path.stat().st_size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert_same([path], jobs=4)


def test_rotated_set_in_parallel(tmp_path: Path) -> None:
    """Several files (tcpdump -C names), each split, one traffic set."""
    for i, sample in enumerate(SAMPLES[:3]):
        shutil.copy(sample, tmp_path / f"span.pcap{i or ''}")
    traffic = assert_same([tmp_path], jobs=2)
    assert len(traffic.captures) == 3


def test_mirror_feeds_and_dedup(tmp_path: Path) -> None:
    feeds = all_feeds(tmp_path)
    assert_same(feeds, jobs=2, split_bytes=512)
    assert_same(SAMPLES[:2] + SAMPLES[:2], jobs=2, dedup=0.01)


def test_bad_record_in_a_middle_part_stops_like_one_reader(tmp_path: Path) -> None:
    data = bytearray(SAMPLES[0].read_bytes())
    spans = split_pcap(str(SAMPLES[0]), 4, SMALL)
    bad = spans[1][0] + 100  # inside part 1: find the record header after it
    at = 24
    while at < bad:
        at += 16 + struct.unpack_from("<I", data, at + 8)[0]
    struct.pack_into("<I", data, at + 8, 10_000_000)  # captured length past any limit
    path = tmp_path / "bad.pcap"
    path.write_bytes(bytes(data))
    traffic = assert_same([path], jobs=4)
    assert any("bad record header" in n for n in traffic.notes)
    assert traffic.captures[0].truncated


def test_cut_last_record(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(SAMPLES[0].read_bytes()[:-7])
    traffic = assert_same([path], jobs=3)
    assert traffic.captures[0].truncated and traffic.captures[0].detail("ends_early")


def test_unreadable_and_duplicate_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.pcap").write_bytes(SAMPLES[0].read_bytes())
    (tmp_path / "b.pcap").write_bytes(b"not a capture at all, but named like one")
    (tmp_path / "c.pcap").write_bytes(SAMPLES[0].read_bytes())
    (tmp_path / "d.pcap").write_bytes(pcap([]))
    traffic = assert_same([tmp_path], jobs=2)
    assert [c.path.rsplit("/", 1)[1] for c in traffic.captures] == [
        "a.pcap",
        "b.pcap",
        "c.pcap",
        "d.pcap",
    ]


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus/zeek not present")
def test_corpus_traces_split_into_parts() -> None:
    traces = [p for p in sorted(CORPUS.glob("*.pcap")) if p.stat().st_size > 64 * 1024][:12]
    for trace in traces:
        assert_same([trace], jobs=3, split_bytes=16 * 1024)
    assert_same(traces, jobs=2)  # one set of many files, each split


def test_cli_jobs_output_identical(tmp_path: Path) -> None:
    args = [str(SAMPLES[0]), "-r", "applayering", "--format", "json", "--fail-on", "never"]
    one = CliRunner().invoke(cli, [*args, "--jobs", "1"])
    many = CliRunner().invoke(cli, [*args, "--jobs", "4"])
    default = CliRunner().invoke(cli, args)
    assert one.exit_code == many.exit_code == default.exit_code == 0
    assert one.stdout == many.stdout == default.stdout
    assert json.loads(one.stdout)["summary"]["packets"] > 0


def test_cli_jobs_must_be_positive() -> None:
    r = CliRunner().invoke(cli, ["flows", str(SAMPLES[0]), "--jobs", "0"])
    assert r.exit_code == 2
    assert "--jobs" in r.stderr
