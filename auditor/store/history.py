"""The runs of a store, oldest first: what `pcap-audit history` shows and charts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.store.db import Notify, StoreError, open_store


@dataclass(frozen=True)
class RunSummary:
    """One recorded run: when, how much traffic, how many findings of each kind and
    severity. ``captures`` counts the run's capture files (stored once each however many
    runs audit them)."""

    id: int
    started: str
    captures: int
    packets: int
    flows: int
    findings: int
    by_kind: dict[str, int]
    by_severity: dict[str, int]
    exit_code: int
    complete: bool
    waived: int

    def to_json(self) -> dict[str, Any]:
        """The run as `history --format json` writes it (the contract's keys only)."""
        return {
            "id": self.id,
            "started": self.started,
            "captures": self.captures,
            "packets": self.packets,
            "flows": self.flows,
            "findings": self.findings,
            "by_kind": self.by_kind,
            "by_severity": self.by_severity,
        }


_RUNS = """
SELECT r.id, r.started, (SELECT count(*) FROM run_captures c WHERE c.run_id = r.id),
       r.packets, r.flows, r.findings, r.by_kind, r.by_severity, r.exit_code, r.complete,
       r.waived
FROM runs r {where} ORDER BY r.id
"""


def _summary(row: tuple[Any, ...]) -> RunSummary:
    return RunSummary(
        id=int(row[0]),
        started=str(row[1]),
        captures=int(row[2]),
        packets=int(row[3] or 0),
        flows=int(row[4] or 0),
        findings=int(row[5] or 0),
        by_kind={str(k): int(v) for k, v in json.loads(row[6] or "{}").items()},
        by_severity={str(k): int(v) for k, v in json.loads(row[7] or "{}").items()},
        exit_code=int(row[8] or 0),
        complete=bool(row[9]),
        waived=int(row[10] or 0),
    )


def history(store: str | Path, notify: Notify | None = None) -> list[RunSummary]:
    """Every run in the store at ``store``, oldest first."""
    with open_store(store, write=False, notify=notify) as con:
        return [_summary(r) for r in con.execute(_RUNS.format(where="")).fetchall()]


def run_summary(store: str | Path, run_id: int, notify: Notify | None = None) -> RunSummary:
    """One run; StoreError when the store has no such run."""
    with open_store(store, write=False, notify=notify) as con:
        row = con.execute(_RUNS.format(where="WHERE r.id = ?"), [run_id]).fetchone()
    if row is None:
        raise StoreError(store, f"no run {run_id} in the store")
    return _summary(row)
