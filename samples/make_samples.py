"""Re-create the sample captures, their inventories and their expected audit results.

    make samples        # or: python samples/make_samples.py

For each built-in ruleset, two deterministic captures synthesised with dpkt
(auditor.synth): ``findings.pcap`` shows every finding kind the ruleset can produce, and
``clean.pcap`` holds only documented, well-behaved traffic that must audit silently. Beside
each: ``*.inventory.yaml`` (the hosts' roles), ``*.expected.json`` (the audit result with
the version and the capture paths normalised) and ``*.flows.json`` (the flow table, as
``pcap-audit flows --format json`` writes it), which tests/test_samples.py compares against.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from auditor import synth  # noqa: E402

#: a disk or image transfer in the samples: above the audit's 64 KiB disk-transfer floor,
#: small enough to keep the sample captures small
BULK = 200_000
Sample = tuple[synth.Capture, dict[str, list[str]]]


def tls(
    c: synth.Capture,
    client: str,
    server: str,
    port: int,
    sport: int,
    version: str = "TLS 1.2",
    sni: str | None = None,
    mutual: bool = False,
    client_cert: bool = True,
    size: int = 4000,
) -> None:
    c.tcp_session(
        client,
        server,
        sport,
        port,
        synth.tls_handshake(
            version, sni=sni, mutual=mutual, client_cert=client_cert, app_bytes=size
        ),
    )


def dns(c: synth.Capture, client: str, server: str, name: str, addr: str, sport: int) -> None:
    q, r = synth.dns_exchange(name, [addr], qid=sport & 0xFFFF)
    c.udp(client, server, sport, 53, q)
    c.udp(server, client, 53, sport, r)


def ntp(c: synth.Capture, client: str, server: str) -> None:
    c.udp(client, server, 123, 123, b"\x23" + b"\x00" * 47)
    c.udp(server, client, 123, 123, b"\x24\x02" + b"\x00" * 46)


# -- App Layering ---------------------------------------------------------------------------

AL = {
    "appliance": "10.10.0.10",
    "agent": "10.10.0.21",  # PVS server: agent + pvs_agent
    "hyperv": "10.10.0.22",  # Hyper-V server: agent + hyperv_agent
    "admin": "10.10.0.50",
    "ad": "10.10.0.5",
    "files": "10.10.0.6",
    "ntp": "10.10.0.7",
    "compositing": "10.10.0.30",
    "stranger": "10.10.0.99",
    "vda": "10.10.0.60",
    "appliance6": "fd00:10::10",
    "admin6": "fd00:10::50",
}


def _al_inventory() -> dict[str, list[str]]:
    return {
        "appliance": [AL["appliance"]],
        "agent": [AL["agent"], AL["hyperv"]],
        "pvs_agent": [AL["agent"]],
        "hyperv_agent": [AL["hyperv"]],
        "admin": [AL["admin"]],
        "active_directory": [AL["ad"]],
        "file_server": [AL["files"]],
        "ntp_server": [AL["ntp"]],
        "compositing": [AL["compositing"]],
    }


def _al_baseline(c: synth.Capture) -> None:
    """Documented traffic, all over TLS where the document offers it."""
    a = AL
    tls(c, a["admin"], a["appliance"], 443, 51000, "TLS 1.3", sni="elm.corp.example")
    tls(c, a["agent"], a["appliance"], 443, 51001, sni="elm.corp.example")
    tls(c, a["appliance"], a["agent"], 8016, 51002)
    tls(c, a["appliance"], a["hyperv"], 8016, 51003)
    c.tcp_session(a["agent"], a["appliance"], 51004, 8787, [(0, b"PK\x03\x04" + b"\x11" * 9000)])
    tls(c, a["agent"], a["appliance"], 3509, 51005, size=3 * BULK)  # disk download, HTTPS
    tls(c, a["hyperv"], a["appliance"], 3515, 51006, size=2 * BULK)  # disk upload, HTTPS
    tls(c, a["appliance"], a["ad"], 636, 51007, sni="dc1.corp.example")
    dns(c, a["appliance"], a["ad"], "dc1.corp.example", a["ad"], 52000)
    c.tcp_session(
        a["appliance"],
        a["files"],
        51008,
        445,
        [(0, b"\x00\x00\x00\x44\xfeSMB@\x00" + b"\x00" * 60)],
    )
    ntp(c, a["appliance"], a["ntp"])
    tls(c, a["compositing"], a["appliance"], 443, 51009)
    tls(c, a["appliance"], a["compositing"], 443, 51010)


def applayering_clean() -> Sample:
    c = synth.Capture()
    _al_baseline(c)
    return c, _al_inventory()


def applayering_findings() -> Sample:
    c = synth.Capture()
    a = AL
    _al_baseline(c)
    c.at(60)
    # plaintext_disk_transfer: BITS download of a layer disk over HTTP on 3009, upload on 3015
    c.tcp_session(
        a["agent"],
        a["appliance"],
        52001,
        3009,
        [
            (
                0,
                synth.http_request(
                    "GET",
                    "/disks/win2022-os-layer.vhd",
                    "elm.corp.example:3009",
                    "Microsoft BITS/7.8",
                ),
            ),
            (1, synth.http_response(206, 2 * BULK)),
        ],
    )
    c.tcp_session(
        a["hyperv"],
        a["appliance"],
        52002,
        3015,
        synth.bits_upload("/upload/packaging-disk.vhdx", "elm.corp.example:3015", BULK),
    )
    # plaintext_where_tls_required: plain HTTP to the HTTPS connector port
    c.tcp_session(
        a["admin"],
        a["appliance"],
        52003,
        3509,
        [
            (0, synth.http_request("GET", "/", "elm.corp.example:3509", "Mozilla/5.0")),
            (1, synth.http_response(200, 5000)),
        ],
    )
    # weak_tls: LDAPS negotiated at TLS 1.0
    tls(c, a["appliance"], a["ad"], 636, 52004, "TLS 1.0", sni="dc1.corp.example")
    # unexpected_port: the agent tries SSH on the appliance (rejected), and RDP to the AD
    c.tcp_rejected(a["agent"], a["appliance"], 52005, 22)
    c.tcp_session(a["appliance"], a["ad"], 52006, 3389, [(0, b"\x03\x00\x00\x13" + b"\x0e" * 15)])
    # unknown_host (and unexpected_port, low): a host outside the inventory uses the console
    tls(c, a["stranger"], a["appliance"], 443, 52007, "TLS 1.3")
    # prohibited_flow: Telnet and FTP to the appliance (003: "Access is not permitted on
    # unsecured Telnet or FTP ports"), FTP even on the log-download port; the ActiveMQ
    # console (local scope) from the admin's workstation; a VDA talking to the appliance
    c.tcp_session(a["admin"], a["appliance"], 52008, 23, synth.telnet_session())
    c.tcp_session(a["admin"], a["appliance"], 52009, 8888, synth.ftp_login())
    c.tcp_session(
        a["admin"], a["appliance"], 52010, 8161, [(0, b"GET /admin/ HTTP/1.1\r\nHost: elm\r\n\r\n")]
    )
    tls(c, a["vda"], a["appliance"], 443, 52011)
    # protocol_mismatch: SSH tunnelled through the console's HTTPS port (sslh style)
    c.tcp_session(a["admin"], a["appliance"], 52012, 443, synth.ssh_exchange())
    # address_family: the appliance answers over IPv6 (000: "IPv4 is required")
    tls(c, a["admin6"], a["appliance6"], 443, 52013, sni="elm.corp.example")
    inv = _al_inventory()
    inv["appliance"] = [a["appliance"], a["appliance6"]]
    inv["admin"] = [a["admin"], a["admin6"]]
    inv["vda"] = [a["vda"]]
    # missing_flow: an NTP server in the inventory that the appliance never asked
    inv["ntp_server"] = [a["ntp"], "10.10.0.8"]
    inv["dns_server"] = ["10.10.0.53"]
    return c, inv


# -- TAS Diego ------------------------------------------------------------------------------

TD = {
    "cc": "10.20.0.10",
    "db": "10.20.1.10",
    "brain": "10.20.2.10",
    "cell": "10.20.3.10",
    "nats": "10.20.4.10",
    "mysql": "10.20.5.10",
    "uaa": "10.20.6.10",
}


def _td_inventory() -> dict[str, list[str]]:
    t = TD
    return {
        "cloud_controller": [t["cc"]],
        "diego_database": [t["db"]],
        "diego_brain": [t["brain"]],
        "diego_cell": [t["cell"]],
        "nats": [t["nats"]],
        "mysql_proxy": [t["mysql"]],
        "uaa": [t["uaa"]],
    }


def _td_baseline(c: synth.Capture, skip: tuple[str, str, int] | None = None) -> None:
    t = TD
    port = 53000
    for src, dst, dport in [
        ("cc", "db", 8889),
        ("cc", "db", 8891),
        ("brain", "db", 8891),
        ("cell", "db", 8889),
        ("cell", "db", 8891),
        ("db", "db", 8891),
        ("brain", "cell", 1801),
        ("db", "cell", 1801),
        ("cell", "brain", 9091),
        ("db", "cc", 9023),
    ]:
        if (src, dst, dport) == skip:
            continue
        port += 1
        tls(c, t[src], t[dst], dport, port, mutual=True, sni=f"{dst}.service.cf.internal")
    tls(c, t["cell"], t["brain"], 8447, 53100)  # file server: TLS, server certificate only
    tls(c, t["brain"], t["uaa"], 443, 53101, "TLS 1.3", sni="uaa.service.cf.internal")
    c.tcp_session(t["brain"], t["cell"], 53102, 61005, synth.ssh_exchange())
    c.tcp_session(t["cell"], t["nats"], 53103, 4222, synth.nats_exchange())
    c.tcp_session(t["db"], t["mysql"], 53104, 3306, synth.mysql_exchange())


def tas_diego_clean() -> Sample:
    c = synth.Capture()
    _td_baseline(c)
    return c, _td_inventory()


def tas_diego_findings() -> Sample:
    c = synth.Capture()
    t = TD
    # missing_flow: the brain never reaches Locket (auctioneer-locket, tps-watcher-locket)
    _td_baseline(c, skip=("brain", "db", 8891))
    c.at(60)
    # mtls_not_observed: the Rep talks to the BBS without a client certificate
    tls(c, t["cell"], t["db"], 8889, 54001, mutual=True, client_cert=False)
    # ... and over TLS 1.3, where it cannot be verified (info)
    tls(c, t["brain"], t["cell"], 1801, 54002, "TLS 1.3")
    # plaintext_where_tls_required: plain HTTP to the BBS
    c.tcp_session(
        t["cc"],
        t["db"],
        54003,
        8889,
        [
            (0, synth.http_request("POST", "/v1/desired_lrp_scheduling_infos/list", "bbs:8889")),
            (1, synth.http_response(200, 800)),
        ],
    )
    # plaintext_disk_transfer: a droplet fetched over plain HTTP from the CC uploader port
    c.tcp_session(
        t["cell"],
        t["brain"],
        54004,
        9091,
        [
            (0, synth.http_request("GET", "/v1/static/droplet.tgz", "cc-uploader:9091")),
            (1, synth.http_response(200, BULK)),
        ],
    )
    # weak_tls: TLS 1.1 to the file server
    tls(c, t["cell"], t["brain"], 8447, 54005, "TLS 1.1")
    # unexpected_port: the cell tries the database's MySQL directly
    c.tcp_rejected(t["cell"], t["mysql"], 54006, 3306)
    # unknown_host: a VM outside the inventory polls the BBS
    tls(c, "10.20.9.9", t["db"], 8889, 54007, mutual=True)
    return c, _td_inventory()


# -- UForge ---------------------------------------------------------------------------------

UF = {
    "uforge": "10.30.0.10",
    "vcenter": "10.30.1.10",
    "openstack": "10.30.2.10",
    "abiquo": "10.30.3.10",
    "aws": "52.94.133.131",
}


def _uf_inventory() -> dict[str, list[str]]:
    u = UF
    return {
        "uforge": [u["uforge"]],
        "vcenter": [u["vcenter"]],
        "openstack": [u["openstack"]],
        "abiquo": [u["abiquo"]],
        "aws": ["*.amazonaws.com"],
    }


def _uf_baseline(c: synth.Capture) -> None:
    u = UF
    tls(
        c,
        u["uforge"],
        u["aws"],
        443,
        55001,
        "TLS 1.3",
        sni="s3.eu-west-1.amazonaws.com",
        size=2 * BULK,
    )
    tls(c, u["uforge"], u["vcenter"], 443, 55002, size=2 * BULK)
    c.tcp_session(
        u["uforge"],
        u["openstack"],
        55003,
        9292,
        [(0, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"), (0, b"\x17\x03\x03" + b"\x00" * 4000)],
    )
    tls(c, u["uforge"], u["abiquo"], 443, 55004)
    tls(c, u["abiquo"], u["uforge"], 443, 55005, size=BULK)


def uforge_clean() -> Sample:
    c = synth.Capture()
    _uf_baseline(c)
    return c, _uf_inventory()


def uforge_findings() -> Sample:
    c = synth.Capture()
    u = UF
    _uf_baseline(c)
    c.at(60)
    # unexpected_port + unknown_host: DNS is not among UForge's documented flows
    dns(c, u["uforge"], "10.30.0.53", "s3.eu-west-1.amazonaws.com", u["aws"], 55000)
    # plaintext_disk_transfer: the image pushed to vCenter over HTTP (port 80)
    c.tcp_session(
        u["uforge"],
        u["vcenter"],
        56001,
        80,
        [
            (
                0,
                synth.http_request(
                    "PUT",
                    "/folder/images/centos9.vmdk?dcPath=dc1",
                    "vcenter.corp",
                    "UForge/3.8",
                    BULK,
                ),
            ),
            (1, synth.http_response(201)),
        ],
    )
    # weak_tls: the Abiquo API at TLS 1.0
    tls(c, u["uforge"], u["abiquo"], 443, 56002, "TLS 1.0")
    # unexpected_port: vCenter calls UForge back on 8080 (not documented)
    c.tcp_session(
        u["vcenter"], u["uforge"], 56003, 8080, [(0, synth.http_request("GET", "/api", "uforge"))]
    )
    # plaintext_where_tls_required: plain HTTP on the AWS upload port
    c.tcp_session(
        u["uforge"],
        u["aws"],
        56004,
        443,
        [(0, synth.http_request("GET", "/", "s3.eu-west-1.amazonaws.com"))],
    )
    # unknown_host: an unlisted workstation talks to UForge
    tls(c, "10.30.9.9", u["uforge"], 443, 56005)
    return c, _uf_inventory()


# -- Kubernetes: the same format serving a fourth vendor without code ----------------------

K8 = {
    "cp": "10.40.0.10",  # control plane, etcd stacked on it
    "etcd2": "10.40.0.11",  # an external etcd member
    "node1": "10.40.1.10",
    "node2": "10.40.1.11",
    "admin": "10.40.9.5",  # kubectl: the API server's "All"
    "client": "198.51.100.20",  # a NodePort client
    "stranger": "10.40.9.99",
}


def _k8_inventory() -> dict[str, list[str]]:
    k = K8
    return {
        "control_plane": [k["cp"]],
        "etcd": [k["cp"], k["etcd2"]],
        "node": [k["node1"], k["node2"]],
    }


def _k8_baseline(c: synth.Capture, etcd: bool = True) -> None:
    k = K8
    tls(c, k["admin"], k["cp"], 6443, 57001, sni="kubernetes.default.svc")
    tls(c, k["node1"], k["cp"], 6443, 57002)
    tls(c, k["node2"], k["cp"], 6443, 57003)
    if etcd:
        tls(c, k["cp"], k["etcd2"], 2379, 57004, "TLS 1.3")
        tls(c, k["etcd2"], k["cp"], 2380, 57005, "TLS 1.3")
    tls(c, k["cp"], k["node1"], 10250, 57006)
    tls(c, k["cp"], k["node2"], 10250, 57007)
    tls(c, "127.0.0.1", "127.0.0.1", 10259, 57008)  # the scheduler's own health check
    c.tcp_session(
        k["client"],
        k["node1"],
        57009,
        30080,
        [(0, synth.http_request("GET", "/", "shop.example")), (1, synth.http_response(200, 900))],
    )


def kubernetes_clean() -> Sample:
    c = synth.Capture()
    _k8_baseline(c)
    return c, _k8_inventory()


def kubernetes_findings() -> Sample:
    k = K8
    c = synth.Capture()
    # missing_flow: the API server and the etcd members never reach each other (the external
    # member 10.40.0.11 is cut off)
    _k8_baseline(c, etcd=False)
    c.at(60)
    # prohibited_flow: the scheduler's port (Used By: Self) reached from a node
    tls(c, k["node1"], k["cp"], 10259, 58001)
    # unexpected_port: a node talks to etcd directly (only the API server and etcd do)
    tls(c, k["node2"], k["etcd2"], 2379, 58002)
    # unexpected_port (low) + unknown_host: an unlisted host probes a kubelet
    tls(c, k["stranger"], k["node1"], 10250, 58003)
    return c, _k8_inventory()


SAMPLES: dict[str, dict[str, Callable[[], Sample]]] = {
    "kubernetes": {"findings": kubernetes_findings, "clean": kubernetes_clean},
    "applayering": {"findings": applayering_findings, "clean": applayering_clean},
    "tas-diego": {"findings": tas_diego_findings, "clean": tas_diego_clean},
    "uforge": {"findings": uforge_findings, "clean": uforge_clean},
}


def normalise(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make an audit result comparable across machines and versions."""
    doc = json.loads(json.dumps(doc))
    doc["tool"]["version"] = "*"
    doc["ruleset"]["path"] = None
    if doc.get("inventory"):
        doc["inventory"] = Path(doc["inventory"]).name
    names = {cap["path"]: Path(cap["path"]).name for cap in doc["captures"]}
    for cap in doc["captures"]:
        cap["path"] = Path(cap["path"]).name
    for f in doc["findings"]:
        frames = f["evidence"].get("frames")
        if frames:  # "PATH frames A-B": the file's name only
            f["evidence"]["frames"] = [_file_names(x, names) for x in frames]
    return doc


def _file_names(text: str, names: dict[str, str]) -> str:
    for path, name in names.items():
        text = text.replace(path, name)
    return text


def normalise_flows(doc: dict[str, Any]) -> dict[str, Any]:
    """Make a ``flows --format json`` document comparable across machines."""
    doc = json.loads(json.dumps(doc))
    for cap in doc["captures"]:
        cap["path"] = Path(cap["path"]).name
    for f in doc["flows"]:
        f["capture"] = Path(f["capture"]).name
        f["captures"] = [Path(c).name for c in f["captures"]]
    return doc


def write_inventory(path: Path, ruleset: str, roles: dict[str, list[str]]) -> None:
    lines = [
        f"# Inventory for the {ruleset} sample ({path.name.split('.')[0]}.pcap).",
        "# roles: {role_id: [address | CIDR | DNS name | *.wildcard, ...]}",
        "roles:",
    ]
    for role, entries in roles.items():
        lines.append(f"  {role}:")
        lines.extend(f'    - "{e}"' for e in entries)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    from auditor.findings.engine import audit
    from auditor.flows_out import flows_json
    from auditor.rules import load_inventory, load_ruleset

    for ruleset_name, kinds in SAMPLES.items():
        folder = ROOT / ruleset_name
        folder.mkdir(exist_ok=True)
        ruleset = load_ruleset(ruleset_name)
        for kind, make in kinds.items():
            capture, roles = make()
            pcap = capture.write(folder / f"{kind}.pcap")
            inv_path = folder / f"{kind}.inventory.yaml"
            write_inventory(inv_path, ruleset_name, roles)
            result = audit([pcap], ruleset, load_inventory(inv_path, ruleset), fail_on="never")
            doc = normalise(result.document, folder)
            (folder / f"{kind}.expected.json").write_text(json.dumps(doc, indent=2) + "\n")
            flows = normalise_flows(flows_json(result.traffic))
            (folder / f"{kind}.flows.json").write_text(
                json.dumps(flows, indent=2, ensure_ascii=False, default=str) + "\n"
            )
            by_kind = doc["summary"]["by_kind"]
            print(
                f"{pcap.relative_to(ROOT)}: {len(capture.frames)} packets, "
                f"{doc['summary']['findings']} findings {by_kind}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
