"""Terminal tables fit the width: the shared writer (auditor.report.grid) and the commands
that print tables with it (flows, roles, rulesets show; the audit's report takes the same
width). Widths come from COLUMNS, as a user or a terminal sets it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor import synth
from auditor.cli.main import cli
from auditor.cli.width import DEFAULT_WIDTH, MIN_WIDTH, table_width
from auditor.errors import ExitCode
from auditor.report.grid import ELLIPSIS, Column, display_width, elide, grid, wrap

ROOT = Path(__file__).resolve().parents[1]
APPLAYERING = ROOT / "samples" / "applayering"
FINDINGS = APPLAYERING / "findings.pcap"
CLEAN = APPLAYERING / "clean.pcap"
INVENTORY = APPLAYERING / "findings.inventory.yaml"

HOST = "=cmd|' /C calc'!A0\x1b]0;pwned\x07\x1b[2J"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")
WIDTHS = (80, 100, 200)


def _fits(lines: list[str], width: int) -> None:
    for line in lines:
        assert display_width(line) <= width, f"{display_width(line)} > {width}: {line!r}"


# --- the writer ---------------------------------------------------------------------


def test_a_table_that_fits_is_left_alone() -> None:
    cols = [Column("name"), Column("n", overflow="keep", align="right")]
    lines = grid(cols, [("alpha", 1), ("be", 22)], 80)
    assert lines == ["name   n", "-----  --", "alpha   1", "be     22"]


def test_the_widest_column_is_narrowed_first_and_wraps() -> None:
    text = "one two three four five six seven eight nine ten"
    cols = [Column("id"), Column("words", min_width=5), Column("short")]
    lines = grid(cols, [("a-1", text, "kept whole")], 30)
    _fits(lines, 30)
    assert len(lines) > 3  # the row took several lines
    assert "kept whole" in lines[2]  # the narrow columns were not touched
    assert " ".join(x[5:].split("  ")[0].strip() for x in lines[2:]).split() == text.split()


def test_an_elided_column_gives_way_before_a_wrapped_one() -> None:
    cid = "1:2sWyL1xcRz4/KwC1wFvmwXRkAvw="
    cols = [Column("cid", overflow="elide", min_width=10), Column("note", min_width=4)]
    lines = grid(cols, [(cid, "short note here")], 32)
    _fits(lines, 32)
    assert len(lines) == 3  # nothing wrapped: the identifier was elided instead
    shown = lines[2].split()[0]
    assert shown.endswith(ELLIPSIS) and cid.startswith(shown[:-1]) and cid not in lines[2]


def test_a_column_that_cannot_shrink_further() -> None:
    cols = [
        Column("key", overflow="keep"),
        Column("text", min_width=12),
    ]
    key = "a-rule-id-that-one-greps-for"
    lines = grid(cols, [(key, "some words that must wrap somewhere")], 50)
    _fits(lines, 50)
    assert lines[2].startswith(key)  # never cut
    width_of_text = max(len(x[len(key) + 2 :]) for x in lines[2:])
    assert 12 <= width_of_text <= 50 - len(key) - 2
    # the minimum holds: too narrow for both at their minimum -> one space, then records
    lines = grid(cols, [(key, "some more words")], 41)
    assert lines[1] == "-" * len(key) + " " + "-" * 9  # one space; "some more" / "words"
    _fits(lines, 41)
    lines = grid(cols, [(key, "some more words")], 36)
    assert lines == [f"key:  {key}", "text: some more words"]


def test_minimum_width_is_kept_while_others_shrink() -> None:
    cols = [Column("a", min_width=20), Column("b", min_width=4)]
    long = "x" * 80
    lines = grid(cols, [(long, long)], 40)
    _fits(lines, 40)
    assert [len(x) for x in lines[1].split()] == [20, 18]


def test_optional_columns_appear_when_there_is_room() -> None:
    cols = [Column("main"), Column("extra", drop=1), Column("more", drop=2)]
    row = [("m" * 30, "e" * 20, "o" * 20)]
    assert grid(cols, row, 200)[0].split() == ["main", "extra", "more"]
    # optional columns at their minimum (8) beside the others whole; the higher rank goes first
    assert grid(cols, row, 50)[0].split() == ["main", "extra", "more"]
    assert grid(cols, row, 45)[0].split() == ["main", "extra"]
    assert grid(cols, row, 39)[0].split() == ["main"]


def test_records_when_nothing_fits() -> None:
    cols = [Column(f"column{i}", overflow="keep") for i in range(4)]
    lines = grid(cols, [("v" * 12,) * 4, ("w",) * 4], 30)
    _fits(lines, 30)
    assert lines[0] == "column0: " + "v" * 12 and "" in lines  # a blank line between rows


def test_empty_tables() -> None:
    assert grid([Column("a"), Column("bb")], [], 80) == ["a  bb", "-  --"]
    assert grid([Column("a")], [], 80, rule=False) == ["a"]
    assert grid([], [], 80) == []


def test_cells_are_escaped_and_counted_as_shown() -> None:
    cols = [Column("host\x1b[2J"), Column("n", overflow="keep")]
    lines = grid(cols, [(HOST, None)], 40)
    text = "\n".join(lines)
    for ch in RAW:
        assert ch not in text
    assert "\\x1b]0;pwned" in text.replace("\n", "") or "\\x1b" in text
    _fits(lines, 40)


def test_wide_characters_count_two_columns() -> None:
    assert display_width("日本語") == 6 and display_width("e\u0301") == 1
    lines = grid([Column("名前", min_width=4), Column("x")], [("東京都千代田区" * 3, "y")], 24)
    _fits(lines, 24)
    assert wrap("日本語テキスト", 5) == ["日本", "語テ", "キス", "ト"]
    assert elide("日本語テキスト", 7) == "日本語" + ELLIPSIS


def test_long_words_break_after_separators() -> None:
    assert wrap("agent+pvs_agent", 10) == ["agent+", "pvs_agent"]
    assert wrap("night-capture.pcap:1-15", 16) == ["night-capture.", "pcap:1-15"]
    assert wrap("", 5) == [""]


def test_a_row_of_the_wrong_length_is_a_bug() -> None:
    with pytest.raises(ValueError, match="2 cells for 1 columns"):
        grid([Column("a")], [("x", "y")], 80)


# --- the width ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "want"),
    [("120", 120), ("80", 80), ("10", MIN_WIDTH), ("", DEFAULT_WIDTH), ("wide", DEFAULT_WIDTH)],
)
def test_width_from_columns(monkeypatch: pytest.MonkeyPatch, columns: str, want: int) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setattr("sys.stdout", io.StringIO())  # not a terminal
    assert table_width() == want
    assert table_width(to_stdout=False) == want


def test_width_of_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout", Tty())
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback: os.terminal_size((132, 40)))
    assert table_width() == 132
    assert table_width(to_stdout=False) == DEFAULT_WIDTH  # -o FILE: not the terminal


# --- the commands ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cap = synth.Capture()
    request = synth.http_request("GET", "/disks/x.vhd", HOST)
    cap.tcp_session(
        "10.10.0.21",
        "10.10.0.10",
        50000,
        3009,
        [(0, request), (1, synth.http_response(200, 200_000))],
    )
    return cap.write(tmp_path_factory.mktemp("tables") / "hostile.pcap")


@pytest.fixture(scope="module")
def hostile_ruleset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rules = (ROOT / "rulesets" / "uforge.yaml").read_text()
    title = rules.split("title:", 1)[1].split("\n", 1)[0]
    path = tmp_path_factory.mktemp("tables") / "hostile.yaml"
    path.write_text(rules.replace("title:" + title, 'title: "=SUM(1) \\e]0;pwned\\a"', 1))
    return path


def _table(args: list[str], width: int | None) -> list[str]:
    env = {"COLUMNS": str(width) if width else ""}
    res = CliRunner().invoke(cli, args, env=env)
    assert res.exit_code == ExitCode.OK, res.output
    for ch in RAW:
        assert ch not in res.stdout
    return res.stdout.splitlines()


@pytest.mark.parametrize("width", WIDTHS)
def test_flows(width: int) -> None:
    lines = _table(["flows", str(FINDINGS)], width)
    _fits(lines, width)
    assert lines[0].split()[:4] == ["first", "seen", "proto", "client"]
    assert {"pkts", "bytes", "frames"} <= set(lines[0].split())
    assert any("10.10.0.50:51000" in line for line in lines)
    if width >= 120:
        assert "community id" in lines[0]
    if width == 200:
        assert "1:2sWyL1xcRz4/KwC1wFvmwXRkAvw=" in "\n".join(lines)  # whole when it fits
        assert "TLS 1.3 elm.corp.example" in "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_flows_of_several_captures_name_them(width: int) -> None:
    lines = _table(["flows", str(FINDINGS), str(CLEAN)], width)
    _fits(lines, width)
    assert "capture" in lines[0].split()
    assert any("clean.pcap" in line for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_flows_hostile(hostile: Path, width: int) -> None:
    lines = _table(["flows", str(hostile)], width)
    _fits(lines, width)
    if width == 200:
        assert "=cmd|' /c calc'!a0\\x1b]0;pwned\\x07\\x1b[2j" in "\n".join(lines)


def test_flows_to_a_file_are_100_columns(tmp_path: Path) -> None:
    out = tmp_path / "flows.txt"
    _table(["flows", str(FINDINGS), str(CLEAN), "-o", str(out)], None)
    lines = out.read_text().splitlines()
    _fits(lines, 100)
    assert max(display_width(x) for x in lines) > 80  # the room was used


@pytest.mark.parametrize("width", WIDTHS)
def test_roles(width: int) -> None:
    lines = _table(["roles", str(FINDINGS), "-r", "applayering"], width)
    _fits(lines, width)
    assert lines[0].split()[:5] == ["ip", "roles", "source", "conf", "evidence"]
    assert any(line.startswith("10.10.0.10 ") and "appliance" in line for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_roles_hostile(hostile: Path, width: int) -> None:
    lines = _table(["roles", str(hostile), "-r", "applayering", "-i", str(INVENTORY)], width)
    _fits(lines, width)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["applayering", "kubernetes", "tas-diego", "uforge"])
def test_rulesets_show(width: int, name: str) -> None:
    lines = _table(["rulesets", "show", name], width)
    _fits(lines, width)
    heads = [lines[i + 1].split() for i, x in enumerate(lines) if x.startswith("Flows (")]
    assert heads[0][:2] == ["ID", "FROM"] and "SECURITY" in heads[0]


@pytest.mark.parametrize("width", WIDTHS)
def test_rulesets_show_hostile(hostile_ruleset: Path, width: int) -> None:
    lines = _table(["rulesets", "show", str(hostile_ruleset)], width)
    _fits(lines, width)
    assert "=SUM(1) \\x1b]0;pwned\\x07" in "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_rulesets_list(width: int) -> None:
    lines = _table(["rulesets", "list"], width)
    _fits(lines, width)
    assert lines[0].split() == ["NAME", "ROLES", "FLOWS", "TITLE"]


@pytest.mark.parametrize("width", [80, 200])
def test_the_audit_report_takes_the_same_width(width: int) -> None:
    args = [str(FINDINGS), "-r", "applayering", "-i", str(INVENTORY), "--fail-on", "never"]
    lines = _table(args, width)
    _fits(lines, width)
    assert max(display_width(x) for x in lines) > 78  # the room was used


def test_no_column_narrower_than_a_wide_character() -> None:
    cols = [Column("a", min_width=1), Column("b", min_width=1)]
    lines = grid(cols, [("語" * 30, "語" * 30)], 20)
    _fits(lines, 20)


def test_random_tables_never_exceed_the_width() -> None:
    import random

    rnd = random.Random(12)
    alphabet = "abc defghij-klm:no+p/q.r 語 é\x1b\u202e→…"
    for _ in range(300):
        cols = [
            Column(
                "".join(rnd.choices(alphabet, k=rnd.randint(1, 12))),
                overflow=rnd.choice(["wrap", "elide", "keep"]),
                min_width=rnd.randint(1, 20),
                drop=rnd.choice([0, 0, 1, 2]),
                align=rnd.choice(["left", "right"]),
            )
            for _ in range(rnd.randint(1, 8))
        ]
        rows = [
            ["".join(rnd.choices(alphabet, k=rnd.randint(0, 60))) for _ in cols]
            for _ in range(rnd.randint(0, 5))
        ]
        width = rnd.randint(20, 160)
        lines = grid(cols, rows, width, indent=rnd.choice(["", "  "]))
        _fits(lines, width)
        for ch in RAW:
            assert ch not in "".join(lines)
