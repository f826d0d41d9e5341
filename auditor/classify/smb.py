"""SMB1 ([MS-CIFS]), SMB2/3 ([MS-SMB2]) behind the NetBIOS session header (RFC 1002).

Dialect and signing come from the negotiate exchange; "encrypted" from an SMB3 transform
header (``\\xfdSMB``), a session or share flagged for encryption, or - for False - a file
operation (CREATE, READ, WRITE, ...) seen in clear. Negotiation and session setup are always
in clear, so seeing only them leaves "encrypted" unknown.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet

PORTS = frozenset({139, 445})
SMB1 = b"\xffSMB"
SMB2 = b"\xfeSMB"
TRANSFORM = b"\xfdSMB"  # SMB 3.x encrypted message ([MS-SMB2] 2.2.41)
_MAGICS = (SMB1, SMB2, TRANSFORM)

DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1"}
DIALECTS[0x02FF] = "2.???"  # wildcard answer to an SMB1 negotiate offering SMB2

SMB1_NEGOTIATE = 0x72
SMB1_SESSION_SETUP = 0x73
SMB2_NEGOTIATE = 0
SMB2_SESSION_SETUP = 1
SMB2_TREE_CONNECT = 3
#: Commands that move file data or metadata (CREATE .. SET_INFO, less CANCEL and ECHO).
_SMB2_FILE_OPS = frozenset({5, 6, 7, 8, 9, 10, 11, 14, 15, 16, 17})
SESSION_FLAG_ENCRYPT_DATA = 0x0004
SHAREFLAG_ENCRYPT_DATA = 0x0008


def is_smb(head: bytes) -> bool:
    """NetBIOS session message (type 0) holding an SMB1, SMB2 or SMB3 transform header."""
    return len(head) >= 8 and head[0] == 0 and head[4:8] in _MAGICS


def _u16(b: bytes, i: int) -> int:
    return b[i] | b[i + 1] << 8 if i + 2 <= len(b) else -1


def _u32(b: bytes, i: int) -> int:
    return int.from_bytes(b[i : i + 4], "little") if i + 4 <= len(b) else -1


class _State:
    __slots__ = ("clear", "dialects", "encrypted", "facts")

    def __init__(self) -> None:
        self.facts: Facts = {}
        self.dialects: list[str] | None = None  # SMB1 negotiate request's dialect strings
        self.encrypted = False
        self.clear = False


def _smb1(msg: bytes, st: _State) -> None:
    if len(msg) < 33:
        return
    cmd = msg[4]
    response = msg[9] & 0x80 != 0
    if cmd == SMB1_NEGOTIATE:
        if not response:
            count = _u16(msg, 33)
            raw = msg[35 : 35 + max(count, 0)]
            st.dialects = [
                part[1:].decode("ascii", "replace")
                for part in raw.split(b"\0")
                if part[:1] == b"\2"
            ]
        elif msg[32] >= 1:  # WordCount
            index = _u16(msg, 33)
            if st.dialects is not None and 0 <= index < len(st.dialects):
                st.facts.setdefault("smb_dialect", st.dialects[index])
            elif index != 0xFFFF and "smb_dialect" not in st.facts:
                st.facts["smb_dialect"] = "1"
            if msg[32] >= 17 and len(msg) > 35:
                st.facts.setdefault("smb_signing_required", msg[35] & 0x08 != 0)
    elif cmd != SMB1_SESSION_SETUP and cmd != 0x2B:  # 0x2B: ECHO
        st.clear = True


def _smb2(msg: bytes, st: _State) -> None:
    pos = 0
    for _ in range(8):  # compounded requests ([MS-SMB2] 3.2.4.1.4)
        hdr = msg[pos : pos + 64]
        if len(hdr) < 20 or hdr[:4] != SMB2:
            return
        cmd = _u16(hdr, 12)
        flags = _u32(hdr, 16)
        response = flags & 1 != 0
        body = msg[pos + 64 : pos + 72]
        if cmd == SMB2_NEGOTIATE and response and len(body) >= 6:
            dialect = _u16(body, 4)
            st.facts["smb_dialect"] = DIALECTS.get(dialect, f"0x{dialect:04x}")
            st.facts["smb_signing_required"] = _u16(body, 2) & 0x02 != 0
        elif cmd == SMB2_SESSION_SETUP and response and len(body) >= 4:
            if _u16(body, 2) & SESSION_FLAG_ENCRYPT_DATA:
                st.encrypted = True
        elif cmd == SMB2_TREE_CONNECT and response and len(body) >= 8:
            if _u32(body, 4) & SHAREFLAG_ENCRYPT_DATA:
                st.encrypted = True
        elif cmd in _SMB2_FILE_OPS:
            st.clear = True
        nxt = _u32(hdr, 20)
        if nxt <= 0:
            return
        pos += nxt


def smb_facts(packets: Sequence[Packet]) -> Facts:
    st = _State()
    for _d, head, _plen in packets:
        pos = 0
        for _ in range(16):  # NetBIOS messages in this head
            if pos + 8 > len(head) or head[pos] != 0:
                break
            length = head[pos + 1] << 16 | head[pos + 2] << 8 | head[pos + 3]
            msg = head[pos + 4 : pos + 4 + length]
            magic = msg[:4]
            if magic == TRANSFORM:
                st.encrypted = True
            elif magic == SMB2:
                _smb2(msg, st)
            elif magic == SMB1:
                _smb1(msg, st)
            else:
                break
            pos += 4 + length
    facts = st.facts
    facts["encrypted"] = True if st.encrypted else (False if st.clear else None)
    return facts
