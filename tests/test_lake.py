"""--parquet-dir: flows and findings as Hive-partitioned Parquet, read back as DuckDB
(and, in tests/test_spark_engine.py, Spark) reads them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from auditor.cli.main import cli
from auditor.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
TAS = SAMPLES / "tas-diego"


def invoke(args: Sequence[object]) -> Result:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def query(sql: str) -> list[tuple[object, ...]]:
    return duckdb.connect().execute(sql).fetchall()


def test_the_audit_writes_flows_and_findings_partitioned_by_date_and_capture(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    args = [TAS / "findings.pcap", "-r", "tas-diego", "-i", TAS / "findings.inventory.yaml"]
    res = invoke([*args, "--format", "json", "--parquet-dir", lake])
    assert res.exit_code == ExitCode.FINDINGS
    doc = json.loads(res.stdout)
    flows = json.loads(invoke(["flows", TAS / "findings.pcap", "--format", "json"]).stdout)
    got = query(
        f"select flow_id, date::varchar, capture, packets_fwd, first_seen "
        f"from read_parquet('{lake}/flows/**/*.parquet', hive_partitioning=true) "
        "order by first_seen, flow_id"
    )
    assert [g[0] for g in got] == [f["flow_id"] for f in flows["flows"]]
    assert [g[3] for g in got] == [f["packets_fwd"] for f in flows["flows"]]
    assert {(g[1], g[2]) for g in got} == {("2025-11-22", "findings.pcap")}
    assert sorted(p.name for p in (lake / "flows").iterdir()) == ["date=2025-11-22"]
    rows = query(
        f"select id, kind, severity, date::varchar, capture, flow_ids, evidence "
        f"from read_parquet('{lake}/findings/**/*.parquet', hive_partitioning=true)"
    )
    assert sorted(r[0] for r in rows) == sorted(f["id"] for f in doc["findings"])
    by_id = {f["id"]: f for f in doc["findings"]}
    for fid, kind, severity, date, capture, flow_ids, evidence in rows:
        f = by_id[fid]
        assert (kind, severity, flow_ids) == (f["kind"], f["severity"], f["flow_ids"])
        assert json.loads(evidence) == f["evidence"]
        if f["first_seen"]:
            assert (date, capture) == (f["first_seen"][:10], "findings.pcap")
        else:  # a missing flow: no packet, no day, no capture (Hive's default partition)
            assert (date, capture) == (None, None)


def test_each_run_adds_its_own_files(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for _ in range(2):
        res = invoke(["flows", TAS / "clean.pcap", "--parquet-dir", lake, "-q"])
        assert res.exit_code == ExitCode.OK
    files = list((lake / "flows").rglob("*.parquet"))
    assert len(files) == 2
    n = query(f"select count(*) from read_parquet('{lake}/flows/**/*.parquet')")[0][0]
    one = json.loads(invoke(["flows", TAS / "clean.pcap", "--format", "json"]).stdout)
    assert n == 2 * len(one["flows"])
    assert not (lake / "findings").exists()  # flows writes no findings


def test_a_parquet_dir_that_cannot_be_made_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = invoke(["flows", TAS / "clean.pcap", "--parquet-dir", blocker / "lake"])
    assert res.exit_code == ExitCode.USAGE
    assert "Invalid value for '--parquet-dir'" in res.stderr
    assert "cannot be created" in res.stderr


def test_partitions_are_written_as_the_dataset_writer_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lake._write (partition by partition, a slice at a time) makes the directories and
    the rows pyarrow's write_dataset made: several days, capture names that need escaping,
    a null partition value, slices smaller than a partition."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from auditor import lake

    monkeypatch.setattr(lake, "WRITE_ROWS", 7)
    n = 500
    caps = ["span.pcap", "a b=c%/d.pcap", "é.pcap", None]
    table = pa.table(
        {
            "x": pa.array(range(n), pa.int64()),
            "s": pa.array([f"v{i % 13}" for i in range(n)]),
            "date": pa.array([f"2025-11-{20 + i % 3}" for i in range(n)]),
            "capture": pa.array([caps[(i // 5) % 4] for i in range(n)]),
        }
    )
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    lake._write(table, str(ours), "run")
    part = ds.partitioning(
        pa.schema([("date", pa.string()), ("capture", pa.string())]), flavor="hive"
    )
    ds.write_dataset(table, str(theirs), format="parquet", partitioning=part,
                     basename_template="run-{i}.parquet")  # fmt: skip

    def dirs(root: Path) -> set[str]:
        return {str(p.parent.relative_to(root)) for p in root.rglob("*.parquet")}

    assert dirs(ours) == dirs(theirs) and len(dirs(ours)) == 12
    assert all(p.name == "run-0.parquet" for p in ours.rglob("*.parquet"))

    def rows(root: Path) -> pa.Table:
        t = ds.dataset(str(root), format="parquet", partitioning=part).to_table()
        return t.select(["x", "s", "date", "capture"]).sort_by("x")

    assert rows(ours).equals(rows(theirs))
    assert rows(ours).equals(table)
