"""Community ID v1 (https://github.com/corelight/community-id-spec), the flow hash that Zeek,
Suricata and Arkime share, so that a flow here can be looked up there.

This is the reference version, one flow per call, checked against the ``communityid``
package in the tests (that package builds and validates a ``FlowTuple`` object per call,
tens of microseconds each). The flow table computes both identifiers of every flow in one C
call (``auditor._flowid.identify``), and the tests check it against these functions.
"""

from __future__ import annotations

import base64
import hashlib
import struct

_V4_PREFIX = b"\x00" * 10 + b"\xff\xff"

# ICMP/ICMPv6 request/response pairs: type -> the type of its counterpart (mirrors Zeek).
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_PAIRS = {
    128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135,
    130: 131, 131: 130, 144: 145, 145: 144,
}  # fmt: skip
_PORT_PROTOS = {1, 6, 17, 58, 132}


_SEED = struct.Struct("!H")
_PROTO = struct.Struct("!BB")
_PORTS = struct.Struct("!HH")


def community_id(
    proto: int, src16: bytes, dst16: bytes, sport: int, dport: int, seed: int = 0
) -> str:
    """Community ID of one flow; addresses as 16-byte (IPv4-mapped) values, ICMP type/code as ports."""
    if src16[:12] == _V4_PREFIX:
        saddr, daddr = src16[12:], dst16[12:]
    else:
        saddr, daddr = src16, dst16
    one_way = False
    if proto == 1 or proto == 58:
        pairs = _ICMP4_PAIRS if proto == 1 else _ICMP6_PAIRS
        counterpart = pairs.get(sport)
        if counterpart is None:
            one_way = True
        else:
            dport = counterpart
    if not one_way and (saddr, sport) > (daddr, dport):
        saddr, daddr, sport, dport = daddr, saddr, dport, sport
    data = _SEED.pack(seed) + saddr + daddr + _PROTO.pack(proto, 0)
    if proto in _PORT_PROTOS:
        data += _PORTS.pack(sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def flow_id(cid: str, first_ts: int) -> str:
    """pcap-audit's flow id, stable across runs: BLAKE2b-64 of the Community ID and the
    first packet's time (ns since the epoch)."""
    return "F" + hashlib.blake2b(f"{cid}|{first_ts}".encode(), digest_size=8).hexdigest()
