"""The flow table agrees with tshark's dissection on the real traces of ../shared/corpus/zeek.

What is compared, per trace: the TCP and UDP conversations, each an unordered endpoint pair
``(ip, port), (ip, port)`` of the innermost IP header, with its total packet count. On our
side that is ``packets_fwd + packets_rev`` summed over the flows of the pair (from
``read_traffic``); on tshark's, the frames whose innermost IP header, and the TCP/UDP header
right after it, carry that pair.

Why per endpoint pair and not per flow: we split a pair into several flows (a pure SYN after
a FIN/RST is a new connection; the outer VLAN is part of the key), tshark's ``tcp.stream``
splits by rules of its own (a retransmitted SYN after a RST stays in its stream; VLANs are
ignored) and ``udp.stream`` never. Summed per pair, both count the same thing. One
``-T fields`` export per trace: ``frame.protocols`` gives the layer chain, which says which
occurrence of ``ip.src``/``udp.srcport``/... belongs to the innermost header.

Definitions, and where tshark's view is mapped onto ours (each rule narrow; the traces that
need it today in brackets):

* ICMP errors quote the IP and TCP/UDP header of the packet they answer: tshark dissects the
  quote, we count the error in an ICMP flow. The chain is cut at the first ``icmp``/``icmpv6``
  so a quote is never taken for the frame's own headers [smtp.pcap,
  smb__smb_v2_only_non_zero_reserved1.pcap].
* IP fragments: tshark reassembles and shows the datagram in the frame that completes it, the
  other fragments as bare ``ip``/``data``; we count every fragment in the flow of its first
  fragment. So a reassembled frame counts as many packets as tshark lists fragments for it
  [dns-edns-ecs.pcap, ipv6-reassembly-state-leak.pcap]. A datagram tshark never completes
  is not dissected past IP; we still count its first fragment, which carries the ports:
  tshark's first fragment counts once, its ports read from the fragment's first bytes.
* An *outer* header fragmented (a tunnel packet fragmented on its way): we reassemble it as
  tshark does, and the tunnel packet counts once in the inner conversation (its fragments are
  one packet of it) [erspan.pcap: 16 inner TCP segments in fragmented GRE, e.g. frames
  153-155; both GTP traces]. The first fragment of an outer UDP tunnel header that tshark
  never completes is held by us and given up: not in any flow, counted in the capture's
  ``tunnel_fragments_lost`` (checked against tshark's count) and said
  [gtp1_gn_normal_incl_fragmentation: frames 56, 80, 90, 92].
* Encapsulations we do not decapsulate are switched off in tshark (``NOT_DECAPSULATED``), so
  it reports the outer UDP conversation like we do [tunnels__Teredo.pcap]. Aruba GRE
  (802.11 in GRE) and GTP-U are decapsulated by both [tunnels__gre-aruba.pcap, both GTP
  traces].

Traces whose link type we do not decode are skipped with the capture's own account of it.
tshark runs ahead of the tests in two threads: its start-up is most of its time here.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from auditor.capture import linktype_name
from auditor.traffic import read_traffic

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "zeek"
TRACES = sorted(CORPUS.glob("*.pcap*")) if CORPUS.exists() else []

#: tshark dissectors switched off: encapsulations we report as the outer conversation
NOT_DECAPSULATED = {
    "teredo": "IPv6 in UDP 3544 (RFC 4380): we report the UDP flow",
    "ayiya": "IPv6 in UDP 5072 (AYIYA tunnel brokers): we report the UDP flow",
}
FIELDS = (
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "ip.fragment",
    "ipv6.fragment",
    "ip.proto",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.fraghdr.nxt",
    "ipv6.fraghdr.more",
    "ipv6.fraghdr.offset",
    "data.data",
)

#: UDP tunnels whose fragmented outer header we reassemble (VXLAN, Geneve, GTP-U)
TUNNEL_PORTS = {4789, 8472, 4790, 6081, 2152}

Endpoint = tuple[str, int]
Conv = tuple[str, Endpoint, Endpoint]

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.tshark,
    pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus/zeek not present"),
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (wireshark) not installed"),
]


def conv(proto: str, a: Endpoint, b: Endpoint) -> Conv:
    x, y = sorted((a, b))
    return (proto, x, y)


def address(text: str) -> str:
    return str(ipaddress.ip_address(text))


@dataclass
class Frame:
    """One line of tshark's field export."""

    number: int
    layers: list[str]  # frame.protocols, cut before the first ICMP layer
    fields: dict[str, list[str]]  # every occurrence, in dissection order

    def ip_depth(self) -> int:
        return sum(1 for x in self.layers if x in ("ip", "ipv6"))

    def conversation(self, depth: int | None = None) -> Conv | None:
        """The TCP/UDP pair right after the ``depth``-th IP layer (1-based; the last by
        default), skipping IPv6 extension headers; None for anything else."""
        ips = [i for i, x in enumerate(self.layers) if x in ("ip", "ipv6")]
        if not ips:
            return None
        at = ips[(depth or len(ips)) - 1]
        fam = self.layers[at]
        j = at + 1
        while j < len(self.layers) and (
            self.layers[j].startswith("ipv6.") or (fam == "ipv6" and self.layers[j] == "ah")
        ):
            j += 1
        if j == len(self.layers) or self.layers[j] not in ("tcp", "udp"):
            return None
        l4 = self.layers[j]
        k_ip = self.layers[: at + 1].count(fam) - 1
        k_l4 = self.layers[: j + 1].count(l4) - 1
        f = self.fields
        src = address(f[f"{fam}.src"][k_ip])
        dst = address(f[f"{fam}.dst"][k_ip])
        return conv(l4, (src, int(f[f"{l4}.srcport"][k_l4])), (dst, int(f[f"{l4}.dstport"][k_l4])))

    def fragments(self) -> set[int]:
        """Frames of the datagram(s) tshark reassembled in this frame (empty if none)."""
        return {int(n) for name in ("ip.fragment", "ipv6.fragment") for n in self.fields[name]}

    def first_fragment(self) -> Conv | None:
        """For a frame tshark shows as a bare first fragment (more fragments, offset 0, not
        reassembled here) of TCP/UDP: the pair, ports read from the fragment's first bytes."""
        f, layers = self.fields, self.layers
        if len(layers) < 2 or layers[-1] != "data" or not f["data.data"]:
            return None
        if layers[-2] == "ip":
            k, fam = layers.count("ip") - 1, "ip"
            more, offset, proto = f["ip.flags.mf"][k], f["ip.frag_offset"][k], f["ip.proto"][k]
        elif layers[-2] == "ipv6.fraghdr":
            k, fam = layers.count("ipv6.fraghdr") - 1, "ipv6"
            more, offset = f["ipv6.fraghdr.more"][k], f["ipv6.fraghdr.offset"][k]
            proto = f["ipv6.fraghdr.nxt"][k]
        else:
            return None
        head = f["data.data"][-1].replace(":", "")
        l4 = {"6": "tcp", "17": "udp"}.get(proto)
        if more not in ("1", "True") or offset != "0" or l4 is None or len(head) < 8:
            return None
        k_ip = layers.count(fam) - 1
        src = (address(f[f"{fam}.src"][k_ip]), int(head[0:4], 16))
        dst = (address(f[f"{fam}.dst"][k_ip]), int(head[4:8], 16))
        return conv(l4, src, dst)


def run_tshark(path: Path) -> list[Frame]:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=,"]  # fmt: skip
    for proto in NOT_DECAPSULATED:
        cmd += ["--disable-protocol", proto]
    for name in FIELDS:
        cmd += ["-e", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    frames = []
    for number, line in enumerate(proc.stdout.splitlines(), 1):
        values = line.split("\t")
        assert len(values) == len(FIELDS), line
        layers = values[0].split(":")
        for cut, name in enumerate(layers):
            if name in ("icmp", "icmpv6"):
                layers = layers[:cut]
                break
        fields = {k: v.split(",") if v else [] for k, v in zip(FIELDS[1:], values[1:], strict=True)}
        frames.append(Frame(number, layers, fields))
    return frames


def tshark_conversations(
    frames: list[Frame],
) -> tuple[Counter[Conv], dict[Conv, list[int]], int]:
    """Packets per TCP/UDP conversation by tshark, in our definitions (module docstring);
    also the frame numbers of each conversation, for the failure message, and how many
    first fragments of outer UDP tunnel headers tshark never completes."""
    counts: Counter[Conv] = Counter()
    seen: dict[Conv, list[int]] = {}
    lost = 0
    reassembled = set().union(*(fr.fragments() for fr in frames))
    for fr in frames:
        if fr.number not in reassembled and (first := fr.first_fragment()) is not None:
            if fr.ip_depth() == 1 and {first[1][1], first[2][1]} & TUNNEL_PORTS:
                lost += 1  # held for reassembly by us, given up, counted and said
                continue
            # a datagram tshark never completes: we still count its first fragment
            counts[first] += 1
            seen.setdefault(first, []).append(fr.number)
            continue
        frags = fr.fragments() - {fr.number}
        packets = len(frags) + 1
        depth = None
        if frags:
            # the other fragments stop at the fragmented header: their depth is its depth
            depth = min(frames[n - 1].ip_depth() for n in frags)
            if depth < fr.ip_depth():
                # an outer (tunnel) header was fragmented: we reassemble it too, and the
                # tunnel packet is one packet of the inner conversation
                depth, packets = None, 1
        c = fr.conversation(depth)
        if c is not None:
            counts[c] += packets
            seen.setdefault(c, []).append(fr.number)
    return counts, seen, lost


def our_conversations(path: Path) -> tuple[Counter[Conv], dict[str, Any]]:
    traffic = read_traffic([path])
    assert not traffic.errors, traffic.errors
    assert traffic.flows is not None
    counts: Counter[Conv] = Counter()
    cols = ("proto", "src_ip", "src_port", "dst_ip", "dst_port", "packets_fwd", "packets_rev")
    for r in traffic.flows.select(list(cols)).to_pylist():
        if r["proto"] in ("tcp", "udp"):
            c = conv(r["proto"], (r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"]))
            counts[c] += r["packets_fwd"] + r["packets_rev"]
    return counts, traffic.captures[0]


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
                self.pending[p] = self.pool.submit(run_tshark, p)
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
    ours, capture = our_conversations(path)
    unsupported = capture.get("unsupported_linktypes") or {}
    if unsupported:
        what = ", ".join(
            f"{linktype_name(lt)} ({lt}): {n} records" for lt, n in unsupported.items()
        )
        pytest.skip(f"link type not decoded: {what} of {capture['packets']}")
    frames = tshark.frames(path)
    assert len(frames) == capture["packets"]
    theirs, where, lost = tshark_conversations(frames)
    assert capture["tunnel_fragments_lost"] == lost
    diff = sorted(
        (c, ours.get(c, 0), theirs.get(c, 0))
        for c in set(ours) | set(theirs)
        if ours.get(c, 0) != theirs.get(c, 0)
    )
    lines = [f"{c}: ours {a}, tshark {b} (frames {where.get(c, [])[:8]})" for c, a, b in diff]
    assert not diff, f"{len(diff)} of {len(set(ours) | set(theirs))} conversations differ:\n" + (
        "\n".join(lines[:20])
    )
