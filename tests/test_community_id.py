"""Community ID against the reference implementation (the ``communityid`` package)."""

from __future__ import annotations

import socket

import communityid
import pytest

from auditor.community_id import community_id


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
