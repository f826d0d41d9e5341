"""Rulesets and inventories written by someone else: refused quickly, in bounded memory.

Each hostile file goes through the command line (exit USAGE, one line naming the file and
the line) and, for the expansion bombs, through a child process under an address-space
limit and a timeout: before the bounds, a few hundred bytes of nested aliases grew a
process to 20 GB.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli.main import cli
from auditor.errors import ExitCode, InventoryError, RulesetError
from auditor.rules import check_ruleset, load_inventory, load_ruleset
from auditor.rules.validate import MAX_CONTRADICTIONS
from auditor.rules.yamlmarks import (
    EXCERPT_CHARS,
    MAX_ALIAS_NODES,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_RULESET_BYTES,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = str(ROOT / "samples" / "applayering" / "findings.pcap")


def _laughs(levels: int = 9, top: str = "") -> str:
    """The "billion laughs": each level is nine aliases of the one before (9**levels)."""
    text = top + "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, levels + 1):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    return text


def _run(args: list[str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, args)
    return res.exit_code, res.stdout, res.stderr


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


HOSTILE_RULESETS = {
    "bomb.yaml": (_laughs(), "bomb.yaml:5: l4[0]: aliases expand to more than"),
    "bomb_as_value.yaml": (
        _laughs(top="name: x\n") + "flows: [*l9]\n",
        "bomb_as_value.yaml:6: l4[0]: aliases expand to more than",
    ),
    "deep_flow.yaml": (
        "[" * 10_000 + "]" * 10_000,
        f"deep_flow.yaml:1: nested more than {MAX_DEPTH} levels deep; refused",
    ),
    "deep_block.yaml": (
        "- " * 10_000 + "x\n",
        f"deep_block.yaml:1: nested more than {MAX_DEPTH} levels deep; refused",
    ),
    "deep_nested.yaml": ("- " * 500 + "x\n", f"nested more than {MAX_DEPTH} levels"),
    "deep_mapping.yaml": (
        "".join(" " * i + f"k{i}:\n" for i in range(200)),
        f"deep_mapping.yaml:{MAX_DEPTH + 2}: nested more than {MAX_DEPTH} levels",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_RULESETS))
def test_hostile_ruleset_is_a_usage_error(name: str, tmp_path: Path) -> None:
    text, expected = HOSTILE_RULESETS[name]
    path = tmp_path / name
    path.write_text(text)
    started = time.monotonic()
    code, out, err = _run([SAMPLE, "--ruleset", str(path)])
    assert time.monotonic() - started < 5
    assert code == ExitCode.USAGE
    assert out == ""
    assert expected in _one_line(err)


HOSTILE_INVENTORIES = {
    "bomb.yaml": "roles:\n  agent: [10.0.0.1]\n" + _laughs(),
    "deep_nested.yaml": "roles:\n  agent: " + "[" * 500 + "]" * 500 + "\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_INVENTORIES))
def test_hostile_inventory_is_a_usage_error(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(HOSTILE_INVENTORIES[name])
    code, out, err = _run([SAMPLE, "-r", "applayering", "-i", str(path)])
    assert code == ExitCode.USAGE and out == ""
    line = _one_line(err)
    assert f"{name}:" in line and ("aliases expand" in line or "nested more than" in line)


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        "roles:\n  agent: &agents [10.0.0.20, 10.0.0.21]\n  pvs_agent: *agents\n"
        "  appliance: &one 10.0.0.10\n  admin: [*one]\n"
    )
    inv = load_inventory(path, "applayering")
    assert inv.entries("pvs_agent") == ("10.0.0.20", "10.0.0.21")
    assert inv.entries("admin") == ("10.0.0.10",)


def test_alias_bound_is_on_expansion_not_on_size(tmp_path: Path) -> None:
    """Just under the bound loads (as a YAML error of another kind), just over is refused."""
    per = 100
    anchor = "a: &a [" + ", ".join(["x"] * per) + "]\n"
    ok = anchor + "b: [" + ", ".join(["*a"] * (MAX_ALIAS_NODES // (per + 1))) + "]\n"
    over = anchor + "b: [" + ", ".join(["*a"] * (MAX_ALIAS_NODES // (per + 1) + 1)) + "]\n"
    (tmp_path / "ok.yaml").write_text(ok)
    (tmp_path / "over.yaml").write_text(over)
    with pytest.raises(RulesetError, match="unknown key 'a'"):
        load_ruleset(tmp_path / "ok.yaml")
    with pytest.raises(RulesetError, match="aliases expand"):
        load_ruleset(tmp_path / "over.yaml")


def test_one_long_text_repeated_by_aliases_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text("t: &t " + "x" * 200_000 + "\nrepeat: [" + ", ".join(["*t"] * 10) + "]\n")
    with pytest.raises(RulesetError, match="aliases expand to more than 1,000,000 characters"):
        load_ruleset(path)


BOMB_CHILD = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
from auditor.errors import AuditorError
from auditor.rules import check_ruleset, load_inventory, load_ruleset
from auditor.rules.validate import MAX_CONTRADICTIONS
started = time.monotonic()
try:
    if sys.argv[2] == "ruleset":
        load_ruleset(sys.argv[1])
    else:
        load_inventory(sys.argv[1], "applayering")
except AuditorError as exc:
    print(exc.exit_code, round(time.monotonic() - started, 3), exc.one_line())
"""


@pytest.mark.parametrize("kind", ["ruleset", "inventory"])
def test_alias_bomb_in_bounded_memory_and_time(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(("roles: {}\n" if kind == "inventory" else "") + _laughs(levels=12))
    res = subprocess.run(
        [sys.executable, "-c", BOMB_CHILD, str(path), kind],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    code, seconds, message = res.stdout.split(" ", 2)
    assert int(code) == ExitCode.USAGE
    assert float(seconds) < 10  # generous: measured ~0.05 s; unbounded, it ran for minutes
    assert "aliases expand to more than" in message


def test_not_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opened for reading, a FIFO would wait for a writer forever
    cases = {
        "/dev/zero": "/dev/zero: is a device, expected a regular file",
        str(fifo): "pipe.yaml: is a FIFO (named pipe), expected a regular file",
    }
    for path, expected in cases.items():
        for args in (["-r", path], ["-r", "applayering", "-i", path]):
            code, _, err = _run([SAMPLE, *args])
            assert code == ExitCode.USAGE, (args, err)
            assert _one_line(err).endswith(expected), (args, err)
    code, _, err = _run([SAMPLE, "-r", str(tmp_path) + "/"])
    assert code == ExitCode.USAGE
    assert _one_line(err).endswith("is a directory, expected a file")
    code, _, err = _run([SAMPLE, "-r", "applayering", "-i", str(tmp_path)])
    assert code == ExitCode.USAGE and "is a directory" in err  # click checks this one


def test_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: no disk used
    started = time.monotonic()
    with pytest.raises(InventoryError, match=f"larger than {MAX_BYTES:,} bytes"):
        load_inventory(path, "applayering")
    with pytest.raises(RulesetError, match=f"larger than {MAX_RULESET_BYTES:,} bytes"):
        load_ruleset(path)
    assert time.monotonic() - started < 2


def test_errors_quote_a_short_excerpt_only() -> None:
    code, _, err = _run([SAMPLE, "-r", "/etc/passwd"])
    if not Path("/etc/passwd").is_file():
        pytest.skip("no /etc/passwd here")
    assert code == ExitCode.USAGE
    line = _one_line(err)
    assert line.startswith("pcap-audit: /etc/passwd:1: expected a mapping")
    quoted = line.split(", got ", 1)[1]
    assert len(quoted) <= EXCERPT_CHARS + 2 and quoted.endswith("...'")


def test_long_keys_and_entries_are_cut(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("roles:\n  agent: [" + "x" * 100_000 + ".example.com]\n")
    with pytest.raises(InventoryError) as err:
        load_inventory(path, "applayering")
    assert len(err.value.one_line()) < 400
    path.write_text("roles:\n  " + "k" * 100_000 + ": []\n")
    with pytest.raises(InventoryError) as err:
        load_inventory(path, "applayering")
    assert len(err.value.one_line()) < 600


@pytest.mark.parametrize("entry", ["fe80::1%eth0", "fe80::/64%eth0"])
def test_zone_index_is_a_usage_error_with_line(entry: str, tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(f'roles:\n  agent:\n    - 10.0.0.1\n    - "{entry}"\n')
    code, _, err = _run([SAMPLE, "-r", "applayering", "-i", str(path)])
    assert code == ExitCode.USAGE
    line = _one_line(err)
    assert "inv.yaml:4: roles.agent[1]:" in line
    assert "zone index" in line
    csv = tmp_path / "inv.csv"
    csv.write_text(f"role,entry\nagent,10.0.0.1\nagent,{entry}\n")
    code, _, err = _run([SAMPLE, "-r", "applayering", "-i", str(csv)])
    assert code == ExitCode.USAGE
    assert "inv.csv:3: " in _one_line(err)


def test_memory_limit_of_the_child_is_real() -> None:
    """The bomb test's limit bites: the same child allocating 4 GB fails."""
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))\n"
        "b = bytearray(1 << 32)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode != 0 and "MemoryError" in res.stderr
    assert resource.RLIM_INFINITY != 1 << 31


def _many_rules_ruleset(path: Path, n: int, contradict: bool) -> None:
    """``n`` rules on one role pair; with ``contradict``, cleartext and TLS alternate on
    overlapping ports (every pair of neighbours contradicts)."""
    head = (ROOT / "rulesets" / "uforge.yaml").read_text().split("\nflows:", 1)[0]
    rules = []
    for i in range(n):
        port = 1000 + (i // 2 if contradict else i)
        security = ("none" if i % 2 else "tls") if contradict else "tls"
        rules.append(
            f"  - id: r{i}\n    from: uforge\n    to: openstack\n    ports: [{port}]\n"
            f"    app: https\n    security: {security}\n    source:\n"
            "      document: 001_103fc8321c5bb4d4.txt\n      section: s\n      text: t\n"
        )
    path.write_text(head + "\nflows:\n" + "".join(rules))


def test_thousands_of_rules_validate_in_time_proportional_to_size(tmp_path: Path) -> None:
    """Contradictions were looked for between every pair of rules: 8,000 rules on one role
    pair took 130 s. A generous bound; measured about 1 s for 6,000."""
    path = tmp_path / "many.yaml"
    _many_rules_ruleset(path, 6000, contradict=False)
    started = time.process_time()
    result = check_ruleset(path)
    assert time.process_time() - started < 30
    assert result.ruleset is not None and len(result.ruleset.flows) == 6000
    assert not result.errors


def test_contradictions_listed_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "contradictions.yaml"
    _many_rules_ruleset(path, 2 * (MAX_CONTRADICTIONS + 50), contradict=True)
    errors = check_ruleset(path).errors
    assert len([e for e in errors if "contradicts rule" in e.message]) == MAX_CONTRADICTIONS
    assert errors[-1].message.startswith(f"more than {MAX_CONTRADICTIONS} contradictions")


def test_thousands_of_roles(tmp_path: Path) -> None:
    """Each role's derived hints scanned every rule, and each check scanned every role:
    4,000 roles and rules took 3.6 s, 20,000 (inside the size bound) minutes. The bound here
    is generous; what this checks is the result."""
    n = 3000
    head = (ROOT / "rulesets" / "uforge.yaml").read_text().split("\nroles:", 1)[0]
    roles = "".join(f"  - id: r{i}\n    description: d\n" for i in range(n))
    flows = "".join(
        f"  - id: f{i}\n    from: r{i}\n    to: r{(i + 1) % n}\n    ports: [{1 + i}]\n"
        "    app: https\n    security: tls\n    source:\n"
        "      document: 001_103fc8321c5bb4d4.txt\n      section: s\n      text: t\n"
        for i in range(n)
    )
    path = tmp_path / "roles.yaml"
    path.write_text(
        head
        + "\nroles:\n"
        + roles
        + "flows:\n"
        + flows
        + flows.replace("to: r", "to: nobody_r", 1)
        .split("  - id: f1\n", 1)[0]
        .replace("id: f0", "id: g0")
    )
    started = time.process_time()
    result = check_ruleset(path)
    assert time.process_time() - started < 30  # measured about 0.7 s
    (error,) = result.errors
    assert error.message.startswith("unknown role 'nobody_r1'; known roles: r0, r1, r2")
    assert f"... ({n:,} in all)" in error.message
    assert result.ruleset is not None
    assert result.ruleset.role("r1").hints.serves == (("tcp", 1, 1),)


def test_csv_inventory_with_a_huge_field(tmp_path: Path) -> None:
    path = tmp_path / "inv.csv"
    path.write_text("role,entry\nagent," + "x" * 200_000 + "\n")
    code, _, err = _run([SAMPLE, "-r", "applayering", "-i", str(path)])
    assert code == ExitCode.USAGE
    assert "inv.csv:2: not a CSV row: field larger than field limit" in _one_line(err)


@pytest.mark.parametrize(
    "text", ["name: x\nports: " + "9" * 5000 + "\n", "name: x\ntitle: 2001-02-30\n"]
)
def test_values_python_will_not_make(text: str, tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    code, _, err = _run(["rulesets", "validate", str(path)])
    assert code == ExitCode.USAGE
    assert "odd.yaml:2: " in err and "unreadable value" in err
