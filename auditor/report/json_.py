"""The canonical JSON form of the audit result: the contract itself, serialised.

Every other format derives from this dict, so this renderer adds nothing and reorders
nothing: keys keep the order the audit produced them in (docs/json-contract.md).

Layout: the top-level keys and the keys of top-level objects one per line, and each member
of a list of objects (a finding, a role, a capture, a rule) on a line of its own, compact.
So two nights' outputs diff finding by finding (a changed finding is one changed line),
``grep`` finds a finding whole, and the text is written by the C encoder: a pretty-printed
document of thousands of findings takes the json module's pure-Python encoder three times
as long.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auditor.findings.model import AuditDocument

from auditor.escape import json_text

_compact = json.JSONEncoder(ensure_ascii=False).encode


def render_listing(
    head: Mapping[str, Any], key: str, batches: Iterable[Sequence[Mapping[str, Any]]]
) -> Iterator[str]:
    """:func:`render` of ``{**head, key: [the objects of every batch]}``, a batch at a time:
    for a document too large to hold (a flow table of millions of rows). The same text."""
    text = render({**head, key: []})
    empty = "[]\n}\n"
    sep = ""
    for batch in batches:
        if not batch:
            continue
        if not sep:
            yield text[: -len(empty)] + "[\n"
        yield sep + ",\n".join("    " + json_text(_compact(v)) for v in batch)
        sep = ",\n"
    yield "\n  ]\n}\n" if sep else text


def render(result: AuditDocument | Mapping[str, Any]) -> str:
    """``result`` as UTF-8 JSON (laid out as the module says) with a trailing newline: a
    document's ``to_json()``, a dict (a saved result, the flows' document) as it is."""
    if isinstance(result, Mapping):
        doc = result
    else:  # the roles as the document holds them: a RoleEntries gives its text at once
        doc = replace(result, roles=()).to_json()
        roles = result.roles
        doc["roles"] = roles if hasattr(roles, "encoded") else [dict(r) for r in roles]
    parts: list[str] = []
    _layout(doc, 0, parts)
    parts.append("\n")
    return json_text("".join(parts))


def _layout(value: Any, depth: int, out: list[str]) -> None:
    """Append the text of ``value`` at ``depth`` to ``out`` (pieces joined once: a
    document of 100,000 hosts is 11 MB, better copied once than at every level)."""
    pad = "  " * (depth + 1)
    end = "\n" + "  " * depth
    if isinstance(value, Mapping) and value and depth < 2:
        sep = "{\n"
        for k, v in value.items():
            out.append(f"{sep}{pad}{_compact(k)}: ")
            _layout(v, depth + 1, out)
            sep = ",\n"
        out.append(end + "}")
        return
    encoded = getattr(value, "encoded", None)
    if encoded is not None:  # auditor.rolemap.RoleEntries: a list of objects, each on a line
        if value and depth < 3:
            out += ["[\n", pad, (",\n" + pad).join(encoded(_compact)), end + "]"]
            return
        value = list(value)
    if (
        isinstance(value, list)
        and value
        and depth < 3
        and any(isinstance(v, Mapping | list) for v in value)
    ):
        out += ["[\n", pad, (",\n" + pad).join(map(_compact, value)), end + "]"]
        return
    out.append(_compact(value))
