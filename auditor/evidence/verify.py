"""``verify``: the flow table against tshark's reading of the same captures.

Each capture is read twice, once by the fast engine (``read_traffic``) and once by tshark
(one ``-T fields`` pass), and their TCP/UDP conversations are compared
(:mod:`auditor.evidence.conversations` says what a conversation is on each side and where
the two views are mapped onto each other). Tolerances: none for packets and bytes, which
must be equal; the application protocol agrees when tshark names none, or names one that
one of our flows of the conversation has. A capture in a link type we do not decode is
skipped, saying so; it counts neither for nor against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from auditor.capture import linktype_name
from auditor.capture.inputs import display_name, is_stdin
from auditor.errors import CaptureError
from auditor.evidence.conversations import (
    Conv,
    Side,
    our_conversations,
    parse_frames,
    tshark_args,
    tshark_conversations,
)
from auditor.evidence.tshark import ToolFailed, require_tshark, run_tshark
from auditor.sources import expand
from auditor.traffic import read_found

NEEDED_FOR = "pcap-audit verify"
MAX_LISTED = 8  #: flow ids / frame numbers listed per difference


def _endpoint(ep: tuple[str, int]) -> str:
    return f"[{ep[0]}]:{ep[1]}" if ":" in ep[0] else f"{ep[0]}:{ep[1]}"


@dataclass(frozen=True)
class Difference:
    """One conversation the two readings do not agree on."""

    capture: str
    proto: str
    a: str  # lower endpoint, "ip:port"
    b: str
    packets: tuple[int, int]  # ours, tshark's
    bytes: tuple[int, int]
    apps: tuple[tuple[str, ...], tuple[str, ...]]
    flow_ids: tuple[str, ...]  # ours (first MAX_LISTED)
    frames: tuple[int, ...]  # tshark's (first MAX_LISTED)

    @property
    def what(self) -> list[str]:
        out = []
        if self.packets[0] == 0:
            out.append("only tshark sees it")
        elif self.packets[1] == 0:
            out.append("only pcap-audit sees it")
        else:
            if self.packets[0] != self.packets[1]:
                out.append(f"packets {self.packets[0]} vs {self.packets[1]}")
            if self.bytes[0] != self.bytes[1]:
                out.append(f"bytes {self.bytes[0]} vs {self.bytes[1]}")
        if self.apps[1] and not set(self.apps[0]) & set(self.apps[1]):
            ours = ",".join(self.apps[0]) or "none"
            out.append(f"app {ours} vs {','.join(self.apps[1])}")
        return out

    def one_line(self) -> str:
        where = []
        if self.flow_ids:
            where.append("flows " + " ".join(self.flow_ids))
        if self.frames:
            where.append("frames " + " ".join(map(str, self.frames)))
        return (
            f"{self.capture}: {self.proto} {self.a} <-> {self.b}: "
            f"{'; '.join(self.what)} (pcap-audit vs tshark; {'; '.join(where)})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "capture": self.capture,
            "proto": self.proto,
            "a": self.a,
            "b": self.b,
            "packets": {"pcap_audit": self.packets[0], "tshark": self.packets[1]},
            "bytes": {"pcap_audit": self.bytes[0], "tshark": self.bytes[1]},
            "app": {"pcap_audit": list(self.apps[0]), "tshark": list(self.apps[1])},
            "flow_ids": list(self.flow_ids),
            "frames": list(self.frames),
        }


@dataclass(frozen=True)
class CaptureCheck:
    """How one capture fared: conversations compared and agreeing, or why it was skipped."""

    path: str
    conversations: int = 0
    agreeing: int = 0
    skipped: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "conversations": self.conversations,
            "agreeing": self.agreeing,
            "skipped": self.skipped,
            "error": self.error,
        }


@dataclass(frozen=True)
class VerifyResult:
    captures: tuple[CaptureCheck, ...]
    differences: tuple[Difference, ...]
    errors: tuple[CaptureError, ...] = field(default=())
    #: the diagnostic lines to print, in order (``path: message``), as Traffic's ``notes``
    notes: tuple[str, ...] = field(default=())
    #: every capture given was read whole, by pcap-audit and by tshark
    complete: bool = True

    @property
    def conversations(self) -> int:
        return sum(c.conversations for c in self.captures)

    @property
    def agreeing(self) -> int:
        return sum(c.agreeing for c in self.captures)

    @property
    def rate(self) -> float | None:
        """Share of conversations that agree (None when none was compared)."""
        return self.agreeing / self.conversations if self.conversations else None

    @property
    def agree(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": {
                "captures": len(self.captures),
                "conversations": self.conversations,
                "agreeing": self.agreeing,
                "agreement_rate": None if self.rate is None else round(self.rate, 6),
                "differences": len(self.differences),
            },
            "captures": [c.to_json() for c in self.captures],
            "differences": [d.to_json() for d in self.differences],
        }


def agrees(ours: Side, theirs: Side) -> bool:
    """Equal packets and bytes (not bytes inside a tunnel: ours are the inner frames',
    tshark's the outer frames'); the app agrees where tshark names one (module docstring)."""
    if ours.packets != theirs.packets or (ours.bytes != theirs.bytes and not theirs.tunnelled):
        return False
    return not theirs.apps or bool(ours.apps & theirs.apps)


def compare(
    path: str, ours: dict[Conv, Side], theirs: dict[Conv, Side]
) -> tuple[int, list[Difference]]:
    """(conversations agreeing, the differences) of one capture."""
    diffs = []
    good = 0
    for c in sorted(set(ours) | set(theirs)):
        o, t = ours.get(c, Side()), theirs.get(c, Side())
        if agrees(o, t):
            good += 1
            continue
        diffs.append(
            Difference(
                capture=path,
                proto=c[0],
                a=_endpoint(c[1]),
                b=_endpoint(c[2]),
                packets=(o.packets, t.packets),
                bytes=(o.bytes, t.bytes),
                apps=(tuple(sorted(o.apps)), tuple(sorted(t.apps))),
                flow_ids=tuple(o.where[:MAX_LISTED]),
                frames=tuple(int(x) for x in t.where[:MAX_LISTED]),
            )
        )
    return good, diffs


def verify(paths: Iterable[str], progress: Callable[[str], None] | None = None) -> VerifyResult:
    """Compare every capture's TCP/UDP conversations with tshark's (module docstring)."""
    require_tshark(NEEDED_FOR)
    checks: list[CaptureCheck] = []
    diffs: list[Difference] = []
    errors: list[CaptureError] = []
    notes: list[str] = []
    complete = True

    def failed(path: str, err: CaptureError) -> None:
        nonlocal complete
        errors.append(err)
        notes.append(err.one_line())
        checks.append(CaptureCheck(path, error=err.one_line()))
        complete = False

    for f in expand(paths):
        if f.readable and progress:
            progress(f.path)
        traffic = read_found([f])
        notes.extend(traffic.notes)
        complete = complete and traffic.complete
        if not f.readable and f.error is None:  # skipped, or a duplicate read once: said
            continue
        path = f.path
        if traffic.errors:
            errors.extend(traffic.errors)
            checks.append(CaptureCheck(path, error=traffic.errors[0].one_line()))
            continue
        capture = traffic.captures[0]
        unsupported = capture.detail("unsupported_linktypes") or {}
        if unsupported:
            what = ", ".join(
                f"{linktype_name(lt)} ({lt}): {n} records" for lt, n in unsupported.items()
            )
            checks.append(CaptureCheck(path, skipped=f"link type not decoded: {what}"))
            continue
        if is_stdin(path):
            failed(path, CaptureError(display_name(path), "standard input cannot be read "
                                      "again by tshark: give verify a file"))  # fmt: skip
            continue
        assert traffic.flows is not None
        try:
            frames = parse_frames(run_tshark(tshark_args(), path, NEEDED_FOR).splitlines())
        except ToolFailed as exc:  # tshark gave up on this capture: the others go on
            failed(path, CaptureError(path, exc.message))
            continue
        except ValueError as exc:  # tshark's export not as asked (a field with a tab, ...)
            failed(path, CaptureError(path, f"tshark's field export could not be read: {exc}"))
            continue
        good, found = compare(path, our_conversations(traffic.flows), tshark_conversations(frames))
        checks.append(CaptureCheck(path, good + len(found), good))
        diffs.extend(found)
    return VerifyResult(tuple(checks), tuple(diffs), tuple(errors), tuple(notes), complete)


def render_text(result: VerifyResult) -> str:
    """The terminal report: one line per capture, one per difference, a summary."""
    lines = []
    for c in result.captures:
        if c.error:
            lines.append(f"{c.path}: not read: {c.error}")
        elif c.skipped:
            lines.append(f"{c.path}: skipped: {c.skipped}")
        else:
            lines.append(f"{c.path}: {c.agreeing} of {c.conversations} conversations agree")
    for d in result.differences:
        lines.append("  " + d.one_line())
    rate = "-" if result.rate is None else f"{100 * result.rate:.2f} %"
    lines.append(
        f"{result.agreeing} of {result.conversations} TCP/UDP conversations agree with tshark "
        f"({rate}); {len(result.differences)} differ"
    )
    return "\n".join(lines) + "\n"
