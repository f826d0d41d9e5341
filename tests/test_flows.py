"""The flow table: direction, state, counters, port reuse, encapsulation, the JSON contract."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import dpkt
import pytest
from click.testing import CliRunner

from auditor import synth
from auditor.cli.flows import command as flows_command
from auditor.errors import ExitCode
from auditor.traffic import read_traffic


def flows_of(*paths: Path) -> list[dict[str, Any]]:
    t = read_traffic(paths)
    assert t.flows is not None
    return t.flows.drop_columns(["src_ip_bytes", "dst_ip_bytes"]).to_pylist()


def one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    got = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(got) == 1, (match, got)
    return got[0]


@pytest.fixture
def states_pcap(tmp_path: Path) -> Path:
    c = synth.Capture()
    c.tcp_session(
        "10.0.0.1",
        "10.0.0.2",
        40001,
        80,
        [(0, synth.http_request("GET", "/", "web")), (1, synth.http_response(200, 10))],
    )
    c.tcp_session("10.0.0.1", "10.0.0.2", 40002, 80, [(0, b"x")], close=False)
    c.tcp_rejected("10.0.0.1", "10.0.0.2", 40003, 23)
    c.tcp("10.0.0.1", "10.0.0.2", 40004, 25, dpkt.tcp.TH_SYN, 1, 0)
    # midstream: the server talks first, no handshake seen
    c.tcp_session(
        "10.0.0.9",
        "10.0.0.1",
        443,
        51000,
        [(0, b"\x17\x03\x03\x00\x05hello")],
        handshake=False,
        close=False,
    )
    return c.write(tmp_path / "states.pcap")


def test_states_and_direction(states_pcap: Path) -> None:
    rows = flows_of(states_pcap)
    assert one(rows, dst_port=80, src_port=40001)["state"] == "closed"
    assert one(rows, dst_port=80, src_port=40002)["state"] == "established"
    assert one(rows, dst_port=23)["state"] == "rejected"
    attempted = one(rows, dst_port=25)
    assert attempted["state"] == "attempted"
    assert attempted["packets_rev"] == 0
    mid = one(rows, state="midstream")
    # port heuristics: 443 is the server even though it sent first
    assert (mid["src_ip"], mid["src_port"], mid["dst_ip"], mid["dst_port"]) == (
        "10.0.0.1",
        51000,
        "10.0.0.9",
        443,
    )
    assert mid["direction_inferred"] is True
    http = one(rows, src_port=40001)
    assert http["direction_inferred"] is False
    assert (http["packets_fwd"], http["packets_rev"]) == (5, 3)
    assert http["app"] == "http" and http["http_method"] == "GET"


def test_port_reuse_after_close_is_a_new_flow(tmp_path: Path) -> None:
    c = synth.Capture()
    for _ in range(3):
        c.tcp_session("10.0.0.1", "10.0.0.2", 40000, 8016, [(0, b"hello")])
    c.tcp_rejected("10.0.0.1", "10.0.0.2", 40001, 22)
    c.tcp_rejected("10.0.0.1", "10.0.0.2", 40001, 22)
    rows = flows_of(c.write(tmp_path / "reuse.pcap"))
    assert len([r for r in rows if r["dst_port"] == 8016]) == 3
    assert len({r["flow_id"] for r in rows}) == len(rows)
    assert [r["state"] for r in rows if r["dst_port"] == 22] == ["rejected", "rejected"]


def test_syn_retransmission_stays_one_flow(tmp_path: Path) -> None:
    c = synth.Capture()
    for _ in range(3):
        c.tcp("10.0.0.1", "10.0.0.2", 40000, 443, dpkt.tcp.TH_SYN, 1, 0)
    rows = flows_of(c.write(tmp_path / "retx.pcap"))
    assert len(rows) == 1 and rows[0]["packets_fwd"] == 3


def test_flows_span_batches_and_files(tmp_path: Path) -> None:
    a, b = synth.Capture(), synth.Capture(start=1_763_769_700.0)
    a.tcp_session("10.0.0.1", "10.0.0.2", 40000, 3260, [(0, b"\x43" + b"\x00" * 47)], close=False)
    b.tcp("10.0.0.1", "10.0.0.2", 40000, 3260, dpkt.tcp.TH_ACK | dpkt.tcp.TH_FIN, 49, 5001)
    rows = flows_of(a.write(tmp_path / "a.pcap"), b.write(tmp_path / "b.pcap"))
    assert len(rows) == 1
    assert rows[0]["state"] == "closed"
    assert rows[0]["packets_fwd"] == 4


def test_bytes_are_wire_lengths_and_payload(tmp_path: Path) -> None:
    c = synth.Capture()
    c.tcp_session("10.0.0.1", "10.0.0.2", 40000, 9000, [(0, b"a" * 3000)], close=False)
    r = flows_of(c.write(tmp_path / "b.pcap"))[0]
    # 3 handshake/ack frames + 3 data frames: 54-byte headers each
    assert r["bytes_fwd"] == 54 * 2 + 3 * 54 + 3000
    assert r["payload_bytes_fwd"] == 3000 and r["payload_bytes_rev"] == 0


def test_ipv6_vlan_and_community_id(tmp_path: Path) -> None:
    c = synth.Capture(vlan=42)
    c.tcp_session("2001:db8:0:0::1", "2001:db8::2", 40000, 443, [(0, b"x")])
    r = flows_of(c.write(tmp_path / "v6.pcap"))[0]
    assert r["src_ip"] == "2001:db8::1" and r["dst_ip"] == "2001:db8::2"
    assert r["vlan"] == 42
    assert r["community_id"].startswith("1:") and len(r["community_id"]) == 30


def test_udp_direction_by_port(tmp_path: Path) -> None:
    c = synth.Capture()
    _, resp = synth.dns_exchange("appliance.corp.example", ["10.0.0.10"])
    c.udp("10.0.0.53", "10.0.0.1", 53, 50000, resp)  # answer first: capture began late
    r = flows_of(c.write(tmp_path / "dns.pcap"))[0]
    assert (r["src_ip"], r["dst_port"]) == ("10.0.0.1", 53)
    assert r["direction_inferred"] is True
    assert r["dns_answers"] == [{"name": "appliance.corp.example", "address": "10.0.0.10"}]


def _frag_capture(path: Path) -> Path:
    """One UDP datagram in three IPv4 fragments, the first carrying the ports."""
    payload = b"A" * 2000
    udp = struct.pack("!HHHH", 5000, 6000, 8 + len(payload), 0) + payload
    frags = [(0, udp[:1480], True), (1480, udp[1480:], False)]
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for i, (off, data, more) in enumerate(frags):
            hdr = struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(data),
                77,
                (0x2000 if more else 0) | (off // 8),
                64,
                17,
                0,
                bytes([10, 0, 0, 1]),
                bytes([10, 0, 0, 2]),
            )
            eth = b"\x04" * 6 + b"\x02" * 6 + b"\x08\x00" + hdr + data
            w.writepkt(eth, ts=1_700_000_000 + i)
    return path


def test_fragments_join_their_first_fragment(tmp_path: Path) -> None:
    rows = flows_of(_frag_capture(tmp_path / "frag.pcap"))
    assert len(rows) == 1
    assert (rows[0]["src_port"], rows[0]["dst_port"]) == (5000, 6000)
    assert rows[0]["packets_fwd"] == 2


def test_flows_json_contract(states_pcap: Path) -> None:
    res = CliRunner().invoke(flows_command, [str(states_pcap), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc) == {"captures", "flows"}
    cap = doc["captures"][0]
    for key in (
        "path",
        "format",
        "linktypes",
        "packets",
        "bytes",
        "first_seen",
        "last_seen",
        "truncated",
        "decode_errors",
    ):
        assert key in cap
    for f in doc["flows"]:
        for key in (
            "flow_id",
            "community_id",
            "src_ip",
            "src_port",
            "dst_ip",
            "dst_port",
            "proto",
            "first_seen",
            "last_seen",
            "packets_fwd",
            "packets_rev",
            "bytes_fwd",
            "bytes_rev",
            "state",
            "direction_inferred",
            "app",
            "tls_version",
            "sni",
            "vlan",
            "tunnel",
        ):
            assert key in f
        assert f["first_seen"].endswith("Z")


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "parquet"])
def test_flows_formats(states_pcap: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"flows.{fmt}"
    res = CliRunner().invoke(
        flows_command,
        [str(states_pcap), "--format", fmt, "-o", str(out)],
        env={"COLUMNS": "200"},  # wide enough for the table's state column
    )
    assert res.exit_code == 0, res.output
    data = out.read_bytes()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(out).num_rows == 5
    elif fmt == "csv":
        assert data.decode().count("\n") == 6
    elif fmt == "table":
        assert b"rejected" in data


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p, "No such file"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
        (lambda p: (p.write_text("hello, this is not a capture\n"), p)[1], "not a pcap or pcapng"),
        (lambda p: (p.mkdir(), p)[1], "no capture files"),
    ],
    ids=["missing", "empty", "foreign", "empty-directory"],
)
def test_bad_captures_exit_capture_and_keep_the_others(
    tmp_path: Path, states_pcap: Path, make: Any, fragment: str
) -> None:
    bad = make(tmp_path / "bad.pcap")
    res = CliRunner().invoke(flows_command, [str(bad), str(states_pcap), "--format", "json"])
    assert res.exit_code == ExitCode.CAPTURE
    assert fragment.lower() in res.stderr.lower()
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert len(json.loads(res.stdout)["flows"]) == 5


def test_truncated_capture_keeps_readable_part(tmp_path: Path, states_pcap: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = states_pcap.read_bytes()
    cut.write_bytes(data[: len(data) - 30])
    os.utime(cut, (1e9, 1e9))  # long closed: cut short, not still being written
    res = CliRunner().invoke(flows_command, [str(cut), "--format", "json"])
    assert res.exit_code == ExitCode.CAPTURE, res.stderr
    assert (
        res.stderr == f"pcap-audit: {cut}: file ends inside a record at byte 1196 (50 bytes left)\n"
    )
    doc = json.loads(res.stdout)
    assert doc["captures"][0]["truncated"] is True
    assert doc["captures"][0]["complete"] is False
    # the last record (the midstream flow's only packet) is the one cut short
    assert len(doc["flows"]) == 4
    assert doc["captures"][0]["packets"] == 15


def test_flushing_settled_flows_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Classifying settled flows early (to bound memory) gives the same table as at the end."""
    from auditor import flows as F
    from auditor.capture import read_packets

    c = synth.Capture()
    for i in range(40):
        c.tcp_session(
            f"10.0.1.{i + 1}",
            "10.0.0.2",
            40000 + i,
            443,
            synth.tls_handshake("TLS 1.2", sni=f"h{i}.example", app_bytes=100),
        )
        c.tcp_session(
            f"10.0.1.{i + 1}",
            "10.0.0.3",
            41000 + i,
            80,
            [(0, synth.http_request("GET", f"/{i}", "web")), (1, synth.http_response())],
            close=False,
        )
    path = c.write(tmp_path / "many.pcap")

    def build(flush_at: int) -> list[dict[str, Any]]:
        monkeypatch.setattr(F, "FLUSH_PENDING", flush_at)
        b = F.FlowBuilder()
        for batch in read_packets(path, batch_size=50):
            b.add_batch(batch, 0)
        assert flush_at > 1000 or len(b.facts) > 0  # the small threshold did flush
        return b.table().drop_columns(["src_ip_bytes", "dst_ip_bytes"]).to_pylist()

    assert build(3) == build(10**9)


def test_syn_retransmitted_after_rst_is_the_same_attempt(tmp_path: Path) -> None:
    """Same ISN again after the RST: a retransmission, one rejected attempt (pop3.pcap has it)."""
    c = synth.Capture()
    for _ in range(3):
        c.tcp("10.0.0.1", "10.0.0.2", 40000, 110, dpkt.tcp.TH_SYN, 4242, 0)
        c.tcp("10.0.0.2", "10.0.0.1", 110, 40000, dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, 0, 4243)
    rows = flows_of(c.write(tmp_path / "retx-rst.pcap"))
    assert [(r["state"], r["packets_fwd"], r["packets_rev"]) for r in rows] == [("rejected", 3, 3)]


def test_directions_on_different_vlans_are_one_flow(tmp_path: Path) -> None:
    """A SPAN feed may carry requests on one VLAN and replies on another."""
    out, back = synth.Capture(vlan=81), synth.Capture(vlan=80)
    out.tcp("10.0.0.1", "10.0.0.2", 40000, 389, dpkt.tcp.TH_SYN, 1, 0)
    back.tcp("10.0.0.2", "10.0.0.1", 389, 40000, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, 9, 2)
    out.tcp("10.0.0.1", "10.0.0.2", 40000, 389, dpkt.tcp.TH_ACK, 2, 10)
    back.clock = out.clock = 0
    out.frames += back.frames
    rows = flows_of(out.write(tmp_path / "vlans.pcap"))
    assert len(rows) == 1
    assert (rows[0]["state"], rows[0]["vlan"]) == ("established", 81)


def _http_request_sent(c: synth.Capture) -> int:
    """10.0.0.1:40000 -> 10.0.0.2:80: handshake and a GET; returns the request's length."""
    a, b, syn, ack = "10.0.0.1", "10.0.0.2", dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK
    req = synth.http_request("GET", "/x", "web")
    c.tcp(a, b, 40000, 80, syn, 100, 0)
    c.tcp(b, a, 80, 40000, syn | ack, 500, 101)
    c.tcp(a, b, 40000, 80, ack | dpkt.tcp.TH_PUSH, 101, 501, req)
    return len(req)


def _dns_noise(c: synth.Capture, n: int) -> None:
    """n one-packet flows, so that the builder looks for settled flows meanwhile."""
    for i in range(n):
        c.udp(f"10.0.1.{i + 1}", "10.0.0.53", 50000 + i, 53, b"\x12\x34" + bytes(20))


def _built_looking_every_time(path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A FlowBuilder fed 4-packet batches that looks for settled flows after each."""
    from auditor import flows as F
    from auditor.capture import read_packets

    monkeypatch.setattr(F, "FLUSH_PENDING", 1)
    builder = F.FlowBuilder()
    for batch in read_packets(path, batch_size=4):
        builder.add_batch(batch, 0)
    return builder


def test_half_closed_flow_keeps_the_answer_after_the_client_fin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends its request and a FIN before the answer (a half-close) is not a
    settled flow: the server's response, sent later, is still classified, however often
    the builder looks for settled flows."""
    c = synth.Capture()
    n = _http_request_sent(c)
    ack = dpkt.tcp.TH_ACK
    c.tcp("10.0.0.1", "10.0.0.2", 40000, 80, ack | dpkt.tcp.TH_FIN, 101 + n, 501)
    _dns_noise(c, 30)
    response = synth.http_response(404)
    c.tcp("10.0.0.2", "10.0.0.1", 80, 40000, ack | dpkt.tcp.TH_PUSH, 501, 102 + n, response)
    builder = _built_looking_every_time(c.write(tmp_path / "half-close.pcap"), monkeypatch)
    row = next(r for r in builder.table().to_pylist() if r["dst_port"] == 80)
    assert (row["http_method"], row["http_status"]) == ("GET", 404)


def test_reset_flow_is_classified_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reset connection gets no more heads: it is classified (and its heads dropped) as soon
    as the builder looks, not at the end."""
    c = synth.Capture()
    _http_request_sent(c)
    c.tcp("10.0.0.2", "10.0.0.1", 80, 40000, dpkt.tcp.TH_RST, 501, 0)
    _dns_noise(c, 8)
    builder = _built_looking_every_time(c.write(tmp_path / "reset.pcap"), monkeypatch)
    assert builder.facts[0].app == "http"
    assert 0 not in builder.heads


def test_ip_texts_in_c_match_python() -> None:
    """auditor._flowid.ip_texts (the flow table's) gives the strings ip_text gives."""
    import random

    import numpy as np

    from auditor._flowid import ip_text_buffers, ip_texts
    from auditor.flows import ip_text

    rnd = random.Random(3)
    addrs = [
        b"\x00" * 16,
        b"\x00" * 15 + b"\x01",
        b"\x00" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1]),
        b"\x00" * 12 + bytes([1, 2, 3, 4]),
        b"\xfe\x80" + b"\x00" * 13 + b"\x01",
        *(b"\x00" * 10 + b"\xff\xff" + rnd.randbytes(4) for _ in range(200)),
        *(rnd.randbytes(16) for _ in range(200)),
        *(rnd.randbytes(2) + b"\x00" * rnd.randrange(14) for _ in range(200)),
    ]
    addrs = [(a + b"\x00" * 16)[:16] for a in addrs]
    got = ip_texts(np.frombuffer(b"".join(addrs), np.uint8).reshape(-1, 16))
    assert got == [ip_text(a) for a in addrs]
    offsets, chars = ip_text_buffers(np.frombuffer(b"".join(addrs), np.uint8).reshape(-1, 16))
    off = np.frombuffer(offsets, np.int32).tolist()
    assert [chars[off[i] : off[i + 1]].decode() for i in range(len(addrs))] == got
    assert ip_text_buffers(b"") == (b"\x00" * 4, b"")
    with pytest.raises(ValueError, match="16 bytes"):
        ip_texts(b"\x00" * 17)


def test_tunneled_and_plain_flows_keep_their_outer_addresses(tmp_path: Path) -> None:
    """Outer addresses are kept for the flows in a tunnel only (sparse), and come out right
    whatever the order of flows and tunnels."""
    from packets import eth, ipv4, tcp, udp, vxlan

    def inner(src: str, sport: int) -> bytes:
        return eth(ipv4(src, "10.9.0.1", 6, tcp(sport, 443)))

    frames = []
    for i in range(6):
        if i % 3 == 0:  # plain
            frames.append(inner(f"10.0.0.{i + 1}", 40000 + i))
        else:  # in VXLAN between two VTEPs that differ per flow
            frames.append(
                eth(
                    ipv4(
                        f"192.0.2.{i}",
                        f"198.51.100.{i}",
                        17,
                        udp(50000 + i, 4789, vxlan(inner(f"10.0.0.{i + 1}", 40000 + i), 70 + i)),
                    )
                )
            )
    path = tmp_path / "tun.pcap"
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for i, frame in enumerate(reversed(frames)):  # flow order differs from the index
            w.writepkt(frame, ts=1_700_000_000 + i)
    rows = {r["src_port"] - 40000: r for r in flows_of(path)}
    assert sorted(rows) == list(range(6))
    for i, r in rows.items():
        if i % 3 == 0:
            assert (r["tunnel"], r["outer_src"], r["outer_dst"], r["tunnel_id"]) == (
                None, None, None, None,
            )  # fmt: skip
        else:
            assert (r["tunnel"], r["outer_src"], r["outer_dst"], r["tunnel_id"]) == (
                "vxlan", f"192.0.2.{i}", f"198.51.100.{i}", 70 + i,
            )  # fmt: skip
        assert r["src_ip"] == f"10.0.0.{i + 1}" and r["dst_ip"] == "10.9.0.1"


def test_builder_is_done_after_table(tmp_path: Path, states_pcap: Path) -> None:
    from auditor.capture import read_packets
    from auditor.flows import FlowBuilder

    b = FlowBuilder()
    batches = list(read_packets(states_pcap))
    b.add_batch(batches[0], 0)
    assert b.table().num_rows == 5
    with pytest.raises(RuntimeError, match="after table"):
        b.add_batch(batches[0], 0)
    with pytest.raises(RuntimeError, match="called already"):
        b.table()
