"""The flow table agrees with tshark's dissection on the real traces of ../shared/corpus/zeek.

What is compared, and where tshark's view is mapped onto ours, is the job of
:mod:`auditor.evidence.conversations` (shared with ``pcap-audit verify``): per trace, every
TCP/UDP conversation (unordered endpoint pair of the innermost IP header) with its packets
and bytes, which must be equal, and its application protocol where tshark names one.

Where the mapping rules matter today: ICMP errors quoting headers [smtp.pcap,
smb__smb_v2_only_non_zero_reserved1.pcap]; IP fragments [dns-edns-ecs.pcap,
ipv6-reassembly-state-leak.pcap]; a fragmented outer header, reassembled by both (the tunnel
packet is one packet of the inner conversation) [erspan.pcap, frames 153-155; both GTP
traces]; first fragments of an outer UDP tunnel header tshark never completes, given up by us
and counted in ``tunnel_fragments_lost`` [gtp1_gn_normal_incl_fragmentation frames 56, 80,
90, 92]; encapsulations we do not decapsulate [tunnels__Teredo.pcap]. Aruba GRE and GTP-U
are decapsulated by both; bytes inside a tunnel are not compared (ours are the inner
frames', tshark's the outer frames').

Traces whose link type we do not decode are skipped with the capture's own account of it.
tshark runs ahead of the tests in two threads: its start-up is most of its time here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from auditor.capture import linktype_name
from auditor.evidence.conversations import (
    Frame,
    our_conversations,
    parse_frames,
    tshark_args,
    tshark_conversations,
    tunnel_fragments_lost,
)
from auditor.evidence.tshark import run_tshark
from auditor.evidence.verify import compare
from auditor.traffic import read_traffic

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "zeek"
TRACES = sorted(CORPUS.glob("*.pcap*")) if CORPUS.exists() else []

#: where tshark and we name different application protocols, and who is right
APP_DIFFERENCES = {
    # SSH multiplexed with TLS on 443 by sslh: tshark dissects by port, we read the banner
    "ssl-and-ssh-using-sslh.pcap": ("tcp", "192.168.2.144:49641", ("ssh",), ("tls",)),
    # a fuzzer's bytes on port 80 ("HTTP/5.?2 200"): tshark calls it HTTP by port
    "redis__oss-fuzz-473580107.pcap": ("tcp", "10.0.0.1:63945", ("unknown",), ("http",)),
}

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.tshark,
    pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus/zeek not present"),
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (wireshark) not installed"),
]


def frames_of(path: Path) -> list[Frame]:
    return parse_frames(run_tshark(tshark_args(), str(path), "the test").splitlines())


class Prefetch:
    """tshark runs two traces ahead of the test (of those selected), so that its start-up
    time, most of its run on these small traces, overlaps with our side and the other core."""

    AHEAD = 2

    def __init__(self, order: list[Path]) -> None:
        self.order = order
        self.pool = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1))
        self.pending: dict[Path, Future[list[Frame]]] = {}

    def frames(self, path: Path) -> list[Frame]:
        i = self.order.index(path) if path in self.order else len(self.order)
        for p in [path, *self.order[i + 1 : i + 1 + self.AHEAD]]:
            if p not in self.pending:
                self.pending[p] = self.pool.submit(frames_of, p)
        return self.pending.pop(path).result()


@pytest.fixture(scope="module")
def tshark(request: pytest.FixtureRequest) -> Iterator[Prefetch]:
    selected = [
        item.callspec.params["path"]
        for item in request.session.items
        if item.path == request.path and hasattr(item, "callspec")
    ]
    pre = Prefetch(selected)
    yield pre
    pre.pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("path", TRACES, ids=[p.name for p in TRACES])
def test_conversations_agree_with_tshark(path: Path, tshark: Prefetch) -> None:
    traffic = read_traffic([path])
    assert not traffic.errors, traffic.errors
    assert traffic.flows is not None
    capture = traffic.captures[0].to_json()
    unsupported = capture.get("unsupported_linktypes") or {}
    if unsupported:
        what = ", ".join(
            f"{linktype_name(lt)} ({lt}): {n} records" for lt, n in unsupported.items()
        )
        pytest.skip(f"link type not decoded: {what} of {capture['packets']}")
    frames = tshark.frames(path)
    assert len(frames) == capture["packets"]
    # first fragments of outer tunnel headers tshark never completes: given up, counted, said
    assert capture["tunnel_fragments_lost"] == tunnel_fragments_lost(frames)
    good, diffs = compare(str(path), our_conversations(traffic.flows), tshark_conversations(frames))
    expected = APP_DIFFERENCES.get(path.name)
    found = [(d.proto, d.a, d.apps[0], d.apps[1]) for d in diffs]
    if expected:
        assert found == [expected], [d.one_line() for d in diffs]
        assert diffs[0].packets[0] == diffs[0].packets[1]
        assert diffs[0].bytes[0] == diffs[0].bytes[1]
    else:
        lines = [d.one_line() for d in diffs]
        assert not diffs, f"{len(diffs)} of {good + len(diffs)} conversations differ:\n" + (
            "\n".join(lines[:20])
        )
