"""``pcap-audit query``: SQL over the documented views, in every output format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from auditor.cli.main import cli
from auditor.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "applayering" / "findings.pcap"
INVENTORY = ROOT / "samples" / "applayering" / "findings.inventory.yaml"
EXPECTED = json.loads((ROOT / "samples" / "applayering" / "findings.expected.json").read_text())
FLOWS = json.loads((ROOT / "samples" / "applayering" / "findings.flows.json").read_text())


def query(sql: str, *args: str) -> dict:
    res = CliRunner().invoke(cli, ["query", sql, str(SAMPLE), "--format", "json", *args])
    assert res.exit_code == ExitCode.OK, res.output
    return json.loads(res.stdout)


def test_flows_view_is_the_flow_table_with_its_capture() -> None:
    doc = query("SELECT flow_id, community_id, packets_fwd, capture FROM flows ORDER BY flow_id")
    assert doc["columns"] == ["flow_id", "community_id", "packets_fwd", "capture"]
    want = sorted((f["flow_id"], f["community_id"], f["packets_fwd"]) for f in FLOWS["flows"])
    assert [(r["flow_id"], r["community_id"], r["packets_fwd"]) for r in doc["rows"]] == want
    assert {r["capture"] for r in doc["rows"]} == {str(SAMPLE)}


def test_captures_view() -> None:
    (row,) = query("SELECT path, format, packets, first_seen, truncated FROM captures")["rows"]
    assert row == {"path": str(SAMPLE), "format": "pcap", "packets": 2093,
                   "first_seen": "2025-11-22T00:00:00.000500Z", "truncated": False}  # fmt: skip


def test_findings_and_roles_views_with_a_ruleset() -> None:
    args = ("-r", "applayering", "-i", str(INVENTORY))
    doc = query("SELECT id, kind, severity, flow_ids, source_document FROM findings ORDER BY id",
                *args)  # fmt: skip
    want = sorted((f["id"], f["kind"], f["flow_ids"]) for f in EXPECTED["findings"])
    assert [(r["id"], r["kind"], r["flow_ids"]) for r in doc["rows"]] == want
    joined = query(
        "SELECT f.kind, r.roles FROM findings f JOIN roles r ON r.ip = f.dst_ip "
        "WHERE f.kind = 'weak_tls'", *args,
    )  # fmt: skip
    assert joined["rows"] == [{"kind": "weak_tls", "roles": ["active_directory"]}]
    ev = query("SELECT evidence->>'$.bytes_cleartext' AS b FROM findings "
               "WHERE id = 'PLA-2f95d12e4ab0'", *args)  # fmt: skip
    assert ev["rows"] == [{"b": "400167"}]


def test_table_csv_and_parquet(tmp_path: Path) -> None:
    sql = "SELECT dst_port, count(*) AS n FROM flows GROUP BY 1 ORDER BY n DESC, 1 LIMIT 2"
    res = CliRunner().invoke(cli, ["query", sql, str(SAMPLE)])
    assert res.stdout.splitlines() == [
        "dst_port  n", "--------  -", "     443  8", "     636  2", "(2 rows)",
    ]  # fmt: skip
    res = CliRunner().invoke(cli, ["query", sql, str(SAMPLE), "--format", "csv"])
    assert list(csv.reader(io.StringIO(res.stdout))) == [["dst_port", "n"], ["443", "8"],
                                                         ["636", "2"]]  # fmt: skip
    out = tmp_path / "q.parquet"
    res = CliRunner().invoke(cli, ["query", sql, str(SAMPLE), "--format", "parquet", "-o",
                                   str(out)])  # fmt: skip
    assert res.exit_code == ExitCode.OK
    assert pq.read_table(out).to_pylist() == [{"dst_port": 443, "n": 8}, {"dst_port": 636, "n": 2}]


def test_filters_apply_before_the_views() -> None:
    doc = query("SELECT count(*) AS n FROM flows", "--port", "3009")
    assert doc["rows"] == [{"n": 1}]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC 1", "pcap-audit: query: Parser Error: syntax error at or near"),
        ("SELECT nope FROM flows", 'pcap-audit: query: Binder Error: Referenced column "nope"'),
        ("SELECT * FROM findings", "(findings need --ruleset)"),
    ],
)
def test_bad_sql_is_one_line_and_usage(sql: str, message: str) -> None:
    res = CliRunner().invoke(cli, ["query", sql, str(SAMPLE)])
    assert res.exit_code == ExitCode.USAGE
    assert res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert message in line


def test_unreadable_capture_is_named_and_the_rest_queried(tmp_path: Path) -> None:
    gone = tmp_path / "gone.pcap"
    res = CliRunner().invoke(cli, ["query", "SELECT count(*) AS n FROM captures WHERE error IS "
                                   "NULL", str(SAMPLE), str(gone)])  # fmt: skip
    assert res.exit_code == ExitCode.CAPTURE
    assert f"pcap-audit: {gone}: no such file" in res.stderr
    assert res.stdout.splitlines()[2].strip() == "1"


def test_output_is_checked_first_and_notes_are_said(tmp_path: Path) -> None:
    """-o goes through the shared output file (an input is never overwritten); a capture
    not read whole is said on stderr and sets the capture bit, the rest still queried."""
    res = CliRunner().invoke(cli, ["query", "SELECT 1", str(SAMPLE), "-o", str(SAMPLE)])
    assert res.exit_code == ExitCode.USAGE
    (line,) = res.stderr.splitlines()
    assert line.endswith("refusing to overwrite it")
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(SAMPLE.read_bytes()[:-10])
    import os

    os.utime(cut, (1e9, 1e9))
    out = tmp_path / "n.json"
    res = CliRunner().invoke(cli, ["query", "SELECT count(*) AS n FROM flows", str(cut), "--format",
                                   "json", "-o", str(out)])  # fmt: skip
    assert res.exit_code == ExitCode.CAPTURE
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"pcap-audit: {cut}: ")
    assert json.loads(out.read_text())["rows"] == [{"n": 26}]


def test_wire_text_is_escaped_in_the_table_and_csv() -> None:
    import pyarrow as pa

    from auditor.escape import csv_cell as _csv_cell
    from auditor.report.query_table import render

    assert "evil\\x1b[2Jhost" in render(pa.table({"host": ["evil\x1b[2Jhost"]}), 100)
    assert _csv_cell("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"


@pytest.mark.parametrize("columns", [40, 80, 200])
def test_table_fits_the_width(columns: int) -> None:
    """Long cells are elided to the terminal's width (COLUMNS), numbers never cut."""
    sql = "SELECT dst_port, repeat('x', 300) AS long, 12345678 AS big FROM flows LIMIT 3"
    res = CliRunner().invoke(cli, ["query", sql, str(SAMPLE)], env={"COLUMNS": str(columns)})
    assert res.exit_code == ExitCode.OK, res.output
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert lines[0].split() == ["dst_port", "long", "big"]
    assert all(line.rstrip().endswith("12345678") for line in lines[2:-1])
    assert ("…" in lines[2]) == (columns < 300)


def _nanosecond_capture(path: Path) -> Path:
    import dpkt

    from auditor import synth

    c = synth.Capture()
    c.tcp_rejected("10.9.9.9", "10.10.1.1", 20000, 9999)
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, nano=True)
        for i, (_ts, raw) in enumerate(c.frames):
            w.writepkt(raw, ts=1_700_000_000.123456789 + i)
    return path


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_nanosecond_timestamps_are_floored_to_microseconds(tmp_path: Path, fmt: str) -> None:
    """Python's datetime has no nanoseconds: a query of a pcap-ns (or pcapng) capture's
    timestamps was an internal error in every text format; columns and timestamps nested in
    lists and structs now come out in µs, floored as every output writes them."""
    path = _nanosecond_capture(tmp_path / "ns.pcap")
    sql = "SELECT first_seen, [first_seen] AS l, {'t': first_seen} AS s FROM flows"
    res = CliRunner().invoke(cli, ["query", sql, str(path), "--format", fmt])
    assert res.exit_code == 0, res.output
    assert "2023-11-14T22:13:20.123456Z" in res.stdout or "2023-11-14T22:13:20.1234" in res.stdout
    if fmt == "json":
        (row,) = json.loads(res.stdout)["rows"]
        assert row == {
            "first_seen": "2023-11-14T22:13:20.123456Z",
            "l": ["2023-11-14T22:13:20.123456Z"],
            "s": {"t": "2023-11-14T22:13:20.123456Z"},
        }
    out = tmp_path / "q.parquet"
    assert (
        CliRunner()
        .invoke(cli, ["query", sql, str(path), "--format", "parquet", "-o", str(out)])
        .exit_code
        == 0
    )
    assert pq.read_table(out).column("first_seen").type.unit == "ns"  # Parquet keeps them
