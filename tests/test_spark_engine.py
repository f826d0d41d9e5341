"""--engine spark in Spark's local mode: the same findings, flow table and captures as the
local engine, on every sample, on real captures, on rotated files and on one file cut into
several tasks. One SparkSession for the module (its JVM takes 10-25 s to start here).
Skips, saying why, where pyspark or a Java runtime is absent."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.traffic import read_traffic

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CORPUS = ROOT.parent / "shared" / "corpus"

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("pyspark") is None,
        reason="pyspark not installed (pip install '.[spark]')",
    ),
    pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime for Spark"),
]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from auditor.engines.spark.job import session

    try:
        s = session("local[2]")
    except Exception as exc:  # a JVM that cannot start here: no cluster to test on
        pytest.skip(f"Spark could not start: {str(exc).strip()[:200]}")
    yield s
    s.stop()


def invoke(args: Sequence[object]) -> Result:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res


def spark_read(paths: list[Path], spark: Any, split_bytes: int) -> Any:
    from auditor.engines.spark import read_traffic_spark

    return read_traffic_spark([str(p) for p in paths], split_bytes=split_bytes, spark=spark)


def records(path: Path) -> tuple[bytes, list[bytes]]:
    data = path.read_bytes()
    out, pos = [], 24
    while pos < len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos : pos + 16 + caplen])
        pos += 16 + caplen
    return data[:24], out


@pytest.mark.parametrize("ruleset", ["applayering", "uforge", "tas-diego"])
def test_the_audit_of_every_sample_is_the_local_one(spark: Any, ruleset: str) -> None:
    """Both samples of a ruleset, with its inventory, each (above 600 KB) cut into tasks:
    the same JSON."""
    for name in ("findings", "clean"):
        pcap = SAMPLES / ruleset / f"{name}.pcap"
        args = [pcap, "-r", ruleset, "-i", SAMPLES / ruleset / f"{name}.inventory.yaml"]
        local = invoke([*args, "--format", "json"])
        on_spark = invoke([*args, "--format", "json", "--engine", "spark", "--split-size", "600K"])
        assert on_spark.exit_code == local.exit_code
        assert on_spark.stdout == local.stdout
        assert json.loads(on_spark.stdout)["summary"]["flows"] > 0


def test_flows_of_every_sample_together_is_the_local_table(spark: Any) -> None:
    paths = sorted(SAMPLES.glob("*/*.pcap"))
    local = invoke(["flows", *paths, "--format", "json"])
    on_spark = invoke(["flows", *paths, "--format", "json", "--engine", "spark"])
    assert on_spark.exit_code == local.exit_code == ExitCode.OK
    assert on_spark.stdout == local.stdout


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
def test_real_captures_one_cut_into_tasks(spark: Any) -> None:
    paths = [
        CORPUS / "zeek" / "http__bro.org.pcap",
        CORPUS / "zeek" / "ipv6-reassembly-state-leak.pcap",  # fragments across tasks
        CORPUS / "zeek" / "irc-dcc-send.pcapng",
        CORPUS / "tcpdump" / "802.1ad_QinQ.pcap",
    ]
    local = read_traffic(paths)
    got = spark_read(paths, spark, split_bytes=65536)
    assert got.flows.equals(local.flows)
    assert got.captures == local.captures and got.notes == local.notes


def test_a_rotated_capture_is_one_traffic_set(spark: Any, tmp_path: Path) -> None:
    src = SAMPLES / "applayering" / "findings.pcap"
    header, recs = records(src)
    night = tmp_path / "night"
    night.mkdir()
    size = len(recs) // 3 + 1
    for i, name in enumerate(["span.pcap", "span.pcap1", "span.pcap2"]):
        (night / name).write_bytes(header + b"".join(recs[i * size : (i + 1) * size]))
    args = ["-r", "applayering", "-i", SAMPLES / "applayering" / "findings.inventory.yaml"]
    local = invoke([night, *args, "--format", "json"])
    on_spark = invoke([night, *args, "--format", "json", "--engine", "spark"])
    assert on_spark.stdout == local.stdout
    whole = json.loads(invoke([src, *args, "--format", "json"]).stdout)
    doc = json.loads(on_spark.stdout)
    assert doc["summary"]["flows"] == whole["summary"]["flows"]  # flows across files are whole
    assert [f["id"] for f in doc["findings"]] == [f["id"] for f in whole["findings"]]


def test_dedup_and_standard_input_are_refused_with_spark() -> None:
    pcap = SAMPLES / "uforge" / "clean.pcap"
    res = invoke(["flows", pcap, "--engine", "spark", "--dedup"])
    assert res.exit_code == ExitCode.USAGE
    assert res.stderr.strip().splitlines() == [
        "pcap-audit: --dedup is not supported with --engine spark (it is sequential over files)"
    ]
    res = invoke(["flows", "-", "--engine", "spark"])
    assert res.exit_code == ExitCode.USAGE
    assert res.stderr.strip() == (
        "pcap-audit: -: standard input cannot be read by the Spark engine: write it to a file"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["flows", "--jobs", "2"],
            "--jobs is not supported with --engine spark (Spark runs one task per split: "
            "size them with --split-size)",
        ),
        (
            ["flows", "--port", "443"],
            "--since/--until/--host/--port/--filter are not supported with --engine spark "
            "(the tasks read every packet)",
        ),
        (
            ["audit", "-r", "uforge", "--since", "2025-11-22T00:00:00Z"],
            "--since/--until/--host/--port/--filter are not supported with --engine spark "
            "(the tasks read every packet)",
        ),
        (
            ["audit", "-r", "uforge", "--deep"],
            "--deep is not supported with --engine spark (run it with the local engine)",
        ),
    ],
)
def test_local_only_options_are_refused_with_spark(args: list[str], line: str) -> None:
    """Options the Spark engine cannot honour: one usage line, before anything is read
    (no JVM is started)."""
    res = invoke([*args, SAMPLES / "uforge" / "clean.pcap", "--engine", "spark"])
    assert res.exit_code == ExitCode.USAGE
    assert res.stdout == ""
    assert res.stderr.strip().splitlines() == [f"pcap-audit: {line}"]


def test_zeek_logs_are_refused_with_spark(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "conn.log").write_text("#separator \\x09\n")
    res = invoke(["flows", logs, "--engine", "spark"])
    assert res.exit_code == ExitCode.USAGE
    assert res.stderr.strip() == (
        f"pcap-audit: {logs}: Zeek logs cannot be read by the Spark engine: use --engine local"
    )


def test_spark_sql_reads_the_parquet_dir(spark: Any, tmp_path: Path) -> None:
    """The README's Spark SQL query over what --parquet-dir wrote (from the Spark engine)."""
    lake = tmp_path / "lake"
    tas = SAMPLES / "tas-diego"
    args = [tas / "findings.pcap", "-r", "tas-diego", "-i", tas / "findings.inventory.yaml"]
    res = invoke([*args, "--format", "json", "--engine", "spark", "--parquet-dir", lake])
    doc = json.loads(res.stdout)
    spark.read.parquet(str(lake / "flows")).createOrReplaceTempView("flows")
    spark.read.parquet(str(lake / "findings")).createOrReplaceTempView("findings")
    rows = spark.sql(
        "select date, capture, kind, count(*) as n from findings group by date, capture, kind"
    ).collect()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["kind"]] = counts.get(r["kind"], 0) + r["n"]
        assert (str(r["date"]), r["capture"]) in {("2025-11-22", "findings.pcap"), ("None", None)}
    assert counts == doc["summary"]["by_kind"]
    n = spark.sql("select count(*) as n from flows where date = '2025-11-22'").collect()[0]["n"]
    assert n == doc["summary"]["flows"]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
def test_captures_at_a_url_are_read_by_spark(spark: Any, tmp_path: Path) -> None:
    """A directory given as a URL (file: here; hdfs:// and s3a:// go the same way, through
    Spark's Hadoop FileSystem): the same flows; a missing URL is a capture problem."""
    night = tmp_path / "night"
    night.mkdir()
    (night / "a.pcap").write_bytes((SAMPLES / "tas-diego" / "findings.pcap").read_bytes())
    (night / "b.pcapng").write_bytes((CORPUS / "zeek" / "irc-dcc-send.pcapng").read_bytes())
    from auditor.engines.spark import read_traffic_spark

    local = read_traffic([night])
    got = read_traffic_spark([f"file://{night}", f"file://{tmp_path}/missing.pcap"], spark=spark)
    places = ["capture", "captures"]  # the files' names: here their URLs
    assert got.flows.drop_columns(places).equals(local.flows.drop_columns(places))
    url = {f"{night}/a.pcap": f"file:{night}/a.pcap", f"{night}/b.pcapng": f"file:{night}/b.pcapng"}
    assert got.flows.column("capture").to_pylist() == [
        url[p] for p in local.flows.column("capture").to_pylist()
    ]
    assert got.flows.column("captures").to_pylist() == [
        [url[p] for p in ps] for ps in local.flows.column("captures").to_pylist()
    ]
    assert [c.path for c in got.captures] == [
        f"file:{night}/a.pcap",
        f"file:{night}/b.pcapng",
        f"file://{tmp_path}/missing.pcap",
    ]
    for mine, theirs in zip(got.captures, local.captures, strict=False):
        assert {**mine.to_json(), "path": None} == {**theirs.to_json(), "path": None}
    assert got.notes == [
        f"file://{tmp_path}/missing.pcap: cannot be read: "
        f"File file:{tmp_path}/missing.pcap does not exist"
    ]
    assert not got.complete


def test_the_command_line_on_spark_writes_nothing_else_on_stderr() -> None:
    """A process of its own (its own JVM): the JVM's start-up notices are not passed on."""
    pcap = SAMPLES / "tas-diego" / "clean.pcap"
    cli_path = Path(sys.executable).with_name("pcap-audit")
    args = [str(cli_path), "flows", str(pcap), "--format", "json"]
    local = subprocess.run(args, capture_output=True, text=True, check=False)
    got = subprocess.run(
        [*args, "--engine", "spark", "--master", "local[1]"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert (got.returncode, got.stdout, got.stderr) == (ExitCode.OK, local.stdout, "")


def test_a_jvm_that_cannot_start_is_a_usage_error_in_one_line() -> None:
    cli_path = Path(sys.executable).with_name("pcap-audit")
    got = subprocess.run(
        [str(cli_path), "flows", str(SAMPLES / "uforge" / "clean.pcap"), "--engine", "spark"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "JAVA_HOME": "/nonexistent"},
    )
    assert got.returncode == ExitCode.USAGE
    assert got.stderr.splitlines()[-1].startswith(
        "pcap-audit: --engine spark: Spark could not start (master local[*]): "
    )
    assert "Traceback" not in got.stderr
