"""The ``pcap-audit`` command: a group whose default command is the audit itself.

``pcap-audit capture.pcap --ruleset applayering`` runs ``audit``; ``flows``, ``roles`` and
``rulesets`` are subcommands. Each command lives in its own module and only parses options,
calls one library function and renders its result. The console script that runs it is
:mod:`auditor.cli.entry`.
"""

from __future__ import annotations

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
    --ruleset, --inventory, --format, -o, --fail-on, --each, --dedup, --jobs, -q). CAPTURE is a
    file, a directory (captures found by content) or - (standard input).

    Example:

        pcap-audit capture.pcap --ruleset applayering --inventory hosts.yaml
    """


def _register() -> None:
    from auditor.cli import (
        audit,
        diff,
        flows,
        history,
        query,
        report,
        roles,
        rulesets,
        show,
        verify,
    )

    for module in (audit, flows, query, roles, rulesets, show, verify, history, diff, report):
        cli.add_command(module.command)


_register()
