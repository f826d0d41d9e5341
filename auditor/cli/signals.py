"""SIGINT and SIGTERM as an exception, so that an interrupted run cleans up and says so.

The console script installs the handlers first thing, before the heavy imports. The
exception is a ``BaseException``: nothing that catches ``Exception`` on the way (the
commands' error handling, click) swallows it, and every ``with`` block on the way out runs
(the ``-o`` temporary file is removed). The process then leaves with 130 or 143 and one
line on stderr. Standard library only: this module is imported before everything else.
"""

from __future__ import annotations

import signal
from types import FrameType

from auditor.errors import ExitCode

_received: list[int] = []


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived while the command ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.TERMINATED if self.signum == signal.SIGTERM else ExitCode.INTERRUPTED

    def one_line(self) -> str:
        what = "terminated" if self.signum == signal.SIGTERM else "interrupted"
        return (
            f"{what} by {signal.Signals(self.signum).name}; no output file was written or replaced"
        )


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _received:  # a second signal while cleaning up: the first one decides
        return
    _received.append(signum)
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)


def ignore_signals() -> None:
    """The work is done and written: a late signal changes nothing any more."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def received() -> int | None:
    """The signal that arrived, if one did (a library may have turned the exception into
    its own: DuckDB reports an interrupted query as its InterruptException)."""
    return _received[0] if _received else None
