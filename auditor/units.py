"""Human-readable sizes, shared by the findings' messages and the renderers."""

from __future__ import annotations


def human_bytes(n: object) -> str:
    """``1.2 MB`` (decimal units, as capture tools print them); ``-`` for a non-number."""
    if not isinstance(n, int | float) or isinstance(n, bool):
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
