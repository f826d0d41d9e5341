"""The ``pcap-audit`` command: a group whose default command is the audit itself.

``pcap-audit capture.pcap --ruleset applayering`` runs ``audit``; ``flows``, ``roles`` and
``rulesets`` are subcommands. Each command lives in its own module and only parses options,
calls one library function and renders its result.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click

from auditor import __version__


class DefaultGroup(click.Group):
    """A group that runs ``audit`` when the first argument is not a subcommand."""

    default_command = "audit"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args.insert(0, self.default_command)
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: Any) -> None:
        formatter.write(
            "Usage: pcap-audit CAPTURE... --ruleset NAME|PATH [OPTIONS]\n"
            "       pcap-audit COMMAND [ARGS]...\n"
        )


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pcap-audit")
def cli() -> None:
    """Check packet captures against a vendor's documented network flows.

    Without a command, CAPTURE... is audited ('pcap-audit audit --help' lists the options:
    --ruleset, --inventory, --format, -o, --fail-on).

    Example:

        pcap-audit capture.pcap --ruleset applayering --inventory hosts.yaml
    """


def main() -> None:
    """The console script. After the command, the process ends with ``os._exit`` once the
    output is flushed: tearing the interpreter down (freeing the flow table and the pyarrow,
    numpy and DuckDB objects one by one) costs 30-40 ms of every run and does nothing for the
    user. Output files are closed by then; ``cli`` itself (tests, embedding) exits normally."""
    try:
        cli()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): Python prints it, exit status 1
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # the reader went away: nothing to do
            stream.flush()
    os._exit(code)


def _register() -> None:
    from auditor.cli import audit, flows, query, roles, rulesets, show, verify

    for module in (audit, flows, query, roles, rulesets, show, verify):
        cli.add_command(module.command)


_register()
