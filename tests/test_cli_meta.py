"""The CLI's shape: every command documented with an example, and a core without click.

Like sqlite-utils' meta-test, this walks the command tree instead of listing commands, so
a new command without help fails here. The import contract (nothing below ``auditor/cli``
imports click) is checked in a fresh interpreter, where ``sys.modules`` is not shared with
the tests that do import the CLI.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from auditor.cli.main import cli
from auditor.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent


def _walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from _walk(command.commands[name], (*path, name))


COMMANDS = dict(_walk(cli, ("pcap-audit",)))


def test_the_tree_holds_every_command() -> None:
    assert {
        "pcap-audit",
        "pcap-audit audit",
        "pcap-audit diff",
        "pcap-audit history",
        "pcap-audit report",
        "pcap-audit flows",
        "pcap-audit roles",
        "pcap-audit rulesets",
        "pcap-audit rulesets list",
        "pcap-audit rulesets show",
        "pcap-audit rulesets validate",
    } <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(name: str) -> None:
    command = COMMANDS[name]
    assert command.help and command.help.strip(), f"{name}: no help text"
    assert command.get_short_help_str().strip(), f"{name}: no short help"
    assert "Example:" in command.help, f"{name}: help has no 'Example:'"
    example = command.help.split("Example:", 1)[1]
    assert "pcap-audit" in example, f"{name}: the example does not show a command line"
    # the example runs the command it documents
    words = name.split()[1:]
    assert all(w in example for w in words), f"{name}: the example is for another command"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_prints_its_help(name: str) -> None:
    args = [*name.split()[1:], "--help"]
    res = CliRunner().invoke(cli, args, prog_name="pcap-audit")
    assert res.exit_code == 0, res.output
    assert "Example:" in res.stdout
    assert res.stdout.startswith("Usage: pcap-audit")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_or_is_obvious(name: str) -> None:
    obvious = {"help", "version", "fmt", "output"}  # choices or standard meaning
    for param in COMMANDS[name].params:
        if isinstance(param, click.Option) and param.name not in obvious:
            assert param.help or isinstance(param.type, click.Choice), (name, param.name)


def test_core_does_not_import_click() -> None:
    code = (
        "import auditor.findings.engine, auditor.flows, auditor.roles, auditor.report, sys; "
        "assert 'click' not in sys.modules, sorted(m for m in sys.modules if 'click' in m)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr


def test_the_import_check_can_fail() -> None:
    code = "import auditor.cli.main, sys; assert 'click' not in sys.modules"
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode != 0 and "AssertionError" in res.stderr


def test_a_bug_is_one_line_and_exit_code_internal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An unexpected exception (a bug, not bad input) still gives one stderr line, no traceback."""
    import auditor.cli.audit as audit_cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(audit_cli, "audit", broken)
    monkeypatch.delenv("PCAP_AUDIT_DEBUG", raising=False)
    sample = Path(__file__).resolve().parent.parent / "samples" / "uforge" / "clean.pcap"
    res = CliRunner().invoke(cli, [str(sample), "--ruleset", "uforge"])
    assert res.exit_code == ExitCode.INTERNAL == 16
    assert res.stderr.strip().splitlines() == [
        "pcap-audit: internal error: RuntimeError: boom "
        "(a bug in pcap-audit; PCAP_AUDIT_DEBUG=1 shows the traceback)"
    ]
    assert "Traceback" not in res.output
