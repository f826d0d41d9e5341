"""Types of the compiled scanner (auditor/capture/_fast.c)."""

from typing import Any

COLUMNS: tuple[tuple[str, str, str, int], ...]

MAX_CAPLEN: int
MAX_BLOCK: int
HEAD_TLS: int
HEAD_TEXT: int
HEAD_OTHER: int
K_PCAP: int
K_PCAPNG: int
ST_FULL: int
ST_NEED: int
ST_BLOCK: int
ST_BAD: int
ST_BADSKIP: int
ST_FAULT: int
MAX_ROWS: int
BAD_CAPLEN: int
BAD_BLOCKLEN: int
BAD_TRAILER: int
BAD_IFACE: int
BAD_SHORT_BLOCK: int
BAD_CAPLEN_BLOCK: int
S_POS: int
S_END: int
S_ROW: int
S_ROWCAP: int
S_FRAME: int
S_DUSED: int
S_DCAP: int
S_SWAP: int
S_NEED: int
S_BYTES: int
S_TSMIN: int
S_TSMAX: int
S_BADCODE: int
S_BADVAL: int
S_BADPOS: int
S_QUIET: int
S_NULLS: int
S_STATUS: int
S_SKIP: int
NSKIP: int
S_LEN: int
IF_LT: int
IF_SNAP: int
IF_MUL: int
IF_DIV: int
IF_OFF: int
IF_PKTS: int
IF_W: int

def decode_one(record: bytes, linktype: int) -> dict[str, Any]: ...
def scan(kind: int, chunk: Any, state: Any, ifaces: Any, columns: tuple[Any, ...]) -> int: ...
def flow_keys(
    proto: Any,
    src_ip: Any,
    src_port: Any,
    dst_ip: Any,
    dst_port: Any,
    vlan: Any,
    out_key: Any,
    out_dir: Any,
) -> int: ...
def set_flow_seed(seed: int) -> int: ...
def take(buffer: Any, start: int, n: int) -> bytes | None: ...
