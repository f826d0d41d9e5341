"""Zeek logs as input: a directory with ``conn.log`` (and ``ssl.log``, ``http.log`` where
present) -> the same flow table a capture gives, so the audit runs unchanged.

Sites that run Zeek on their SPAN ports keep logs, not captures. A conn.log row is a flow
(Zeek's originator is our initiator); ssl.log adds the negotiated TLS version, the server
name and, where the log has the field, whether the client sent a certificate; http.log
adds the method, Host, target and User-Agent of the first request. Both are joined on
Zeek's ``uid``. Logs are read in Zeek's TSV format (``#fields`` header) or as JSON lines,
plain or gzip'd.

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
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from auditor.community_id import community_id, flow_id
from auditor.errors import CaptureError

LOGS = ("conn", "ssl", "http")

_APPS = {
    "ssl": "tls",
    "http": "http",
    "dns": "dns",
    "ssh": "ssh",
    "smb": "smb",
    "ldap": "ldap",
    "ldap_tcp": "ldap",
    "ntp": "ntp",
    "dhcp": "dhcp",
    "mysql": "mysql",
}
_ENCRYPTED = {"tls": True, "ssh": True}
_CLEARTEXT = {"http", "dns", "ldap", "smb", "ntp", "dhcp", "mysql"}
_PROTO_NUMS = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58}
_VERSIONS = {
    "SSLv3": "SSL 3.0",
    "TLSv10": "TLS 1.0",
    "TLSv11": "TLS 1.1",
    "TLSv12": "TLS 1.2",
    "TLSv13": "TLS 1.3",
}
# Zeek conn_state -> the flow table's TCP state
_STATES = {
    "S0": "attempted",
    "SH": "attempted",
    "RSTOS0": "attempted",
    "REJ": "rejected",
    "S1": "established",
    "SF": "closed",
    "S2": "closed",
    "S3": "closed",
    "RSTO": "closed",
    "RSTR": "closed",
}


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


class _Log:
    """One log's rows as dicts (Zeek's field names) over its files, the fields it has,
    and the lines that did not parse."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.bad_lines = 0
        self.fields: set[str] = set()

    def rows(self) -> Iterator[dict[str, Any]]:
        for path in self.paths:
            yield from self._rows(path)

    def _lines(self, path: Path) -> Iterator[tuple[int, str]]:
        opener: Any = gzip.open if path.name.endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
                yield from enumerate(fh, start=1)
        except (OSError, EOFError) as exc:
            raise CaptureError(path, f"cannot read the Zeek log: {exc}") from None

    def _rows(self, path: Path) -> Iterator[dict[str, Any]]:
        sep, set_sep, empty, unset = "\t", ",", "(empty)", "-"
        types: list[str] = []
        fields: list[str] = []
        tsv = None
        for n, raw in self._lines(path):
            line = raw.rstrip("\n").rstrip("\r")
            if not line:
                continue
            if tsv is None:
                tsv = not line.startswith("{")
                if tsv and not line.startswith("#separator"):
                    raise CaptureError(
                        path,
                        "not a Zeek log: expected a '#separator' header (TSV) or JSON lines",
                        where=f"line {n}",
                    )
            if not tsv:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    self.bad_lines += 1
                    continue
                if isinstance(row, dict):
                    self.fields.update(row)  # JSON logs leave unset fields out
                    yield row
                else:
                    self.bad_lines += 1
                continue
            if line.startswith("#"):
                key, _, value = line[1:].partition(
                    sep if not line.startswith("#separator") else " "
                )
                if key == "separator":
                    sep = value.strip().encode().decode("unicode_escape")
                elif key == "set_separator":
                    set_sep = value
                elif key == "empty_field":
                    empty = value
                elif key == "unset_field":
                    unset = value
                elif key == "fields":
                    fields = value.split(sep)
                    self.fields.update(fields)
                elif key == "types":
                    types = value.split(sep)
                continue
            values = line.split(sep)
            if not fields or len(values) != len(fields):
                self.bad_lines += 1
                continue
            try:
                yield {
                    f: _value(v, t, set_sep, empty, unset)
                    for f, v, t in zip(fields, values, types or [""] * len(values), strict=True)
                }
            except ValueError:
                self.bad_lines += 1


def _value(text: str, kind: str, set_sep: str, empty: str, unset: str) -> Any:
    if text == unset:
        return None
    if kind.startswith(("set[", "vector[")):
        return [] if text == empty else text.split(set_sep)
    if kind in ("count", "int", "port"):
        return int(text)
    if kind in ("time", "interval"):
        _exact_ns(text)  # checked here, converted where used: exactly, not through a float
        return text
    if kind == "double":
        return float(text)
    if kind == "bool":
        return text == "T"
    return "" if text == empty else text


def _exact_ns(text: str) -> int:
    """``1763769600.000500`` -> nanoseconds, digit for digit (ValueError if not a number)."""
    whole, _, frac = text.strip().partition(".")
    if not (whole.lstrip("-").isdigit() and (frac == "" or frac.isdigit())):
        raise ValueError(text)
    ns = int(frac[:9].ljust(9, "0")) if frac else 0
    return int(whole) * 1_000_000_000 + (-ns if whole.startswith("-") else ns)


def _ns(value: Any) -> int | None:
    """A time or interval in ns: TSV text, a JSON number (microseconds are Zeek's
    precision), or ISO 8601 text (JSON logs written with ISO timestamps)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return round(value * 1_000_000) * 1000
    text = str(value)
    try:
        return _exact_ns(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (int(moment.timestamp()) * 1_000_000 + moment.microsecond) * 1000


def _bytes16(ip: str) -> bytes:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + addr.packed
    return addr.packed


def _by_uid(log: _Log | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if log is None:
        return out
    for row in log.rows():
        uid = row.get("uid")
        if isinstance(uid, str) and uid not in out:  # the first request of a connection
            out[uid] = row
    return out


def _app(service: Any, payload: int) -> str:
    names = service if isinstance(service, list) else str(service or "").split(",")
    for name in names:
        app = _APPS.get(str(name).strip().lower())
        if app:
            return app
    return "unknown" if payload else "none"


def read_zeek(
    directory: str | Path, index: int, schema: pa.Schema
) -> tuple[dict[str, Any], pa.Table]:
    """The capture record and the flow table (with ``schema``, the flow builder's) of a
    directory of Zeek logs; ``index`` is its position among the run's inputs."""
    d = Path(directory)
    conn_paths = find_logs(d, "conn")
    if not conn_paths:
        raise CaptureError(d, "no conn.log in the directory")
    conn = _Log(conn_paths)
    ssl_paths, http_paths = find_logs(d, "ssl"), find_logs(d, "http")
    ssl_log = _Log(ssl_paths) if ssl_paths else None
    http_log = _Log(http_paths) if http_paths else None
    ssl, http = _by_uid(ssl_log), _by_uid(http_log)
    cert_field = ssl_log is not None and "client_cert_chain_fps" in ssl_log.fields
    rows = []
    bad = 0
    for c in conn.rows():
        try:
            rows.append(
                _flow(c, ssl.get(str(c.get("uid"))), http.get(str(c.get("uid"))), cert_field, index)
            )
        except (KeyError, TypeError, ValueError):
            bad += 1
    bad += conn.bad_lines + sum(log.bad_lines for log in (ssl_log, http_log) if log)
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    for row in rows:
        for name, values in columns.items():
            values.append(row.get(name, [] if _is_list(schema.field(name).type) else None))
    table = pa.table({f.name: pa.array(columns[f.name], f.type) for f in schema}, schema=schema)
    firsts = [r["first_seen"] for r in rows]
    lasts = [r["last_seen"] for r in rows]
    warnings = []
    if ssl_log is None:
        warnings.append("no ssl.log: TLS versions, server names and client certificates unknown")
    elif not cert_field:
        warnings.append(
            "ssl.log has no client_cert_chain_fps: client certificates are not verifiable"
        )
    if http_log is None:
        warnings.append("no http.log: HTTP methods, hosts and user agents unknown")
    record = {
        "path": str(d),
        "format": "zeek",
        "compressed": any(p.name.endswith(".gz") for p in conn_paths),
        "linktypes": [],
        "packets": sum(r["packets_fwd"] + r["packets_rev"] for r in rows),
        "bytes": sum(r["bytes_fwd"] + r["bytes_rev"] for r in rows),
        "first_seen": _iso(min(firsts)) if firsts else None,
        "last_seen": _iso(max(lasts)) if lasts else None,
        "truncated": False,
        "truncated_at": None,
        "decode_errors": {"bad_line": bad} if bad else {},
        "warnings": warnings,
        "logs": {
            name: [str(p) for p in paths]
            for name, paths in zip(LOGS, (conn_paths, ssl_paths, http_paths), strict=True)
        },
        "error": None,
    }
    return record, table


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _iso(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )
    return dt.isoformat().replace("+00:00", "Z")


def _flow(
    c: dict[str, Any],
    ssl: dict[str, Any] | None,
    http: dict[str, Any] | None,
    cert_field: bool,
    index: int,
) -> dict[str, Any]:
    src, dst = str(c["id.orig_h"]), str(c["id.resp_h"])
    sport, dport = int(c["id.orig_p"]), int(c["id.resp_p"])
    proto = str(c.get("proto") or "").lower()
    v6 = ":" in src
    if proto == "icmp" and v6:
        proto = "icmp6"
    num = _PROTO_NUMS.get(proto, 0)
    first = _ns(c.get("ts"))
    if first is None:
        raise ValueError("no ts")
    last = first + (_ns(c.get("duration")) or 0)
    src16, dst16 = _bytes16(src), _bytes16(dst)
    cid = community_id(num, src16, dst16, sport, dport)
    payload_f, payload_r = int(c.get("orig_bytes") or 0), int(c.get("resp_bytes") or 0)
    app = _app(c.get("service"), payload_f + payload_r)
    history = str(c.get("history") or "")
    row: dict[str, Any] = {
        "flow_id": flow_id(cid, first),
        "community_id": cid,
        "src_ip": str(ipaddress.ip_address(src)),
        "src_port": sport,
        "dst_ip": str(ipaddress.ip_address(dst)),
        "dst_port": dport,
        "proto": proto,
        "proto_num": num,
        "first_seen": first,
        "last_seen": last,
        "packets_fwd": int(c.get("orig_pkts") or 0),
        "packets_rev": int(c.get("resp_pkts") or 0),
        "bytes_fwd": int(c.get("orig_ip_bytes") or 0),
        "bytes_rev": int(c.get("resp_ip_bytes") or 0),
        "payload_bytes_fwd": payload_f,
        "payload_bytes_rev": payload_r,
        "state": _STATES.get(str(c.get("conn_state")), "midstream") if proto == "tcp" else None,
        "direction_inferred": proto == "tcp" and "S" not in history,
        "app": app,
        "encrypted": _ENCRYPTED.get(app, False if app in _CLEARTEXT else None),
        "capture": index,
        "src_ip_bytes": src16,
        "dst_ip_bytes": dst16,
    }
    if ssl is not None:
        version = _VERSIONS.get(str(ssl.get("version") or ""))
        row["tls_version"] = version
        row["sni"] = ssl.get("server_name") or None
        if cert_field and version and version != "TLS 1.3" and ssl.get("established"):
            row["tls_client_cert"] = bool(ssl.get("client_cert_chain_fps"))
        if row["app"] in ("none", "unknown"):
            row["app"], row["encrypted"] = "tls", True
    if http is not None:
        row["http_method"] = http.get("method")
        row["http_host"] = http.get("host")
        row["http_target"] = http.get("uri")
        row["http_user_agent"] = http.get("user_agent")
        status = http.get("status_code")
        row["http_status"] = int(status) if isinstance(status, int) else None
        if row["app"] in ("none", "unknown"):
            row["app"], row["encrypted"] = "http", False
    return row
