"""Exit codes and the exceptions that map onto them.

Every error a user can cause (bad capture, bad ruleset, bad inventory) is one of these
exceptions, carrying the file and the place in it; the CLI turns them into a one-line
message on stderr and the exit code below. Nothing here imports click.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0  #: no finding at or above --fail-on (or, for other commands, success)
    FINDINGS = 1  #: findings at or above --fail-on
    USAGE = 2  #: bad command line, ruleset or inventory
    CAPTURE = 3  #: a capture could not be read (others were still processed)
    INTERNAL = 4  #: a bug in pcap-audit: one line on stderr (PCAP_AUDIT_DEBUG=1 for the traceback)
    RESOURCE = 8  #: out of memory or disk (DuckDB's included): what to change, in one line
    INTERRUPTED = 130  #: SIGINT (128 + 2), one line on stderr
    TERMINATED = 143  #: SIGTERM (128 + 15), one line on stderr


class AuditorError(Exception):
    """Base class: a user-facing error with a file and a place in it."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, path: object, message: str, where: str | None = None) -> None:
        self.path = str(path)
        self.where = where
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        place = f":{self.where}" if self.where else ""
        return f"{self.path}{place}: {self.message}"


class CaptureError(AuditorError):
    """A capture file that cannot be read at all (missing, empty, not a capture, ...)."""

    exit_code = ExitCode.CAPTURE


class ResourceError(AuditorError):
    """Out of memory or disk space, with what the user can change."""

    exit_code = ExitCode.RESOURCE


class RulesetError(AuditorError):
    """A ruleset that does not parse or validate, or an unknown ruleset name."""

    exit_code = ExitCode.USAGE


class InventoryError(AuditorError):
    """An inventory that does not parse or validate."""

    exit_code = ExitCode.USAGE
