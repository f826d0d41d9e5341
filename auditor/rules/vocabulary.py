"""The open vocabularies of the ruleset format, read from ``vocabulary.yaml`` beside this file.

Which application protocols and security requirements a rule may name, what each means and
how it shows on the wire, are data: a new protocol is a line of YAML, not a code change. A
ruleset that names a value missing here loads with a warning; :func:`wire_apps` and
:func:`encrypted` then give the conservative reading (only the name itself on the wire; no
encryption required).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

VOCABULARY_FILE = Path(__file__).with_name("vocabulary.yaml")


@dataclass(frozen=True)
class Vocabulary:
    """apps: name -> (classifier apps that fit it, meaning); security: name -> (encrypted, meaning)."""

    apps: dict[str, tuple[tuple[str, ...], str]]
    security: dict[str, tuple[bool, str]]


@cache
def vocabulary() -> Vocabulary:
    data = yaml.safe_load(VOCABULARY_FILE.read_text(encoding="utf-8"))
    apps = {
        str(name): (tuple(str(w) for w in v.get("wire") or ()), str(v.get("meaning", "")))
        for name, v in data["apps"].items()
    }
    security = {
        str(name): (bool(v["encrypted"]), str(v.get("meaning", "")))
        for name, v in data["security"].items()
    }
    return Vocabulary(apps, security)


def wire_apps(app: str) -> tuple[str, ...]:
    """The classifier's names that fit a rule's ``app`` (empty: anything fits)."""
    if app in vocabulary().apps:
        return vocabulary().apps[app][0]
    return (app,)


def encrypted(security: str) -> bool:
    """Whether a security requirement implies an encrypted channel (unknown: no)."""
    return vocabulary().security.get(security, (False, ""))[0]
