"""Read a ruleset file into :class:`Ruleset`, collecting every problem with its line.

The loader does not stop at the first mistake: it records each problem (file, line, key path,
what was expected) and carries on with what it could read, so ``pcap-audit rulesets
validate`` can list them all. :func:`load_ruleset` then refuses a ruleset with any error
(:class:`RulesetError` naming the first one), because an audit against a half-read ruleset
would report the wrong things. Cross-rule checks (duplicates, contradictions, pairs) live
in :mod:`auditor.rules.validate`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from auditor.errors import RulesetError
from auditor.rules.model import (
    APPS,
    DEFAULT_MIN_TLS,
    FINDING_KINDS,
    PORTLESS,
    PROTOS,
    SCOPES,
    SECURITY,
    SEVERITIES,
    TLS_VERSIONS,
    TRANSFERS,
    Deny,
    Hints,
    Role,
    Rule,
    Ruleset,
    Source,
    SourceDocument,
    TlsAllowance,
)
from auditor.rules.names import name_pattern_problem
from auditor.rules.yamlmarks import (
    MAX_RULESET_BYTES,
    KeyPath,
    Located,
    Problem,
    YamlProblem,
    display_path,
    excerpt,
    keypath_text,
    read_yaml,
)

#: Where the built-in rulesets live: package data of ``auditor`` (in the source tree,
#: ``auditor/rulesets`` is a link to the top-level ``rulesets/`` that users read), found
#: through importlib.resources so that an installed wheel reads its own copy.
RULESETS_DIR = Path(str(resources.files("auditor") / "rulesets"))

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
ROLE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
RULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

TOP_KEYS = {
    "required": ("name", "title", "source_documents", "roles", "flows"),
    "optional": ("description", "notes", "deny", "tls"),
}
ROLE_KEYS = {
    "required": ("id", "description"),
    "optional": ("hints", "implies", "address_family"),
}
FAMILY_KEYS = {"required": ("only", "source"), "optional": ()}
TLS_KEYS = {"required": (), "optional": ("min_version", "allowed")}
ALLOWED_KEYS = {"required": ("versions", "source"), "optional": ()}
DENY_KEYS = {
    "required": ("id", "source"),
    "optional": (
        "from",
        "to",
        "proto",
        "ports",
        "app",
        "severity",
        "notes",
        "also_sources",
    ),
}
HINT_KEYS = {"required": (), "optional": ("names", "user_agents")}
DOC_KEYS = {"required": ("file",), "optional": ("title", "url")}
SOURCE_KEYS = {"required": ("document", "section", "text"), "optional": ()}
RULE_KEYS = {
    "required": ("id", "from", "to", "app", "security", "source"),
    "optional": (
        "ports",  # required, except for the transports without ports (esp, ah, gre)
        "proto",
        "disk_transfer",
        "transfer",
        "expected",
        "pair",
        "component",
        "from_component",
        "severity",
        "notes",
        "also_sources",
        "scope",
        "tls",
        "vendor_reason",
        "src_ports",
    ),
}

PORT_EXPECTED = "expected a port 1-65535 or a range 'lo-hi'"
ICMP_EXPECTED = "expected an ICMP type 0-255 or a range 'lo-hi'"


def builtin_rulesets() -> list[str]:
    """Names of the built-in rulesets (``rulesets/*.yaml``), sorted."""
    return sorted(p.stem for p in RULESETS_DIR.glob("*.yaml"))


def _looks_like_path(s: str) -> bool:
    return "/" in s or "\\" in s or s.endswith((".yaml", ".yml")) or s.startswith(".")


def resolve_ruleset(name_or_path: str | Path) -> Path:
    """A built-in name -> its file; anything path-like -> that path (which must exist)."""
    if isinstance(name_or_path, Path):
        path = name_or_path
    else:
        s = str(name_or_path)
        if s in builtin_rulesets() and not _looks_like_path(s):
            return RULESETS_DIR / f"{s}.yaml"
        path = Path(s)
        if not _looks_like_path(s) and not path.is_file():
            raise RulesetError(
                s,
                "unknown ruleset; built-in rulesets are: "
                + ", ".join(builtin_rulesets())
                + " (or give the path of a ruleset file)",
            )
    if not path.exists():
        raise RulesetError(display_path(path), "no such ruleset file")
    return path


@dataclass
class CheckResult:
    """What :func:`check_ruleset` found: the ruleset (None if unreadable) and every problem."""

    path: Path
    ruleset: Ruleset | None
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]


def check_ruleset(name_or_path: str | Path) -> CheckResult:
    """Load and validate, returning all problems instead of raising on the first.

    Raises :class:`RulesetError` only when the name/path itself cannot be resolved.
    """
    from auditor.rules.validate import validate

    path = resolve_ruleset(name_or_path)
    shown = display_path(path)
    try:
        located = read_yaml(path, limit=MAX_RULESET_BYTES)
    except YamlProblem as exc:
        return CheckResult(path, None, [Problem(shown, exc.line, "", exc.message)])
    parser = _Parser(shown, located)
    ruleset, role_keys, flow_keys = parser.ruleset(path)
    if ruleset is None:
        return CheckResult(path, None, parser.problems)
    complete = not parser.problems
    problems = parser.problems + validate(
        ruleset, located, shown, role_keys, flow_keys, complete=complete, deny_keys=parser.deny_keys
    )
    problems.sort(key=lambda p: (p.line or 0, p.level != "error"))
    return CheckResult(path, ruleset, problems)


def load_ruleset(name_or_path: str | Path) -> Ruleset:
    """Load a built-in ruleset by name or a ruleset file by path.

    Raises :class:`RulesetError` (exit code 2) naming the file, the line, the key and what
    was expected for the first error found.
    """
    result = check_ruleset(name_or_path)
    errors = result.errors
    if errors or result.ruleset is None:
        first = errors[0]
        more = (
            f" (and {len(errors) - 1} more; run 'pcap-audit rulesets validate {first.file}')"
            if len(errors) > 1
            else ""
        )
        raise RulesetError(first.file, first.text() + more, str(first.line) if first.line else None)
    return result.ruleset


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(excerpt(value)) if isinstance(value, str) else excerpt(repr(value))


class _Parser:
    """Turns the plain data of one file into model objects, recording problems as it goes."""

    def __init__(self, shown: str, located: Located) -> None:
        self.shown = shown
        self.located = located
        self.problems: list[Problem] = []
        self.doc_files: set[str] = set()
        self.deny_keys: list[int] = []

    # -- primitives ------------------------------------------------------------------------

    def error(self, kp: KeyPath, message: str, level: str = "error") -> None:
        where = keypath_text(kp) if kp else ""
        self.problems.append(Problem(self.shown, self.located.line(kp), where, message, level))

    def mapping(self, value: Any, kp: KeyPath, keys: Mapping[str, tuple[str, ...]]) -> dict | None:
        if not isinstance(value, dict):
            self.error(
                kp, f"expected a mapping with keys {', '.join(keys['required'])}, got {_got(value)}"
            )
            return None
        allowed = keys["required"] + keys["optional"]
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.error(
                    (*kp, key),
                    f"unknown key '{excerpt(key)}'{hint}; allowed keys: {', '.join(allowed)}",
                )
        missing = [k for k in keys["required"] if k not in value]
        if missing:
            self.error(
                kp, f"missing required key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
            )
        return value

    def string(
        self,
        value: Any,
        kp: KeyPath,
        *,
        pattern: re.Pattern[str] | None = None,
        what: str = "a non-empty string",
    ) -> str | None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.error(kp, f"expected {what}, got {_got(value)}")
            return None
        s = str(value).strip()
        if not s or (pattern is not None and not pattern.match(s)):
            self.error(kp, f"expected {what}, got {_got(value)}")
            return None
        return s

    def optional_string(self, d: dict, key: str, kp: KeyPath) -> str | None:
        if key not in d or d[key] is None:
            return None
        return self.string(d[key], (*kp, key))

    def boolean(self, d: dict, key: str, kp: KeyPath, default: bool) -> bool:
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, bool):
            self.error((*kp, key), f"expected true or false, got {_got(v)}")
            return default
        return v

    def choice(self, value: Any, kp: KeyPath, choices: Iterable[str], what: str) -> str | None:
        options = tuple(choices)
        if not isinstance(value, str) or value not in options:
            close = (
                difflib.get_close_matches(str(value), options, n=1)
                if isinstance(value, str)
                else []
            )
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.error(kp, f"expected {what}: one of {', '.join(options)}; got {_got(value)}{hint}")
            return None
        return value

    def string_list(self, value: Any, kp: KeyPath, what: str = "a string") -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        out = []
        for i, item in enumerate(items):
            s = self.string(item, (*kp, i) if isinstance(value, list) else kp, what=what)
            if s is not None:
                out.append(s)
        return tuple(out)

    # -- ports -----------------------------------------------------------------------------

    def _one_port(self, v: Any, kp: KeyPath, icmp: bool = False) -> tuple[int, int] | None:
        low, high = (0, 255) if icmp else (1, 65535)

        def bad(extra: str = "") -> None:
            expected = ICMP_EXPECTED if icmp else PORT_EXPECTED
            self.error(kp, f"{expected}, got {_got(v)}{extra}")

        if isinstance(v, bool):
            bad()
            return None
        if isinstance(v, int):
            if low <= v <= high:
                return (v, v)
            bad()
            return None
        if not isinstance(v, str):
            bad()
            return None
        m = re.fullmatch(r"\s*(\d+)\s*(?:[-\u2013]\s*(\d+)\s*)?", v)
        if not m:
            bad()
            return None
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if not (low <= lo <= high and low <= hi <= high):
            bad()
            return None
        if lo > hi:
            bad(" (the low end comes first)")
            return None
        return (lo, hi)

    def ports(
        self, value: Any, kp: KeyPath, icmp: bool = False
    ) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]] | None:
        items = value if isinstance(value, list) else [value]
        if not items:
            self.error(kp, f"{PORT_EXPECTED}, got an empty list")
            return None
        spans = []
        for i, item in enumerate(items):
            span = self._one_port(item, (*kp, i) if isinstance(value, list) else kp, icmp)
            if span is None:
                return None
            spans.append(span)
        singles = sorted({lo for lo, hi in spans if lo == hi})
        ranges = sorted({(lo, hi) for lo, hi in spans if lo != hi})
        return tuple(singles), tuple(ranges)

    # -- structure -------------------------------------------------------------------------

    def source(self, value: Any, kp: KeyPath) -> Source | None:
        d = self.mapping(value, kp, SOURCE_KEYS)
        if d is None or any(k not in d for k in SOURCE_KEYS["required"]):
            return None
        document = self.string(d["document"], (*kp, "document"))
        section = self.string(d["section"], (*kp, "section"))
        text = self.string(d["text"], (*kp, "text"))
        if document is None or section is None or text is None:
            return None
        if self.doc_files and document not in self.doc_files:
            self.error(
                (*kp, "document"),
                f"document {document!r} is not one of source_documents: {', '.join(sorted(self.doc_files))}",
            )
        return Source(document, section, " ".join(text.split()))

    def source_documents(self, value: Any, kp: KeyPath) -> tuple[SourceDocument, ...]:
        if not isinstance(value, list) or not value:
            self.error(kp, f"expected a list of documents ({{file, title}}), got {_got(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            ikp = (*kp, i)
            if isinstance(item, str):
                out.append(SourceDocument(item))
                continue
            d = self.mapping(item, ikp, DOC_KEYS)
            if d is None or "file" not in d:
                continue
            file = self.string(d["file"], (*ikp, "file"))
            if file is None:
                continue
            title = self.optional_string(d, "title", ikp) or ""
            url = self.optional_string(d, "url", ikp) or ""
            out.append(SourceDocument(file, title, url))
        self.doc_files = {d.file for d in out}
        return tuple(out)

    def role(self, value: Any, kp: KeyPath) -> Role | None:
        d = self.mapping(value, kp, ROLE_KEYS)
        if d is None or any(k not in d for k in ROLE_KEYS["required"]):
            return None
        rid = self.string(
            d["id"],
            (*kp, "id"),
            pattern=ROLE_RE,
            what="a role id (lowercase letters, digits, '_', starting with a letter)",
        )
        desc = self.string(d["description"], (*kp, "description"))
        names: tuple[str, ...] = ()
        agents: tuple[str, ...] = ()
        if "hints" in d and d["hints"] is not None:
            h = self.mapping(d["hints"], (*kp, "hints"), HINT_KEYS)
            if h is not None:
                if "names" in h:
                    names = self.string_list(
                        h["names"], (*kp, "hints", "names"), "a DNS name or '*.' wildcard"
                    )
                    for i, n in enumerate(names):
                        why = name_pattern_problem(n)
                        if why:
                            self.error(
                                (*kp, "hints", "names", i),
                                f"expected a DNS name or '*.' wildcard, got {n!r}: {why}",
                            )
                if "user_agents" in h:
                    agents = self.string_list(
                        h["user_agents"], (*kp, "hints", "user_agents"), "a User-Agent glob"
                    )
        implies: tuple[str, ...] = ()
        if "implies" in d:
            implies = self.string_list(d["implies"], (*kp, "implies"), "a role id")
        family = None
        if d.get("address_family") is not None:  # a bad one is reported; the role is kept
            family = self.role_family(d["address_family"], (*kp, "address_family"))
        if rid is None or desc is None:
            return None
        return Role(
            rid,
            " ".join(desc.split()),
            Hints(names=names, user_agents=agents),
            implies,
            family[0] if family else None,
            family[1] if family else None,
        )

    def vocab(self, value: Any, kp: KeyPath, known: Iterable[str], what: str) -> str | None:
        """A name of an open vocabulary: a string; one outside ``known`` is a warning."""
        if not isinstance(value, str) or not value.strip():
            article = "an" if what[0] in "aeiou" else "a"
            self.error(kp, f"expected {article} {what}, got {_got(value)}")
            return None
        options = tuple(known)
        if value not in options:
            close = difflib.get_close_matches(value, options, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.error(
                kp,
                f"{what} {value!r} is not in the vocabulary (auditor/rules/vocabulary.yaml)"
                f"{hint}; known: {', '.join(options)}",
                "warning",
            )
        return value

    def severities(self, value: Any, kp: KeyPath) -> dict[str, str] | None:
        if not isinstance(value, dict):
            self.error(kp, f"expected a mapping of finding kind -> severity, got {_got(value)}")
            return None
        out: dict[str, str] = {}
        ok = True
        for kind, sev in value.items():
            k = self.choice(kind, (*kp, kind), FINDING_KINDS, "a finding kind")
            s = self.choice(sev, (*kp, kind), SEVERITIES, "a severity")
            if k and s:
                out[k] = s
            else:
                ok = False
        return out if ok else None

    def sources(self, value: Any, kp: KeyPath) -> list[Source] | None:
        if not isinstance(value, list):
            self.error(kp, f"expected a list of sources, got {_got(value)}")
            return None
        out = []
        for i, item in enumerate(value):
            src = self.source(item, (*kp, i))
            if src is None:
                return None
            out.append(src)
        return out

    def notes(self, d: dict, kp: KeyPath, key: str = "notes") -> tuple[str, ...]:
        if d.get(key) is None:
            return ()
        return tuple(" ".join(n.split()) for n in self.string_list(d[key], (*kp, key), "a note"))

    def tls_version(self, value: Any, kp: KeyPath) -> str | None:
        return self.choice(value, kp, TLS_VERSIONS, "a TLS version")

    def rule_tls(self, value: Any, kp: KeyPath) -> tuple[bool, str | None, TlsAllowance | None]:
        """A rule's ``tls: {min_version, allowed: {versions, source}}``: (ok, min, allowance)."""
        d = self.mapping(value, kp, TLS_KEYS)
        if d is None:
            return False, None, None
        minimum = None
        if d.get("min_version") is not None:
            minimum = self.tls_version(d["min_version"], (*kp, "min_version"))
            if minimum is None:
                return False, None, None
        allowance = None
        if d.get("allowed") is not None:
            akp = (*kp, "allowed")
            a = self.mapping(d["allowed"], akp, ALLOWED_KEYS)
            if a is None or any(k not in a for k in ALLOWED_KEYS["required"]):
                return False, None, None
            raw = a["versions"] if isinstance(a["versions"], list) else [a["versions"]]
            versions = [self.tls_version(v, (*akp, "versions", i)) for i, v in enumerate(raw)]
            source = self.source(a["source"], (*akp, "source"))
            if source is None or None in versions or not versions:
                return False, None, None
            allowance = TlsAllowance(tuple(str(v) for v in versions), source)
        return True, minimum, allowance

    def rule(self, value: Any, kp: KeyPath) -> Rule | None:
        d = self.mapping(value, kp, RULE_KEYS)
        if d is None or any(k not in d for k in RULE_KEYS["required"]):
            return None
        ok = True
        rid = self.string(
            d["id"],
            (*kp, "id"),
            pattern=RULE_ID_RE,
            what="a rule id (lowercase letters, digits, '-', '_', '.')",
        )
        from_role = self.string(d["from"], (*kp, "from"), pattern=ROLE_RE, what="a role id")
        to_role = self.string(d["to"], (*kp, "to"), pattern=ROLE_RE, what="a role id")
        proto = self.choice(d.get("proto", "tcp"), (*kp, "proto"), PROTOS, "a transport")
        ports = self.rule_ports(d, kp, proto)
        app = self.vocab(d["app"], (*kp, "app"), APPS, "application protocol")
        security = self.vocab(d["security"], (*kp, "security"), SECURITY, "security requirement")
        disk = self.boolean(d, "disk_transfer", kp, False)
        expected = self.boolean(d, "expected", kp, False)
        transfer = None
        if d.get("transfer") is not None:
            transfer = self.choice(
                d["transfer"], (*kp, "transfer"), TRANSFERS, "a transfer direction"
            )
            if transfer and not disk:
                self.error((*kp, "transfer"), "'transfer' needs 'disk_transfer: true'")
        pair = None
        if d.get("pair") is not None:
            pair = self.string(d["pair"], (*kp, "pair"), pattern=RULE_ID_RE, what="a rule id")
        component = self.optional_string(d, "component", kp)
        from_component = self.optional_string(d, "from_component", kp)
        severity: dict[str, str] = {}
        if d.get("severity") is not None:
            got = self.severities(d["severity"], (*kp, "severity"))
            ok = ok and got is not None
            severity = got or {}
        scope = "network"
        if d.get("scope") is not None:
            scope = self.choice(d["scope"], (*kp, "scope"), SCOPES, "a scope") or ""
            ok = ok and bool(scope)
        src_ports: tuple[tuple[int, ...], tuple[tuple[int, int], ...]] | None = ((), ())
        if d.get("src_ports") is not None:
            if proto in PORTLESS or proto in ("icmp", "icmp6"):
                self.error((*kp, "src_ports"), f"{proto} has no source ports")
                ok = False
            else:
                src_ports = self.ports(d["src_ports"], (*kp, "src_ports"))
                ok = ok and src_ports is not None
        min_tls, allowance = None, None
        if d.get("tls") is not None:
            tls_ok, min_tls, allowance = self.rule_tls(d["tls"], (*kp, "tls"))
            ok = ok and tls_ok
        notes = self.notes(d, kp)
        reasons = self.notes(d, kp, "vendor_reason")
        source = self.source(d["source"], (*kp, "source"))
        also: list[Source] = []
        if d.get("also_sources") is not None:
            got_also = self.sources(d["also_sources"], (*kp, "also_sources"))
            ok = ok and got_also is not None
            also = got_also or []
        if not ok or None in (rid, from_role, to_role, proto, ports, app, security, source):
            return None
        assert ports is not None and source is not None and src_ports is not None
        return Rule(
            id=str(rid),
            from_role=str(from_role),
            to_role=str(to_role),
            proto=str(proto),
            ports=ports[0],
            port_ranges=ports[1],
            app=str(app),
            security=str(security),
            disk_transfer=disk,
            expected=expected,
            source=source,
            pair=pair,
            component=component,
            from_component=from_component,
            transfer=transfer,
            severity=severity,
            notes=notes,
            also_sources=tuple(also),
            scope=scope,
            src_ports=src_ports[0],
            src_port_ranges=src_ports[1],
            min_tls=min_tls,
            tls_allowed=allowance,
            vendor_reason=reasons,
        )

    def rule_ports(
        self, d: dict, kp: KeyPath, proto: str | None
    ) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]] | None:
        """``ports`` of a rule: required, except for the transports without ports (esp, ah,
        gre), which must have none; for ICMP they are message types (0-255)."""
        if proto in PORTLESS:
            if "ports" in d:
                self.error((*kp, "ports"), f"{proto} has no ports; leave 'ports' out")
                return None
            return (), ((0, 65535),)
        if "ports" not in d:
            self.error(kp, "missing required key: ports")
            return None
        ports = self.ports(d["ports"], (*kp, "ports"), icmp=proto in ("icmp", "icmp6"))
        return ports

    def deny(self, value: Any, kp: KeyPath) -> Deny | None:
        d = self.mapping(value, kp, DENY_KEYS)
        if d is None or any(k not in d for k in DENY_KEYS["required"]):
            return None
        ok = True
        did = self.string(
            d["id"],
            (*kp, "id"),
            pattern=RULE_ID_RE,
            what="a deny id (lowercase letters, digits, '-', '_', '.')",
        )
        roles: dict[str, str | None] = {"from": None, "to": None}
        for key in roles:
            if d.get(key) is not None:
                roles[key] = self.string(d[key], (*kp, key), pattern=ROLE_RE, what="a role id")
                ok = ok and roles[key] is not None
        proto = None
        if d.get("proto") is not None:
            proto = self.choice(d["proto"], (*kp, "proto"), PROTOS, "a transport")
            ok = ok and proto is not None
        ports: tuple[tuple[int, ...], tuple[tuple[int, int], ...]] | None = ((), ())
        if d.get("ports") is not None:
            if proto in PORTLESS:
                self.error((*kp, "ports"), f"{proto} has no ports; leave 'ports' out")
                ok = False
            else:
                ports = self.ports(d["ports"], (*kp, "ports"), icmp=proto in ("icmp", "icmp6"))
                ok = ok and ports is not None
        apps: tuple[str, ...] = ()
        if d.get("app") is not None:
            raw = d["app"] if isinstance(d["app"], list) else [d["app"]]
            akp = (*kp, "app")
            got = [
                self.vocab(
                    a,
                    (*akp, i) if isinstance(d["app"], list) else akp,
                    APPS,
                    "application protocol",
                )
                for i, a in enumerate(raw)
            ]
            ok = ok and None not in got
            apps = tuple(str(a) for a in got if a)
        severity = None
        if d.get("severity") is not None:
            severity = self.choice(d["severity"], (*kp, "severity"), SEVERITIES, "a severity")
            ok = ok and severity is not None
        has_port = bool(ports and (ports[0] or ports[1]))
        if not (apps or has_port or (roles["from"] and roles["to"])):
            self.error(
                kp,
                "a deny entry needs 'app', 'ports', or both 'from' and 'to': "
                "otherwise it would forbid everything",
            )
            ok = False
        source = self.source(d["source"], (*kp, "source"))
        also: list[Source] = []
        if d.get("also_sources") is not None:
            got_also = self.sources(d["also_sources"], (*kp, "also_sources"))
            ok = ok and got_also is not None
            also = got_also or []
        if not ok or did is None or source is None or ports is None:
            return None
        return Deny(
            id=did,
            source=source,
            from_role=roles["from"],
            to_role=roles["to"],
            proto=proto,
            ports=ports[0],
            port_ranges=ports[1],
            apps=apps,
            severity=severity,
            notes=self.notes(d, kp),
            also_sources=tuple(also),
        )

    def role_family(self, value: Any, kp: KeyPath) -> tuple[str, Source] | None:
        d = self.mapping(value, kp, FAMILY_KEYS)
        if d is None or any(k not in d for k in FAMILY_KEYS["required"]):
            return None
        only = self.choice(d["only"], (*kp, "only"), ("ipv4", "ipv6"), "an address family")
        source = self.source(d["source"], (*kp, "source"))
        if only is None or source is None:
            return None
        return only, source

    def ruleset(self, path: Path) -> tuple[Ruleset | None, list[int], list[int]]:
        """The ruleset plus, for each role and rule kept, its index in the file."""
        top = self.located.data
        if top is None:
            self.error(
                (), "empty file: expected a ruleset (name, title, source_documents, roles, flows)"
            )
            return None, [], []
        d = self.mapping(top, (), TOP_KEYS)
        if d is None:
            return None, [], []
        name = (
            self.string(
                d.get("name"),
                ("name",),
                pattern=NAME_RE,
                what="a ruleset name (lowercase letters, digits, '-', '_')",
            )
            if "name" in d
            else None
        )
        title = self.string(d.get("title"), ("title",)) if "title" in d else None
        description = self.optional_string(d, "description", ()) or ""
        notes = (
            self.string_list(d["notes"], ("notes",), "a note") if d.get("notes") is not None else ()
        )
        docs = (
            self.source_documents(d.get("source_documents"), ("source_documents",))
            if "source_documents" in d
            else ()
        )

        roles: list[Role] = []
        role_keys: list[int] = []
        raw_roles = d.get("roles")
        if "roles" in d:
            if not isinstance(raw_roles, list) or not raw_roles:
                self.error(
                    ("roles",),
                    f"expected a list of roles ({{id, description, hints}}), got {_got(raw_roles)}",
                )
            else:
                for i, item in enumerate(raw_roles):
                    role = self.role(item, ("roles", i))
                    if role is not None:
                        roles.append(role)
                        role_keys.append(i)
        flows: list[Rule] = []
        flow_keys: list[int] = []
        raw_flows = d.get("flows")
        if "flows" in d:
            if not isinstance(raw_flows, list) or not raw_flows:
                self.error(("flows",), f"expected a list of flows, got {_got(raw_flows)}")
            else:
                for i, item in enumerate(raw_flows):
                    rule = self.rule(item, ("flows", i))
                    if rule is not None:
                        flows.append(rule)
                        flow_keys.append(i)
        denies: list[Deny] = []
        deny_keys: list[int] = []
        if d.get("deny") is not None:
            if not isinstance(d["deny"], list):
                self.error(("deny",), f"expected a list of deny entries, got {_got(d['deny'])}")
            else:
                for i, item in enumerate(d["deny"]):
                    entry = self.deny(item, ("deny", i))
                    if entry is not None:
                        denies.append(entry)
                        deny_keys.append(i)
        self.deny_keys = deny_keys
        min_tls = DEFAULT_MIN_TLS
        if d.get("tls") is not None:
            t = self.mapping(d["tls"], ("tls",), {"required": ("min_version",), "optional": ()})
            if t is not None and "min_version" in t:
                min_tls = self.tls_version(t["min_version"], ("tls", "min_version")) or min_tls
        if name is None or title is None:
            return None, [], []
        serving: dict[str, list[Rule]] = {}
        connecting: dict[str, list[Rule]] = {}
        for rule in flows:
            serving.setdefault(rule.to_role, []).append(rule)
            connecting.setdefault(rule.from_role, []).append(rule)
        roles = [
            replace(r, hints=_derived_hints(r, serving.get(r.id, []), connecting.get(r.id, [])))
            for r in roles
        ]
        ruleset = Ruleset(
            name=name,
            title=" ".join(title.split()),
            description=" ".join(description.split()),
            source_documents=tuple(d.file for d in docs),
            documents=docs,
            roles=tuple(roles),
            flows=tuple(flows),
            path=path,
            notes=tuple(" ".join(n.split()) for n in notes),
            denies=tuple(denies),
            min_tls=min_tls,
        )
        return ruleset, role_keys, flow_keys


def _merge(spans: list[tuple[str, int, int]]) -> tuple[tuple[str, int, int], ...]:
    out: list[tuple[str, int, int]] = []
    for proto, lo, hi in sorted(set(spans)):
        if out and out[-1][0] == proto and lo <= out[-1][2] + 1:
            out[-1] = (proto, out[-1][1], max(hi, out[-1][2]))
        else:
            out.append((proto, lo, hi))
    return tuple(out)


def _derived_hints(role: Role, serving: list[Rule], connecting: list[Rule]) -> Hints:
    """Ports the role serves / connects to, from the rules (those to it, those from it);
    "any port" (1-65535) says nothing about a role and is left out, and so are local-scope
    rules (a port only reachable within the host says nothing about which hosts serve it)."""

    def spans(rules: list[Rule]) -> list[tuple[str, int, int]]:
        return [
            (p, lo, hi)
            for r in rules
            for p in r.protos
            for lo, hi in r.spans()
            if (lo, hi) not in ((1, 65535), (0, 65535))
        ]

    serves = spans([r for r in serving if r.scope == "network"])
    connects = spans([r for r in connecting if r.scope == "network"])
    return replace(role.hints, serves=_merge(serves), connects=_merge(connects))
