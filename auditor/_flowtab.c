/* The flow table's inner loop: packets (in capture order) -> flow index, and per-flow
 * counters, in one pass with an open-addressing hash table on the reader's 64-bit flow key.
 *
 * Why C: this is the one inherently sequential step of the data path (a TCP pure SYN after
 * a FIN or RST of the same 5-tuple starts a new flow, so a packet's flow depends on the
 * packets before it). Done with numpy it took a sort and a dozen passes per batch; here it is
 * one loop. Python keeps everything else: endpoints of new flows, payload heads for the
 * classifier, directions, the final table (auditor/flows/__init__.py).
 *
 * FlowTable.add(key, dir, ts, wire, pay, flags, seq, proto, status, src_ip, dst_ip,
 *               src_port, dst_port, out_flow, out_flag)
 *   -> new flows. key u64, dir u8, ts i64, wire u32, pay u32, flags u8, seq u32, proto u8,
 *   status u8 (0 = use the row), src_ip/dst_ip u8[16 n], src_port/dst_port u16: columns of
 *   one batch. A pure SYN after a FIN or RST starts a new flow unless it repeats the flow's
 *   first SYN sequence number (a retransmission). out_flow (i64) receives each row's flow
 *   index (-1 for rows skipped); out_flag (u8) receives bit 1 when the row opened a new flow
 *   and bit 2 when the row carries payload and is among the first HEADS payload packets of
 *   its flow direction (the classifier's input).
 *
 * The key is only a hash (the reader's seeded flow hash); what identifies a flow is its
 * full key: protocol and both (address, port) endpoints in canonical order (dir = 0: src
 * is the lower end; ICMP/ICMPv6 with ports 0, as the hash). A slot matches a row only when
 * hash and full key are equal, so two conversations whose hashes collide stay two flows.
 * FlowTable(hash_bits=64): a test hook keeping only the low hash_bits bits of every key,
 * to force collisions.
 * add() runs without the GIL; a second call on the same table meanwhile raises RuntimeError.
 * FlowTable.export([rows]) -> dict of name -> bytes (per-flow arrays, length n_flows, or
 *   of the flows at the int64 indices `rows`; lo and hi: 16 bytes a flow, the endpoints).
 *   Also plo/phi/kproto (the full key's ports and protocol), syn_seq, and open_syn/open_seq
 *   (the flow's first packet was a pure SYN, its sequence number): what the spill's merge
 *   of a flow's segments needs (auditor/flows/spill.py).
 * FlowTable.compact(keep): drop the flows whose byte in `keep` is 0 (the spill evicts them).
 * FlowTable.clear(): forget every flow and free the memory.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define HEADS 4
#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_ACK 0x10

/* A slot: 8 bytes. tag is the low 32 bits of mix(key) (the slot's home is tag & (nslots - 1),
 * so growing needs no flow), a filter before the flow's key and full key are compared;
 * flow is the flow index + 1, 0 for an empty slot (at most 2^32 - 2 flows). */
typedef struct {
    uint32_t tag;
    uint32_t flow;
} slot_t;
#define MAX_FLOWS 0xFFFFFFFEu

typedef struct {
    uint64_t key;
    uint8_t lo[16], hi[16]; /* the full key: canonical endpoints, protocol */
    uint16_t plo, phi;
    uint8_t proto;
    int64_t first_ts, last_ts;
    int64_t pkts[2], bytes[2], pay[2];
    uint8_t flags[2];
    int8_t syn_dir, synack_dir, first_dir;
    uint8_t closed;
    uint8_t has_syn;
    uint8_t got[2];
    uint32_t syn_seq;
    uint8_t open_syn;  /* the flow's first packet was a TCP pure SYN (the spill's merge) */
    uint32_t open_seq; /* ... with this sequence number */
} flow_t;

typedef struct {
    PyObject_HEAD
    slot_t *slots;
    size_t nslots; /* power of two */
    size_t used;
    flow_t *flows;
    size_t nflows, capflows;
    uint64_t key_mask; /* all ones, unless the hash_bits test hook narrows it */
    int busy; /* add() is running without the GIL: no other call may touch the table */
} FlowTable;

static int not_busy(FlowTable *t)
{
    if (!t->busy) return 1;
    PyErr_SetString(PyExc_RuntimeError, "FlowTable used from two threads at once");
    return 0;
}

/* a + b, saturating at INT64_MAX (a >= 0): byte counters never wrap */
static inline int64_t add_sat(int64_t a, uint32_t b)
{
    return a > INT64_MAX - (int64_t)b ? INT64_MAX : a + (int64_t)b;
}

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static int grow_slots(FlowTable *t)
{
    size_t n = t->nslots ? t->nslots * 2 : 1 << 16;
    if (n > ((size_t)1 << 32)) return -1; /* the tag holds the home of 2^32 slots at most */
    slot_t *s = calloc(n, sizeof(slot_t));
    if (!s) return -1;
    for (size_t i = 0; i < t->nslots; i++) {
        if (!t->slots[i].flow) continue;
        size_t j = t->slots[i].tag & (n - 1);
        while (s[j].flow) j = (j + 1) & (n - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->nslots = n;
    return 0;
}

/* The full key of one row, in canonical order. */
typedef struct {
    const uint8_t *lo, *hi;
    uint16_t plo, phi;
    uint8_t proto;
} fkey_t;

static inline int same_flow(const flow_t *f, const fkey_t *k)
{
    return f->plo == k->plo && f->phi == k->phi && f->proto == k->proto &&
           memcmp(f->lo, k->lo, 16) == 0 && memcmp(f->hi, k->hi, 16) == 0;
}

/* The slot of the flow with this hash and full key, or the empty slot where it would go
   (linear probing; the tag filters before the full key is compared). */
static inline size_t find_slot(const FlowTable *t, uint32_t tag, uint64_t key, const fkey_t *fk)
{
    size_t j = tag & (t->nslots - 1);
    for (;; j = (j + 1) & (t->nslots - 1)) {
        const slot_t *sl = &t->slots[j];
        if (!sl->flow) return j;
        if (sl->tag != tag) continue;
        const flow_t *g = &t->flows[sl->flow - 1];
        if (g->key == key && same_flow(g, fk)) return j;
    }
}

static int64_t new_flow(FlowTable *t, uint64_t key, const fkey_t *fk, int64_t ts, int dir)
{
    if (t->nflows >= MAX_FLOWS) return -1;
    if (t->nflows == t->capflows) {
        size_t cap = t->capflows ? t->capflows * 2 : 4096;
        flow_t *f = realloc(t->flows, cap * sizeof(flow_t));
        if (!f) return -1;
        t->flows = f;
        t->capflows = cap;
    }
    flow_t *f = &t->flows[t->nflows];
    memset(f, 0, sizeof(*f));
    f->key = key;
    memcpy(f->lo, fk->lo, 16);
    memcpy(f->hi, fk->hi, 16);
    f->plo = fk->plo;
    f->phi = fk->phi;
    f->proto = fk->proto;
    f->first_ts = ts;
    f->last_ts = ts;
    f->syn_dir = f->synack_dir = -1;
    f->first_dir = (int8_t)dir;
    return (int64_t)t->nflows++;
}

static int FlowTable_init(FlowTable *t, PyObject *args, PyObject *kw)
{
    static char *names[] = {"hash_bits", NULL};
    int bits = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|i", names, &bits)) return -1;
    if (bits < 1 || bits > 64) {
        PyErr_SetString(PyExc_ValueError, "hash_bits must be 1 to 64");
        return -1;
    }
    if (!not_busy(t)) return -1;
    if (t->nflows) {
        PyErr_SetString(PyExc_RuntimeError, "FlowTable already holds flows");
        return -1;
    }
    t->key_mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
    return 0;
}

static void FlowTable_dealloc(FlowTable *t)
{
    free(t->slots);
    free(t->flows);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

typedef struct {
    Py_buffer b;
    int ok;
} buf_t;

static int get(PyObject *o, buf_t *b, Py_ssize_t itemsize, Py_ssize_t n, int writable)
{
    if (PyObject_GetBuffer(o, &b->b, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) return -1;
    b->ok = 1;
    if (b->b.len < itemsize * n) {
        PyErr_SetString(PyExc_ValueError, "column shorter than the key column");
        return -1;
    }
    return 0;
}

static PyObject *FlowTable_add(FlowTable *t, PyObject *args)
{
    enum { NARGS = 15, NOUT = 13 };
    PyObject *o[NARGS];
    buf_t b[NARGS];
    static const Py_ssize_t size[NARGS] = {8, 1, 8, 4, 4, 1, 4, 1, 1, 16, 16, 2, 2, 8, 1};
    memset(b, 0, sizeof(b));
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &o[8], &o[9], &o[10], &o[11], &o[12], &o[13], &o[14]))
        return NULL;
    PyObject *ret = NULL;
    if (get(o[0], &b[0], 1, 0, 0) < 0) goto done;
    Py_ssize_t n = b[0].b.len / 8;
    for (int i = 1; i < NARGS; i++)
        if (get(o[i], &b[i], size[i], n, i >= NOUT) < 0) goto done;
    const uint64_t *key = b[0].b.buf;
    const uint8_t *dir = b[1].b.buf;
    const int64_t *ts = b[2].b.buf;
    const uint32_t *wire = b[3].b.buf, *pay = b[4].b.buf;
    const uint8_t *flags = b[5].b.buf;
    const uint32_t *seq = b[6].b.buf;
    const uint8_t *proto = b[7].b.buf, *status = b[8].b.buf;
    const uint8_t *src = b[9].b.buf, *dst = b[10].b.buf;
    const uint16_t *sport = b[11].b.buf, *dport = b[12].b.buf;
    int64_t *out = b[13].b.buf;
    uint8_t *flag = b[14].b.buf;
    const uint64_t mask = t->key_mask;
    Py_ssize_t created = 0;
    int nomem = 0;
    if (!not_busy(t)) goto done;
    t->busy = 1;
    Py_BEGIN_ALLOW_THREADS /* the loop touches only the table and the held buffers */
    for (Py_ssize_t i = 0; i < n; i++) {
        flag[i] = 0;
        if (status[i]) {
            out[i] = -1;
            continue;
        }
        if ((t->used + 1) * 2 > t->nslots && grow_slots(t) < 0) {
            nomem = 1;
            break;
        }
        uint64_t k = key[i] & mask;
        int d = dir[i] ? 1 : 0;
        fkey_t fk;
        fk.proto = proto[i];
        fk.lo = d ? dst + 16 * i : src + 16 * i;
        fk.hi = d ? src + 16 * i : dst + 16 * i;
        if (fk.proto == 1 || fk.proto == 58) {
            fk.plo = fk.phi = 0;
        } else {
            fk.plo = d ? dport[i] : sport[i];
            fk.phi = d ? sport[i] : dport[i];
        }
        uint32_t tag = (uint32_t)mix(k);
        size_t j = find_slot(t, tag, k, &fk);
        int tcp = proto[i] == 6;
        uint8_t fl = flags[i];
        int pure_syn = tcp && (fl & (F_SYN | F_ACK)) == F_SYN;
        int64_t fi = (int64_t)t->slots[j].flow - 1;
        if (fi < 0 || (pure_syn && t->flows[fi].closed &&
                       !(t->flows[fi].has_syn && t->flows[fi].syn_seq == seq[i]))) {
            fi = new_flow(t, k, &fk, ts[i], d);
            if (fi < 0) {
                nomem = 1;
                break;
            }
            if (!t->slots[j].flow) t->used++;
            t->slots[j].tag = tag;
            t->slots[j].flow = (uint32_t)(fi + 1);
            flag[i] |= 1;
            created++;
            t->flows[fi].open_syn = (uint8_t)pure_syn;
            t->flows[fi].open_seq = seq[i];
        }
        flow_t *f = &t->flows[fi];
        out[i] = fi;
        f->pkts[d]++;
        f->bytes[d] = add_sat(f->bytes[d], wire[i]);
        f->pay[d] = add_sat(f->pay[d], pay[i]);
        if (ts[i] < f->first_ts) f->first_ts = ts[i];
        if (ts[i] > f->last_ts) f->last_ts = ts[i];
        if (tcp) {
            f->flags[d] |= fl;
            if (pure_syn && f->syn_dir < 0) f->syn_dir = (int8_t)d;
            if (pure_syn && !f->has_syn) {
                f->has_syn = 1;
                f->syn_seq = seq[i];
            }
            if ((fl & (F_SYN | F_ACK)) == (F_SYN | F_ACK) && f->synack_dir < 0)
                f->synack_dir = (int8_t)d;
            if (fl & (F_FIN | F_RST)) f->closed = 1;
        }
        if (pay[i] && f->got[d] < HEADS) {
            f->got[d]++;
            flag[i] |= 2;
        }
    }
    Py_END_ALLOW_THREADS
    t->busy = 0;
    if (nomem) {
        PyErr_NoMemory();
        goto done;
    }
    ret = PyLong_FromSsize_t(created);
done:
    for (int i = 0; i < NARGS; i++)
        if (b[i].ok) PyBuffer_Release(&b[i].b);
    return ret;
}

/* Per-flow arrays as bytes objects (numpy.frombuffer on the Python side): of every flow, or
 * of the flows whose indices the optional int64 buffer `rows` holds (in its order). */
static PyObject *FlowTable_export(FlowTable *t, PyObject *args)
{
    PyObject *rows_o = Py_None;
    if (!PyArg_ParseTuple(args, "|O", &rows_o) || !not_busy(t)) return NULL;
    Py_buffer rb;
    const int64_t *rows = NULL;
    size_t n = t->nflows;
    if (rows_o != Py_None) {
        if (PyObject_GetBuffer(rows_o, &rb, PyBUF_C_CONTIGUOUS) < 0) return NULL;
        rows = rb.buf;
        n = (size_t)rb.len / sizeof(int64_t);
        for (size_t i = 0; i < n; i++)
            if (rows[i] < 0 || (size_t)rows[i] >= t->nflows) {
                PyBuffer_Release(&rb);
                PyErr_SetString(PyExc_IndexError, "flow index out of range");
                return NULL;
            }
    }
    PyObject *d = PyDict_New();
    if (!d) goto fail;
#define COL(name, type, expr)                                                             \
    do {                                                                                  \
        PyObject *bb = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * sizeof(type)));   \
        if (!bb) goto fail;                                                               \
        type *p = (type *)PyBytes_AS_STRING(bb);                                          \
        for (size_t i = 0; i < n; i++) {                                                  \
            const flow_t *f = &t->flows[rows ? (size_t)rows[i] : i];                      \
            p[i] = (type)(expr);                                                          \
        }                                                                                 \
        if (PyDict_SetItemString(d, name, bb) < 0) {                                      \
            Py_DECREF(bb);                                                                \
            goto fail;                                                                    \
        }                                                                                 \
        Py_DECREF(bb);                                                                    \
    } while (0)
    COL("key", uint64_t, f->key);
    COL("first_ts", int64_t, f->first_ts);
    COL("last_ts", int64_t, f->last_ts);
    COL("pkts0", int64_t, f->pkts[0]);
    COL("pkts1", int64_t, f->pkts[1]);
    COL("bytes0", int64_t, f->bytes[0]);
    COL("bytes1", int64_t, f->bytes[1]);
    COL("pay0", int64_t, f->pay[0]);
    COL("pay1", int64_t, f->pay[1]);
    COL("flags0", uint8_t, f->flags[0]);
    COL("flags1", uint8_t, f->flags[1]);
    COL("syn_dir", int8_t, f->syn_dir);
    COL("synack_dir", int8_t, f->synack_dir);
    COL("first_dir", int8_t, f->first_dir);
    COL("closed", uint8_t, f->closed);
    COL("got0", uint8_t, f->got[0]);
    COL("got1", uint8_t, f->got[1]);
    COL("plo", uint16_t, f->plo);
    COL("phi", uint16_t, f->phi);
    COL("kproto", uint8_t, f->proto);
    COL("syn_seq", uint32_t, f->syn_seq);
    COL("open_syn", uint8_t, f->open_syn);
    COL("open_seq", uint32_t, f->open_seq);
#undef COL
    for (int side = 0; side < 2; side++) { /* the endpoint addresses, 16 bytes each */
        PyObject *bb = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * 16));
        if (!bb) goto fail;
        uint8_t *p = (uint8_t *)PyBytes_AS_STRING(bb);
        for (size_t i = 0; i < n; i++) {
            const flow_t *f = &t->flows[rows ? (size_t)rows[i] : i];
            memcpy(p + 16 * i, side ? f->hi : f->lo, 16);
        }
        int rc = PyDict_SetItemString(d, side ? "hi" : "lo", bb);
        Py_DECREF(bb);
        if (rc < 0) goto fail;
    }
    if (rows) PyBuffer_Release(&rb);
    return d;
fail:
    if (rows) PyBuffer_Release(&rb);
    Py_XDECREF(d);
    return NULL;
}

/* clear(): forget every flow and free the memory (the table can be filled again). */
static PyObject *FlowTable_clear(FlowTable *t, PyObject *unused)
{
    (void)unused;
    if (!not_busy(t)) return NULL;
    free(t->slots);
    free(t->flows);
    t->slots = NULL;
    t->flows = NULL;
    t->nslots = t->used = t->nflows = t->capflows = 0;
    Py_RETURN_NONE;
}

/* compact(keep): keep only the flows whose byte in `keep` (n_flows bytes) is not 0, in their
 * order (flow i becomes the number of kept flows before it), and rebuild the slots. A full
 * key held by several flows (a port reused after a close) finds the last of them, as before.
 * Returns the number of flows kept. */
static PyObject *FlowTable_compact(FlowTable *t, PyObject *args)
{
    Py_buffer kb;
    if (!PyArg_ParseTuple(args, "y*", &kb)) return NULL;
    if (!not_busy(t)) {
        PyBuffer_Release(&kb);
        return NULL;
    }
    if ((size_t)kb.len != t->nflows) {
        PyBuffer_Release(&kb);
        PyErr_SetString(PyExc_ValueError, "compact: keep must have one byte a flow");
        return NULL;
    }
    const uint8_t *keep = kb.buf;
    size_t m = 0;
    for (size_t i = 0; i < t->nflows; i++)
        if (keep[i]) {
            if (m != i) t->flows[m] = t->flows[i];
            m++;
        }
    PyBuffer_Release(&kb);
    t->nflows = m;
    if (t->nslots) memset(t->slots, 0, t->nslots * sizeof(slot_t));
    t->used = 0;
    for (size_t i = 0; i < m; i++) {
        const flow_t *f = &t->flows[i];
        uint32_t tag = (uint32_t)mix(f->key);
        fkey_t fk = {f->lo, f->hi, f->plo, f->phi, f->proto};
        size_t j = find_slot(t, tag, f->key, &fk);
        if (!t->slots[j].flow) t->used++;
        t->slots[j].tag = tag;
        t->slots[j].flow = (uint32_t)(i + 1);
    }
    return PyLong_FromSize_t(m);
}

static PyObject *FlowTable_len(FlowTable *t, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(t->nflows);
}

static PyMethodDef FlowTable_methods[] = {
    {"add", (PyCFunction)FlowTable_add, METH_VARARGS, "Assign a batch's rows to flows."},
    {"export", (PyCFunction)FlowTable_export, METH_VARARGS,
     "Per-flow arrays as bytes (of the flows in the optional int64 array `rows`)."},
    {"clear", (PyCFunction)FlowTable_clear, METH_NOARGS, "Forget every flow, free the memory."},
    {"compact", (PyCFunction)FlowTable_compact, METH_VARARGS,
     "Keep only the flows whose byte in `keep` is not 0; rebuild the slots."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef FlowTable_getset[] = {
    {"n_flows", (getter)FlowTable_len, NULL, "number of flows", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FlowTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "auditor._flowtab.FlowTable",
    .tp_basicsize = sizeof(FlowTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FlowTable_init,
    .tp_dealloc = (destructor)FlowTable_dealloc,
    .tp_methods = FlowTable_methods,
    .tp_getset = FlowTable_getset,
    .tp_doc = "Packets -> flows: hash table on the flow key, port reuse, per-flow counters.",
};


/* collect_heads(store, done, flow, dir, pay, flag, offsets, data) -> rows collected.
 *
 * The classifier's input, gathered at C speed: for every row whose flag has bit 2 (a head,
 * see add()), append (dir, head bytes, payload length) to store[flow] (a list), creating the
 * list unless the flow is already in `done` (classified: its later heads are not needed).
 * flow i64, dir u8, pay u32, flag u8: columns of one batch; offsets i32 (n + 1) and data:
 * the batch's binary payload column. */
static PyObject *collect_heads(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *store, *done, *o[6];
    Py_buffer b[6];
    int got = 0;
    PyObject *ret = NULL;
    if (!PyArg_ParseTuple(args, "O!OOOOOOO", &PyDict_Type, &store, &done, &o[0], &o[1], &o[2],
                          &o[3], &o[4], &o[5]))
        return NULL;
    for (; got < 6; got++)
        if (PyObject_GetBuffer(o[got], &b[got], PyBUF_C_CONTIGUOUS) < 0) goto done;
    Py_ssize_t n = b[0].len / 8;
    if (b[1].len < n || b[2].len < 4 * n || b[3].len < n || b[4].len < 4 * (n + 1)) {
        PyErr_SetString(PyExc_ValueError, "collect_heads: columns of different lengths");
        goto done;
    }
    const int64_t *flow = b[0].buf;
    const uint8_t *dir = b[1].buf, *flag = b[3].buf;
    const uint32_t *pay = b[2].buf;
    const int32_t *off = b[4].buf;
    const char *data = b[5].buf;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!(flag[i] & 2)) continue;
        if (off[i] < 0 || off[i + 1] < off[i] || off[i + 1] > b[5].len) {
            PyErr_SetString(PyExc_ValueError, "collect_heads: payload offsets out of range");
            goto done;
        }
        PyObject *key = PyLong_FromLongLong(flow[i]);
        if (!key) goto done;
        PyObject *lst = PyDict_GetItemWithError(store, key); /* borrowed */
        if (!lst) {
            if (PyErr_Occurred()) {
                Py_DECREF(key);
                goto done;
            }
            int seen = PySequence_Contains(done, key);
            if (seen != 0) {
                Py_DECREF(key);
                if (seen < 0) goto done;
                continue;
            }
        }
        PyObject *item = Py_BuildValue("(iy#I)", dir[i] ? 1 : 0, data + off[i],
                                       (Py_ssize_t)(off[i + 1] - off[i]), pay[i]);
        if (!item) {
            Py_DECREF(key);
            goto done;
        }
        int rc;
        if (lst) {
            rc = PyList_Append(lst, item);
        } else {
            PyObject *nl = PyList_New(1);
            if (!nl) {
                Py_DECREF(item);
                Py_DECREF(key);
                goto done;
            }
            Py_INCREF(item);
            PyList_SET_ITEM(nl, 0, item);
            rc = PyDict_SetItem(store, key, nl);
            Py_DECREF(nl);
        }
        Py_DECREF(item);
        Py_DECREF(key);
        if (rc < 0) goto done;
        count++;
    }
    ret = PyLong_FromSsize_t(count);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return ret;
}

/* release_free_memory(): give the C heap's free pages back to the system (glibc keeps them
 * otherwise; DuckDB allocates with its own allocator and would not reuse them). */
static PyObject *release_free_memory(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
#ifdef __GLIBC__
    Py_BEGIN_ALLOW_THREADS
    malloc_trim(0);
    Py_END_ALLOW_THREADS
#endif
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"release_free_memory", release_free_memory, METH_NOARGS,
     "Give the C heap's free pages back to the system (glibc: malloc_trim)."},
    {"collect_heads", collect_heads, METH_VARARGS,
     "Append each head row's (dir, head, payload_len) to store[flow]."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_flowtab", NULL, -1, module_methods};

PyMODINIT_FUNC PyInit__flowtab(void)
{
    if (PyType_Ready(&FlowTableType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    Py_INCREF(&FlowTableType);
    if (PyModule_AddObject(m, "FlowTable", (PyObject *)&FlowTableType) < 0) {
        Py_DECREF(&FlowTableType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "HEADS", HEADS) < 0) return NULL;
    return m;
}
