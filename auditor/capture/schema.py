"""The packet batch: the one table the capture layer hands to everything above it.

One row per captured record. Addresses are 16-byte binaries (IPv4 as IPv4-mapped IPv6,
``::ffff:a.b.c.d``) so that v4 and v6 share columns and sort/group as plain bytes.
Absent values are Arrow nulls. ``status`` is 0 for a decoded IP packet, otherwise an index
into :data:`STATUS_NAMES` (the reason a record gave no flow); such rows are counted per
capture and ignored by the flow builder.
"""

from __future__ import annotations

import pyarrow as pa

#: Tunnel codes in the ``tunnel`` column (index into this tuple).
TUNNEL_NAMES: tuple[str, ...] = (
    "",  # 0: no tunnel
    "gre",
    "erspan1",
    "erspan2",
    "erspan3",
    "vxlan",
    "geneve",
    "ipip",  # IPv4/IPv6 in IP (proto 4 / 41)
)

#: Reasons in the ``status`` column. 0 = decoded IP packet.
STATUS_NAMES: tuple[str, ...] = (
    "ok",
    "non_ip",  # ARP, LLDP, STP, ... : not an error, counted
    "unsupported_linktype",
    "truncated_link",  # captured bytes end inside the link/encapsulation headers
    "truncated_ip",
    "bad_ip_header",  # version/IHL/length fields impossible
    "truncated_transport",
    "bad_tunnel",
    "ip_fragment",  # a later IPv4/IPv6 fragment whose first fragment was not seen
    "bad_record",  # record header impossible (caplen > snaplen sanity bound, ...)
    "bad_timestamp",  # outside what ns since 1970 in an int64 hold (1677-09-21..2262-04-11)
)

PACKET_SCHEMA = pa.schema(
    [
        ("frame", pa.uint64()),  # 1-based record number in the file
        ("ts", pa.int64()),  # nanoseconds since the epoch, UTC
        ("wire_len", pa.uint32()),  # original length on the wire
        ("cap_len", pa.uint32()),  # captured length
        ("linktype", pa.uint16()),
        ("status", pa.uint8()),
        ("vlan", pa.int32()),  # outermost 802.1Q/802.1ad VLAN id (inner conversation's)
        ("vlan_inner", pa.int32()),  # second tag of QinQ
        ("mpls", pa.int32()),  # top MPLS label
        ("tunnel", pa.uint8()),  # TUNNEL_NAMES index, 0 = none (innermost tunnel)
        ("tunnel_id", pa.uint32()),  # VNI (VXLAN/Geneve), GRE key, ERSPAN session id
        ("outer_src", pa.binary(16)),  # outer IP header of the (innermost) tunnel
        ("outer_dst", pa.binary(16)),
        ("ip_version", pa.uint8()),  # 4 or 6 (innermost IP header); 0 if not IP
        ("src_ip", pa.binary(16)),
        ("dst_ip", pa.binary(16)),
        ("proto", pa.uint8()),  # IP protocol number (innermost, after v6 ext headers)
        ("src_port", pa.uint16()),  # TCP/UDP ports; ICMP type; 0 for other protocols
        ("dst_port", pa.uint16()),  # TCP/UDP ports; ICMP code; 0 for other protocols
        ("tcp_flags", pa.uint8()),
        ("tcp_seq", pa.uint32()),
        ("frag", pa.uint8()),  # 0 not fragmented, 1 first fragment, 2 later fragment
        ("ip_id", pa.uint32()),  # IPv4 id / IPv6 fragment id (for fragment -> ports)
        ("payload_len", pa.uint32()),  # L4 payload length by the headers (not captured)
        ("payload", pa.binary()),  # first bytes of the captured L4 payload (see reader)
        ("flow_key", pa.uint64()),  # symmetric hash of (proto, ips, ports), seeded per process
        ("flow_dir", pa.uint8()),  # 0 when src is the lower endpoint of flow_key, else 1
    ]
)
