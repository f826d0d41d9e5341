"""A large inventory for ``make bench``: ``n`` entries over five roles of the applayering
ruleset, as a deployment might list them: six in ten single IPv4 addresses, two in ten
IPv4 networks of every prefix length (nested, overlapping), one in ten IPv6 networks and one
in ten DNS names. Addresses are drawn from 172.16.0.0/14, clear of the samples' hosts.

    python bench/big_inventory.py 100000 big.yaml
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROLES = ("appliance", "agent", "admin", "file_server", "vcenter")


def big_inventory(n: int, seed: int = 7) -> dict[str, list[str]]:
    rng = random.Random(seed)
    out: dict[str, list[str]] = {r: [] for r in ROLES}
    for i in range(n):
        k = i % 10
        if k < 6:
            entry = f"172.{16 + rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}"
        elif k < 8:
            entry = f"172.{16 + rng.randrange(4)}.{rng.randrange(256)}.0/{rng.randrange(14, 33)}"
        elif k < 9:
            entry = f"2001:db8:{rng.randrange(1 << 16):x}::/{rng.randrange(32, 129)}"
        else:
            entry = f"host{i}.corp.example.com"
        out[ROLES[i % len(ROLES)]].append(entry)
    return out


def write_inventory(path: Path, n: int) -> None:
    from auditor.rules import dump_inventory

    dump_inventory(big_inventory(n), path, ruleset="applayering")


if __name__ == "__main__":
    write_inventory(Path(sys.argv[2]), int(sys.argv[1]))
