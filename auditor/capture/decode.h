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
#define PC_LT_LINUX_SLL 113
#define PC_LT_IPV4 228
#define PC_LT_IPV6 229
#define PC_LT_LINUX_SLL2 276
#define PC_LT_RAW_OLD 12 /* DLT_RAW on OpenBSD as written by some tools */
#define PC_LT_RAW_OLD2 14

void pc_decode(const uint8_t *p, uint32_t caplen, uint32_t linktype, pc_pkt *o);

#endif
