"""``--deep``: Wireshark's reading of the flows behind findings, attached as evidence.

Cost bounded by the findings, not the capture: the flows behind findings (most severe
first, at most ``limit``) are found in their captures by the fast reader, the first
:data:`PACKETS_PER_FLOW` packets of each are copied into one temporary pcap (by libpcap, as
``show --export-pcap`` does), and tshark dissects that file in one pass through pyshark
(one pass per link type when the captures mix link types). Every item of evidence carries
the capture and frame number it was read from, so a reviewer opens the capture in
Wireshark at that frame.

What is read, per application protocol (and never a password: an LDAP simple bind and an
FTP ``PASS`` are reported as such, their secret left out):

* HTTP: request line, Host, User-Agent, Content-Length, the file name (last part of the
  target, or Content-Disposition), the response status;
* TLS: negotiated version and cipher suite, SNI, the server certificate's subject, issuer
  and validity, whether the server asked for a client certificate and whether the client
  sent one (with its subject);
* LDAP: the bind (simple or SASL, its DN; a simple bind outside TLS sends the password in
  cleartext, which the evidence says);
* FTP: the login name (``USER``), that a password was sent (``PASS``), files retrieved or
  stored; Telnet: that the session is cleartext, and the name typed after the server's
  login prompt (tshark gives the bytes; what follows a password prompt is never kept);
* SSH: both banners;
* otherwise: tshark's protocol stack of the flow's first packet with payload.

Where tshark names an application protocol the fast engine does not (:data:`TSHARK_APPS`
maps the names), the finding says so (``wireshark_disagrees``).

In the result: each finding's ``evidence.wireshark`` is a list of readable lines
(``capture frame N: field value``); the document's ``deep`` holds what was done (flows,
packets, tshark passes, the limit and the flows it left out) and, in ``evidence``, every
flow's items as structured records (``frame``, ``capture``, ``field``, ``value``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from auditor.capture.inputs import display_name, is_stdin
from auditor.errors import AuditorError, CaptureError, ExitCode
from auditor.evidence.conversations import TSHARK_APPS
from auditor.evidence.packets import ExportError, PacketLine, export_pcap, find_packets, flow_refs
from auditor.evidence.tshark import require_tshark, run_tshark
from auditor.findings.model import AuditDocument, Finding
from auditor.rules.kinds import SEVERITIES

_ENGINE_FACTS = ("flow_id", "app", "tls_version", "sni", "tls_cert_requested", "tls_client_cert")
PACKETS_PER_FLOW = 40  #: packets of each flow dissected: handshakes and headers, not bulk data
DEFAULT_LIMIT = 100  #: flows dissected at most (--deep-limit)
#: protocols whose fields are read or whose presence names the flow's application
_PROTOCOLS = tuple(dict.fromkeys(["ftp", "telnet", *sorted(set(TSHARK_APPS) - {"ssl"})]))
#: the packets pyshark is handed (besides each flow's first payload packet)
SHOWN = " or ".join(
    ["tls.handshake", "http", "ldap", "ftp", "ssh.protocol", "telnet",
     *sorted(set(TSHARK_APPS) - {"ssl", "tls", "http", "ldap", "ssh"})]
)  # fmt: skip
SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}  # the kinds table's order
_PAREN = re.compile(r"\((.*)\)\s*$")


class DeepError(AuditorError):
    """tshark (through pyshark) could not dissect the flows' packets."""

    exit_code = ExitCode.INTERNAL


@dataclass(frozen=True)
class Item:
    """One piece of evidence: what, and the frame of its capture it was read in."""

    capture: str
    frame: int
    name: str
    value: str

    def to_json(self) -> dict[str, Any]:
        return {"frame": self.frame, "capture": self.capture, "field": self.name,
                "value": self.value}  # fmt: skip

    def one_line(self) -> str:
        return f"{self.capture} frame {self.frame}: {self.name} {self.value}"


@dataclass
class FlowEvidence:
    """tshark's reading of one flow."""

    flow_id: str
    engine: dict[str, Any]  # the fast engine's facts of the flow (flow table columns)
    packets: int = 0  # dissected
    stack: str | None = None
    apps: set[str] = field(default_factory=set)
    items: list[Item] = field(default_factory=list)
    #: Telnet: what the client is typing now ("login" after a login prompt, "secret" after
    #: a password prompt, None otherwise), the typed name so far, and its first packet
    telnet: tuple[str | None, str, PacketLine | None] = (None, "", None)

    def add(self, p: PacketLine, name: str, value: object) -> None:
        text = str(value).strip()
        if text and not any(i.name == name for i in self.items if i.value == text):
            self.items.append(Item(p.capture, p.frame, name, text))

    def first(self, name: str) -> Item | None:
        return next((i for i in self.items if i.name == name), None)

    def disagreements(self) -> list[str]:
        """Where tshark reads the flow otherwise than the fast engine did: the application
        protocol (where tshark names one), and for TLS the negotiated version, the SNI and
        the certificate request (where tshark read the message that carries it)."""
        out = []
        e = self.engine
        app = e.get("app")
        if self.apps and app not in self.apps:
            out.append(f"tshark dissects {', '.join(sorted(self.apps))}, "
                       f"pcap-audit classified {app or 'none'}")  # fmt: skip
        version = self.first("tls.version")
        if version and e.get("tls_version") and version.value != e["tls_version"]:
            out.append(f"TLS version: tshark {version.value} (frame {version.frame}), "
                       f"pcap-audit {e['tls_version']}")  # fmt: skip
        hello = self.first("tls.client_hello")
        sni = self.first("tls.sni")
        if hello and e.get("sni") and (sni is None or sni.value != e["sni"]):
            seen = sni.value if sni else "none"
            out.append(f"SNI: tshark {seen} in the ClientHello (frame {hello.frame}), "
                       f"pcap-audit {e['sni']}")  # fmt: skip
        server = self.first("tls.server_hello")
        asked = self.first("tls.client_certificate_requested")
        if server and e.get("tls_cert_requested") and asked is None:
            out.append(f"client certificate request: tshark reads none after the ServerHello "
                       f"(frame {server.frame}), pcap-audit read one")  # fmt: skip
        sent = self.first("tls.client_certificate_sent")
        if sent and e.get("tls_client_cert") is not None:
            theirs = sent.value.startswith("yes")
            if theirs != bool(e["tls_client_cert"]):
                out.append(f"client certificate: tshark {'sent' if theirs else 'none'} "
                           f"(frame {sent.frame}), pcap-audit "
                           f"{'sent' if e['tls_client_cert'] else 'none'}")  # fmt: skip
        return [f"flow {self.flow_id}: {x}" for x in out]

    def to_json(self) -> dict[str, Any]:
        return {
            "flow_id": self.flow_id,
            "packets_dissected": self.packets,
            "stack": self.stack,
            "tshark_apps": sorted(self.apps),
            "items": [i.to_json() for i in self.items],
        }

    def lines(self) -> list[str]:
        """The evidence as a finding carries it: one readable line per item."""
        head = f"flow {self.flow_id}: {self.packets} packets dissected, stack {self.stack or '-'}"
        return [head, *(i.one_line() for i in self.items)]


@dataclass(frozen=True)
class DeepSummary:
    """What --deep did: flows dissected, tshark passes, flows left out by the limit."""

    flows: int
    packets: int
    passes: int
    limit: int
    left_out: int
    error: str | None = None  #: why no evidence could be read (the audit stands without it)

    def to_json(self) -> dict[str, Any]:
        return {"flows": self.flows, "packets": self.packets, "tshark_passes": self.passes,
                "limit": self.limit, "flows_left_out": self.left_out,
                "error": self.error}  # fmt: skip


def _values(layer: Any, name: str) -> list[str]:
    f = layer.get_field(name)
    return [] if f is None else [str(x.show) for x in f.all_fields]


def _shown(layer: Any, name: str) -> list[str]:
    """The text in parentheses of each occurrence's display line (``rdnSequence: 3 items
    (id-at-commonName=...)`` -> ``id-at-commonName=...``)."""
    f = layer.get_field(name)
    out = []
    for x in [] if f is None else f.all_fields:
        m = _PAREN.search(str(x.showname))
        out.append(m.group(1) if m else str(x.show))
    return out


def _name(showname: str) -> str:
    """``Cipher Suite: TLS_AES_128_GCM_SHA256 (0x1301)`` -> ``TLS_AES_128_GCM_SHA256``."""
    text = showname.split(": ", 1)[-1]
    return re.sub(r"\s*\(0x[0-9a-fA-F]+\)$", "", text)


def _tls(ev: FlowEvidence, p: PacketLine, tls: Any) -> None:
    types = _values(tls, "handshake_type")
    f = tls.get_field("handshake_ciphersuite")
    if "1" in types:
        ev.add(p, "tls.client_hello", "seen")
        for sni in _values(tls, "handshake_extensions_server_name"):
            ev.add(p, "tls.sni", sni)
    if "2" in types:  # ServerHello: the negotiated version and suite
        ev.add(p, "tls.server_hello", "seen")
        sv = tls.get_field("handshake_extensions_supported_version")
        hv = tls.get_field("handshake_version")
        version = sv if sv is not None else hv
        if version is not None:
            ev.add(p, "tls.version", _name(str(version.all_fields[-1].showname)))
        if f is not None:
            ev.add(p, "tls.cipher_suite", _name(str(f.all_fields[0].showname)))
    if "11" in types:
        subjects = _shown(tls, "x509af_rdnsequence")
        lengths = _values(tls, "handshake_certificates_length")
        if p.forward:  # the client's Certificate message
            sent = bool(subjects) or any(x not in ("", "0") for x in lengths)
            ev.add(p, "tls.client_certificate_sent", "yes" if sent else "no (empty Certificate)")
            if subjects:
                ev.add(p, "tls.client_certificate_subject", subjects[0])
        elif subjects:
            ev.add(p, "tls.server_certificate_subject", subjects[0])
            issuers = _shown(tls, "x509if_rdnsequence")
            if issuers:
                ev.add(p, "tls.server_certificate_issuer", issuers[0])
            times = _values(tls, "x509af_utctime") or _values(tls, "x509af_generalizedtime")
            if len(times) >= 2:
                ev.add(p, "tls.server_certificate_validity", f"{times[0]} - {times[1]}")
    if "13" in types:
        ev.add(p, "tls.client_certificate_requested", "yes (CertificateRequest)")


def _http(ev: FlowEvidence, p: PacketLine, http: Any) -> None:
    method = http.get_field_value("request_method")
    if method:
        uri = http.get_field_value("request_uri") or ""
        version = http.get_field_value("request_version") or ""
        ev.add(p, "http.request_line", f"{method} {uri} {version}".strip())
        for name, key in (("host", "http.host"), ("user_agent", "http.user_agent")):
            v = http.get_field_value(name)
            if v:
                ev.add(p, key, v)
        length = http.get_field_value("content_length_header")
        if length and method in ("POST", "PUT"):
            ev.add(p, "http.request_content_length", length)
        base = uri.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if "." in base:
            ev.add(p, "http.file_name", base)
    code = http.get_field_value("response_code")
    if code:
        phrase = http.get_field_value("response_phrase") or ""
        ev.add(p, "http.response", f"{code} {phrase}".strip())
        length = http.get_field_value("content_length_header")
        if length:
            ev.add(p, "http.response_content_length", length)
        disp = http.get_field_value("content_disposition")
        if disp and "filename=" in disp:
            ev.add(p, "http.file_name", disp.split("filename=", 1)[1].strip('"; '))


def _ldap(ev: FlowEvidence, p: PacketLine, ldap: Any) -> None:
    ops = _values(ldap, "protocolop")
    if "0" not in ops:
        return
    auth = _values(ldap, "authentication")
    dn = (_values(ldap, "name") or [""])[0] or "(anonymous)"
    if "0" in auth:
        ev.add(p, "ldap.bind", f"simple bind as {dn}")
        ev.add(p, "ldap.cleartext_password",
               "a simple bind outside TLS sends the password in cleartext (not shown here)")  # fmt: skip
    elif auth:
        mech = (_values(ldap, "mechanism") or ["?"])[0]
        ev.add(p, "ldap.bind", f"SASL bind ({mech}) as {dn}")


def _ftp(ev: FlowEvidence, p: PacketLine, ftp: Any) -> None:
    cmd = (ftp.get_field_value("request_command") or "").upper()
    arg = ftp.get_field_value("request_arg") or ""
    if cmd == "USER":
        ev.add(p, "ftp.login", arg)
    elif cmd == "PASS":
        ev.add(p, "ftp.password_sent", "a password was sent in cleartext (not shown here)")
    elif cmd in ("RETR", "STOR") and arg:
        ev.add(p, f"ftp.{cmd.lower()}", arg)


def _telnet(ev: FlowEvidence, p: PacketLine, telnet: Any) -> None:
    """The login name typed after the server's login prompt (line by line or a character
    a packet); what is typed after a password prompt is never kept."""
    ev.add(p, "telnet.cleartext", "a Telnet session in cleartext")
    f = telnet.get_field("data")
    # the display line keeps the line ends escaped ("Data: alice\\r\\n"); the value does not
    shown = [str(x.showname).split(": ", 1)[-1] for x in ([] if f is None else f.all_fields)]
    text = "".join(shown).replace("\\r", "\r").replace("\\n", "\n")
    mode, typed, first = ev.telnet
    if not p.forward:
        low = text.lower()
        if "password" in low:
            ev.telnet = ("secret", "", None)
        elif "login:" in low or "username:" in low:
            ev.telnet = ("login", "", None)
        return
    if mode != "login":
        return
    typed += text
    first = first or p
    if "\r" in typed or "\n" in typed:
        name = typed.replace("\n", "\r").split("\r", 1)[0].strip()
        if name:
            ev.add(first, "telnet.login", name)
        ev.telnet = (None, "", None)
    else:
        ev.telnet = (mode, typed, first)


def _dissect(ev_by_flow: dict[str, FlowEvidence], lines: Sequence[PacketLine], pcap: str) -> None:
    """One tshark pass over ``pcap``, whose frame i is ``lines[i - 1]``.

    tshark dissects every packet (reassembly needs them) but hands pyshark only those that
    carry what is read here (:data:`SHOWN`) and each flow's first payload packet (for its
    stack), with only the application protocols' fields (``-J``): pyshark's parsing of
    tshark's output, not tshark, is most of the cost (about 3 ms a packet in full; a tenth
    of that so).
    """
    import pyshark

    firsts: dict[str, int] = {}
    for i, p in enumerate(lines, 1):
        ev_by_flow[p.flow_id].packets += 1
        if p.payload_len and p.flow_id not in firsts:
            firsts[p.flow_id] = i
    shown = " or ".join([SHOWN, *(f"frame.number == {n}" for n in firsts.values())])
    cap = pyshark.FileCapture(
        pcap,
        keep_packets=False,
        tshark_path=require_tshark("--deep"),
        display_filter=shown,
        custom_parameters=["-J", "frame " + " ".join(_PROTOCOLS)],
        # headers where they are sent: only the head of a transfer is dissected
        override_prefs={"http.desegment_body": "FALSE"},
    )
    try:
        for pkt in cap:
            p = lines[int(pkt.number) - 1]
            ev = ev_by_flow[p.flow_id]
            names = [layer.layer_name for layer in pkt.layers]
            for n in names:
                if n in TSHARK_APPS:
                    ev.apps.add(TSHARK_APPS[n])
            if ev.stack is None and p.payload_len:
                ev.stack = str(pkt.frame_info.protocols)
            for layer in pkt.layers:
                n = layer.layer_name
                if n == "tls":
                    _tls(ev, p, layer)
                elif n == "http":
                    _http(ev, p, layer)
                elif n == "ldap":
                    _ldap(ev, p, layer)
                elif n == "ftp":
                    _ftp(ev, p, layer)
                elif n == "ssh":
                    for banner in _values(layer, "protocol"):
                        side = "client" if p.forward else "server"
                        ev.add(p, f"ssh.{side}_banner", banner)
                elif n == "telnet" and p.payload_len:
                    _telnet(ev, p, layer)
    except Exception as exc:  # pyshark's errors have no common base: one line, the cause
        raise DeepError(
            "tshark", f"dissection through pyshark failed: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            cap.close()
        # pyshark's __del__ closes again, and when that happens inside a later capture's
        # event loop it prints a traceback to stderr: once is enough
        cap.close = lambda: None


def _moved(evidence: dict[str, FlowEvidence], lines: Sequence[PacketLine]) -> None:
    """Bytes actually moved: the payload of every packet of the flow, each way."""
    by_flow: dict[str, list[PacketLine]] = {}
    for p in lines:
        by_flow.setdefault(p.flow_id, []).append(p)
    for fid, ps in by_flow.items():
        fwd = sum(p.payload_len for p in ps if p.forward)
        rev = sum(p.payload_len for p in ps if not p.forward)
        first, last = ps[0], ps[-1]
        evidence[fid].add(
            last,
            "payload_bytes_moved",
            f"{fwd} from the client, {rev} from the server in {len(ps)} packets "
            f"(frames {first.frame}-{last.frame})",
        )


def dissect(
    captures: Sequence[str], flows: Any, flow_ids: Iterable[str]
) -> tuple[dict[str, FlowEvidence], int, int]:
    """tshark's evidence for ``flow_ids`` (their first PACKETS_PER_FLOW packets each);
    returns it by flow id, the packets dissected and the tshark passes made."""
    require_tshark("--deep")
    refs, _ = flow_refs(flows, flow_ids)
    lines = find_packets(captures, refs)
    count: dict[str, int] = {}
    head = []
    for p in lines:
        count[p.flow_id] = count.get(p.flow_id, 0) + 1
        if count[p.flow_id] <= PACKETS_PER_FLOW:
            head.append(p)
    facts = flows.select([c for c in _ENGINE_FACTS if c in flows.column_names]).to_pylist()
    by_id = {f["flow_id"]: f for f in facts}
    evidence = {r.flow_id: FlowEvidence(r.flow_id, by_id.get(r.flow_id, {})) for r in refs}
    _moved(evidence, lines)
    if not head:
        return evidence, 0, 0
    groups: list[list[PacketLine]] = [head]
    passes = 0
    fd, tmp = tempfile.mkstemp(suffix=".pcap", prefix="pcap-audit-deep-")
    os.close(fd)
    try:
        try:
            export_pcap(head, tmp)
        except ExportError:  # link types differ: one pass per capture
            groups = [
                [p for p in head if p.capture == c] for c in dict.fromkeys(p.capture for p in head)
            ]
            export_pcap(groups[0], tmp)
        for i, group in enumerate(groups):
            if i:
                export_pcap(group, tmp)
            _dissect(evidence, group, tmp)
            passes += 1
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return evidence, len(head), passes


def deepen(
    document: AuditDocument, traffic: Any, limit: int = DEFAULT_LIMIT
) -> tuple[AuditDocument, DeepSummary]:
    """The audit ``document`` with tshark's evidence attached to its findings (``deep``
    set): the flows of the most severe findings first, at most ``limit`` flows. When the
    packets cannot be read for it (a capture libpcap refuses, tshark failing), the summary's
    ``error`` says why and the findings stand without that evidence."""
    findings = sorted(
        (f for f in document.findings if f.flow_ids),
        key=lambda f: SEVERITY_ORDER.get(f.severity, 9),
    )
    wanted: list[str] = []
    all_ids: set[str] = set()
    for f in findings:
        for fid in f.flow_ids:
            all_ids.add(fid)
            if fid not in wanted and len(wanted) < limit:
                wanted.append(fid)
    captures = [c.path for c in traffic.captures if c.read]
    try:
        piped = [c for c in captures if is_stdin(c)]
        if piped:  # read once already, for the flows
            raise CaptureError(display_name(piped[0]), "cannot be read again for --deep")
        evidence, packets, passes = dissect(captures, traffic.flows, wanted)
    except (CaptureError, ExportError, DeepError) as exc:
        # a capture libpcap or tshark cannot read for this: the audit stands, and says so
        summary = DeepSummary(0, 0, 0, limit, len(all_ids), exc.one_line())
        return replace(document, deep={**summary.to_json(), "evidence": []}), summary
    deepened: dict[str, Finding] = {}  # finding id -> the finding with tshark's evidence
    for f in findings:
        got = [evidence[fid] for fid in f.flow_ids if fid in evidence]
        if not got:
            continue
        more: dict[str, Any] = {"wireshark": [line for e in got for line in e.lines()]}
        notes = [d for e in got for d in e.disagreements()]
        if notes:
            more["wireshark_disagrees"] = notes
        deepened[f.id] = f.with_evidence(**more)
    summary = DeepSummary(len(evidence), packets, passes, limit, len(all_ids) - len(wanted))
    deep = {**summary.to_json(), "evidence": [e.to_json() for e in evidence.values()]}
    findings_now = tuple(deepened.get(f.id, f) for f in document.findings)
    return replace(document, findings=findings_now, deep=deep), summary


def summaries(
    lines: Sequence[PacketLine], needed_for: str = "show --deep"
) -> list[tuple[str, str]]:
    """tshark's Protocol and Info columns for each of ``lines`` (in order): the packets are
    copied into a temporary pcap and read in one tshark pass, as Wireshark would show them
    opening an export of these packets. Captures of different link types: one pass each."""
    require_tshark(needed_for)
    out: list[tuple[str, str]] = []
    if not lines:
        return out
    fd, tmp = tempfile.mkstemp(suffix=".pcap", prefix="pcap-audit-show-")
    os.close(fd)
    args = ["-T", "fields", "-E", "separator=\t", "-e", "_ws.col.Protocol", "-e", "_ws.col.Info"]
    try:
        try:
            export_pcap(lines, tmp)
            groups = [list(lines)]
            exported = True
        except ExportError:
            groups = [
                [p for p in lines if p.capture == c]
                for c in dict.fromkeys(p.capture for p in lines)
            ]
            exported = False
        for group in groups:
            if not exported:
                export_pcap(group, tmp)
            rows = run_tshark(args, tmp, needed_for).splitlines()
            for row in rows[: len(group)]:
                proto, _, info = row.partition("\t")
                out.append((proto.strip(), info.strip()))
            out.extend(("", "") for _ in range(len(group) - len(rows)))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return out
