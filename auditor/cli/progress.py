"""Progress on stderr while captures are read: one line, rewritten in place.

Only on a terminal (never into a log or a pipe, where it would be noise) and not with
``-q``. Within one large file too: bytes read of the file's size, packets per second and
the time left, at most four times a second; for a pipe, the bytes and the rate. The line is
cleared before anything else is written to stderr.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from auditor.units import human_bytes

if TYPE_CHECKING:
    from auditor.traffic import Reading

__all__ = ["ProgressLine", "progress_for"]

INTERVAL_S = 0.25  #: the line is rewritten at most this often


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def _rate(per_s: float) -> str:
    if per_s >= 1e6:
        return f"{per_s / 1e6:.1f} M"
    if per_s >= 1e3:
        return f"{per_s / 1e3:.0f} k"
    return f"{per_s:.0f}"


class ProgressLine:
    """A callable for ``read_traffic(progress=...)`` that draws the progress line."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.started = 0.0
        self.shown = -INTERVAL_S
        self.current: tuple[str, int] | None = None
        self.width = 0

    def __call__(self, r: Reading) -> None:
        now = self.clock()
        if self.current != (r.path, r.index):  # a new capture: its own clock
            self.current = (r.path, r.index)
            self.started = now
        elif now - self.shown < INTERVAL_S:
            return
        self.shown = now
        self._draw(self.text(r, now - self.started))

    def text(self, r: Reading, elapsed: float) -> str:
        """The line for ``r``, ``elapsed`` seconds into its capture."""
        head = f"reading {r.path}" + (f" ({r.index + 1}/{r.count})" if r.count > 1 else "")
        if not r.packets:
            return head
        parts = [f"{human_bytes(r.done)}" + (f" of {human_bytes(r.total)}" if r.total else "")]
        if elapsed > 0:
            parts.append(f"{_rate(r.packets / elapsed)} packets/s")
            if r.total and r.done:
                left = elapsed * (r.total - r.done) / r.done
                parts.append(f"ETA {_clock(left)}")
        return f"{head}: {', '.join(parts)}"

    def _draw(self, text: str) -> None:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns or 100
        except (OSError, ValueError, AttributeError):
            columns = 100
        text = text[: max(columns - 1, 10)]
        self.stream.write("\r" + text + " " * max(self.width - len(text), 0) + "\r")
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        """Remove the line (before the diagnostics are written)."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def progress_for(stream: TextIO, quiet: bool) -> ProgressLine | None:
    """A progress line on ``stream`` when it is a terminal and ``-q`` was not given."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if quiet or not tty or os.environ.get("TERM") == "dumb":
        return None
    return ProgressLine(stream)
