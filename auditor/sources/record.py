"""The capture record: what reading one input found, as the result's ``captures[]`` holds it.

A frozen value with one :meth:`CaptureRecord.to_json` (docs/json-contract.md,
``captures[]``). The keys every capture has are fields; the reader's optional details
(``compression``, ``snaplen``, ``interfaces``, a Zeek directory's ``logs``, ``selected``, ...)
are kept by name in ``details`` and written at their place in :data:`KEY_ORDER`, so the
JSON is the same whichever reader made the record. It lives beside the sources, below the
findings: the traffic set is built of these records, the result document only carries them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: the JSON key order of a capture object (the reader's CaptureInfo order, then what the
#: reading adds); keys of ``details`` not listed here are written just before ``error``
KEY_ORDER: tuple[str, ...] = (
    "path",
    "format",
    "compressed",
    "compression",
    "byte_order",
    "version",
    "linktypes",
    "snaplen",
    "packets",
    "bytes",
    "first_seen",
    "last_seen",
    "truncated",
    "truncated_at",
    "ends_early",
    "decode_errors",
    "unsupported_linktypes",
    "interfaces",
    "drops",
    "sections",
    "skipped_blocks",
    "comments",
    "warnings",
    "tunnel_reassembled",
    "tunnel_fragments_lost",
    "logs",
    "error",
    "duplicate_of",
    "complete",
    "duplicates_dropped",
    "selected",
)

#: the keys that are fields of CaptureRecord (always written)
_FIELDS = (
    "path",
    "format",
    "linktypes",
    "packets",
    "bytes",
    "first_seen",
    "last_seen",
    "truncated",
    "decode_errors",
    "warnings",
    "error",
    "duplicate_of",
    "complete",
)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    """One input of a traffic set: a capture file, standard input or a directory of Zeek
    logs; read, unreadable (``error``) or a duplicate (``duplicate_of``).

    ``details`` holds the reader's optional keys (read-only mapping); ``first_seen`` and
    ``last_seen`` are ISO 8601 text, as in the JSON.
    """

    path: str
    format: str | None = None
    linktypes: tuple[str | int, ...] = ()
    packets: int = 0
    bytes: int = 0
    first_seen: str | None = None
    last_seen: str | None = None
    truncated: bool = False
    decode_errors: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    warnings: tuple[str, ...] = ()
    error: str | None = None
    duplicate_of: str | None = None
    complete: bool = True
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        for name in ("decode_errors", "details"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))

    @property
    def read(self) -> bool:
        """Its content was read under this name (not unreadable, not a duplicate)."""
        return not self.error and not self.duplicate_of

    def detail(self, key: str, default: Any = None) -> Any:
        """One of the reader's optional keys (``truncated_at``, ``selected``, ``logs``...)."""
        return self.details.get(key, default)

    def to_json(self) -> dict[str, Any]:
        """The contract's capture object, keys in :data:`KEY_ORDER`."""
        out: dict[str, Any] = {}
        for key in KEY_ORDER:
            if key == "error":
                for extra, value in self.details.items():
                    if extra not in _ORDERED:
                        out[extra] = value
            if key in _FIELD_SET:
                value = getattr(self, key)
                if isinstance(value, tuple):
                    value = list(value)
                elif isinstance(value, Mapping):
                    value = dict(value)
                out[key] = value
            elif key in self.details:
                out[key] = self.details[key]
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CaptureRecord:
        """A capture object (the JSON contract's, or a saved result's) as a record; keys
        that are not fields go to ``details``. Tolerant of missing keys."""
        error = d.get("error")
        return cls(
            path=str(d.get("path") if d.get("path") is not None else ""),
            format=d.get("format"),
            linktypes=tuple(d.get("linktypes") or ()),
            packets=int(d.get("packets") or 0),
            bytes=int(d.get("bytes") or 0),
            first_seen=d.get("first_seen"),
            last_seen=d.get("last_seen"),
            truncated=bool(d.get("truncated")),
            decode_errors=dict(d.get("decode_errors") or {}),
            warnings=tuple(str(w) for w in d.get("warnings") or ()),
            error=error,
            duplicate_of=d.get("duplicate_of"),
            complete=bool(d.get("complete", error is None)),
            details={k: v for k, v in d.items() if k not in _FIELD_SET},
        )


_FIELD_SET = frozenset(_FIELDS)
_ORDERED = frozenset(KEY_ORDER)
