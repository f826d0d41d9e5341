"""ONC RPC (RFC 5531) calls of NFS and its helpers, and of the portmapper.

A call is ``xid, msg_type 0, rpcvers 2, prog, vers, proc`` and a credential; over TCP a
record mark (last-fragment bit and length, RFC 5531 section 11) comes first. The program
number names the service: NFS (100003) and the services NFS needs (MOUNT 100005, NLM
100021, NSM 100024, NFS_ACL 100227) are app ``nfs``; the portmapper/rpcbind (100000) is
``portmap``. Other programs are not named. Replies carry no program: a flow is named by
its calls. AUTH_SYS / AUTH_NONE credentials leave NFS in clear; RPCSEC_GSS (flavor 6) with
the privacy service seals the arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet

PORTMAP = 100000
NFS_PROGRAMS = frozenset({100003, 100005, 100021, 100024, 100227})
RPCSEC_GSS = 6
_FLAVORS = frozenset({0, 1, 2, 3, 4, 6, 390003, 390004, 390005})  # RFC 5531 and RFC 2623


def _u32(buf: bytes, pos: int) -> int:
    return int.from_bytes(buf[pos : pos + 4], "big")


def call_program(msg: bytes) -> int | None:
    """The program of an RPC call message (no record mark), or None."""
    if len(msg) < 28 or _u32(msg, 4) != 0 or _u32(msg, 8) != 2:
        return None
    prog, vers = _u32(msg, 12), _u32(msg, 16)
    if not 1 <= vers <= 4 or _u32(msg, 20) > 1024:  # version, procedure
        return None
    if _u32(msg, 24) not in _FLAVORS:
        return None
    return prog


def app_of(prog: int | None) -> str | None:
    if prog == PORTMAP:
        return "portmap"
    if prog in NFS_PROGRAMS:
        return "nfs"
    return None


def tcp_call(head: bytes, plen: int) -> str | None:
    if len(head) < 32 or not head[0] & 0x80:
        return None
    length = _u32(head, 0) & 0x7FFFFFFF
    if length < 28 or length + 4 < plen:
        return None
    return app_of(call_program(head[4:]))


def udp_call(head: bytes) -> str | None:
    return app_of(call_program(head))


def rpc_facts(packets: Sequence[Packet], proto: str) -> Facts:
    """``encrypted`` from the first call's credential flavor and, for RPCSEC_GSS, its
    service (RFC 2203: 1 none, 2 integrity, 3 privacy)."""
    skip = 4 if proto == "tcp" else 0
    for _d, head, _plen in packets:
        msg = head[skip:]
        if call_program(msg) is None:
            continue
        if _u32(msg, 24) != RPCSEC_GSS:
            return {"encrypted": False}
        # credential body: version, procedure, sequence number, service
        if len(msg) >= 48:
            return {"encrypted": _u32(msg, 44) == 3}
        return {"encrypted": None}
    return {"encrypted": None}
