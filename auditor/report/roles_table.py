"""The table ``pcap-audit roles`` prints: each host, its roles, where they came from, why.

One row a host: address, roles, ``inventory`` or ``inferred``, the confidence, the first
piece of evidence (``--format json`` has them all) and the names it was seen under (SNI,
HTTP Host, DNS answers: wire content, escaped by the table writer). Laid out by
:func:`auditor.report.grid.grid` at the width the CLI chose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

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
