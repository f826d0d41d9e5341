"""``--dedup``: drop SPAN duplicates, the same packet seen again within a short window.

A mirror port that copies both the ingress and the egress of a switch port (or two ports a
packet crosses) delivers each packet twice, microseconds apart, and doubles the packets and
bytes of every flow. ``editcap -D`` drops a frame whose bytes equal one of the last few
frames'; the copies here often differ in their link header (one tagged with a VLAN, one
not), so the packet is compared from its IP header on: the same addresses, ports and
direction, IPv4 identification, TCP sequence number and flags, fragment state, payload
length and first 64 payload bytes, seen again within the window (10 ms by default) is a
duplicate. Retransmissions are not: they come a round trip later at the least, and an IPv4
retransmission has a new identification.

What cannot be told apart is kept: packets without an IPv4 identification (IPv6, or IPv4
id 0), without payload and without SYN, FIN or RST (pure ACKs: their acknowledgement
numbers, which differ, are not in the packet batch), and records that are not decoded IP
packets or have no timestamp.

The batch is filtered with numpy, not Arrow's filter: the flow builder reads the values
the reader writes under nulls (-1 for "no VLAN"), which Arrow's filter does not keep.

Vectorised over each batch (numpy); the keys and times of the last window carry over to
the next batch, and across the captures of one traffic set (rotated files).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["DEFAULT_WINDOW_S", "Deduplicator"]

DEFAULT_WINDOW_S = 0.01  #: seconds within which the same packet again is a duplicate
HEAD_BYTES = 64  #: payload bytes compared (the batch carries up to 128 or more)

_rng = np.random.default_rng(0x5EED)
_MULT = _rng.integers(1, 2**63, size=HEAD_BYTES, dtype=np.uint64) | np.uint64(1)
_C = [np.uint64(c) | np.uint64(1) for c in _rng.integers(1, 2**63, size=8, dtype=np.uint64)]


def _values(arr: pa.Array) -> np.ndarray:
    dtype = arr.type.to_pandas_dtype()
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr) + arr.offset)[arr.offset :]


def _head_hashes(payload: pa.Array) -> np.ndarray:
    """A 64-bit hash of each row's first HEAD_BYTES payload bytes (0 for none)."""
    n = len(payload)
    offsets = np.frombuffer(payload.buffers()[1], np.int32, count=n + 1 + payload.offset)
    offsets = offsets[payload.offset :].astype(np.int64)
    out = np.zeros(n, np.uint64)
    data_buf = payload.buffers()[2]
    if data_buf is None:
        return out
    data = np.frombuffer(data_buf, np.uint8)
    lengths = np.minimum(np.diff(offsets), HEAD_BYTES)
    total = int(lengths.sum())
    if not total:
        return out
    firsts = np.cumsum(lengths) - lengths  # where each row starts among the kept bytes
    pos = np.arange(total) - np.repeat(firsts, lengths)
    taken = data[np.repeat(offsets[:-1], lengths) + pos].astype(np.uint64)
    contrib = (taken + np.uint64(1)) * _MULT[pos]
    rows = np.flatnonzero(lengths)
    out[rows] = np.add.reduceat(contrib, firsts[rows])
    return out ^ (lengths.astype(np.uint64) * _C[7])


class Deduplicator:
    """Filters packet batches; ``dropped`` counts the duplicates removed so far."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.window_ns = int(window_s * 1e9)
        self.dropped = 0
        self._keys = np.empty(0, np.uint64)
        self._ts = np.empty(0, np.int64)

    def keys(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """(key, eligible) of each row."""
        col = batch.column
        status = _values(col("status"))
        version = _values(col("ip_version"))
        ip_id = _values(col("ip_id")).astype(np.uint64)
        pay = _values(col("payload_len")).astype(np.uint64)
        ts = _values(col("ts"))
        flags = _values(col("tcp_flags"))
        control = (flags & 0x07) != 0  # FIN, SYN, RST
        eligible = (
            (status == 0) & (ts != 0) & (((version == 4) & (ip_id != 0)) | (pay > 0) | control)
        )
        key = _values(col("flow_key")) * _C[0]
        key ^= _values(col("flow_dir")).astype(np.uint64) * _C[1]
        key ^= ip_id * _C[2]
        key ^= _values(col("tcp_seq")).astype(np.uint64) * _C[3]
        key ^= flags.astype(np.uint64) * _C[4]
        key ^= pay * _C[5]
        key ^= _values(col("frag")).astype(np.uint64) * _C[6]
        key ^= _head_hashes(col("payload"))
        return key, eligible

    def filter(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` without its duplicates (the same batch when it has none)."""
        n = batch.num_rows
        if not n:
            return batch
        key, eligible = self.keys(batch)
        rows = np.flatnonzero(eligible)
        ts = _values(batch.column("ts"))
        keys = np.concatenate([self._keys, key[rows]])
        times = np.concatenate([self._ts, ts[rows]])
        order = np.lexsort((times, keys))
        ks, tss = keys[order], times[order]
        again = (ks[1:] == ks[:-1]) & (tss[1:] - tss[:-1] <= self.window_ns)
        dup_at = order[1:][again] - len(self._keys)
        dup_at = dup_at[dup_at >= 0]
        if len(times):
            recent = times >= times.max() - self.window_ns
            self._keys, self._ts = keys[recent], times[recent]
        if not len(dup_at):
            return batch
        keep = np.ones(n, bool)
        keep[rows[dup_at]] = False
        self.dropped += len(dup_at)
        return _take(batch, np.flatnonzero(keep))


def _take(batch: pa.RecordBatch, idx: np.ndarray) -> pa.RecordBatch:
    """The rows ``idx`` of ``batch``, with the values under nulls kept as they are."""
    out = []
    n = len(idx)
    for field, arr in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_binary(field.type):
            out.append(arr.take(pa.array(idx)))
            continue
        width = field.type.byte_width
        raw = np.frombuffer(arr.buffers()[1], np.uint8, count=(len(arr) + arr.offset) * width)
        vals = raw[arr.offset * width :].reshape(-1, width)[idx].reshape(-1)
        validity, nulls = None, 0
        if arr.null_count:
            bits = np.unpackbits(np.frombuffer(arr.buffers()[0], np.uint8), bitorder="little")
            valid = bits[arr.offset : arr.offset + len(arr)][idx].astype(bool)
            nulls = int(n - valid.sum())
            if nulls:
                validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
        out.append(pa.Array.from_buffers(field.type, n, [validity, pa.py_buffer(vals)], nulls))
    return pa.RecordBatch.from_arrays(out, schema=batch.schema)
