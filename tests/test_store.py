"""The store of runs: recording, idempotence, two writers at once, an interrupted run,
migration from schema 1, foreign files, and history and diff over real sample captures.

Runs are made the way a user makes them: the CLI (CliRunner), or real subprocesses where
the point is two processes or a signal.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result
from screenshots import CHROMIUM, png_pixels, screenshot

from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.store import schema

ROOT = Path(__file__).resolve().parent.parent
AL = ROOT / "samples" / "applayering"
UF = ROOT / "samples" / "uforge"
AL_ARGS = ["-r", "applayering", "-i", str(AL / "findings.inventory.yaml")]
UF_ARGS = ["-r", "uforge", "-i", str(UF / "findings.inventory.yaml")]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="pcap-audit")


def audit(capture: Path, store: Path, *extra: str, args: list[str] = AL_ARGS) -> Result:
    res = run(str(capture), *args, "--store", str(store), "--format", "json", *extra)
    assert res.exit_code in (ExitCode.OK, ExitCode.FINDINGS), res.output
    return res


def history(store: Path) -> list[dict[str, Any]]:
    res = run("history", "--store", str(store), "--format", "json")
    assert res.exit_code == 0, res.output
    runs: list[dict[str, Any]] = json.loads(res.stdout)["runs"]
    return runs


def query(store: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(store), read_only=True) as con:
        return con.execute(sql).fetchall()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(res: Result) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output
    return lines[0]


# --- recording ---------------------------------------------------------------------------


def test_a_run_is_recorded_with_its_captures_findings_and_flows(tmp_path: Path) -> None:
    store = tmp_path / "nightly.duckdb"
    res = audit(AL / "findings.pcap", store)
    doc = json.loads(res.stdout)
    assert f"{store}: recorded as run 1 (1 capture)" in res.stderr
    (entry,) = history(store)
    assert list(entry) == [
        "id", "started", "captures", "packets", "flows", "findings", "by_kind", "by_severity"
    ]  # fmt: skip
    summary = doc["summary"]
    assert entry["id"] == 1 and entry["captures"] == 1
    assert (entry["packets"], entry["flows"], entry["findings"]) == (
        summary["packets"],
        summary["flows"],
        summary["findings"],
    )
    assert entry["by_kind"] == summary["by_kind"]
    assert entry["by_severity"] == summary["by_severity"]
    ((path, digest, new),) = query(store, "SELECT path, sha256, new FROM run_captures")
    assert path == str(AL / "findings.pcap") and digest == sha(AL / "findings.pcap") and new
    stored = [r[0] for r in query(store, "SELECT id FROM findings ORDER BY position")]
    assert stored == [f["id"] for f in doc["findings"]]
    (run_row,) = query(store, "SELECT exit_code, ruleset_name, inventory_sha256 FROM runs")
    assert run_row == (1, "applayering", sha(AL / "findings.inventory.yaml"))
    # flows aggregated by role (or address), port, protocol, app: the BITS transfer
    flows = query(store, "SELECT src, dst, dst_port, proto, app, flows FROM flows")
    assert ("agent+pvs_agent", "appliance", 3009, "tcp", "http", 1) in flows
    assert sum(r[5] for r in flows) == summary["flows"]


def test_the_same_audit_twice_is_recorded_once(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    audit(AL / "findings.pcap", store)
    again = audit(AL / "findings.pcap", store)
    assert "already audited with the same ruleset, inventory and waivers as run 1" in again.stderr
    assert "not recorded again" in again.stderr
    assert again.exit_code == ExitCode.FINDINGS  # the audit's own exit code all the same
    assert [r["id"] for r in history(store)] == [1]


def test_a_stored_capture_is_kept_once(tmp_path: Path) -> None:
    """The same content under another name, audited with another capture: a new run,
    which refers to the stored capture rather than storing it again."""
    store = tmp_path / "s.duckdb"
    audit(AL / "findings.pcap", store)
    renamed = tmp_path / "night-2.pcap"
    shutil.copy(AL / "findings.pcap", renamed)
    res = audit(renamed, store, args=["-r", "applayering"])  # no inventory: other inputs
    assert "recorded as run 2 (1 capture, 1 already in the store)" in res.stderr
    assert query(store, "SELECT count(*) FROM captures") == [(1,)]
    assert query(store, "SELECT run_id, new FROM run_captures ORDER BY run_id") == [
        (1, True),
        (2, False),
    ]


# --- history and diff -------------------------------------------------------------------


def _two_nights(tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Night 1 the clean capture, night 2 the one with findings (same inventory)."""
    store = tmp_path / "s.duckdb"
    clean = json.loads(audit(AL / "clean.pcap", store).stdout)
    findings = json.loads(audit(AL / "findings.pcap", store).stdout)
    return store, clean, findings


def test_history_of_two_runs_of_different_captures(tmp_path: Path) -> None:
    store, clean, findings = _two_nights(tmp_path)
    runs = history(store)
    assert [r["id"] for r in runs] == [1, 2]
    assert [r["findings"] for r in runs] == [
        clean["summary"]["findings"],
        findings["summary"]["findings"],
    ]
    table = run("history", "--store", str(store))
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["run", "started"]
    assert lines[2].split()[0] == "2" and len(lines) == 3


def test_diff_of_two_runs(tmp_path: Path) -> None:
    store, clean, findings = _two_nights(tmp_path)
    res = run("diff", "--store", str(store), "--format", "json")
    assert res.exit_code == ExitCode.FINDINGS  # new high and medium findings
    diff = json.loads(res.stdout)
    assert list(diff) == [
        "run", "baseline", "new_findings", "resolved_findings", "new_flows", "gone_flows"
    ]  # fmt: skip
    assert diff["run"]["id"] == 2 and diff["baseline"]["id"] == 1
    old_ids = {f["id"] for f in clean["findings"]}
    assert [f["id"] for f in diff["new_findings"]] == [
        f["id"] for f in findings["findings"] if f["id"] not in old_ids
    ]
    assert diff["new_findings"][0] == findings["findings"][0]  # the finding whole
    new_flows = {
        (f["src"], f["dst"], f["dst_port"], f["proto"], f["app"]) for f in diff["new_flows"]
    }
    assert ("agent+pvs_agent", "appliance", 3009, "tcp", "http") in new_flows
    # the other way round: night 2's findings are resolved, nothing new
    back = run("diff", "--store", str(store), "--run", "1", "--baseline", "2", "--format", "json")
    assert back.exit_code == ExitCode.OK
    back_diff = json.loads(back.stdout)
    assert back_diff["new_findings"] == []
    assert {f["id"] for f in back_diff["resolved_findings"]} == {
        f["id"] for f in findings["findings"]
    } - old_ids
    assert {tuple(f.values())[:5] for f in back_diff["gone_flows"]} == new_flows


def test_diff_fail_on_and_formats(tmp_path: Path) -> None:
    store, clean, findings = _two_nights(tmp_path)
    assert run("diff", "--store", str(store), "--fail-on", "never").exit_code == ExitCode.OK
    table = run("diff", "--store", str(store))
    assert table.stdout.startswith("run 2 (")
    new = {f["id"] for f in findings["findings"]} - {f["id"] for f in clean["findings"]}
    assert f"NEW FINDINGS ({len(new)})" in table.stdout
    markdown = run("diff", "--store", str(store), "--format", "markdown")
    assert markdown.stdout.startswith("# pcap-audit diff: run 2")
    assert "| Severity | Kind | Flow | Message | Id |" in markdown.stdout
    out = tmp_path / "diff.md"
    written = run("diff", "--store", str(store), "--format", "markdown", "-o", str(out))
    assert written.stdout == "" and out.read_text() == markdown.stdout


def test_diff_errors(tmp_path: Path) -> None:
    store, _, _ = _two_nights(tmp_path)
    res = run("diff", "--store", str(store), "--run", "7")
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res) == f"pcap-audit: {store}: no run 7 in the store (runs 1-2)"
    res = run("diff", "--store", str(store), "--run", "2", "--baseline", "2")
    assert res.exit_code == ExitCode.USAGE and "its own baseline" in res.stderr
    res = run("diff")
    assert res.exit_code == ExitCode.USAGE and "give --store PATH" in res.stderr


def test_the_first_run_has_no_baseline(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    doc = json.loads(audit(AL / "findings.pcap", store).stdout)
    res = run("diff", "--store", str(store), "--format", "json")
    diff = json.loads(res.stdout)
    assert diff["baseline"] is None
    assert len(diff["new_findings"]) == len(doc["findings"])


def test_diff_of_two_saved_documents(tmp_path: Path) -> None:
    old, new = tmp_path / "monday.json", tmp_path / "tuesday.json"
    for capture, path in ((AL / "clean.pcap", old), (AL / "findings.pcap", new)):
        res = run(str(capture), *AL_ARGS, "--format", "json", "-o", str(path))
        assert res.exit_code in (0, 1)
    res = run("diff", str(old), str(new), "--format", "json")
    assert res.exit_code == ExitCode.FINDINGS
    diff = json.loads(res.stdout)
    assert diff["run"] == {"file": str(new)} and diff["baseline"] == {"file": str(old)}
    before = {f["id"] for f in json.loads(old.read_text())["findings"]}
    after = json.loads(new.read_text())["findings"]
    assert [f["id"] for f in diff["new_findings"]] == [
        f["id"] for f in after if f["id"] not in before
    ]
    # a document's flows are its observed role pairs
    assert {
        "src": "pvs_agent",
        "dst": "appliance",
        "dst_port": 3009,
        "proto": "tcp",
        "app": None,
        "flows": 1,
        "packets": None,
        "bytes": None,
    } in diff["new_flows"]
    same = run("diff", str(new), str(new), "--format", "json")
    assert same.exit_code == ExitCode.OK
    assert json.loads(same.stdout)["new_findings"] == []
    assert run("diff", str(old)).exit_code == ExitCode.USAGE
    bad = run("diff", str(old), str(AL / "findings.inventory.yaml"))
    assert bad.exit_code == ExitCode.USAGE
    assert one_line(bad).startswith(f"pcap-audit: {AL / 'findings.inventory.yaml'}:1:1: not JSON")


def test_history_html_is_one_page_with_charts(tmp_path: Path) -> None:
    store, clean, findings = _two_nights(tmp_path)
    out = tmp_path / "history.html"
    res = run("history", "--store", str(store), "--format", "html", "-o", str(out))
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "default-src 'none'" in page and "<script" not in page
    assert page.count('<svg class="chart"') == 2
    assert "Findings by severity" in page and "Findings by kind" in page
    old = {f["id"] for f in clean["findings"]}
    for f in findings["findings"]:  # the latest diff's new findings
        assert (f["id"] in page) == (f["id"] not in old)
    assert "http://" not in page and "https://" not in page


# --- two writers, interruption ---------------------------------------------------------

MAIN = "from auditor.cli.entry import main; main()"


def _spawn(store: Path, capture: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", MAIN, str(capture), *AL_ARGS, "--store", str(store),
         "--format", "json", "-o", os.devnull],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while text not in log.read_text():
        assert proc.poll() is None, f"the run ended before saying {text!r}: {log.read_text()}"
        assert time.monotonic() < end, f"no {text!r} within {timeout} s: {log.read_text()}"
        time.sleep(0.05)


def test_two_writers_at_once_both_end_up_recorded(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    lock = os.open(tmp_path / "s.duckdb.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as a run writing the store would hold it
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [
        _spawn(store, AL / "findings.pcap", logs[0]),
        _spawn(store, AL / "clean.pcap", logs[1]),
    ]
    try:
        for proc, log in zip(procs, logs, strict=True):
            _wait_for(log, "in use by another pcap-audit run; waiting for it", proc)
    finally:
        os.close(lock)
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [ExitCode.FINDINGS, ExitCode.OK], [log.read_text() for log in logs]
    assert sorted(r["findings"] for r in history(store)) == [1, 15]  # clean, findings
    texts = [log.read_text() for log in logs]
    assert all("recorded as run" in t for t in texts), texts


def test_two_writers_without_help(tmp_path: Path) -> None:
    """Started together, nothing held: both recorded, whichever comes first."""
    store = tmp_path / "s.duckdb"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [
        _spawn(store, AL / c, log)
        for c, log in zip(("findings.pcap", "clean.pcap"), logs, strict=True)
    ]
    assert sorted(p.wait(timeout=120) for p in procs) == [ExitCode.OK, ExitCode.FINDINGS]
    assert len(history(store)) == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_waiting_leaves_the_store_as_it_was(tmp_path: Path, sig: int) -> None:
    store = tmp_path / "s.duckdb"
    audit(AL / "clean.pcap", store)
    before = sha(store)
    lock = os.open(tmp_path / "s.duckdb.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    log = tmp_path / "run.log"
    proc = _spawn(store, AL / "findings.pcap", log)
    try:
        _wait_for(log, "waiting for it", proc)
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        os.close(lock)
    assert code != 0, log.read_text()
    assert "Traceback" not in log.read_text()
    assert sha(store) == before
    assert [r["id"] for r in history(store)] == [1]


@pytest.mark.parametrize("delay", [0.2, 0.6, 1.0, 1.4, 1.8])
def test_sigterm_at_any_moment_leaves_no_half_run(tmp_path: Path, delay: float) -> None:
    """Killed at some point of its life, a run is in the store whole or not at all, and
    the store still opens."""
    store = tmp_path / "s.duckdb"
    audit(AL / "clean.pcap", store)
    proc = _spawn(store, AL / "findings.pcap", tmp_path / "run.log")
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    runs = history(store)
    assert [r["id"] for r in runs] in ([1], [1, 2])
    for r in runs:  # every recorded run has all its findings and captures
        assert query(store, f"SELECT count(*) FROM findings WHERE run_id = {r['id']}") == [
            (r["findings"],)
        ]
        assert query(store, f"SELECT count(*) FROM run_captures WHERE run_id = {r['id']}") == [(1,)]


# --- migration, foreign files ------------------------------------------------------------


def _v1_store(path: Path) -> dict[str, Any]:
    """A store as pcap-audit wrote it at schema 1, holding one run of the clean sample."""
    doc = json.loads(run(str(AL / "clean.pcap"), *AL_ARGS, "--format", "json").stdout)
    doc_findings = json.loads(run(str(AL / "findings.pcap"), *AL_ARGS, "--format", "json").stdout)
    finding = doc_findings["findings"][0]  # an old finding, resolved since
    with duckdb.connect(str(path)) as con:
        for statement in schema.HISTORIC[1]:
            con.execute(statement)
        con.execute(
            "INSERT INTO pcap_audit_meta VALUES ('application', ?), ('schema_version', '1')",
            [schema.APPLICATION],
        )
        con.execute(
            "INSERT INTO runs VALUES (1, '2025-11-20T01:00:00Z', '2025-11-20T01:00:03Z', "
            "'0.0.9', 'applayering', 'x', 'hosts.yaml', 'y', 'medium', 2000, 20, 1, "
            """'{"plaintext_disk_transfer": 1}', '{"high": 1, "medium": 0, "low": 0, "info": 0}', """
            "60.0, 1, 'z')"
        )
        con.execute(
            "INSERT INTO captures VALUES ('abc', 1, 'old.pcap', 'pcap', 2000, 9, null, null)"
        )
        con.execute("INSERT INTO run_captures VALUES (1, 0, 'old.pcap', 'abc', 2000, true, null)")
        con.execute(
            "INSERT INTO findings VALUES (1, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [finding["id"], finding["kind"], finding["severity"], finding["src_ip"],
             finding["dst_ip"], finding["dst_port"], finding["proto"], finding["src_role"],
             finding["dst_role"], finding["rule_id"], finding["message"], json.dumps(finding)],
        )  # fmt: skip
    assert finding["id"] not in {f["id"] for f in doc["findings"]}
    return dict(finding)


def test_a_schema_1_store_is_migrated(tmp_path: Path) -> None:
    store = tmp_path / "old.duckdb"
    old_finding = _v1_store(store)
    res = run("history", "--store", str(store), "--format", "json")
    assert res.exit_code == 0, res.output
    assert f"{store}: store migrated from schema 1 to 2" in res.stderr
    (entry,) = json.loads(res.stdout)["runs"]
    assert entry["id"] == 1 and entry["started"] == "2025-11-20T01:00:00Z"
    assert entry["by_severity"]["high"] == 1
    assert query(store, "SELECT value FROM pcap_audit_meta WHERE key = 'schema_version'") == [
        ("2",)
    ]
    again = run("history", "--store", str(store))
    assert "migrated" not in again.stderr  # once
    # a new run on the migrated store, and its diff against the old run
    audit(AL / "clean.pcap", store)
    diff = run("diff", "--store", str(store), "--format", "json")
    assert "run 1 was recorded before the store kept flows: flows not compared" in diff.stderr
    body = json.loads(diff.stdout)
    assert body["resolved_findings"] == [old_finding]
    assert body["new_flows"] == [] and body["gone_flows"] == []


def test_a_migration_that_fails_leaves_the_old_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "old.duckdb"
    _v1_store(store)
    broken = {1: [*schema.MIGRATIONS[1], "ALTER TABLE no_such_table ADD COLUMN x INTEGER"]}
    monkeypatch.setattr(schema, "MIGRATIONS", broken)
    monkeypatch.setenv("PCAP_AUDIT_DEBUG", "")
    res = run("history", "--store", str(store))
    assert res.exit_code == ExitCode.INTERNAL
    assert query(store, "SELECT value FROM pcap_audit_meta WHERE key = 'schema_version'") == [
        ("1",)
    ]
    columns = [r[0] for r in query(store, "DESCRIBE runs")]
    assert "waivers_path" not in columns  # the first statements were rolled back too


def _foreign(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "store.duckdb"
    if kind == "text":
        path.write_text("hello, not a database\n")
    elif kind == "capture":
        shutil.copy(AL / "clean.pcap", path)
    else:
        with duckdb.connect(str(path)) as con:
            if kind == "other_app":
                con.execute("CREATE TABLE invoices (id INTEGER, amount DOUBLE)")
            elif kind == "newer":
                con.execute("CREATE TABLE pcap_audit_meta (key VARCHAR, value VARCHAR)")
                con.execute(
                    "INSERT INTO pcap_audit_meta VALUES ('application', ?), ('schema_version', '9')",
                    [schema.APPLICATION],
                )
    return path


FOREIGN = {
    "text": "not a pcap-audit store: not a DuckDB database file",
    "capture": "not a pcap-audit store: not a DuckDB database file",
    "other_app": "not a pcap-audit store: a DuckDB database of another application",
    "newer": "written by a newer pcap-audit (store schema 9; this one reads up to 2): upgrade pcap-audit",
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize("command", ["audit", "history", "diff"])
def test_a_foreign_file_is_refused_and_left_alone(tmp_path: Path, kind: str, command: str) -> None:
    path = _foreign(tmp_path, kind)
    before = sha(path)
    if command == "audit":
        res = run(str(AL / "clean.pcap"), *AL_ARGS, "--store", str(path))
        assert res.stdout == ""  # refused before auditing
    else:
        res = run(command, "--store", str(path))
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res) == f"pcap-audit: {path}: {FOREIGN[kind]}"
    assert sha(path) == before


def test_missing_stores(tmp_path: Path) -> None:
    res = run("history", "--store", str(tmp_path / "none.duckdb"))
    assert res.exit_code == ExitCode.USAGE
    assert one_line(res) == (
        f"pcap-audit: {tmp_path / 'none.duckdb'}: no such store (an audit with --store creates it)"
    )
    res = run(str(AL / "clean.pcap"), *AL_ARGS, "--store", str(tmp_path / "no" / "s.duckdb"))
    assert res.exit_code == ExitCode.USAGE
    assert "its directory does not exist" in one_line(res)


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    store.touch()  # mktemp
    audit(AL / "clean.pcap", store)
    assert len(history(store)) == 1


def test_the_cli_does_not_import_duckdb_for_store_commands_until_used() -> None:
    code = "import auditor.cli.main, sys; print('duckdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_history_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    store, _, _ = _two_nights(tmp_path)
    page = tmp_path / "history.html"
    assert run("history", "--store", str(store), "--format", "html", "-o", str(page)).exit_code == 0
    width, height, pixels = png_pixels(screenshot(page, tmp_path, 1200, 1400))
    assert (width, height) == (1200, 1400)
    assert len(set(pixels[::101])) > 50  # not a blank page


def test_history_html_escapes_what_came_from_the_wire() -> None:
    from auditor.report.history import render_html
    from auditor.store.diff import FlowAggregate, Side, compare
    from auditor.store.history import RunSummary

    evil = "<script>alert(1)</script>\u202e"
    runs = [
        RunSummary(1, "2026-01-01T00:00:00Z", 1, 10, 2, 1, {evil: 1}, {"high": 1}, 1, True, 0),
    ]
    finding = {"id": evil, "kind": evil, "severity": "high", "src_ip": evil, "message": evil,
               "waiver": {"reason": evil}}  # fmt: skip
    flow = FlowAggregate(evil, evil, 80, evil, evil, 1, 1, 1)
    diff = compare(Side(id=1, started=evil), None, [finding], [], [flow], [])
    page = render_html(runs, evil, diff)
    assert "<script" not in page and "\u202e" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\u202e" in page


def test_running_out_of_memory_while_recording_leaves_the_store(tmp_path: Path) -> None:
    """DuckDB's own out-of-memory error, inside the run's transaction: a resource error
    saying what to change, the store as it was."""
    from auditor.store.db import StoreResourceError, open_store, transaction

    store = tmp_path / "s.duckdb"
    audit(AL / "clean.pcap", store)
    with open_store(store, write=True) as con:
        con.execute("SET memory_limit = '2MB'")
        with pytest.raises(StoreResourceError) as caught, transaction(con, store):
            con.execute("INSERT INTO runs (id, started, finished) VALUES (2, 'a', 'b')")
            con.execute(
                "INSERT INTO flows (run_id, src) SELECT 2, repeat('x', 1000) || i::VARCHAR "
                "FROM range(2000000) r(i) ORDER BY 2 DESC"
            )
    assert caught.value.one_line() == (
        f"{store}: the run is not recorded, the store is as it was: out of memory "
        "(give the process more memory)"
    )
    assert caught.value.exit_code == ExitCode.RESOURCE
    assert [r["id"] for r in history(store)] == [1]
    assert query(store, "SELECT count(*) FROM flows WHERE run_id = 2") == [(0,)]


def test_the_store_from_python(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from auditor import audit as run_audit
    from auditor import diff_runs, load_inventory, load_ruleset, load_waivers, record_run
    from auditor import history as runs_of

    store = tmp_path / "s.duckdb"
    waivers = tmp_path / "w.yaml"
    waivers.write_text(
        "waivers:\n- {id: PLA-2f95d12e4ab0, reason: r, owner: o, expires: 2999-01-01}\n"
    )
    ruleset = load_ruleset("applayering")
    inventory = load_inventory(AL / "findings.inventory.yaml", ruleset)
    for capture in ("clean.pcap", "findings.pcap"):
        result = run_audit([AL / capture], ruleset, inventory, waivers=load_waivers(waivers))
        recorded = record_run(store, result, started=datetime.now(UTC))
        assert recorded.new
    assert [r.id for r in runs_of(store)] == [1, 2]
    assert query(store, "SELECT waivers_sha256 FROM runs WHERE id = 2") == [(sha(waivers),)]
    diff = diff_runs(store)
    assert diff.baseline is not None and diff.baseline.id == 1
    assert any(f.waiver is not None for f in diff.new_findings)


def test_each_set_is_a_run(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    res = run(str(AL / "clean.pcap"), str(AL / "findings.pcap"), *AL_ARGS, "--each",
              "--store", str(store), "--format", "json")  # fmt: skip
    assert res.exit_code == ExitCode.FINDINGS, res.output
    assert f"{store}: recorded as run 1 (1 capture)" in res.stderr
    assert f"{store}: recorded as run 2 (1 capture)" in res.stderr
    assert [r["findings"] for r in history(store)] == [
        len(r["findings"]) for r in json.loads(res.stdout)["results"]
    ]


def test_a_run_with_a_capture_problem_is_kept_but_not_a_baseline(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    audit(AL / "clean.pcap", store)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((AL / "findings.pcap").read_bytes()[:5000])  # ends inside a record
    res = run(str(cut), *AL_ARGS, "--store", str(store), "--format", "json")
    assert res.exit_code & ExitCode.CAPTURE, res.output
    audit(AL / "findings.pcap", store)
    table = run("history", "--store", str(store)).stdout
    assert " ! " in table.splitlines()[2] and "not every capture" in table
    diff = json.loads(run("diff", "--store", str(store), "--format", "json").stdout)
    assert diff["run"]["id"] == 3 and diff["baseline"]["id"] == 1  # run 2 skipped
