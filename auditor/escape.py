"""Wire content is data, never control: the one function every output that shows text
from a capture (or from a file someone else wrote) goes through.

A capture is made by whoever sends the packets: an HTTP Host or User-Agent, an SNI, a DNS
answer, an SSH banner, even a capture's file name can carry terminal escape sequences
(ESC ] 0 ; title BEL retitles the terminal, ESC [ 2 J clears it), right-to-left overrides
that make a line lie about what it says, or a spreadsheet formula (``=cmd|' /C calc'!A0``)
that a CSV viewer would run. :func:`printable` shows control and invisible format
characters as ``\\xNN`` / ``\\uNNNN`` escapes and, for a spreadsheet cell, puts a ``'`` in
front of text that a spreadsheet would take for a formula. Used by the audit's renderers
(:mod:`auditor.report`), the flow table and CSV, ``roles``, ``rulesets show``, inventory
comments and every diagnostic line on stderr. JSON carries the values as data, unchanged,
but :func:`json_text` writes the characters a terminal would act on as ``\\uNNNN`` escapes
(the json module escapes only C0), so ``pcap-audit flows --format json`` on a terminal is
as harmless as the table and a JSON parser reads back the same string. Parquet is binary.
"""

from __future__ import annotations

import re

# C0/C1 controls, DEL, and the Unicode format characters that reorder or hide text
# (bidi overrides and isolates, zero-width characters, BOM).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_UNSAFE_WITH_NEWLINES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]"
)
#: What a spreadsheet takes for the start of a formula (OWASP "CSV injection"); tab and
#: carriage return are escaped before this test, so they cannot lead a cell any more.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# What json.dumps(ensure_ascii=False) leaves raw that a terminal or a text viewer acts on.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, *, keep_newlines: bool = False, spreadsheet: bool = False) -> str:
    """``value`` as text that shows, and does, nothing but itself.

    Control and bidi characters become ``\\xNN`` escapes (newlines too, unless
    ``keep_newlines``); with ``spreadsheet=True`` (a CSV cell) text starting like a
    formula gets a leading ``'``. ``None`` is the empty string.
    """
    text = "" if value is None else str(value)
    pattern = _UNSAFE if keep_newlines else _UNSAFE_WITH_NEWLINES
    text = pattern.sub(_escape_char, text)
    if spreadsheet and text.startswith(FORMULA_START):
        return "'" + text
    return text


def csv_cell(value: object) -> object:
    """A CSV cell of a value that may come off the wire: text through :func:`printable`
    (newlines kept, a formula start neutralised), a list joined with ``;`` first; numbers,
    flags and ``None`` as they are (the csv module writes them)."""
    if isinstance(value, list):
        value = ";".join(map(str, value))
    if isinstance(value, str):
        return printable(value, keep_newlines=True, spreadsheet=True)
    return value


#: a cell of the texts joined by newlines that starts like a formula (or a line that does:
#: a false alarm for a text with a newline inside, which only sends it the slow way)
_FORMULA_LINE = re.compile("(?:^|\n)[=+\\-@\t\r]")


def unchanged_cells(texts: list[str]) -> bool:
    """Whether every text is already what ``printable(text, keep_newlines=True,
    spreadsheet=True)`` makes of it (nothing to escape, no formula start): one search over
    them all, so a CSV column of plain values skips the call per cell."""
    joined = "\n".join(texts)
    return _UNSAFE.search(joined) is None and _FORMULA_LINE.search(joined) is None


def json_text(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with DEL, C1 and the bidi /
    invisible format characters as ``\\uNNNN`` escapes: the same JSON value, nothing a
    terminal acts on. (Such characters can only occur inside JSON strings.)"""
    if text.isascii() and "\x7f" not in text:  # the common case, without a regex pass
        return text
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
