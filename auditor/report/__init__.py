"""Renderers: the audit result dict (docs/json-contract.md) -> text in one format.

Each format is a module with a ``render(result, ...) -> str`` that reads only the result
dict, never the flows or the ruleset files, so any saved ``--format json`` output can be
rendered again in another format later. Writing the text out is the caller's job.

Example:

    >>> from auditor.report import render
    >>> print(render(result, "table", color=False))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from auditor.report import csv_, html, json_, markdown, sarif, table

__all__ = ["FORMATS", "render"]

_RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "table": lambda result: table.render(result, color=False),
    "json": json_.render,
    "sarif": sarif.render,
    "html": html.render,
    "csv": csv_.render,
    "markdown": markdown.render,
}

#: Format names accepted by `render`, the terminal table first (the CLI's default).
FORMATS: tuple[str, ...] = tuple(_RENDERERS)


def render(result: Mapping[str, Any], fmt: str, *, color: bool = False) -> str:
    """Render the audit ``result`` in format ``fmt`` (one of `FORMATS`).

    ``color`` only affects ``table``: ANSI colours, for a terminal (the CLI decides).
    Raises ``ValueError`` naming the known formats when ``fmt`` is not one of them.
    """
    if fmt == "table":
        return table.render(result, color=color)
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown report format {fmt!r}: expected one of {', '.join(FORMATS)}"
        ) from None
    return renderer(result)
