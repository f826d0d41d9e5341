"""YAML with line numbers: plain Python values plus a key-path -> line map.

PyYAML's ``safe_load`` throws the marks away, and an error that says only "bad port" in a
400-line ruleset is no help. So we compose the node tree (which keeps ``start_mark``) and
build the values ourselves, recording for every key path (``("flows", 3, "ports")``) the
line it starts on. Duplicate mapping keys, which PyYAML silently overwrites, are errors
here. Shared by the ruleset and inventory loaders; raises :class:`YamlProblem`, never a
PyYAML exception.

The files may come from someone else, so reading them is bounded: only regular files (not
``/dev/zero``, a FIFO or a directory), at most :data:`MAX_BYTES`, at most
:data:`MAX_DEPTH` levels of nesting, and aliases may expand to at most
:data:`MAX_ALIAS_NODES` values and :data:`MAX_ALIAS_CHARS` characters in all (a "billion
laughs" file of a few hundred bytes would otherwise expand to billions). The composed node tree shares an aliased node, so composing
is linear in the file; the expansion happens in :func:`_build`, which counts it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Key = str | int
KeyPath = tuple[Key, ...]

#: Largest inventory read (a 100,000-entry inventory is about 2 MB) ...
MAX_BYTES = 16 * 1024 * 1024
#: ... and largest ruleset (the largest built-in is 52 kB; 4 MiB is some 25,000 rules).
MAX_RULESET_BYTES = 4 * 1024 * 1024
#: Deepest nesting of mappings and lists (the formats need 5).
MAX_DEPTH = 64
#: Most values that aliases (``*name``) may add to the document in all, and most
#: characters of text they may repeat (one long text repeated by 10,000 aliases is as bad).
MAX_ALIAS_NODES = 10_000
MAX_ALIAS_CHARS = 1_000_000
#: Longest excerpt of a file's content quoted in a message.
EXCERPT_CHARS = 60


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with ``...`` when cut): messages quote the
    input, never a whole file."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def listing(items: Sequence[str], limit: int = 40) -> str:
    """``a, b, c`` -- or the first ``limit`` and how many in all: a message lists the known
    roles of a ruleset, which someone else may have made with thousands."""
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", ... ({len(items):,} in all)"


def keypath_text(kp: KeyPath) -> str:
    """``("flows", 3, "ports")`` -> ``flows[3].ports``; the empty path is ``(top level)``."""
    out = ""
    for k in kp:
        if isinstance(k, int):
            out += f"[{k}]"
        else:
            out += f".{excerpt(k)}" if out else excerpt(k)
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
    #: lists of plain values (an inventory's 100,000 addresses), whose items' lines are
    #: looked up in their nodes when asked rather than recorded one by one
    scalar_lists: dict[KeyPath, list[Node]] = field(default_factory=dict)

    def line(self, kp: KeyPath) -> int | None:
        """The line of ``kp``, or of its nearest recorded ancestor."""
        while True:
            if kp in self.lines:
                return self.lines[kp]
            if not kp:
                return None
            items = self.scalar_lists.get(kp[:-1])
            if items is not None and isinstance(kp[-1], int) and 0 <= kp[-1] < len(items):
                return int(items[kp[-1]].start_mark.line) + 1
            kp = kp[:-1]


_constructor = yaml.constructor.SafeConstructor()
# libyaml's composer keeps the same marks and is ~10x faster than the pure-Python one
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_NULL_TAG = "tag:yaml.org,2002:null"


class _StringsLoader(_LOADER):  # type: ignore[valid-type,misc]
    """For ``strings=True``: a plain scalar is a string, null or a merge key, nothing else,
    so the implicit resolver's dozen regular expressions per scalar (half the time of a
    100,000-entry inventory) are not needed."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is not ScalarNode:
            return str(super().resolve(kind, value, implicit))
        if implicit[0] and value in _NULLS:
            return "tag:yaml.org,2002:null"
        if implicit[0] and value == "<<":
            return "tag:yaml.org,2002:merge"
        return "tag:yaml.org,2002:str"


class _Budget:
    """What one document may still expand to: collection nodes already built (a second
    visit is an alias), values added by aliases so far."""

    def __init__(self) -> None:
        self.built: set[int] = set()
        self.alias_depth = 0
        self.alias_nodes = 0
        self.alias_chars = 0
        self.alias_at: tuple[KeyPath, int | None] = ((), None)
        self.scalar_lists: dict[KeyPath, list[Node]] = {}


def _build(
    node: Node,
    kp: KeyPath,
    lines: dict[KeyPath, int],
    strings: bool = False,
    budget: _Budget | None = None,
    depth: int = 0,
) -> Any:
    budget = budget or _Budget()
    if depth > MAX_DEPTH:
        raise YamlProblem(
            node.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep; refused"
        )
    alias = False
    if not budget.alias_depth:
        if id(node) in budget.built:
            alias = True
            budget.alias_depth += 1
            # the alias's own mark is not kept in the node tree: its key's or parent's line
            budget.alias_at = (kp, lines.get(kp) or lines.get(kp[:-1]))
        else:
            budget.built.add(id(node))
    if budget.alias_depth:
        budget.alias_nodes += 1
        if isinstance(node, ScalarNode):
            budget.alias_chars += len(node.value)
        if budget.alias_nodes > MAX_ALIAS_NODES or budget.alias_chars > MAX_ALIAS_CHARS:
            if alias:
                budget.alias_depth -= 1
            where, line = budget.alias_at
            what = (
                f"{MAX_ALIAS_NODES:,} values"
                if budget.alias_nodes > MAX_ALIAS_NODES
                else f"{MAX_ALIAS_CHARS:,} characters"
            )
            raise YamlProblem(
                line,
                f"{keypath_text(where)}: aliases expand to more than {what}; refused "
                "(write the values out, or use fewer aliases)",
            )
    lines.setdefault(kp, node.start_mark.line + 1)
    try:
        return _build_node(node, kp, lines, strings, budget, depth)
    finally:
        if alias:
            budget.alias_depth -= 1


def _build_node(
    node: Node,
    kp: KeyPath,
    lines: dict[KeyPath, int],
    strings: bool,
    budget: _Budget,
    depth: int,
) -> Any:
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
            key = _construct(key_node, kp)
            if not isinstance(key, str):
                key = str(key) if key is not None else "null"
            if key in out:
                raise YamlProblem(
                    key_node.start_mark.line + 1,
                    f"{keypath_text((*kp, key))}: duplicate key '{key}' "
                    f"(first at line {lines[(*kp, key)]})",
                )
            lines[(*kp, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*kp, key), lines, strings, budget, depth + 1)
        return out
    if isinstance(node, SequenceNode):
        if strings and not budget.alias_depth and depth < MAX_DEPTH:
            items = node.value
            if all(type(item) is ScalarNode for item in items):
                return _scalar_list(items, kp, lines, budget, depth)
        return [
            _build(item, (*kp, i), lines, strings, budget, depth + 1)
            for i, item in enumerate(node.value)
        ]
    if strings:
        # The scalar as written: YAML 1.1 would turn an IPv6 address such as 2001:0:0:1
        # into a base-60 integer.
        return None if node.tag == "tag:yaml.org,2002:null" else str(node.value)
    return _construct(node, kp)


def _scalar_list(
    items: list[Node], kp: KeyPath, lines: dict[KeyPath, int], budget: _Budget, depth: int
) -> list[str | None]:
    """A list of scalars, for ``strings=True``: what :func:`_build` gives item by item, a
    few times faster (an inventory's 100,000 addresses). An item seen before is an alias
    and takes the slow way, which counts it against the budget; the items' lines are left
    in their nodes (:attr:`Located.scalar_lists`)."""
    built = budget.built
    out: list[str | None] = []
    for i, item in enumerate(items):
        key = id(item)
        if key in built:
            out.append(_build(item, (*kp, i), lines, True, budget, depth + 1))
        else:
            built.add(key)
            out.append(None if item.tag == _NULL_TAG else item.value)
    budget.scalar_lists[kp] = items
    return out


def _construct(node: Node, kp: KeyPath) -> Any:
    """A scalar's value; a value Python will not make (an integer of 5,000 digits, a date
    that does not exist) is a problem at its line, not a crash."""
    try:
        return _constructor.construct_object(node)
    except (ValueError, OverflowError, TypeError) as exc:
        raise YamlProblem(
            node.start_mark.line + 1, f"{keypath_text(kp)}: unreadable value ({excerpt(str(exc))})"
        ) from None


def parse_yaml(text: str, *, strings: bool = False) -> Located:
    """Parse one YAML document; raise :class:`YamlProblem` with a line on any error.

    With ``strings=True`` every non-null scalar is returned as the text written.
    """
    try:
        try:
            root = yaml.compose(text, Loader=_StringsLoader if strings else _LOADER)
        except yaml.MarkedYAMLError as exc:
            if "nesting depth" in str(exc.problem):  # libyaml stops at 1,000 levels
                mark = exc.problem_mark
                raise YamlProblem(
                    mark.line + 1 if mark else None,
                    f"nested more than {MAX_DEPTH} levels deep; refused",
                ) from None
            # the pure-Python parser words its errors better; errors are rare, so re-parse
            root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _marked_problem(exc) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(None, f"not valid YAML: {excerpt(str(exc))}") from None
    except RecursionError:  # the pure-Python composer recurses once per level
        raise YamlProblem(None, f"nested more than {MAX_DEPTH} levels deep; refused") from None
    if root is None:
        return Located(None, {})
    lines: dict[KeyPath, int] = {}
    budget = _Budget()
    try:
        data = _build(root, (), lines, strings, budget)
    except yaml.MarkedYAMLError as exc:
        raise _marked_problem(exc) from None
    return Located(data, lines, budget.scalar_lists)


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


def read_text(path: Path, limit: int = MAX_BYTES) -> str:
    """The file as UTF-8 text; :class:`YamlProblem` (no line) when it cannot be read, is
    not a regular file or is larger than ``limit`` bytes.

    Opened without blocking (a FIFO would wait for a writer) and checked on the open
    descriptor, so what is read is what was checked.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise YamlProblem(None, "no such file") from None
    except OSError as exc:
        raise YamlProblem(None, f"cannot read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise YamlProblem(None, "is a directory, expected a file")
        if not stat.S_ISREG(mode):
            raise YamlProblem(None, f"is {_file_kind(mode)}, expected a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise YamlProblem(None, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise YamlProblem(None, f"larger than {limit:,} bytes; refused")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlProblem(None, f"not UTF-8 text (byte offset {exc.start})") from None


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_yaml(path: Path, *, strings: bool = False, limit: int = MAX_BYTES) -> Located:
    return parse_yaml(read_text(path, limit), strings=strings)
