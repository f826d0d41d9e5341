/* Contract between the record scanner (_fast.c) and the header decoder (decode.c).
 *
 * pc_decode() takes one captured record (its bytes, captured length and the link type of
 * its interface) and fills a pc_pkt with the header fields of the innermost conversation.
 * It never reads past caplen, never allocates, and never fails hard: a record it cannot
 * take apart gets a non-zero status (the STATUS_* codes mirror STATUS_NAMES in schema.py)
 * and whatever fields were decoded before the problem.
 */
#ifndef PC_DECODE_H
#define PC_DECODE_H

#include <stdint.h>

enum {
    PC_OK = 0,
    PC_NON_IP = 1,
    PC_UNSUPPORTED_LINKTYPE = 2,
    PC_TRUNCATED_LINK = 3,
    PC_TRUNCATED_IP = 4,
    PC_BAD_IP_HEADER = 5,
    PC_TRUNCATED_TRANSPORT = 6,
    PC_BAD_TUNNEL = 7,
    PC_IP_FRAGMENT = 8, /* set by the flow layer, not by pc_decode */
    PC_BAD_RECORD = 9,
    PC_BAD_TIMESTAMP = 10, /* set by the scanner: a timestamp int64 ns cannot hold */
    PC_NSTATUS = 11,
};

/* Tunnel codes, mirror TUNNEL_NAMES in schema.py */
enum {
    PC_TUN_NONE = 0, PC_TUN_GRE = 1, PC_TUN_ERSPAN1 = 2, PC_TUN_ERSPAN2 = 3,
    PC_TUN_ERSPAN3 = 4, PC_TUN_VXLAN = 5, PC_TUN_GENEVE = 6, PC_TUN_IPIP = 7,
};

typedef struct {
    uint8_t status;
    int32_t vlan;        /* -1 when absent */
    int32_t vlan_inner;  /* -1 when absent */
    int32_t mpls;        /* -1 when absent */
    uint8_t tunnel;      /* PC_TUN_*, innermost tunnel */
    uint32_t tunnel_id;  /* VNI, GRE key, ERSPAN session id; 0 when absent */
    uint8_t has_outer;   /* 1 when outer_src/outer_dst are set */
    uint8_t outer_src[16], outer_dst[16]; /* IPv4 as ::ffff:a.b.c.d */
    uint8_t ip_version;  /* 4 or 6, 0 when not IP */
    uint8_t src_ip[16], dst_ip[16];       /* IPv4 as ::ffff:a.b.c.d */
    uint8_t proto;
    uint16_t src_port, dst_port;          /* ICMP/ICMPv6: type, code */
    uint8_t tcp_flags;
    uint32_t tcp_seq;
    uint8_t frag;        /* 0 none, 1 first fragment, 2 later fragment */
    uint32_t ip_id;
    uint32_t payload_len;    /* L4 payload length according to the headers */
    uint32_t payload_off;    /* offset of the L4 payload in the record */
    uint32_t payload_caplen; /* bytes of that payload present in the record */
} pc_pkt;

/* Link types we decode (LINKTYPE_* values from tcpdump.org/linktypes.html). */
#define PC_LT_NULL 0
#define PC_LT_ETHERNET 1
#define PC_LT_RAW 101
#define PC_LT_LOOP 108
#define PC_LT_PPP 9         /* PPP, optionally in HDLC-like framing (RFC 1662) */
#define PC_LT_PPP_HDLC 50   /* PPP in HDLC-like framing */
#define PC_LT_PPP_ETHER 51  /* PPPoE session header, no Ethernet header */
#define PC_LT_LINUX_SLL 113
#define PC_LT_IPV4 228
#define PC_LT_IPV6 229
#define PC_LT_LINUX_SLL2 276
#define PC_LT_RAW_OLD 12 /* DLT_RAW on OpenBSD as written by some tools */
#define PC_LT_RAW_OLD2 14
/* pcap's link type field carries FCS information in its top bits (libpcap LT_LINKTYPE);
 * pc_decode looks only at the bits below. */
#define PC_LT_MASK 0x03FFFFFFu

/* Decapsulation limits and tunnel ports (UDP destination port decides). */
#define PC_MAX_TUNNELS 4         /* deeper nesting: PC_BAD_TUNNEL, fields of level 4 kept */
#define PC_PORT_VXLAN 4789       /* RFC 7348; needs the I flag, else plain UDP */
#define PC_PORT_VXLAN_LINUX 8472 /* Linux kernel's pre-IANA default */
#define PC_PORT_VXLAN_GPE 4790   /* only with the P flag and next protocol IPv4/IPv6/Ethernet */
#define PC_PORT_GENEVE 6081      /* RFC 8926; version 0, protocol 0x6558/0x0800/0x86DD */

/* Field semantics the callers rely on (decode.c implements them):
 *
 * - payload_off is an offset into the record (from p), always <= caplen, and
 *   payload_off + payload_caplen <= caplen. payload_caplen <= payload_len. When
 *   payload_caplen is 0, payload_off may point at the end of the captured bytes. The
 *   payload is the L4 payload: after the TCP header with options, the 8-byte UDP / ICMP /
 *   ICMPv6 header, the 12-byte SCTP common header; for other protocols (ESP, OSPF,
 *   non-decapsulated GRE, ...) and for later fragments it is the whole IP payload after
 *   the IPv4 header / the IPv6 extension headers. Link-layer padding past the IP total
 *   length is never part of it. payload_len is this packet's L4 payload length according
 *   to the IP header (not the UDP length field; a fragment's own share).
 * - IPv4 total length 0 (TSO, BIG TCP) and IPv6 payload length 0 (jumbogram) take the
 *   length from the captured bytes.
 * - frag: 1 = first fragment (transport decoded), 2 = later fragment (proto set, ports 0,
 *   tcp fields 0). ip_id is the IPv4 identification of every IPv4 packet, and the IPv6
 *   fragment identification when a fragment header is present (else 0). A fragmented
 *   tunnel packet is not decapsulated: it is reported as the outer flow.
 * - Tunnels (GRE, ERSPAN I/II/III, VXLAN, Geneve, IP-in-IP) are decapsulated up to
 *   PC_MAX_TUNNELS levels; src/dst/proto/ports describe the innermost packet, outer_src/
 *   outer_dst the IP header that carried the innermost tunnel, tunnel_id the VNI, GRE key
 *   or ERSPAN session id. vlan/vlan_inner/mpls describe the link headers directly in front
 *   of the innermost IP packet: they restart at every decapsulation (and at an MPLS
 *   Ethernet pseudowire). A VLAN tag with VID 0 (priority tag) is not a VLAN.
 * - GRE not decapsulated (PPTP version 1, source routing, payload types other than
 *   IPv4/IPv6/Ethernet/MPLS/VLAN/ERSPAN/WCCP/Cisco MetaData) is reported as the GRE flow:
 *   status OK, proto 47, ports 0, tunnel of any enclosing tunnel. GRE versions 2-7:
 *   PC_BAD_TUNNEL.
 * - Once a tunnel is entered, a problem inside it is reported with the tunnel fields set
 *   (status PC_TRUNCATED_LINK when the tunnel/inner link header is cut short, PC_NON_IP
 *   for a non-IP inner frame, ...). A truncated TCP/UDP/ICMP/SCTP fixed header gives
 *   PC_TRUNCATED_TRANSPORT with the ports that were captured; TCP options cut by the snap
 *   length do not (status OK, payload_caplen 0).
 */

void pc_decode(const uint8_t *p, uint32_t caplen, uint32_t linktype, pc_pkt *o);

#endif
