"""Writers for the flow table: JSON (the contract), CSV, Parquet and a terminal table.

JSON contract (README, "pcap-audit flows"): ``{"captures": [...], "flows": [...]}`` with
timestamps in ISO 8601 UTC and IPv6 in compressed form. The internal byte columns
(``*_ip_bytes``) never leave the process. The table and the CSV show what came off the wire
(HTTP Host, SNI, banners, DNS answers) through :func:`auditor.escape.printable`: escaped
control characters, and no cell a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
import os
from typing import IO, Any

import pyarrow as pa

from auditor.escape import printable
from auditor.flows import public_flows
from auditor.report.json_ import render as json_text
from auditor.traffic import Traffic, iso

FORMATS = ("table", "json", "csv", "parquet")
__all__ = ["FORMATS", "flow_records", "flows_json", "public_flows", "write_flows"]


def flow_records(table: pa.Table) -> list[dict[str, Any]]:
    """Flow rows as JSON-ready dicts (timestamps as ISO strings)."""
    t = public_flows(table)
    first = t.column("first_seen").cast(pa.int64()).to_pylist()
    last = t.column("last_seen").cast(pa.int64()).to_pylist()
    rows = t.drop_columns(["first_seen", "last_seen"]).to_pylist()
    out = []
    for row, f, la in zip(rows, first, last, strict=True):
        row["first_seen"] = iso(f)
        row["last_seen"] = iso(la)
        out.append(row)
    return out


def flows_json(traffic: Traffic) -> dict[str, Any]:
    assert traffic.flows is not None
    return {
        "captures": [c.to_json() for c in traffic.captures],
        "flows": flow_records(traffic.flows),
    }


def write_flows(traffic: Traffic, fmt: str, out: IO[bytes]) -> None:
    """Write the flows in ``fmt`` to a binary stream."""
    assert traffic.flows is not None
    if fmt == "parquet":
        import pyarrow.parquet as pq  # here: its import costs every other command 15 ms

        pq.write_table(public_flows(traffic.flows), out)
        return
    if fmt == "json":  # one flow per line, like the audit's findings
        text = json_text(flows_json(traffic))
    elif fmt == "csv":
        text = _csv(flow_records(traffic.flows))
    else:
        text = _table(flow_records(traffic.flows))
    out.write(text.encode("utf-8"))


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if not rows:
        return ""
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_cell(v) for k, v in r.items()})
    return buf.getvalue()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        value = ";".join(map(str, value))
    if isinstance(value, str):
        return printable(value, keep_newlines=True, spreadsheet=True)
    return value


def _endpoint(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _frames(r: dict[str, Any]) -> str:
    """``1540-1823`` (in the flow's capture), ``1540-b.pcap#223`` across files."""
    a, b = r.get("first_frame"), r.get("last_frame")
    caps = r.get("captures") or []
    if len(caps) > 1:
        return f"{a}-{os.path.basename(caps[-1])}#{b}"
    return str(a) if a == b else f"{a}-{b}"


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("first_seen", "proto", "src", "dst", "state", "pkts", "bytes", "app", "frames",
            "detail")  # fmt: skip
    lines: list[tuple[str, ...]] = []
    for r in rows:
        detail = r.get("sni") or r.get("http_host") or r.get("ssh_banner") or ""
        if r.get("tls_version"):
            detail = f"{r['tls_version']} {detail}".strip()
        cells = (
            (r["first_seen"] or "")[:19].replace("T", " "),
            r["proto"],
            _endpoint(r["src_ip"], r["src_port"]),
            _endpoint(r["dst_ip"], r["dst_port"]),
            r.get("state") or "",
            str(r["packets_fwd"] + r["packets_rev"]),
            str(r["bytes_fwd"] + r["bytes_rev"]),
            r.get("app") or "",
            _frames(r),
            str(detail)[:40],
        )
        lines.append(tuple(printable(cell) for cell in cells))
    widths = [max([len(h)] + [len(x[i]) for x in lines]) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    out = [fmt.format(*head).rstrip()] + [fmt.format(*x).rstrip() for x in lines]
    return "\n".join(out) + "\n"
