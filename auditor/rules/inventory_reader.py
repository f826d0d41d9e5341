"""Reading an inventory file: YAML (the plain form a line at a time, anything else through
PyYAML with the bounds of :mod:`auditor.rules.yamlmarks`) or CSV, checked against the
ruleset with the file, line and key of every error (:func:`load_inventory`).
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auditor.errors import InventoryError
from auditor.rules.entries import ENTRY_EXPECTED, BadEntry
from auditor.rules.inventory import Inventory, _implies_of, _unknown_role
from auditor.rules.model import Ruleset
from auditor.rules.yamlmarks import (
    KeyPath,
    Located,
    YamlProblem,
    display_path,
    excerpt,
    keypath_text,
    parse_yaml,
    read_text,
)

TOP_KEYS = ("ruleset", "description", "roles", "expect", "ignore_expected")
EXPECT_KEYS = ("from", "to", "port", "proto")


def _resolve(ruleset: Ruleset | str | Path) -> Ruleset:
    if isinstance(ruleset, Ruleset):
        return ruleset
    from auditor.rules.loader import load_ruleset

    return load_ruleset(ruleset)


def load_inventory(path: str | Path, ruleset: Ruleset | str | Path) -> Inventory:
    """Read an inventory (YAML, or CSV when the name ends in ``.csv``) for ``ruleset``.

    Raises :class:`InventoryError` (exit code 2) naming the file, the line, the key and
    what was expected; an unknown role lists the ruleset's roles.
    """
    rs = _resolve(ruleset)
    p = Path(path)
    shown = display_path(p)
    try:
        text = read_text(p)
    except YamlProblem as exc:
        raise InventoryError(shown, exc.message) from None
    expect: dict[str, list[str]] = {"expect": [], "ignore_expected": []}
    # entries are checked once, by the index that is built of them (BadEntry): the file
    # says where the entry is
    where: Callable[[BadEntry], InventoryError]
    if p.suffix.lower() == ".csv":
        mapping, where = _parse_csv(text, shown, rs)
        description = ""
    else:
        mapping, description, where = _parse_yaml(text, shown, rs, expect)
    try:
        return Inventory(
            rs.name,
            mapping,
            _implies_of(rs),
            p,
            description,
            expect["expect"],
            expect["ignore_expected"],
        )
    except BadEntry as bad:
        raise where(bad) from None


def _port(value: Any) -> int | None:
    text = str(value).strip()
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else None


def _expectations(
    data: dict[str, Any],
    key: str,
    rs: Ruleset,
    fail: Any,
) -> list[str]:
    """The rule ids an ``expect`` / ``ignore_expected`` list names: each entry
    ``{from, to, port[, proto]}`` must name a documented flow (every rule it covers)."""
    items = data.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise fail((key,), "expected a list of {from: role, to: role, port: N}")
    known = set(rs.role_ids)
    out: list[str] = []
    for i, item in enumerate(items):
        kp: KeyPath = (key, i)
        if not isinstance(item, dict):
            raise fail(kp, "expected a mapping {from: role, to: role, port: N}")
        for k in item:
            if k not in EXPECT_KEYS:
                raise fail((*kp, k), f"unknown key '{k}'; allowed keys: {', '.join(EXPECT_KEYS)}")
        missing = [k for k in ("from", "to", "port") if k not in item]
        if missing:
            raise fail(
                kp, f"missing required key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
            )
        for k in ("from", "to"):
            if item[k] not in known:
                raise fail((*kp, k), _unknown_role(str(item[k]), rs).split(": ", 1)[1])
        port = _port(item["port"])
        if port is None:
            raise fail((*kp, "port"), f"expected a port 1-65535, got {item['port']!r}")
        proto = item.get("proto")
        rules = [
            r
            for r in rs.flows
            if r.from_role == item["from"]
            and r.to_role == item["to"]
            and r.covers(port)
            and (proto is None or proto in r.protos)
        ]
        if not rules:
            between = sorted(
                {
                    f"{r.proto}/{r.port_text()}"
                    for r in rs.flows
                    if r.from_role == item["from"] and r.to_role == item["to"]
                }
            )
            what = f"{item['from']} -> {item['to']} {proto or 'tcp/udp'}/{port}"
            raise fail(
                kp,
                f"names no documented flow of ruleset '{rs.name}': {what}; documented from "
                f"{item['from']} to {item['to']}: {', '.join(between) or 'nothing'}",
            )
        out += [r.id for r in rules if r.id not in out]
    return out


# The plain inventory, as dump_inventory writes it and most people would: top-level keys,
# ``roles:``, role ids, and one entry a line. Only lines whose YAML meaning is plain are
# taken: printable ASCII, no tabs, scalars quoted without escapes or plain without any
# character YAML gives a meaning (no '*', '&', '!', '#', ': ', flow brackets, no null word).
_QUICK_BAD = re.compile(r"[^\n\x20-\x7e]")
_QUICK_VALUE = r'"[ !#-\[\]-~]*"|\'[ -&(-~]*\'|[A-Za-z0-9_][A-Za-z0-9_.:/-]*'
_QUICK_TAIL = r"(?: +#.*)? *"
_QUICK_ITEM = re.compile(rf"( *)- ({_QUICK_VALUE}){_QUICK_TAIL}")
_QUICK_KEY = re.compile(rf"( *)([a-z_][a-z0-9_-]*):( \[\])?{_QUICK_TAIL}")
_QUICK_TOP = re.compile(rf"(ruleset|description): +({_QUICK_VALUE}){_QUICK_TAIL}")
# plain words YAML 1.1 reads as something else than text
_QUICK_WORDS = frozenset(
    form
    for word in ("null", "true", "false", "yes", "no", "on", "off")
    for form in (word, word.capitalize(), word.upper())
)


def _quick_value(text: str) -> str | None:
    if text[0] in "\"'":
        return text[1:-1]
    if text.endswith(":") or text in _QUICK_WORDS:
        return None
    return text


#: the value of each item line of a run of them (each line of a block that _quick_run took)
_QUICK_RUN_VALUE = re.compile(rf"^ *- ({_QUICK_VALUE}){_QUICK_TAIL}$", re.M)


@functools.cache
def _quick_run(indent: int, quoted: bool) -> re.Pattern[str]:
    """Consecutive item lines at ``indent``, each ended by a newline; with ``quoted`` only
    lines of a double-quoted value and nothing after it (a simpler and faster pattern)."""
    if quoted:
        return re.compile(rf'(?: {{{indent}}}- "[ !#-\[\]-~]*"\n)+')
    return re.compile(rf"(?: {{{indent}}}- (?:{_QUICK_VALUE}){_QUICK_TAIL}\n)+")


def _quick_yaml(text: str) -> dict[str, Any] | None:
    """The data of an inventory in the plain form (see above), as
    ``parse_yaml(text, strings=True)`` gives it, from one regular expression a line: a
    100,000-entry inventory in a tenth of the time PyYAML takes to compose it. None for
    anything else (flow lists, expectations, aliases, an error): the full parser reads
    those, and finds the lines of errors."""
    if _QUICK_BAD.search(text):
        return None
    data: dict[str, Any] = {}
    roles: dict[str, Any] | None = None  # the roles mapping, while in it
    role_indent = item_indent = -1
    items: list[str] | None = None  # the list the next item goes to
    role = ""
    pos = 0  # where the next line starts
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line, pos = text[pos:end], end + 1
        stripped = line.lstrip(" ")
        if not stripped or stripped[0] == "#":
            continue
        m = _QUICK_ITEM.fullmatch(line)
        if m:
            indent = len(m[1])
            value = _quick_value(m[2])
            if roles is None or not role or indent < role_indent or value is None:
                return None
            if items is None:
                if roles[role] is not None:  # after 'role: []'
                    return None
                items = roles[role] = []
                item_indent = indent
            elif indent != item_indent:
                return None
            items.append(value)
            # the item lines that follow at this indent, at once (100,000 of them)
            run = _quick_run(item_indent, True).match(text, pos)
            if run:  # each line '- "text"' and nothing else, as dump_inventory writes them
                skip = item_indent + 3
                items += [v[skip:-1] for v in run.group().split("\n")[:-1]]
                pos = run.end()
                continue
            run = _quick_run(item_indent, False).match(text, pos)
            if run:
                values = _QUICK_RUN_VALUE.findall(run.group())
                if any(v[-1] == ":" for v in values) or _QUICK_WORDS.intersection(values):
                    return None  # as _quick_value says
                items += [v[1:-1] if v[0] in "\"'" else v for v in values]
                pos = run.end()
            continue
        m = _QUICK_KEY.fullmatch(line)
        if m:
            indent, key = len(m[1]), m[2]
            if indent == 0:
                if key != "roles" or key in data or m[3]:
                    return None
                data["roles"] = None
                roles, role, role_indent = {}, "", -1
                continue
            if roles is None or key in roles or key in _QUICK_WORDS:
                return None
            if role_indent < 0:
                role_indent = indent
                data["roles"] = roles
            elif indent != role_indent:
                return None
            roles[key] = [] if m[3] else None
            role, items = key, None
            continue
        m = _QUICK_TOP.fullmatch(line)
        if m and m[1] not in data:
            value = _quick_value(m[2])
            if value is None:
                return None
            data[m[1]] = value
            roles, role = None, ""
            continue
        return None
    return data or None


def _parse_yaml(
    text: str, shown: str, rs: Ruleset, expect: dict[str, list[str]] | None = None
) -> tuple[dict[str, list[str]], str, Callable[[BadEntry], InventoryError]]:
    """The role -> entries mapping and description of an inventory in YAML, checked but
    for the entries themselves; and what to say of an entry found bad later."""
    quick = _quick_yaml(text)
    located = None
    if quick is None:
        try:
            located = parse_yaml(text, strings=True)
        except YamlProblem as exc:
            raise InventoryError(shown, exc.message, str(exc.line) if exc.line else None) from None

    def fail(kp: KeyPath, message: str) -> InventoryError:
        nonlocal located
        if located is None:  # read the quick way: the full parser finds the line
            try:
                located = parse_yaml(text, strings=True)
            except YamlProblem:
                located = Located(quick, {})
        line = located.line(kp)
        text_ = f"{keypath_text(kp)}: {message}" if kp else message
        return InventoryError(shown, text_, str(line) if line else None)

    data: Any = quick if located is None else located.data
    if data is None:
        raise fail((), "empty file: expected 'roles:' mapping role ids to addresses and names")
    if not isinstance(data, dict):
        raise fail((), "expected a mapping with the key 'roles' (role id -> list of entries)")
    for key in data:
        if key not in TOP_KEYS:
            raise fail((key,), f"unknown key '{excerpt(key)}'; allowed keys: {', '.join(TOP_KEYS)}")
    if "roles" not in data:
        raise fail((), "missing required key: roles")
    if data.get("ruleset") is not None and data["ruleset"] != rs.name:
        raise fail(
            ("ruleset",),
            f"this inventory is for ruleset '{data['ruleset']}', not '{rs.name}' "
            "(fix or remove the 'ruleset' key)",
        )
    if expect is not None:
        for key in ("expect", "ignore_expected"):
            expect[key] = _expectations(data, key, rs, fail)
        both = sorted(set(expect["expect"]) & set(expect["ignore_expected"]))
        if both:
            raise fail(("ignore_expected",), f"rule '{both[0]}' is both expected and ignored")

    def where(bad: BadEntry) -> InventoryError:
        kp = _entry_kp(("roles", bad.role), bad.index, roles[bad.role])
        return fail(kp, f"{ENTRY_EXPECTED}; {bad}")

    roles = data["roles"]
    if roles is None:
        return {}, str(data.get("description") or ""), where
    if not isinstance(roles, dict):
        raise fail(("roles",), "expected a mapping of role id -> list of addresses and names")
    known = set(rs.role_ids)
    mapping: dict[str, list[str]] = {}
    for role, entries in roles.items():
        kp: KeyPath = ("roles", role)
        if role not in known:
            raise fail(kp, _unknown_role(role, rs).split(": ", 1)[1])
        if entries is None:
            items: list[Any] = []
        elif isinstance(entries, str):
            items = [entries]
        elif isinstance(entries, list):
            items = entries
        else:
            raise fail(kp, f"{ENTRY_EXPECTED}, or a list of them; got a mapping")
        out: list[str] = []
        for i, entry in enumerate(items):
            if not isinstance(entry, str):
                kind = "list" if isinstance(entry, list) else "mapping"
                raise fail(_entry_kp(kp, i, entries), f"{ENTRY_EXPECTED}; got a {kind}")
            out.append(entry.strip())
        mapping[role] = out
    return mapping, str(data.get("description") or ""), where


def _entry_kp(kp: KeyPath, i: int, entries: object) -> KeyPath:
    return (*kp, i) if isinstance(entries, list) else kp


def _parse_csv(
    text: str, shown: str, rs: Ruleset
) -> tuple[dict[str, list[str]], Callable[[BadEntry], InventoryError]]:
    """Like :func:`_parse_yaml`, for an inventory in CSV (``role,entry[,comment]``)."""
    known = set(rs.role_ids)
    mapping: dict[str, list[str]] = {}
    lines: dict[str, list[int]] = {}  # the line of each entry, per role
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = [c.strip() for c in next(csv.reader([line]))]
        except csv.Error as exc:  # e.g. a field beyond the csv module's 128 kB limit
            raise InventoryError(shown, f"not a CSV row: {exc}", str(lineno)) from None
        if [c.lower() for c in row[:2]] == ["role", "entry"]:
            continue
        if len(row) < 2 or len(row) > 3 or not row[0] or not row[1]:
            raise InventoryError(
                shown,
                f"expected 'role,entry' or 'role,entry,comment', got {excerpt(line.strip())!r}",
                str(lineno),
            )
        role, entry = row[0], row[1]
        if role not in known:
            raise InventoryError(shown, _unknown_role(role, rs).split(": ", 1)[1], str(lineno))
        mapping.setdefault(role, []).append(entry)
        lines.setdefault(role, []).append(lineno)

    def where(bad: BadEntry) -> InventoryError:
        return InventoryError(shown, f"{ENTRY_EXPECTED}; {bad}", str(lines[bad.role][bad.index]))

    return mapping, where
