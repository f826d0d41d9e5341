"""read_traffic's reader thread (``prefetched``) and the flow table's guard against two threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from auditor._flowtab import FlowTable
from auditor.errors import CaptureError
from auditor.traffic import prefetched


def test_prefetched_yields_everything_in_order() -> None:
    assert list(prefetched(range(1000), depth=3)) == list(range(1000))


def test_prefetched_raises_the_workers_error_in_the_caller() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise CaptureError("x.pcap", "file ends inside a record")

    got = []
    with pytest.raises(CaptureError, match="file ends inside a record"):
        for i in prefetched(items()):
            got.append(i)
    assert got == [1, 2]


def test_prefetched_stops_the_worker_when_the_caller_stops() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(10**6):
            produced.append(i)
            yield i

    before = threading.active_count()
    gen = prefetched(items(), depth=2)
    assert next(gen) == 0
    gen.close()  # the caller gives up: the worker must end, not block on a full queue
    assert threading.active_count() == before
    assert len(produced) < 10


def test_flow_table_refuses_a_second_thread_while_adding() -> None:
    """add() runs without the GIL; another thread's call meanwhile is refused, not let loose
    on a table being changed."""
    tab = FlowTable()
    n = 4_000_000
    args = (
        np.arange(n, dtype=np.uint64),
        np.zeros(n, np.uint8),
        np.zeros(n, np.int64),
        np.zeros(n, np.uint32),
        np.zeros(n, np.uint32),
        np.zeros(n, np.uint8),
        np.zeros(n, np.uint32),
        np.full(n, 17, np.uint8),
        np.zeros(n, np.uint8),
        np.zeros((n, 16), np.uint8),
        np.zeros((n, 16), np.uint8),
        np.arange(n, dtype=np.uint16),
        np.zeros(n, np.uint16),
        np.empty(n, np.int64),
        np.empty(n, np.uint8),
    )
    refused: list[str] = []
    done = threading.Event()

    def other() -> None:
        while not done.is_set():
            try:
                tab.export(np.zeros(1, np.int64))
            except RuntimeError as exc:
                refused.append(str(exc))
                return
            except IndexError:  # no flow yet: add() has not begun
                continue

    t = threading.Thread(target=other)
    t.start()
    try:
        tab.add(*args)
    finally:
        done.set()
        t.join()
    assert tab.n_flows == n
    assert refused == ["FlowTable used from two threads at once"]
