"""Renderers: the audit result (docs/json-contract.md) -> text in one format.

Each format is a module with a ``render(result, ...) -> str`` that reads only the result,
never the flows or the ruleset files, so any saved ``--format json`` output can be
rendered again in another format later. The result is an
:class:`~auditor.findings.model.AuditDocument` (what ``audit()`` returns, as
``AuditResult.result``) or a saved result's dict; the renderers read the
typed document (a dict is read with ``as_document``), the JSON renderer writes a document's
``to_json()`` (a dict as it is). Writing the text out is the caller's job.

Example:

    >>> from auditor.report import render
    >>> print(render(result, "table", color=False))
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auditor.findings.model import AuditDocument

__all__ = ["FORMATS", "render"]

#: format -> the module of auditor.report that renders it (imported when first used: a JSON
#: audit does not pay for loading the HTML and SARIF writers)
_MODULES = {
    "table": "table",
    "json": "json_",
    "sarif": "sarif",
    "html": "html",
    "csv": "csv_",
    "markdown": "markdown",
}

#: Format names accepted by `render`, the terminal table first (the CLI's default).
FORMATS: tuple[str, ...] = tuple(_MODULES)


def render(
    result: AuditDocument | Mapping[str, Any], fmt: str, *, color: bool = False, width: int = 100
) -> str:
    """Render the audit ``result`` in format ``fmt`` (one of `FORMATS`).

    ``color`` and ``width`` only affect ``table``: ANSI colours, for a terminal, and the
    most columns a line takes (the CLI decides both: ``auditor.cli.width``).
    Raises ``ValueError`` naming the known formats when ``fmt`` is not one of them.
    """
    try:
        module = importlib.import_module(f"auditor.report.{_MODULES[fmt]}")
    except KeyError:
        raise ValueError(
            f"unknown report format {fmt!r}: expected one of {', '.join(FORMATS)}"
        ) from None
    if fmt == "table":
        return str(module.render(result, color=color, width=width))
    return str(module.render(result))
