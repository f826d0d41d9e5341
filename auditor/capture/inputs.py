"""Where a capture's bytes come from: a file, standard input or a pipe; compressed or not.

Why it is built this way: the reader looks at a capture twice, once to identify it (the
first bytes: magic, file header, section header) and once to read it. A regular file is
simply opened again (and memory-mapped by the reader). A pipe cannot be rewound, so
:class:`Input` keeps the bytes the identification read and replays them to the reading
pass, then reads on from the pipe in chunks: memory stays bounded (what identification
reads is at most a pcapng section header, 1 MiB) and nothing is read ahead of the reader.

Compression is recognised by content: gzip (``1f 8b``) and zstd (``28 b5 2f fd``; rotated
sensor captures are often zstd'd now, and the ``zstandard`` package is the maintained
binding of the reference library). Both are read through :class:`Decompressed`, whose
``read1`` returns what was decompressed so far even when the stream then turns out cut or
corrupt: the reader keeps the records before the damage and says where it stopped.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import zlib
from typing import IO, Any, cast

from auditor.errors import CaptureError

__all__ = ["STDIN", "DecompressError", "Decompressed", "Input", "compression_of", "display_name"]

STDIN = "-"  #: the path that means standard input
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
MAX_REPLAY = 4 << 20  #: bytes of a pipe kept for the reading pass (identification reads less)


def display_name(path: str) -> str:
    """How messages name an input: standard input by name, a file by its path."""
    return "standard input" if path == STDIN else path


def compression_of(head: bytes) -> str:
    """``"gzip"``, ``"zstd"`` or ``""`` from the first bytes of a file."""
    if head.startswith(_GZIP):
        return "gzip"
    if head.startswith(_ZSTD):
        return "zstd"
    return ""


def is_stdin(path: str) -> bool:
    return path in (STDIN, "/dev/stdin", "/proc/self/fd/0", "/dev/fd/0")


class _Replay(io.RawIOBase):
    """A pipe whose first bytes can be read again: everything read is kept until
    :meth:`replay` is called, then served once more before the pipe is read on."""

    def __init__(self, raw: Any, path: str) -> None:
        super().__init__()
        self.raw = raw
        self.path = path
        self.kept = bytearray()
        self.pos = 0  # position in kept while it is being served
        self.recording = True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        """Only back to the start, and only while everything is kept (identification)."""
        if offset != 0 or whence != 0 or not self.recording:
            raise io.UnsupportedOperation("a pipe can only be rewound to its start")
        self.pos = 0
        return 0

    def tell(self) -> int:
        return self.pos

    def replay(self) -> None:
        """Serve the kept bytes again, then the rest of the pipe."""
        self.recording = False
        self.pos = 0

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self.pos < len(self.kept):
            n = min(len(view), len(self.kept) - self.pos)
            view[:n] = self.kept[self.pos : self.pos + n]
            self.pos += n
            if not self.recording and self.pos == len(self.kept):
                self.kept = bytearray()  # served: let it go
                self.pos = 0
            return n
        n = self.raw.readinto(view) or 0
        if self.recording and n:
            if len(self.kept) + n > MAX_REPLAY:
                raise CaptureError(
                    self.path, f"the capture header is longer than {MAX_REPLAY} bytes"
                )
            self.kept += view[:n]
            self.pos = len(self.kept)
        return n


class Input:
    """One capture's bytes, from the start, once to identify and once to read.

    ``stream`` is True for standard input (``-`` or ``/dev/stdin``) when it is a pipe, and
    for other pipes: those are read in chunks, and only once. Standard input redirected
    from a regular file is read like that file. ``size`` and ``mtime`` are those of a
    regular file (None for a stream), taken when the input was made.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.size: int | None = None
        self.mtime: float | None = None
        self.stream = False
        self.stdin = is_stdin(path)
        self._fd: int | None = None
        self._pipe: _Replay | None = None
        self._opened = 0
        name = display_name(path)
        try:
            st = self._stdin_stat() if self.stdin else os.stat(path)
        except FileNotFoundError:
            raise CaptureError(name, "no such file") from None
        except OSError as exc:
            raise CaptureError(name, f"cannot access: {exc.strerror or exc}") from None
        if st is None:  # standard input without a descriptor (embedded, tests): a stream
            self.stream = True
            return
        if stat.S_ISDIR(st.st_mode):
            raise CaptureError(name, "is a directory, not a capture file")
        if stat.S_ISREG(st.st_mode):
            if st.st_size == 0:
                raise CaptureError(name, "empty file (0 bytes)")
            self.size = st.st_size
            self.mtime = st.st_mtime
        elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            if self.stdin and self._fd is not None and os.isatty(self._fd):
                # waiting for a capture typed on a keyboard would look like a hang
                raise CaptureError(
                    name, "is a terminal: pipe a capture into it (tcpdump -w - | pcap-audit -)"
                )
            self.stream = True
        else:
            raise CaptureError(name, "is not a regular file, a pipe or standard input")

    def _stdin_stat(self) -> os.stat_result | None:
        try:
            self._fd = sys.stdin.buffer.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        return os.fstat(self._fd)

    def open(self) -> io.RawIOBase:
        """The bytes from the start. A stream gives the same object, replaying what the
        first opening read; it cannot be opened a third time."""
        self._opened += 1
        name = display_name(self.path)
        if self.stream:
            if self._pipe is None:
                raw: Any = sys.stdin.buffer if self.stdin else self._open_file(name)
                self._pipe = _Replay(raw, name)
                return self._pipe
            if self._opened > 2:
                raise CaptureError(name, "a pipe or standard input can be read only once")
            self._pipe.replay()
            return self._pipe
        if self.stdin and self._fd is not None:
            # a regular file redirected to standard input: its own descriptor, from the start
            fd = os.dup(self._fd)
            os.lseek(fd, 0, os.SEEK_SET)
            return io.FileIO(fd, "rb", closefd=True)
        return self._open_file(name)

    def _open_file(self, name: str) -> io.RawIOBase:
        try:
            return cast(io.RawIOBase, open(self.path, "rb", buffering=0))
        except OSError as exc:
            raise CaptureError(name, f"cannot open: {exc.strerror or exc}") from None


class DecompressError(Exception):
    """The compressed stream is cut (``early``) or corrupt; what was returned before stands."""

    def __init__(self, message: str, early: bool = False) -> None:
        super().__init__(message)
        self.early = early


class Decompressed:
    """``read1(n)`` of the decompressed content of a gzip or zstd stream.

    A zstd stream cut inside a frame ends without an error from the library; the reader
    still notices, since the content then ends inside a record.
    """

    def __init__(self, kind: str, raw: io.RawIOBase) -> None:
        self.kind = kind
        self._gz: gzip.GzipFile | None = None
        self._zs: Any = None
        if kind == "gzip":
            self._gz = gzip.GzipFile(fileobj=raw)
        else:
            import zstandard  # only when a zstd capture is read

            self._zstd_error = zstandard.ZstdError
            self._zs = zstandard.ZstdDecompressor().stream_reader(
                cast(IO[bytes], raw), read_size=1 << 20, read_across_frames=True, closefd=False
            )

    def read1(self, n: int) -> bytes:
        try:
            if self._gz is not None:
                return self._gz.read1(n)
            return bytes(self._zs.read1(n))
        except EOFError:
            raise DecompressError(f"{self.kind} stream ends early", early=True) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise DecompressError(f"gzip: {exc}") from None
        except Exception as exc:
            if self._zs is not None and isinstance(exc, self._zstd_error):
                raise DecompressError(f"zstd: {exc}") from None
            raise

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
        if self._zs is not None:
            self._zs.close()
