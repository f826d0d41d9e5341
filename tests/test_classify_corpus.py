"""Payload classifier on real captures from ../shared/corpus: agrees with the file names and,
where tshark is installed, with tshark's dissectors.

Flows are cut from the captures here with dpkt (not with the project's capture layer, so a
bug there cannot hide one here): first packet's sender is the initiator unless it is a
SYN-ACK, the first six payload-carrying packets of each direction are kept, each cut to the
capture layer's head policy.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import dpkt
import pytest

from auditor.classify import APPS, FlowFacts, classify_flow

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ZEEK = CORPUS / "zeek"
TCPDUMP = CORPUS / "tcpdump"

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus not present"),
]

_TEXT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")
Packet = tuple[int, bytes, int]
Endpoint = tuple[bytes, int]


_QUIC_VERSIONS = (b"\x00\x00\x00\x01", b"\x6b\x33\x43\xcf")


def head_of(payload: bytes, proto: str = "tcp") -> bytes:
    """The capture layer's head policy (auditor/capture/reader.py)."""
    if payload[:2] == b"\x16\x03" or (proto == "udp" and payload[:2] == b"\x16\xfe"):
        return payload[:4096]
    if (
        proto == "udp"
        and len(payload) >= 1200
        and payload[0] >= 0xC0
        and (
            payload[1:5] in _QUIC_VERSIONS
            or payload[1:4] == b"\xff\x00\x00"
            or payload[1:3] == b"Q0"
        )
    ):
        return payload[:4096]
    if len(payload) >= 4 and all(b in _TEXT for b in payload[:3]) and payload[3] in _TEXT | {0x20}:
        return payload[:1024]
    return payload[:128]


class Flow:
    def __init__(self, proto: str, initiator: Endpoint, responder: Endpoint) -> None:
        self.proto = proto
        self.initiator = initiator
        self.responder = responder
        self.packets: list[Packet] = []
        self.counts = [0, 0]

    @property
    def key(self) -> tuple[str, Endpoint, Endpoint]:
        low, high = sorted((self.initiator, self.responder))
        return (self.proto, low, high)

    def classify(self) -> FlowFacts:
        return classify_flow(self.proto, self.responder[1], self.packets)


def _ip(buf: bytes, linktype: int) -> Any:
    if linktype == dpkt.pcap.DLT_EN10MB:
        pkt = dpkt.ethernet.Ethernet(buf).data
    elif linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        pkt = dpkt.loopback.Loopback(buf).data
    elif linktype in (dpkt.pcap.DLT_RAW, 12, 14, 101):
        pkt = dpkt.ip.IP(buf) if buf[:1] and buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    elif linktype == dpkt.pcap.DLT_LINUX_SLL:
        pkt = dpkt.sll.SLL(buf).data
    elif linktype == dpkt.pcap.DLT_PPP:  # optional address/control ff 03, 2-byte protocol
        body = buf[2:] if buf[:2] == b"\xff\x03" else buf
        proto = int.from_bytes(body[:2], "big")
        if proto == 0x0021:
            pkt = dpkt.ip.IP(body[2:])
        elif proto == 0x0057:
            pkt = dpkt.ip6.IP6(body[2:])
        else:
            return None
    else:
        return None
    return pkt if isinstance(pkt, dpkt.ip.IP | dpkt.ip6.IP6) else None


def read_flows(path: Path, per_direction: int = 6) -> list[Flow]:
    flows: dict[tuple[str, Endpoint, Endpoint], Flow] = {}
    with path.open("rb") as f:
        pcapng = f.read(4) == b"\x0a\x0d\x0d\x0a"
        f.seek(0)
        reader: Any = dpkt.pcapng.Reader(f) if pcapng else dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        for _ts, buf in reader:
            try:
                ip = _ip(buf, linktype)
            except (dpkt.UnpackError, IndexError, ValueError):
                continue
            if ip is None:
                continue
            l4 = ip.data
            if isinstance(l4, dpkt.tcp.TCP):
                proto, payload, plen = "tcp", bytes(l4.data), len(l4.data)
            elif isinstance(l4, dpkt.udp.UDP):
                proto, payload = "udp", bytes(l4.data)
                plen = max(len(payload), l4.ulen - 8)
            else:
                continue
            src: Endpoint = (bytes(ip.src), l4.sport)
            dst: Endpoint = (bytes(ip.dst), l4.dport)
            low, high = sorted((src, dst))
            flow = flows.get((proto, low, high))
            if flow is None:
                synack = proto == "tcp" and l4.flags & 0x12 == 0x12
                flow = Flow(proto, dst, src) if synack else Flow(proto, src, dst)
                flows[flow.key] = flow
            direction = 0 if src == flow.initiator else 1
            if not payload or flow.counts[direction] >= per_direction:
                continue
            flow.counts[direction] += 1
            flow.packets.append((direction, head_of(payload, proto), plen))
    return list(flows.values())


def _files(folder: Path, pattern: str) -> list[str]:
    return sorted(p.name for p in folder.glob(pattern)) if folder.exists() else []


# --- Agreement with the file names -----------------------------------------------------

#: (file pattern, app, ports on which every flow with payload must be that app)
NAMED = [
    (ZEEK, "http__*", "http", None),  # None: every TCP flow with payload
    (ZEEK, "ssh__*", "ssh", {22, 2200, 2299}),
    (ZEEK, "tls__*.pcap", "tls", {443}),
    (ZEEK, "smb__*", "smb", {445}),
    (ZEEK, "krb__smb2_krb.pcap", "smb", {445}),
    (ZEEK, "ldap__*", "ldap", {389}),
    (ZEEK, "dns-edns-ecs.pcap", "dns", {53}),
    (ZEEK, "mysql__*", "mysql", {3306}),
    (ZEEK, "dhcp__*", "dhcp", {67, 68}),
    (ZEEK, "rdp__*", "rdp", {3389}),
    (ZEEK, "krb__k*", "kerberos", {88}),
    (ZEEK, "dce-rpc__mapi.pcap", "dcerpc", {135}),
    (ZEEK, "nfs__*", "nfs", {2049, 20048}),
    (ZEEK, "tls__dtls13-cid.pcap", "dtls", {11111}),
    (ZEEK, "postgresql__*", "postgresql", {5432}),
    (ZEEK, "rfb__*", "vnc", {5901}),
    (ZEEK, "snmp__*", "snmp", {161}),
    (ZEEK, "ftp__*", "ftp", {21}),
    (ZEEK, "smtp*.pcap", "smtp", {25}),
    (ZEEK, "pop3__*", "pop3", {110}),
    (ZEEK, "irc-*", "irc", {6667}),
    (ZEEK, "contentline__contentline-irc-5k-line.pcap", "irc", {6667}),
    (ZEEK, "redis__[!o]*", "redis", {6379}),  # not the fuzzer's reproducer: HTTP-like junk
    (TCPDUMP, "ntp*.pcap", "ntp", {123}),
    (TCPDUMP, "dhcp-*", "dhcp", {67, 68}),
    (TCPDUMP, "dns_*.pcap", "dns", {53, 8053}),
    (TCPDUMP, "dnssec.pcap", "dns", {53}),
    (TCPDUMP, "edns-opts.pcap", "dns", {53}),
    (TCPDUMP, "ssh.pcap", "ssh", {22}),
]
NAMED_CASES = [
    pytest.param(folder / name, app, ports, id=name)
    for folder, pattern, app, ports in NAMED
    for name in _files(folder, pattern)
    if (name, app) != ("tls__dtls13-cid.pcap", "tls")  # DTLS: its own entry
    and name != "dns_fwdptr.pcap"  # DNS over ISAKMP's port, a dissector test
]


@pytest.mark.parametrize(("path", "app", "ports"), NAMED_CASES)
def test_flows_agree_with_file_name(path: Path, app: str, ports: set[int] | None) -> None:
    flows = [f for f in read_flows(path) if f.packets]
    apps: Counter[str] = Counter()
    for flow in flows:
        facts = flow.classify()
        assert facts.app in APPS
        apps[facts.app] += 1
        on_port = flow.proto == "tcp" if ports is None else flow.responder[1] in ports
        if on_port:
            assert facts.app == app, (flow.proto, flow.responder[1], flow.packets[0][1][:32])
    assert apps[app] >= 1


def _facts(path: Path, app: str) -> list[FlowFacts]:
    return [f for f in (flow.classify() for flow in read_flows(path)) if f.app == app]


def test_corpus_named_cases_found() -> None:
    assert len(NAMED_CASES) >= 60


def test_ssh_banners() -> None:
    facts = _facts(ZEEK / "ssh__ssh.pcap", "ssh")
    assert all(f.ssh_banner and f.ssh_banner.startswith("SSH-") for f in facts)
    assert all(f.encrypted is True for f in facts)
    assert {f.ssh_banner for f in facts} >= {"SSH-2.0-OpenSSH_5.8", "SSH-2.0-paramiko_1.15.2"}
    # protocol 1 clients against a 1.99 server: the banners say so
    assert "SSH-1.5-OpenSSH_6.2" in {f.ssh_client_banner for f in facts}


def test_ssh_and_tls_multiplexed_on_443() -> None:
    apps = {f.classify().app for f in read_flows(ZEEK / "ssl-and-ssh-using-sslh.pcap") if f.packets}
    assert apps == {"ssh", "tls"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "tls__tls-1.2-stream-keylog.pcap",
            {
                "sni": {"www.heise.de"},
                "tls_version": {"TLS 1.2"},
                "tls_client_versions": {("TLS 1.3", "TLS 1.2")},
                "alpn_selected": {"http/1.1"},
                "tls_cert_requested": {False},
                "tls_client_cert": {False},
            },
        ),
        (
            "tls__signed_certificate_timestamp.pcap",
            {"sni": {"ritter.vg"}, "tls_record_version": {"TLS 1.0"}, "tls_version": {"TLS 1.2"}},
        ),
        (
            "tls__google-cert-repeat.pcap",
            {"tls_version": {"TLS 1.2"}, "tls_cert_requested": {False}, "tls_client_cert": {False}},
        ),
        # One SSLv2-format hello, then TLS 1.0 records; the server picks TLS 1.0.
        (
            "tls__ssl.v3.pcap",
            {"tls_record_version": {"SSL 2.0", "TLS 1.0"}, "tls_version": {"TLS 1.0"}},
        ),
        # The heartbleed client never sends its second flight: certificate facts stay unknown.
        ("tls__heartbleed.pcap", {"tls_version": {"TLS 1.2"}, "tls_cert_requested": {None}}),
    ],
)
def test_tls_facts(name: str, expected: dict[str, set[object]]) -> None:
    facts = _facts(ZEEK / name, "tls")
    assert {k: {getattr(f, k) for f in facts} for k in expected} == expected
    assert all(f.encrypted is True for f in facts)


def test_smb_dialects() -> None:
    dialects = {
        name: {f.smb_dialect for f in _facts(ZEEK / name, "smb")}
        for name in ("smb__smb2.pcap", "krb__smb2_krb.pcap", "smb__smb3_multichannel.pcap")
    }
    assert dialects == {
        "smb__smb2.pcap": {"2.0.2"},
        "krb__smb2_krb.pcap": {"2.1"},
        "smb__smb3_multichannel.pcap": {"3.1.1"},
    }
    raw = _facts(ZEEK / "smb__raw_ntlm_in_smb.pcap", "smb")
    assert [f.smb_dialect for f in raw] == ["NT LM 0.12"]


def test_ldap_sasl_bind() -> None:
    facts = _facts(ZEEK / "ldap__missing_ldap_logs.pcapng", "ldap")
    assert {f.ldap_bind for f in facts} == {"sasl:GSS-SPNEGO"}
    assert not any(f.ldap_starttls for f in facts)


def test_mysql_greeting() -> None:
    (facts,) = _facts(ZEEK / "mysql__many-query-attrs.pcap", "mysql")
    assert (facts.server_version, facts.encrypted) == ("9.0.0", False)


def test_mixed_capture_ports() -> None:
    seen = {
        (f.responder[1], f.classify().app) for f in read_flows(ZEEK / "var-services-std-ports.pcap")
    }
    assert {(53, "dns"), (22, "ssh"), (80, "http"), (123, "ntp")} <= seen


def test_http_facts() -> None:
    facts = _facts(ZEEK / "http__bro.org.pcap", "http")
    assert {f.http_host for f in facts} == {"bro.org", "www.bro.org"}
    assert all(f.http_method == "GET" and f.http_status for f in facts)
    assert all(f.http_user_agent and f.http_user_agent.startswith("Mozilla/5.0") for f in facts)


def test_dns_answers() -> None:
    facts = _facts(TCPDUMP / "dns_tcp.pcap", "dns")
    assert facts[0].dns_queries == ("www.tcpdump.org",)
    assert ("www.tcpdump.org", "192.139.46.66") in facts[0].dns_answers


# --- Agreement with tshark -------------------------------------------------------------

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")


def _tshark(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "separator=|"]
    cmd += ["-d", "udp.port==8053,dns", "-d", "tcp.port==8053,dns"]
    for field in fields:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("|") for line in out.splitlines() if line]


TLS_NAMES = {"0x0300": "SSL 3.0", "0x0301": "TLS 1.0", "0x0302": "TLS 1.1", "0x0303": "TLS 1.2"}
TLS_NAMES["0x0304"] = "TLS 1.3"


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("name", [n for n in _files(ZEEK, "tls__*.pcap") if "dtls" not in n])
def test_tls_agrees_with_tshark(name: str) -> None:
    path = ZEEK / name
    sni: dict[int, str] = {}
    version: dict[int, str] = {}
    for src_port, hs_type, sni_value, hs_version, supported in _tshark(
        path,
        "tls.handshake.type == 1 || tls.handshake.type == 2",
        "tcp.srcport",
        "tls.handshake.type",
        "tls.handshake.extensions_server_name",
        "tls.handshake.version",
        "tls.handshake.extensions.supported_version",
    ):
        if hs_type.startswith("1"):
            sni.setdefault(int(src_port), sni_value)
        elif hs_type.startswith("2") and hs_version:
            version.setdefault(int(src_port), TLS_NAMES.get(supported or hs_version, "?"))
    checked = 0
    for flow in read_flows(path):
        facts = flow.classify()
        client_port = flow.initiator[1]
        if client_port in sni:
            assert (facts.sni or "") == sni[client_port]
            checked += 1
        if flow.responder[1] in version and facts.tls_version is not None:
            assert facts.tls_version == version[flow.responder[1]]
    assert checked or not sni


QUIC_TRACES = [ZEEK / n for n in _files(ZEEK, "quic__*")] + [
    TCPDUMP / n for n in _files(TCPDUMP, "quic_*.pcap")
]


#: where the ClientHello lies beyond the 4 client packets the flow table keeps: three 0-RTT
#: packets first, then a post-quantum ClientHello over three Initials
QUIC_HELLO_BEYOND_HEADS = frozenset({"quic__quic-decrypt-fail-google-de-51833.pcap"})


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("path", QUIC_TRACES, ids=lambda p: p.name)
def test_quic_agrees_with_tshark(path: Path) -> None:
    """SNI of the client's Initial and the version of the server's, decrypted by both, from
    the 4 payload packets per direction the flow table keeps."""
    sni: dict[int, str] = {}
    version: dict[int, str] = {}
    for src_port, dst_port, hs_type, name, supported in _tshark(
        path,
        "quic && (tls.handshake.type == 1 || tls.handshake.type == 2)",
        "udp.srcport",
        "udp.dstport",
        "tls.handshake.type",
        "tls.handshake.extensions_server_name",
        "tls.handshake.extensions.supported_version",
    ):
        if hs_type.startswith("1"):
            sni.setdefault(int(src_port), name)
        elif hs_type.startswith("2") and supported:
            version.setdefault(int(dst_port), TLS_NAMES.get(supported, "?"))
    checked = 0
    for flow in read_flows(path, per_direction=4):
        if flow.proto != "udp" or flow.initiator[1] not in sni:
            continue
        facts = flow.classify()
        assert facts.app == "quic"
        if path.name in QUIC_HELLO_BEYOND_HEADS:
            assert facts.sni is None
            continue
        assert (facts.sni or "") == sni[flow.initiator[1]]
        if flow.initiator[1] in version:
            assert facts.tls_version == version[flow.initiator[1]]
        checked += 1
    assert checked == len(sni) or path.name in QUIC_HELLO_BEYOND_HEADS


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize(
    "path",
    [ZEEK / "dns-edns-ecs.pcap", ZEEK / "wikipedia.pcap"]
    + [TCPDUMP / n for n in _files(TCPDUMP, "dns_*.pcap") if n != "dns_fwdptr.pcap"],
    ids=lambda p: p.name,
)
def test_dns_queries_agree_with_tshark(path: Path) -> None:
    rows = _tshark(path, "dns || mdns || llmnr", "dns.qry.name")
    theirs = {name.lower().rstrip(".") for row in rows for name in row[0].split(",") if name}
    ours = {q for flow in read_flows(path) for q in flow.classify().dns_queries}
    assert ours <= theirs
    assert len(ours) >= 0.8 * len(theirs)


# --- Agreement with tshark's application protocol, per conversation ----------------------
#
# One tshark pass per trace of zeek/, two traces at a time, exporting the layer chain and the
# addresses and ports; auditor.evidence.conversations' ``Frame`` reads the innermost
# conversation from them (tunnels, IPv6 extension headers and ICMP quotes as verify has them). The tcpdump/ traces are left out: nearly all are malformed-input reproducers
# without an application conversation, and 830 tshark start-ups take minutes.
#
# tshark's application protocol of a conversation: the first layer past the innermost
# TCP/UDP header, in the first frame that has one, that is not a container (TPKT, COTP and
# NetBIOS session carry the protocol named next) or content (certificates, MIME parts,
# GSS-API/SPNEGO/NTLMSSP tokens, media, ...). tshark decides by payload where it has a
# heuristic and by port otherwise; we decide by payload only.

#: tshark protocol -> our app
TSHARK_APPS = {
    "http": "http", "websocket": "http",  # WebSocket starts as an HTTP upgrade
    "tls": "tls", "ssl": "tls", "ssh": "ssh", "ldap": "ldap", "cldap": "ldap",
    "smb": "smb", "smb2": "smb", "dns": "dns", "mdns": "dns", "llmnr": "dns", "ntp": "ntp",
    "dhcp": "dhcp", "iscsi": "iscsi", "mysql": "mysql", "ftp": "ftp", "ftp-data": "ftp-data",
    "telnet": "telnet", "smtp": "smtp", "imf": "smtp", "pop": "pop3", "imap": "imap",
    "irc": "irc", "resp": "redis", "kerberos": "kerberos", "dcerpc": "dcerpc", "rdp": "rdp",
    "mbtcp": "modbus", "quic": "quic", "gquic": "quic", "pgsql": "postgresql", "vnc": "vnc",
    "snmp": "snmp", "syslog": "syslog", "nfs": "nfs", "mount": "nfs", "nfsacl": "nfs",
    "nlm": "nfs", "stat": "nfs", "portmap": "portmap", "dtls": "dtls",
    "nbns": "netbios-ns", "nbdgm": "netbios-dgm",
}  # fmt: skip
#: layers that carry the protocol named next (ONC RPC: the program is the protocol; a frame
#: with a bare ``rpc``, a reply tshark could not match to its call, names none)
CONTAINERS = frozenset({"tpkt", "cotp", "nbss", "rpc"})
#: layers that are content, not a protocol of the conversation
CONTENT = frozenset(
    [
        "data",
        "data-text-lines",
        "media",
        "mime_multipart",
        "png",
        "json",
        "urlencoded-form",
        "xml",
        "x509sat",
        "x509ce",
        "pkix1implicit",
        "pkix1explicit",
        "ns_cert_exts",
        "logotypecertextn",
        "pkcs-1",
        "cms",
        "ocsp",
        "spnego",
        "spnego-krb5",
        "gss-api",
        "ntlmssp",
        "pkinit",
        "sdp",
        "pkixproxy",
        "image-gif",
        "image-jfif",
        "t125",
        "t124",
    ]
)
#: (trace, tshark's app, ours) where tshark is the one that is wrong: a port-based guess
#: against the payload
TSHARK_WRONG = {
    # SSH multiplexed on 443 by sslh: tshark assumes TLS on 443
    ("ssl-and-ssh-using-sslh.pcap", "tls", "ssh"),
    # port 21 / port 80 carrying fuzzer bytes, not FTP or HTTP
    ("quic__383379789-decrypt-crash.pcap", "ftp", "unknown"),
    ("redis__oss-fuzz-473580107.pcap", "http", "unknown"),
    # C12.22 by port 1153 (tshark); the payload is a DCE/RPC bind
    ("dce-rpc__mapi.pcap", "other:c1222", "dcerpc"),
}


def tshark_app(layers: list[str]) -> str | None:
    """Our name for tshark's application protocol of a frame; ``other:NAME`` for one we do
    not classify; None for a frame without one."""
    l4 = [i for i, name in enumerate(layers) if name in ("tcp", "udp")]
    if not l4:
        return None
    for name in layers[l4[-1] + 1 :]:
        if name in TSHARK_APPS:
            return TSHARK_APPS[name]
        if name not in CONTAINERS and name not in CONTENT:
            return "other:" + name
    return None


_CONV_FIELDS = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
                "udp.srcport", "udp.dstport")  # fmt: skip


def _tshark_frames(path: Path) -> list[Any]:
    from auditor.evidence.conversations import NOT_DECAPSULATED, Frame

    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a"]
    cmd += ["-E", "aggregator=,", "-e", "frame.protocols"]
    for name in _CONV_FIELDS:
        cmd += ["-e", name]
    for proto in NOT_DECAPSULATED:
        cmd += ["--disable-protocol", proto]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    frames = []
    for number, line in enumerate(out.splitlines(), 1):
        values = line.split("\t")
        layers = values[0].split(":")
        for cut, name in enumerate(layers):
            if name in ("icmp", "icmpv6"):  # an ICMP error's quote is not the frame's own
                layers = layers[:cut]
                break
        fields = {
            k: v.split(",") if v else [] for k, v in zip(_CONV_FIELDS, values[1:], strict=True)
        }
        frames.append(Frame(number, 0, layers, fields))  # length: not compared here
    return frames


@needs_tshark
@pytest.mark.tshark
def test_apps_agree_with_tshark() -> None:
    """Where tshark names an application protocol for a TCP/UDP conversation, our ``app``
    (from the real pipeline, read_traffic) agrees on at least 90% of them; on the protocols
    both know (TSHARK_APPS), every disagreement is one of TSHARK_WRONG."""
    from concurrent.futures import ThreadPoolExecutor

    from auditor.evidence.conversations import conv
    from auditor.traffic import read_traffic

    traces = sorted(ZEEK.glob("*.pcap*"))
    named: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    wrong: set[tuple[str, str, str]] = set()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for path, frames in zip(traces, pool.map(_tshark_frames, traces), strict=True):
            theirs: dict[Any, str] = {}
            for frame in frames:
                c = frame.conversation()
                app = tshark_app(frame.layers) if c is not None else None
                if app is not None:
                    theirs.setdefault(c, app)
            flows = read_traffic([path]).flows
            ours: dict[Any, set[str]] = {}
            if flows is not None:
                cols = ["proto", "src_ip", "src_port", "dst_ip", "dst_port", "app"]
                for r in flows.select(cols).to_pylist():
                    c = conv(r["proto"], (r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"]))
                    ours.setdefault(c, set()).add(r["app"])
            for c, app in theirs.items():
                mine = ours.get(c, {"(no flow)"})
                named[app] += 1
                if app in mine:
                    agreed[app] += 1
                else:
                    wrong.add((path.name, app, ",".join(sorted(mine))))
    total, agree = sum(named.values()), sum(agreed.values())
    table = "\n".join(f"  {a:14} {agreed[a]:4}/{named[a]:4}" for a, _n in named.most_common())
    assert agree >= 0.90 * total, f"{agree}/{total} agree:\n{table}"
    known = {w for w in wrong if not w[1].startswith("other:")} | (wrong & TSHARK_WRONG)
    assert known == TSHARK_WRONG, f"{agree}/{total} agree:\n{table}\n{sorted(known)}"
