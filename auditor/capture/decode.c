/* Header decoder: link layer -> encapsulations/tunnels -> innermost IP -> transport.
 * See decode.h for the contract and the meaning of every field.
 *
 * Built for the per-packet hot path: one pass over the headers, no allocation, no tables
 * of function pointers. Every read is preceded by a length check against the captured
 * bytes still available (`end - off`, with the invariant off <= end), so no input can make
 * it read past caplen. Loops over VLAN tags, MPLS labels and IPv6 extension headers always
 * advance, so they end; the only recursion is tunnel decapsulation, capped at
 * PC_MAX_TUNNELS levels.
 */
#include <string.h>
#include "decode.h"

#define RD16(q) ((uint32_t)(q)[0] << 8 | (uint32_t)(q)[1])
#define RD24(q) ((uint32_t)(q)[0] << 16 | (uint32_t)(q)[1] << 8 | (uint32_t)(q)[2])
#define RD32(q) ((uint32_t)(q)[0] << 24 | (uint32_t)(q)[1] << 16 | (uint32_t)(q)[2] << 8 | (uint32_t)(q)[3])

/* Ethertypes (IEEE registry) and the GRE protocol types that share their space. */
#define ET_IPV4 0x0800
#define ET_ARP 0x0806
#define ET_TEB 0x6558 /* transparent Ethernet bridging: an Ethernet frame follows */
#define ET_ERSPAN3 0x22EB
#define ET_VLAN 0x8100
#define ET_IPV6 0x86DD
#define ET_MPLS 0x8847
#define ET_MPLS_MC 0x8848
#define ET_PPPOE_DISC 0x8863
#define ET_PPPOE_SESS 0x8864
#define ET_WCCP 0x883E /* GRE only: WCCP redirect */
#define ET_QINQ 0x88A8
#define ET_ERSPAN 0x88BE /* GRE only: ERSPAN type I (no header) / II */
#define ET_CMD 0x8909    /* Cisco MetaData (TrustSec SGT inline tag) */
#define ET_VNTAG 0x8926  /* Cisco VN-Tag: 4-byte tag, then the ethertype */
#define ET_ETAG 0x893F   /* IEEE 802.1BR E-Tag: 6-byte tag, then the ethertype */
#define ET_PBB 0x88E7    /* IEEE 802.1ah I-Tag: 4-byte I-TAG, then the customer's Ethernet frame */
#define ET_QINQ_OLD 0x9100
/* Not an ethertype: an 802.11 frame follows (Aruba GRE). link_chain's types are 32-bit. */
#define ET_WLAN 0x10000u

static inline void set_payload(pc_pkt *o, uint32_t off, uint32_t len, uint32_t clen)
{
    o->payload_off = off;
    o->payload_len = len;
    o->payload_caplen = clen;
}

static inline void put_v4(uint8_t *dst, const uint8_t *src)
{
    memset(dst, 0, 10);
    dst[10] = dst[11] = 0xff;
    memcpy(dst + 12, src, 4);
}

/* The current IP header becomes the tunnel's outer header; everything describing the
 * conversation is cleared so that the inner headers fill it. VLAN/MPLS describe the
 * encapsulation that carries the innermost packet, so they start over too. */
static void enter_tunnel(pc_pkt *o, uint8_t tunnel, uint32_t tunnel_id, uint32_t inner_off)
{
    o->inner_off = inner_off;
    memcpy(o->outer_src, o->src_ip, 16);
    memcpy(o->outer_dst, o->dst_ip, 16);
    o->has_outer = 1;
    o->tunnel = tunnel;
    o->tunnel_id = tunnel_id;
    o->vlan = o->vlan_inner = o->mpls = -1;
    o->ip_version = 0;
    memset(o->src_ip, 0, 16);
    memset(o->dst_ip, 0, 16);
    o->proto = 0;
    o->src_port = o->dst_port = 0;
    o->tcp_flags = 0;
    o->tcp_seq = 0;
    o->frag = 0;
    o->ip_id = 0;
    o->fr_outer = o->fr_more = 0;
    o->fr_ip_off = o->fr_data_off = o->fr_data_len = o->fr_offset = 0;
    set_payload(o, 0, 0, 0);
}

/* An Aruba-mirrored 802.11 frame (no FCS) at [off, end): a data frame's header is skipped
 * and what follows (LLC/SNAP) is returned in *next with its ethertype-to-be 0; 0 when the
 * frame leads to no IP packet (management/control frames, null data, protected (encrypted)
 * frames, A-MSDU aggregates, later 802.11 fragments): o->status says why. */
static int wlan_data(const uint8_t *p, uint32_t off, uint32_t end, pc_pkt *o, uint32_t *next)
{
    const uint8_t *q = p + off;
    uint32_t avail = end - off;
    if (avail < 24) {
        o->status = PC_TRUNCATED_LINK;
        return 0;
    }
    uint32_t fc0 = q[0], fc1 = q[1], sub = fc0 >> 4, hl = 24;
    /* version 0, type 2 (data); subtypes with bit 2 set carry no data (null function) */
    if ((fc0 & 3) != 0 || ((fc0 >> 2) & 3) != 2 || (sub & 4) || (fc1 & 0x40) ||
        (q[22] & 0x0F) != 0) {
        o->status = PC_NON_IP;
        return 0;
    }
    if ((fc1 & 3) == 3) hl += 6; /* to and from DS: a fourth address */
    if (sub & 8) {               /* QoS data: QoS control, HT control when Order is set */
        if (avail < hl + 2) {
            o->status = PC_TRUNCATED_LINK;
            return 0;
        }
        if (q[hl] & 0x80) { /* A-MSDU present */
            o->status = PC_NON_IP;
            return 0;
        }
        hl += (fc1 & 0x80) ? 6 : 2;
    }
    if (avail < hl) {
        o->status = PC_TRUNCATED_LINK;
        return 0;
    }
    *next = off + hl;
    return 1;
}

static void link_chain(const uint8_t *p, uint32_t off, uint32_t end, uint32_t et, pc_pkt *o,
                       int depth);
static void ip4(const uint8_t *p, uint32_t off, uint32_t end, pc_pkt *o, int depth);
static void ip6(const uint8_t *p, uint32_t off, uint32_t end, pc_pkt *o, int depth);

/* Ethertypes that may plausibly start an Ethernet frame carried without an explicit type
 * (MPLS pseudowire): used to tell "Ethernet follows" from noise. */
static inline int plausible_ethertype(uint32_t et)
{
    return et == ET_IPV4 || et == ET_IPV6 || et == ET_VLAN || et == ET_QINQ ||
           et == ET_QINQ_OLD || et == ET_MPLS || et == ET_ARP;
}

/* Hand the captured bytes [off, end) to the decoder for `et`. ET_TEB means an Ethernet
 * frame starts at off. Iterative over stacked link headers. */
static void link_chain(const uint8_t *p, uint32_t off, uint32_t end, uint32_t et, pc_pkt *o,
                       int depth)
{
    for (;;) {
        const uint8_t *q = p + off;
        uint32_t avail = end - off;
        switch (et) {
        case ET_TEB:
            if (avail < 14) {
                o->status = PC_TRUNCATED_LINK;
                return;
            }
            et = RD16(q + 12);
            off += 14;
            continue;
        case ET_VLAN:
        case ET_QINQ:
        case ET_QINQ_OLD:
        case 0x9200:
        case 0x9300: {
            if (avail < 4) {
                o->status = PC_TRUNCATED_LINK;
                return;
            }
            /* VID 0 is a priority tag: no VLAN membership (802.1Q 9.6). */
            int32_t vid = (int32_t)(RD16(q) & 0x0FFF);
            if (vid) {
                if (o->vlan < 0)
                    o->vlan = vid;
                else if (o->vlan_inner < 0)
                    o->vlan_inner = vid;
            }
            et = RD16(q + 2);
            off += 4;
            continue;
        }
        case ET_MPLS:
        case ET_MPLS_MC: {
            for (;;) {
                if (end - off < 4) {
                    o->status = PC_TRUNCATED_LINK;
                    return;
                }
                uint32_t l = RD32(p + off);
                off += 4;
                if (o->mpls < 0) o->mpls = (int32_t)(l >> 12);
                if (l & 0x100) break; /* bottom of stack */
            }
            q = p + off;
            avail = end - off;
            if (avail < 1) {
                o->status = PC_TRUNCATED_LINK;
                return;
            }
            switch (q[0] >> 4) {
            case 4: et = ET_IPV4; continue;
            case 6: et = ET_IPV6; continue;
            default: break;
            }
            /* Ethernet pseudowire (RFC 4448), with the control word (first nibble 0, flags
             * and fragment bits 0) or without it: accept only when the would-be ethertype
             * is one we know, so a payload we cannot identify stays non-IP. */
            if (avail >= 18 && q[0] == 0 && (q[1] & 0xC0) == 0 &&
                plausible_ethertype(RD16(q + 16))) {
                off += 4;
            } else if (!(avail >= 14 && plausible_ethertype(RD16(q + 12)))) {
                o->status = PC_NON_IP;
                return;
            }
            o->vlan = o->vlan_inner = -1; /* the emulated LAN's tags are the conversation's */
            et = ET_TEB;
            continue;
        }
        case ET_PPPOE_SESS: {
            if (avail < 7) {
                o->status = PC_TRUNCATED_LINK;
                return;
            }
            if (q[0] != 0x11 || q[1] != 0) { /* version/type 1/1, code 0 = session data */
                o->status = PC_NON_IP;
                return;
            }
            uint32_t ppp;
            if (q[6] & 1) { /* protocol field compressed to one byte (RFC 1661 6.5) */
                ppp = q[6];
                off += 7;
            } else {
                if (avail < 8) {
                    o->status = PC_TRUNCATED_LINK;
                    return;
                }
                ppp = RD16(q + 6);
                off += 8;
            }
            if (ppp == 0x0021)
                et = ET_IPV4;
            else if (ppp == 0x0057)
                et = ET_IPV6;
            else if (ppp == 0x0281)
                et = ET_MPLS;
            else {
                o->status = PC_NON_IP;
                return;
            }
            continue;
        }
        case ET_VNTAG:
        case ET_ETAG: {
            uint32_t tl = et == ET_VNTAG ? 4 : 6;
            if (avail < tl + 2) {
                o->status = PC_TRUNCATED_LINK;
                return;
            }
            et = RD16(q + tl);
            off += tl + 2;
            continue;
        }
        case ET_PBB:
            /* the backbone's tags are not the customer's conversation's: start over */
            if (avail < 4) {
                o->status = PC_TRUNCATED_LINK;
                return;
            }
            o->vlan = o->vlan_inner = -1;
            off += 4;
            et = ET_TEB;
            continue;
        case ET_WLAN:
            if (!wlan_data(p, off, end, o, &off)) return;
            et = 0; /* LLC/SNAP follows: the 802.3 branch below reads it */
            continue;
        case ET_CMD: {
            /* version, length (4-byte options), options..., next ethertype */
            if (avail < 2 || avail < 4u + 4u * q[1]) {
                o->status = PC_TRUNCATED_LINK;
                return;
            }
            uint32_t hl = 2u + 4u * q[1];
            et = RD16(q + hl);
            off += hl + 2;
            continue;
        }
        case ET_IPV4:
            ip4(p, off, end, o, depth);
            return;
        case ET_IPV6:
            ip6(p, off, end, o, depth);
            return;
        default:
            /* 802.3 length field (or a Linux cooked "protocol" below 0x600): LLC follows;
             * only SNAP with an ethertype leads anywhere. */
            if (et < 0x0600 && avail >= 8 && q[0] == 0xAA && q[1] == 0xAA && q[2] == 0x03 &&
                q[3] == 0 && q[4] == 0 && (q[5] == 0 || q[5] == 0xF8)) {
                uint32_t snap = RD16(q + 6);
                if (snap >= 0x0600) {
                    et = snap;
                    off += 8;
                    continue;
                }
            }
            o->status = PC_NON_IP;
            return;
        }
    }
}

/* GRE (RFC 2784/2890) and what rides in it. [off, off+clen) are the captured bytes of the
 * GRE packet, len its length by the IP header. The GRE flow itself is reported (status OK,
 * proto 47) when the payload is not something we decapsulate (PPTP, keepalive, ...). */
static void gre(const uint8_t *p, uint32_t off, uint32_t len, uint32_t clen, pc_pkt *o,
                int depth)
{
    const uint8_t *g = p + off;
    set_payload(o, off, len, clen);
    if (clen < 4) {
        o->status = PC_TRUNCATED_TRANSPORT;
        return;
    }
    uint32_t flags = RD16(g), et = RD16(g + 2), ver = flags & 7;
    if (ver == 1) return; /* PPTP enhanced GRE: left as the GRE flow */
    if (ver != 0) {
        o->status = PC_BAD_TUNNEL;
        return;
    }
    if (flags & 0x4000) return; /* RFC 1701 source routing: not decapsulated */
    uint32_t hl = 4, key = 0;
    if (flags & 0x8000) hl += 4; /* checksum + offset */
    if (flags & 0x2000) {        /* key */
        if (clen >= hl + 4) key = RD32(g + hl);
        hl += 4;
    }
    if (flags & 0x1000) hl += 4; /* sequence number */
    if (clen < hl) {
        o->status = len < hl ? PC_BAD_TUNNEL : PC_TRUNCATED_TRANSPORT;
        return;
    }
    uint8_t tun = PC_TUN_GRE;
    uint32_t tid = key;
    uint32_t ioff = off + hl, iend = off + clen;
    const uint8_t *e = p + ioff;
    uint32_t avail = iend - ioff;
    int bad = 0, trunc = 0;
    switch (et) {
    case ET_IPV4:
    case ET_IPV6:
    case ET_TEB:
    case ET_MPLS:
    case ET_MPLS_MC:
    case ET_VLAN:
    case ET_QINQ:
        break;
    case ET_CMD: /* in GRE the Cisco MetaData header starts with the next ethertype */
        if (avail < 4 || avail < 4u + 4u * e[3]) {
            trunc = 1;
        } else {
            et = RD16(e);
            ioff += 4u + 4u * e[3];
        }
        break;
    case ET_WCCP:
        /* WCCPv2 puts a 4-byte redirect header before the IP packet; v1 does not. */
        if (avail < 1) {
            trunc = 1;
        } else {
            if (!((e[0] >> 4) == 4 && (e[0] & 15) >= 5)) ioff += avail >= 4 ? 4 : avail;
            et = ET_IPV4;
        }
        break;
    case ET_ERSPAN:
        if (!(flags & 0x1000)) { /* type I: no sequence number, no ERSPAN header */
            tun = PC_TUN_ERSPAN1;
            et = ET_TEB;
            break;
        }
        tun = PC_TUN_ERSPAN2;
        if (avail < 8) {
            trunc = 1;
        } else if ((e[0] >> 4) != 1) {
            bad = 1;
        } else {
            tid = RD16(e + 2) & 0x3FF;
            ioff += 8;
            et = ET_TEB;
        }
        break;
    case 0x8200: case 0x8210: case 0x8220: case 0x8230: case 0x8240: case 0x8250:
    case 0x8260: case 0x8270: case 0x8280: case 0x8290: case 0x82A0: case 0x82B0:
    case 0x82C0: case 0x82D0: case 0x82E0: case 0x82F0: case 0x8300: case 0x8310:
    case 0x8320: case 0x8330: case 0x8340: case 0x8350: case 0x8360: case 0x8370:
        /* Aruba controllers' GRE encapsulation IDs: an 802.11 frame follows (Wireshark's
         * packet-gre.h GRE_ARUBA_8200..8370, which tshark 4.0 hands to its 802.11
         * dissector; Zeek's GRE packet analyzer). GRE_ARUBA_9000 tshark does not decode. */
        tun = PC_TUN_ARUBA;
        et = ET_WLAN;
        break;
    case ET_ERSPAN3:
        tun = PC_TUN_ERSPAN3;
        if (avail < 12) {
            trunc = 1;
        } else if ((e[0] >> 4) != 2) {
            bad = 1;
        } else {
            uint32_t w = RD16(e + 10), ft = (w >> 10) & 0x1F;
            tid = RD16(e + 2) & 0x3FF;
            ioff += (w & 1) ? 20 : 12; /* O bit: 8-byte platform-specific subheader */
            if (ioff > iend) {
                trunc = 1;
            } else if (ft == 0) {
                et = ET_TEB;
            } else if (ft == 2 && ioff < iend && (p[ioff] >> 4) == 4) {
                et = ET_IPV4;
            } else if (ft == 2 && ioff < iend && (p[ioff] >> 4) == 6) {
                et = ET_IPV6;
            } else {
                et = 0; /* frame type we do not decode: non-IP inside the tunnel */
            }
        }
        break;
    default:
        return; /* GRE flow */
    }
    if (depth >= PC_MAX_TUNNELS) {
        o->status = PC_BAD_TUNNEL;
        return;
    }
    enter_tunnel(o, tun, tid, ioff < iend ? ioff : iend);
    if (trunc)
        o->status = PC_TRUNCATED_LINK;
    else if (bad)
        o->status = PC_BAD_TUNNEL;
    else if (et == 0)
        o->status = PC_NON_IP;
    else
        link_chain(p, ioff, iend, et, o, depth + 1);
}

/* UDP-borne tunnels, recognised by destination port and a sane header. Returns 0 when
 * the datagram is to be reported as plain UDP. [off, off+clen) is the UDP payload. */
static int udp_tunnel(const uint8_t *p, uint32_t off, uint32_t clen, pc_pkt *o, int depth)
{
    const uint8_t *u = p + off;
    uint32_t et, hl = 8, vni;
    uint8_t tun;
    int trunc = 0;
    if (clen < 8) return 0;
    if (o->dst_port == PC_PORT_GTPU || o->src_port == PC_PORT_GTPU) {
        /* GTPv1-U (TS 29.281 5.1): version 1, PT 1, message type 255 (G-PDU) carries a
         * user packet; echo, error indication, end marker are plain UDP */
        if ((u[0] >> 5) != 1 || !(u[0] & 0x10) || u[1] != 0xFF) return 0;
        if (depth >= PC_MAX_TUNNELS) {
            o->status = PC_BAD_TUNNEL;
            return 1;
        }
        uint32_t teid = RD32(u + 4);
        if (u[0] & 0x07) { /* E, S or PN: sequence number, N-PDU number, next extension */
            hl = 12;
            if (clen < hl) trunc = 1;
            else if (u[0] & 0x04) {
                /* extension headers: a length in 4-byte units, the content, the next type */
                uint32_t next = u[11];
                while (next && !trunc) {
                    if (clen < hl + 1) { trunc = 1; break; }
                    uint32_t xl = 4u * u[hl];
                    if (xl == 0) { /* would not advance */
                        enter_tunnel(o, PC_TUN_GTPU, teid, off + hl); /* hl < clen here */
                        o->status = PC_BAD_TUNNEL;
                        return 1;
                    }
                    if (clen < hl + xl) { trunc = 1; break; }
                    next = u[hl + xl - 1];
                    hl += xl;
                }
            }
        }
        enter_tunnel(o, PC_TUN_GTPU, teid, hl < clen ? off + hl : off + clen);
        if (trunc || clen < hl + 1)
            o->status = PC_TRUNCATED_LINK;
        else if ((u[hl] >> 4) == 4)
            ip4(p, off + hl, off + clen, o, depth + 1);
        else if ((u[hl] >> 4) == 6)
            ip6(p, off + hl, off + clen, o, depth + 1);
        else
            o->status = PC_NON_IP;
        return 1;
    }
    switch (o->dst_port) {
    case PC_PORT_VXLAN:
    case PC_PORT_VXLAN_LINUX:
    case PC_PORT_VXLAN_GPE:
        if (!(u[0] & 0x08)) return 0; /* I flag: VNI valid */
        if (u[0] & 0x04) {            /* P flag: VXLAN-GPE next protocol */
            switch (u[3]) {
            case 1: et = ET_IPV4; break;
            case 2: et = ET_IPV6; break;
            case 3: et = ET_TEB; break;
            default: return 0;
            }
        } else {
            if (o->dst_port == PC_PORT_VXLAN_GPE) return 0;
            et = ET_TEB;
        }
        vni = RD24(u + 4);
        tun = PC_TUN_VXLAN;
        break;
    case PC_PORT_GENEVE:
        if (u[0] >> 6) return 0; /* version 0 only */
        et = RD16(u + 2);
        if (et != ET_TEB && et != ET_IPV4 && et != ET_IPV6) return 0;
        hl += 4u * (u[0] & 0x3F);
        if (hl > clen) trunc = 1;
        vni = RD24(u + 4);
        tun = PC_TUN_GENEVE;
        break;
    default:
        return 0;
    }
    if (depth >= PC_MAX_TUNNELS) {
        o->status = PC_BAD_TUNNEL;
        return 1;
    }
    enter_tunnel(o, tun, vni, hl < clen ? off + hl : off + clen);
    if (trunc)
        o->status = PC_TRUNCATED_LINK;
    else
        link_chain(p, off + hl, off + clen, et, o, depth + 1);
    return 1;
}

/* Transport header at off; len = its length by the IP header(s), clen = captured bytes
 * of it (clen <= len). o->proto is set. */
static void transport(const uint8_t *p, uint32_t off, uint32_t len, uint32_t clen, pc_pkt *o,
                      int depth)
{
    const uint8_t *t = p + off;
    switch (o->proto) {
    case 6: { /* TCP */
        if (clen >= 4) {
            o->src_port = (uint16_t)RD16(t);
            o->dst_port = (uint16_t)RD16(t + 2);
        }
        if (clen >= 8) o->tcp_seq = RD32(t + 4);
        if (clen >= 14) o->tcp_flags = t[13];
        if (clen < 20) {
            o->status = PC_TRUNCATED_TRANSPORT;
            set_payload(o, off + clen, 0, 0);
            return;
        }
        uint32_t doff = (uint32_t)(t[12] >> 4) * 4;
        if (doff < 20 || doff > len) /* impossible data offset: conversation, no payload */
            set_payload(o, off + 20, 0, 0);
        else if (doff > clen) /* options cut by the snap length */
            set_payload(o, off + clen, len - doff, 0);
        else
            set_payload(o, off + doff, len - doff, clen - doff);
        return;
    }
    case 17:  /* UDP */
    case 136: /* UDP-Lite */
        if (clen >= 4) {
            o->src_port = (uint16_t)RD16(t);
            o->dst_port = (uint16_t)RD16(t + 2);
        }
        if (clen < 8) {
            o->status = PC_TRUNCATED_TRANSPORT;
            set_payload(o, off + clen, 0, 0);
            return;
        }
        set_payload(o, off + 8, len - 8, clen - 8);
        if (o->frag == 0 && o->proto == 17) udp_tunnel(p, off + 8, clen - 8, o, depth);
        return;
    case 1:  /* ICMP */
    case 58: /* ICMPv6 */
        if (clen >= 2) {
            o->src_port = t[0];
            o->dst_port = t[1];
        }
        if (clen < 8) {
            o->status = PC_TRUNCATED_TRANSPORT;
            set_payload(o, off + clen, 0, 0);
            return;
        }
        set_payload(o, off + 8, len - 8, clen - 8);
        return;
    case 132: /* SCTP common header */
        if (clen >= 4) {
            o->src_port = (uint16_t)RD16(t);
            o->dst_port = (uint16_t)RD16(t + 2);
        }
        if (clen < 12) {
            o->status = PC_TRUNCATED_TRANSPORT;
            set_payload(o, off + clen, 0, 0);
            return;
        }
        set_payload(o, off + 12, len - 12, clen - 12);
        return;
    case 47:
        if (o->frag == 0) {
            gre(p, off, len, clen, o, depth);
            return;
        }
        break;
    case 4:  /* IPv4 in IP */
    case 41: /* IPv6 in IP */
        if (o->frag == 0) {
            set_payload(o, off, len, clen);
            if (depth >= PC_MAX_TUNNELS) {
                o->status = PC_BAD_TUNNEL;
                return;
            }
            uint8_t inner = o->proto;
            enter_tunnel(o, PC_TUN_IPIP, 0, off);
            if (inner == 4)
                ip4(p, off, off + clen, o, depth + 1);
            else
                ip6(p, off, off + clen, o, depth + 1);
            return;
        }
        break;
    default:
        break;
    }
    set_payload(o, off, len, clen);
}

static void ip4(const uint8_t *p, uint32_t off, uint32_t end, pc_pkt *o, int depth)
{
    const uint8_t *h = p + off;
    uint32_t avail = end - off;
    if (avail < 1) {
        o->status = PC_TRUNCATED_IP;
        return;
    }
    if ((h[0] >> 4) != 4) {
        o->status = PC_BAD_IP_HEADER;
        return;
    }
    o->ip_version = 4;
    if (avail < 20) {
        o->status = PC_TRUNCATED_IP;
        return;
    }
    put_v4(o->src_ip, h + 12);
    put_v4(o->dst_ip, h + 16);
    o->proto = h[9];
    o->ip_id = RD16(h + 4);
    uint32_t ihl = (uint32_t)(h[0] & 15) * 4, tot = RD16(h + 2);
    if (tot == 0) tot = avail; /* TSO / BIG TCP: length only known from the capture */
    if (ihl < 20 || tot < ihl) {
        o->status = PC_BAD_IP_HEADER;
        return;
    }
    if (avail < ihl) {
        o->status = PC_TRUNCATED_IP;
        return;
    }
    uint32_t cap = avail < tot ? avail : tot; /* drop link-layer padding */
    uint32_t fr = RD16(h + 6);
    if ((fr & 0x3FFF) && depth == 0) {
        o->fr_outer = 1;
        o->fr_more = (fr >> 13) & 1;
        o->fr_offset = (fr & 0x1FFF) * 8;
        o->fr_ip_off = off;
        o->fr_data_off = off + ihl;
        o->fr_data_len = tot - ihl;
    }
    if (fr & 0x1FFF) { /* later fragment: no transport header here */
        o->frag = 2;
        set_payload(o, off + ihl, tot - ihl, cap - ihl);
        return;
    }
    if (fr & 0x2000) o->frag = 1;
    /* an Authentication Header (RFC 4302) sits between IP and the transport header */
    uint32_t len = tot - ihl, clen = cap - ihl;
    off += ihl;
    while (o->proto == 51) {
        if (clen < 2) {
            o->status = len < 2 ? PC_BAD_IP_HEADER : PC_TRUNCATED_IP;
            return;
        }
        uint32_t hl = ((uint32_t)p[off + 1] + 2) * 4;
        if (hl > clen) {
            o->status = hl > len ? PC_BAD_IP_HEADER : PC_TRUNCATED_IP;
            return;
        }
        o->proto = p[off];
        off += hl;
        len -= hl;
        clen -= hl;
    }
    transport(p, off, len, clen, o, depth);
}

static void ip6(const uint8_t *p, uint32_t off, uint32_t end, pc_pkt *o, int depth)
{
    const uint8_t *h = p + off;
    uint32_t avail = end - off;
    if (avail < 1) {
        o->status = PC_TRUNCATED_IP;
        return;
    }
    if ((h[0] >> 4) != 6) {
        o->status = PC_BAD_IP_HEADER;
        return;
    }
    o->ip_version = 6;
    uint32_t ip_off = off;
    if (avail < 40) {
        o->status = PC_TRUNCATED_IP;
        return;
    }
    memcpy(o->src_ip, h + 8, 16);
    memcpy(o->dst_ip, h + 24, 16);
    uint32_t nh = h[6];
    uint32_t len = RD16(h + 4);
    if (len == 0 && nh != 59) len = avail - 40; /* jumbogram / BIG TCP: from the capture */
    uint32_t clen = avail - 40 < len ? avail - 40 : len;
    off += 40;
    for (;;) {
        const uint8_t *x = p + off;
        uint32_t hl;
        o->proto = (uint8_t)nh;
        switch (nh) {
        case 0:  /* hop-by-hop options */
        case 43: /* routing */
        case 60: /* destination options */
        case 51: /* AH */
            if (clen < 2) {
                o->status = len < 2 ? PC_BAD_IP_HEADER : PC_TRUNCATED_IP;
                return;
            }
            hl = nh == 51 ? ((uint32_t)x[1] + 2) * 4 : ((uint32_t)x[1] + 1) * 8;
            if (hl > clen) {
                o->status = hl > len ? PC_BAD_IP_HEADER : PC_TRUNCATED_IP;
                return;
            }
            nh = x[0];
            break;
        case 44: { /* fragment */
            if (clen < 8) {
                o->status = len < 8 ? PC_BAD_IP_HEADER : PC_TRUNCATED_IP;
                return;
            }
            uint32_t fo = RD16(x + 2);
            hl = 8;
            nh = x[0];
            o->ip_id = RD32(x + 4);
            if ((fo & 0xFFF9) && depth == 0) {
                o->fr_outer = 1;
                o->fr_more = fo & 1;
                o->fr_offset = fo & 0xFFF8;
                o->fr_ip_off = ip_off;
                o->fr_data_off = off + 8;
                o->fr_data_len = len - 8;
            }
            if (fo & 0xFFF8) {
                o->frag = 2;
                o->proto = (uint8_t)nh;
                set_payload(o, off + 8, len - 8, clen - 8);
                return;
            }
            if (fo & 1) o->frag = 1;
            break;
        }
        default:
            transport(p, off, len, clen, o, depth);
            return;
        }
        off += hl;
        len -= hl;
        clen -= hl;
    }
}

/* BSD address families seen in DLT_NULL / DLT_LOOP headers. */
static void null_af(const uint8_t *p, uint32_t caplen, uint32_t af, pc_pkt *o)
{
    if (af == 2)
        ip4(p, 4, caplen, o, 0);
    else if (af == 24 || af == 28 || af == 30)
        ip6(p, 4, caplen, o, 0);
    else
        o->status = PC_NON_IP;
}

void pc_decode(const uint8_t *p, uint32_t caplen, uint32_t linktype, pc_pkt *o)
{
    memset(o, 0, sizeof(*o));
    o->vlan = o->vlan_inner = o->mpls = -1;
    linktype &= PC_LT_MASK;
    switch (linktype) {
    case PC_LT_ETHERNET:
        link_chain(p, 0, caplen, ET_TEB, o, 0);
        return;
    case PC_LT_LINUX_SLL:
        if (caplen < 16) {
            o->status = PC_TRUNCATED_LINK;
            return;
        }
        if (RD16(p + 2) == 824) { /* ARPHRD_NETLINK: protocol is a netlink family */
            o->status = PC_NON_IP;
            return;
        }
        link_chain(p, 16, caplen, RD16(p + 14), o, 0);
        return;
    case PC_LT_LINUX_SLL2:
        if (caplen < 20) {
            o->status = PC_TRUNCATED_LINK;
            return;
        }
        if (RD16(p + 8) == 824) {
            o->status = PC_NON_IP;
            return;
        }
        link_chain(p, 20, caplen, RD16(p), o, 0);
        return;
    case PC_LT_RAW:
    case PC_LT_RAW_OLD:
    case PC_LT_RAW_OLD2:
        if (caplen < 1) {
            o->status = PC_TRUNCATED_IP;
        } else if ((p[0] >> 4) == 4) {
            ip4(p, 0, caplen, o, 0);
        } else if ((p[0] >> 4) == 6) {
            ip6(p, 0, caplen, o, 0);
        } else if (linktype != PC_LT_RAW && p[0] == 0) { /* OpenBSD DLT_LOOP is 12 */
            if (caplen < 4)
                o->status = PC_TRUNCATED_LINK;
            else if (p[1] == 0 && p[2] == 0)
                null_af(p, caplen, p[3], o);
            else
                o->status = PC_BAD_IP_HEADER;
        } else {
            o->status = PC_BAD_IP_HEADER;
        }
        return;
    case PC_LT_IPV4:
        ip4(p, 0, caplen, o, 0);
        return;
    case PC_LT_IPV6:
        ip6(p, 0, caplen, o, 0);
        return;
    case PC_LT_NULL: {
        if (caplen < 4) {
            o->status = PC_TRUNCATED_LINK;
            return;
        }
        /* host byte order of the writer, which we do not know: AF values are small */
        uint32_t af = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                      (uint32_t)p[3] << 24;
        if (af > 0xFFFF) af = RD32(p);
        null_af(p, caplen, af, o);
        return;
    }
    case PC_LT_LOOP:
        if (caplen < 4) {
            o->status = PC_TRUNCATED_LINK;
            return;
        }
        null_af(p, caplen, RD32(p), o);
        return;
    case PC_LT_PPP:
    case PC_LT_PPP_HDLC: {
        uint32_t off = 0, proto;
        if (caplen >= 2 && p[0] == 0xFF && p[1] == 0x03) off = 2; /* address, control */
        if (caplen < off + 1) {
            o->status = PC_TRUNCATED_LINK;
            return;
        }
        if (p[off] & 1) { /* protocol field compressed to one byte (RFC 1661 6.5) */
            proto = p[off];
            off += 1;
        } else {
            if (caplen < off + 2) {
                o->status = PC_TRUNCATED_LINK;
                return;
            }
            proto = RD16(p + off);
            off += 2;
        }
        if (proto == 0x0021)
            link_chain(p, off, caplen, ET_IPV4, o, 0);
        else if (proto == 0x0057)
            link_chain(p, off, caplen, ET_IPV6, o, 0);
        else if (proto == 0x0281)
            link_chain(p, off, caplen, ET_MPLS, o, 0);
        else
            o->status = PC_NON_IP;
        return;
    }
    case PC_LT_PPP_ETHER:
        link_chain(p, 0, caplen, ET_PPPOE_SESS, o, 0);
        return;
    default:
        o->status = PC_UNSUPPORTED_LINKTYPE;
        return;
    }
}
