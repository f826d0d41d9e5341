"""YAML with line numbers: plain Python values plus a key-path -> line map.

PyYAML's ``safe_load`` throws the marks away, and an error that says only "bad port" in a
400-line ruleset is no help. So we compose the node tree (which keeps ``start_mark``) and
build the values ourselves, recording for every key path (``("flows", 3, "ports")``) the
line it starts on. Duplicate mapping keys, which PyYAML silently overwrites, are errors
here. Shared by the ruleset and inventory loaders; raises :class:`YamlProblem`, never a
PyYAML exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Key = str | int
KeyPath = tuple[Key, ...]


def keypath_text(kp: KeyPath) -> str:
    """``("flows", 3, "ports")`` -> ``flows[3].ports``; the empty path is ``(top level)``."""
    out = ""
    for k in kp:
        if isinstance(k, int):
            out += f"[{k}]"
        else:
            out += f".{k}" if out else str(k)
    return out or "(top level)"


def display_path(path: str | Path) -> str:
    """A path as the user would write it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        rel = os.path.relpath(p.resolve(), Path.cwd())
    except ValueError:  # other drive (Windows)
        return str(path)
    return str(path) if rel.startswith("..") else rel


@dataclass
class Problem:
    """One thing wrong (or doubtful) in a file: where it is and what was expected."""

    file: str
    line: int | None
    where: str
    message: str
    level: str = "error"  # "error" | "warning"

    def text(self) -> str:
        """``where: message`` without the file and line."""
        return f"{self.where}: {self.message}" if self.where else self.message

    def one_line(self) -> str:
        line = f":{self.line}" if self.line else ""
        prefix = "warning: " if self.level == "warning" else ""
        return f"{self.file}{line}: {prefix}{self.text()}"


class YamlProblem(Exception):
    """The file cannot be read or is not well-formed YAML."""

    def __init__(self, line: int | None, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(message)


@dataclass
class Located:
    """Parsed YAML data plus the line each key path starts on (1-based)."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, kp: KeyPath) -> int | None:
        """The line of ``kp``, or of its nearest recorded ancestor."""
        while True:
            if kp in self.lines:
                return self.lines[kp]
            if not kp:
                return None
            kp = kp[:-1]


_constructor = yaml.constructor.SafeConstructor()
# libyaml's composer keeps the same marks and is ~10x faster than the pure-Python one
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _build(node: Node, kp: KeyPath, lines: dict[KeyPath, int], strings: bool = False) -> Any:
    lines.setdefault(kp, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlProblem(
                    key_node.start_mark.line + 1,
                    f"{keypath_text(kp)}: merge keys ('<<') are not supported; repeat the keys",
                )
            if not isinstance(key_node, ScalarNode):
                raise YamlProblem(
                    key_node.start_mark.line + 1,
                    f"{keypath_text(kp)}: expected a plain key, got a "
                    f"{'list' if isinstance(key_node, SequenceNode) else 'mapping'}",
                )
            key = _constructor.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key) if key is not None else "null"
            if key in out:
                raise YamlProblem(
                    key_node.start_mark.line + 1,
                    f"{keypath_text((*kp, key))}: duplicate key '{key}' "
                    f"(first at line {lines[(*kp, key)]})",
                )
            lines[(*kp, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*kp, key), lines, strings)
        return out
    if isinstance(node, SequenceNode):
        return [_build(item, (*kp, i), lines, strings) for i, item in enumerate(node.value)]
    if strings:
        # The scalar as written: YAML 1.1 would turn an IPv6 address such as 2001:0:0:1
        # into a base-60 integer.
        return None if node.tag == "tag:yaml.org,2002:null" else str(node.value)
    return _constructor.construct_object(node)


def parse_yaml(text: str, *, strings: bool = False) -> Located:
    """Parse one YAML document; raise :class:`YamlProblem` with a line on any error.

    With ``strings=True`` every non-null scalar is returned as the text written.
    """
    try:
        try:
            root = yaml.compose(text, Loader=_LOADER)
        except yaml.YAMLError:
            # the pure-Python parser words its errors better; errors are rare, so re-parse
            root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _marked_problem(exc) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(None, f"not valid YAML: {exc}") from None
    if root is None:
        return Located(None, {})
    lines: dict[KeyPath, int] = {}
    try:
        data = _build(root, (), lines, strings)
    except yaml.MarkedYAMLError as exc:
        raise _marked_problem(exc) from None
    return Located(data, lines)


def _marked_problem(exc: yaml.MarkedYAMLError) -> YamlProblem:
    """PyYAML's problem and context marks as one line: the problem's line is the place."""
    mark = exc.problem_mark or exc.context_mark
    what = str(exc.problem or exc.context or "syntax error")
    ctx = exc.context_mark
    if exc.context and exc.problem and ctx is not None and ctx.line != getattr(mark, "line", None):
        what += f" ({exc.context} that starts at line {ctx.line + 1})"
    if "alias" in str(exc.context):
        what += " (a value starting with '*' is a YAML alias: quote it, as in \"*.example.com\")"
    return YamlProblem(mark.line + 1 if mark else None, f"not valid YAML: {what}")


def read_text(path: Path) -> str:
    """The file as UTF-8 text; :class:`YamlProblem` (no line) when it cannot be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise YamlProblem(None, "no such file") from None
    except IsADirectoryError:
        raise YamlProblem(None, "is a directory, expected a file") from None
    except OSError as exc:
        raise YamlProblem(None, f"cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlProblem(None, f"not UTF-8 text (byte offset {exc.start})") from None


def read_yaml(path: Path, *, strings: bool = False) -> Located:
    return parse_yaml(read_text(path), strings=strings)
