"""Community ID against the reference implementation (the ``communityid`` package)."""

from __future__ import annotations

import random
import socket

import communityid
import numpy as np
import pytest

from auditor._flowid import identify, identify_buffers
from auditor.community_id import community_id, flow_id


def _v4(a: str) -> bytes:
    return b"\x00" * 10 + b"\xff\xff" + socket.inet_aton(a)


def _v6(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, a)


CASES = [
    (6, "128.232.110.120", "66.35.250.204", 34855, 80),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585),
    (1, "192.168.0.89", "192.168.0.1", 8, 0),
    (1, "192.168.0.1", "192.168.0.89", 0, 0),
    (1, "192.168.0.1", "192.168.0.89", 3, 1),  # one-way: destination unreachable
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0),
    (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:507:0:1:260:97ff:fe07:69ea", 128, 0),
    (132, "192.168.170.8", "192.168.170.56", 7, 7),
    (6, "2001:db8::1", "2001:db8::2", 443, 51515),
    (47, "10.0.0.1", "10.0.0.2", 0, 0),
    (6, "10.0.0.1", "10.0.0.1", 80, 81),
]


@pytest.mark.parametrize(("proto", "src", "dst", "sport", "dport"), CASES)
def test_matches_reference(proto: int, src: str, dst: str, sport: int, dport: int) -> None:
    v6 = ":" in src
    pack = _v6 if v6 else _v4
    ref = communityid.CommunityID()
    if proto in (1, 58, 6, 17, 132):
        tpl = communityid.FlowTuple(proto, src, dst, sport, dport)
    else:
        tpl = communityid.FlowTuple(proto, src, dst)
    assert community_id(proto, pack(src), pack(dst), sport, dport) == ref.calc(tpl)


def test_both_directions_agree() -> None:
    a, b = _v4("10.1.1.1"), _v4("10.1.1.2")
    assert community_id(6, a, b, 5000, 443) == community_id(6, b, a, 443, 5000)


def _identify(rows: list[tuple[int, bytes, bytes, int, int, int]]) -> tuple[list[str], list[str]]:
    proto, src, dst, sport, dport, ts = zip(*rows, strict=True)
    return identify(
        np.array(proto, np.uint8),
        np.frombuffer(b"".join(src), np.uint8),
        np.frombuffer(b"".join(dst), np.uint8),
        np.array(sport, np.uint16),
        np.array(dport, np.uint16),
        np.array(ts, np.int64),
    )


@pytest.mark.parametrize(("proto", "src", "dst", "sport", "dport"), CASES)
def test_c_version_matches_reference(
    proto: int, src: str, dst: str, sport: int, dport: int
) -> None:
    """auditor._flowid.identify (what the flow table uses) against the reference package."""
    pack = _v6 if ":" in src else _v4
    ref = communityid.CommunityID()
    if proto in (1, 58, 6, 17, 132):
        tpl = communityid.FlowTuple(proto, src, dst, sport, dport)
    else:
        tpl = communityid.FlowTuple(proto, src, dst)
    cids, fids = _identify([(proto, pack(src), pack(dst), sport, dport, 1_700_000_000_123_456_789)])
    assert cids == [ref.calc(tpl)]
    assert fids == [flow_id(ref.calc(tpl), 1_700_000_000_123_456_789)]


def test_c_version_matches_python_on_random_flows() -> None:
    """Many random flows (IPv4, IPv6, ICMP pairs and one-way types, equal addresses, negative
    and large timestamps): the C and the Python version give the same identifiers."""
    rnd = random.Random(7)
    rows = []
    for _ in range(3000):
        if rnd.random() < 0.5:
            a = b"\x00" * 10 + b"\xff\xff" + rnd.randbytes(4)
            b = b"\x00" * 10 + b"\xff\xff" + rnd.randbytes(4)
        else:
            a, b = rnd.randbytes(16), rnd.randbytes(16)
        if rnd.random() < 0.1:
            b = a
        proto = rnd.choice([1, 6, 17, 58, 132, 2, 47, 50])
        sport = rnd.choice([0, 3, 8, 128, 129, 135, rnd.randrange(65536)])
        dport = rnd.choice([0, 1, 53, rnd.randrange(65536)])
        ts = rnd.choice([0, -1, rnd.randrange(-(2**63), 2**63)])
        rows.append((proto, a, b, sport, dport, ts))
    cids, fids = _identify(rows)
    for (proto, a, b, sport, dport, ts), cid, fid in zip(rows, cids, fids, strict=True):
        assert cid == community_id(proto, a, b, sport, dport)
        assert fid == flow_id(cid, ts)
    # the buffers the flow table uses: the same characters, and keys that sort as the ids
    proto, src, dst, sport, dport, ts = zip(*rows, strict=True)
    cchars, fchars, keys = identify_buffers(
        np.array(proto, np.uint8),
        np.frombuffer(b"".join(src), np.uint8),
        np.frombuffer(b"".join(dst), np.uint8),
        np.array(sport, np.uint16),
        np.array(dport, np.uint16),
        np.array(ts, np.int64),
    )
    n = len(rows)
    assert [cchars[30 * i : 30 * i + 30].decode() for i in range(n)] == cids
    assert [fchars[17 * i : 17 * i + 17].decode() for i in range(n)] == fids
    by_key = np.argsort(np.frombuffer(keys, np.uint64), kind="stable")
    assert [fids[i] for i in by_key] == sorted(fids)


def test_c_version_rejects_columns_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="expected"):
        identify(
            np.zeros(2, np.uint8),
            np.zeros(32, np.uint8),
            np.zeros(16, np.uint8),
            np.zeros(2, np.uint16),
            np.zeros(2, np.uint16),
            np.zeros(2, np.int64),
        )
