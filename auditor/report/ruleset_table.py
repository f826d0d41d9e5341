"""What ``pcap-audit rulesets list`` and ``rulesets show`` print for a terminal.

A ruleset is someone else's file (a vendor's ports transcribed, or a user's own YAML):
every text in it -- titles, descriptions, notes, role and rule ids -- is shown escaped,
the tables by :func:`auditor.report.grid.grid`, the prose wrapped here to the same width.
``show --format json`` (:meth:`Ruleset.to_json`) is the contract; this is for reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from auditor.escape import printable
from auditor.report.grid import Column, grid, wrap

if TYPE_CHECKING:
    from auditor.rules import Ruleset

INDENT = "  "

LIST_COLUMNS: tuple[Column, ...] = (
    Column("NAME", min_width=12),
    Column("ROLES", overflow="keep", align="right"),
    Column("FLOWS", overflow="keep", align="right"),
    Column("TITLE", min_width=16),
)
#: the vendor documents: a file name is cited as is, never cut
DOCUMENT_COLUMNS: tuple[Column, ...] = (
    Column("FILE", overflow="keep"),
    Column("TITLE", min_width=16),
)
ROLE_COLUMNS: tuple[Column, ...] = (
    Column("ID", overflow="keep"),
    Column("DESCRIPTION", min_width=20),
)
#: rule and role ids are what one searches for: never cut
FLOW_COLUMNS: tuple[Column, ...] = (
    Column("ID", overflow="keep"),
    Column("FROM → TO", min_width=12),
    Column("PORTS", min_width=8),
    Column("APP", min_width=6),
    Column("SECURITY", min_width=8),
    Column("DISK", overflow="keep", drop=2),
    Column("EXPECTED", overflow="keep", drop=2),
    Column("PAIR", min_width=12, drop=3),
)
DENY_COLUMNS: tuple[Column, ...] = (
    Column("ID", overflow="keep"),
    Column("FORBIDS", min_width=16),
    Column("SOURCE", min_width=16),
)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _prose(text: str, width: int, indent: str = "", hanging: str = INDENT) -> list[str]:
    """``text`` (escaped) wrapped to ``width`` columns after ``indent``, the lines after
    the first indented by ``hanging`` more."""
    first, *rest = wrap(printable(text), width - len(indent))
    rest = wrap(" ".join(rest), width - len(indent + hanging)) if rest else []
    return [(indent + first).rstrip(), *((indent + hanging + line).rstrip() for line in rest)]


def render_list(rulesets: Sequence[Ruleset], width: int) -> str:
    """The built-in rulesets, one row each."""
    rows = [(rs.name, len(rs.roles), len(rs.flows), rs.title) for rs in rulesets]
    return "\n".join(grid(LIST_COLUMNS, rows, width)) + "\n"


def render_show(rs: Ruleset, width: int) -> str:
    """One ruleset: title, description, source documents, notes, roles, flows, scope, TLS
    policy and deny entries, at most ``width`` columns a line."""
    out = _prose(f"{rs.name}: {rs.title}", width)
    if rs.description:
        out += _prose(rs.description, width)
    out += ["", "Source documents:"]
    out += grid(DOCUMENT_COLUMNS, [(d.file, d.title) for d in rs.documents], width, indent=INDENT)
    for note in rs.notes:
        out += _prose(f"Note: {note}", width)
    out += ["", f"Roles ({len(rs.roles)}):"]
    roles = [
        (r.id, r.description + (f" (also {', '.join(r.implies)})" if r.implies else ""))
        for r in rs.roles
    ]
    out += grid(ROLE_COLUMNS, roles, width, indent=INDENT)
    out += ["", f"Flows ({len(rs.flows)}):"]
    flows = [
        (
            r.id,
            f"{r.from_role} → {r.to_role}",
            f"{r.proto} {r.port_text()}",
            r.app,
            r.security,
            _yes(r.disk_transfer),
            _yes(r.expected),
            r.pair or "",
        )
        for r in rs.flows
    ]
    out += grid(FLOW_COLUMNS, flows, width, indent=INDENT)
    local = [r.id for r in rs.flows if r.scope == "local"]
    if local:
        out.append("")
        out += _prose(f"Scope local (only within the host): {', '.join(local)}", width)
    out += ["", *_prose(f"TLS policy: {rs.min_tls} or later", width)]
    if rs.denies:
        out += ["", f"Deny ({len(rs.denies)}):"]
        denies = [
            (d.id, d.describe(), f'{d.source.document}: "{d.source.text}"') for d in rs.denies
        ]
        out += grid(DENY_COLUMNS, denies, width, indent=INDENT)
    return "\n".join(out) + "\n"
