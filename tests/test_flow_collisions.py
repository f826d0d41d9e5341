"""A flow table no one can fool (issue 10, item 6).

The reader's flow key is a 64-bit hash. With known constants its multiply/fold is easy to
collide on purpose: an address whose first 8 bytes equal the first constant zeroes the first
product, so every such IPv6 address hashes alike. The constants are now keyed by a
per-process random seed, and the flow table compares the full key (protocol, both address
and port endpoints) on every hash hit. These tests craft a colliding pair against a fixed
seed and show that it stays two flows, and force collisions everywhere with a narrowed hash.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from auditor import synth
from auditor._flowtab import FlowTable
from auditor.capture import _fast, read_packets
from auditor.cli.flows import command as flows_command
from auditor.flows import FlowBuilder

SEED = 0x5EED_F10E
HASH_K0 = 0xA0761D6478BD642F  # the first constant of _fast.c's flow hash, before seeding
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
M64 = (1 << 64) - 1


def seeded_k0(seed: int) -> int:
    """The first hash constant for ``seed``: HASH_K0 xor the first splitmix64 output."""
    z = (seed + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return HASH_K0 ^ z ^ (z >> 31)


@pytest.fixture
def fixed_seed() -> Iterator[int]:
    old = _fast.set_flow_seed(SEED)
    yield SEED
    _fast.set_flow_seed(old)


def colliding_pair(seed: int) -> tuple[str, str, str]:
    """Two IPv6 addresses whose flows to the same peer and ports hash alike under ``seed``,
    and that peer (above both, so they are the lower ends of their flows)."""
    prefix = seeded_k0(seed).to_bytes(8, "little")
    a1 = ipaddress.IPv6Address(prefix + bytes(7) + b"\x01")
    a2 = ipaddress.IPv6Address(prefix + bytes(7) + b"\x02")
    peer = ipaddress.IPv6Address(b"\xff" * 15 + b"\xfe")
    assert a1.packed < peer.packed
    return str(a1), str(a2), str(peer)


def keys_of(seed: int, src: list[str], dst: str, sport: int, dport: int) -> list[int]:
    """The scanner's flow keys of TCP flows src[i]:sport -> dst:dport under ``seed``."""
    old = _fast.set_flow_seed(seed)
    try:
        n = len(src)
        key, dirs = np.zeros(n, np.uint64), np.zeros(n, np.uint8)
        _fast.flow_keys(
            np.full(n, 6, np.uint8),
            np.frombuffer(b"".join(ipaddress.IPv6Address(a).packed for a in src), np.uint8),
            np.full(n, sport, np.uint16),
            np.frombuffer(ipaddress.IPv6Address(dst).packed * n, np.uint8),
            np.full(n, dport, np.uint16),
            np.full(n, -1, np.int32),
            key,
            dirs,
        )
        return [int(k) for k in key]
    finally:
        _fast.set_flow_seed(old)


def test_crafted_pair_collides_only_under_its_seed() -> None:
    a1, a2, peer = colliding_pair(SEED)
    k1, k2 = keys_of(SEED, [a1, a2], peer, 40000, 443)
    assert k1 == k2  # a real 64-bit collision of the flow hash
    other = keys_of(SEED + 1, [a1, a2], peer, 40000, 443)
    assert other[0] != other[1]  # another seed: the same pair no longer collides


def test_default_seed_differs_per_process() -> None:
    """The seed is random per process (import), not a fixed public constant."""
    import subprocess
    import sys

    code = "from auditor.capture import _fast; print(_fast.set_flow_seed(0))"
    seeds = {subprocess.check_output([sys.executable, "-c", code], text=True) for _ in range(3)}
    assert len(seeds) == 3


def test_colliding_conversations_stay_two_flows(tmp_path: Path, fixed_seed: int) -> None:
    """The attack of issue 10: a forbidden conversation whose key collides with an allowed
    one is not hidden inside it."""
    a1, a2, peer = colliding_pair(fixed_seed)
    c = synth.Capture()
    c.tcp_session(a1, peer, 40000, 443, [(0, b"allowed" * 10)])
    c.tcp_session(a2, peer, 40000, 443, [(0, b"forbidden" * 100)])
    path = c.write(tmp_path / "collide.pcap")
    res = CliRunner().invoke(flows_command, [str(path), "--format", "json"])
    assert res.exit_code == 0, res.output
    flows = json.loads(res.stdout)["flows"]
    got = sorted((f["src_ip"], f["dst_ip"], f["payload_bytes_fwd"]) for f in flows)
    assert got == sorted([(a1, peer, 70), (a2, peer, 900)])


def _table(path: Path, tab: FlowTable) -> tuple[list[dict[str, Any]], set[int]]:
    """The flow table of ``path`` built with ``tab``, and the hash keys ``tab`` held."""
    b = FlowBuilder(tab=tab)
    for batch in read_packets(path, batch_size=256):
        b.add_batch(batch, 0)
    keys = set(np.frombuffer(tab.export()["key"], np.uint64).tolist())
    return b.table().drop_columns(["src_ip_bytes", "dst_ip_bytes"]).to_pylist(), keys


@pytest.mark.parametrize("bits", [1, 4])
@pytest.mark.parametrize("capture", sorted(SAMPLES.glob("*/findings.pcap")), ids=str)
def test_forced_collisions_change_nothing(capture: Path, bits: int) -> None:
    """With the hash narrowed to a few bits, nearly every flow collides with others; the
    full-key comparison keeps the flow table exactly as with the whole hash."""
    narrow, keys = _table(capture, FlowTable(hash_bits=bits))
    assert narrow == _table(capture, FlowTable())[0]
    assert len(keys) <= 2**bits


def test_hash_bits_is_checked() -> None:
    with pytest.raises(ValueError, match="hash_bits"):
        FlowTable(hash_bits=0)
    with pytest.raises(ValueError, match="hash_bits"):
        FlowTable(hash_bits=65)
