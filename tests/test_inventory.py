"""Inventories: parsing (YAML and CSV), validation errors with lines, matching, writing."""

from __future__ import annotations

import io
import ipaddress
import random
import re
from pathlib import Path

import pytest

from auditor.errors import ExitCode, InventoryError
from auditor.rules import (
    Inventory,
    classify_entry,
    dump_inventory,
    load_inventory,
    load_ruleset,
    name_matches,
)

BAD = Path(__file__).parent / "data" / "bad_inventories"
RS = load_ruleset("applayering")

INVENTORY = """\
ruleset: applayering
description: lab capture, March
roles:
  appliance: 10.0.0.5
  agent:
    - 10.0.0.20
  pvs_agent: [10.0.1.0/24, pvs01.corp.example.]
  hyperv_agent:
    - 2001:db8::20          # YAML 1.1 would read some of these as numbers
    - 2001:0:0:0:0:0:0:1    # a base-60 integer to YAML 1.1
    - fd00:1::/64
  azure:
    - "*.blob.core.windows.net"
    - Management.Azure.com
  vcenter: []
  esxi:
"""


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    path = tmp_path / "hosts.yaml"
    path.write_text(INVENTORY)
    return load_inventory(path, RS)


def test_loads_and_keeps_entries(inv: Inventory) -> None:
    assert inv.ruleset == "applayering"
    assert inv.description == "lab capture, March"
    assert inv.entries("appliance") == ("10.0.0.5",)
    assert inv.entries("pvs_agent") == ("10.0.1.0/24", "pvs01.corp.example")
    assert inv.entries("hyperv_agent") == ("2001:db8::20", "2001::1", "fd00:1::/64")
    assert inv.entries("vcenter") == () and inv.entries("esxi") == ()
    assert "nutanix_prism" not in inv.roles


@pytest.mark.parametrize(
    "ip,roles",
    [
        ("10.0.0.5", {"appliance"}),
        ("10.0.0.20", {"agent"}),
        ("10.0.1.77", {"pvs_agent", "agent"}),  # pvs_agent implies agent
        ("10.0.2.1", set()),
        ("::ffff:10.0.0.5", {"appliance"}),  # IPv4-mapped IPv6
        ("2001:db8::20", {"hyperv_agent", "agent"}),
        ("2001:DB8:0:0:0:0:0:20", {"hyperv_agent", "agent"}),
        ("2001:0:0:1::", set()),
        ("2001::1", {"hyperv_agent", "agent"}),
        ("2001::2", set()),
        ("fd00:1::abcd", {"hyperv_agent", "agent"}),
        ("fd00:2::1", set()),
        ("not an ip", set()),
        ("", set()),
    ],
)
def test_roles_for_ip(inv: Inventory, ip: str, roles: set[str]) -> None:
    assert inv.roles_for_ip(ip) == roles


@pytest.mark.parametrize(
    "name,roles",
    [
        ("pvs01.corp.example", {"pvs_agent", "agent"}),
        ("PVS01.Corp.Example.", {"pvs_agent", "agent"}),  # case and trailing dot
        ("x.pvs01.corp.example", set()),  # exact names do not match subdomains
        ("management.azure.com", {"azure"}),
        ("acct.blob.core.windows.net", {"azure"}),
        ("a.b.c.blob.core.windows.net.", {"azure"}),  # any depth
        ("blob.core.windows.net", set()),  # the wildcard needs a subdomain
        ("xblob.core.windows.net", set()),
        ("", set()),
    ],
)
def test_roles_for_name(inv: Inventory, name: str, roles: set[str]) -> None:
    assert inv.roles_for_name(name) == roles


def test_one_host_several_roles(tmp_path: Path) -> None:
    path = tmp_path / "multi.yaml"
    path.write_text(
        "roles:\n  active_directory: [dc1.corp.example, 10.1.1.1]\n"
        "  dns_server: [10.1.1.0/30]\n  ntp_server: [DC1.corp.example]\n"
    )
    inv = load_inventory(path, "applayering")  # the ruleset by name works too
    assert inv.roles_for_ip("10.1.1.1") == {"active_directory", "dns_server"}
    assert inv.roles_for_name("dc1.corp.example") == {"active_directory", "ntp_server"}


def test_empty_roles_is_an_empty_inventory(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("roles:\n")
    inv = load_inventory(path, RS)
    assert inv.roles == {} and inv.roles_for_ip("10.0.0.1") == set()


def test_csv_inventory(tmp_path: Path) -> None:
    path = tmp_path / "hosts.csv"
    path.write_text(
        "role,entry,comment\n# a comment\n\nappliance,10.0.0.5,the ELM\n"
        'azure,"*.blob.core.windows.net"\npvs_agent,10.0.1.0/24\n'
    )
    inv = load_inventory(path, RS)
    assert inv.roles_for_ip("10.0.0.5") == {"appliance"}
    assert inv.roles_for_ip("10.0.1.9") == {"pvs_agent", "agent"}
    assert inv.roles_for_name("x.blob.core.windows.net") == {"azure"}


@pytest.mark.parametrize(
    "entry,kind",
    [
        ("10.0.0.1", "address"),
        ("10.0.0.0/8", "network"),
        ("10.0.0.1/8", "network"),  # host bits allowed: the network is meant
        ("::1", "address"),
        ("2001:db8::/32", "network"),
        ("host.example.com", "name"),
        ("Host.Example.COM.", "name"),
        ("*.amazonaws.com", "wildcard"),
        ("localhost", "name"),
    ],
)
def test_classify_entry(entry: str, kind: str) -> None:
    assert classify_entry(entry)[0] == kind


@pytest.mark.parametrize(
    "entry", ["10.0.0.256", "1.2.3", "10.0.0.0/33", "*", "a.*.com", "foo*.com", "-bad-.com", "a b"]
)
def test_classify_entry_rejects(entry: str) -> None:
    with pytest.raises(ValueError):
        classify_entry(entry)


def test_name_matches() -> None:
    assert name_matches("*.amazonaws.com", "s3.eu-west-1.amazonaws.com")
    assert not name_matches("*.amazonaws.com", "amazonaws.com")
    assert name_matches("alcdn.citrix.com", "ALCDN.citrix.com.")


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.*)$", path.read_text(), re.M)


BAD_FILES = sorted(BAD.iterdir())


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.name for p in BAD_FILES])
def test_bad_inventory(path: Path) -> None:
    wanted = expectations(path)
    assert wanted, f"{path.name} has no '# expect:' line"
    with pytest.raises(InventoryError) as err:
        load_inventory(path, RS)
    assert err.value.exit_code == ExitCode.USAGE
    message = err.value.one_line()
    for fragment in wanted:
        needle = f"{path.name}:{fragment}" if re.match(r"\d+:", fragment) else fragment
        assert needle in message


def test_unknown_role_lists_every_known_role() -> None:
    with pytest.raises(InventoryError) as err:
        load_inventory(BAD / "unknown_role.yaml", RS)
    assert str(err.value).endswith("known roles: " + ", ".join(RS.role_ids))


def test_missing_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such file"):
        load_inventory(tmp_path / "nope.yaml", RS)


def test_bad_ruleset_name_is_a_ruleset_error(tmp_path: Path) -> None:
    from auditor.errors import RulesetError

    path = tmp_path / "i.yaml"
    path.write_text("roles: {}\n")
    with pytest.raises(RulesetError, match="built-in rulesets are"):
        load_inventory(path, "nope")


def test_from_mapping_validates() -> None:
    inv = Inventory.from_mapping({"appliance": ["10.0.0.5"], "pvs_agent": ["pvs1"]}, RS)
    assert inv.roles_for_name("PVS1") == {"pvs_agent", "agent"}
    with pytest.raises(InventoryError, match=r"unknown role 'nope'.*known roles: appliance"):
        Inventory.from_mapping({"nope": ["10.0.0.5"]}, RS)
    with pytest.raises(InventoryError, match=re.escape("'10.0.0.999' is not a valid IP address")):
        Inventory.from_mapping({"appliance": ["10.0.0.999"]}, RS)


def test_dump_round_trip_with_comments(tmp_path: Path) -> None:
    mapping = {
        "appliance": ["10.0.0.5"],
        "azure": ["*.blob.core.windows.net", "2001:0:0:0:0:0:0:1"],
        "agent": [],
    }
    path = tmp_path / "out.yaml"
    dump_inventory(
        mapping,
        path,
        {"appliance": "serves tcp/3009 and tcp/8787\nseen from 3 agents", "nope": "unused"},
        ruleset=RS,
        entry_comments={("appliance", "10.0.0.5"): "elm.corp.example"},
        header="Written by pcap-audit roles; correct and pass with --inventory.",
    )
    text = path.read_text()
    assert text.startswith("# Written by pcap-audit roles")
    assert "  # serves tcp/3009 and tcp/8787\n  # seen from 3 agents\n  appliance:\n" in text
    assert '    - "10.0.0.5"  # elm.corp.example\n' in text
    assert "  agent: []\n" in text
    assert "  nutanix_prism: []\n" in text  # every role of the ruleset is offered
    inv = load_inventory(path, RS)
    assert inv.to_mapping()["azure"] == ["*.blob.core.windows.net", "2001::1"]
    assert inv.roles_for_ip("10.0.0.5") == {"appliance"}
    assert inv.roles_for_ip("2001::1") == {"azure"}
    assert set(inv.roles) == set(RS.role_ids)


def test_dump_to_stream_and_to_yaml(inv: Inventory) -> None:
    buf = io.StringIO()
    dump_inventory({}, buf)
    assert buf.getvalue() == "roles: {}\n"
    text = inv.to_yaml()
    assert text.startswith('ruleset: "applayering"\nroles:\n')
    again = Inventory.from_mapping(inv.to_mapping(), RS)
    assert again.to_mapping() == inv.to_mapping()


def test_entries_table(inv: Inventory) -> None:
    rows = inv.entries_table().to_pylist()
    assert {"role": "azure", "entry": "*.blob.core.windows.net", "kind": "wildcard"} in rows
    assert {"role": "pvs_agent", "entry": "10.0.1.0/24", "kind": "network"} in rows
    assert len(rows) == 9


def _big_inventory(n: int, seed: int = 7) -> dict[str, list[str]]:
    """``n`` entries over five roles: addresses, nested CIDRs of every length, IPv6
    networks and names, with overlaps (an address inside another role's network)."""
    rng = random.Random(seed)
    roles = ["appliance", "agent", "admin", "file_server", "vcenter"]
    out: dict[str, list[str]] = {r: [] for r in roles}
    for i in range(n):
        role = roles[i % len(roles)]
        k = i % 10
        if k < 6:
            entry = f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}"
        elif k < 8:
            entry = f"10.{rng.randrange(4)}.{rng.randrange(256)}.0/{rng.randrange(8, 33)}"
        elif k < 9:
            entry = f"2001:db8:{rng.randrange(1 << 16):x}::/{rng.randrange(32, 129)}"
        else:
            entry = f"host{i}.corp.example.com"
        out[role].append(entry)
    return out


def test_big_inventory_index_matches_a_scan() -> None:
    """The address index gives what checking every network would (the old way)."""
    mapping = _big_inventory(5_000)
    inv = Inventory.from_mapping(mapping, RS)
    nets = [
        (ipaddress.ip_network(e, strict=False), role)
        for role, entries in mapping.items()
        for e in entries
        if not e.endswith(".com")
    ]
    rng = random.Random(1)
    probes = [
        f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(300)
    ]
    probes += [
        f"2001:db8:{rng.randrange(1 << 16):x}::{rng.randrange(1 << 16):x}" for _ in range(100)
    ]
    probes += [e for entries in mapping.values() for e in entries[:20] if "/" not in e]
    matched = 0
    for ip in probes:
        addr = ipaddress.ip_address(ip) if not ip.endswith(".com") else None
        expected = {
            r for net, r in nets if addr is not None and addr.version == net.version and addr in net
        }
        assert inv.roles_for_ip(ip) == expected, ip
        matched += bool(expected)
    assert matched > 100  # the probes do hit networks of several lengths


def test_big_inventory_places_hosts_of_a_capture(tmp_path: Path) -> None:
    """100,000 entries (addresses, CIDRs, names) beside the sample's own inventory: the
    capture's hosts keep the roles the small inventory gives them, every listed address
    holds the roles a scan of every entry gives it, and the result is sorted by address.
    (``make bench`` prints what the 100,000 entries cost; no timing asserted here.)"""
    from auditor.flows_out import public_flows
    from auditor.roles import resolve_roles
    from auditor.traffic import read_traffic

    sample = Path(__file__).parents[1] / "samples" / "applayering"
    small = load_inventory(sample / "findings.inventory.yaml", RS)
    # the generated networks in 172.0.0.0/8, clear of the sample's 10.10.0.0/24
    mapping = {
        role: [re.sub(r"^10\.", "172.", e) for e in entries]
        for role, entries in _big_inventory(100_000).items()
    }
    for role, entries in small.to_mapping().items():
        mapping.setdefault(role, []).extend(entries)
    mapping["ntp_server"] += ["10.10.0.0/29", "time.corp.example.com"]  # 10.10.0.5 also NTP
    path = tmp_path / "big.yaml"
    dump_inventory(mapping, path, ruleset=RS)
    big = load_inventory(path, RS)
    traffic = read_traffic([sample / "findings.pcap"])
    assert traffic.flows is not None
    flows = public_flows(traffic.flows)
    got = {h.ip: h for h in resolve_roles(RS, flows, big).hosts}
    want = {h.ip: h for h in resolve_roles(RS, flows, small).hosts}
    assert got["10.10.0.10"].roles == ("appliance",)
    assert got["10.10.0.21"].roles == ("agent", "pvs_agent")
    assert got["10.10.0.5"].roles == ("active_directory", "ntp_server")
    assert got["10.10.0.8"].evidence == ("inventory: address 10.10.0.8 (not seen in the capture)",)
    for ip, h in want.items():
        if ip not in ("10.10.0.5", "10.10.0.6", "10.10.0.7", "10.10.0.8"):
            assert got[ip].roles == h.roles, ip
    # every listed address, with what a scan of every entry gives
    nets = [
        (ipaddress.ip_network(e, strict=False), role)
        for role, entries in mapping.items()
        for e in entries
        if not e.endswith(".com")
    ]
    rng = random.Random(5)
    listed = [e for entries in mapping.values() for e in entries if "/" not in e and "." in e]
    for ip in rng.sample([e for e in listed if not e.endswith(".com")], 40):
        addr = ipaddress.ip_address(ip)
        scan = {r for net, r in nets if addr.version == net.version and addr in net}
        held = set(got[ip].roles)
        assert scan <= held and held <= big.roles_for_ip(ip) == held, ip
    order = [ipaddress.ip_address(ip) for ip in got]
    assert order == sorted(order, key=lambda a: (a.version, a))
    assert len(got) > 50_000


@pytest.mark.parametrize("roles", [5, 70])  # more roles than a 63-bit mask: the slow way
def test_address_roles_is_roles_for_ip(roles: int) -> None:
    rng = random.Random(roles)
    mapping: dict[str, list[str]] = {}
    role_ids = list(RS.role_ids)
    for i in range(3_000):
        role = f"r{i % roles}" if roles > len(role_ids) else role_ids[i % roles]
        if i % 4 == 0:
            entry = f"10.{rng.randrange(2)}.{rng.randrange(256)}.0/{rng.randrange(8, 33)}"
        elif i % 9 == 0:
            entry = f"2001:db8::{rng.randrange(1 << 16):x}"
        else:
            entry = f"10.{rng.randrange(2)}.{rng.randrange(256)}.{rng.randrange(256)}"
        mapping.setdefault(role, []).append(entry)
    inv = Inventory(RS.name, mapping)
    skip = {mapping[next(iter(mapping))][1]}
    pairs = list(zip(*inv.address_roles(exclude=skip), strict=True))
    assert not skip & {ip for ip, _ in pairs}
    assert {ip for ip, _ in pairs} == set(inv.addresses()) - skip
    for ip, held in pairs:
        assert held == inv.roles_for_ip(ip), ip
    values = [ipaddress.ip_address(ip) for ip, _ in pairs]
    assert values == sorted(values, key=lambda a: (a.version, a))


def test_ipv6_entries_are_canonical() -> None:
    """Entries in hex groups are read without ``ipaddress``; the text kept is the same."""
    rng = random.Random(9)
    for _ in range(5_000):
        groups = [rng.choice([0, 0, 1, 0xFFFF, rng.randrange(1 << 16)]) for _ in range(8)]
        text = ":".join(f"{g:x}" for g in groups)
        length = rng.randrange(129)
        assert classify_entry(text)[1] == str(ipaddress.ip_address(text))
        assert classify_entry(f"{text}/{length}")[1] == str(
            ipaddress.ip_network(f"{text}/{length}", strict=False)
        )
    for bad in ["1:2:3:4:5:6:7:8:9", "12345::", "::g", "1::2::3", "2001:db8::/129", "::/1a"]:
        with pytest.raises(ValueError):
            classify_entry(bad)


def test_error_in_a_long_list_names_its_line(tmp_path: Path) -> None:
    """Lists of plain values are built without recording every item's line; an error
    still names the line of the item."""
    lines = ["roles:", "  agent:"] + [f"    - 10.0.{i // 256}.{i % 256}" for i in range(5_000)]
    lines[3000] = "    - 10.0.999.1"
    path = tmp_path / "long.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InventoryError) as err:
        load_inventory(path, RS)
    assert "long.yaml:3001: roles.agent[2998]" in err.value.one_line()


_PIECES = [
    "roles:", "roles: []", "ruleset: applayering", 'ruleset: "applayering"', "description: lab",
    "description: 'a # b'", "description:", "expect:", "# comment", "", "   ", "  agent:",
    "  agent: []", "  admin:  # c", "   admin:", "  vcenter: [] # c", "  null:", "  true:",
    "    - 10.0.0.1", '    - "10.0.0.2"  # c', "    - '*.a.example'", "    - *.b.example",
    "    - fe80::", "    - 2001:db8::/32", "    - null", "    - ~", "    - yes", "  - 10.0.0.3",
    "      - 10.0.0.4", "- 10.0.0.5", "    -  10.0.0.6", "    - a#b", "    - a #b", "---",
    "    - &x 10.0.0.7", "    - *x", '    - "a\\tb"', "    - 'it''s'", "  agent: 10.0.0.8",
    "  Agent:", "  agent-x:", "    - host.example.", "\t- 10.0.0.9", "roles: {}",
    # quoted as dump_inventory writes them, and near misses (runs of these are read at once)
    '    - "10.0.0.10"', '    - "10.0.0.11"', '    - "fe80::"', '    - "a: b"', '    - "null"',
    '    - ""', '    - "10.0.0.12" ', '    - "a # b"', '      - "10.0.0.13"', '  - "10.0.0.14"',
]  # fmt: skip


def test_quick_reader_agrees_with_yaml() -> None:
    """The plain form of an inventory is read without PyYAML; whatever that reading
    accepts, PyYAML reads the same (random files made of plain and tricky lines)."""
    rng = random.Random(11)
    taken = 0
    for _ in range(20_000):
        lines = ["roles:"] if rng.random() < 0.8 else []
        lines += [rng.choice(_PIECES) for _ in range(rng.randrange(1, 9))]
        text = "\n".join(lines) + rng.choice(["\n", "", "\n\n"])
        taken += _quick_agrees_with_yaml(text)
    assert taken > 500


def _quick_agrees_with_yaml(text: str) -> bool:
    """Whether the quick reader took ``text``; when it did, PyYAML reads the same."""
    from auditor.rules.inventory_reader import _quick_yaml
    from auditor.rules.yamlmarks import YamlProblem, parse_yaml

    quick = _quick_yaml(text)
    if quick is None:
        return False
    try:
        full = parse_yaml(text, strings=True).data
    except YamlProblem as exc:
        raise AssertionError(f"quick read {text!r}; YAML refuses it: {exc}") from None
    assert quick == full, text
    return True


_ITEMS = [
    '    - "10.0.0.1"', '    - "10.0.0.2"', '    - "fe80::"', '    - "a: b"', '    - "null"',
    '    - ""', '    - "10.0.0.3" ', '    - "a # b"', '    - "x" # c', "    - 10.0.0.4",
    "    - fe80::", "    - yes", "    - 'q'", "    # comment", "", '      - "10.0.0.5"',
    '  - "10.0.0.6"', "    - a #b",
]  # fmt: skip


def test_quick_reader_runs_agree_with_yaml() -> None:
    """Long lists are read a run of item lines at once: the same as PyYAML, whatever
    mix of quoted, plain, commented and misplaced item lines they hold."""
    rng = random.Random(12)
    taken = 0
    for _ in range(3_000):
        lines = ["roles:"]
        for role in rng.sample(["agent", "admin", "vcenter"], rng.randrange(1, 4)):
            lines.append(f"  {role}:")
            common = rng.choice(_ITEMS[:3])  # long runs of one kind, a few others in them
            lines += [
                rng.choice(_ITEMS) if rng.random() < 0.05 else common
                for _ in range(rng.randrange(1, 40))
            ]
        text = "\n".join(lines) + rng.choice(["\n", ""])
        taken += _quick_agrees_with_yaml(text)
    assert taken > 500


def test_written_inventories_are_read_the_quick_way(tmp_path: Path) -> None:
    from auditor.rules.inventory_reader import _quick_yaml

    path = tmp_path / "w.yaml"
    mapping = _big_inventory(2_000)
    dump_inventory(
        mapping,
        path,
        {"agent": "the agents"},
        ruleset=RS,
        entry_comments={("agent", mapping["agent"][0]): "first"},
        header="written",
    )
    data = _quick_yaml(path.read_text())
    assert data is not None and data["roles"]["agent"] == mapping["agent"]
    canonical = dict.fromkeys(classify_entry(e)[1] for e in mapping["agent"])
    assert load_inventory(path, RS).to_mapping()["agent"] == list(canonical)


_QUADS_AND_MORE = [
    "10.0.0.1",
    "10.0.0.2",
    " 10.0.0.3",  # looks like a dotted quad but for the space: the role goes one by one
    "10.0.0.1",  # listed twice
    "10.0.1.0/30",
    "2001:db8::1",
    "host.corp.example.com",
    "10.0.0.3",
    "host1",  # looks like a dotted quad to the first glance
    "10.0.2.7/24",  # host bits set
    "10.0.3.0/024",
    "10.0.2.0/24",  # the same network as above, once canonical
]


@pytest.mark.parametrize("first", [0, 2, 7])
def test_dotted_quads_in_bulk_are_entries_one_by_one(first: int) -> None:
    """The dotted quads and IPv4 networks a role lists are indexed in bulk: the same
    entries, kinds and roles as parsing each; an entry that only looks like one goes the
    slow way."""
    from auditor.rules.entries import parse_entry

    entries = _QUADS_AND_MORE[first:] + _QUADS_AND_MORE[:first]
    clean = [e for e in entries if e != " 10.0.0.3"]
    for listed in (entries, clean):
        inv = Inventory(RS.name, {"agent": listed, "admin": ["10.0.0.2", "10.0.0.0/31"]})
        want = tuple(dict.fromkeys(parse_entry(e).canon for e in listed))
        assert inv.entries("agent") == want
        assert {e: inv.kind(e) for e in want} == {e: parse_entry(e).kind for e in want}
        assert inv.roles_for_ip("10.0.0.2") == {"agent", "admin"}
        assert inv.roles_for_ip("10.0.0.3") == {"agent"}
        assert inv.roles_for_ip("10.0.0.4") == set()
        assert inv.roles_for_ip("10.0.1.3") == {"agent"}
        assert inv.roles_for_ip("10.0.2.200") == inv.roles_for_ip("10.0.3.1") == {"agent"}
        assert inv.roles_for_name("host1") == {"agent"}
        assert inv.roles_for_name("HOST.corp.example.com.") == {"agent"}
        assert sorted(inv.addresses()) == sorted(e for e in want if inv.kind(e) == "address")


@pytest.mark.parametrize(
    ("entries", "index"),
    [
        (["10.0.0.1", "10.0.0.256", "10.0.0.2", "nope..x"], 1),  # a quad inet_pton refuses
        (["10.0.0.1", "010.0.0.2", "10.0.0.3"], 1),  # leading zero
        (["10.0.0.1", "nope..x", "10.0.0.2", "10.0.0.300"], 1),  # the first bad one
        (["10.0.0.1", "10.0.0.2", "10.0.0/33"], 2),
        (["10.0.0.1", "10.0.0.0/24", "10.0.0.0/33", "10.0.0.0/8"], 2),
        (["10.0.0.0/24", "10.0.0.256/24", "10.0.0.0/33"], 1),
    ],
)
def test_bad_entry_among_quads_is_named(entries: list[str], index: int) -> None:
    from auditor.rules.entries import BadEntry

    with pytest.raises(BadEntry) as err:
        Inventory(RS.name, {"agent": ["10.1.1.1"], "admin": entries})
    assert (err.value.role, err.value.index) == ("admin", index)


_ENTRY_CHARS = "0123456789abcdefxyzABC.:/*-_ %"


def test_indexing_in_bulk_is_parse_entry() -> None:
    """Random entries of every kind, valid ones and near misses that parse_entry still
    takes: whichever way an entry went (in bulk or one by one), the inventory lists, kinds
    and matches exactly what parse_entry gives it."""
    from auditor.rules.entries import parse_entry

    rng = random.Random(13)
    pool: list[str] = []
    while len(pool) < 3_000:
        k = rng.randrange(9)
        a, b, c = rng.randrange(3), rng.randrange(256), rng.randrange(256)
        if k == 0:
            e = f"10.{a}.{b}.{c}"
        elif k == 1:
            e = f"10.{a}.{b}.{c}/{rng.randrange(40)}"
        elif k == 2:
            e = f"2001:db8:{a:x}::{b:x}/{rng.randrange(135)}"
        elif k == 3:
            e = f"{rng.choice(['', '*.'])}h{b}.{rng.choice(['Corp', 'lab', '9'])}.example"
            e += rng.choice(["", "."])
        elif k == 4:
            e = f"2001:db8::{b:x}"
        elif k == 5:
            e = f"::ffff:{b:x}:0/{rng.randrange(90, 129)}"  # v4-mapped: ipaddress's text
        elif k == 6:
            e = rng.choice(["host1", "1.2.3", "a" * 70 + ".com", "x..y", " 10.0.0.1 ", "*"])
        else:
            e = "".join(rng.choice(_ENTRY_CHARS) for _ in range(rng.randrange(1, 10)))
        try:
            parse_entry(e)
        except ValueError:
            continue
        pool.append(e)
    for _ in range(30):
        mapping = {r: rng.sample(pool, rng.randrange(300)) for r in ("agent", "admin", "vcenter")}
        inv = Inventory(RS.name, mapping)
        for role, entries in mapping.items():
            want = [parse_entry(e) for e in entries]
            assert inv.entries(role) == tuple(dict.fromkeys(p.canon for p in want))
            for p in want:
                assert inv.kind(p.canon) == p.kind
                if p.kind == "address" or p.kind == "network":
                    assert role in inv.roles_for_ip(p.canon.split("/")[0]), p
                else:
                    probe = "x." + p.canon[2:] if p.kind == "wildcard" else p.canon
                    assert role in inv.roles_for_name(probe), p
