"""What every command shares: turning library errors into one line on stderr and an exit code."""

from __future__ import annotations

import functools
import os
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
        except BrokenPipeError:  # the reader went away before the end (`| head`)
            _quiet_stdout()
            sys.exit(0)
        except (
            KeyboardInterrupt,
            SystemExit,
            click.exceptions.Exit,
            click.ClickException,
            click.Abort,
        ):
            raise
        except Exception as exc:  # a bug, not bad input: still one line, and its own code
            if os.environ.get("PCAP_AUDIT_DEBUG"):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {exc} "
                "(a bug in pcap-audit; PCAP_AUDIT_DEBUG=1 shows the traceback)",
                ExitCode.INTERNAL,
            )

    return wrapper  # type: ignore[return-value]


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that Python's exit-time flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def emit(text: str) -> None:
    """Write a command's output to stdout; a closed pipe stops the output, not the command
    (which still leaves with its own exit code)."""
    try:
        click.echo(text, nl=False)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()


#: CAPTURE... argument shared by the commands that read captures
captures_argument = click.argument("captures", nargs=-1, required=True, type=click.Path())

#: -q/--quiet, shared by the commands that read captures
quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="No progress line on stderr (diagnostics still go there)."
)


#: --jobs N, shared by audit and flows
jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1, max=256),
    default=None,
    metavar="N",
    help="Decode N captures, or parts of a large pcap file, at once; the output is the "
    "same for any N.  [default: the machine's cores]",
)


#: --dedup, shared by audit and flows
def dedup_options(func: F) -> F:
    """--dedup and --dedup-window SECONDS; the command gets ``dedup: float | None``."""
    func = click.option(
        "--dedup-window",
        type=click.FloatRange(min=0, min_open=True, max=10),
        default=0.01,
        show_default=True,
        metavar="SECONDS",
        help="With --dedup: a packet seen again within this time is a duplicate.",
    )(func)
    return click.option(
        "--dedup",
        is_flag=True,
        help="Drop SPAN duplicates (the same IP packet seen again within --dedup-window), "
        "counted in the summary.",
    )(func)


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
