"""``pcap-audit flows`` writes its table a slice at a time (JSON, CSV, the terminal table):
the text must be what rendering the whole table at once gives, whatever the slice size."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from auditor import flows_out
from auditor.escape import csv_cell
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
        w.writerow({k: csv_cell(v) for k, v in r.items()})
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
    """No format turns more than BATCH_ROWS rows into Python values at once."""
    assert traffic.flows is not None
    monkeypatch.setattr(flows_out, "BATCH_ROWS", 5)
    sizes: list[int] = []
    real = flows_out.slices

    def spy(table):  # type: ignore[no-untyped-def]
        for part in real(table):
            sizes.append(part.num_rows)
            yield part

    monkeypatch.setattr(flows_out, "slices", spy)
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


def test_unchanged_cells_never_skips_a_cell_that_changes() -> None:
    """The CSV's column fast path: a column it lets through as it is must be what
    printable() makes of each cell (random texts over the characters that matter)."""
    import random

    from auditor.escape import printable, unchanged_cells

    rng = random.Random(5)
    alphabet = "ab =+-@\t\r\n\x1b\x00\x7f\x85\u200b\u202e\u2028\ufeff'\"é語"
    for _ in range(5000):
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(4))) for _ in range(3)]
        if unchanged_cells(texts):
            assert all(printable(t, keep_newlines=True, spreadsheet=True) == t for t in texts), (
                texts
            )
    assert unchanged_cells(
        ["10.0.0.1", "tcp", "F5591040aff4c7151", "1:lYdDzuOeoaenYk0L81qrvevHvXE="]
    )


def test_iso_column_is_iso() -> None:
    """The writers' timestamps formatted by numpy are iso()'s, to the character: a zero
    fraction left out, floors for times before 1970, nulls kept."""
    import random

    import pyarrow as pa

    from auditor.traffic import iso, iso_column

    rng = random.Random(3)
    values = [rng.randrange(-(10**18), 9 * 10**18) for _ in range(5000)]
    values += [v - v % 10**9 for v in values[:300]] + [0, -1, 1, 999, 1000, -1000, -(10**9)]
    assert iso_column(pa.array(values, pa.int64())) == [iso(v) for v in values]
    stamps = pa.array(values[:50], pa.timestamp("ns"))
    assert iso_column(pa.chunked_array([stamps])) == [iso(v) for v in values[:50]]
    assert iso_column(pa.array([7, None], pa.int64())) == [iso(7), None]
