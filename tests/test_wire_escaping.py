"""Wire content is data, never control: a hostile capture through every output.

The capture (built with auditor.synth) carries the issue's HTTP Host, a spreadsheet formula
followed by "set the terminal title" and "clear the screen" escape sequences, and a
User-Agent with a C1 control (CSI), OSC and BEL; a user's ruleset has a right-to-left
override. No text output may carry any of those characters raw; CSV cells must not start
like a formula; JSON must still give back the exact strings.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from auditor import synth
from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.escape import FORMULA_START, json_text, printable
from auditor.report import FORMATS

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = ROOT / "samples" / "applayering" / "findings.inventory.yaml"

HOST = "=cmd|' /C calc'!A0\x1b]0;pwned\x07\x1b[2J"
AGENT = "Microsoft BITS/7.8 \x9b31m\x1b]0;pwned\x07"  # sent as UTF-8: C1 CSI, OSC, BEL
#: what a terminal or a text viewer would act on
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cap = synth.Capture()
    request = synth.http_request("GET", "/disks/x.vhd", HOST, user_agent=AGENT)
    cap.tcp_session(
        "10.10.0.21",
        "10.10.0.10",
        50000,
        3009,
        [(0, request), (1, synth.http_response(200, 200_000))],
    )
    return cap.write(tmp_path_factory.mktemp("hostile") / "hostile.pcap")


def _run(args: list[str], columns: int = 100) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, args, env={"COLUMNS": str(columns)})
    return res.exit_code, res.stdout, res.stderr


def _assert_inert(text: str) -> None:
    for ch in RAW:
        assert ch not in text, f"raw {ch!r} in output"


def test_the_capture_carries_the_payload(hostile: Path) -> None:
    code, out, _ = _run(["flows", str(hostile), "--format", "json"])
    assert code == ExitCode.OK
    (flow,) = json.loads(out)["flows"]
    assert flow["http_host"] == HOST.lower()  # hosts are compared case-insensitively
    assert "\x9b31m\x1b]0;pwned\x07" in flow["http_user_agent"]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_flows_text_formats(hostile: Path, fmt: str) -> None:
    code, out, err = _run(["flows", str(hostile), "--format", fmt], columns=200)  # detail
    assert code == ExitCode.OK, err
    _assert_inert(out)
    if fmt == "table":
        assert printable(HOST.lower())[:30] in out
    if fmt == "csv":
        (row,) = list(csv.DictReader(io.StringIO(out)))
        assert row["http_host"] == "'" + printable(HOST.lower())
        for value in row.values():
            assert not value.startswith(FORMULA_START), value
    if fmt == "json":  # escaped as JSON, so the data is unchanged
        (flow,) = json.loads(out)["flows"]
        assert flow["http_host"] == HOST.lower()


def test_flows_parquet_keeps_the_data(hostile: Path, tmp_path: Path) -> None:
    target = tmp_path / "flows.parquet"
    code, _, err = _run(["flows", str(hostile), "--format", "parquet", "-o", str(target)])
    assert code == ExitCode.OK, err
    assert pq.read_table(target).column("http_host").to_pylist() == [HOST.lower()]


@pytest.mark.parametrize("fmt", FORMATS)
def test_audit_every_format(hostile: Path, fmt: str) -> None:
    args = [str(hostile), "-r", "applayering", "-i", str(INVENTORY), "--format", fmt]
    code, out, err = _run([*args, "--fail-on", "never"])
    assert code == ExitCode.OK, err
    _assert_inert(out)
    assert "BITS/7.8" in out  # the User-Agent is shown, escaped
    if fmt == "csv":
        for row in csv.reader(io.StringIO(out)):
            for value in row:
                assert not value.startswith(FORMULA_START), value
    if fmt == "json":
        doc = json.loads(out)
        agents = [a for f in doc["findings"] for a in (f["evidence"] or {}).get("user_agents", [])]
        assert any("\x9b31m\x1b]0;pwned\x07" in a for a in agents)


@pytest.mark.parametrize("fmt", ["table", "json", "inventory"])
def test_roles_every_format(hostile: Path, fmt: str) -> None:
    code, out, err = _run(["roles", str(hostile), "-r", "applayering", "--format", fmt])
    assert code == ExitCode.OK, err
    _assert_inert(out)


def test_rulesets_show_and_validate_a_hostile_ruleset(tmp_path: Path) -> None:
    rules = (ROOT / "rulesets" / "uforge.yaml").read_text()
    title = rules.split("title:", 1)[1].split("\n", 1)[0]
    hostile_title = ' "Ports \\e]0;pwned\\a\\e[2J \\u202eevil"'
    path = tmp_path / "hostile.yaml"
    path.write_text(rules.replace("title:" + title, "title:" + hostile_title, 1))
    for fmt in ("table", "json"):
        code, out, err = _run(["rulesets", "show", str(path), "--format", fmt])
        assert code == ExitCode.OK, err
        _assert_inert(out)
        assert "pwned" in out
    code, out, err = _run(["rulesets", "validate", str(path)])
    _assert_inert(out + err)


def test_file_names_on_stderr(tmp_path: Path) -> None:
    name = tmp_path / "night\x1b]0;pwned\x07\x1b[2J.pcap"
    name.write_bytes(b"")
    code, _, err = _run(["flows", str(name), "--format", "json"])
    assert code == ExitCode.CAPTURE
    _assert_inert(err)
    assert "night\\x1b]0;pwned\\x07\\x1b[2J.pcap: " in err
    code, _, err = _run([str(name), "-r", "applayering"])
    _assert_inert(err)
    assert "night\\x1b]0;pwned\\x07" in err


@pytest.mark.parametrize(
    "text,shown",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "\\x0dx"),  # escaped, so no longer a formula start
        ("a\nb", "a\nb"),
        ("ok", "ok"),
    ],
)
def test_spreadsheet_cells(text: str, shown: str) -> None:
    assert printable(text, keep_newlines=True, spreadsheet=True) == shown


def test_json_text_is_the_same_json() -> None:
    value = {"s": "a\x7f\x85\u202e\u2066b\ufeffc\u2028"}
    text = json_text(json.dumps(value, ensure_ascii=False))
    assert text.isascii()
    assert json.loads(text) == value


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('"plain"', '"plain"'),  # ASCII without DEL: returned as it is
        ('"a\x7fb"', '"a\\u007fb"'),  # ASCII, but DEL
        ('"é"', '"é"'),  # not ASCII, nothing to escape
    ],
)
def test_json_text_ascii_shortcut(text: str, shown: str) -> None:
    assert json_text(text) == shown
