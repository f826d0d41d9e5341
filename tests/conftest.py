"""Shared test set-up: tables are laid out as a user's pipe would get them.

The terminal tables follow ``COLUMNS`` when it is set (auditor/cli/width.py). A CI runner
or a developer's shell may export it; the tests that pin a layout must not depend on that,
so it is removed for every test, and the tests about width set it themselves.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_inherited_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
