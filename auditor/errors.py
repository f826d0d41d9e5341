"""Exit codes and the exceptions that map onto them.

Every error a user can cause (bad capture, bad ruleset, bad inventory) is one of these
exceptions, carrying the file and the place in it; the CLI turns them into a one-line
message on stderr and the exit code below. Nothing here imports click.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntFlag


class ExitCode(IntFlag):
    """Documented process exit codes (README, "Exit codes").

    Bit flags, as fsck's: a run that found problems *and* could not read all of its input
    says both (``FINDINGS | CAPTURE`` is 5), so alerting on either bit never misses the
    other. USAGE, RESOURCE and INTERNAL end a run and stand alone; 130 and 143 are the
    shell's numbers for a run ended by SIGINT and SIGTERM (not bit-ors of the others).
    """

    OK = 0  #: no finding at or above --fail-on, every capture read whole
    FINDINGS = 1  #: findings at or above --fail-on
    USAGE = 2  #: bad command line, ruleset, inventory or output path: nothing audited
    CAPTURE = 4  #: some traffic given may not have been audited (not read, cut, skipped)
    RESOURCE = 8  #: out of memory or disk (DuckDB's included), with what to change
    INTERNAL = 16  #: a bug in pcap-audit: one line on stderr (PCAP_AUDIT_DEBUG=1: traceback)
    INTERRUPTED = 130  #: ended by SIGINT (128 + 2)
    TERMINATED = 143  #: ended by SIGTERM (128 + 15)


def combine(codes: Iterable[ExitCode]) -> ExitCode:
    """The bit-or of the FINDINGS and CAPTURE bits of several results (``--each``)."""
    out = ExitCode.OK
    for code in codes:
        out |= code & (ExitCode.FINDINGS | ExitCode.CAPTURE)
    return out


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


class RulesetError(AuditorError):
    """A ruleset that does not parse or validate, or an unknown ruleset name."""

    exit_code = ExitCode.USAGE


class InventoryError(AuditorError):
    """An inventory that does not parse or validate."""

    exit_code = ExitCode.USAGE
