"""The one table writer for the terminal: columns with headers, fitted to a width.

``flows``, ``roles`` and ``rulesets show`` print tables whose cells come off the wire or
out of someone else's file, at whatever width the terminal has. Each column says how it
gives way when the table is too wide (:class:`Column`): ``wrap`` (text, broken at spaces,
long words cut), ``elide`` (identifiers such as Community IDs: a prefix and ``…``, still
enough to search for) or ``keep`` (short values such as counts, never narrowed). The
widest columns are narrowed first -- elided ones before the optional, the optional before
the rest (eliding costs no lines) -- never below their ``min_width``. Optional columns (``drop``) only take room the
others do not need: they are left out, the highest ``drop`` first, until the others fit
whole beside them, so a narrow terminal gets fewer columns rather than every column cut.
When the columns cannot fit even at their minimum, one space separates them instead of
two; failing that, each row is printed as ``header: value`` lines.
So no line is longer than the width, whatever the data.

Every cell and header goes through :func:`auditor.escape.printable` here, so a renderer
cannot forget to: a hostile Host header shows as its escapes, never acts on the terminal.
Width is display width: East Asian wide characters count two columns, combining marks
none. The width itself is the caller's decision (the CLI's, from the terminal or
``COLUMNS``); nothing here looks at the terminal.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from auditor.escape import printable

__all__ = ["Column", "display_width", "elide", "grid", "grid_lines", "wrap"]

#: the smallest width a table is laid out for; a narrower budget is treated as this
MIN_TABLE_WIDTH = 20
ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """One column: its header and how it gives way when the table is too wide.

    ``overflow``: ``wrap`` breaks the text over several lines (at spaces, cutting words
    longer than the column), ``elide`` cuts it to one line ending in ``…``, ``keep`` never
    narrows the column below its widest cell. ``min_width``: the narrowest a ``wrap`` or
    ``elide`` column is made (2 at least: one wide character). ``drop``: 0 (always shown)
    or a rank: an optional column, shown only when the others fit whole beside it at its
    minimum; the highest rank goes first. ``align``: ``right`` for numbers.
    """

    header: str
    overflow: Literal["wrap", "elide", "keep"] = "wrap"
    min_width: int = 8
    drop: int = 0
    align: Literal["left", "right"] = "left"


@functools.lru_cache(maxsize=4096)
def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


_NON_ASCII = re.compile("[^\x00-\x7f]")


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal (``text`` already free of control characters)."""
    if text.isascii():
        return len(text)
    others = _NON_ASCII.findall(text)
    return len(text) - len(others) + sum(_char_width(ch) for ch in others)


def _cut(text: str, width: int) -> tuple[str, str]:
    """The longest head of ``text`` at most ``width`` columns (one character at least), and
    the rest."""
    used = 0
    for i, ch in enumerate(text):
        w = _char_width(ch)
        if used + w > width and i > 0:
            return text[:i], text[i:]
        used += w
    return text, ""


#: where a word too long for its line is best cut: after a strong separator, else a weak one
_STRONG = frozenset(":+,;/|")
_WEAK = frozenset("-.]")


def _cut_word(word: str, width: int) -> tuple[str, str]:
    """Like :func:`_cut`, but after a separator when one falls in the second half of the
    line: ``agent+`` / ``pvs_agent``, ``trace.pcap:`` / ``1-15``, not ``trace.pc`` / ..."""
    head, rest = _cut(word, width)
    if rest:
        for separators in (_STRONG, _WEAK):
            for i in range(len(head) - 1, len(head) // 2 - 1, -1):
                if head[i] in separators:
                    return word[: i + 1], word[i + 1 :]
    return head, rest


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` columns: broken at spaces, a word longer than
    a line cut where the line ends. At least one line (maybe empty)."""
    width = max(width, 1)
    if display_width(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for word in text.split():
        while word:
            used = display_width(line)
            gap = 1 if line else 0
            size = display_width(word)
            if used + gap + size <= width:
                line = f"{line} {word}" if line else word
                word = ""
            elif size > width and width - used - gap >= 4:  # fill the line, go on below
                head, word = _cut_word(word, width - used - gap)
                lines.append(f"{line} {head}" if line else head)
                line = ""
            elif line:
                lines.append(line)
                line = ""
            else:
                head, word = _cut_word(word, width)
                lines.append(head)
    if line or not lines:
        lines.append(line)
    return lines


def elide(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, ending in ``…`` when something was cut."""
    if display_width(text) <= width:
        return text
    head, _ = _cut(text, max(width - 1, 1))
    return head + ELLIPSIS if width > 1 else ELLIPSIS


def _pad(text: str, width: int, align: str = "left") -> str:
    space = " " * max(width - display_width(text), 0)
    return space + text if align == "right" else text + space


def _level(natural: list[int], floor: list[int], budget: int) -> list[int]:
    """Narrow the widest first (one common ceiling), none below its floor, to fit
    ``budget`` if the floors allow."""
    lo, hi = 0, max(natural, default=0)  # the highest ceiling that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(max(f, min(n, mid)) for n, f in zip(natural, floor, strict=True)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return [max(f, min(n, lo)) for n, f in zip(natural, floor, strict=True)]


def _fit(natural: list[int], floor: list[int], rank: list[int], budget: int) -> list[int]:
    """Column widths summing to at most ``budget`` (``sum(floor) <= budget``). Columns give
    way by ``rank``, lowest first: only when a rank's columns, down to their floor, cannot
    make room do the next rank's narrow (the widest first within a rank)."""
    widths = list(natural)
    for r in sorted(set(rank)):
        over = sum(widths) - budget
        if over <= 0:
            break
        idx = [i for i, x in enumerate(rank) if x == r]
        room = budget - (sum(widths) - sum(widths[i] for i in idx))
        if sum(floor[i] for i in idx) <= room:
            got = _level([natural[i] for i in idx], [floor[i] for i in idx], room)
        else:
            got = [floor[i] for i in idx]
        for i, w in zip(idx, got, strict=True):
            widths[i] = w
    return widths


def _spend(widths: list[int], natural: list[int], elided: list[bool], spare: int) -> None:
    """Give ``spare`` columns back where it unwraps a column whole, the nearest first; the
    rest to the elided columns (more of each shows). A table may end narrower than its
    budget: a wrapped column made wider but still wrapped would only waste the space."""
    n = len(widths)
    for i in sorted(range(n), key=lambda k: (natural[k] - widths[k], k)):
        if 0 < natural[i] - widths[i] <= spare:
            spare -= natural[i] - widths[i]
            widths[i] = natural[i]
    for i in (k for k in range(n) if elided[k]):
        more = max(min(natural[i] - widths[i], spare), 0)
        widths[i] += more
        spare -= more


def _records(
    columns: Sequence[Column], rows: Iterable[list[str]], width: int, indent: str
) -> Iterator[str]:
    """Each row as ``header: value`` lines: the layout when no columns fit."""
    label = max(display_width(c.header) for c in columns) + 2
    for n, row in enumerate(rows):
        lines: list[str] = [""] if n else []
        for column, cell in zip(columns, row, strict=True):
            head = _pad(column.header + ":", label)
            if label <= width // 2:
                body = wrap(cell, width - label)
                lines.append(head + body[0])
                lines += [" " * label + x for x in body[1:]]
            else:
                lines.append(elide(column.header + ":", width))
                lines += ["  " + x for x in wrap(cell, width - 2)]
        yield from (indent + line.rstrip() for line in lines)


def grid(
    columns: Sequence[Column],
    rows: Iterable[Sequence[object]],
    width: int,
    *,
    gap: int = 2,
    indent: str = "",
    rule: bool = True,
) -> list[str]:
    """The table as lines of at most ``width`` columns (``indent`` included), trailing
    spaces stripped: headers, a rule of dashes under them (``rule``), then the rows.

    Cells are any values (``None`` is empty), shown through
    :func:`auditor.escape.printable`. A table with no rows is its headers alone.
    """
    cells = [[printable(v) for v in row] for row in rows]
    return list(_lines(columns, lambda: cells, width, gap=gap, indent=indent, rule=rule))


def grid_lines(
    columns: Sequence[Column],
    rows: Callable[[], Iterable[Sequence[object]]],
    width: int,
    *,
    gap: int = 2,
    indent: str = "",
    rule: bool = True,
) -> Iterator[str]:
    """:func:`grid` of a table too large to hold (a flow table of millions of rows): the
    same lines, one at a time. ``rows()`` gives the rows afresh each time it is called:
    they are read once for the columns' widths, at most once more for how wrapped columns
    break, and once to print, so memory holds one row, not the table."""

    def escaped() -> Iterator[list[str]]:
        return ([printable(v) for v in row] for row in rows())

    return _lines(columns, escaped, width, gap=gap, indent=indent, rule=rule)


def _lines(
    columns: Sequence[Column],
    rows: Callable[[], Iterable[list[str]]],
    width: int,
    *,
    gap: int,
    indent: str,
    rule: bool,
) -> Iterator[str]:
    """The table's lines; ``rows()`` gives the escaped cells afresh each time."""
    width = max(width, MIN_TABLE_WIDTH)
    budget = width - display_width(indent)
    cols = [replace(c, header=printable(c.header)) for c in columns]
    nat = [display_width(c.header) for c in cols]
    for row in rows():
        if len(row) != len(cols):
            raise ValueError(f"a row has {len(row)} cells for {len(cols)} columns")
        for i, v in enumerate(row):
            size = display_width(v)
            if size > nat[i]:
                nat[i] = size
    if not cols:
        return
    low = [
        n if c.overflow == "keep" else min(n, max(c.min_width, 2))
        for c, n in zip(cols, nat, strict=True)
    ]

    def needed(idx: list[int], gap: int) -> int:
        return sum(low[i] for i in idx) + gap * (len(idx) - 1)

    def room(idx: list[int]) -> bool:  # the others whole, the optional at their minimum
        return sum(low[i] if cols[i].drop else nat[i] for i in idx) + gap * (len(idx) - 1) <= budget

    shown = list(range(len(cols)))
    for rank in sorted({c.drop for c in cols if c.drop}, reverse=True):
        if room(shown):
            break
        shown = [i for i in shown if cols[i].drop != rank]
    if needed(shown, gap) > budget:
        gap = min(gap, 1)  # one space between columns rather than no table
    if not shown or needed(shown, gap) > budget:  # vertical space is not short: every column
        yield from _records(cols, rows(), budget, indent)
        return
    natural_w = [nat[i] for i in shown]
    elided = [cols[i].overflow == "elide" for i in shown]
    budget -= gap * (len(shown) - 1)
    # elided columns give way first (they cost no lines), then optional ones, then the rest
    ranks = [0 if cols[i].overflow == "elide" else 1 if cols[i].drop else 2 for i in shown]
    widths = _fit(natural_w, [low[i] for i in shown], ranks, budget)
    # a wrapped column as wide as its longest line, no more
    narrowed = [
        (k, i)
        for k, i in enumerate(shown)
        if widths[k] < natural_w[k] and cols[i].overflow == "wrap"
    ]
    if narrowed:
        longest = {k: _wrapped_width(cols[i].header, widths[k]) for k, i in narrowed}
        for row in rows():
            for k, i in narrowed:
                got = _wrapped_width(row[i], widths[k])
                if got > longest[k]:
                    longest[k] = got
        for k, got in longest.items():
            widths[k] = got
    _spend(widths, natural_w, elided, budget - sum(widths))
    space = " " * gap

    aligns = [cols[i].align for i in shown]

    def one_line(texts: list[str]) -> str | None:
        """The row on one line, when every cell fits its column (the common case, fast)."""
        out = []
        for w, a, text in zip(widths, aligns, texts, strict=True):
            pad = w - (len(text) if text.isascii() else display_width(text))
            if pad < 0:
                return None
            out.append(" " * pad + text if a == "right" else text + " " * pad)
        return (indent + space.join(out)).rstrip()

    def layout(texts: list[str], heading: bool) -> list[str]:
        parts: list[list[str]] = []
        for i, w, text in zip(shown, widths, texts, strict=True):
            if len(text) <= w and text.isascii():
                parts.append([text])
            elif cols[i].overflow == "elide" and not heading:
                parts.append([elide(text, w)])
            else:
                parts.append(wrap(text, w))
        height = max(len(p) for p in parts)
        out = []
        for k in range(height):
            line = space.join(
                _pad(p[k] if k < len(p) else "", w, "left" if heading else cols[i].align)
                for i, w, p in zip(shown, widths, parts, strict=True)
            )
            out.append((indent + line).rstrip())
        return out

    yield from layout([cols[i].header for i in shown], heading=True)
    if rule:
        yield (indent + space.join("-" * w for w in widths)).rstrip()
    for row in rows():
        texts = [row[i] for i in shown]
        line = one_line(texts)
        if line is not None:
            yield line
        else:
            yield from layout(texts, heading=False)


def _wrapped_width(text: str, width: int) -> int:
    """How wide ``text`` is in a column of ``width``: whole when it fits, else its longest
    wrapped line."""
    size = display_width(text)
    return size if size <= width else max(display_width(x) for x in wrap(text, width))
