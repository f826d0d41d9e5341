"""The table ``pcap-audit roles`` prints: each host, its roles, where they came from, why.

One row a host: address, roles, ``inventory`` or ``inferred``, the confidence, the first
piece of evidence (``--format json`` has them all) and the names it was seen under (SNI,
HTTP Host, DNS answers: wire content, escaped by the table writer). Laid out by
:func:`auditor.report.grid.grid` at the width the CLI chose. And ``--format json``
(:func:`render_json`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from auditor.report.grid import Column, grid

if TYPE_CHECKING:
    from auditor.roles import HostRoles

COLUMNS: tuple[Column, ...] = (
    Column("ip", min_width=15),
    Column("roles", min_width=16),
    Column("source", overflow="keep"),
    Column("conf", overflow="keep", align="right"),
    Column("evidence", min_width=20),
    Column("names", min_width=16, drop=1),
)


def _evidence(host: HostRoles) -> str:
    if not host.evidence:
        return ""
    more = len(host.evidence) - 1
    return host.evidence[0] + (f"; +{more} more" if more else "")


def render(hosts: Sequence[HostRoles], width: int) -> str:
    """``hosts`` as a table of at most ``width`` columns."""
    rows = [
        (
            h.ip,
            "+".join(h.roles),
            h.source,
            f"{h.confidence:.2f}",
            _evidence(h),
            ", ".join(h.names),
        )
        for h in hosts
    ]
    return "\n".join(grid(COLUMNS, rows, width)) + "\n"


def render_json(ruleset: str, entries: Sequence[Mapping[str, Any]]) -> str:
    """``json.dumps({"ruleset": ruleset, "roles": list(entries)}, indent=2)`` and a newline,
    each entry encoded alone and indented one level more: an indented encoding is the
    json module's pure-Python one, slow over the entries of 100,000 inventory addresses,
    and a :class:`auditor.rolemap.RoleEntries` encodes those once per role combination."""

    def encode(entry: Any) -> str:
        value = dict(entry) if isinstance(entry, Mapping) else entry
        return json.dumps(value, indent=2).replace("\n", "\n    ")

    encoded = getattr(entries, "encoded", None)
    lines = encoded(encode) if encoded is not None else [encode(e) for e in entries]
    roles = "[\n    " + ",\n    ".join(lines) + "\n  ]" if lines else "[]"
    return f'{{\n  "ruleset": {json.dumps(ruleset)},\n  "roles": {roles}\n}}\n'
