"""Commands that need no SQL do not load DuckDB (its import costs ~0.1 s of every run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(code: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('duckdb' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip() == "True"


def test_the_cli_and_the_flow_reader_do_not_import_duckdb() -> None:
    assert not _loaded_after("import auditor.cli.main")
    assert not _loaded_after("from auditor.traffic import read_traffic")


def test_the_audit_opens_duckdb_when_it_needs_it() -> None:
    assert _loaded_after("from auditor import duck\nduck.cursor().execute('select 1')")


def test_an_audit_does_not_load_pyarrow_compute() -> None:
    """pyarrow.compute costs ~45 ms to import; the audit's data path does without it."""
    code = (
        "from auditor import audit, load_ruleset\n"
        "from auditor.report import render\n"
        "r = audit(['samples/applayering/findings.pcap'], load_ruleset('applayering'))\n"
        "render(r.document, 'json')\n"
        "import sys\n"
        "print('pyarrow.compute' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"


def test_importing_auditor_changes_no_environment() -> None:
    """``import auditor`` (and the CLI module, and the API) leaves os.environ, the signal
    handlers and the process as they were; the console script sets what it needs."""
    code = (
        "import os, signal\n"
        "env = dict(os.environ); handlers = {s: signal.getsignal(s) for s in "
        "(signal.SIGINT, signal.SIGTERM)}\n"
        "import auditor, auditor.cli.main, auditor.capture, auditor.findings.engine\n"
        "from auditor import audit, load_ruleset\n"
        "assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())\n"
        "assert handlers == {s: signal.getsignal(s) for s in handlers}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ENTRY_SETS}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


#: what the console script (auditor.cli.entry) sets before the heavy imports
ENTRY_SETS = ("OPENBLAS_NUM_THREADS", "ARROW_DEFAULT_MEMORY_POOL")
