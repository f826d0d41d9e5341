"""DNS name patterns: one definition of "valid" and "matches" for rulesets and inventories.

A name is compared case-insensitively with any trailing dot dropped. A pattern is either an
exact name or ``*.`` followed by a name; the wildcard matches any depth of subdomain
(``*.amazonaws.com`` matches ``s3.eu-west-1.amazonaws.com``) but not the bare domain.
"""

from __future__ import annotations

import re

_LABEL_TEXT = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_LABEL = re.compile(rf"^{_LABEL_TEXT}$")
#: a whole name or ``*.`` wildcard, normalised, of valid labels (the length not checked):
#: what name_pattern_problem accepts, in one match (``fullmatch`` it)
VALID_NAME = re.compile(rf"(?:\*\.)?(?:{_LABEL_TEXT}\.)*{_LABEL_TEXT}")


def normalise_name(name: str) -> str:
    return name.strip().lower().rstrip(".")


def name_pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a DNS name or ``*.`` wildcard, or None when it is one."""
    p = normalise_name(pattern)
    if not p:
        return "empty name"
    if len(p) > 253:
        return "name longer than 253 characters"
    labels = p.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if not labels:
            return "a wildcard needs a domain after '*.'"
    for label in labels:
        if label == "*" or "*" in label:
            return "'*' is allowed only as the whole first label ('*.example.com')"
        if not _LABEL.match(label):
            return (
                f"label {label[:63]!r} is not a DNS label (letters, digits, '-', '_'; 1-63 chars)"
            )
    return None


def name_matches(pattern: str, name: str) -> bool:
    """Does ``name`` match ``pattern`` (both normalised here)?"""
    p = normalise_name(pattern)
    n = normalise_name(name)
    if p.startswith("*."):
        return n.endswith(p[1:]) and len(n) > len(p) - 1
    return n == p
