"""The inventory's addresses the capture never shows, kept as columns (``ListedHosts``) and
read in bulk by the checks, the document and the JSON renderer: every output must be what a
``HostRoles`` per address gave (the old way, rebuilt here from ``roles_for_ip``).

A 5,000-entry inventory beside the sample's own, with listed addresses on both sides of the
capture's hosts (IPv4 and IPv6), so the seen hosts are merged in among the listed ones.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from click.testing import CliRunner

from auditor import duck
from auditor.cli.main import cli
from auditor.findings import engine
from auditor.flows_out import public_flows
from auditor.report import render
from auditor.report.roles_table import render_json
from auditor.rolemap import ip_sort_key
from auditor.roles import HostRoles, RoleMap, host_roles_table, resolve_roles
from auditor.rules import Inventory, dump_inventory, load_inventory, load_ruleset
from auditor.traffic import read_traffic

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "applayering"
RS = load_ruleset("applayering")


def _mapping(n: int) -> dict[str, list[str]]:
    """The sample's inventory, and ``n`` more entries: addresses (some beside the sample's
    hosts in 10.10.0.0/24), networks, IPv6 addresses and networks, names."""
    rng = random.Random(11)
    roles = ["appliance", "agent", "admin", "file_server", "vcenter", "pvs_agent"]
    out = {
        r: list(e) for r, e in load_inventory(SAMPLE / "findings.inventory.yaml", RS).roles.items()
    }
    for i in range(n):
        role = roles[i % len(roles)]
        k = i % 20
        if k < 10:
            entry = f"172.{16 + rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}"
        elif k < 12:
            entry = f"10.10.0.{rng.randrange(256)}"
        elif k < 15:
            entry = f"172.{16 + rng.randrange(4)}.{rng.randrange(256)}.0/{rng.randrange(14, 33)}"
        elif k < 17:
            entry = f"{rng.choice(['2001:db8', 'fd00:10', 'fd00:ff'])}::{rng.randrange(1 << 16):x}"
        elif k < 18:
            entry = f"2001:db8:{rng.randrange(1 << 16):x}::/{rng.randrange(32, 129)}"
        else:
            entry = f"host{i}.corp.example.com"
        out.setdefault(role, []).append(entry)
    return out


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("listed") / "big.yaml"
    dump_inventory(_mapping(5_000), path, ruleset=RS)
    inv = load_inventory(path, RS)
    traffic = read_traffic([SAMPLE / "findings.pcap"])
    assert traffic.flows is not None
    flows = public_flows(traffic.flows)
    roles = resolve_roles(RS, flows, inv)
    return {"path": path, "inv": inv, "flows": flows, "roles": roles}


def _old_hosts(inv: Inventory, roles: RoleMap) -> list[HostRoles]:
    """The hosts as a HostRoles each: the traffic's hosts, and one per listed address not
    among them, from ``roles_for_ip``; sorted by address, IPv4 first."""
    seen = {h.ip for h in roles.seen}
    listed = [
        HostRoles(
            ip,
            tuple(sorted(inv.roles_for_ip(ip))),
            "inventory",
            1.0,
            (f"inventory: address {ip} (not seen in the capture)",),
        )
        for ip in inv.addresses()
        if ip not in seen
    ]
    return sorted([*roles.seen, *listed], key=lambda h: ip_sort_key(h.ip))


def test_listed_hosts_are_columns_merged_in_order(case: dict[str, Any]) -> None:
    roles, old = case["roles"], _old_hosts(case["inv"], case["roles"])
    assert len(roles.listed) > 3_000 and roles.seen
    assert any(":" in ip for ip in roles.listed.addresses)
    ips = [h.ip for h in old]
    # seen hosts fall between listed addresses, not all before or after them
    first, last = ips.index(roles.seen[0].ip), ips.index(roles.seen[-1].ip)
    assert first > 0 and last < len(ips) - 1
    assert roles.hosts == old
    entries = roles.entries()
    want = [h.to_json() for h in old]
    assert len(entries) == len(want)
    assert list(entries) == want and entries == want and want == list(entries)
    for i in (0, first, first + 1, last, -1, -len(want)):
        assert entries[i] == want[i]
    assert entries[first - 2 : last + 3] == want[first - 2 : last + 3]
    with pytest.raises(IndexError):
        entries[len(want)]
    assert roles.present() == {r for h in old for r in h.roles}


def test_hosts_by_role_is_what_sql_listed(case: dict[str, Any]) -> None:
    """The missing-flow evidence (each role's hosts) as the query built it before."""
    old = _old_hosts(case["inv"], case["roles"])
    with duck.cursor() as con:
        con.register("host_roles", host_roles_table(old))
        want = dict(
            con.execute(
                "SELECT role, list(DISTINCT ip ORDER BY ip) FROM host_roles GROUP BY role"
            ).fetchall()
        )
    assert case["roles"].hosts_by_role() == want


def test_checks_are_those_of_a_host_each(
    case: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Findings and role pairs: the same from the columns as from a HostRoles per address
    (missing flows forced to be looked for, so their evidence is compared too)."""
    flows, roles = case["flows"], case["roles"]
    old = RoleMap(_old_hosts(case["inv"], roles), True)
    monkeypatch.setattr(engine, "_may_miss", lambda *_: True)
    got = engine.run_checks(RS, flows, roles, 7200.0)
    want = engine.run_checks(RS, flows, old, 7200.0)
    assert got == want
    assert any(f.kind == "missing_flow" for f in got[0])


def test_documents_are_those_of_a_host_each(case: dict[str, Any]) -> None:
    """The audit's JSON, HTML and text, and ``pcap-audit roles --format json``: the same
    bytes as with a dict per host."""
    result = engine.audit([SAMPLE / "findings.pcap"], RS, case["inv"], fail_on="never").result
    old = _old_hosts(case["inv"], case["roles"])
    plain = replace(result, roles=tuple(h.to_json() for h in old))
    assert type(result.roles).__name__ == "RoleEntries" and isinstance(plain.roles, tuple)
    assert result == plain and result.to_json() == plain.to_json()
    for fmt in ("json", "html", "table", "markdown"):
        assert render(result, fmt) == render(plain, fmt), fmt
    assert json.loads(render(result, "json"))["roles"] == [h.to_json() for h in old]

    runner = CliRunner()
    args = ["roles", str(SAMPLE / "findings.pcap"), "--ruleset", "applayering"]
    args += ["--inventory", str(case["path"])]
    out = runner.invoke(cli, [*args, "--format", "json"])
    assert out.exit_code == 0, out.output
    want = {"ruleset": "applayering", "roles": [h.to_json() for h in old]}
    assert out.output == json.dumps(want, indent=2) + "\n"


_ENTRY = {
    "ip": "10.0.0.1",
    "roles": ["agent", "admin"],
    "source": "inferred",
    "confidence": 0.75,
    "evidence": ['agent: "quoted" é \u202e\n'],
    "names": [],
}


@pytest.mark.parametrize(
    "entries",
    [(), (_ENTRY,), (MappingProxyType(_ENTRY), {**_ENTRY, "ip": "::1", "roles": []})],
)
def test_roles_json_is_indented_json(entries: tuple[Any, ...]) -> None:
    """``pcap-audit roles --format json`` encodes each entry alone: the same text as the
    indented encoding of the whole."""
    want = json.dumps({"ruleset": "r\u00e9", "roles": [dict(e) for e in entries]}, indent=2)
    assert render_json("r\u00e9", entries) == want + "\n"
