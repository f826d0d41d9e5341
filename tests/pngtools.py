"""Reading the screenshots the browser tests take (no imaging library needed)."""

from __future__ import annotations

import struct
import zlib


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
