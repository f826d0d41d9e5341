"""Screenshots of rendered pages in headless Chromium, and reading them (no imaging library)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: Path, tmp_path: Path, width: int, height: int) -> bytes:
    """The PNG of ``page`` rendered by headless Chromium (flags that keep it off the network)."""
    shot = tmp_path / "shot.png"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}", f"--window-size={width},{height}", page.as_uri(),
    ]  # fmt: skip
    try:
        subprocess.run(command, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish the screenshot within 120 s")
    assert shot.exists(), "chromium wrote no screenshot"
    return shot.read_bytes()


def png_pixels(png: bytes) -> tuple[int, int, bytes]:
    """(width, height, decompressed scanlines) of a PNG file's bytes."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, zlib.decompress(idat)
