"""FLOW as a user gives it to ``show``: a flow id, a Community ID, or a finding id.

Flow ids (``F`` + 16 hex digits) and Community IDs (``1:`` + base64) are looked up in the
flow table of the captures. A finding id (``PLA-2f95d12e4ab0``) names its flows in the
finding's ``flow_ids``: it is looked up in a saved audit (``--from AUDIT.json``, the JSON an
earlier ``pcap-audit ... --format json`` wrote), or in a fresh audit of the captures when a
ruleset is given (``--ruleset``). A saved audit is the quicker and the surer: it is the very
result the analyst holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import AuditorError, ExitCode
from auditor.findings.model import AuditDocument, Finding

FLOW_ID = re.compile(r"^F[0-9a-f]{16}$")
COMMUNITY_ID = re.compile(r"^1:[A-Za-z0-9+/]{27}=$")


class LookupError_(AuditorError):
    """FLOW names nothing known, or the saved audit does not load."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Wanted:
    """What FLOW resolved to: the flow ids / Community IDs to look for, and why."""

    ids: tuple[str, ...]
    finding: Finding | None = None  # the finding, when FLOW was a finding id


def is_flow_token(token: str) -> bool:
    return bool(FLOW_ID.match(token) or COMMUNITY_ID.match(token))


def load_audit(path: str) -> dict[str, Any]:
    """A saved audit result (JSON) with its findings; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LookupError_(path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise LookupError_(path, "not JSON: not UTF-8 text", f"byte {exc.start}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LookupError_(path, f"not JSON: {exc.msg}", f"line {exc.lineno}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise LookupError_(path, "not a pcap-audit JSON result (no findings list)")
    return doc


def finding_flows(doc: AuditDocument, finding_id: str, source: str) -> Wanted:
    """The flows of finding ``finding_id`` in an audit result document."""
    for f in doc.findings:
        if f.id == finding_id:
            ids = f.flow_ids or f.community_ids
            if not ids:
                raise LookupError_(
                    source, f"finding {finding_id} ({f.kind}) names no flow: it is about "
                    "traffic that was not seen"
                )  # fmt: skip
            return Wanted(ids, f)
    known = ", ".join(f.id for f in doc.findings[:5])
    raise LookupError_(
        source, f"no finding {finding_id}" + (f" (findings: {known}, ...)" if known else "")
    )


@dataclass(frozen=True)
class Located:
    """A FLOW found in its captures: the traffic read, what FLOW named, its flows' refs,
    the ids it named that these captures do not hold, and the flows' packets."""

    traffic: Any  # auditor.traffic.Traffic
    wanted: Wanted
    refs: tuple[Any, ...]  # auditor.evidence.packets.FlowRef
    missing: tuple[str, ...]
    packets: tuple[Any, ...]  # auditor.evidence.packets.PacketLine


def locate(
    flow: str,
    captures: Sequence[str],
    audit_json: str | None = None,
    ruleset: Any = None,
    inventory: Any = None,
    select: Any = None,
) -> Located:
    """Find FLOW (flow id, Community ID, or finding id with ``audit_json`` or ``ruleset``)
    in ``captures`` and read its packets (those ``select`` selects, when given)."""
    from auditor.capture.inputs import is_stdin
    from auditor.evidence.packets import find_packets, flow_refs
    from auditor.traffic import read_traffic

    if any(is_stdin(str(c)) for c in captures):
        raise LookupError_(
            "-", "standard input cannot be read twice (the flows, then their packets): give files"
        )
    traffic = None
    if is_flow_token(flow):
        wanted = Wanted((flow,))
    elif audit_json:
        saved = AuditDocument.from_json(load_audit(audit_json))
        wanted = finding_flows(saved, flow, audit_json)
    elif ruleset is not None:
        from auditor.findings.engine import audit

        result = audit(captures, ruleset, inventory, fail_on="never")
        traffic = result.traffic
        wanted = finding_flows(result.result, flow, f"audit of {len(captures)} capture(s)")
    else:
        raise LookupError_(
            "FLOW",
            f"{flow!r} is neither a flow id (F + 16 hex digits) nor a Community ID (1:...); "
            "for a finding id give --from AUDIT.json or --ruleset NAME",
        )
    if traffic is None:
        traffic = read_traffic(captures)
    refs, missing = flow_refs(traffic.flows, wanted.ids)
    if not refs:
        raise LookupError_(flow, f"no such flow in the {len(traffic.captures)} capture(s)")
    readable = [c.path for c in traffic.captures if c.read]
    packets = find_packets(readable, refs, select)
    return Located(traffic, wanted, tuple(refs), tuple(missing), tuple(packets))
