"""What every command shares: turning library errors into one line on stderr and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from auditor.errors import AuditorError, ExitCode

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: ExitCode) -> None:
    """Print one diagnostic line on stderr and leave with ``code``."""
    click.echo(f"pcap-audit: {message}", err=True)
    sys.exit(int(code))


def handle_errors(func: F) -> F:
    """Run a command body; a user-facing AuditorError becomes one stderr line and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AuditorError as exc:
            fail(exc.one_line(), exc.exit_code)
        except BrokenPipeError:
            sys.exit(0)

    return wrapper  # type: ignore[return-value]


#: CAPTURE... argument shared by the commands that read captures
captures_argument = click.argument("captures", nargs=-1, required=True, type=click.Path())

#: --ruleset, shared by audit and roles
ruleset_option = click.option(
    "-r",
    "--ruleset",
    "ruleset_name",
    required=True,
    metavar="NAME|PATH",
    help="A built-in ruleset (applayering, uforge, tas-diego) or a YAML file.",
)


def inventory_option(help_text: str) -> Callable[[F], F]:
    """--inventory FILE, with the command's own help text."""
    return click.option(
        "-i", "--inventory", type=click.Path(dir_okay=False), metavar="FILE", help=help_text
    )
