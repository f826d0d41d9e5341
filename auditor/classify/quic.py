"""QUIC (RFC 9000, RFC 9001, v2 RFC 9369): the version of a long-header packet, and the TLS
ClientHello of the client's Initial packets, decrypted.

Initial packets are protected with keys every observer can derive: HKDF from a salt
published per version and the Destination Connection ID the client chose (RFC 9001
section 5.2). So the ClientHello (SNI, ALPN, offered TLS versions) is readable, and so is the server's
ServerHello (negotiated version and cipher suite), whose keys come from the same DCID; the
rest of the connection is TLS 1.3 and ``encrypted`` is true. The crypto is the ``cryptography``
package's (HKDF, AES-128-ECB for header protection, AES-128-GCM for the payload); a packet
cut by the capture is decrypted as far as it goes with AES-CTR, GCM's keystream, without
checking its tag, and its frames must then parse.

Detection is cheap first: a long header with the fixed bit, a known version and connection
IDs of at most 20 bytes. Google QUIC Q046 and later use the same long header (``Q0xx``
versions): the version is read, their encryption is not.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Sequence
from hashlib import sha256
from typing import Any

from auditor.classify.facts import Facts
from auditor.classify.stream import Packet
from auditor.classify.tls import CLIENT_HELLO, SERVER_HELLO, client_hello_facts, server_hello_facts

PORTS = frozenset({443, 80, 8443})
V1, V2 = 0x00000001, 0x6B3343CF
#: (salt, label prefix) per version (RFC 9001 section 5.2, RFC 9369 section 3.3.1, drafts)
_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_SALT_D29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")  # drafts 29-32
_SALT_D23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")  # drafts 23-28
MAX_CID = 20
CRYPTO_FRAME = 0x06


def version_name(v: int) -> str:
    if v == V1:
        return "1"
    if v == V2:
        return "2"
    if v >> 8 == 0xFF0000:
        return f"draft-{v & 0xFF}"
    if v >> 24 == 0x51:  # 'Q'
        return v.to_bytes(4, "big").decode("ascii", "replace")
    if v == 0:
        return "negotiation"
    return f"0x{v:08x}"


def _known(v: int) -> bool:
    return v in (V1, V2) or v >> 8 == 0xFF0000 or (v >> 16 == 0x5130)  # 'Q0'


def long_header(head: bytes) -> tuple[int, bytes, int] | None:
    """(version, DCID, offset after the SCID) of a long-header packet, or None."""
    if len(head) < 7 or head[0] & 0xC0 != 0xC0:
        return None
    version = int.from_bytes(head[1:5], "big")
    if version >> 16 == 0x5130:  # Google QUIC Q046-Q050: one byte of CID length nibbles
        return _gquic_header(head, version)
    dlen = head[5]
    if dlen > MAX_CID or 6 + dlen >= len(head):
        return None
    slen = head[6 + dlen]
    end = 7 + dlen + slen
    if slen > MAX_CID or end > len(head):
        return None
    return version, head[6 : 6 + dlen], end


def _gquic_header(head: bytes, version: int) -> tuple[int, bytes, int] | None:
    if not head[3:5].isdigit():
        return None
    dcil, scil = head[5] >> 4, head[5] & 0x0F
    dlen = dcil + 3 if dcil else 0
    slen = scil + 3 if scil else 0
    end = 6 + dlen + slen
    return (version, head[6 : 6 + dlen], end) if end <= len(head) else None


def is_packet(head: bytes, plen: int) -> bool:
    """A long-header packet of a known version, or a version negotiation."""
    found = long_header(head)
    if found is None:
        return False
    version = found[0]
    if version == 0:  # Version Negotiation: a list of 4-byte versions follows
        return (plen - found[2]) % 4 == 0 and plen > found[2]
    return _known(version)


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    """(value, next offset) of a QUIC variable-length integer; (-1, i) when cut short."""
    if i >= len(buf):
        return -1, i
    n = 1 << (buf[i] >> 6)
    if i + n > len(buf):
        return -1, i
    v = buf[i] & 0x3F
    for b in buf[i + 1 : i + n]:
        v = v << 8 | b
    return v, i + n


def _initial_type(version: int) -> int:
    return 1 if version == V2 else 0  # long packet type bits of an Initial


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def client_keys(version: int, dcid: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(key, iv, hp) protecting the client's Initial packets, or None for an unknown version."""
    return initial_keys(version, dcid, b"client in")


@functools.lru_cache(maxsize=256)
def initial_keys(version: int, dcid: bytes, side: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(key, iv, hp) of one side's Initial packets (``side``: ``client in`` / ``server in``),
    both derived from the Destination Connection ID of the client's first Initial."""
    if version == V1:
        salt, prefix = _SALT_V1, b"quic "
    elif version == V2:
        salt, prefix = _SALT_V2, b"quicv2 "
    elif version >> 8 == 0xFF0000 and 29 <= version & 0xFF <= 32:
        salt, prefix = _SALT_D29, b"quic "
    elif version >> 8 == 0xFF0000 and 23 <= version & 0xFF <= 28:
        salt, prefix = _SALT_D23, b"quic "
    else:
        return None
    # HKDF-Extract is one HMAC (RFC 5869 section 2.2)
    initial = hmac.new(salt, dcid, sha256).digest()
    secret = _expand_label(initial, side, 32)
    return (
        _expand_label(secret, prefix + b"key", 16),
        _expand_label(secret, prefix + b"iv", 12),
        _expand_label(secret, prefix + b"hp", 16),
    )


@functools.lru_cache(maxsize=256)
def _ecb(key: bytes) -> Any:
    """An AES-ECB encryptor for header protection, kept per key (ECB holds no state
    between blocks, so one encryptor serves every packet of the connection)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()


@functools.lru_cache(maxsize=256)
def _gcm(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    return bytes(_ecb(key).update(block))


def _decrypt(key: bytes, nonce: bytes, header: bytes, body: bytes, whole: bool) -> bytes | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if whole:
        try:
            return bytes(_gcm(key).decrypt(nonce, body, header))
        except InvalidTag:
            return None
    # A cut packet: GCM's keystream is AES-CTR from counter 2 (NIST SP 800-38D section 7.1)
    dec = Cipher(algorithms.AES(key), modes.CTR(nonce + b"\x00\x00\x00\x02")).decryptor()
    return dec.update(body) + dec.finalize()


def _open_initial(
    head: bytes, plen: int, pos: int, key_dcid: bytes | None, side: bytes
) -> tuple[bytes, int, bytes] | None:
    """Decrypt the Initial packet at ``pos``: (payload, end of the packet, the DCID its keys
    came from). Keys come from ``key_dcid``, the DCID of the client's first Initial, for
    both sides; a client's packet without it is keyed by its own DCID."""
    found = long_header(head[pos:])
    if found is None:
        return None
    version, dcid, i = found
    if (head[pos] >> 4 & 3) != _initial_type(version):
        return None
    if key_dcid is None:
        key_dcid = dcid
    keys = initial_keys(version, key_dcid, side)
    if keys is None:
        return None
    key, iv, hp = keys
    i += pos
    token_len, i = _varint(head, i)
    if token_len < 0:
        return None
    i += token_len
    length, pn_at = _varint(head, i)
    if length < 20 or pn_at + 20 > len(head):
        return None
    mask = _aes_ecb(hp, head[pn_at + 4 : pn_at + 20])
    first = head[pos] ^ (mask[0] & 0x0F)
    pn_len = (first & 3) + 1
    pn = bytes(
        a ^ b for a, b in zip(head[pn_at : pn_at + pn_len], mask[1 : 1 + pn_len], strict=True)
    )
    header = bytes([first]) + head[pos + 1 : pn_at] + pn
    nonce = (int.from_bytes(iv, "big") ^ int.from_bytes(pn, "big")).to_bytes(12, "big")
    end = pn_at + length
    visible = min(len(head), plen)
    whole = end <= visible
    body = head[pn_at + pn_len : min(end, visible)]
    plain = _decrypt(key, nonce, header, body, whole)
    if plain is None:
        return None
    return plain, end, key_dcid


def _crypto_frames(plain: bytes, out: dict[int, bytes]) -> None:
    """Put the CRYPTO frames' data at their offsets; stop at the first frame not understood."""
    i = 0
    n = len(plain)
    while i < n:
        ftype = plain[i]
        if ftype == 0x00 or ftype == 0x01:  # PADDING
            i += 1
        elif ftype in (0x02, 0x03):  # ACK
            _largest, i = _varint(plain, i + 1)
            _delay, i = _varint(plain, i)
            count, i = _varint(plain, i)
            _first, i = _varint(plain, i)
            if count < 0 or count > 256:
                return
            for _ in range(2 * count):
                v, i = _varint(plain, i)
                if v < 0:
                    return
            if ftype == 0x03:
                for _ in range(3):
                    v, i = _varint(plain, i)
                    if v < 0:
                        return
        elif ftype == CRYPTO_FRAME:
            off, i = _varint(plain, i + 1)
            length, i = _varint(plain, i)
            if off < 0 or length < 0:
                return
            if len(out) < 64:
                out[off] = plain[i : i + length]
            i += length
        elif ftype == 0x1C:  # CONNECTION_CLOSE
            return
        else:
            return


def _assemble(pieces: dict[int, bytes]) -> bytes:
    """The CRYPTO stream from offset 0 up to its first gap (frames may come in any order)."""
    out = b""
    for off in sorted(pieces):
        if off > len(out):
            break
        out += pieces[off][len(out) - off :]
    return out


def quic_facts(packets: Sequence[Packet]) -> Facts:
    facts: Facts = {"encrypted": True}
    crypto: dict[int, bytes] = {}  # the client's CRYPTO stream at Initial level
    server_crypto: dict[int, bytes] = {}
    client: int | None = None
    key_dcid: bytes | None = None  # DCID of the client's latest Initial (after a Retry: new)
    seen_unknown = False
    for d, head, plen in packets:
        found = long_header(head)
        if found is None:
            continue
        version = found[0]
        if version == 0:
            continue  # a Version Negotiation packet names no version of its own
        if "quic_version" not in facts or (seen_unknown and _known(version)):
            # the first known version: a client may start with a reserved one to force
            # version negotiation (RFC 9000 section 6.3)
            facts["quic_version"] = version_name(version)
            seen_unknown = not _known(version)
        server = client is not None and d != client
        if server and key_dcid is None:
            continue
        pos = 0
        while pos < len(head) and pos < plen:  # coalesced packets (RFC 9000 section 12.2)
            if server:
                opened = _open_initial(head, plen, pos, key_dcid, b"server in")
            else:
                # later Initials go to the server's chosen ID but keep the first keys; after
                # a Retry the keys come from the new DCID (RFC 9001 section 5.2)
                opened = _open_initial(head, plen, pos, key_dcid, b"client in")
                if opened is None and key_dcid is not None:
                    opened = _open_initial(head, plen, pos, None, b"client in")
            if opened is None:
                break
            if server:
                _crypto_frames(opened[0], server_crypto)
            else:
                client = d
                key_dcid = opened[2]
                _crypto_frames(opened[0], crypto)
            pos = opened[1]
    hello = _assemble(crypto)
    if len(hello) >= 4 and hello[0] == CLIENT_HELLO:
        body = hello[4 : 4 + int.from_bytes(hello[1:4], "big")]
        offered = client_hello_facts(body)
        if offered.get("tls_client_versions") == ("TLS 1.2",):
            # supported_versions cut off: QUIC runs TLS 1.3 only (RFC 9001 section 4.2)
            offered["tls_client_versions"] = ("TLS 1.3",)
        facts.update(offered)
    hello = _assemble(server_crypto)
    if len(hello) >= 4 and hello[0] == SERVER_HELLO:
        chosen = server_hello_facts(hello[4 : 4 + int.from_bytes(hello[1:4], "big")])
        chosen.pop("alpn_selected", None)  # TLS 1.3 sends it encrypted; not in a ServerHello
        facts.update(chosen)
    return facts
