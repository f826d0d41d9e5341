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
    coded = [lake._coded(table.column(k)) for k in ("date", "capture")]
    parts = lake.Partitions(tuple(c for c, _ in coded), tuple(v for _, v in coded))
    lake._write(table.drop_columns(["date", "capture"]), parts, str(ours), "run")
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


def test_flow_partitions_are_the_datasets_columns() -> None:
    """The flows' partition codes (numpy: days floored, file names of the few paths) are
    the UTC day of the first packet (as Arrow's date cast floors it) and the file name of
    the first capture, before 1970 and across days and rotated files too."""
    import os

    import pyarrow as pa

    from auditor import lake

    ns = [-1, 0, 86_399_999_999_999, 86_400_000_000_000, -86_400_000_000_001, 17 * 10**17 + 7]
    caps = ["/a/span.pcap", "/a/span.pcap1", "", "/b/span.pcap", "x.pcap", "/a/span.pcap"]
    first = pa.array(ns, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    flows = pa.table({"first_seen": first, "capture": pa.array(caps)})
    days = pa.array(ns, pa.int64()).cast(pa.timestamp("ns")).cast(pa.date32()).cast(pa.string())
    expected = {
        "date": days.to_pylist(),
        "capture": [os.path.basename(c) if c else None for c in caps],
    }
    assert expected["date"][:2] == ["1969-12-31", "1970-01-01"]
    parts = lake._flow_partitions(flows)
    for k, codes, values in zip(("date", "capture"), parts.codes, parts.values, strict=True):
        assert [values[c] for c in codes] == expected[k]


def test_nanosecond_captures_go_to_the_lake_floored_to_microseconds(tmp_path: Path) -> None:
    """A capture with nanosecond timestamps (pcap-ns here; pcapng's if_tsresol too) made
    --parquet-dir an internal error (a cast that refuses to lose the nanoseconds), and the
    audit's whole result with it."""
    import dpkt
    import pyarrow.dataset as ds

    from auditor import synth

    c = synth.Capture()
    c.tcp_rejected("10.9.9.9", "10.10.1.1", 20000, 9999)
    path = tmp_path / "ns.pcap"
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, nano=True)
        for i, (_ts, raw) in enumerate(c.frames):
            w.writepkt(raw, ts=1_700_000_000.123456789 + i)
    res = invoke(["flows", path, "--parquet-dir", tmp_path / "lake", "-q", "--format", "json"])
    assert res.exit_code == 0, res.output
    (row,) = ds.dataset(tmp_path / "lake" / "flows", format="parquet").to_table().to_pylist()
    assert row["first_seen"].isoformat() == "2023-11-14T22:13:20.123456+00:00"
    assert json.loads(res.stdout)["flows"][0]["first_seen"] == "2023-11-14T22:13:20.123456Z"


def test_captures_of_one_name_in_two_directories_share_a_partition(tmp_path: Path) -> None:
    """Two rotated sets in two directories, both with a span.pcap: one partition (the file
    name), every flow of both in it; none lost to a file written twice."""
    import shutil

    import pyarrow.dataset as ds

    from auditor.traffic import read_traffic

    sample = Path(__file__).resolve().parents[1] / "samples" / "applayering" / "findings.pcap"
    other = Path(__file__).resolve().parents[1] / "samples" / "uforge" / "findings.pcap"
    for d, src in (("a", sample), ("b", other)):
        (tmp_path / d).mkdir()
        shutil.copy(src, tmp_path / d / "span.pcap")
    paths = [tmp_path / "a" / "span.pcap", tmp_path / "b" / "span.pcap"]
    res = invoke(["flows", *paths, "--parquet-dir", tmp_path / "lake", "-q", "--format", "json"])
    assert res.exit_code == 0, res.output
    files = list((tmp_path / "lake" / "flows").rglob("*.parquet"))
    assert {f.parent.name for f in files} == {"capture=span.pcap"}
    table = ds.dataset(tmp_path / "lake" / "flows", format="parquet").to_table()
    flows = read_traffic([str(p) for p in paths]).flows
    assert flows is not None and table.num_rows == flows.num_rows


def test_pieces_cover_the_rows_in_bounded_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each piece is at most WRITE_ROWS rows out of a window of at most 4 x WRITE_ROWS,
    contiguous rows a plain slice; together the rows given, in order."""
    import random

    import numpy as np

    from auditor import lake

    monkeypatch.setattr(lake, "WRITE_ROWS", 10)
    rng = random.Random(2)
    for _ in range(200):
        rows = np.array(sorted(rng.sample(range(500), rng.randrange(1, 120))), np.int64)
        if rng.random() < 0.3:
            rows = np.arange(rng.randrange(400), 500, dtype=np.int64)  # contiguous
        got: list[int] = []
        for start, length, picked in lake._pieces(rows):
            assert length <= 40
            window = list(range(start, start + length))
            taken = window if picked is None else [window[i] for i in picked.to_pylist()]
            assert 1 <= len(taken) <= 10
            got += taken
        assert got == rows.tolist()
