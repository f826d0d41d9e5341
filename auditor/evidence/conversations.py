"""tshark's TCP/UDP conversations, in the flow table's definitions, and ours beside them.

What is compared, per capture: the TCP and UDP conversations, each an unordered endpoint
pair ``(ip, port), (ip, port)`` of the innermost IP header, with its packet count, its bytes
(frame lengths on the wire) and the application protocol where tshark names one. On our
side that is the flows of the pair summed (``packets_fwd + packets_rev``, ``bytes_fwd +
bytes_rev``, the ``app`` of each); on tshark's, the frames whose innermost IP header, and
the TCP/UDP header right after it, carry that pair. One ``-T fields`` pass per capture:
``frame.protocols`` gives the layer chain, which says which occurrence of ``ip.src``,
``udp.srcport``, ... belongs to the innermost header.

Why per endpoint pair and not per flow: we split a pair into several flows (a pure SYN after
a FIN/RST is a new connection), tshark's ``tcp.stream`` splits by rules of its own (a
retransmitted SYN after a RST stays in its stream; VLANs are ignored) and ``udp.stream``
never. Summed per pair, both count the same thing.

Where tshark's view is mapped onto ours (each rule narrow):

* ICMP errors quote the IP and TCP/UDP header of the packet they answer: tshark dissects the
  quote, we count the error in an ICMP flow. The chain is cut at the first ``icmp``/``icmpv6``
  so a quote is never taken for the frame's own headers.
* IP fragments: tshark reassembles and shows the datagram in the frame that completes it, the
  other fragments as bare ``ip``/``data``; we count every fragment in the flow of its first
  fragment. So a reassembled frame counts as many packets (and bytes) as tshark lists
  fragments for it. A datagram tshark never completes is not dissected past IP; we still
  count its first fragment, which carries the ports: tshark's first fragment counts once,
  its ports read from the fragment's first bytes.
* An *outer* header fragmented (a tunnel packet fragmented on its way): we neither reassemble
  nor decapsulate it, so its fragments count in the tunnel's own conversation, and so do
  tshark's frames.
* Encapsulations we do not decapsulate are switched off in tshark (:data:`NOT_DECAPSULATED`),
  so it reports the outer UDP/GRE conversation like we do.
* Application protocol: the layer right after TCP/UDP (or the NetBIOS session header), when
  :data:`TSHARK_APPS` maps it onto one of our ``app`` values; a conversation agrees when one of its flows has that app. Where
  tshark names none (a port it does not associate, a payload it does not recognise), there
  is nothing to compare.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

#: tshark dissectors switched off: encapsulations we report as the outer conversation
NOT_DECAPSULATED = {
    "teredo": "IPv6 in UDP 3544 (RFC 4380): we report the UDP flow",
    "ayiya": "IPv6 in UDP 5072 (AYIYA tunnel brokers): we report the UDP flow",
}
#: UDP tunnels whose fragmented outer header we reassemble (VXLAN, Geneve, GTP-U)
TUNNEL_PORTS = {4789, 8472, 4790, 6081, 2152}

#: tshark protocol names (``frame.protocols``) -> our ``app`` values
TSHARK_APPS = {
    "tls": "tls",
    "ssl": "tls",
    "http": "http",
    "ssh": "ssh",
    "ldap": "ldap",
    "smb": "smb",
    "smb2": "smb",
    "dns": "dns",
    "ntp": "ntp",
    "dhcp": "dhcp",
    "iscsi": "iscsi",
    "mysql": "mysql",
}

#: layers tshark puts between TCP and the application (SMB over NetBIOS session service)
_CARRIERS = ("nbss",)

FIELDS = (
    "frame.protocols",
    "frame.len",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "ip.fragment",
    "ipv6.fragment",
    "ip.proto",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.fraghdr.nxt",
    "ipv6.fraghdr.more",
    "ipv6.fraghdr.offset",
    "data.data",
)

Endpoint = tuple[str, int]
Conv = tuple[str, Endpoint, Endpoint]


def conv(proto: str, a: Endpoint, b: Endpoint) -> Conv:
    """The conversation key: protocol and the two endpoints, lower first."""
    x, y = sorted((a, b))
    return (proto, x, y)


def address(text: str) -> str:
    return str(ipaddress.ip_address(text))


@dataclass
class Frame:
    """One line of tshark's field export."""

    number: int
    length: int
    layers: list[str]  # frame.protocols, cut before the first ICMP layer
    fields: dict[str, list[str]]  # every occurrence, in dissection order

    def ip_depth(self) -> int:
        return sum(1 for x in self.layers if x in ("ip", "ipv6"))

    def _l4_index(self, depth: int | None = None) -> tuple[int, int] | None:
        """(index of the ``depth``-th IP layer, index of the TCP/UDP layer after it)."""
        ips = [i for i, x in enumerate(self.layers) if x in ("ip", "ipv6")]
        if not ips:
            return None
        at = ips[(depth or len(ips)) - 1]
        fam = self.layers[at]
        j = at + 1
        while j < len(self.layers) and (
            self.layers[j].startswith("ipv6.") or (fam == "ipv6" and self.layers[j] == "ah")
        ):
            j += 1
        if j == len(self.layers) or self.layers[j] not in ("tcp", "udp"):
            return None
        return at, j

    def conversation(self, depth: int | None = None) -> Conv | None:
        """The TCP/UDP pair right after the ``depth``-th IP layer (1-based; the last by
        default), skipping IPv6 extension headers; None for anything else."""
        found = self._l4_index(depth)
        if found is None:
            return None
        at, j = found
        fam, l4 = self.layers[at], self.layers[j]
        k_ip = self.layers[: at + 1].count(fam) - 1
        k_l4 = self.layers[: j + 1].count(l4) - 1
        f = self.fields
        try:
            src = address(f[f"{fam}.src"][k_ip])
            dst = address(f[f"{fam}.dst"][k_ip])
            sport, dport = int(f[f"{l4}.srcport"][k_l4]), int(f[f"{l4}.dstport"][k_l4])
        except (IndexError, ValueError):  # a header tshark names but could not dissect
            return None
        return conv(l4, (src, sport), (dst, dport))

    def app(self) -> str | None:
        """Our name for the application layer tshark dissected right above TCP/UDP (through
        a NetBIOS session header); None for a layer we have no name for (QUIC, whose TLS
        handshake tshark shows inside it, NetBIOS datagrams, ...)."""
        found = self._l4_index()
        if found is None:
            return None
        for name in self.layers[found[1] + 1 :]:
            if name not in _CARRIERS:
                return TSHARK_APPS.get(name)
        return None

    def fragments(self) -> set[int]:
        """Frames of the datagram(s) tshark reassembled in this frame (empty if none)."""
        return {int(n) for name in ("ip.fragment", "ipv6.fragment") for n in self.fields[name]}

    def first_fragment(self) -> Conv | None:
        """For a frame tshark shows as a bare first fragment (more fragments, offset 0, not
        reassembled here) of TCP/UDP: the pair, ports read from the fragment's first bytes."""
        f, layers = self.fields, self.layers
        if len(layers) < 2 or layers[-1] != "data" or not f["data.data"]:
            return None
        try:
            if layers[-2] == "ip":
                k, fam = layers.count("ip") - 1, "ip"
                more, offset = f["ip.flags.mf"][k], f["ip.frag_offset"][k]
                proto = f["ip.proto"][k]
            elif layers[-2] == "ipv6.fraghdr":
                k, fam = layers.count("ipv6.fraghdr") - 1, "ipv6"
                more, offset = f["ipv6.fraghdr.more"][k], f["ipv6.fraghdr.offset"][k]
                proto = f["ipv6.fraghdr.nxt"][k]
            else:
                return None
        except IndexError:
            return None
        head = f["data.data"][-1].replace(":", "")
        l4 = {"6": "tcp", "17": "udp"}.get(proto)
        if more not in ("1", "True") or offset != "0" or l4 is None or len(head) < 8:
            return None
        k_ip = layers.count(fam) - 1
        try:
            src = (address(f[f"{fam}.src"][k_ip]), int(head[0:4], 16))
            dst = (address(f[f"{fam}.dst"][k_ip]), int(head[4:8], 16))
        except (IndexError, ValueError):
            return None
        return conv(l4, src, dst)


def tshark_args() -> list[str]:
    """The arguments of the one ``-T fields`` pass :func:`parse_frames` reads."""
    args = ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for proto in NOT_DECAPSULATED:
        args += ["--disable-protocol", proto]
    for name in FIELDS:
        args += ["-e", name]
    return args


def parse_frames(lines: Iterable[str]) -> list[Frame]:
    """tshark's ``-T fields`` output (:func:`tshark_args`) -> frames, numbered from 1."""
    frames = []
    for number, line in enumerate(lines, 1):
        values = line.split("\t")
        if len(values) != len(FIELDS):
            raise ValueError(f"tshark line {number}: {len(values)} fields, not {len(FIELDS)}")
        layers = values[0].split(":")
        for cut, name in enumerate(layers):
            if name in ("icmp", "icmpv6"):
                layers = layers[:cut]
                break
        fields = {k: v.split(",") if v else [] for k, v in zip(FIELDS[2:], values[2:], strict=True)}
        frames.append(Frame(number, int(values[1] or 0), layers, fields))
    return frames


@dataclass
class Side:
    """One side's view of a conversation: packets, bytes, application protocols, and
    where to look (our flow ids, or tshark's frame numbers)."""

    packets: int = 0
    bytes: int = 0
    apps: set[str] = field(default_factory=set)
    where: list[str] = field(default_factory=list)
    #: tshark saw it inside a tunnel: its bytes are the outer frames', ours the inner
    #: frames' (README, "bytes of tunnelled flows"), so bytes are not compared
    tunnelled: bool = False


def _lost_tunnel_fragment(fr: Frame, first: Conv) -> bool:
    """The first fragment of an outer UDP tunnel header that tshark never completes: we hold
    it for reassembly, give it up and count it (``tunnel_fragments_lost``), in no flow."""
    return fr.ip_depth() == 1 and bool({first[1][1], first[2][1]} & TUNNEL_PORTS)


def tunnel_fragments_lost(frames: list[Frame]) -> int:
    """How many first fragments of outer UDP tunnel headers tshark never completes (what a
    capture's ``tunnel_fragments_lost`` must say)."""
    reassembled = set().union(*(fr.fragments() for fr in frames))
    return sum(
        1
        for fr in frames
        if fr.number not in reassembled
        and (first := fr.first_fragment()) is not None
        and _lost_tunnel_fragment(fr, first)
    )


def tshark_conversations(frames: list[Frame]) -> dict[Conv, Side]:
    """tshark's view of each TCP/UDP conversation, in our definitions (module docstring)."""
    out: dict[Conv, Side] = {}
    reassembled = set().union(*(fr.fragments() for fr in frames))
    for fr in frames:
        if fr.number not in reassembled and (first := fr.first_fragment()) is not None:
            if _lost_tunnel_fragment(fr, first):
                continue  # held for reassembly by us, given up, counted and said
            # a datagram tshark never completes: we still count its first fragment
            side = out.setdefault(first, Side())
            side.packets += 1
            side.bytes += fr.length
            side.where.append(str(fr.number))
            continue
        frags = {n for n in fr.fragments() - {fr.number} if 1 <= n <= len(frames)}
        depth = None
        if frags:
            # the other fragments stop at the fragmented header: their depth is its depth
            depth = min(frames[n - 1].ip_depth() for n in frags)
        packets = len(frags) + 1
        if depth is not None and depth < fr.ip_depth():
            # an outer (tunnel) header was fragmented: we reassemble it too, and the tunnel
            # packet is one packet of the inner conversation
            depth, packets = None, 1
        c = fr.conversation(depth)
        if c is not None:
            side = out.setdefault(c, Side())
            side.packets += packets
            side.bytes += fr.length + sum(frames[n - 1].length for n in frags)
            side.tunnelled = side.tunnelled or (depth is None and fr.ip_depth() > 1)
            side.where.append(str(fr.number))
            if depth is None and (app := fr.app()) is not None:
                side.apps.add(app)
    return out


def our_conversations(flows: pa.Table) -> dict[Conv, Side]:
    """The flow table's TCP/UDP flows summed per conversation."""
    out: dict[Conv, Side] = {}
    cols = ["proto", "src_ip", "src_port", "dst_ip", "dst_port", "packets_fwd", "packets_rev",
            "bytes_fwd", "bytes_rev", "app", "flow_id"]  # fmt: skip
    for r in flows.select(cols).to_pylist():
        if r["proto"] in ("tcp", "udp"):
            c = conv(r["proto"], (r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"]))
            side = out.setdefault(c, Side())
            side.packets += r["packets_fwd"] + r["packets_rev"]
            side.bytes += r["bytes_fwd"] + r["bytes_rev"]
            if r["app"]:
                side.apps.add(r["app"])
            side.where.append(r["flow_id"])
    return out
