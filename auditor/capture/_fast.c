/* The compiled hot path: find record boundaries in pcap/pcapng buffers and decode header
 * fields for whole batches at once into caller-provided column buffers.
 *
 * Python owns all memory (numpy arrays passed through the buffer protocol); C only fills it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include "decode.h"

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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_fast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&moddef); }
