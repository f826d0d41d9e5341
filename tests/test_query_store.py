"""``pcap-audit query SQL --store PATH``: the views of a store, read-only, in every format.

The store is made as a user makes it: two audits of the applayering samples with
``--store`` through the CLI (the clean night, then the night with findings).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.store import schema

ROOT = Path(__file__).resolve().parent.parent
AL = ROOT / "samples" / "applayering"
INVENTORY = AL / "findings.inventory.yaml"
AL_ARGS = ["-r", "applayering", "-i", str(INVENTORY)]
GOLDEN = ROOT / "tests" / "data" / "query_store"
VIEWS = "(views: runs, findings, captures, flows)"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="pcap-audit")


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A store holding two runs (clean.pcap, then findings.pcap) and their documents."""
    store = tmp_path_factory.mktemp("store") / "nightly.duckdb"
    docs = []
    for capture in ("clean.pcap", "findings.pcap"):
        res = run(str(AL / capture), *AL_ARGS, "--store", str(store), "--format", "json")
        assert res.exit_code in (ExitCode.OK, ExitCode.FINDINGS), res.output
        docs.append(json.loads(res.stdout))
    return store, docs


def query(store: Path, sql: str, *args: str) -> dict[str, Any]:
    res = run("query", sql, "--store", str(store), "--format", "json", *args)
    assert res.exit_code == ExitCode.OK, res.output
    assert res.stderr == ""
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def one_line(res: Result) -> str:
    assert res.stdout == ""
    assert "Traceback" not in res.output
    (line,) = res.stderr.splitlines()
    return line


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the views ---------------------------------------------------------------------------


def test_runs_view_counts_the_runs_with_readable_names(nights: tuple[Path, list[Any]]) -> None:
    store, docs = nights
    doc = query(store, "SELECT count(*) AS n FROM runs")
    assert doc == {"columns": ["n"], "rows": [{"n": 2}]}
    rows = query(
        store,
        "SELECT id, started, ruleset, inventory, captures, packets, flows, findings, high, "
        "medium, low, info, waived, by_kind, exit_code, complete FROM runs ORDER BY id",
    )["rows"]
    for row, audit in zip(rows, docs, strict=True):
        summary = audit["summary"]
        assert row["started"].endswith("Z") and row["started"][:2] == "20"  # a UTC timestamp
        assert (row["ruleset"], row["inventory"], row["captures"]) == (
            "applayering",
            str(INVENTORY),
            1,
        )
        assert (row["packets"], row["flows"], row["findings"]) == (
            summary["packets"],
            summary["flows"],
            summary["findings"],
        )
        assert {s: row[s] for s in ("high", "medium", "low", "info")} == summary["by_severity"]
        assert json.loads(row["by_kind"]) == summary["by_kind"]
        assert (row["waived"], row["exit_code"], row["complete"]) == (
            0,
            summary["exit_code"],
            True,
        )
    assert [r["id"] for r in rows] == [1, 2]


def test_findings_per_run(nights: tuple[Path, list[Any]]) -> None:
    store, docs = nights
    doc = query(store, "SELECT run_id, count(*) AS n FROM findings GROUP BY 1 ORDER BY 1")
    assert doc["rows"] == [{"run_id": i + 1, "n": len(d["findings"])} for i, d in enumerate(docs)]


def test_findings_have_the_capture_mode_columns_and_values(
    nights: tuple[Path, list[Any]],
) -> None:
    """A stored finding reads as the capture-mode ``findings`` view shows it (same column
    names, same values), plus its run, position, waiver and the finding whole."""
    store, _ = nights
    live = run("query", "SELECT * FROM findings ORDER BY id", str(AL / "findings.pcap"),
               *AL_ARGS, "--format", "json")  # fmt: skip
    assert live.exit_code == ExitCode.OK, live.output
    live_doc = json.loads(live.stdout)
    stored = query(store, "SELECT * FROM findings WHERE run_id = 2 ORDER BY id")
    columns = stored["columns"]
    assert columns[:2] == ["run_id", "position"]
    assert columns[2 : 2 + len(live_doc["columns"])] == live_doc["columns"]
    assert columns[2 + len(live_doc["columns"]) :] == ["waived", "waiver", "finding"]
    assert len(stored["rows"]) == len(live_doc["rows"]) == 15
    for mine, theirs in zip(stored["rows"], live_doc["rows"], strict=True):
        assert json.loads(mine.pop("evidence")) == json.loads(theirs.pop("evidence"))
        assert {k: mine[k] for k in theirs} == theirs
        assert json.loads(mine["finding"])["id"] == mine["id"]


def test_captures_and_flows_of_each_run(nights: tuple[Path, list[Any]]) -> None:
    store, docs = nights
    rows = query(store, "SELECT run_id, path, format, packets, first_seen, new FROM captures")
    assert rows["rows"] == [
        {"run_id": i + 1, "path": c["path"], "format": "pcap", "packets": c["packets"],
         "first_seen": c["first_seen"], "new": True}
        for i, d in enumerate(docs) for c in d["captures"]
    ]  # fmt: skip
    flows = query(store, "SELECT run_id, sum(flows) AS n FROM flows GROUP BY 1 ORDER BY 1")
    assert flows["rows"] == [{"run_id": i + 1, "n": d["summary"]["flows"]} for i, d in
                             enumerate(docs)]  # fmt: skip
    meta = query(store, "SELECT value FROM store.pcap_audit_meta WHERE key = 'schema_version'")
    assert meta["rows"] == [{"value": str(schema.VERSION)}]  # the store's own tables


NEW_IN_LAST_RUN = """
SELECT f.id, f.kind, f.severity FROM findings f JOIN runs r ON r.id = f.run_id
WHERE r.id = (SELECT max(id) FROM runs)
  AND NOT EXISTS (SELECT 1 FROM findings o WHERE o.id = f.id AND o.run_id < r.id)
ORDER BY f.id
"""


def test_findings_new_in_the_last_run_agree_with_diff(nights: tuple[Path, list[Any]]) -> None:
    """The README's example: a join of findings with runs gives diff's new findings."""
    store, _ = nights
    rows = query(store, NEW_IN_LAST_RUN)["rows"]
    diff = run("diff", "--store", str(store), "--format", "json", "--fail-on", "never")
    assert diff.exit_code == ExitCode.OK, diff.output
    new = json.loads(diff.stdout)["new_findings"]
    assert rows == sorted(({k: f[k] for k in ("id", "kind", "severity")} for f in new),
                          key=lambda f: f["id"])  # fmt: skip
    assert rows


@pytest.mark.parametrize(
    ("name", "sql"),
    [
        ("findings", "SELECT run_id, position, id, kind, severity, src_ip, dst_ip, dst_port, "
         "first_seen, last_seen, packets, bytes, flow_ids FROM findings"),
        ("flows", "SELECT * FROM flows"),
    ],
)  # fmt: skip
def test_golden_results(nights: tuple[Path, list[Any]], name: str, sql: str) -> None:
    """The views' rows for the two sample nights, byte for byte (the views' own order)."""
    store, _ = nights
    res = run("query", sql, "--store", str(store), "--format", "json")
    assert res.exit_code == ExitCode.OK, res.output
    assert res.stdout == (GOLDEN / f"{name}.json").read_text()


def test_every_format(nights: tuple[Path, list[Any]], tmp_path: Path) -> None:
    store, _ = nights
    sql = "SELECT id AS run, findings, high FROM runs ORDER BY id"
    table = run("query", sql, "--store", str(store))
    assert table.exit_code == ExitCode.OK
    assert table.stdout.splitlines() == [
        "run  findings  high",
        "---  --------  ----",
        "  1         1     0",
        "  2        15     7",
        "(2 rows)",
    ]
    text = run("query", sql, "--store", str(store), "--format", "csv")
    assert list(csv.reader(io.StringIO(text.stdout))) == [
        ["run", "findings", "high"],
        ["1", "1", "0"],
        ["2", "15", "7"],
    ]
    out = tmp_path / "runs.parquet"
    res = run("query", sql, "--store", str(store), "--format", "parquet", "-o", str(out))
    assert res.exit_code == ExitCode.OK, res.output
    assert res.stdout == ""
    assert pq.read_table(out).to_pylist() == [
        {"run": 1, "findings": 1, "high": 0},
        {"run": 2, "findings": 15, "high": 7},
    ]
    out = tmp_path / "runs.json"
    res = run("query", sql, "--store", str(store), "--format", "json", "-o", str(out))
    assert res.exit_code == ExitCode.OK and res.stdout == ""
    assert json.loads(out.read_text())["rows"][1] == {"run": 2, "findings": 15, "high": 7}


def test_timestamps_are_utc_whatever_tz_says(nights: tuple[Path, list[Any]]) -> None:
    store, _ = nights
    code = "from auditor.cli.entry import main; main()"
    env = {**os.environ, "TZ": "Asia/Tokyo", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, "query", "SELECT first_seen FROM captures ORDER BY 1",
         "--store", str(store), "--format", "csv"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == ["2025-11-22T00:00:00.000500Z"] * 2


# --- read-only ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("DELETE FROM findings", "DELETE"),
        ("DELETE FROM store.findings", "DELETE"),
        ("DROP TABLE store.runs", "DROP"),
        ("DROP VIEW findings", "DROP"),
        ("UPDATE store.runs SET exit_code = 0", "UPDATE"),
        ("INSERT INTO store.runs (id) VALUES (9)", "INSERT"),
        ("CREATE TABLE store.x AS SELECT 1", "CREATE"),
        ("SELECT 1; DELETE FROM store.findings", "DELETE"),
        ("DETACH store", "DETACH"),
        ("COPY store.findings TO 'f.csv'", "COPY"),
    ],
)
def test_a_query_cannot_change_the_store(
    nights: tuple[Path, list[Any]], sql: str, kind: str
) -> None:
    store, _ = nights
    before = digest(store)
    res = run("query", sql, "--store", str(store))
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res) == (
        f"pcap-audit: {store}: a query over a store only reads it: {kind} refused "
        "(SELECT, WITH, FROM, DESCRIBE, SHOW and SUMMARIZE run)"
    )
    assert digest(store) == before
    assert query(store, "SELECT count(*) AS n FROM findings")["rows"] == [{"n": 16}]


def test_the_store_is_attached_read_only_besides(
    nights: tuple[Path, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were a writing statement let through, DuckDB itself would refuse it."""
    from auditor import query as library

    monkeypatch.setattr(library, "_READING", ("SELECT", "DELETE", "DROP"))
    store, _ = nights
    before = digest(store)
    for sql in ("DELETE FROM store.findings", "DROP TABLE store.flows"):
        res = run("query", sql, "--store", str(store))
        assert res.exit_code == ExitCode.USAGE
        line = one_line(res)
        assert line.startswith(f"pcap-audit: {store}: ") and "read-only" in line, line
    assert digest(store) == before


# --- errors ------------------------------------------------------------------------------


def _foreign(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t (x INTEGER)")


def _newer(path: Path) -> None:
    run(str(AL / "clean.pcap"), *AL_ARGS, "--store", str(path))
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE pcap_audit_meta SET value = '99' WHERE key = 'schema_version'")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (None, "no such store (an audit with --store creates it)"),
        (lambda p: p.write_bytes((AL / "clean.pcap").read_bytes()[:4096]),
         "not a pcap-audit store: not a DuckDB database file"),
        (lambda p: p.write_text("runs: 3\n"), "not a pcap-audit store: not a DuckDB database file"),
        (lambda p: p.write_bytes(b""), "not a pcap-audit store: an empty file"),
        (lambda p: p.mkdir(), "is a directory, expected a store file"),
        (_foreign, "not a pcap-audit store: a DuckDB database of another application"),
        (_newer, f"written by a newer pcap-audit (store schema 99; this one reads up to "
                 f"{schema.VERSION}): upgrade pcap-audit"),
    ],
    ids=["missing", "pcap", "text", "empty", "directory", "foreign", "newer"],
)  # fmt: skip
def test_what_is_not_a_store_is_one_line_and_left_alone(
    tmp_path: Path, make: Any, message: str
) -> None:
    path = tmp_path / "given.duckdb"
    if make is not None:
        make(path)
    before = digest(path) if path.is_file() else None
    res = run("query", "SELECT count(*) FROM runs", "--store", str(path))
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res) == f"pcap-audit: {path}: {message}"
    assert (digest(path) if path.is_file() else None) == before
    assert path.exists() == (make is not None)  # never created


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM nope", "Catalog Error: Table with name nope does not exist! " + VIEWS),
        ("SELECT * FROM roles",
         "Catalog Error: Table with name roles does not exist! "
         "(views: runs, findings, captures, flows; roles are not stored)"),
        ("SELECT nope FROM runs",
         'Binder Error: Referenced column "nope" not found in FROM clause! ' + VIEWS),
        ("SELEC 1", "Parser Error: syntax error at or near \"SELEC\""),
    ],
)  # fmt: skip
def test_sql_that_does_not_run_is_one_line_naming_the_store(
    nights: tuple[Path, list[Any]], sql: str, message: str
) -> None:
    store, _ = nights
    res = run("query", sql, "--store", str(store))
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res) == f"pcap-audit: {store}: {message}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([str(AL / "clean.pcap")], "pcap-audit: query: give CAPTURE... or --store PATH, not both"),
        (["-r", "applayering", "--port", "443"],
         "pcap-audit: query: --ruleset, --port: for captures, not --store (a store holds "
         "audited runs: select them with WHERE)"),
    ],
)  # fmt: skip
def test_store_with_capture_options_is_a_usage_error(
    nights: tuple[Path, list[Any]], extra: list[str], message: str
) -> None:
    store, _ = nights
    res = run("query", "SELECT 1", "--store", str(store), *extra)
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res) == message


def test_neither_captures_nor_store() -> None:
    res = run("query", "SELECT 1")
    assert res.exit_code == ExitCode.USAGE
    assert (
        one_line(res)
        == "pcap-audit: query: give CAPTURE... (capture files to query) or --store PATH"
    )


def test_output_over_the_store_is_refused(nights: tuple[Path, list[Any]]) -> None:
    store, _ = nights
    before = digest(store)
    res = run("query", "SELECT 1", "--store", str(store), "-o", str(store))
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res).endswith("refusing to overwrite it")
    assert digest(store) == before


# --- an older store ----------------------------------------------------------------------


def test_a_schema_1_store_is_read_as_it_is(tmp_path: Path) -> None:
    """Not migrated: the columns schema 2 added read as their migration's defaults, and the
    flows view is empty (schema 1 kept no flows)."""
    store = tmp_path / "old.duckdb"
    finding = {"id": "MIS-1", "kind": "missing_flow", "severity": "info",
               "first_seen": None, "flow_ids": [], "source": {"document": "d.txt"}}  # fmt: skip
    with duckdb.connect(str(store)) as con:
        for statement in schema.HISTORIC[1]:
            con.execute(statement)
        con.execute(
            "INSERT INTO pcap_audit_meta VALUES ('application', ?), ('schema_version', '1')",
            [schema.APPLICATION],
        )
        con.execute(
            "INSERT INTO runs (id, started, finished, ruleset_name, packets, flows, findings, "
            "by_kind, by_severity, exit_code) VALUES (1, '2026-01-01T00:00:00Z', "
            "'2026-01-01T00:01:00Z', 'applayering', 2000, 9, 1, '{\"missing_flow\": 1}', "
            "'{\"info\": 1}', 0)"
        )
        con.execute("INSERT INTO run_captures VALUES (1, 0, 'old.pcap', 'abc', 2000, true, null)")
        con.execute(
            "INSERT INTO findings (run_id, position, id, kind, severity, finding) "
            "VALUES (1, 0, 'MIS-1', 'missing_flow', 'info', ?)",
            [json.dumps(finding)],
        )
    before = digest(store)
    runs = query(store, "SELECT id, started, captures, info, waived, complete, waivers, "
                 "flows_recorded FROM runs")  # fmt: skip
    assert runs["rows"] == [{"id": 1, "started": "2026-01-01T00:00:00Z", "captures": 1,
                             "info": 1, "waived": 0, "complete": True, "waivers": None,
                             "flows_recorded": False}]  # fmt: skip
    rows = query(store, "SELECT id, waived, flow_ids, source_document, first_seen FROM findings")
    assert rows["rows"] == [{"id": "MIS-1", "waived": False, "flow_ids": [],
                             "source_document": "d.txt", "first_seen": None}]  # fmt: skip
    flows = query(store, "SELECT * FROM flows")
    assert flows == {"columns": ["run_id", "src", "dst", "dst_port", "proto", "app", "flows",
                                 "packets", "bytes"], "rows": []}  # fmt: skip
    assert digest(store) == before


# --- sharing the store -------------------------------------------------------------------


def test_a_query_waits_for_a_run_being_recorded(nights: tuple[Path, list[Any]]) -> None:
    """The shared lock: while a writer holds PATH.lock, the query says it waits, then runs."""
    import fcntl
    import threading

    from auditor import query_store

    store, _ = nights
    waiting = threading.Event()
    result: list[Any] = []
    fd = os.open(f"{store}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as an audit recording its run holds it
        notes: list[str] = []

        def note(text: str) -> None:
            notes.append(text)
            waiting.set()

        reader = threading.Thread(
            target=lambda: result.append(query_store("SELECT count(*) AS n FROM runs", store, note))
        )
        reader.start()
        assert waiting.wait(60)
        assert not result  # still waiting
    finally:
        os.close(fd)  # the writer is done
    reader.join(60)
    assert notes == [f"{store}: the store is in use by another pcap-audit run; waiting for it"]
    assert result[0].to_pylist() == [{"n": 2}]


def test_a_store_another_program_writes_is_one_line(
    nights: tuple[Path, list[Any]], tmp_path: Path
) -> None:
    store = tmp_path / "busy.duckdb"
    store.write_bytes(nights[0].read_bytes())
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); sys.stdin.read()", str(store)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        res = run("query", "SELECT 1", "--store", str(store))
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res).startswith(
        f"pcap-audit: {store}: cannot open the store: the store is open in another program ("
    )


def test_a_store_given_as_a_capture_says_to_use_store(nights: tuple[Path, list[Any]]) -> None:
    store, _ = nights
    res = run("query", "SELECT 1", str(store))
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res) == (
        f"pcap-audit: {store}: a DuckDB file, not a capture: a store is queried with --store "
        f"{store}"
    )
