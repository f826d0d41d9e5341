"""Child process of tests/test_sanitizers.py: the capture reader (record scanners, header
decoder) and the flow builder, run with C extensions built with AddressSanitizer and
UndefinedBehaviorSanitizer, over real captures and mutated ones.

    python sanitize_driver.py SO_DIR corpus FILE...
    python sanitize_driver.py SO_DIR mutate SEED COUNT WORKDIR FILE...

SO_DIR holds the sanitized ``_fast``, ``_flowtab`` and ``_flowid`` extensions; they replace
the installed ones before ``auditor`` is imported. Every capture is read twice, memory-mapped
and in 4 KiB chunks (records straddle chunk ends), in small batches, into a flow table. A
sanitizer report aborts the process (-fno-sanitize-recover); before each capture its name
(and, for a mutation, what was changed) goes to stderr, and a mutated capture is left in
WORKDIR/case.pcap, so the last one named is the one to look at. Any exception other than
CaptureError fails too. Prints the number of captures read.
"""

from __future__ import annotations

import gzip
import importlib.util
import random
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

EXTENSIONS = ("auditor.capture._fast", "auditor._flowtab", "auditor._flowid")


def load_sanitized(so_dir: Path) -> None:
    for name in EXTENSIONS:
        short = name.rsplit(".", 1)[1]
        found = sorted(so_dir.glob(f"{short}.*.so")) or sorted(so_dir.glob(f"{short}.so"))
        spec = importlib.util.spec_from_file_location(name, found[0])
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod


def read_everything(path: Path) -> int:
    """Read ``path`` mapped and in small chunks, each into a flow table; rows read."""
    from auditor.capture import reader
    from auditor.errors import CaptureError
    from auditor.flows import FlowBuilder

    rows = 0
    for mapped in (True, False):
        reader.MMAP = mapped
        reader.CHUNK_SIZE = 1 << 12
        builder = FlowBuilder()
        try:
            for batch in reader.read_packets(path, batch_size=61):
                rows += batch.num_rows
                builder.add_batch(batch, 0)
        except CaptureError:
            continue
        builder.table()
    return rows


# ---- mutations ----------------------------------------------------------------------------

EXTREMES32 = (0, 1, 3, 0x7FFF, 0xFFFF, 0x3FFFF, 0x40000, 0x40001, 0x1FFFFFC, 0x2000000,
              0x2000004, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0xFFFFFFFF)  # fmt: skip
EXTREMES64 = (0, 1, 1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 64) - 10**9)
TSRESOL = (0, 1, 6, 9, 18, 19, 0x80, 0x80 | 62, 0x80 | 63, 0xFF)
BASE_BYTES = 16384  #: a capture to mutate is cut to this (a cut base is one more test)


def fields(data: bytes) -> Iterator[tuple[int, int]]:
    """(offset, width) of the length, count and timestamp fields of a pcap or pcapng file:
    the places where an extreme value tests the arithmetic."""
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (
        b"\xd4\xc3\xb2\xa1",
        b"\x4d\x3c\xb2\xa1",
        b"\xa1\xb2\xc3\xd4",
        b"\xa1\xb2\x3c\x4d",
    ):
        order = "<" if magic[0] in (0xD4, 0x4D) else ">"
        yield from ((16, 4), (20, 4))  # snaplen, link type
        off = 24
        while off + 16 <= len(data):
            yield from ((off, 4), (off + 4, 4), (off + 8, 4), (off + 12, 4))
            off += 16 + struct.unpack_from(order + "I", data, off + 8)[0]
        return
    if magic != b"\x0a\x0d\x0d\x0a":
        return
    order = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from(order + "II", data, off)
        yield (off + 4, 4)
        if blen < 12 or off + blen > len(data):
            return
        yield (off + blen - 4, 4)
        if btype == 6 and blen >= 32:  # EPB: interface, timestamp, caplen, wire length
            yield from ((off + 8, 4), (off + 12, 4), (off + 16, 4), (off + 20, 4), (off + 24, 4))
        elif btype == 3 and blen >= 16:  # SPB: wire length
            yield (off + 8, 4)
        elif btype == 1 and blen >= 20:  # IDB: snaplen and options (tsresol, tsoffset)
            yield (off + 12, 4)
            o = off + 16
            while o + 4 <= off + blen - 4:
                code, length = struct.unpack_from(order + "HH", data, o)
                yield (o + 2, 2)
                if code == 9 and length >= 1:
                    yield (o + 4, 1)
                elif code == 14 and length >= 8:
                    yield (o + 4, 8)
                if code == 0:
                    break
                o += 4 + ((length + 3) & ~3)
        off += blen


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    b = bytearray(data)
    spots = list(fields(data))
    done = []
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if spots and op < 0.55:
            off, width = rng.choice(spots)
            if off + width > len(b):
                continue
            if width == 1:
                v = rng.choice(TSRESOL)
            elif width == 8:
                v = rng.choice(EXTREMES64)
            else:
                cur = int.from_bytes(b[off : off + width], "little")
                v = rng.choice((*EXTREMES32, cur + 1, cur - 1, cur + 4, cur - 4, cur * 2))
            v &= (1 << (8 * width)) - 1
            b[off : off + width] = v.to_bytes(width, rng.choice(("little", "big")))
            done.append(f"field@{off}={v:#x}")
        elif b and op < 0.85:
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
            done.append("bitflips")
        elif b:
            i = rng.randrange(len(b))
            j = rng.randrange(len(b))
            b[i:i] = b[j : j + rng.randint(1, 64)]  # a piece of the file again, elsewhere
            done.append(f"splice@{i}")
    if rng.random() < 0.3 and b:
        cut = rng.randrange(len(b) + 1)
        b = b[:cut]
        done.append(f"cut@{cut}")
    return bytes(b), " ".join(done)


def tiny_pcapng() -> bytes:
    """A small pcapng of its own (for when there is no corpus): two interfaces, EPB/SPB."""

    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    frame = (
        b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
        + bytes.fromhex("4500002800010000400600000a0000010a000002")
        + bytes.fromhex("9c4000500000000100000000501020000000000000")[:20]
    )  # fmt: skip
    tsres = struct.pack("<HH", 9, 1) + b"\x09\x00\x00\x00"
    tsoff = struct.pack("<HHq", 14, 8, 1_700_000_000)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 0) + tsres + tsoff + b"\x00" * 4)
    out += block(1, struct.pack("<HHI", 101, 0, 64) + b"\x00" * 4)
    for i in range(6):
        out += block(6, struct.pack("<IIIII", i % 2, 0, i, len(frame), len(frame)) + frame)
        out += block(3, struct.pack("<I", len(frame)) + frame)
    return out


def main(argv: list[str]) -> int:
    so_dir, mode = Path(argv[1]), argv[2]
    load_sanitized(so_dir)
    read = 0
    if mode == "corpus":
        for name in argv[3:]:
            print(f"capture {name}", file=sys.stderr, flush=True)
            read_everything(Path(name))
            read += 1
    else:
        seed, count, work = int(argv[3]), int(argv[4]), Path(argv[5])
        bases = [Path(p).read_bytes()[:BASE_BYTES] for p in argv[6:]] + [tiny_pcapng()]
        rng = random.Random(seed)
        case = work / "case.pcap"
        for i in range(count):
            k = i % len(bases)
            data, what = mutate(bases[k], rng)
            if rng.random() < 0.1:
                data = gzip.compress(data, mtime=0)
                what += " gzip"
            case.write_bytes(data)
            print(f"case {i}: base {k}: {what}", file=sys.stderr, flush=True)
            read_everything(case)
            read += 1
    print(read)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
