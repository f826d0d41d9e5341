"""Mirror feeds as they come (issue 9, item 5): Aruba GRE, VN-Tag, E-Tag, 802.1ah PBB, GTP-U,
and tunnels whose outer IP header was fragmented (reassembled, bounded).

Each feed (tests/mirror_feeds.py) carries the same inner conversation; we must find it,
with the tunnel named, the bytes of the inner frames, and agree with tshark's dissection of
the same capture packet for packet (skipped where tshark is absent).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mirror_feeds import (
    CLIENT,
    FEEDS,
    OUT_A,
    OUT_B,
    SERVER,
    T0,
    conversation,
    frag4,
    outer,
    pcap,
    write_feed,
)
from packets import ET_ERSPAN, GRE, UDP, erspan2, eth, gre, ipv4, udp, vxlan
from test_flows_tshark import frames_of

from auditor.cli.main import cli
from auditor.errors import ExitCode
from auditor.evidence.conversations import (
    our_conversations,
    tshark_conversations,
    tunnel_fragments_lost,
)
from auditor.evidence.verify import compare
from auditor.traffic import read_traffic

#: the tunnel each feed is decapsulated as ("" when it is a link-layer tag, not a tunnel)
TUNNEL = {
    "aruba": "aruba",
    "vn-tag": "",
    "pbb": "",
    "gtp-u": "gtpu",
    "erspan-fragmented": "erspan2",
    "gre6-fragmented": "gre",
    "vxlan-fragmented": "vxlan",
    "e-tag": "",
}


def inner_overhead(feed: str, i: int) -> int:
    """Bytes of packet i's frame around the inner IP packet, as the flow counts them: a
    tunnel's carried frame (its inner Ethernet / 802.11 header), or the whole frame when the
    encapsulation is a link-layer tag."""
    return {
        "aruba": (26 if i % 2 == 0 else 24) + 8,  # QoS data or data, LLC/SNAP
        "vn-tag": 14 + 6,
        "pbb": 14 + 4 + 4 + 14 + 4,  # B-tag, I-tag, customer header, C-tag
        "gtp-u": 0,  # GTP-U carries the IP packet itself
        "erspan-fragmented": 14,
        "gre6-fragmented": 14,
        "vxlan-fragmented": 14,
        "e-tag": 14 + 8,
    }[feed]


def tcp_flow(path: Path) -> dict[str, Any]:
    traffic = read_traffic([path])
    assert traffic.flows is not None
    rows = [r for r in traffic.flows.to_pylist() if r["proto"] == "tcp"]
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("feed", FEEDS)
def test_inner_conversation_is_the_flow(feed: str, tmp_path: Path) -> None:
    flow = tcp_flow(write_feed(tmp_path, feed))
    assert (flow["src_ip"], flow["src_port"], flow["dst_ip"], flow["dst_port"]) == (
        CLIENT,
        40001,
        SERVER,
        80,
    )
    assert (flow["packets_fwd"], flow["packets_rev"]) == (4, 2)
    assert flow["state"] == "established"
    assert (flow["tunnel"] or "") == TUNNEL[feed]
    assert flow["http_method"] == "GET"
    packets = conversation()
    expected = sum(len(packets[i]) + inner_overhead(feed, i) for i in range(6))
    assert flow["bytes_fwd"] + flow["bytes_rev"] == expected


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (wireshark) not installed")
@pytest.mark.parametrize("feed", FEEDS)
def test_feed_agrees_with_tshark(feed: str, tmp_path: Path) -> None:
    path = write_feed(tmp_path, feed)
    traffic = read_traffic([path])
    assert traffic.flows is not None
    capture = traffic.captures[0].to_json()
    frames = frames_of(path)
    ours = our_conversations(traffic.flows)
    good, diffs = compare(str(path), ours, tshark_conversations(frames))
    assert not diffs, [d.one_line() for d in diffs]
    assert good == len(ours) == 2  # the TCP connection and the DNS exchange: the inner ones
    assert capture["tunnel_fragments_lost"] == tunnel_fragments_lost(frames) == 0


def erspan_frags(i: int, mtu: int = 576) -> list[bytes]:
    p = conversation()[4]  # the large answer
    tunnel = ipv4(OUT_A, OUT_B, GRE, gre(ET_ERSPAN, erspan2(eth(p), 7), seq=i))
    return [outer(f) for f in frag4(tunnel, mtu, ident=1000 + i)]


def test_reassembled_counts_once_and_said(tmp_path: Path) -> None:
    path = tmp_path / "frag.pcap"
    path.write_bytes(pcap(erspan_frags(0)))
    traffic = read_traffic([path])
    cap = traffic.captures[0].to_json()
    assert cap["packets"] == 3
    assert cap["decode_errors"] == {"tunnel_fragment": 2}
    assert (cap["tunnel_reassembled"], cap["tunnel_fragments_lost"]) == (1, 0)
    assert cap["complete"] and not cap["warnings"]
    assert traffic.flows is not None
    (flow,) = traffic.flows.to_pylist()
    assert flow["packets_fwd"] + flow["packets_rev"] == 1
    assert flow["tunnel"] == "erspan2" and flow["outer_src"] == OUT_A


def test_missing_fragment_is_said_not_skipped(tmp_path: Path) -> None:
    frames = erspan_frags(0)[:-1] + conversation_in_vxlan()  # the last fragment never comes
    path = tmp_path / "lost.pcap"
    path.write_bytes(pcap(frames))
    traffic = read_traffic([path])
    cap = traffic.captures[0].to_json()
    assert cap["tunnel_fragments_lost"] == 2
    want = "2 fragments of tunnel packets whose outer IP header was fragmented could not be"
    assert any(w.startswith(want) for w in cap["warnings"]), cap["warnings"]
    assert any(want in n for n in traffic.notes)
    assert not cap["complete"]  # 2 of 10 packets: above the 1 % share


def conversation_in_vxlan() -> list[bytes]:
    return [
        outer(ipv4(OUT_A, OUT_B, UDP, udp(50000, 4789, vxlan(eth(p), 1)))) for p in conversation()
    ]


def test_cli_exit_code_for_lost_fragments(tmp_path: Path) -> None:
    path = tmp_path / "lost.pcap"
    path.write_bytes(pcap(erspan_frags(0)[1:] + conversation_in_vxlan()))
    r = CliRunner().invoke(cli, ["flows", str(path), "--format", "json"])
    assert r.exit_code == ExitCode.CAPTURE, r.output
    assert "could not be reassembled" in r.stderr
    assert f"{path}: 2 fragments of tunnel packets" in r.stderr


def test_table_is_bounded_oldest_given_up(tmp_path: Path) -> None:
    """65 datagrams in progress: the oldest is given up when the 65th needs its slot."""
    firsts = [erspan_frags(i)[0] for i in range(65)]
    rests = [f for i in range(1, 65) for f in erspan_frags(i)[1:]]
    path = tmp_path / "many.pcap"
    path.write_bytes(pcap(firsts + rests))
    cap = read_traffic([path]).captures[0].to_json()
    assert (cap["tunnel_reassembled"], cap["tunnel_fragments_lost"]) == (64, 1)


def test_timeout_gives_up(tmp_path: Path) -> None:
    """Fragments 31 s apart are not one packet (the table's timeout is 30 s)."""
    first, *rest = erspan_frags(0)
    data = pcap([first])
    later = pcap(rest, start=T0 + 31)[24:]  # the records, without a file header
    path = tmp_path / "slow.pcap"
    path.write_bytes(data + later + pcap([rest[0]], start=T0 + 62)[24:])
    cap = read_traffic([path]).captures[0].to_json()
    # 1 given up at T0 + 31, 2 at T0 + 62, 1 in progress at the end
    assert (cap["tunnel_reassembled"], cap["tunnel_fragments_lost"]) == (0, 4)


def test_plain_udp_fragments_are_not_held(tmp_path: Path) -> None:
    """A fragmented DNS answer is no tunnel: its fragments go to its flow as before."""
    big = ipv4("10.0.0.53", "10.0.0.9", UDP, udp(53, 5353, b"a" * 1500))
    path = tmp_path / "dns.pcap"
    path.write_bytes(pcap([eth(f) for f in frag4(big, 576, ident=9)]))
    traffic = read_traffic([path])
    cap = traffic.captures[0].to_json()
    assert (cap["tunnel_reassembled"], cap["decode_errors"]) == (0, {})
    assert traffic.flows is not None
    (flow,) = traffic.flows.to_pylist()
    assert flow["packets_fwd"] + flow["packets_rev"] == 3
