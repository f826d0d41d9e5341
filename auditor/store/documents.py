"""Saved audit documents (``--format json`` output) read back, checked to be one.

`report` renders them again and `diff` compares two of them; both need to refuse, in one
line, a file that is not an audit document (not JSON, the flows JSON, a SARIF file)
before any renderer meets it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditor.errors import AuditorError, ExitCode


class DocumentError(AuditorError):
    """A file given as a saved audit document that is not one."""

    exit_code = ExitCode.USAGE


def check_document(value: Any, path: str | Path) -> dict[str, Any]:
    """``value`` if it is an audit document; DocumentError saying what it lacks."""
    if not isinstance(value, dict):
        raise DocumentError(path, "not a pcap-audit audit document: the JSON is not an object")
    tool = value.get("tool")
    if not isinstance(tool, Mapping) or tool.get("name") != "pcap-audit":
        if value.get("$schema", "").find("sarif") >= 0 or "runs" in value:
            what = "a SARIF file (render from the audit's --format json output instead)"
        elif isinstance(value.get("results"), list) and "exit_code" in value:
            what = "an --each document (one result per set): audit the sets one by one"
        elif "flows" in value and "findings" not in value:
            what = "a flows document (pcap-audit flows), not an audit"
        else:
            what = 'no "tool": {"name": "pcap-audit"}'
        raise DocumentError(path, f"not a pcap-audit audit document: {what}")
    for key, kind in (("summary", dict), ("findings", list), ("captures", list)):
        if not isinstance(value.get(key), kind):
            raise DocumentError(
                path,
                f'not a pcap-audit audit document: no "{key}" {kind.__name__.replace("dict", "object")}',
            )
    for i, finding in enumerate(value["findings"]):
        if not isinstance(finding, Mapping) or not all(
            isinstance(finding.get(k), str) for k in ("id", "kind", "severity")
        ):
            raise DocumentError(
                path,
                f"findings[{i}]: expected an object with id, kind and severity strings",
            )
    return value


def load_document(path: str | Path) -> dict[str, Any]:
    """The audit document saved at ``path``; DocumentError (exit USAGE) for anything else."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DocumentError(p, "no such file") from None
    except IsADirectoryError:
        raise DocumentError(p, "is a directory, expected an audit JSON file") from None
    except OSError as exc:
        raise DocumentError(p, f"cannot read: {exc.strerror or exc}") from None
    try:
        value = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DocumentError(p, f"not UTF-8 text (byte offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DocumentError(p, f"not JSON: {exc.msg}", where=f"{exc.lineno}:{exc.colno}") from None
    return check_document(value, p)
