"""Recording an audit in a store: the run, its captures, its findings, its flows.

What a run is keyed on: its inputs, the content (SHA-256) of each capture, the ruleset's
rules, the inventory's and the waivers file's content. The same inputs give the same
findings, so auditing them again records nothing: the store says which run already holds
them (`Recorded.new` is False). A capture is stored once by content: a run that audits a
capture the store already holds (under another name, or again with a changed ruleset or
inventory) refers to the stored one and marks it ``new: false``; the store's capture
totals count it once.

Flows are kept aggregated by (source, destination, destination port, protocol, app),
where source and destination are a host's role(s) when it has any, else its address:
what a night-to-night comparison of the traffic needs, a few hundred rows a night rather
than every connection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from auditor.store.db import Notify, open_store, transaction

if TYPE_CHECKING:
    import duckdb

    from auditor.findings.engine import AuditResult
    from auditor.findings.model import AuditDocument, CaptureRecord, Finding

#: the flow table's columns the aggregate reads
_FLOW_COLUMNS = (
    "src_ip",
    "dst_ip",
    "dst_port",
    "proto",
    "app",
    "packets_fwd",
    "packets_rev",
    "bytes_fwd",
    "bytes_rev",
)

_AGGREGATE = """
INSERT INTO flows
SELECT ?, coalesce(s.label, f.src_ip), coalesce(d.label, f.dst_ip), f.dst_port, f.proto,
       f.app, count(*), sum(f.packets_fwd + f.packets_rev), sum(f.bytes_fwd + f.bytes_rev)
FROM run_flows f
LEFT JOIN run_roles s ON s.ip = f.src_ip
LEFT JOIN run_roles d ON d.ip = f.dst_ip
GROUP BY ALL
"""


@dataclass(frozen=True)
class Recorded:
    """What recording did: the run that holds the audit, and whether it is a new one."""

    run_id: int
    new: bool
    captures: int
    new_captures: int
    known_captures: int = 0

    def note(self, store: str) -> str:
        """One line for stderr."""
        if not self.new:
            return (
                f"{store}: these captures were already audited with the same ruleset, "
                f"inventory and waivers as run {self.run_id}; not recorded again"
            )
        old = self.known_captures
        again = f", {old} already in the store" if old else ""
        n = f"{self.captures} capture{'s' if self.captures != 1 else ''}"
        return f"{store}: recorded as run {self.run_id} ({n}{again})"


def file_sha256(path: str | Path | None) -> str | None:
    """The SHA-256 of a file's content; None when there is no regular file to read."""
    if not path:
        return None
    p = Path(path)
    try:
        if not p.is_file():
            return None
        with p.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def content_sha256(capture: CaptureRecord) -> str | None:
    """A capture's content hash: the file's; for a directory of Zeek logs, the hash of
    its logs' hashes (by log name)."""
    logs = capture.detail("logs")
    if capture.format == "zeek" and isinstance(logs, Mapping):
        hashes = {
            name: [file_sha256(path) for path in paths] for name, paths in logs.items() if paths
        }
        known = all(h for values in hashes.values() for h in values)
        return canonical_sha256(hashes) if known else None
    return file_sha256(capture.path)


def canonical_sha256(value: Any) -> str:
    """The SHA-256 of a JSON value written canonically (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_sha256(document: AuditDocument | Mapping[str, Any]) -> str:
    """The hash a saved audit document is found by in the store (`report --store`)."""
    return canonical_sha256(document if isinstance(document, Mapping) else document.to_json())


def ruleset_sha256(document: AuditDocument | Mapping[str, Any]) -> str:
    """The ruleset as audited (its rules and documents), wherever its file was."""
    given = document.get("ruleset") if isinstance(document, Mapping) else document.ruleset
    ruleset = {k: v for k, v in (given or {}).items() if k != "path"}
    return canonical_sha256(ruleset)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_run(
    store: str | Path,
    result: AuditResult,
    *,
    started: datetime,
    inventory: str | Path | None = None,
    waivers: str | Path | None = None,
    notify: Notify | None = None,
) -> Recorded:
    """Record ``result`` (an audit's result, waivers applied) in the store at ``store``.

    The capture files, inventory and waivers (by default the files the result names) are
    hashed before the store is locked, so a second audit waits only for the first one's
    writing, not its reading.
    """
    doc = result.result
    if inventory is None:
        inventory = doc.inventory
    if waivers is None:
        waivers = (doc.waivers or {}).get("file")
    captures = [(c.path, content_sha256(c) if not c.error else None, c) for c in doc.captures]
    inventory_hash = file_sha256(inventory)
    waivers_hash = file_sha256(waivers)
    rules_hash = ruleset_sha256(doc)
    hashes = [h for _, h, _ in captures]
    inputs_hash = (
        canonical_sha256([sorted(h for h in hashes if h), rules_hash, inventory_hash, waivers_hash])
        if all(hashes)
        else None  # a capture that cannot be hashed: never taken for one already stored
    )
    findings = _findings_table(doc.findings)
    flows = _flows_input(result)
    roles = _roles_table(doc.roles)
    with open_store(store, write=True, notify=notify) as con:
        if inputs_hash is not None:
            row = con.execute(
                "SELECT id, (SELECT count(*) FROM run_captures c WHERE c.run_id = r.id) "
                "FROM runs r WHERE inputs_sha256 = ? ORDER BY id LIMIT 1",
                [inputs_hash],
            ).fetchone()
            if row is not None:
                return Recorded(int(row[0]), False, int(row[1]), 0, int(row[1]))
        with transaction(con, store):
            (run_id,) = con.execute("SELECT coalesce(max(id), 0) + 1 FROM runs").fetchone() or (1,)
            summary = doc.summary
            complete = all(c.complete for _, _, c in captures)
            con.execute(
                """INSERT INTO runs (id, started, finished, tool_version, ruleset_name,
                    ruleset_sha256, inventory_path, inventory_sha256, fail_on, packets, flows,
                    findings, by_kind, by_severity, duration_s, exit_code, inputs_sha256,
                    waivers_path, waivers_sha256, waived, complete, flows_recorded,
                    document_sha256)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, true, ?)""",
                [
                    run_id,
                    utc_text(started),
                    utc_text(datetime.now(UTC)),
                    doc.tool.get("version"),
                    doc.ruleset.get("name"),
                    rules_hash,
                    str(inventory) if inventory else doc.inventory,
                    inventory_hash,
                    doc.fail_on,
                    int(summary.packets or 0),
                    int(summary.flows or 0),
                    int(summary.findings or 0),
                    json.dumps(dict(summary.by_kind or {})),
                    json.dumps(dict(summary.by_severity or {})),
                    float(summary.duration_s or 0.0),
                    int(summary.exit_code or 0),
                    inputs_hash,
                    str(waivers) if waivers else None,
                    waivers_hash,
                    int(summary.waived or 0),
                    complete,
                    document_sha256(doc),
                ],
            )
            new_captures, known = _captures(con, run_id, captures)
            if findings.num_rows:
                con.register("run_findings", findings)
                con.execute(
                    "INSERT INTO findings (run_id, position, id, kind, severity, src_ip, dst_ip, "
                    "dst_port, proto, src_role, dst_role, rule_id, message, finding, waived) "
                    "SELECT ?, * FROM run_findings",
                    [run_id],
                )
                con.unregister("run_findings")
            if flows is not None and flows.num_rows:
                con.register("run_flows", flows)
                con.register("run_roles", roles)
                con.execute(_AGGREGATE, [run_id])
                con.unregister("run_flows")
                con.unregister("run_roles")
        return Recorded(int(run_id), True, len(captures), new_captures, known)


def _captures(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    captures: Sequence[tuple[str, str | None, CaptureRecord]],
) -> tuple[int, int]:
    """Insert the run's captures, and the store's record of each content it did not hold
    (one statement each: a nightly directory may hold hundreds of files); returns how
    many were new to the store and how many it held already."""
    hashes = sorted({sha for _, sha, _ in captures if sha})
    held: set[str] = set()
    if hashes:
        con.register("run_hashes", pa.table({"sha256": pa.array(hashes, pa.string())}))
        held = {
            r[0]
            for r in con.execute(
                "SELECT c.sha256 FROM captures c JOIN run_hashes h USING (sha256)"
            ).fetchall()
        }
        con.unregister("run_hashes")
    first: dict[str, int] = {}  # new content -> its first position in this run
    for position, (_, sha, _) in enumerate(captures):
        if sha and sha not in held and sha not in first:
            first[sha] = position
    rows = [captures[i] for i in first.values()]
    if rows:
        con.register(
            "new_captures",
            pa.table(
                {
                    "sha256": pa.array([sha for _, sha, _ in rows], pa.string()),
                    "first_run": pa.array([run_id] * len(rows), pa.int32()),
                    "path": pa.array([path for path, _, _ in rows], pa.string()),
                    "format": pa.array([c.format for _, _, c in rows], pa.string()),
                    "packets": pa.array([c.packets for *_, c in rows], pa.int64()),
                    "bytes": pa.array([c.bytes for *_, c in rows], pa.int64()),
                    "first_seen": pa.array([c.first_seen for *_, c in rows], pa.string()),
                    "last_seen": pa.array([c.last_seen for *_, c in rows], pa.string()),
                }
            ),
        )
        con.execute("INSERT INTO captures SELECT * FROM new_captures")
        con.unregister("new_captures")
    fresh = set(first.values())
    con.register(
        "this_run_captures",
        pa.table(
            {
                "run_id": pa.array([run_id] * len(captures), pa.int32()),
                "position": pa.array(range(len(captures)), pa.int32()),
                "path": pa.array([path for path, _, _ in captures], pa.string()),
                "sha256": pa.array([sha for _, sha, _ in captures], pa.string()),
                "packets": pa.array([c.packets for *_, c in captures], pa.int64()),
                "new": pa.array([i in fresh for i in range(len(captures))], pa.bool_()),
                "error": pa.array([c.error or None for *_, c in captures], pa.string()),
            }
        ),
    )
    con.execute("INSERT INTO run_captures SELECT * FROM this_run_captures")
    con.unregister("this_run_captures")
    known = sum(1 for _, sha, _ in captures if sha and sha in held)
    return len(first), known


def _findings_table(findings: Sequence[Finding]) -> pa.Table:
    def col(key: str) -> list[Any]:
        return [getattr(f, key) for f in findings]

    return pa.table(
        {
            "position": pa.array(range(len(findings)), pa.int32()),
            "id": pa.array(col("id"), pa.string()),
            "kind": pa.array(col("kind"), pa.string()),
            "severity": pa.array(col("severity"), pa.string()),
            "src_ip": pa.array(col("src_ip"), pa.string()),
            "dst_ip": pa.array(col("dst_ip"), pa.string()),
            "dst_port": pa.array(col("dst_port"), pa.int32()),
            "proto": pa.array(col("proto"), pa.string()),
            "src_role": pa.array(col("src_role"), pa.string()),
            "dst_role": pa.array(col("dst_role"), pa.string()),
            "rule_id": pa.array(col("rule_id"), pa.string()),
            "message": pa.array(col("message"), pa.string()),
            "finding": pa.array([json.dumps(f.to_json(), ensure_ascii=False) for f in findings]),
            "waived": pa.array([f.waiver is not None for f in findings], pa.bool_()),
        }
    )


def _flows_input(result: AuditResult) -> pa.Table | None:
    flows = result.traffic.flows
    if flows is None:
        return None
    return flows.select([c for c in _FLOW_COLUMNS if c in flows.column_names])


def _roles_table(roles: Sequence[Mapping[str, Any]]) -> pa.Table:
    """ip -> its roles joined with '+' (sorted), for the hosts that have any."""
    labels = {
        str(r["ip"]): "+".join(sorted(r.get("roles") or []))
        for r in roles
        if r.get("ip") and r.get("roles")
    }
    return pa.table(
        {
            "ip": pa.array(list(labels), pa.string()),
            "label": pa.array(list(labels.values()), pa.string()),
        }
    )
