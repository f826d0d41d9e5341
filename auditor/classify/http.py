"""HTTP/1.x requests and responses (RFC 9112), including the extension methods Microsoft uses.

Detection is a table lookup of the first token. A known method is enough when the request
line is cut off by the head limit; an unknown token counts only when the complete line ends
in ``HTTP/x.y`` (so RTSP and SIP, which share the syntax, stay out). Headers are read only
as far as the head goes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet

#: RFC 9110 methods, WebDAV (RFC 4918, 3253, 3744, 4791, 5323), SSDP, and the extension
#: methods of Microsoft BITS (BITS_POST), SCCM (CCM_POST), RPC over HTTP (RPC_IN_DATA,
#: RPC_OUT_DATA) and SSTP (SSTP_DUPLEX_POST); PRI is the HTTP/2 cleartext preface.
METHODS = frozenset(
    {
        b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT",
        b"PATCH", b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK",
        b"SEARCH", b"REPORT", b"MKACTIVITY", b"CHECKOUT", b"CHECKIN", b"UNCHECKOUT",
        b"MERGE", b"MKWORKSPACE", b"UPDATE", b"LABEL", b"VERSION-CONTROL",
        b"BASELINE-CONTROL", b"MKCALENDAR", b"ACL", b"BIND", b"UNBIND", b"REBIND", b"LINK",
        b"UNLINK", b"ORDERPATCH", b"QUERY", b"M-SEARCH", b"NOTIFY", b"SUBSCRIBE",
        b"UNSUBSCRIBE", b"PRI", b"BITS_POST", b"CCM_POST", b"RPC_IN_DATA", b"RPC_OUT_DATA",
        b"SSTP_DUPLEX_POST",
    }
)  # fmt: skip

_REQUEST_LINE = re.compile(rb"[A-Z][A-Z0-9_-]{0,31} [\x21-\x7e]+ HTTP/\d(?:\.\d)?\r?\Z")
_STATUS_LINE = re.compile(rb"HTTP/\d(?:\.\d)? (\d{3})(?:[ \r\n]|\Z)")


def _line_end(head: bytes) -> int:
    """Index of the end of the first line (before CR LF or LF), or -1 when it is cut off."""
    return head.find(b"\n", 0, 8192)


def is_request(head: bytes) -> bool:
    sp = head.find(b" ", 0, 33)
    if sp < 3:
        return False
    eol = _line_end(head)
    if eol >= 0:
        return _REQUEST_LINE.match(head, 0, eol) is not None
    if head[:sp] not in METHODS:
        return False
    target = head[sp + 1 : sp + 2]
    return target in (b"", b"/", b"*", b"h") or head[:sp] == b"CONNECT"


def is_response(head: bytes) -> bool:
    return head.startswith(b"HTTP/") and _STATUS_LINE.match(head) is not None


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").strip()


def _headers(head: bytes, start: int, wanted: dict[bytes, str], facts: Facts) -> None:
    """Copy the wanted header values (first occurrence) visible in ``head[start:]``.

    ``head[start - 1]`` is the newline that ends the start line. The header block ends at
    the first empty line, or else at the last complete line (a cut-off line may hold a
    cut-off value: it is left). Each wanted name is searched for in the lower-cased block,
    at the start of a line and followed by optional blanks and the colon.
    """
    ends = [e for e in (head.find(b"\n\r\n", start - 1), head.find(b"\n\n", start - 1)) if e >= 0]
    end = min(ends) + 1 if ends else head.rfind(b"\n") + 1
    base = start - 1
    block = head[base:end].lower()  # block[0] is the start line's newline
    for name, key in wanted.items():
        if key in facts:
            continue
        at = block.find(b"\n" + name)
        while at >= 0:
            i = at + 1 + len(name)
            while i < len(block) and block[i] in b" \t":
                i += 1
            if i < len(block) and block[i] == 0x3A:  # ':'
                eol = block.find(b"\n", i)
                facts[key] = _text(head[base + i + 1 : base + eol])
                break
            at = block.find(b"\n" + name, at + 1)


_REQUEST_HEADERS = {b"host": "http_host", b"user-agent": "http_user_agent"}
_RESPONSE_HEADERS = {b"server": "server_version"}


def http_facts(packets: Sequence[Packet]) -> Facts:
    """Method, target, Host and User-Agent of the first request; status of the first response."""
    facts: Facts = {"encrypted": False}
    have_req = have_resp = False
    for _d, head, _plen in packets:
        if not have_req and is_request(head):
            have_req = True
            eol = _line_end(head)
            line = head[:eol] if eol >= 0 else head
            parts = line.rstrip(b"\r").split(b" ")
            facts["http_method"] = _text(parts[0])
            if len(parts) > 1 and (eol >= 0 or len(parts) > 2):
                facts["http_target"] = _text(parts[1])
            if eol >= 0:
                _headers(head, eol + 1, _REQUEST_HEADERS, facts)
            host = facts.get("http_host")
            if isinstance(host, str):
                facts["http_host"] = host.lower()
        elif not have_resp and is_response(head):
            have_resp = True
            m = _STATUS_LINE.match(head)
            if m is not None:
                facts["http_status"] = int(m.group(1))
            eol = _line_end(head)
            if eol >= 0:
                _headers(head, eol + 1, _RESPONSE_HEADERS, facts)
        if have_req and have_resp:
            break
    return facts
