"""What every command shares: turning library errors into one line on stderr and an exit code.

Three kinds of failure, three codes: bad input (the library's :class:`AuditorError`, with
file and place), the machine running out of memory or disk (:data:`ExitCode.RESOURCE`,
saying what to change: DuckDB's own out-of-memory and I/O errors included, which are not
bugs), and bugs (:data:`ExitCode.INTERNAL`). Interrupts: :mod:`auditor.cli.signals`.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from auditor.cli.signals import Interrupted, received
from auditor.errors import AuditorError, ExitCode
from auditor.escape import printable
from auditor.flows import FLOW_LIMIT

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: ExitCode) -> None:
    """Print one diagnostic line on stderr and leave with ``code``. The message may quote
    file names and content from the wire: control characters are shown escaped."""
    click.echo(f"pcap-audit: {printable(message)}", err=True)
    sys.exit(int(code))


def warn(message: str) -> None:
    """One diagnostic line on stderr (a capture that could not be read, ...), escaped."""
    click.echo(f"pcap-audit: {printable(message)}", err=True)


def resource_problem(exc: BaseException) -> str | None:
    """What to change, when ``exc`` is the machine running out of memory or disk."""
    name = type(exc).__name__
    text = " ".join(str(exc).split()).split(" Possible solutions")[0][:160]
    if name == "OutOfMemoryException":  # DuckDB's
        from auditor import duck

        limit, chosen = duck.memory_limit()
        change = (
            f"raise --memory-limit (now {limit})"
            if chosen
            else "set --memory-limit below the memory this process may use, so that DuckDB "
            "spills to --temp-dir instead"
        )
        return f"DuckDB ran out of memory ({text}): {change}, use fewer --threads, or audit fewer captures at once"
    if isinstance(exc, MemoryError):
        return (
            f"out of memory ({name}{': ' + text if text else ''}): audit fewer captures at "
            "once, free memory, or raise the process's memory limit (ulimit -v)"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"no space left on device{where}; free space or point --temp-dir elsewhere"
    if name == "IOException" and ("No space left" in text or "disk" in text.lower()):
        return (
            f"DuckDB ran out of disk space ({text[:200]}); free space or point --temp-dir "
            "at a larger file system"
        )
    return None


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
        except Exception as exc:  # a bug or the machine (memory, disk), not bad input
            signum = received()
            if signum is not None:  # a library (DuckDB) turned our interrupt into its own
                raise Interrupted(signum) from None
            if os.environ.get("PCAP_AUDIT_DEBUG"):
                raise
            why = resource_problem(exc)
            if why is not None:
                fail(why, ExitCode.RESOURCE)
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


#: --flow-limit N, shared by audit and flows
flow_limit_option = click.option(
    "--flow-limit",
    type=click.IntRange(min=1),
    default=FLOW_LIMIT,
    show_default=True,
    metavar="N",
    help="Live flows held in memory; beyond N the least recently seen are spilled to a "
    "temporary file (under --temp-dir) and merged back: the output is the same for any N.",
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


_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*([KMGT]i?B|B)\s*$", re.IGNORECASE)


def _duck_settings(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Collect --memory-limit/--threads/--temp-dir and hand them to auditor.duck."""
    from auditor import duck

    if param.name == "memory_limit" and value is not None and not _MEMORY.match(value):
        raise click.BadParameter(f"{value!r}: expected a size such as 512MB, 2GB or 1.5GiB")
    settings = ctx.meta.setdefault("duck", {})
    if value is not None:
        settings[param.name] = value
    duck.configure(duck.Settings(**settings))
    return value


def duckdb_options(func: F) -> F:
    """--memory-limit, --threads, --temp-dir: the audit's SQL engine (DuckDB) settings."""
    for option in reversed(
        (
            click.option(
                "--memory-limit",
                metavar="SIZE",
                callback=_duck_settings,
                expose_value=False,
                help="Memory DuckDB may use before it spills to --temp-dir (512MB, 2GB). "
                "Default: a quarter of the process's address-space limit (ulimit -v), "
                "else DuckDB's 80% of RAM.",
            ),
            click.option(
                "--threads",
                type=click.IntRange(1, 256),
                callback=_duck_settings,
                expose_value=False,
                help="Threads DuckDB may use (default 1: results in a fixed order).",
            ),
            click.option(
                "--temp-dir",
                type=click.Path(file_okay=False),
                callback=_duck_settings,
                expose_value=False,
                help="Where DuckDB spills when over --memory-limit (default: .tmp here).",
            ),
        )
    ):
        func = option(func)
    return func


def inventory_option(help_text: str) -> Callable[[F], F]:
    """--inventory FILE, with the command's own help text."""
    return click.option(
        "-i", "--inventory", type=click.Path(dir_okay=False), metavar="FILE", help=help_text
    )


def note(message: str) -> None:
    """A one-line note on stderr (waiting for a store, a migration, a run recorded)."""
    click.echo(f"pcap-audit: {message}", err=True)


def waiver_warnings(document: Any) -> list[str]:
    """The warnings of an audit's waivers (expired ones), from its document (typed, or a
    saved result's dict)."""
    from auditor.findings.waivers import expired_warnings

    if isinstance(document, Mapping):
        return expired_warnings(document.get("waivers"))
    return expired_warnings(document.waivers)


def check_store(store: str) -> None:
    """Refuse a --store that is not (and cannot become) a store before auditing."""
    from auditor.store.db import check_store as check

    check(store)


def record_in_store(
    store: str, result: Any, started: Any, inventory: str | None, waivers: str | None
) -> None:
    """Record an audit in ``store`` and say so on stderr (DuckDB is imported only now)."""
    from auditor.store.record import record_run

    recorded = record_run(
        store, result, started=started, inventory=inventory, waivers=waivers, notify=note
    )
    note(recorded.note(store))


def write_or_emit(text: str, output: str | None) -> None:
    """``text`` to the file ``output``, else to stdout; a file that cannot be written is
    one line and exit USAGE."""
    if not output:
        emit(text)
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        fail(f"{output}: cannot write the output: {exc.strerror or exc}", ExitCode.USAGE)


#: --store PATH for the commands that read a store
store_option = click.option(
    "--store",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="The store of runs (a DuckDB file written by an audit with --store).",
)
