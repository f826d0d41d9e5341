/* Flow identifiers for a whole flow table in one call: the Community ID v1 of each flow
 * (https://github.com/corelight/community-id-spec) and pcap-audit's flow id.
 *
 * Why C: both are a hash per flow, and done in Python (hashlib, struct, base64, a string
 * per step) they cost ~5 us a flow, a tenth of a second on a capture of 20k flows. Here
 * they are SHA-1 and BLAKE2b written out (the algorithms of FIPS 180-4 and RFC 7693; the
 * inputs are a few dozen bytes, so no streaming API is needed) in one loop.
 * auditor/community_id.py keeps the reference Python version, and the tests check the two
 * against each other and against the `communityid` package.
 *
 * identify(proto u8[n], src u8[n*16], dst u8[n*16], sport u16[n], dport u16[n],
 *          first_ts i64[n]) -> (community_ids: list[str], flow_ids: list[str])
 *   Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6; for ICMP/ICMPv6 sport is the type
 *   and dport the code. flow id = "F" + hex(BLAKE2b-64("<community id>|<first_ts>")).
 * ip_texts(addrs u8[n*16]) -> list[str]: each 16-byte address as text (inet_ntop), IPv4-mapped
 *   addresses as dotted quads; the same strings as auditor.flows.ip_text.
 * identify_buffers() and ip_text_buffers(): the same, as the buffers of Arrow string columns
 *   (fixed-width characters; offsets and characters), so that a flow table of millions of
 *   flows makes no Python string per flow.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- SHA-1 (FIPS 180-4), for messages up to 119 bytes (two blocks) ----------------- */

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint8_t buf[128];
    size_t blocks = len + 9 <= 64 ? 1 : 2;
    memset(buf, 0, sizeof(buf));
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) buf[blocks * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t b = 0; b < blocks; b++) sha1_block(h, buf + 64 * b);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

/* ---- BLAKE2b (RFC 7693), unkeyed, for messages up to 128 bytes (one block) ---------- */

static const uint64_t B2_IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t B2_SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static uint64_t ror64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

#define B2_G(a, b, c, d, x, y)         \
    do {                               \
        v[a] = v[a] + v[b] + (x);      \
        v[d] = ror64(v[d] ^ v[a], 32); \
        v[c] = v[c] + v[d];            \
        v[b] = ror64(v[b] ^ v[c], 24); \
        v[a] = v[a] + v[b] + (y);      \
        v[d] = ror64(v[d] ^ v[a], 16); \
        v[c] = v[c] + v[d];            \
        v[b] = ror64(v[b] ^ v[c], 63); \
    } while (0)

/* BLAKE2b with an `outlen`-byte digest of one final block of `len` <= 128 bytes. */
static void blake2b_short(const uint8_t *msg, size_t len, uint8_t *out, size_t outlen)
{
    uint64_t h[8], v[16], m[16];
    uint8_t block[128];
    memcpy(h, B2_IV, sizeof(h));
    h[0] ^= 0x01010000ULL ^ (uint64_t)outlen;
    memset(block, 0, sizeof(block));
    memcpy(block, msg, len);
    for (int i = 0; i < 16; i++) {
        uint64_t x = 0;
        for (int j = 7; j >= 0; j--) x = (x << 8) | block[8 * i + j];
        m[i] = x;
    }
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = B2_IV[i];
    }
    v[12] ^= (uint64_t)len; /* byte counter, low word */
    v[14] = ~v[14];         /* final block */
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = B2_SIGMA[r];
        B2_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        B2_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        B2_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        B2_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        B2_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        B2_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        B2_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        B2_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (size_t i = 0; i < outlen; i++) {
        uint64_t x = h[i / 8] ^ v[i / 8] ^ v[i / 8 + 8];
        out[i] = (uint8_t)(x >> (8 * (i % 8)));
    }
}

/* ---- Community ID ----------------------------------------------------------------- */

static int icmp_counterpart(int proto, int type)
{
    if (proto == 1) {
        switch (type) {
        case 8: return 0;
        case 0: return 8;
        case 13: return 14;
        case 14: return 13;
        case 15: return 16;
        case 16: return 15;
        case 10: return 9;
        case 9: return 10;
        case 17: return 18;
        case 18: return 17;
        }
    } else {
        switch (type) {
        case 128: return 129;
        case 129: return 128;
        case 133: return 134;
        case 134: return 133;
        case 135: return 136;
        case 136: return 135;
        case 130: return 131;
        case 131: return 130;
        case 144: return 145;
        case 145: return 144;
        }
    }
    return -1;
}

static const uint8_t V4_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* "1:" + base64(SHA-1(seed, saddr, daddr, proto, 0[, sport, dport])) into out (31 chars). */
static int community_id(int proto, const uint8_t *src16, const uint8_t *dst16, int sport,
                        int dport, char *out)
{
    const uint8_t *sa = src16, *da = dst16;
    int alen = 16;
    if (memcmp(src16, V4_PREFIX, 12) == 0) {
        sa += 12;
        da += 12;
        alen = 4;
    }
    int one_way = 0;
    if (proto == 1 || proto == 58) {
        int c = icmp_counterpart(proto, sport);
        if (c < 0)
            one_way = 1;
        else
            dport = c;
    }
    if (!one_way) {
        int cmp = memcmp(sa, da, (size_t)alen);
        if (cmp > 0 || (cmp == 0 && sport > dport)) {
            const uint8_t *t = sa;
            sa = da;
            da = t;
            int p = sport;
            sport = dport;
            dport = p;
        }
    }
    uint8_t msg[2 + 32 + 2 + 4];
    size_t n = 0;
    msg[n++] = 0; /* seed 0, big-endian */
    msg[n++] = 0;
    memcpy(msg + n, sa, (size_t)alen);
    n += (size_t)alen;
    memcpy(msg + n, da, (size_t)alen);
    n += (size_t)alen;
    msg[n++] = (uint8_t)proto;
    msg[n++] = 0;
    if (proto == 1 || proto == 6 || proto == 17 || proto == 58 || proto == 132) {
        msg[n++] = (uint8_t)(sport >> 8);
        msg[n++] = (uint8_t)sport;
        msg[n++] = (uint8_t)(dport >> 8);
        msg[n++] = (uint8_t)dport;
    }
    uint8_t d[21];
    sha1(msg, n, d);
    d[20] = 0;
    char *o = out;
    *o++ = '1';
    *o++ = ':';
    for (int i = 0; i < 21; i += 3) {
        uint32_t x = (uint32_t)d[i] << 16 | (uint32_t)(i + 1 < 21 ? d[i + 1] : 0) << 8 |
                     (i + 2 < 21 ? d[i + 2] : 0);
        *o++ = B64[(x >> 18) & 63];
        *o++ = B64[(x >> 12) & 63];
        *o++ = B64[(x >> 6) & 63];
        *o++ = B64[x & 63];
    }
    /* 20 bytes -> 27 characters and one '=' */
    out[2 + 27] = '=';
    out[2 + 28] = 0;
    return 2 + 28;
}

/* ---- identify() ------------------------------------------------------------------- */

static int getbuf(PyObject *o, Py_buffer *b, Py_ssize_t want)
{
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (b->len != want) {
        PyErr_Format(PyExc_ValueError, "column of %zd bytes, expected %zd", b->len, want);
        PyBuffer_Release(b);
        return -1;
    }
    return 0;
}

/* The identifiers of n flows without the GIL: community ids (30 chars each) into cbuf,
 * flow ids (17 chars each) into fbuf, and each flow id's 8 hash bytes as a big-endian
 * number into key (ordering keys the same as ordering the flow id strings). */
static void identify_into(Py_ssize_t n, const uint8_t *proto, const uint8_t *src,
                          const uint8_t *dst, const uint16_t *sport, const uint16_t *dport,
                          const int64_t *ts, char *cbuf, char *fbuf, uint64_t *key)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        char cid[40], text[80];
        community_id(proto[i], src + 16 * i, dst + 16 * i, sport[i], dport[i], cid);
        memcpy(cbuf + 30 * i, cid, 30);
        int klen = snprintf(text, sizeof(text), "%s|%lld", cid, (long long)ts[i]);
        uint8_t h[8];
        blake2b_short((const uint8_t *)text, (size_t)klen, h, 8);
        char *fid = fbuf + 17 * i;
        uint64_t k = 0;
        fid[0] = 'F';
        for (int j = 0; j < 8; j++) {
            fid[1 + 2 * j] = "0123456789abcdef"[h[j] >> 4];
            fid[2 + 2 * j] = "0123456789abcdef"[h[j] & 15];
            k = k << 8 | h[j];
        }
        if (key) key[i] = k;
    }
}

/* The six input columns of identify(): n rows, checked. */
typedef struct {
    Py_buffer b[6];
    int got;
    Py_ssize_t n;
} idargs_t;

static int idargs_get(PyObject *args, idargs_t *a)
{
    PyObject *o[6];
    a->got = 0;
    if (!PyArg_ParseTuple(args, "OOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5])) return -1;
    Py_buffer first;
    if (PyObject_GetBuffer(o[0], &first, PyBUF_C_CONTIGUOUS) < 0) return -1;
    a->n = first.len;
    PyBuffer_Release(&first);
    static const Py_ssize_t width[6] = {1, 16, 16, 2, 2, 8};
    for (; a->got < 6; a->got++)
        if (getbuf(o[a->got], &a->b[a->got], a->n * width[a->got]) < 0) return -1;
    return 0;
}

static void idargs_release(idargs_t *a)
{
    for (int i = 0; i < a->got; i++) PyBuffer_Release(&a->b[i]);
}

static PyObject *identify(PyObject *self, PyObject *args)
{
    (void)self;
    idargs_t a;
    PyObject *cids = NULL, *fids = NULL, *ret = NULL;
    if (idargs_get(args, &a) < 0) goto done;
    Py_ssize_t n = a.n;
    /* the hashing without the GIL (the caller may classify flows meanwhile), then the strings */
    char *cbuf = PyMem_RawMalloc((size_t)(n ? n : 1) * 30), *fbuf = PyMem_RawMalloc((size_t)(n ? n : 1) * 17);
    if (!cbuf || !fbuf) {
        PyMem_RawFree(cbuf);
        PyMem_RawFree(fbuf);
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    identify_into(n, a.b[0].buf, a.b[1].buf, a.b[2].buf, a.b[3].buf, a.b[4].buf, a.b[5].buf,
                  cbuf, fbuf, NULL);
    Py_END_ALLOW_THREADS
    cids = PyList_New(n);
    fids = PyList_New(n);
    for (Py_ssize_t i = 0; cids && fids && i < n; i++) {
        PyObject *c = PyUnicode_FromStringAndSize(cbuf + 30 * i, 30);
        PyObject *f = PyUnicode_FromStringAndSize(fbuf + 17 * i, 17);
        if (!c || !f) {
            Py_XDECREF(c);
            Py_XDECREF(f);
            Py_CLEAR(cids);
            break;
        }
        PyList_SET_ITEM(cids, i, c);
        PyList_SET_ITEM(fids, i, f);
    }
    PyMem_RawFree(cbuf);
    PyMem_RawFree(fbuf);
    if (!cids || !fids) goto done;
    ret = PyTuple_Pack(2, cids, fids);
done:
    idargs_release(&a);
    Py_XDECREF(cids);
    Py_XDECREF(fids);
    return ret;
}

/* identify_buffers(...same columns...) -> (community id chars: bytes of n * 30, flow id
 * chars: bytes of n * 17, sort keys: bytes of n uint64): the identifiers as fixed-width
 * character data (an Arrow string column without a Python string per flow). */
static PyObject *identify_buffers(PyObject *self, PyObject *args)
{
    (void)self;
    idargs_t a;
    PyObject *c = NULL, *f = NULL, *k = NULL, *ret = NULL;
    if (idargs_get(args, &a) < 0) goto done;
    Py_ssize_t n = a.n;
    c = PyBytes_FromStringAndSize(NULL, n * 30);
    f = PyBytes_FromStringAndSize(NULL, n * 17);
    k = PyBytes_FromStringAndSize(NULL, n * 8);
    if (!c || !f || !k) goto done;
    char *cb = PyBytes_AS_STRING(c), *fb = PyBytes_AS_STRING(f);
    uint64_t *kb = (uint64_t *)PyBytes_AS_STRING(k);
    Py_BEGIN_ALLOW_THREADS
    identify_into(n, a.b[0].buf, a.b[1].buf, a.b[2].buf, a.b[3].buf, a.b[4].buf, a.b[5].buf,
                  cb, fb, kb);
    Py_END_ALLOW_THREADS
    ret = PyTuple_Pack(3, c, f, k);
done:
    idargs_release(&a);
    Py_XDECREF(c);
    Py_XDECREF(f);
    Py_XDECREF(k);
    return ret;
}

/* Formats n 16-byte addresses into text (INET6_ADDRSTRLEN bytes a slot); returns the
 * total length, or -1 when inet_ntop failed. Runs without the GIL. */
static Py_ssize_t format_ips(const uint8_t *a, Py_ssize_t n, char *text)
{
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *p = a + 16 * i;
        char *t = text + (size_t)i * INET6_ADDRSTRLEN;
        if (!(memcmp(p, V4_PREFIX, 12) == 0 ? inet_ntop(AF_INET, p + 12, t, INET6_ADDRSTRLEN)
                                            : inet_ntop(AF_INET6, p, t, INET6_ADDRSTRLEN)))
            return -1;
        total += (Py_ssize_t)strlen(t);
    }
    return total;
}

static int addr_buf(PyObject *arg, Py_buffer *b)
{
    if (PyObject_GetBuffer(arg, b, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (b->len % 16) {
        PyBuffer_Release(b);
        PyErr_SetString(PyExc_ValueError, "addresses must be 16 bytes each");
        return -1;
    }
    return 0;
}

static PyObject *ip_texts(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer b;
    if (addr_buf(arg, &b) < 0) return NULL;
    Py_ssize_t n = b.len / 16, total;
    char *text = PyMem_RawMalloc((size_t)(n ? n : 1) * INET6_ADDRSTRLEN);
    if (!text) {
        PyBuffer_Release(&b);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS /* formatting without the GIL, then the strings */
    total = format_ips(b.buf, n, text);
    Py_END_ALLOW_THREADS
    PyObject *out = NULL;
    if (total < 0)
        PyErr_SetFromErrno(PyExc_OSError);
    else
        out = PyList_New(n);
    for (Py_ssize_t i = 0; out && i < n; i++) {
        PyObject *s = PyUnicode_FromString(text + (size_t)i * INET6_ADDRSTRLEN);
        if (!s) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, s);
    }
    PyMem_RawFree(text);
    PyBuffer_Release(&b);
    return out;
}

/* ip_text_buffers(addrs) -> (offsets: bytes of n + 1 int32, characters: bytes): the
 * addresses' text as the buffers of an Arrow string column. */
static PyObject *ip_text_buffers(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer b;
    if (addr_buf(arg, &b) < 0) return NULL;
    Py_ssize_t n = b.len / 16, total;
    char *text = PyMem_RawMalloc((size_t)(n ? n : 1) * INET6_ADDRSTRLEN);
    if (!text) {
        PyBuffer_Release(&b);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    total = format_ips(b.buf, n, text);
    Py_END_ALLOW_THREADS
    PyObject *off = NULL, *chars = NULL, *ret = NULL;
    if (total < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    if (total > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "ip_text_buffers: over 2 GiB of text");
        goto done;
    }
    off = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    chars = PyBytes_FromStringAndSize(NULL, total ? total : 0);
    if (!off || !chars) goto done;
    int32_t *o = (int32_t *)PyBytes_AS_STRING(off);
    char *c = PyBytes_AS_STRING(chars);
    int32_t at = 0;
    o[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *t = text + (size_t)i * INET6_ADDRSTRLEN;
        size_t len = strlen(t);
        memcpy(c + at, t, len);
        at += (int32_t)len;
        o[i + 1] = at;
    }
    ret = PyTuple_Pack(2, off, chars);
done:
    PyMem_RawFree(text);
    PyBuffer_Release(&b);
    Py_XDECREF(off);
    Py_XDECREF(chars);
    return ret;
}

static PyMethodDef methods[] = {
    {"identify", identify, METH_VARARGS,
     "identify(proto, src16, dst16, sport, dport, first_ts) -> (community_ids, flow_ids)"},
    {"identify_buffers", identify_buffers, METH_VARARGS,
     "identify_buffers(...) -> (community id chars n*30, flow id chars n*17, u64 sort keys)"},
    {"ip_texts", ip_texts, METH_O, "16-byte addresses -> their text (IPv4-mapped as IPv4)."},
    {"ip_text_buffers", ip_text_buffers, METH_O,
     "16-byte addresses -> (int32 offsets, characters) of their text as an Arrow column."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_flowid", NULL, -1, methods};

PyMODINIT_FUNC PyInit__flowid(void) { return PyModule_Create(&moddef); }
