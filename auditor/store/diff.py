"""What changed between two audits: findings compared by id, flows by their aggregate key.

A finding's id hashes what and where (kind, rule, endpoints, port), not when or how much,
so the same problem seen on two nights has the same id and a line-by-line diff's noise
(timestamps, flow ids, byte counts) does not count as change. Flows are compared by the
store's aggregate key (source, destination, port, protocol, app; a host's role when it
has one, else its address): a new peer or a new port is a new flow.

Two sources: two runs of a store (`diff_runs`; the baseline defaults to the latest run
before, skipping runs that did not read every capture whole), or two saved audit
documents (`diff_documents`). A saved document carries no flow table, only the observed
role pairs, so there the flows are compared by role pair, without app or addresses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.errors import ExitCode
from auditor.findings.model import Finding
from auditor.rules.model import SEVERITIES
from auditor.store.db import Notify, StoreError, open_store
from auditor.store.documents import load_document

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class FlowAggregate:
    """Flows between two roles (or addresses) on one port, protocol and app."""

    src: str
    dst: str
    dst_port: int | None
    proto: str | None
    app: str | None
    flows: int
    packets: int | None
    bytes: int | None

    @property
    def key(self) -> tuple[str, str, int | None, str | None, str | None]:
        return (self.src, self.dst, self.dst_port, self.proto, self.app)

    def to_json(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "dst_port": self.dst_port,
            "proto": self.proto,
            "app": self.app,
            "flows": self.flows,
            "packets": self.packets,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class Side:
    """One side of a diff: a run of a store, or a saved document."""

    id: int | None = None
    started: str | None = None
    file: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.file is not None:
            return {"file": self.file}
        return {"id": self.id, "started": self.started}

    @property
    def label(self) -> str:
        return self.file if self.file is not None else f"run {self.id} ({self.started})"


@dataclass(frozen=True)
class Diff:
    """The change from ``baseline`` to ``run``; ``baseline`` None: nothing to compare
    with (the store's first run), so everything is new."""

    run: Side
    baseline: Side | None
    new_findings: tuple[Finding, ...]
    resolved_findings: tuple[Finding, ...]
    new_flows: tuple[FlowAggregate, ...]
    gone_flows: tuple[FlowAggregate, ...]
    #: why flows were not compared (a run of a schema-1 store has none), else None
    flows_note: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run.to_json(),
            "baseline": self.baseline.to_json() if self.baseline else None,
            "new_findings": [f.to_json() for f in self.new_findings],
            "resolved_findings": [f.to_json() for f in self.resolved_findings],
            "new_flows": [f.to_json() for f in self.new_flows],
            "gone_flows": [f.to_json() for f in self.gone_flows],
        }

    def failing(self, fail_on: str) -> list[Finding]:
        """The new findings at or above ``fail_on`` that no waiver covers."""
        if fail_on == "never":
            return []
        limit = SEVERITIES.index(fail_on)
        return [
            f
            for f in self.new_findings
            if f.waiver is None
            and f.severity in SEVERITIES
            and SEVERITIES.index(f.severity) <= limit
        ]

    def exit_code(self, fail_on: str) -> ExitCode:
        return ExitCode.FINDINGS if self.failing(fail_on) else ExitCode.OK


def compare(
    run: Side,
    baseline: Side | None,
    findings: Sequence[Finding | Mapping[str, Any]],
    base_findings: Sequence[Finding | Mapping[str, Any]],
    flows: Sequence[FlowAggregate],
    base_flows: Sequence[FlowAggregate],
    flows_note: str | None = None,
) -> Diff:
    """The diff of two sides' findings and flows (each side in its own order); findings
    of a store or a saved document as the contract's dicts are read as Finding."""
    now = [_finding(f) for f in findings]
    before = [_finding(f) for f in base_findings]
    ids = {f.id for f in now}
    base_ids = {f.id for f in before}
    keys = {f.key for f in flows}
    base_keys = {f.key for f in base_flows}
    return Diff(
        run=run,
        baseline=baseline,
        new_findings=tuple(f for f in now if f.id not in base_ids),
        resolved_findings=tuple(f for f in before if f.id not in ids),
        new_flows=tuple(f for f in flows if f.key not in base_keys),
        gone_flows=tuple(f for f in base_flows if f.key not in keys),
        flows_note=flows_note,
    )


def _finding(f: Finding | Mapping[str, Any]) -> Finding:
    return f if isinstance(f, Finding) else Finding.from_json(f)


# --- two runs of a store -------------------------------------------------------------


def _run_side(con: duckdb.DuckDBPyConnection, run_id: int, store: str | Path) -> Side:
    row = con.execute("SELECT id, started FROM runs WHERE id = ?", [run_id]).fetchone()
    if row is None:
        ids = [r[0] for r in con.execute("SELECT id FROM runs ORDER BY id").fetchall()]
        have = f"runs {ids[0]}-{ids[-1]}" if ids else "no runs"
        raise StoreError(store, f"no run {run_id} in the store ({have})")
    return Side(id=int(row[0]), started=str(row[1]))


def _run_findings(con: duckdb.DuckDBPyConnection, run_id: int) -> list[Finding]:
    rows = con.execute(
        "SELECT finding FROM findings WHERE run_id = ? ORDER BY position", [run_id]
    ).fetchall()
    return [Finding.from_json(json.loads(r[0])) for r in rows]


def _run_flows(con: duckdb.DuckDBPyConnection, run_id: int) -> list[FlowAggregate]:
    rows = con.execute(
        "SELECT src, dst, dst_port, proto, app, flows, packets, bytes FROM flows "
        "WHERE run_id = ? ORDER BY src, dst, proto, dst_port, app",
        [run_id],
    ).fetchall()
    return [FlowAggregate(*r) for r in rows]


def _flows_recorded(con: duckdb.DuckDBPyConnection, run_id: int) -> bool:
    row = con.execute("SELECT flows_recorded FROM runs WHERE id = ?", [run_id]).fetchone()
    return bool(row and row[0])


def latest_run(con: duckdb.DuckDBPyConnection, store: str | Path) -> int:
    row = con.execute("SELECT max(id) FROM runs").fetchone()
    if row is None or row[0] is None:
        raise StoreError(store, "the store holds no run yet")
    return int(row[0])


def default_baseline(con: duckdb.DuckDBPyConnection, run_id: int) -> int | None:
    """The latest run before ``run_id`` that read every capture whole; else the latest
    run before it; None for the first run."""
    row = con.execute(
        "SELECT max(id) FILTER (WHERE complete), max(id) FROM runs WHERE id < ?", [run_id]
    ).fetchone()
    if row is None:
        return None
    best = row[0] if row[0] is not None else row[1]
    return int(best) if best is not None else None


def diff_runs(
    store: str | Path,
    run: int | None = None,
    baseline: int | None = None,
    notify: Notify | None = None,
) -> Diff:
    """Run ``run`` (default: the latest) against ``baseline`` (default: the run before)."""
    with open_store(store, write=False, notify=notify) as con:
        run_id = run if run is not None else latest_run(con, store)
        side = _run_side(con, run_id, store)
        base_id = baseline if baseline is not None else default_baseline(con, run_id)
        if base_id is not None and base_id == run_id:
            raise StoreError(store, f"run {run_id} is its own baseline: pick another")
        base = _run_side(con, base_id, store) if base_id is not None else None
        findings = _run_findings(con, run_id)
        flows = _run_flows(con, run_id)
        if base_id is None:
            return compare(side, None, findings, [], flows, [])
        note = None
        base_flows = _run_flows(con, base_id)
        for rid in (run_id, base_id):
            if not _flows_recorded(con, rid):
                note = f"run {rid} was recorded before the store kept flows: flows not compared"
                flows, base_flows = [], []
        return compare(side, base, findings, _run_findings(con, base_id), flows, base_flows, note)


# --- two saved documents -------------------------------------------------------------


def document_flows(document: Mapping[str, Any]) -> list[FlowAggregate]:
    """The observed role pairs of a saved document, as flows without app or volumes."""
    out = []
    for p in document.get("role_pairs") or []:
        if not isinstance(p, Mapping) or not p.get("observed"):
            continue
        port = p.get("dst_port")
        out.append(
            FlowAggregate(
                src=str(p.get("src_role") or "?"),
                dst=str(p.get("dst_role") or "?"),
                dst_port=port if isinstance(port, int) else None,
                proto=p.get("proto"),
                app=None,
                flows=int(p.get("flows") or 0),
                packets=None,
                bytes=None,
            )
        )
    return out


def diff_documents(old: str | Path, new: str | Path) -> Diff:
    """Saved audit document ``new`` against ``old`` (both ``--format json`` output)."""
    before, after = load_document(old), load_document(new)
    return compare(
        Side(file=str(new)),
        Side(file=str(old)),
        after["findings"],
        before["findings"],
        document_flows(after),
        document_flows(before),
    )


def diff_for_document(
    store: str | Path,
    document: Mapping[str, Any],
    baseline: int | None = None,
    notify: Notify | None = None,
) -> Diff:
    """A saved document against a run of the store. When the document is a run of the
    store (found by its hash), this is that run's diff, flows included; otherwise its
    findings are compared with ``baseline`` (default: the store's latest run), and its
    flows are not (a document holds none)."""
    from auditor.store.record import document_sha256

    digest = document_sha256(document)
    with open_store(store, write=False, notify=notify) as con:
        row = con.execute("SELECT max(id) FROM runs WHERE document_sha256 = ?", [digest]).fetchone()
        run_id = int(row[0]) if row and row[0] is not None else None
        if run_id is None:
            base_id = baseline if baseline is not None else latest_run(con, store)
            base = _run_side(con, base_id, store)
            return compare(
                Side(file="the document"),
                base,
                document.get("findings") or [],
                _run_findings(con, base_id),
                [],
                [],
                "the document is not a run of the store: flows not compared",
            )
    return diff_runs(store, run_id, baseline, notify)
