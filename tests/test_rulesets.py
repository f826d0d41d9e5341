"""Rulesets: the loader's contract, every built-in rule, and the transcription of the seeds.

The seed tests parse the vendor documents' tables and lists themselves and check that
every row has a rule, and that every rule's cited words occur in the document it cites:
together they keep the transcription complete and honest. They skip when
../shared/seeds is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import jsonschema
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from auditor.cli.rulesets import command
from auditor.errors import ExitCode, RulesetError
from auditor.rules import (
    APPS,
    FINDING_KINDS,
    PROTOS,
    RULES_SCHEMA,
    SECURITY,
    SEVERITIES,
    Rule,
    Ruleset,
    builtin_rulesets,
    check_ruleset,
    load_ruleset,
    rules_table,
)
from auditor.rules.model import PEERS

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
BAD = Path(__file__).parent / "data" / "bad_rulesets"
needs_seeds = pytest.mark.skipif(not SEEDS.exists(), reason="../shared/seeds not present")

FW = "000_41baf20abd3428d3.txt"  # App Layering "Firewall ports"
UF = "001_103fc8321c5bb4d4.txt"  # UForge "Cloud Platform Default Ports"
TAS = "002_a5c10799eb8ece07.txt"  # TAS Diego network paths
RA = "003_8716eaddc5e9d753.txt"  # App Layering reference architecture

ROLE_IDS = {
    "kubernetes": ["control_plane", "etcd", "node"],
    "applayering": [
        "appliance", "agent", "pvs_agent", "hyperv_agent", "admin", "compositing", "vcenter",
        "esxi", "azure", "google_cloud", "xenserver", "nutanix_prism", "active_directory",
        "file_server", "nfs_server", "ntp_server", "dhcp_server", "dns_server", "upgrade_cdn",
        "webapi", "vda",
    ],
    "uforge": [
        "uforge", "abiquo", "aws", "azure", "cloudstack", "eucalyptus", "flexiant",
        "google_compute_engine", "k5", "nimbula", "openstack", "oracle_cloud",
        "vcloud_director", "vcenter",
    ],
    "tas-diego": [
        "cloud_controller", "diego_database", "diego_brain", "diego_cell", "uaa", "nats",
        "mysql_proxy", "blobstore",
    ],
}  # fmt: skip

RULESETS = {name: load_ruleset(name) for name in builtin_rulesets()}
ALL_RULES = [(name, rule) for name, rs in RULESETS.items() for rule in rs.flows]


def norm(text: str) -> str:
    return " ".join(text.split())


def seed(name: str) -> str:
    return (SEEDS / name).read_text(encoding="utf-8")


def rules_for(rs: Ruleset, src: str, dst: str, port: int, proto: str | None = "tcp") -> list[Rule]:
    return [
        r
        for r in rs.flows
        if r.from_role == src
        and r.to_role == dst
        and (proto is None or r.proto == proto)
        and r.covers(port)
    ]


# -- the built-ins load, with the fixed role ids ----------------------------------------------


def test_builtin_names() -> None:
    assert builtin_rulesets() == ["applayering", "kubernetes", "tas-diego", "uforge"]


@pytest.mark.parametrize("name", sorted(ROLE_IDS))
def test_builtin_roles_are_the_fixed_ids(name: str) -> None:
    rs = RULESETS[name]
    assert list(rs.role_ids) == ROLE_IDS[name]
    assert rs.name == name == Path(str(rs.path)).stem
    assert check_ruleset(name).problems == []  # no error and no warning


def test_agents_on_pvs_and_hyperv_also_hold_agent() -> None:
    rs = RULESETS["applayering"]
    assert rs.implied_roles({"pvs_agent"}) == {"pvs_agent", "agent"}
    assert rs.implied_roles({"hyperv_agent"}) == {"hyperv_agent", "agent"}
    assert rs.role("pvs_agent").hints.user_agents == ("Microsoft BITS/*",)


def test_derived_hints_serves_and_connects() -> None:
    rs = RULESETS["tas-diego"]
    cell = rs.role("diego_cell")
    assert ("tcp", 1801, 1801) in cell.hints.serves
    assert ("tcp", 61001, 65534) in cell.hints.serves
    assert ("tcp", 4222, 4225) in cell.hints.connects  # 4222..4225 merged
    assert rs.role("uaa").hints.serves == (("tcp", 443, 443),)
    assert RULESETS["uforge"].role("aws").hints.names == ("*.amazonaws.com",)


# -- every rule of every built-in -------------------------------------------------------------


@pytest.mark.parametrize("name,rule", ALL_RULES, ids=[f"{n}:{r.id}" for n, r in ALL_RULES])
def test_rule_is_well_formed(name: str, rule: Rule) -> None:
    rs = RULESETS[name]
    assert {rule.from_role, rule.to_role} <= {*rs.role_ids, *PEERS}
    assert rule.proto in PROTOS
    assert rule.ports or rule.port_ranges
    assert all(1 <= p <= 65535 for p in rule.ports)
    assert all(1 <= lo < hi <= 65535 for lo, hi in rule.port_ranges)
    assert rule.app in APPS and rule.security in SECURITY
    assert set(rule.severity) <= set(FINDING_KINDS)
    assert set(rule.severity.values()) <= set(SEVERITIES)
    assert rule.transfer is None or rule.disk_transfer
    if rule.pair:
        other = rs.rule(rule.pair)
        assert other.pair == rule.id
        assert (other.from_role, other.to_role, other.proto) == (
            rule.from_role, rule.to_role, rule.proto,
        )  # fmt: skip
        assert other.encrypted_required != rule.encrypted_required
    for src in (rule.source, *rule.also_sources):
        assert src.document in rs.source_documents
        assert src.section and src.text


# the rulesets transcribed from ../shared/seeds (kubernetes cites a web page by its URL:
# test_kubernetes_rows_have_rules)
SEED_RULES = [(n, r) for n, r in ALL_RULES if n != "kubernetes"]


@needs_seeds
@pytest.mark.parametrize("name,rule", SEED_RULES, ids=[f"{n}:{r.id}" for n, r in SEED_RULES])
def test_rule_cites_words_that_are_in_the_document(name: str, rule: Rule) -> None:
    for src in (rule.source, *rule.also_sources):
        path = SEEDS / src.document
        assert path.is_file(), f"{rule.id}: no seed document {src.document}"
        assert norm(src.text) in norm(seed(src.document)), f"{rule.id}: {src.text!r}"


# -- no row of the seeds left out -------------------------------------------------------------


def pipe_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Markdown-ish tables of 000/002: (header cells, rows of cells); wrapped rows joined."""
    tables: list[tuple[list[str], list[list[str]]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if (
            lines[i].rstrip().endswith("|")
            and i + 1 < len(lines)
            and lines[i + 1].startswith("---")
        ):
            header = [c.strip() for c in lines[i].split("|")[:-1]]
            rows: list[list[str]] = []
            i += 2
            pending = ""
            while i < len(lines) and lines[i].rstrip().endswith("|"):
                pending += (" " if pending else "") + lines[i].strip()
                cells = [c.strip() for c in pending.split("|")[:-1]]
                if len(cells) == len(header):
                    rows.append(cells)
                    pending = ""
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def ports_in(cell: str) -> list[int]:
    return [int(p) for p in re.findall(r"\d+", cell)]


# 000's names for roles. A list means every role in it must have the rule.
FW_ROLES = {
    "Appliance": ["appliance"],
    "Agent": ["agent"],
    "Admin user": ["admin"],
    "Legacy Azure connector service": ["appliance"],
    "BITS Server": ["appliance"],
    "Citrix Provisioning connector service": ["appliance"],
    "Google connector service - Google Cloud": ["appliance"],
    "Hyper-V connector service": ["appliance"],
    "vCenter, ESXI hosts": ["vcenter", "esxi"],
    "Active directory": ["active_directory"],
    "Compositing machine": ["compositing"],
    "Azure": ["azure"],
    "Agent on Citrix Provisioning server": ["pvs_agent"],
    "Agent on Hyper-V server": ["hyperv_agent"],
    "vSphere": ["vcenter"],
    "XenServer": ["xenserver"],
    "Prism": ["nutanix_prism"],
    "<https://applayeringwebapi.azurewebsites.net>": ["webapi"],
    "<http://alcdn.citrix.com/>": ["upgrade_cdn"],
}


def check_row(rs: Ruleset, srcs: list[str], dsts: list[str], ports: list[int], proto: str | None,
              row: object) -> None:  # fmt: skip
    assert ports, row
    for s in srcs:
        for d in dsts:
            for port in ports:
                assert rules_for(rs, s, d, port, proto), f"no rule {s} -> {d} {proto}/{port}: {row}"


@needs_seeds
def test_firewall_ports_tables_all_have_rules() -> None:
    rs = RULESETS["applayering"]
    tables = pipe_tables(seed(FW))
    assert [len(rows) for _, rows in tables] == [6, 19, 2, 1]
    for header, rows in tables:
        for cells in rows:
            row = dict(zip(header, cells, strict=True))
            src = row.get("App Layering Source", "Admin user" if len(rows) == 6 else "Appliance")
            dst = row.get("App Layering Destination") or row["Destination"]
            assert row["Protocol"] == "TCP"
            check_row(rs, FW_ROLES[src], FW_ROLES[dst], ports_in(row["Ports"]), "tcp", cells)


# 000's bullet lists: label -> (from roles, to roles, proto or None when the list gives none)
FW_LIST = {
    "HTTP": (["admin"], ["appliance"], "tcp"),
    "HTTPS": (["admin"], ["appliance"], "tcp"),
    "SSH": (["admin"], ["appliance"], "tcp"),
    "Active Directory server": (["appliance"], ["active_directory"], None),
    "Windows file servers, SMB": (["appliance"], ["file_server"], None),
    "Network time servers": (["appliance"], ["ntp_server"], None),
    "Unix file servers": (["appliance"], ["nfs_server"], None),
    "DHCP server, DHCP": (["appliance"], ["dhcp_server"], "udp"),
    "App Layering appliance": (["dhcp_server"], ["appliance"], None),
    "Commands from appliance/SOAP": (["appliance"], ["agent"], "tcp"),
    "Registration": (["agent"], ["appliance"], "tcp"),
    "Log export": (["agent"], ["appliance"], "tcp"),
    "Citrix Provisioning disk download": (["pvs_agent"], ["appliance"], "tcp"),
    "Hyper-V disk download": (["hyperv_agent"], ["appliance"], "tcp"),
    "Hyper-V disk upload": (["hyperv_agent"], ["appliance"], "tcp"),
    "XenServer": (["appliance"], ["xenserver"], "tcp"),
    "Citrix Provisioning": (["appliance"], ["agent"], "tcp"),  # "(App Layering agent)"
    "Google Cloud": (["appliance"], ["google_cloud"], "tcp"),
    "Microsoft Azure management": (["appliance"], ["azure"], "tcp"),
    "Microsoft Hyper-V": (["appliance"], ["agent"], "tcp"),
    "Nutanix AHV": (["appliance"], ["nutanix_prism"], "tcp"),
    "VMware vSphere": (["appliance"], ["vcenter", "esxi"], "tcp"),
}


@needs_seeds
def test_firewall_ports_lists_all_have_rules() -> None:
    rs = RULESETS["applayering"]
    text = seed(FW)
    items = re.findall(r"^\s*- (.+?) - Ports? (.+)$", text[text.index("Key ports") :], re.M)
    assert len(items) == 24
    assert {label for label, _ in items} == set(FW_LIST)
    for label, rest in items:
        srcs, dsts, proto = FW_LIST[label]
        check_row(rs, srcs, dsts, ports_in(rest), proto, (label, rest))


def lines_after(text: str, header: str) -> list[str]:
    """The rows of a plain-text table of 003: the lines after ``header`` up to a blank."""
    lines = text.splitlines()
    i = lines.index(header) + 1
    out = []
    while lines[i].strip():
        out.append(lines[i].strip())
        i += 1
    return out


@needs_seeds
def test_reference_architecture_tables_all_have_rules() -> None:
    rs = RULESETS["applayering"]
    text = seed(RA)

    access = lines_after(text, "Protocol Port")
    assert access == ["SSH 22", "Log download 8888"]
    for row in access:
        check_row(rs, ["admin"], ["appliance"], ports_in(row), "tcp", row)

    connectors = lines_after(text, "Connector HTTP port HTTPS port Internal Ports")
    assert len(connectors) == 6
    for row in connectors:
        m = re.fullmatch(r"(.+?) (\d+) (\d+) (\d+)/(\d+)", row)
        assert m, row
        http, https, int1, int2 = (int(g) for g in m.groups()[1:])
        check_row(rs, ["admin"], ["appliance"], [http, https], "tcp", row)
        check_row(rs, ["appliance"], ["appliance"], [int1, int2], "tcp", row)
        assert rules_for(rs, "admin", "appliance", http)[0].security == "none"
        assert rules_for(rs, "admin", "appliance", https)[0].security == "tls"

    misc = lines_after(text, "Destination Protocol Port")
    assert len(misc) == 7
    misc_roles = {
        "Active Directory Server": ("appliance", "active_directory"),
        "Windows File Servers": ("appliance", "file_server"),
        "Network Time Servers": ("appliance", "ntp_server"),
        "DHCP server": ("appliance", "dhcp_server"),
        "App Layering appliance": ("dhcp_server", "appliance"),
    }
    for row in misc:
        (src, dst) = next(v for k, v in misc_roles.items() if row.startswith(k))
        # "on the following TCP ports", except where the row says UDP/
        proto = "udp" if "UDP/" in row else "tcp"
        check_row(rs, [src], [dst], ports_in(row)[-1:], proto, row)

    agent = lines_after(text, "Agent Server Destination Function or Protocol Port")
    assert len(agent) == 5
    for row in agent:
        src = "pvs_agent" if row.startswith("Citrix Provisioning") else "agent"
        if " Agent Server " in row:  # commands from the appliance to the agent
            check_row(rs, ["appliance"], ["agent"], ports_in(row), "tcp", row)
        else:
            check_row(rs, [src], ["appliance"], ports_in(row), "tcp", row)

    hyper = lines_after(text, "Connector Destination Port")
    assert len(hyper) == 5
    hyper_roles = {
        "Azure Management": "azure",
        "Citrix Hypervisor": "xenserver",
        "Virtual Center": "vcenter",
        "ESX hosts for disk transfers": "esxi",
        "Nutanix CVM": "nutanix_prism",
    }
    for row in hyper:
        dst = next(v for k, v in hyper_roles.items() if re.sub(r" \d+$", "", row).endswith(k))
        check_row(rs, ["appliance"], [dst], ports_in(row), "tcp", row)


@needs_seeds
def test_reference_architecture_port_sentences_have_rules() -> None:
    rs = RULESETS["applayering"]
    text = norm(seed(RA))
    sentences = [
        ("accessed over TCP/IP on port 80 (HTTP) or 443 (HTTPS)", "admin", "appliance", [80, 443]),
        ("Port 8161 is used for ActiveMQ", "appliance", "appliance", [8161]),
        ("using HTTPS/443 or HTTP/80", "appliance", "upgrade_cdn", [443, 80]),
        ("for iSCSI connections on port 3260", "compositing", "appliance", [3260, 443]),
        ("performs API calls to the Compositing Engines also on port 443", "appliance",
         "compositing", [443]),
        ("secure SOAP channel on port 8016", "appliance", "agent", [8016]),
        ("transmit it back to the App Layering appliance on port 8787", "agent", "appliance",
         [8787]),
        ("force HTTPS and use 3509 instead", "pvs_agent", "appliance", [3009, 3509]),
        ("allow access from the App Layering appliance on port 443", "appliance", "esxi", [443]),
    ]  # fmt: skip
    for fragment, src, dst, ports in sentences:
        assert fragment in text
        check_row(rs, [src], [dst], ports, "tcp", fragment)


UF_ROLES = {
    "Abiquo": "abiquo", "AWS": "aws", "Azure": "azure", "CloudStack": "cloudstack",
    "Eucalyptus": "eucalyptus", "Flexiant": "flexiant",
    "Google Compute Engine": "google_compute_engine", "K5": "k5", "Nimbula": "nimbula",
    "OpenStack": "openstack", "Oracle Cloud": "oracle_cloud",
    "vCloud Director": "vcloud_director", "vCenter": "vcenter",
}  # fmt: skip


@needs_seeds
def test_uforge_table_rows_have_rules_with_direction() -> None:
    rs = RULESETS["uforge"]
    rows = re.findall(r"^\| (.+?) +\| (TCP) +\| (.+?) +\| (UPLOAD|DOWNLOAD) +\|$", seed(UF), re.M)
    assert len(rows) == 13
    for platform, _, ports_text, method in rows:
        role = UF_ROLES[platform]
        ports = ports_in(ports_text)
        check_row(rs, ["uforge"], [role], ports, "tcp", platform)
        if method == "UPLOAD":
            for port in ports:
                assert all(r.disk_transfer and r.transfer == "upload"
                           for r in rules_for(rs, "uforge", role, port))  # fmt: skip
            assert not [r for r in rs.flows if r.from_role == role]
        else:
            # DOWNLOAD: UForge asks on the platform's port, the platform downloads from UForge
            for port in ports:
                assert not any(r.disk_transfer for r in rules_for(rs, "uforge", role, port))
                (back,) = rules_for(rs, role, "uforge", port)
                assert back.disk_transfer and back.transfer == "download"
            assert len([r for r in rs.flows if r.from_role == role]) == len(ports)
        if "/" in ports_text:  # "80 / 443": one purpose, cleartext or TLS
            (http,) = rules_for(rs, "uforge", role, 80)
            assert http.pair and rs.rule(http.pair).covers(443)
            if method == "DOWNLOAD":
                (back,) = rules_for(rs, role, "uforge", 80)
                assert back.pair and rs.rule(back.pair).covers(443)


TAS_SECURITY = {
    "Mutual TLS": "mtls",
    "TLS": "tls",
    "SSH": "ssh",
    "OAuth 2.0": "oauth",
    "TLS and OAuth 2.0": "oauth",
    "Basic authentication": "basic",
    "MySQL authentication**": "mysql_auth",
    "Signed URLs/TLS": "signed_url",
}


def vm(cell: str) -> tuple[str, str | None]:
    """``diego_brain (File Server)⁂`` -> (role, component)."""
    cell = cell.rstrip("‡⁂*†")
    m = re.fullmatch(r"(\S+)(?: \((.+)\))?", cell)
    if m is None:  # "nfs_server or other blobstore*"
        return "blobstore", None
    role, comp = m.group(1).rstrip("‡⁂*†"), m.group(2)
    return role, comp


@needs_seeds
def test_tas_diego_rows_have_matching_rules() -> None:
    rs = RULESETS["tas-diego"]
    tables = pipe_tables(seed(TAS))
    assert [len(rows) for _, rows in tables] == [2, 14, 9]
    for _, rows in tables:
        for src_cell, dst_cell, port, transport, app, security in rows:
            src, src_comp = vm(src_cell)
            dst, dst_comp = vm(dst_cell)
            assert transport == "TCP"
            if port.startswith("Varies"):  # footnotes ‡ (61001-65534) and * (internal: 4443)
                ports = [61001, 65534] if "‡" in port else [4443]
            else:
                ports = ports_in(port)
            for p in ports:
                found = [
                    r
                    for r in rules_for(rs, src, dst, p)
                    if r.from_component == src_comp
                    and (dst_comp is None or r.component == dst_comp)
                ]
                assert found, (src_cell, dst_cell, p)
                want_app, want = app.lower(), TAS_SECURITY[security]
                if port == "Varies" and p == 4443:  # footnote *: internal blobstore, TLS
                    want_app, want = "https", "tls"
                assert any(r.app == want_app for r in found), (src_cell, dst_cell, p, want_app)
                assert any(r.security == want for r in found), (src_cell, dst_cell, p, want)


# -- what the documents' footnotes and disagreements became ----------------------------------


# The Kubernetes "Ports and Protocols" page's tables, as transcribed facts: (section, port
# range, purpose, used by). Every row has a rule citing it, from the users to the role.
K8S_ROWS = [
    ("Control plane", "6443", "Kubernetes API server", "All"),
    ("Control plane", "2379-2380", "etcd server client API", "kube-apiserver, etcd"),
    ("Control plane", "10250", "Kubelet API", "Self, Control plane"),
    ("Control plane", "10259", "kube-scheduler", "Self"),
    ("Control plane", "10257", "kube-controller-manager", "Self"),
    ("Node(s)", "10250", "Kubelet API", "Self, Control plane"),
    ("Node(s)", "30000-32767", "NodePort Services†", "All"),
]
K8S_USERS = {"All": "any", "kube-apiserver": "control_plane", "etcd": "etcd",
             "Control plane": "control_plane"}  # fmt: skip


def test_kubernetes_rows_have_rules() -> None:
    rs = RULESETS["kubernetes"]
    assert (
        rs.documents[0].url
        == "https://kubernetes.io/docs/reference/networking/ports-and-protocols/"
    )
    for section, ports, purpose, used_by in K8S_ROWS:
        text = f"TCP | Inbound | {ports} | {purpose} | {used_by}"
        cited = [r for r in rs.flows if r.source.text == text and r.source.section == section]
        assert cited, text
        lo, _, hi = ports.partition("-")
        to_role = (
            "node" if section == "Node(s)" else ("etcd" if "etcd" in purpose else "control_plane")
        )
        for user in used_by.split(", "):
            if user == "Self":
                continue
            rules = rules_for(rs, K8S_USERS[user], to_role, int(lo))
            assert rules and all(r.covers(int(hi or lo)) for r in rules), (user, text)
        if used_by == "Self":
            assert all(r.scope == "local" for r in cited), text


def test_tas_footnotes() -> None:
    rs = RULESETS["tas-diego"]
    ssh = rs.rule("ssh-proxy-app-instances")
    assert ssh.port_ranges == ((61001, 65534),) and ssh.security == "ssh"
    internal = rs.rule("rep-blobstore-internal")
    assert internal.ports == (4443,) and internal.security == "tls"
    assert "Varies" in " ".join(internal.notes) and internal.disk_transfer
    file_server = rs.rule("rep-file-server")
    assert any("non-sensitive, static platform assets" in n for n in file_server.notes)
    assert file_server.severity == {"plaintext_where_tls_required": "medium"}
    for rid in ("bbs-mysql", "locket-mysql"):
        notes = " ".join(rs.rule(rid).notes)
        assert "internal MySQL is selected" in notes and "native password" in notes


def test_applayering_disagreements_are_recorded() -> None:
    rs = RULESETS["applayering"]
    pvs = rs.rule("pvs-agent-disk-download-http")
    notes = " ".join(pvs.notes)
    assert "Disk download" in notes and "Disk Upload" in notes
    reasons = " ".join(pvs.vendor_reason)
    assert "performance reasons" in reasons and "force HTTPS and use 3509" in reasons
    assert pvs.pair == "pvs-agent-disk-download-https" and pvs.ports == (3009,)
    assert pvs.disk_transfer and pvs.security == "none" and not pvs.encrypted_required
    assert "only 003" in " ".join(rs.rule("admin-log-download").notes).lower()
    assert "typo" in " ".join(rs.rule("appliance-internal-xenserver-connector").notes)
    assert "force HTTPS" in " ".join(rs.rule("hyperv-agent-disk-download-http").vendor_reason)


# -- JSON contract and Arrow table --------------------------------------------------------------

SHOW_SCHEMA = {
    "type": "object",
    "required": ["name", "title", "roles", "flows"],
    "properties": {
        "name": {"type": "string"},
        "title": {"type": "string"},
        "roles": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "description"],
                "properties": {"id": {"type": "string"}, "description": {"type": "string"}},
            },
        },
        "flows": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "from", "to", "proto", "ports", "port_ranges", "app",
                             "security", "disk_transfer", "expected", "source"],
                "properties": {
                    "id": {"type": "string"},
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                    "proto": {"enum": ["tcp", "udp"]},
                    "ports": {"type": "array", "items": {"type": "integer"}},
                    "port_ranges": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "integer"},
                                  "minItems": 2, "maxItems": 2},
                    },
                    "app": {"type": "string"},
                    "security": {"type": "string"},
                    "disk_transfer": {"type": "boolean"},
                    "expected": {"type": "boolean"},
                    "source": {
                        "type": "object",
                        "required": ["document", "section"],
                        "properties": {"document": {"type": "string"},
                                       "section": {"type": "string"}},
                    },
                },
            },
        },
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ROLE_IDS))
def test_to_json_follows_the_show_contract(name: str) -> None:
    doc = json.loads(json.dumps(RULESETS[name].to_json()))
    jsonschema.validate(doc, SHOW_SCHEMA)
    assert len(doc["flows"]) == len(RULESETS[name].flows)


def test_rules_table_has_one_row_per_port_or_range() -> None:
    rs = RULESETS["tas-diego"]
    table = rules_table(rs)
    assert table.schema == RULES_SCHEMA
    assert table.num_rows == sum(len(r.spans()) for r in rs.flows)
    nats = table.filter(pc.equal(table["rule_id"], "route-emitter-nats")).to_pylist()
    assert [(r["port_lo"], r["port_hi"]) for r in nats] == [(p, p) for p in range(4222, 4226)]
    ssh = table.filter(pc.equal(table["rule_id"], "ssh-proxy-app-instances")).to_pylist()
    assert [(r["port_lo"], r["port_hi"], r["encrypted_required"]) for r in ssh] == [
        (61001, 65534, True)
    ]
    fs = table.filter(pc.equal(table["rule_id"], "rep-file-server")).to_pylist()[0]
    assert fs["severity_plaintext_where_tls_required"] == "medium"
    assert fs["severity_unexpected_port"] is None


def test_rules_table_joins_in_duckdb() -> None:
    rules = rules_table(RULESETS["applayering"])  # noqa: F841 - read by DuckDB by name
    con = duckdb.connect()
    flows = pa.table({"proto": ["tcp", "tcp", "udp"], "port": [3009, 3509, 123]})  # noqa: F841
    got = con.execute(
        "SELECT f.port, r.rule_id, r.encrypted_required, r.disk_transfer FROM flows f "
        "JOIN rules r ON r.proto = f.proto AND f.port BETWEEN r.port_lo AND r.port_hi "
        "WHERE r.to_role = 'appliance' AND r.from_role IN ('pvs_agent', 'admin') "
        "   OR r.to_role = 'ntp_server' ORDER BY 1, 2"
    ).fetchall()
    assert got == [
        (123, "appliance-ntp-udp", False, False),
        (3009, "admin-pvs-connector-http", False, False),
        (3009, "pvs-agent-disk-download-http", False, True),
        (3509, "admin-pvs-connector-https", True, False),
        (3509, "pvs-agent-disk-download-https", True, True),
    ]


# -- loading: names, paths and malformed files ------------------------------------------------


def test_load_by_name_str_path_and_path(tmp_path: Path) -> None:
    by_name = load_ruleset("uforge")
    assert load_ruleset(str(by_name.path)) == by_name
    assert load_ruleset(Path(str(by_name.path))) == by_name


def test_unknown_name_lists_the_builtins() -> None:
    with pytest.raises(RulesetError) as err:
        load_ruleset("appalyering")
    assert err.value.exit_code == ExitCode.USAGE
    assert "applayering, kubernetes, tas-diego, uforge" in str(err.value)


@pytest.mark.parametrize("path,fragment", [
    ("nope/missing.yaml", "no such ruleset file"),
    ("missing.yml", "no such ruleset file"),
])  # fmt: skip
def test_missing_file(path: str, fragment: str) -> None:
    with pytest.raises(RulesetError, match=fragment):
        load_ruleset(path)


def test_directory_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(RulesetError, match="is a directory"):
        load_ruleset(tmp_path)
    binary = tmp_path / "x.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RulesetError, match="not UTF-8 text"):
        load_ruleset(binary)


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.*)$", path.read_text(), re.M)


BAD_FILES = sorted(BAD.glob("*.yaml"))


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_ruleset_is_reported_with_line_and_key(path: Path) -> None:
    wanted = expectations(path)
    assert wanted, f"{path.name} has no '# expect:' line"
    result = check_ruleset(path)
    lines = [p.one_line() for p in result.errors]
    for fragment in wanted:
        needle = f"{path.name}:{fragment}" if re.match(r"\d+:", fragment) else fragment
        assert any(needle in line for line in lines), (needle, lines)
    with pytest.raises(RulesetError) as err:
        load_ruleset(path)
    message = err.value.one_line()
    assert (
        message.startswith(str(path) if path.is_absolute() else path.name) or path.name in message
    )
    assert message == lines[0] + (
        f" (and {len(lines) - 1} more; run 'pcap-audit rulesets validate {err.value.path}')"
        if len(lines) > 1
        else ""
    )


WARNING_FILES = sorted((Path(__file__).parent / "data" / "warning_rulesets").glob("*.yaml"))


@pytest.mark.parametrize("path", WARNING_FILES, ids=[p.stem for p in WARNING_FILES])
def test_unknown_vocabulary_is_a_warning(path: Path) -> None:
    # app and security are open vocabularies (auditor/rules/vocabulary.yaml): a name outside
    # them loads, with a warning naming the file, line and key and the closest known name
    wanted = re.findall(r"^# warn: (.*)$", path.read_text(), re.M)
    assert wanted
    result = check_ruleset(path)
    assert result.errors == []
    lines = [p.one_line() for p in result.warnings]
    for fragment in wanted:
        line, _, rest = fragment.partition(": ")
        assert any(f"{path.name}:{line}: warning: {rest}" in w for w in lines), (fragment, lines)
    rule = load_ruleset(path).flows[0]
    assert not rule.encrypted_required or rule.security in SECURITY


def test_bad_files_cover_the_issue_example() -> None:
    lines = [p.one_line() for p in check_ruleset(BAD / "bad_port.yaml").errors]
    assert lines == [
        f"{BAD / 'bad_port.yaml'}:15: flows[0].ports: "
        "expected a port 1-65535 or a range 'lo-hi', got 'abc'"
    ] or lines[0].endswith(
        "bad_port.yaml:15: flows[0].ports: expected a port 1-65535 or a range 'lo-hi', got 'abc'"
    )


USER_RULESET = """\
name: my-vendor
title: My vendor's appliance
source_documents:
  - file: install-guide.pdf
    title: Installation guide, chapter 3
roles:
  - id: console
    description: The management console.
    hints:
      names: ["*.console.example.com"]
  - id: worker
    description: A worker.
    implies: [client]
  - id: client
    description: Anything that talks to the console.
flows:
  - id: worker-console-http
    from: worker
    to: console
    ports: 8080
    app: http
    security: none
    pair: worker-console-https
    source: {document: install-guide.pdf, section: Table 3-1, text: "Worker | Console | 8080/8443"}
  - id: worker-console-https
    from: worker
    to: console
    ports: 8443
    app: https
    security: mtls
    expected: true
    severity: {mtls_not_observed: high, missing_flow: low}
    pair: worker-console-http
    source: {document: install-guide.pdf, section: Table 3-1, text: "Worker | Console | 8080/8443"}
  - id: worker-data
    from: worker
    to: console
    proto: udp
    ports: [5000, "6000-6010", "7000 - 7001"]
    app: unspecified
    security: unspecified
    disk_transfer: true
    transfer: both
    notes: A single note is fine too.
    source: {document: install-guide.pdf, section: "3.4", text: "UDP 5000 and 6000-6010"}
"""


def test_user_ruleset_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(USER_RULESET)
    rs = load_ruleset(str(path))
    assert rs.name == "my-vendor" and rs.path == path
    data = rs.rule("worker-data")
    assert data.proto == "udp" and data.ports == (5000,)
    assert data.port_ranges == ((6000, 6010), (7000, 7001))
    assert data.notes == ("A single note is fine too.",)
    https = rs.rule("worker-console-https")
    assert https.encrypted_required and https.expected
    assert https.severity == {"mtls_not_observed": "high", "missing_flow": "low"}
    assert rs.source_documents == ("install-guide.pdf",)
    assert rs.documents[0].title == "Installation guide, chapter 3"
    # client is used by no flow but implied by worker: no warning
    assert check_ruleset(path).problems == []


def test_docs_example_ruleset_loads(tmp_path: Path) -> None:
    """The user ruleset shown in docs/rulesets.md is valid."""
    text = (ROOT / "docs" / "rulesets.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    ruleset_blocks = [b for b in blocks if b.startswith("name:")]
    assert ruleset_blocks
    for i, block in enumerate(ruleset_blocks):
        path = tmp_path / f"doc{i}.yaml"
        path.write_text(block)
        assert check_ruleset(path).errors == [], block


# -- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cli_list(runner: CliRunner) -> None:
    res = runner.invoke(command, ["list"])
    assert res.exit_code == ExitCode.OK
    assert res.output.splitlines()[0].split() == ["NAME", "ROLES", "FLOWS", "TITLE"]
    assert {line.split()[0] for line in res.output.splitlines()[2:]} == set(ROLE_IDS)
    res = runner.invoke(command, ["list", "--format", "json"])
    assert res.exit_code == ExitCode.OK
    doc = json.loads(res.output)
    assert [d["name"] for d in doc] == builtin_rulesets()
    assert {d["name"]: d["flows"] for d in doc} == {n: len(rs.flows) for n, rs in RULESETS.items()}


@pytest.mark.parametrize("name", sorted(ROLE_IDS))
def test_cli_show_json_and_table(runner: CliRunner, name: str) -> None:
    res = runner.invoke(command, ["show", name, "--format", "json"])
    assert res.exit_code == ExitCode.OK, res.output
    doc = json.loads(res.output)
    jsonschema.validate(doc, SHOW_SCHEMA)
    assert doc == json.loads(json.dumps(RULESETS[name].to_json()))
    res = runner.invoke(command, ["show", name])
    assert res.exit_code == ExitCode.OK
    assert f"Flows ({len(RULESETS[name].flows)}):" in res.output
    for rule in RULESETS[name].flows:
        assert rule.id in res.output


def test_cli_show_path(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(USER_RULESET)
    res = runner.invoke(command, ["show", str(path), "--format", "json"])
    assert res.exit_code == ExitCode.OK
    assert json.loads(res.output)["name"] == "my-vendor"


def test_cli_show_unknown_and_bad(runner: CliRunner) -> None:
    res = runner.invoke(command, ["show", "nope"])
    assert res.exit_code == ExitCode.USAGE
    assert (
        "unknown ruleset; built-in rulesets are: applayering, kubernetes, tas-diego, uforge"
        in res.output
    )
    res = runner.invoke(command, ["show", str(BAD / "bad_port.yaml")])
    assert res.exit_code == ExitCode.USAGE
    assert "bad_port.yaml:15: flows[0].ports: expected a port 1-65535" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(command, ["show", "uforge", "--format", "xml"])
    assert res.exit_code == ExitCode.USAGE  # click's own usage error


def test_cli_validate_ok(runner: CliRunner) -> None:
    res = runner.invoke(command, ["validate", "rulesets/tas-diego.yaml"])
    assert res.exit_code == ExitCode.OK
    assert res.stdout.count("\n") == 1
    assert res.stdout.startswith("OK ") and "'tas-diego', 8 roles, 25 rules" in res.stdout
    res = runner.invoke(command, ["validate", "applayering"])
    assert res.exit_code == ExitCode.OK


def test_cli_validate_warning_is_not_an_error(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(USER_RULESET.replace("    implies: [client]\n", ""))
    res = runner.invoke(command, ["validate", str(path)])
    assert res.exit_code == ExitCode.OK
    assert "warning: roles[2].id: role 'client' appears in no flow" in res.stderr
    assert "1 warning" in res.stdout


def test_cli_validate_reports_every_error(runner: CliRunner) -> None:
    res = runner.invoke(command, ["validate", str(BAD / "multiple_errors.yaml")])
    assert res.exit_code == ExitCode.USAGE
    assert res.stdout == ""
    err = res.stderr.splitlines()
    assert len(err) == 3
    assert err[0].endswith("multiple_errors.yaml:15: flows[0].ports: expected a port 1-65535 "
                           "or a range 'lo-hi', got 'abc'")  # fmt: skip
    assert "multiple_errors.yaml:27: flows[1].security:" in err[1]
    assert err[2].endswith("multiple_errors.yaml: 2 errors")


@pytest.mark.parametrize(
    "name", ["contradiction_security", "contradiction_transfer", "duplicate_id"]
)
def test_cli_validate_contradictions(runner: CliRunner, name: str) -> None:
    res = runner.invoke(command, ["validate", str(BAD / f"{name}.yaml")])
    assert res.exit_code == ExitCode.USAGE
    assert ("contradicts rule" in res.stderr) or ("duplicate rule id" in res.stderr)


def test_cli_validate_missing(runner: CliRunner) -> None:
    res = runner.invoke(command, ["validate", "no/such.yaml"])
    assert res.exit_code == ExitCode.USAGE
    assert "no/such.yaml: no such ruleset file" in res.stderr


def test_every_command_has_help_with_an_example() -> None:
    assert command.help and "Example:" in command.help
    for name, sub in command.commands.items():
        assert sub.help and "Example:" in sub.help, name
