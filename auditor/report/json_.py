"""The canonical JSON form of the audit result: the contract itself, serialised.

Every other format derives from this dict, so this renderer adds nothing and reorders
nothing: keys keep the order the audit produced them in (docs/json-contract.md), which
makes two nights' outputs diff line by line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def render(result: Mapping[str, Any]) -> str:
    """``result`` as indented UTF-8 JSON with a trailing newline."""
    return json.dumps(result, indent=2, ensure_ascii=False) + "\n"
