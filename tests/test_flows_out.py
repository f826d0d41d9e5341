"""``pcap-audit flows`` writes its table a slice at a time (JSON, CSV, the terminal table):
the text must be what rendering the whole table at once gives, whatever the slice size."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from auditor import flows_out
from auditor.flows_out import flow_records, flows_json, write_flows
from auditor.report import flows_table
from auditor.report.grid import Column, grid, grid_lines
from auditor.report.json_ import render as render_json
from auditor.traffic import Traffic, read_traffic

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    # two captures: the table gets its capture column
    return read_traffic(
        [str(SAMPLES / "applayering" / "findings.pcap"), str(SAMPLES / "uforge" / "findings.pcap")]
    )


def written(traffic: Traffic, fmt: str, width: int = 100) -> str:
    out = io.BytesIO()
    write_flows(traffic, fmt, out, width=width)
    return out.getvalue().decode("utf-8")


def whole_csv(traffic: Traffic) -> str:
    """The CSV as it was written before it was streamed: every record, one DictWriter."""
    assert traffic.flows is not None
    rows = flow_records(traffic.flows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: flows_out._csv_cell(v) for k, v in r.items()})
    return buf.getvalue()


@pytest.mark.parametrize("batch", [1, 7, 8192])
def test_streamed_flows_are_the_whole_render(
    traffic: Traffic, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert traffic.flows is not None and traffic.flows.num_rows > 20
    records = flow_records(traffic.flows)
    monkeypatch.setattr(flows_out, "BATCH_ROWS", batch)
    assert written(traffic, "json") == render_json(flows_json(traffic))
    assert written(traffic, "csv") == whole_csv(traffic)
    for width in (200, 100, 60, 30):
        assert written(traffic, "table", width) == flows_table.render(records, width)


def test_slices_are_bounded(traffic: Traffic, monkeypatch: pytest.MonkeyPatch) -> None:
    """No format turns more than BATCH_ROWS rows into Python objects at once."""
    assert traffic.flows is not None
    monkeypatch.setattr(flows_out, "BATCH_ROWS", 5)
    sizes: list[int] = []
    real = flows_out.record_batches

    def spy(table, columns=None):  # type: ignore[no-untyped-def]
        for batch in real(table, columns):
            sizes.append(len(batch))
            yield batch

    monkeypatch.setattr(flows_out, "record_batches", spy)
    for fmt in ("json", "csv", "table"):
        sizes.clear()
        written(traffic, fmt)
        assert sizes and max(sizes) == 5
        assert sum(sizes) >= traffic.flows.num_rows  # every row (the table: once a pass)


def test_empty_flow_table(tmp_path: Path) -> None:
    from auditor import synth

    path = tmp_path / "empty.pcap"
    synth.Capture().write(path)
    t = read_traffic([str(path)])
    assert written(t, "json") == render_json(flows_json(t))
    assert written(t, "csv") == ""
    assert written(t, "table").splitlines()[0].split()[:3] == ["first", "seen", "proto"]


COLUMNS = [
    Column("id", overflow="elide", min_width=4),
    Column("text", min_width=6),
    Column("n", overflow="keep", align="right"),
    Column("extra", min_width=5, drop=1),
]
ROWS = [
    ("a" * 30, "some words that wrap over several lines here", 1, "x"),
    ("東京都千代田区", "wide 語 characters 語語語 in a cell", 22, None),
    ("short", "one", 333, "a longer optional cell"),
    ("=cmd|' /C calc'!A0", "\x1b]0;pwned\x07 escaped", 4, "\x1b[2J"),
]


@pytest.mark.parametrize("width", [200, 60, 40, 30, 20])
def test_grid_lines_is_grid(width: int) -> None:
    """The streamed layout (rows read again for each pass) is the one of the whole list:
    widths, wrapping, dropped columns and the header: value layout when nothing fits."""
    calls = 0

    def rows():  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return iter(ROWS)

    assert list(grid_lines(COLUMNS, rows, width)) == grid(COLUMNS, ROWS, width)
    assert calls <= 3


def test_grid_lines_checks_row_length() -> None:
    with pytest.raises(ValueError, match="a row has 1 cells for 4 columns"):
        list(grid_lines(COLUMNS, lambda: [("x",)], 80))
