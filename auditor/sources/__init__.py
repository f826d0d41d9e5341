"""Where flows come from: capture files, directories of them, standard input, and
directories of Zeek logs (:mod:`auditor.sources.zeek`, read as one input each).

The command line names files, directories and ``-``; :func:`expand` turns them into the
list of inputs to read, by content, never by name alone:

- a directory is walked (sorted, symbolic links to directories not followed) and each file
  in it is opened and identified by its first bytes: pcap (both byte orders, micro- and
  nanoseconds), pcapng, and those gzip'd or zstd'd (then the start of the content is
  checked too). So tcpdump's ``-C``/``-G`` names (``span.pcap1``), ``.pcap.N`` and
  ``.dmp.gz`` are read. A file that is not a capture is skipped and said, unless its name
  says it is one (``.pcap``, ``.pcapng``, ``.cap``, ``.dmp`` with a rotation number and a
  compression suffix): then it is a capture that cannot be read. A file that cannot be
  opened is a capture that cannot be read too (it may well be one);
- ``-`` (or ``/dev/stdin``) is standard input, streamed;
- the same content given twice (the same file twice, a hard link, a copy) is read once.
  Files are compared by device and inode first, then files of the same size by a hash of
  their whole content (BLAKE2b): a hash of the first and last MiB would call two rotated
  captures of one busy night the same when they differ in the middle. Only files whose
  size another file shares are hashed, an extra read of those files.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from auditor.capture.inputs import STDIN, Decompressed, DecompressError, compression_of
from auditor.errors import CaptureError
from auditor.sources.zeek import is_zeek_dir

__all__ = ["Found", "expand", "looks_like_capture_name", "sniff_content"]

_STDIN_NAMES = (STDIN, "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0")
_CAPTURE_MAGICS = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
)
#: names that say "capture": name.pcap, name.pcap3 (tcpdump -C), name.pcap.3, with .gz/.zst
_CAPTURE_NAME = re.compile(r"\.(pcap|pcapng|cap|dmp)(\.?\d+)?(\.(gz|zst|zstd))?$", re.IGNORECASE)
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Found:
    """One input to read, or one that is not: what :func:`expand` yields.

    ``error`` is set for a capture that cannot be read (missing, a directory without
    captures, ...); ``skipped`` says why a file in a directory is not a capture;
    ``duplicate_of`` names the input with the same content, read in its place, and
    ``same`` says how they are the same (given twice, a hard link, a copy).
    ``group`` is the index of the command-line argument it came from (``--each``).
    """

    path: str
    group: int = 0
    error: CaptureError | None = None
    skipped: str | None = None
    duplicate_of: str | None = None
    same: str | None = None

    @property
    def readable(self) -> bool:
        return self.error is None and self.skipped is None and self.duplicate_of is None


def looks_like_capture_name(name: str) -> bool:
    """Whether a file name says capture (``x.pcap``, ``x.pcap1``, ``x.pcap.1.gz``, ...)."""
    return bool(_CAPTURE_NAME.search(name))


def sniff_content(path: str) -> str | None:
    """None when the file starts like a capture (through gzip or zstd), else what it is
    instead, in a few words."""
    try:
        with open(path, "rb", buffering=0) as raw:
            head = raw.read(8) or b""
            kind = compression_of(head)
            if kind:
                raw.seek(0)
                dec = Decompressed(kind, raw)
                try:
                    inner = dec.read1(8)
                except DecompressError as exc:
                    return f"{kind}-compressed, but {exc}"
                finally:
                    dec.close()
                if inner[:4] in _CAPTURE_MAGICS:
                    return None
                return f"{kind}-compressed, not a capture inside"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if head[:4] in _CAPTURE_MAGICS:
        return None
    if not head:
        return "an empty file"
    return "not a capture (starts with " + " ".join(f"{b:02x}" for b in head[:4]) + ")"


def _walk(root: str) -> list[str]:
    """Every file under ``root``, sorted by path; directory links are not followed."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in filenames)
    return sorted(out)


def _directory(root: str, group: int) -> list[Found]:
    found: list[Found] = []
    captures = 0
    for path in _walk(root):
        try:
            st = os.stat(path)
        except OSError as exc:
            found.append(Found(path, group, CaptureError(path, f"cannot access: {exc}")))
            continue
        if not stat.S_ISREG(st.st_mode):
            found.append(Found(path, group, skipped="not a regular file"))
            continue
        why = sniff_content(path)
        if why is not None and why.startswith("cannot read"):  # it may be a capture: say so
            found.append(Found(path, group, CaptureError(path, why)))
            captures += 1
        elif why is None or looks_like_capture_name(os.path.basename(path)):
            found.append(Found(path, group))  # a named capture that is not one: the reader says why
            captures += 1
        else:
            found.append(Found(path, group, skipped=why))
    if not captures:
        skipped = sum(1 for f in found if f.skipped)
        also = f" ({skipped} other files skipped)" if skipped else ""
        found.append(
            Found(root, group, CaptureError(root, f"directory holds no capture files{also}"))
        )
    return found


def _digest(path: str) -> bytes | None:
    h = hashlib.blake2b(digest_size=32)
    try:
        with open(path, "rb", buffering=0) as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
    except OSError:
        return None  # the reader will say why
    return h.digest()


def _mark_duplicates(found: list[Found]) -> list[Found]:
    """Replace a later input with the same content as an earlier one by a duplicate."""
    first_stdin: str | None = None
    by_inode: dict[tuple[int, int], str] = {}
    by_size: dict[int, list[int]] = {}
    out = list(found)
    for i, f in enumerate(out):
        if not f.readable:
            continue
        if f.path in _STDIN_NAMES:
            if first_stdin is not None:
                out[i] = Found(f.path, f.group, duplicate_of=first_stdin, same="given twice")
            else:
                first_stdin = f.path
            continue
        try:
            st = os.stat(f.path)
        except OSError:
            continue  # the reader will say why
        if not stat.S_ISREG(st.st_mode):
            continue
        key = (st.st_dev, st.st_ino)
        if key in by_inode:
            first = by_inode[key]
            how = "given twice" if os.path.abspath(first) == os.path.abspath(f.path) else "a link"
            out[i] = Found(f.path, f.group, duplicate_of=first, same=how)
            continue
        by_inode[key] = f.path
        by_size.setdefault(st.st_size, []).append(i)
    for indexes in by_size.values():
        if len(indexes) < 2:
            continue
        seen: dict[bytes, str] = {}
        for i in indexes:
            digest = _digest(out[i].path)
            if digest is None:
                continue
            if digest in seen:
                out[i] = Found(out[i].path, out[i].group, duplicate_of=seen[digest], same="a copy")
            else:
                seen[digest] = out[i].path
    return out


def expand(paths: Iterable[str | os.PathLike[str]]) -> list[Found]:
    """The inputs named by ``paths`` (files, directories, ``-``), in order, by content."""
    found: list[Found] = []
    for group, raw in enumerate(paths):
        path = os.fspath(raw)
        if path not in _STDIN_NAMES and os.path.isdir(path):
            if is_zeek_dir(path):  # Zeek logs (auditor.sources.zeek): one input, not walked
                found.append(Found(path, group))
            else:
                found.extend(_directory(path, group))
        else:
            found.append(Found(path, group))
    return _mark_duplicates(found)
