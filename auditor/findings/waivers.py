"""Waivers: findings a named owner has accepted, for a reason, until a date.

A waiver names one finding by its id (stable from night to night) or matches findings by
their fields (kind, severity, addresses, roles, port, protocol, rule; an address field
also takes a CIDR network). A waived finding stays in every output, marked with the
waiver (``Finding.waiver``), but no longer counts for the exit code. A waiver is valid
up to and including its expiry date (UTC); after that it waives nothing and is reported,
so a forgotten exception resurfaces instead of hiding a problem for ever.

The file is YAML, read with line numbers (``auditor.rules.yamlmarks``): any error names
the file, the line and the key, and is exit code USAGE::

    waivers:
      - id: PLA-2f95d12e4ab0
        reason: BITS on 3009 until the HTTPS switch (CHG-1234)
        owner: alice@example.com
        expires: 2026-03-31
      - match: {kind: unexpected_port, dst_port: 8161, src_role: admin}
        reason: the admins' console, being documented
        owner: bob
        expires: 2026-01-15

Waivers sit beside the engine rather than in the store: the engine applies them before
it computes the exit code, and arrows run from the store to the findings, not back.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from auditor.errors import AuditorError, ExitCode
from auditor.findings.model import Finding
from auditor.rules.model import FINDING_KINDS, SEVERITIES
from auditor.rules.yamlmarks import (
    KeyPath,
    YamlProblem,
    display_path,
    keypath_text,
    parse_yaml,
    read_text,
)

#: the finding fields a waiver may match on
MATCH_FIELDS = (
    "kind",
    "severity",
    "src_ip",
    "dst_ip",
    "src_role",
    "dst_role",
    "dst_port",
    "proto",
    "rule_id",
)
_KEYS = ("id", "match", "reason", "owner", "expires")
_ADDRESS_FIELDS = ("src_ip", "dst_ip")


class WaiverError(AuditorError):
    """A waivers file that does not load: the file, the line, the key, what was expected."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Waiver:
    """One waiver: which findings (an id, or field values), why, whose, until when."""

    line: int
    reason: str
    owner: str
    expires: date
    finding_id: str | None = None
    match: tuple[tuple[str, Any], ...] = ()

    def expired(self, today: date) -> bool:
        return today > self.expires

    def matches(self, finding: Finding) -> bool:
        if self.finding_id is not None:
            return finding.id == self.finding_id
        return all(_field_matches(k, v, getattr(finding, k)) for k, v in self.match)

    def to_json(self, file: str) -> dict[str, Any]:
        """The waiver as the JSON result shows it (on a finding, or as expired/unused)."""
        out: dict[str, Any] = {}
        if self.finding_id is not None:
            out["id"] = self.finding_id
        else:
            out["match"] = dict(self.match)
        out.update(
            reason=self.reason,
            owner=self.owner,
            expires=self.expires.isoformat(),
            file=file,
            line=self.line,
        )
        return out


def _field_matches(key: str, wanted: Any, value: Any) -> bool:
    if key in _ADDRESS_FIELDS and isinstance(wanted, str) and "/" in wanted and value:
        try:
            return ipaddress.ip_address(str(value)) in ipaddress.ip_network(wanted, strict=False)
        except ValueError:
            return False
    if key == "dst_port":
        return value == wanted
    return value is not None and str(value).lower() == str(wanted).lower()


@dataclass(frozen=True)
class Waivers:
    """A loaded waivers file."""

    path: str
    sha256: str
    items: tuple[Waiver, ...]


@dataclass(frozen=True)
class WaiverOutcome:
    """What applying waivers did: how many findings were waived, which waivers expired
    (with the findings they would have covered) and which matched nothing."""

    file: str
    waived: int
    expired: tuple[tuple[Waiver, tuple[str, ...]], ...]
    unused: tuple[Waiver, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "waived": self.waived,
            "expired": [{**w.to_json(self.file), "findings": list(ids)} for w, ids in self.expired],
            "unused": [w.to_json(self.file) for w in self.unused],
        }

    def warnings(self) -> list[str]:
        """One stderr line per expired waiver."""
        return expired_warnings(self.to_json())


def expired_warnings(section: Mapping[str, Any] | None) -> list[str]:
    """One line per expired waiver of a result's ``waivers`` section (for stderr)."""
    out = []
    for w in (section or {}).get("expired") or []:
        what = (
            f"finding {w['id']}"
            if w.get("id")
            else "findings matching "
            + ", ".join(f"{k}={v}" for k, v in (w.get("match") or {}).items())
        )
        ids = w.get("findings") or []
        covers = f"; {len(ids)} finding(s) count again" if ids else "; it matches nothing now"
        out.append(
            f"{w.get('file')}:{w.get('line')}: warning: the waiver for {what} "
            f"(owner {w.get('owner')}) expired on {w.get('expires')}{covers}"
        )
    return out


def apply_waivers(
    findings: Sequence[Finding], waivers: Waivers, today: date | None = None
) -> tuple[list[Finding], WaiverOutcome]:
    """The findings, each a valid waiver covers marked (``Finding.waiver``, the first
    waiver in file order that matches), and what was waived and what expired."""
    day = today or datetime.now(UTC).date()
    valid = [w for w in waivers.items if not w.expired(day)]
    used: set[int] = set()
    waived = 0
    out: list[Finding] = []
    for f in findings:
        for w in valid:
            if w.matches(f):
                f = replace(f, waiver=w.to_json(waivers.path))
                used.add(w.line)
                waived += 1
                break
        out.append(f)
    expired = tuple(
        (w, tuple(f.id for f in findings if w.matches(f))) for w in waivers.items if w.expired(day)
    )
    unused = tuple(w for w in valid if w.line not in used)
    return out, WaiverOutcome(waivers.path, waived, expired, unused)


def load_waivers(path: str | Path) -> Waivers:
    """Read a waivers file; WaiverError (exit USAGE) with the file and line on any error."""
    p = Path(path)
    shown = display_path(p)
    try:
        text = read_text(p)
        located = parse_yaml(text)
    except YamlProblem as exc:
        raise WaiverError(shown, exc.message, str(exc.line) if exc.line else None) from None

    def fail(kp: KeyPath, message: str) -> WaiverError:
        line = located.line(kp)
        what = f"{keypath_text(kp)}: {message}" if kp else message
        return WaiverError(shown, what, str(line) if line else None)

    data: Any = located.data
    if not isinstance(data, dict) or "waivers" not in data:
        raise fail((), "expected a mapping with the key 'waivers' (a list of waivers)")
    for key in data:
        if key != "waivers":
            raise fail((key,), f"unknown key '{key}'; the file holds only 'waivers'")
    entries = data["waivers"]
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise fail(("waivers",), "expected a list of waivers")
    items = []
    for i, entry in enumerate(entries):
        kp: KeyPath = ("waivers", i)
        if not isinstance(entry, dict):
            raise fail(kp, "expected a mapping with id or match, reason, owner, expires")
        for key in entry:
            if key not in _KEYS:
                raise fail((*kp, key), f"unknown key '{key}'; allowed: {', '.join(_KEYS)}")
        if ("id" in entry) == ("match" in entry):
            raise fail(kp, "give either 'id' (one finding) or 'match' (finding fields), not both")
        for key in ("reason", "owner"):
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise fail((*kp, key) if key in entry else kp, f"'{key}' must be a non-empty text")
        finding_id = None
        match: tuple[tuple[str, Any], ...] = ()
        if "id" in entry:
            if not isinstance(entry["id"], str) or not entry["id"].strip():
                raise fail((*kp, "id"), "expected a finding id such as PLA-2f95d12e4ab0")
            finding_id = entry["id"].strip()
        else:
            match = _match(entry["match"], (*kp, "match"), fail)
        items.append(
            Waiver(
                line=located.line(kp) or 0,
                reason=entry["reason"].strip(),
                owner=entry["owner"].strip(),
                expires=_expiry(
                    entry.get("expires"), (*kp, "expires") if "expires" in entry else kp, fail
                ),
                finding_id=finding_id,
                match=match,
            )
        )
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Waivers(shown, digest, tuple(items))


def _expiry(value: Any, kp: KeyPath, fail: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    if value is None:
        raise fail(kp, "'expires' is required: the date (YYYY-MM-DD) the waiver ends")
    raise fail(kp, f"expected a date YYYY-MM-DD, got {value!r}")


def _match(value: Any, kp: KeyPath, fail: Any) -> tuple[tuple[str, Any], ...]:
    if not isinstance(value, dict) or not value:
        raise fail(kp, f"expected a mapping of finding fields ({', '.join(MATCH_FIELDS)})")
    out = []
    for key, wanted in value.items():
        fkp = (*kp, key)
        if key not in MATCH_FIELDS:
            raise fail(fkp, f"unknown field '{key}'; a match takes {', '.join(MATCH_FIELDS)}")
        if key == "dst_port":
            if not isinstance(wanted, int) or isinstance(wanted, bool) or not 0 <= wanted <= 65535:
                raise fail(fkp, f"expected a port number 0-65535, got {wanted!r}")
        elif not isinstance(wanted, str) or not wanted.strip():
            raise fail(fkp, f"expected a text value, got {wanted!r}")
        elif key == "kind" and wanted not in FINDING_KINDS:
            raise fail(fkp, f"expected a finding kind ({', '.join(FINDING_KINDS)}), got {wanted!r}")
        elif key == "severity" and wanted.lower() not in SEVERITIES:
            raise fail(fkp, f"expected one of {', '.join(SEVERITIES)}, got {wanted!r}")
        elif key in _ADDRESS_FIELDS:
            try:
                ipaddress.ip_network(wanted.strip(), strict=False)
            except ValueError:
                raise fail(fkp, f"expected an IP address or CIDR network, got {wanted!r}") from None
        out.append((key, wanted.strip() if isinstance(wanted, str) else wanted))
    return tuple(out)
