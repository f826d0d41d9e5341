"""How wide the terminal tables are: one rule for every command.

``COLUMNS``, when set, wins (a user's choice, and how tests ask for a width); else the
terminal's width when the table goes to a terminal; else 100 columns (a pipe, a file
given with ``-o``): wide enough to read, narrow enough to paste into a ticket. The
renderers in :mod:`auditor.report` take the width as an argument and never look at the
terminal themselves.
"""

from __future__ import annotations

import os
import shutil
import sys

#: the width of a table that goes to a pipe or a file
DEFAULT_WIDTH = 100
#: narrower than this, tables are laid out for this width anyway
MIN_WIDTH = 40


def table_width(to_stdout: bool = True) -> int:
    """Columns for a table written to stdout (``to_stdout``) or to a file (``-o``)."""
    given = os.environ.get("COLUMNS", "").strip()
    if given.isdigit() and int(given) > 0:
        return max(int(given), MIN_WIDTH)
    try:
        terminal = to_stdout and sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        terminal = False
    if not terminal:
        return DEFAULT_WIDTH
    columns = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return max(columns, MIN_WIDTH) if columns > 0 else DEFAULT_WIDTH
