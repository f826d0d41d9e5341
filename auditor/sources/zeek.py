"""Zeek logs as input: a directory with ``conn.log`` (and ``ssl.log``, ``http.log`` where
present) -> the same flow table a capture gives, so the audit runs unchanged.

Sites that run Zeek on their SPAN ports keep logs, not captures. A conn.log row is a flow
(Zeek's originator is our initiator); ssl.log adds the negotiated TLS version, the server
name and, where the log has the field, whether the client sent a certificate; http.log
adds the method, Host, target and User-Agent of the first request. Both are joined on
Zeek's ``uid``. Logs are read in Zeek's TSV format (``#fields`` header) or as JSON lines,
plain or gzip'd, one file or a day's hourly archives.

The logs are read and joined by DuckDB (its CSV and JSON readers, every field as text,
then one SQL statement does the conversions), and the Community IDs are computed by the
flow table's C function: a day's conn.log of millions of rows never becomes Python
objects row by row. Times are converted from Zeek's text digit for digit.

What the logs cannot tell stays null, never guessed, and the checks treat null as not
verifiable: whether the server asked for a client certificate (not logged at all),
whether the client sent one when ssl.log lacks ``client_cert_chain_fps`` (or on TLS 1.3,
where Zeek does not see certificates either), payload classes Zeek has no analyzer for
(``encrypted`` null: no cleartext finding on a guess). Bytes are IP bytes
(``orig_ip_bytes``), not frame bytes: a capture of the same traffic counts 14 more per
Ethernet frame. A line that does not parse is counted (``decode_errors.bad_line``) and
skipped, as a malformed packet is.
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from auditor import duck
from auditor._flowid import identify
from auditor.errors import CaptureError
from auditor.sources.record import CaptureRecord

if TYPE_CHECKING:
    import duckdb

LOGS = ("conn", "ssl", "http")
#: above this share of lines that do not parse, the logs are not complete (CAPTURE)
BAD_LINE_SHARE = 0.01

#: the fields read from each log (others are ignored), all as text
FIELDS = {
    "conn": (
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
        "duration", "orig_bytes", "resp_bytes", "conn_state", "history", "orig_pkts",
        "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
    ),
    "ssl": ("ts", "uid", "version", "server_name", "established", "client_cert_chain_fps"),
    "http": ("ts", "uid", "method", "host", "uri", "user_agent", "status_code"),
}  # fmt: skip


def find_logs(directory: Path, name: str) -> list[Path]:
    """A log's files in ``directory``: ``conn.log``, and the hourly archives Zeek rotates
    into a day's directory (``conn.00:00:00-01:00:00.log.gz``), in name order."""
    pattern = re.compile(rf"{re.escape(name)}(\.[^/]+)?\.(log|json)(\.gz)?")
    try:
        return sorted(p for p in directory.iterdir() if pattern.fullmatch(p.name) and p.is_file())
    except OSError:
        return []


def is_zeek_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory of Zeek logs (it holds a conn log)."""
    p = Path(path)
    return p.is_dir() and bool(find_logs(p, "conn"))


@dataclass(frozen=True)
class _Header:
    """How one log file is written: TSV (with its separator, fields and the spellings of
    unset and empty) or JSON lines."""

    json: bool
    separator: str = "\t"
    fields: tuple[str, ...] = ()
    empty: str = "(empty)"
    unset: str = "-"


def _header(path: Path) -> _Header:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    sep, empty, unset, fields = "\t", "(empty)", "-", ()
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for n, raw in enumerate(itertools.islice(fh, 64), start=1):
                line = raw.rstrip("\r\n")
                if not line:
                    continue
                if n == 1 or (not fields and not line.startswith("#")):
                    if line.startswith("{"):
                        return _Header(json=True)
                    if not line.startswith("#separator "):
                        raise CaptureError(
                            path,
                            "not a Zeek log: expected a '#separator' header (TSV) or JSON lines",
                            where=f"line {n}",
                        )
                if line.startswith("#separator "):
                    sep = line.split(" ", 1)[1].encode().decode("unicode_escape")
                    continue
                if not line.startswith("#"):
                    break
                key, _, value = line[1:].partition(sep)
                if key == "empty_field":
                    empty = value
                elif key == "unset_field":
                    unset = value
                elif key == "fields":
                    fields = tuple(value.split(sep))
    except (OSError, EOFError, UnicodeError) as exc:
        raise CaptureError(path, f"cannot read the Zeek log: {exc}") from None
    if not fields:
        raise CaptureError(path, "not a Zeek log: no '#fields' header")
    return _Header(False, sep, fields, empty, unset)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _load(con: duckdb.DuckDBPyConnection, name: str, paths: list[Path]) -> tuple[int, bool]:
    """Read a log's files into the temp table ``name`` (its FIELDS, as text, plus
    ``present``: whether the file logs client_cert_chain_fps); returns the lines that did
    not parse and whether any file has the client certificate field."""
    fields = FIELDS[name]
    columns = ", ".join(f"{_q(f)} VARCHAR" for f in fields)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns}, empty VARCHAR)").fetchall()
    bad = 0
    cert_field = False
    for i, path in enumerate(paths):
        h = _header(path)
        rejects = f"zeek_rejects_{name}_{i}"
        if h.json:
            source = (
                "read_json(?, format='newline_delimited', ignore_errors=true, columns=?, "
                "maximum_object_size=16777216)"
            )
            params: list[Any] = [str(path), {f: "VARCHAR" for f in fields}]
            have = set(fields)
            empty = "[]"
        else:
            source = (
                "read_csv(?, delim=?, header=false, comment='#', quote='', escape='', "
                "nullstr=?, auto_detect=false, columns=?, ignore_errors=true, "
                f"store_rejects=true, rejects_table='{rejects}', rejects_scan='{rejects}_scan')"
            )
            params = [str(path), h.separator, h.unset, {f: "VARCHAR" for f in h.fields}]
            have = set(h.fields)
            empty = h.empty
        pick = ", ".join(_q(f) if f in have else f"NULL AS {_q(f)}" for f in fields)
        con.execute(
            f"INSERT INTO {name} SELECT {pick}, ? FROM {source} WHERE uid IS NOT NULL",
            [empty, *params],
        ).fetchall()
        if h.json:
            bad += _scalar(con, f"SELECT count(*) FILTER (WHERE uid IS NULL) FROM {source}", params)
            if name == "ssl":  # JSON leaves unset fields out: logged if any row has it
                n = _scalar(con, f"SELECT count(client_cert_chain_fps) FROM {source}", params)
                cert_field = cert_field or n > 0
        else:
            bad += _scalar(con, f"SELECT count(DISTINCT line) FROM {rejects}")
            con.execute(f"DROP TABLE IF EXISTS {rejects}").fetchall()
            con.execute(f"DROP TABLE IF EXISTS {rejects}_scan").fetchall()
            cert_field = cert_field or "client_cert_chain_fps" in h.fields
    return bad, cert_field


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> int:
    rows = con.execute(sql, params or []).fetchall()
    return int(rows[0][0] or 0) if rows else 0


def _ns(col: str) -> str:
    """SQL: a Zeek time or interval (text) in ns: epoch seconds written as digits,
    converted exactly (as a decimal), or ISO 8601 text (JSON logs with ISO timestamps)."""
    c = f"trim(both '\"' from {col})"
    return (
        f"CASE WHEN {c} LIKE '%T%' THEN epoch_ns(try_cast({c} AS TIMESTAMPTZ)) "
        f"ELSE CAST(try_cast({c} AS DECIMAL(38, 9)) * 1000000000 AS BIGINT) END"
    )


def _v4(col: str) -> str:
    """SQL: an IPv4 address as a 32-bit number; null for IPv6 (or anything else)."""
    octets = [f"try_cast(split_part({col}, '.', {i}) AS UTINYINT)::UINTEGER" for i in range(1, 5)]
    return (
        f"CASE WHEN {col} LIKE '%.%.%.%' AND {col} NOT LIKE '%:%' THEN "
        f"({octets[0]} * 16777216 + {octets[1]} * 65536 + {octets[2]} * 256 + {octets[3]}) END"
    )


def _count(col: str) -> str:
    return f"coalesce(try_cast({col} AS BIGINT), 0)"


#: Zeek's service names (conn.log ``service``) -> the classifier's app names. Zeek names no
#: Telnet (its login analyzer is off by default), so a Telnet prohibition cannot be seen in
#: Zeek logs; what the logs name nothing for stays ``unknown``.
ZEEK_SERVICES: dict[str, str] = {
    "ssl": "tls", "dtls": "dtls", "http": "http", "dns": "dns", "ssh": "ssh", "smb": "smb",
    "ldap": "ldap", "ldap_tcp": "ldap", "ntp": "ntp", "dhcp": "dhcp", "mysql": "mysql",
    "ftp": "ftp", "ftp-data": "ftp-data", "irc": "irc", "krb": "kerberos",
    "krb_tcp": "kerberos", "dce_rpc": "dcerpc", "rdp": "rdp", "smtp": "smtp", "pop3": "pop3",
    "imap": "imap", "modbus": "modbus", "quic": "quic", "snmp": "snmp", "syslog": "syslog",
    "postgresql": "postgresql", "rfb": "vnc", "redis": "redis", "telnet": "telnet",
}  # fmt: skip

_APP = (
    "CASE "
    + " ".join(f"WHEN svc = '{k}' THEN '{v}'" for k, v in ZEEK_SERVICES.items())
    + """
    WHEN s.uid IS NOT NULL THEN 'tls'
    WHEN h.uid IS NOT NULL THEN 'http'
    WHEN payload_fwd + payload_rev > 0 THEN 'unknown' ELSE 'none' END"""
)
_SERVICE_LIST = ", ".join(f"'{k}'" for k in ZEEK_SERVICES)

_FLOWS = f"""
WITH c AS (
    SELECT *, {_ns("ts")} AS first_ns, coalesce({_ns("duration")}, 0) AS dur_ns,
           try_cast("id.orig_p" AS INTEGER) AS sport, try_cast("id.resp_p" AS INTEGER) AS dport,
           {_count("orig_bytes")} AS payload_fwd, {_count("resp_bytes")} AS payload_rev,
           {_v4('"id.orig_h"')} AS src_v4n, {_v4('"id.resp_h"')} AS dst_v4n,
           list_filter(string_split(lower(coalesce(service, '')), ','),
                       lambda x: x IN ({_SERVICE_LIST}))[1] AS svc
    FROM conn
),
s AS (
    SELECT DISTINCT ON (uid) uid, version, server_name, established,
           client_cert_chain_fps IS NOT NULL AND client_cert_chain_fps <> empty
               AND client_cert_chain_fps <> '' AS has_cert
    FROM ssl ORDER BY uid, {_ns("ts")}
),
h AS (
    SELECT DISTINCT ON (uid) uid, method, host, uri, user_agent, status_code
    FROM http ORDER BY uid, {_ns("ts")}
),
j AS (
    SELECT c.*, s.uid AS s_uid, s.version, s.server_name, s.established, s.has_cert,
           h.uid AS h_uid, h.method, h.host, h.uri, h.user_agent, h.status_code,
           lower(c.proto) AS p,
           CASE s.version WHEN 'SSLv3' THEN 'SSL 3.0' WHEN 'TLSv10' THEN 'TLS 1.0'
                WHEN 'TLSv11' THEN 'TLS 1.1' WHEN 'TLSv12' THEN 'TLS 1.2'
                WHEN 'TLSv13' THEN 'TLS 1.3' END AS tls_version,
           {_APP} AS app
    FROM c LEFT JOIN s USING (uid) LEFT JOIN h USING (uid)
)
SELECT "id.orig_h" AS src_ip, "id.resp_h" AS dst_ip, sport, dport,
       coalesce(src_v4n, 0) AS src_v4, src_v4n IS NOT NULL AS src_is_v4,
       coalesce(dst_v4n, 0) AS dst_v4, dst_v4n IS NOT NULL AS dst_is_v4,
       CASE WHEN p = 'icmp' AND "id.orig_h" LIKE '%:%' THEN 'icmp6' ELSE p END AS proto,
       first_ns, first_ns + dur_ns AS last_ns,
       {_count("orig_pkts")} AS packets_fwd, {_count("resp_pkts")} AS packets_rev,
       {_count("orig_ip_bytes")} AS bytes_fwd, {_count("resp_ip_bytes")} AS bytes_rev,
       payload_fwd AS payload_bytes_fwd, payload_rev AS payload_bytes_rev,
       CASE WHEN p <> 'tcp' THEN NULL
            WHEN conn_state IN ('S0', 'SH', 'RSTOS0') THEN 'attempted'
            WHEN conn_state = 'REJ' THEN 'rejected'
            WHEN conn_state = 'S1' THEN 'established'
            WHEN conn_state IN ('SF', 'S2', 'S3', 'RSTO', 'RSTR') THEN 'closed'
            ELSE 'midstream' END AS state,
       p <> 'tcp' OR position('S' IN coalesce(history, '')) = 0 AS direction_inferred,
       app,
       CASE WHEN app IN ('tls', 'ssh') THEN true
            WHEN app IN ('unknown', 'none') THEN NULL ELSE false END AS encrypted,
       tls_version,
       nullif(server_name, '') AS sni,
       CASE WHEN {{cert_field}} AND tls_version IS NOT NULL AND tls_version <> 'TLS 1.3'
                 AND established IN ('T', 'true') THEN has_cert END AS tls_client_cert,
       method AS http_method, host AS http_host, uri AS http_target,
       user_agent AS http_user_agent, try_cast(status_code AS USMALLINT) AS http_status
FROM j
WHERE first_ns IS NOT NULL AND sport IS NOT NULL AND dport IS NOT NULL
      AND (src_v4n IS NOT NULL OR "id.orig_h" LIKE '%:%')
      AND (dst_v4n IS NOT NULL OR "id.resp_h" LIKE '%:%')
ORDER BY first_ns, uid
"""

_PROTO_NUMS = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "sctp": 132}


def read_zeek(
    directory: str | os.PathLike[str], index: int, schema: pa.Schema
) -> tuple[CaptureRecord, pa.Table]:
    """The capture record and the flow table (with ``schema``, the flow builder's) of a
    directory of Zeek logs; ``index`` is its position among the run's inputs."""
    d = Path(directory)
    paths = {name: find_logs(d, name) for name in LOGS}
    if not paths["conn"]:
        raise CaptureError(d, "no conn.log in the directory")
    with duck.cursor() as con:
        bad, _ = _load(con, "conn", paths["conn"])
        ssl_bad, cert_field = _load(con, "ssl", paths["ssl"])
        http_bad, _ = _load(con, "http", paths["http"])
        rows = _scalar(con, "SELECT count(*) FROM conn")
        # one flag, written into the statement (a Python bool, not user text)
        sql = _FLOWS.format(cert_field="true" if cert_field else "false")
        result = con.sql(sql).to_arrow_table()
    result = _valid_v6(result)
    bad += ssl_bad + http_bad + rows - result.num_rows  # lines kept out, for any reason
    table = _flow_table(result, index, schema)
    warnings = []
    if not paths["ssl"]:
        warnings.append("no ssl.log: TLS versions, server names and client certificates unknown")
    elif not cert_field:
        warnings.append(
            "ssl.log has no client_cert_chain_fps: client certificates are not verifiable"
        )
    if not paths["http"]:
        warnings.append("no http.log: HTTP methods, hosts and user agents unknown")
    # like a capture's decode errors: said, and above 1 % of the lines not complete
    complete = bad <= BAD_LINE_SHARE * (rows + ssl_bad + http_bad)
    if bad:
        warnings.insert(
            0, f"{bad:,} log line{'s' if bad != 1 else ''} did not parse and were skipped"
        )
    firsts, lasts = result.column("first_ns"), result.column("last_ns")
    packets = sum(int(result.column(c).to_numpy().sum()) for c in ("packets_fwd", "packets_rev"))
    nbytes = sum(int(result.column(c).to_numpy().sum()) for c in ("bytes_fwd", "bytes_rev"))
    record = {  # the contract's order (CaptureRecord writes it in its own, the same)
        "path": str(d),
        "format": "zeek",
        "compressed": any(p.name.endswith(".gz") for p in paths["conn"]),
        "linktypes": [],
        "packets": packets,
        "bytes": nbytes,
        "first_seen": _iso(int(np.min(firsts.to_numpy()))) if len(firsts) else None,
        "last_seen": _iso(int(np.max(lasts.to_numpy()))) if len(lasts) else None,
        "truncated": False,
        "truncated_at": None,
        "decode_errors": {"bad_line": bad} if bad else {},
        "warnings": warnings,
        "logs": {name: [str(p) for p in files] for name, files in paths.items()},
        "error": None,
        "complete": complete,
    }
    return CaptureRecord.from_json(record), table


def _flow_table(result: pa.Table, index: int, schema: pa.Schema) -> pa.Table:
    """The SQL result as the flow builder's table: identifiers computed, every other
    column null (or an empty list)."""
    n = result.num_rows
    src16, src_text = _addresses(result, "src")
    dst16, dst_text = _addresses(result, "dst")
    protos = result.column("proto").to_pylist()
    proto_num = np.array([_PROTO_NUMS.get(p, 0) for p in protos], np.int16)
    sport = result.column("sport").to_numpy().astype(np.int32)
    dport = result.column("dport").to_numpy().astype(np.int32)
    first = result.column("first_ns").to_numpy().astype(np.int64)
    cids, fids = identify(
        proto_num.astype(np.uint8),
        np.ascontiguousarray(src16),
        np.ascontiguousarray(dst16),
        sport.astype(np.uint16),
        dport.astype(np.uint16),
        first,
    )
    ts = pa.timestamp("ns", tz="UTC")
    known: dict[str, Any] = {
        "flow_id": pa.array(fids, pa.string()),
        "community_id": pa.array(cids, pa.string()),
        "src_ip": src_text,
        "src_port": sport,
        "dst_ip": dst_text,
        "dst_port": dport,
        "proto": result.column("proto"),
        "proto_num": proto_num,
        "first_seen": pa.array(first, ts),
        "last_seen": pa.array(result.column("last_ns").to_numpy().astype(np.int64), ts),
        "capture": pa.array(np.full(n, index, np.int32)),
        "last_capture": pa.array(np.full(n, index, np.int32)),  # logs name no frames
        "src_ip_bytes": pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), n, [None, pa.py_buffer(src16.tobytes())]
        ),
        "dst_ip_bytes": pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), n, [None, pa.py_buffer(dst16.tobytes())]
        ),
    }
    for name in result.column_names:
        if name in schema.names and name not in known:
            known[name] = result.column(name)
    columns = []
    for field in schema:
        value = known.get(field.name)
        if value is None:
            columns.append(_empty(field.type, n))
        else:
            columns.append(
                pa.array(value, field.type)
                if isinstance(value, np.ndarray)
                else value.cast(field.type)
            )
    return pa.Table.from_arrays(columns, schema=schema)


def _empty(t: pa.DataType, n: int) -> pa.Array:
    if pa.types.is_list(t):
        offsets = pa.array(np.zeros(n + 1, np.int32))
        return pa.ListArray.from_arrays(offsets, pa.array([], t.value_type))
    return pa.nulls(n, t)


def _addresses(result: pa.Table, side: str) -> tuple[np.ndarray, pa.Array]:
    """One side's addresses as 16-byte (IPv4-mapped) rows and as the flow table's text:
    IPv4 from the numbers SQL computed, in bulk; IPv6 (rarer) one by one, and written
    compressed."""
    text = result.column(f"{side}_ip")
    is_v4 = result.column(f"{side}_is_v4").to_numpy()
    values = result.column(f"{side}_v4").to_numpy().astype(">u4")
    out = np.zeros((len(text), 16), np.uint8)
    out[is_v4, 10:12] = 0xFF
    out[is_v4, 12:16] = values[is_v4].view(np.uint8).reshape(-1, 4)
    if is_v4.all():
        return out, text.combine_chunks()
    texts = text.to_pylist()
    for i in np.flatnonzero(~is_v4):
        packed = socket.inet_pton(socket.AF_INET6, texts[i])
        out[i] = np.frombuffer(packed, np.uint8)
        texts[i] = socket.inet_ntop(socket.AF_INET6, packed)
    return out, pa.array(texts, pa.string())


def _valid_v6(result: pa.Table) -> pa.Table:
    """The rows whose IPv6 addresses parse (SQL checked the IPv4 ones)."""
    bad = []
    for side in ("src", "dst"):
        is_v4 = result.column(f"{side}_is_v4").to_numpy()
        if is_v4.all():
            continue
        texts = result.column(f"{side}_ip").to_pylist()
        for i in np.flatnonzero(~is_v4):
            try:
                socket.inet_pton(socket.AF_INET6, texts[i])
            except OSError:
                bad.append(i)
    if not bad:
        return result
    keep = np.ones(result.num_rows, bool)
    keep[bad] = False
    return result.filter(pa.array(keep))


def _iso(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )
    return dt.isoformat().replace("+00:00", "Z")
