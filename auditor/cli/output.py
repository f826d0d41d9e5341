"""``-o FILE``: checked and opened before any capture is read, replaced only on success.

An audit of a night's captures takes minutes; finding out at the end that the report
cannot be written (a missing directory, a read-only mount) throws that away, and writing
the report over one of the captures destroys the input. So a command opens its output
first: a temporary file beside the target (same directory, so the final rename is atomic
and cannot cross file systems), which proves the directory writable. The report goes there
and is renamed over the target only when complete; an error or an interrupt removes it,
leaving the last good report where it was. A target that exists and is not a regular file
(``/dev/null``, ``/dev/stdout``, a FIFO) is written in place: renaming over it would
replace the device node. Nothing here imports click.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from auditor.errors import AuditorError, ExitCode, ResourceError
from auditor.sources import looks_like_capture_name, sniff_content


class OutputError(AuditorError):
    """An output path that cannot be written, or that names one of the inputs."""

    exit_code = ExitCode.USAGE


def _same_input(target: Path, inputs: Iterable[str | Path | None]) -> str | None:
    """The input that ``target`` (an existing file) is, or would be read from: the same
    inode as a file given, or a capture inside a directory given."""
    try:
        st = target.stat()
    except OSError:
        return None
    real = target.resolve()
    for given in inputs:
        if given is None:
            continue
        p = Path(given)
        try:
            ist = p.stat()
        except OSError:
            continue
        if stat.S_ISDIR(ist.st_mode):
            # a directory's files are read by content: one that is (or is named) a capture
            if p.resolve() in real.parents and (
                looks_like_capture_name(real.name) or sniff_content(str(real)) is None
            ):
                return str(given)
        elif (ist.st_dev, ist.st_ino) == (st.st_dev, st.st_ino):
            return str(given)
    return None


class Output:
    """Where a command's result goes: a file given with ``-o`` (see the module docstring)."""

    def __init__(self, path: str | Path, inputs: Iterable[str | Path | None] = ()) -> None:
        # through a symbolic link: replace the file it points to, not the link
        self.path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
        shown = str(path)
        self._tmp: Path | None = None
        self._fh: IO[bytes] | None = None
        same = _same_input(self.path, inputs)
        if same is not None:
            raise OutputError(shown, f"is also an input ({same}); refusing to overwrite it")
        try:
            mode: int | None = os.stat(self.path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise OutputError(shown, f"cannot write: {exc.strerror or exc}") from None
        if mode is not None and stat.S_ISDIR(mode):
            raise OutputError(shown, "is a directory; give a file name")
        parent = self.path.parent
        if not parent.is_dir():
            raise OutputError(shown, f"cannot write: no such directory {str(parent)!r}")
        try:
            if mode is not None and not stat.S_ISREG(mode):
                self._fh = open(self.path, "wb")  # noqa: SIM115  (closed in commit/discard)
            else:
                fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=parent)
                self._tmp = Path(tmp)
                self._fh = os.fdopen(fd, "wb")
        except OSError as exc:
            raise OutputError(shown, f"cannot write: {exc.strerror or exc}") from None

    @property
    def stream(self) -> IO[bytes]:
        """The open (temporary) file to write the result to."""
        assert self._fh is not None, "output already closed"
        return self._fh

    @property
    def name_to_write(self) -> str:
        """The file to write by name, for a writer that opens it itself (libpcap's dump
        file): the temporary file, or the target when that is not a regular file."""
        return str(self._tmp) if self._tmp is not None else str(self.path)

    def write_text(self, text: str) -> None:
        try:
            self.stream.write(text.encode("utf-8"))
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def commit(self) -> None:
        """Put the complete result in place (keeping an existing file's permissions)."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            fh.flush()
            if self._tmp is not None:
                os.fsync(fh.fileno())
                with contextlib.suppress(OSError):
                    os.chmod(self._tmp, _mode_for(self.path))
            fh.close()
            if self._tmp is not None:
                os.replace(self._tmp, self.path)
                self._tmp = None
        except OSError as exc:
            self.discard()
            raise _write_error(self.path, exc) from None

    def discard(self) -> None:
        """Drop what was written; the target stays as it was."""
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None


def _write_error(path: Path, exc: OSError) -> AuditorError:
    """A failed write: a full disk is a resource problem (exit RESOURCE), else USAGE."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceError(
            str(path), "no space left on the device; free space or write elsewhere"
        )
    return OutputError(str(path), f"cannot write: {exc.strerror or exc}")


def _mode_for(path: Path) -> int:
    """An existing file's permission bits, else what a plain open() would create."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def output_file(
    path: str | Path | None, inputs: Iterable[str | Path | None] = ()
) -> Iterator[Output | None]:
    """``with output_file(o, inputs) as out:`` -- None when ``path`` is None (stdout).

    The file is checked and opened on entry; committed when the block ends normally,
    discarded when it raises anything (``sys.exit`` included: exit after the block).
    """
    if path is None:
        yield None
        return
    out = Output(path, inputs)
    try:
        yield out
        out.commit()
    except BaseException:  # an error, sys.exit, an interrupt: the target stays as it was
        out.discard()
        raise
