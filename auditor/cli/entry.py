"""The ``pcap-audit`` console script: signals first, then the heavy imports, then the command.

Kept apart from :mod:`auditor.cli.main` (the click group, which imports every command and
through them pyarrow and numpy: a few hundred milliseconds) so that SIGINT and SIGTERM are
handled from the first line on: an interrupt during the imports is the same one line and
exit code as an interrupt during the audit, never a traceback. ``cli`` itself (tests,
embedding) installs no handlers and exits normally.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import Any

from auditor.cli.signals import Interrupted, ignore_signals, install_signal_handlers


def main() -> None:
    """Run the command line; leave with its exit code.

    The interpreter then ends as usual (``sys.exit``). Skipping its tear-down with
    ``os._exit`` was measured on the 1M-packet bench capture (audit, median of 5): 1.94 s
    against 1.92 s wall, 1.21 against 1.26 s CPU; not worth leaving without the usual
    clean-up (atexit handlers, buffered files).
    """
    code: Any = 0
    # numpy's OpenBLAS starts a worker thread per core that spins, and nothing here does
    # linear algebra (measured: 20-50 ms of CPU per run on 2 cores). Arrow's default
    # allocator (mimalloc) reserves 1 GiB of address space up front: under `ulimit -v 2G`
    # that made the audit of a 2,022-packet sample fail at random; the system allocator
    # measured the same speed on the bench capture. Both are read when the libraries load,
    # hence here, before the imports; a value the user set is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    # The cycle collector's full passes over every live object come round as the object
    # count grows by a quarter; a result of 50,000 hosts (a 100,000-entry inventory lists
    # them all) is a few hundred thousand dicts and lists made in one go. Collecting
    # young objects every 10,000 allocations instead of 700 measured 0.15 s less for that
    # audit (1.54 -> 1.39 s, median of 5); nothing here relies on cycles being freed soon.
    gc.set_threshold(10_000, 10, 10)
    try:
        install_signal_handlers()
        try:
            from auditor.cli.main import cli

            cli()
        except SystemExit as exc:
            code = exc.code
        ignore_signals()
    except Interrupted as exc:
        ignore_signals()
        with contextlib.suppress(OSError, ValueError):
            print(f"pcap-audit: {exc.one_line()}", file=sys.stderr)
        code = int(exc.exit_code)
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): Python prints it, exit status 1
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            # the reader went away (`| head`): what is left goes nowhere, quietly, rather
            # than as "Exception ignored ... BrokenPipeError" when the interpreter ends
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    sys.exit(code)
