/* The compiled hot path: find record boundaries in pcap/pcapng buffers and decode header
 * fields for whole batches at once into caller-provided column buffers.
 *
 * Python owns all memory (numpy arrays passed through the buffer protocol); C only fills it.
 * reader.py reads a capture in large chunks and calls scan() on each: scan() walks the
 * records of the chunk, runs pc_decode() on each, and writes one row per record into the
 * batch columns, until the batch is full, the chunk ends inside a record (Python carries the
 * tail over to the next chunk), or -- pcapng -- a block other than a packet block comes up
 * (Python parses it and calls scan() again). No Python object is created per record.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "decode.h"

/* ---- limits, codes shared with reader.py (exported as module constants) --------------- */

#define MAX_CAPLEN 262144u       /* a record claiming more than this is malformed */
#define MAX_BLOCK (32u << 20)    /* a pcapng block longer than this is malformed */
#define HEAD_TLS 4096u           /* payload head limits, see put_row() */
#define HEAD_TEXT 1024u
#define HEAD_OTHER 128u

enum { K_PCAP = 0, K_PCAPNG = 1 };

/* scan() return codes */
enum {
    ST_FULL = 1,    /* batch rows or payload buffer full: emit the batch, call again */
    ST_NEED = 2,    /* chunk ends inside a record/block: st[S_NEED] bytes needed at S_POS */
    ST_BLOCK = 3,   /* pcapng: a non-packet block at S_POS (SHB: only its type was read) */
    ST_BAD = 4,     /* malformed record header: a bad_record row was written, stop reading */
    ST_BADSKIP = 5, /* pcapng: malformed packet block skipped by its (sane) length */
    ST_FAULT = 6,   /* reading the chunk faulted (a mapped file shrank): state is at the last
                     * whole record; nothing more can be read */
};

/* why a record was bad (st[S_BADCODE]); st[S_BADVAL] holds the offending value */
enum {
    BAD_CAPLEN = 1,       /* caplen > MAX_CAPLEN */
    BAD_BLOCKLEN = 2,     /* block length < 12, not a multiple of 4 or > MAX_BLOCK */
    BAD_TRAILER = 3,      /* trailing block length differs from the leading one */
    BAD_IFACE = 4,        /* interface id not defined in this section */
    BAD_SHORT_BLOCK = 5,  /* block too short for its fixed fields */
    BAD_CAPLEN_BLOCK = 6, /* caplen larger than the block */
};

/* pcapng blocks the scanner skips itself (counted per kind), so that a file made of
 * thousands of them never costs a Python call each. */
enum { SKIP_NRB, SKIP_JOURNAL, SKIP_DSB, SKIP_CUSTOM, SKIP_CUSTOM_NOCOPY, SKIP_OTHER, NSKIP };

/* The state vector (int64 numpy array), in/out. */
enum {
    S_POS,      /* in/out: offset of the next record in the chunk */
    S_END,      /* in: bytes valid in the chunk */
    S_ROW,      /* in/out: next row of the batch */
    S_ROWCAP,   /* in: rows in the batch */
    S_FRAME,    /* in/out: records seen so far in the file (frame numbers are 1-based) */
    S_DUSED,    /* in/out: payload data bytes used */
    S_DCAP,     /* in: payload data capacity */
    S_SWAP,     /* in: 1 when the file/section byte order is not the host's */
    S_NEED,     /* out: with ST_NEED, bytes needed from S_POS */
    S_BYTES,    /* in/out: sum of wire lengths */
    S_TSMIN,    /* in/out: smallest timestamp seen (INT64_MAX when none) */
    S_TSMAX,    /* in/out: largest timestamp seen (INT64_MIN when none) */
    S_BADCODE,  /* out: BAD_* */
    S_BADVAL,   /* out */
    S_BADPOS,   /* out: offset of the bad record/block in the chunk */
    S_QUIET,    /* in: 1 = skip malformed packet blocks without returning ST_BADSKIP */
    S_NULLS,    /* in/out, 7 slots: null counts of the validity bitmaps, V_* order */
    S_STATUS = S_NULLS + 7, /* in/out, PC_NSTATUS slots: rows per status code */
    S_SKIP = S_STATUS + PC_NSTATUS, /* in/out, NSKIP slots: pcapng blocks skipped, SKIP_* order */
    S_LEN = S_SKIP + NSKIP,
};


/* The interface table (int64 numpy array, IF_W values per interface). A timestamp of t
 * ticks is t * IF_MUL / IF_DIV + IF_OFF * 1e9 ns (IF_OFF: if_tsoffset, seconds). */
enum { IF_LT, IF_SNAP, IF_MUL, IF_DIV, IF_OFF, IF_PKTS, IF_W };

#define MAX_ROWS (1 << 21) /* rows of a batch: its payload buffer (512 B a row) has int32 offsets */
#define MAX_MUL 1000000000LL    /* IF_MUL bound: t * IF_MUL fits 128 bits with room */

/* The batch columns, in the order of the tuple scan() takes (exported as COLUMNS). */
enum {
    C_FRAME, C_TS, C_WIRE, C_CAP, C_LT, C_STATUS, C_VLAN, C_VLAN_IN, C_MPLS, C_TUN, C_TUNID,
    C_OSRC, C_ODST, C_IPV, C_SRC, C_DST, C_PROTO, C_SPORT, C_DPORT, C_FLAGS, C_SEQ, C_FRAG,
    C_IPID, C_PLEN, C_POFF, C_PDATA, C_KEY, C_DIR,
    V_TS, V_VLAN, V_VLAN_IN, V_MPLS, V_TUNID, V_OUTER, V_IP,
    NCOLS,
};

/* kind: 'n' numeric (width bytes per row), 'o' payload offsets (rows + 1 int32), 'd' payload
 * data (S_DCAP bytes), 'v' validity bitmap ((rows + 7) / 8 bytes, zeroed by the caller). */
static const struct {
    const char *name;
    const char *dtype;
    char kind;
    int width;
} COLS[NCOLS] = {
    {"frame", "<u8", 'n', 8}, {"ts", "<i8", 'n', 8}, {"wire_len", "<u4", 'n', 4},
    {"cap_len", "<u4", 'n', 4}, {"linktype", "<u2", 'n', 2}, {"status", "u1", 'n', 1},
    {"vlan", "<i4", 'n', 4}, {"vlan_inner", "<i4", 'n', 4}, {"mpls", "<i4", 'n', 4},
    {"tunnel", "u1", 'n', 1}, {"tunnel_id", "<u4", 'n', 4}, {"outer_src", "u1", 'n', 16},
    {"outer_dst", "u1", 'n', 16}, {"ip_version", "u1", 'n', 1}, {"src_ip", "u1", 'n', 16},
    {"dst_ip", "u1", 'n', 16}, {"proto", "u1", 'n', 1}, {"src_port", "<u2", 'n', 2},
    {"dst_port", "<u2", 'n', 2}, {"tcp_flags", "u1", 'n', 1}, {"tcp_seq", "<u4", 'n', 4},
    {"frag", "u1", 'n', 1}, {"ip_id", "<u4", 'n', 4}, {"payload_len", "<u4", 'n', 4},
    {"payload_offsets", "<i4", 'o', 4}, {"payload_data", "u1", 'd', 1},
    {"flow_key", "<u8", 'n', 8}, {"flow_dir", "u1", 'n', 1},
    {"valid_ts", "u1", 'v', 0}, {"valid_vlan", "u1", 'v', 0}, {"valid_vlan_inner", "u1", 'v', 0},
    {"valid_mpls", "u1", 'v', 0}, {"valid_tunnel_id", "u1", 'v', 0},
    {"valid_outer", "u1", 'v', 0}, {"valid_ip", "u1", 'v', 0},
};

typedef struct {
    uint8_t *p[NCOLS];
} cols_t;

/* ---- small helpers ------------------------------------------------------------------- */

static inline uint32_t rd32(const uint8_t *p, int sw)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return sw ? __builtin_bswap32(v) : v;
}

static inline uint16_t rd16(const uint8_t *p, int sw)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return sw ? __builtin_bswap16(v) : v;
}

static inline uint64_t rd64le(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* a + b, saturating at INT64_MAX (a >= 0): a sum of lengths never wraps */
static inline int64_t add_sat(int64_t a, uint32_t b)
{
    return a > INT64_MAX - (int64_t)b ? INT64_MAX : a + (int64_t)b;
}

static inline uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* The flow hash's constants, each XORed with a value derived from the per-process seed
 * (random at import, settable with set_flow_seed() for tests). The hash only spreads flows
 * over the flow table's slots; the table compares the full key on a hit (auditor/_flowtab.c),
 * so a collision costs a probe, never a merge -- and with a secret seed an attacker cannot
 * aim collisions at it (the multiply/fold is weak against known constants: an address whose
 * first 8 bytes equal k0 zeroes the first product). */
static const uint64_t HASH_BASE[5] = {0xa0761d6478bd642full, 0xe7037ed1a0b428dbull,
                                      0x8ebc6af09c88c6e3ull, 0x589965cc75374cc3ull,
                                      0x1d8e4e27c47d124full};
static uint64_t hash_k[5];
static uint64_t hash_seed;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void set_seed(uint64_t seed)
{
    uint64_t s = seed;
    hash_seed = seed;
    for (int i = 0; i < 5; i++) hash_k[i] = HASH_BASE[i] ^ splitmix64(&s);
}

/* Symmetric flow hash: the (ip, port) endpoints are put in canonical order (lower 16-byte
 * address first, then lower port), then (proto, lower, upper, vlan) is hashed with a
 * wyhash-style 128-bit multiply/fold keyed by the seed. *dir = 0 when (a, pa) is the lower
 * endpoint. ICMP and ICMPv6 carry type/code in the port columns: they are hashed as ports 0
 * (one flow per host pair and vlan). */
static inline uint64_t flow_hash(uint8_t proto, const uint8_t *a, uint16_t pa, const uint8_t *b,
                                 uint16_t pb, int32_t vlan, uint8_t *dir)
{
    if (proto == 1 || proto == 58) pa = pb = 0;
    int c = memcmp(a, b, 16);
    if (c > 0 || (c == 0 && pa > pb)) {
        const uint8_t *t = a;
        a = b;
        b = t;
        uint16_t tp = pa;
        pa = pb;
        pb = tp;
        *dir = 1;
    } else {
        *dir = 0;
    }
    const uint64_t k0 = hash_k[0], k1 = hash_k[1], k2 = hash_k[2], k3 = hash_k[3],
                   k4 = hash_k[4];
    uint64_t w = ((uint64_t)pa << 48) | ((uint64_t)pb << 32) | (uint32_t)vlan;
    uint64_t h = mum(rd64le(a) ^ k0, rd64le(a + 8) ^ k1);
    h = mum(h ^ rd64le(b) ^ k2, rd64le(b + 8) ^ k3);
    h = mum(h ^ w ^ k4, ((uint64_t)proto << 56 | 0x2d) ^ k1);
    return mum(h ^ k0, h ^ k2 ^ 40);
}

static inline int head_text(uint8_t ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '-';
}

/* Copy a payload head. When the source allows it, copies whole 32-byte blocks (past n: the
 * destination always has HEAD_TLS bytes of room and the bytes past n are overwritten by the
 * next row), which is much faster than a variable-length memcpy for these short copies. */
static inline void copy_head(uint8_t *dst, const uint8_t *src, uint32_t n, const uint8_t *src_end)
{
    if (src + ((n + 31u) & ~31u) <= src_end) {
        for (uint32_t i = 0; i < n; i += 32) memcpy(dst + i, src + i, 32);
    } else {
        memcpy(dst, src, n);
    }
}

#define SETBIT(bm, r) ((bm)[(r) >> 3] |= (uint8_t)(1u << ((r)&7)))

/* Write row r: record fields, decoded fields, payload head, flow key, validity bits.
 * Payload head policy (see reader.py): up to HEAD_TLS bytes when the payload starts like a
 * TLS handshake record (16 03), up to HEAD_TEXT when its first 4 bytes are ASCII letters or
 * '-', the 4th may be a space ("GET ", "PUT ": HTTP, SSH, SMTP, ...), otherwise up to
 * HEAD_OTHER. The caller guarantees HEAD_TLS
 * bytes of room in the payload buffer. */
static inline void put_row(const cols_t *c, int64_t *st, int64_t r, uint64_t frame, int64_t ts,
                           int ts_valid, uint32_t wire, uint32_t caplen, uint32_t lt,
                           const pc_pkt *o, const uint8_t *rec, const uint8_t *rec_end)
{
    ((uint64_t *)c->p[C_FRAME])[r] = frame;
    ((int64_t *)c->p[C_TS])[r] = ts_valid ? ts : 0;
    ((uint32_t *)c->p[C_WIRE])[r] = wire;
    ((uint32_t *)c->p[C_CAP])[r] = caplen;
    ((uint16_t *)c->p[C_LT])[r] = (uint16_t)lt;
    c->p[C_STATUS][r] = o->status;
    ((int32_t *)c->p[C_VLAN])[r] = o->vlan;
    ((int32_t *)c->p[C_VLAN_IN])[r] = o->vlan_inner;
    ((int32_t *)c->p[C_MPLS])[r] = o->mpls;
    c->p[C_TUN][r] = o->tunnel;
    ((uint32_t *)c->p[C_TUNID])[r] = o->tunnel_id;
    memcpy(c->p[C_OSRC] + 16 * r, o->outer_src, 16);
    memcpy(c->p[C_ODST] + 16 * r, o->outer_dst, 16);
    c->p[C_IPV][r] = o->ip_version;
    memcpy(c->p[C_SRC] + 16 * r, o->src_ip, 16);
    memcpy(c->p[C_DST] + 16 * r, o->dst_ip, 16);
    c->p[C_PROTO][r] = o->proto;
    ((uint16_t *)c->p[C_SPORT])[r] = o->src_port;
    ((uint16_t *)c->p[C_DPORT])[r] = o->dst_port;
    c->p[C_FLAGS][r] = o->tcp_flags;
    ((uint32_t *)c->p[C_SEQ])[r] = o->tcp_seq;
    c->p[C_FRAG][r] = o->frag;
    ((uint32_t *)c->p[C_IPID])[r] = o->ip_id;
    ((uint32_t *)c->p[C_PLEN])[r] = o->payload_len;

    /* payload head */
    int64_t used = st[S_DUSED];
    uint32_t n = 0;
    if (o->payload_caplen && (uint64_t)o->payload_off + o->payload_caplen <= caplen) {
        const uint8_t *pl = rec + o->payload_off;
        uint32_t m = o->payload_caplen, lim = HEAD_OTHER;
        if (m >= 2 && pl[0] == 0x16 && pl[1] == 0x03)
            lim = HEAD_TLS;
        else if (m >= 4 && head_text(pl[0]) && head_text(pl[1]) && head_text(pl[2]) &&
                 (head_text(pl[3]) || pl[3] == ' '))
            lim = HEAD_TEXT;
        n = m < lim ? m : lim;
        copy_head(c->p[C_PDATA] + used, pl, n, rec_end);
    }
    used += n;
    st[S_DUSED] = used;
    ((int32_t *)c->p[C_POFF])[r + 1] = (int32_t)used;

    /* flow key, validity */
    uint8_t dir = 0;
    uint64_t key = 0;
    if (o->ip_version) {
        /* the VLAN is not part of the key: mirrored traffic often carries the two directions
         * of one connection on different VLANs (as Zeek and Community ID do, too) */
        key = flow_hash(o->proto, o->src_ip, o->src_port, o->dst_ip, o->dst_port, -1, &dir);
        SETBIT(c->p[V_IP], r);
    } else {
        st[S_NULLS + (V_IP - V_TS)]++;
    }
    ((uint64_t *)c->p[C_KEY])[r] = key;
    c->p[C_DIR][r] = dir;
    if (ts_valid) SETBIT(c->p[V_TS], r); else st[S_NULLS + 0]++;
    if (o->vlan >= 0) SETBIT(c->p[V_VLAN], r); else st[S_NULLS + (V_VLAN - V_TS)]++;
    if (o->vlan_inner >= 0) SETBIT(c->p[V_VLAN_IN], r); else st[S_NULLS + (V_VLAN_IN - V_TS)]++;
    if (o->mpls >= 0) SETBIT(c->p[V_MPLS], r); else st[S_NULLS + (V_MPLS - V_TS)]++;
    if (o->tunnel) SETBIT(c->p[V_TUNID], r); else st[S_NULLS + (V_TUNID - V_TS)]++;
    if (o->has_outer) SETBIT(c->p[V_OUTER], r); else st[S_NULLS + (V_OUTER - V_TS)]++;

    st[S_STATUS + (o->status < PC_NSTATUS ? o->status : PC_BAD_RECORD)]++;
    if (o->status != PC_BAD_RECORD) {
        st[S_BYTES] = add_sat(st[S_BYTES], wire);
        if (ts_valid) {
            if (ts < st[S_TSMIN]) st[S_TSMIN] = ts;
            if (ts > st[S_TSMAX]) st[S_TSMAX] = ts;
        }
    }
}

/* A row for a record whose header is impossible: frame number and status only. */
static void put_bad_row(const cols_t *c, int64_t *st, int64_t r, uint64_t frame, uint32_t lt,
                        int code, int64_t val, int64_t pos)
{
    pc_pkt o;
    memset(&o, 0, sizeof(o));
    o.vlan = o.vlan_inner = o.mpls = -1;
    o.status = PC_BAD_RECORD;
    put_row(c, st, r, frame, 0, 0, 0, 0, lt, &o, NULL, NULL);
    st[S_BADCODE] = code;
    st[S_BADVAL] = val;
    st[S_BADPOS] = pos;
}

static inline int batch_full(const int64_t *st, int64_t row)
{
    return row >= st[S_ROWCAP] || st[S_DCAP] - st[S_DUSED] < (int64_t)HEAD_TLS;
}

/* Progress is stored in the state vector before each record is read, and kept there by a
 * compiler barrier: when reading a record faults (see guarded scans below), the state holds
 * every whole record before it. */
static inline void commit(int64_t *st, int64_t pos, int64_t row, uint64_t frame)
{
    volatile int64_t *v = st;
    v[S_POS] = pos;
    v[S_ROW] = row;
    v[S_FRAME] = (int64_t)frame;
    __asm__ __volatile__("" ::: "memory");
}

/* ---- classic pcap -------------------------------------------------------------------- */

static int scan_pcap(const uint8_t *buf, int64_t *st, int64_t *ifc, int64_t nif, const cols_t *c)
{
    int64_t pos = st[S_POS], end = st[S_END], row = st[S_ROW];
    uint64_t frame = (uint64_t)st[S_FRAME];
    int sw = (int)st[S_SWAP];
    uint32_t lt = nif ? (uint32_t)ifc[IF_LT] : 0;
    int64_t mul = nif ? ifc[IF_MUL] : 1000;
    int rc;
    pc_pkt o;
    for (;;) {
        commit(st, pos, row, frame);
        if (batch_full(st, row)) { rc = ST_FULL; break; }
        if (end - pos < 16) { st[S_NEED] = 16; rc = ST_NEED; break; }
        const uint8_t *h = buf + pos;
        uint32_t caplen = rd32(h + 8, sw);
        if (caplen > MAX_CAPLEN) {
            put_bad_row(c, st, row++, ++frame, lt, BAD_CAPLEN, caplen, pos);
            rc = ST_BAD;
            break;
        }
        if (end - pos - 16 < (int64_t)caplen) { st[S_NEED] = 16 + (int64_t)caplen; rc = ST_NEED; break; }
        uint32_t sec = rd32(h, sw), frac = rd32(h + 4, sw), wire = rd32(h + 12, sw);
        int64_t ts = (int64_t)sec * 1000000000LL + (int64_t)frac * mul;
        pc_decode(h + 16, caplen, lt, &o);
        put_row(c, st, row++, ++frame, ts, 1, wire, caplen, lt, &o, h + 16, buf + end);
        if (nif) ifc[IF_PKTS]++;
        pos += 16 + (int64_t)caplen;
    }
    st[S_POS] = pos;
    st[S_ROW] = row;
    st[S_FRAME] = (int64_t)frame;
    return rc;
}

/* ---- pcapng -------------------------------------------------------------------------- */

#define BT_SHB 0x0A0D0D0Au
#define BT_IDB 1u
#define BT_PB 2u  /* obsolete Packet Block */
#define BT_NRB 4u
#define BT_ISB 5u
#define BT_JOURNAL 9u
#define BT_DSB 10u
#define BT_CUSTOM 0x00000BADu
#define BT_CUSTOM_NOCOPY 0x40000BADu
#define BT_SPB 3u
#define BT_EPB 6u

/* t ticks -> ns since 1970 in *ns; 0 when the result does not fit an int64 (no overflow
 * on the way: 2^64 ticks * 1e9 and 2^63 s * 1e9 both fit 128 bits). py_scan checks that
 * 1 <= IF_MUL <= MAX_MUL and IF_DIV >= 1. */
static inline int ticks_to_ns(uint64_t t, const int64_t *f, int64_t *ns)
{
    __int128 v = (__int128)((unsigned __int128)t * (uint64_t)f[IF_MUL] / (uint64_t)f[IF_DIV]);
    v += (__int128)f[IF_OFF] * 1000000000;
    if (v < INT64_MIN || v > INT64_MAX) return 0;
    *ns = (int64_t)v;
    return 1;
}

static int scan_pcapng(const uint8_t *buf, int64_t *st, int64_t *ifc, int64_t nif,
                       const cols_t *c)
{
    int64_t pos = st[S_POS], end = st[S_END], row = st[S_ROW];
    uint64_t frame = (uint64_t)st[S_FRAME];
    int sw = (int)st[S_SWAP];
    int rc;
    pc_pkt o;
    for (;;) {
        commit(st, pos, row, frame);
        if (batch_full(st, row)) { rc = ST_FULL; break; }
        if (end - pos < 8) { st[S_NEED] = 8; rc = ST_NEED; break; }
        const uint8_t *b = buf + pos;
        uint32_t type = rd32(b, sw);
        if (type == BT_SHB) { rc = ST_BLOCK; break; } /* its byte order may differ: Python */
        uint32_t blen = rd32(b + 4, sw);
        if (blen < 12 || (blen & 3) || blen > MAX_BLOCK) {
            put_bad_row(c, st, row++, ++frame, 0, BAD_BLOCKLEN, blen, pos);
            rc = ST_BAD;
            break;
        }
        if (end - pos < (int64_t)blen) { st[S_NEED] = blen; rc = ST_NEED; break; }
        if (rd32(b + blen - 4, sw) != blen) {
            put_bad_row(c, st, row++, ++frame, 0, BAD_TRAILER, rd32(b + blen - 4, sw), pos);
            rc = ST_BAD;
            break;
        }
        if (type != BT_EPB && type != BT_SPB && type != BT_PB) {
            if (type == BT_IDB || type == BT_ISB) { rc = ST_BLOCK; break; } /* Python */
            int k = type == BT_NRB ? SKIP_NRB : type == BT_JOURNAL ? SKIP_JOURNAL
                  : type == BT_DSB ? SKIP_DSB : type == BT_CUSTOM ? SKIP_CUSTOM
                  : type == BT_CUSTOM_NOCOPY ? SKIP_CUSTOM_NOCOPY : SKIP_OTHER;
            st[S_SKIP + k]++;
            pos += blen;
            continue;
        }

        uint32_t iface = 0, caplen = 0, wire = 0, avail;
        int64_t ts = 0;
        int ts_valid = 1, bad = 0;
        int64_t badval = 0;
        const uint8_t *data = NULL;
        if (type == BT_SPB) {
            iface = 0;
            ts_valid = 0;
            if (blen < 16) { bad = BAD_SHORT_BLOCK; badval = blen; goto check; }
            wire = rd32(b + 8, sw);
            avail = blen - 16;
            data = b + 12;
            caplen = wire < avail ? wire : avail;
            if (nif && ifc[IF_SNAP] > 0 && caplen > (uint64_t)ifc[IF_SNAP])
                caplen = (uint32_t)ifc[IF_SNAP];
        } else {
            if (blen < 32) { bad = BAD_SHORT_BLOCK; badval = blen; goto check; }
            iface = type == BT_EPB ? rd32(b + 8, sw) : rd16(b + 8, sw);
            uint64_t t = ((uint64_t)rd32(b + 12, sw) << 32) | rd32(b + 16, sw);
            caplen = rd32(b + 20, sw);
            wire = rd32(b + 24, sw);
            avail = blen - 32;
            data = b + 28;
            if (caplen > avail) { bad = BAD_CAPLEN_BLOCK; badval = caplen; goto check; }
            if (iface < nif && !ticks_to_ns(t, ifc + IF_W * iface, &ts)) ts_valid = -1;
        }
        if (caplen > MAX_CAPLEN) { bad = BAD_CAPLEN; badval = caplen; }
    check:
        if (!bad && (int64_t)iface >= nif) { bad = BAD_IFACE; badval = iface; }
        if (bad) {
            put_bad_row(c, st, row++, ++frame, 0, bad, badval, pos);
            pos += blen;
            if (st[S_QUIET]) continue;
            rc = ST_BADSKIP;
            break;
        }
        int64_t *f = ifc + IF_W * iface;
        uint32_t lt = (uint32_t)f[IF_LT];
        pc_decode(data, caplen, lt, &o);
        if (ts_valid < 0) { /* decoded, but its flow would carry a wrong date: not used */
            o.status = PC_BAD_TIMESTAMP;
            ts_valid = 0;
        }
        put_row(c, st, row++, ++frame, ts, ts_valid, wire, caplen, lt, &o, data, buf + end);
        f[IF_PKTS]++;
        pos += blen;
    }
    st[S_POS] = pos;
    st[S_ROW] = row;
    st[S_FRAME] = (int64_t)frame;
    return rc;
}

/* ---- reading a mapped file that may shrink ------------------------------------------ */

/* reader.py memory-maps uncompressed captures. When another process truncates the file
 * meanwhile (a `tcpdump -W` ring buffer rotating), touching a page past the new end raises
 * SIGBUS, which would end the process. Reads of mapped memory (scan(), take()) run guarded:
 * a SIGBUS handler jumps back out of the faulting read of this thread, and the caller
 * reports the capture as truncated. A SIGBUS that is not such a fault goes to the handler
 * that was there before (the default: the process ends), as if this one were not there. */

static __thread sigjmp_buf *fault_jmp; /* set while this thread reads guarded */
static struct sigaction prev_bus;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    sigjmp_buf *jb = fault_jmp;
    (void)uc;
    if (jb && si->si_code > 0) { /* a fault of this thread's guarded read */
        fault_jmp = NULL;
        siglongjmp(*jb, 1);
    }
    sigaction(SIGBUS, &prev_bus, NULL); /* not ours: back to whoever had it */
    if (si->si_code <= 0) raise(sig);   /* sent, not a fault: send it again */
    /* a fault: returning runs the instruction again, which faults under prev_bus */
}

/* Make on_sigbus the SIGBUS handler (again: faulthandler may have replaced it since). */
static void guard_install(void)
{
    struct sigaction cur, sa;
    if (sigaction(SIGBUS, NULL, &cur) < 0) return;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus) return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &prev_bus);
}

/* ---- Python entry points ------------------------------------------------------------- */

static int get_buf(PyObject *obj, Py_buffer *v, int writable, const char *what)
{
    if (PyObject_GetBuffer(obj, v, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyErr_Format(PyExc_TypeError, "scan: %s must be a contiguous%s buffer", what,
                     writable ? " writable" : "");
        return -1;
    }
    return 0;
}

/* scan(kind, chunk, state, ifaces, columns) -> stop code. See the ST_* and S_* constants. */
static PyObject *py_scan(PyObject *self, PyObject *args)
{
    int kind;
    PyObject *chunk_o, *state_o, *ifc_o, *cols_o;
    Py_buffer chunk, state, ifc, views[NCOLS];
    cols_t c;
    int nviews = 0, rc = -1;
    (void)self;
    if (!PyArg_ParseTuple(args, "iOOOO!", &kind, &chunk_o, &state_o, &ifc_o, &PyTuple_Type,
                          &cols_o))
        return NULL;
    if (PyTuple_GET_SIZE(cols_o) != NCOLS)
        return PyErr_Format(PyExc_ValueError, "scan: expected %d columns", NCOLS);
    if (get_buf(chunk_o, &chunk, 0, "chunk") < 0) return NULL;
    if (get_buf(state_o, &state, 1, "state") < 0) { PyBuffer_Release(&chunk); return NULL; }
    if (get_buf(ifc_o, &ifc, 1, "ifaces") < 0) {
        PyBuffer_Release(&chunk);
        PyBuffer_Release(&state);
        return NULL;
    }
    int64_t *st = (int64_t *)state.buf;
    if (state.len < (Py_ssize_t)(S_LEN * sizeof(int64_t))) {
        PyErr_SetString(PyExc_ValueError, "scan: state too short");
        goto done;
    }
    int64_t rows = st[S_ROWCAP];
    if (st[S_END] < 0 || st[S_END] > chunk.len || st[S_POS] < 0 || st[S_POS] > st[S_END] ||
        rows < 0 || rows > MAX_ROWS || st[S_ROW] < 0 || st[S_ROW] > rows || st[S_DUSED] < 0 ||
        st[S_DCAP] > INT32_MAX || st[S_DUSED] > st[S_DCAP] || st[S_BYTES] < 0) {
        PyErr_SetString(PyExc_ValueError, "scan: inconsistent state");
        goto done;
    }
    for (Py_ssize_t i = 0; i + (Py_ssize_t)sizeof(int64_t) * IF_W <= ifc.len;
         i += (Py_ssize_t)sizeof(int64_t) * IF_W) {
        const int64_t *f = (const int64_t *)((const char *)ifc.buf + i);
        if (f[IF_MUL] < 1 || f[IF_MUL] > MAX_MUL || f[IF_DIV] < 1) {
            PyErr_SetString(PyExc_ValueError, "scan: bad timestamp scale in the interface table");
            goto done;
        }
    }
    for (; nviews < NCOLS; nviews++) {
        if (get_buf(PyTuple_GET_ITEM(cols_o, nviews), &views[nviews], 1, COLS[nviews].name) < 0)
            goto done;
        Py_ssize_t need;
        switch (COLS[nviews].kind) {
        case 'o': need = (rows + 1) * 4; break;
        case 'd': need = st[S_DCAP]; break;
        case 'v': need = (rows + 7) / 8; break;
        default: need = rows * COLS[nviews].width;
        }
        if (views[nviews].len < need) {
            PyErr_Format(PyExc_ValueError, "scan: column %s too short", COLS[nviews].name);
            nviews++;
            goto done;
        }
        c.p[nviews] = (uint8_t *)views[nviews].buf;
    }
    int64_t nif = ifc.len / (Py_ssize_t)(IF_W * sizeof(int64_t));
    guard_install();
    {
        sigjmp_buf jb;
        volatile int vrc = ST_FAULT;
        Py_BEGIN_ALLOW_THREADS
        if (sigsetjmp(jb, 1) == 0) {
            fault_jmp = &jb;
            if (kind == K_PCAP)
                vrc = scan_pcap((const uint8_t *)chunk.buf, st, (int64_t *)ifc.buf, nif, &c);
            else
                vrc = scan_pcapng((const uint8_t *)chunk.buf, st, (int64_t *)ifc.buf, nif, &c);
        }
        fault_jmp = NULL;
        Py_END_ALLOW_THREADS
        rc = vrc;
    }
done:
    for (int i = 0; i < nviews; i++) PyBuffer_Release(&views[i]);
    PyBuffer_Release(&chunk);
    PyBuffer_Release(&state);
    PyBuffer_Release(&ifc);
    if (rc < 0) return NULL;
    return PyLong_FromLong(rc);
}

/* flow_keys(proto, src_ip, src_port, dst_ip, dst_port, vlan, out_key, out_dir): the flow_key /
 * flow_dir of the scanner for whole columns (numpy u1, u1[n*16], u2, u1[n*16], u2, i4, u8, u1),
 * for the flow layer when it changes ports (later IP fragments). */
static PyObject *py_flow_keys(PyObject *self, PyObject *args)
{
    PyObject *o[8];
    Py_buffer v[8];
    static const int width[8] = {1, 16, 2, 16, 2, 4, 8, 1};
    int n = 0;
    Py_ssize_t rows = -1;
    PyObject *ret = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7]))
        return NULL;
    for (; n < 8; n++) {
        if (get_buf(o[n], &v[n], n >= 6, "flow_keys argument") < 0) goto done;
        Py_ssize_t r = v[n].len / width[n];
        if (rows < 0 || r < rows) rows = r;
    }
    {
        const uint8_t *proto = v[0].buf, *src = v[1].buf, *dst = v[3].buf;
        const uint16_t *sp = v[2].buf, *dp = v[4].buf;
        const int32_t *vlan = v[5].buf;
        uint64_t *key = v[6].buf;
        uint8_t *dir = v[7].buf;
        for (Py_ssize_t i = 0; i < rows; i++)
            key[i] = flow_hash(proto[i], src + 16 * i, sp[i], dst + 16 * i, dp[i], vlan[i], &dir[i]);
    }
    ret = PyLong_FromSsize_t(rows);
done:
    for (int i = 0; i < n; i++) PyBuffer_Release(&v[i]);
    return ret;
}

/* set_flow_seed(seed) -> the previous seed: fixes the flow hash's seed (tests). The flow_key
 * column is meaningful within one process only. */
static PyObject *py_set_flow_seed(PyObject *self, PyObject *arg)
{
    (void)self;
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (seed == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    uint64_t old = hash_seed;
    set_seed((uint64_t)seed);
    return PyLong_FromUnsignedLongLong(old);
}

/* take(buffer, start, n) -> bytes, or None when reading them faulted (a mapped file that
 * shrank): buffer[start:start + n], copied under the SIGBUS guard. */
static PyObject *py_take(PyObject *self, PyObject *args)
{
    PyObject *obj;
    Py_buffer b;
    Py_ssize_t start, n;
    (void)self;
    if (!PyArg_ParseTuple(args, "Onn", &obj, &start, &n)) return NULL;
    if (get_buf(obj, &b, 0, "buffer") < 0) return NULL;
    if (start < 0 || n < 0 || start > b.len || n > b.len - start) {
        PyBuffer_Release(&b);
        return PyErr_Format(PyExc_ValueError, "take: %zd bytes at %zd are out of range", n, start);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (!out) {
        PyBuffer_Release(&b);
        return NULL;
    }
    volatile int ok = 0;
    sigjmp_buf jb;
    guard_install();
    if (sigsetjmp(jb, 1) == 0) {
        fault_jmp = &jb;
        memcpy(PyBytes_AS_STRING(out), (const char *)b.buf + start, (size_t)n);
        ok = 1;
    }
    fault_jmp = NULL;
    PyBuffer_Release(&b);
    if (!ok) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    return out;
}

static PyObject *ip_bytes(const uint8_t *a) { return PyBytes_FromStringAndSize((const char *)a, 16); }

/* decode_one(record: bytes, linktype: int) -> dict: one record through pc_decode, for tests. */
static PyObject *py_decode_one(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    unsigned int linktype;
    pc_pkt o;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*I", &buf, &linktype)) return NULL;
    pc_decode((const uint8_t *)buf.buf, (uint32_t)buf.len, linktype, &o);
    PyObject *payload = PyBytes_FromStringAndSize(
        (const char *)buf.buf + (o.payload_caplen ? o.payload_off : 0), o.payload_caplen);
    PyBuffer_Release(&buf);
    return Py_BuildValue(
        "{s:B,s:i,s:i,s:i,s:B,s:I,s:N,s:N,s:B,s:N,s:N,s:B,s:H,s:H,s:B,s:I,s:B,s:I,s:I,s:N}",
        "status", o.status, "vlan", o.vlan, "vlan_inner", o.vlan_inner, "mpls", o.mpls,
        "tunnel", o.tunnel, "tunnel_id", o.tunnel_id,
        "outer_src", o.has_outer ? ip_bytes(o.outer_src) : Py_NewRef(Py_None),
        "outer_dst", o.has_outer ? ip_bytes(o.outer_dst) : Py_NewRef(Py_None),
        "ip_version", o.ip_version,
        "src_ip", ip_bytes(o.src_ip), "dst_ip", ip_bytes(o.dst_ip),
        "proto", o.proto, "src_port", o.src_port, "dst_port", o.dst_port,
        "tcp_flags", o.tcp_flags, "tcp_seq", o.tcp_seq, "frag", o.frag, "ip_id", o.ip_id,
        "payload_len", o.payload_len, "payload", payload);
}

static PyMethodDef methods[] = {
    {"decode_one", py_decode_one, METH_VARARGS, "Decode one record (tests and the slow path)."},
    {"scan", py_scan, METH_VARARGS,
     "scan(kind, chunk, state, ifaces, columns) -> stop code: records of a chunk -> batch rows."},
    {"take", py_take, METH_VARARGS,
     "take(buffer, start, n) -> bytes, or None when the read faulted (a mapped file shrank)."},
    {"set_flow_seed", py_set_flow_seed, METH_O,
     "set_flow_seed(seed) -> previous seed: fix the flow hash's seed (random by default)."},
    {"flow_keys", py_flow_keys, METH_VARARGS,
     "flow_keys(proto, src_ip, src_port, dst_ip, dst_port, vlan, out_key, out_dir) -> rows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_fast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fast(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        /* no entropy yet (early boot): still differs per process and run */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        seed = ((uint64_t)now.tv_sec << 32) ^ (uint64_t)now.tv_nsec ^ ((uint64_t)getpid() << 16) ^
               (uint64_t)(uintptr_t)&seed;
    }
    set_seed(seed);
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    static const struct { const char *name; long value; } consts[] = {
        {"MAX_CAPLEN", MAX_CAPLEN}, {"MAX_BLOCK", MAX_BLOCK}, {"HEAD_TLS", HEAD_TLS},
        {"HEAD_TEXT", HEAD_TEXT}, {"HEAD_OTHER", HEAD_OTHER},
        {"K_PCAP", K_PCAP}, {"K_PCAPNG", K_PCAPNG},
        {"ST_FULL", ST_FULL}, {"ST_NEED", ST_NEED}, {"ST_BLOCK", ST_BLOCK}, {"ST_BAD", ST_BAD},
        {"ST_BADSKIP", ST_BADSKIP}, {"ST_FAULT", ST_FAULT}, {"MAX_ROWS", MAX_ROWS},
        {"BAD_CAPLEN", BAD_CAPLEN}, {"BAD_BLOCKLEN", BAD_BLOCKLEN}, {"BAD_TRAILER", BAD_TRAILER},
        {"BAD_IFACE", BAD_IFACE}, {"BAD_SHORT_BLOCK", BAD_SHORT_BLOCK},
        {"BAD_CAPLEN_BLOCK", BAD_CAPLEN_BLOCK},
        {"S_POS", S_POS}, {"S_END", S_END}, {"S_ROW", S_ROW}, {"S_ROWCAP", S_ROWCAP},
        {"S_FRAME", S_FRAME}, {"S_DUSED", S_DUSED}, {"S_DCAP", S_DCAP}, {"S_SWAP", S_SWAP},
        {"S_NEED", S_NEED}, {"S_BYTES", S_BYTES}, {"S_TSMIN", S_TSMIN}, {"S_TSMAX", S_TSMAX},
        {"S_BADCODE", S_BADCODE}, {"S_BADVAL", S_BADVAL}, {"S_BADPOS", S_BADPOS},
        {"S_QUIET", S_QUIET}, {"S_NULLS", S_NULLS}, {"S_STATUS", S_STATUS},
        {"S_SKIP", S_SKIP}, {"NSKIP", NSKIP}, {"S_LEN", S_LEN},
        {"IF_LT", IF_LT}, {"IF_SNAP", IF_SNAP}, {"IF_MUL", IF_MUL}, {"IF_DIV", IF_DIV},
        {"IF_OFF", IF_OFF}, {"IF_PKTS", IF_PKTS}, {"IF_W", IF_W},
    };
    for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++)
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0) goto fail;
    PyObject *cols = PyTuple_New(NCOLS);
    if (!cols) goto fail;
    for (int i = 0; i < NCOLS; i++) {
        PyObject *t = Py_BuildValue("(ssCi)", COLS[i].name, COLS[i].dtype, COLS[i].kind,
                                    COLS[i].width);
        if (!t) { Py_DECREF(cols); goto fail; }
        PyTuple_SET_ITEM(cols, i, t);
    }
    if (PyModule_AddObject(m, "COLUMNS", cols) < 0) { Py_DECREF(cols); goto fail; }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
