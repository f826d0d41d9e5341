"""unexpected_port: flows no rule allows between the endpoints' roles, and scans.

A busy network makes thousands of these, so the rows of ``queries.UNEXPECTED_PORT`` are
unpacked in place and the rules between two role lists are looked up once per pair of lists
(:class:`Paths`). A source trying many ports (or hosts) gets one finding for the scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from auditor.findings import queries
from auditor.findings.collector import Findings, covers, ports_text, roles_text, values
from auditor.rules import Rule, Ruleset

if TYPE_CHECKING:
    import duckdb

#: more distinct unexpected ports on one host (or hosts on one port) than this from one
#: source is a scan: one finding for it, not one per port
SCAN_TARGETS = 50
#: the targets (and answered ones) a scan finding lists, lowest first
SCAN_SAMPLE = 20


class Paths:
    """The rules documented between two hosts' role lists, looked up once per pair of lists
    (thousands of unexpected flows share a few dozen)."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.by_pair: dict[tuple[str, str], list[Rule]] = {}
        for r in ruleset.flows:
            self.by_pair.setdefault((r.from_role, r.to_role), []).append(r)
        self._between: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
        self._reverse: dict[tuple[tuple[str, ...], tuple[str, ...], str, int], list[Rule]] = {}

    def between(self, src: Sequence[str], dst: Sequence[str]) -> list[str]:
        """The documented ports from any of ``src`` to any of ``dst`` (as text, sorted)."""
        key = (tuple(src), tuple(dst))
        hit = self._between.get(key)
        if hit is None:
            rules = [r for a in src for b in dst for r in self.by_pair.get((a, b), ())]
            hit = self._between[key] = sorted({ports_text(r) for r in rules})
        return list(hit)

    def reverse(self, src: Sequence[str], dst: Sequence[str], proto: str, port: int) -> list[Rule]:
        """The rules from any of ``dst`` to any of ``src`` covering ``proto``/``port``."""
        key = (tuple(src), tuple(dst), proto, port)
        hit = self._reverse.get(key)
        if hit is None:
            hit = self._reverse[key] = [
                r
                for a in dst
                for b in src
                for r in self.by_pair.get((a, b), ())
                if proto in r.protos and covers(r, port)
            ]
        return hit


def unexpected_ports(
    out: Findings,
    cur: duckdb.DuckDBPyConnection,
    ruleset: Ruleset,
    inv: bool,
    role_lists: dict[str, list[str]],
    paths: Paths,
) -> None:
    """unexpected_port findings from the rows of UNEXPECTED_PORT: thousands on a busy
    network, so each row is unpacked in place rather than made into a dict."""
    names = tuple(d[0] for d in cur.description)
    assert names == queries.UNEXPECTED_PORT_COLUMNS, names
    for (
        src_ip,
        dst_ip,
        dst_port,
        proto,
        first_seen,
        last_seen,
        packets,
        nbytes,
        flows,
        flow_ids,
        community_ids,
        states,
        apps,
    ) in cur.fetchall():
        src, dst = role_lists.get(src_ip, _NO_ROLES), role_lists.get(dst_ip, _NO_ROLES)
        states = values(states)
        ev: dict[str, Any] = {
            "states": states,
            "apps": values(apps),
            "flows": flows,
            "documented_between_roles": paths.between(src, dst) if src and dst else [],
        }
        endpoint = f"{src_ip} -> {dst_ip}:{dst_port}/{proto}"
        rule_id = None
        if src and dst:  # between two placed hosts
            reverse = paths.reverse(src, dst, proto, dst_port)
            if reverse:
                why = "documented only in the other direction"
                rule_id = reverse[0].id
                ev["reverse_rule_ids"] = [r.id for r in reverse]
            elif ev["documented_between_roles"]:
                why = "a port not documented between these roles"
            else:
                why = "no documented path between these roles"
            msg = (
                f"{roles_text(src)} -> {roles_text(dst)} on {proto}/{dst_port} ({endpoint}): {why}."
            )
            sev = out.severity("unexpected_port", rule_id)
        elif src or dst:  # from or to a host without a role
            who = src_ip if not src else dst_ip
            known = roles_text(dst) if not src else roles_text(src)
            scope = "the inventory" if inv else "role inference"
            msg = f"{who} (no role in {scope}) talks to {known} on {proto}/{dst_port} ({endpoint})."
            ev["unplaced_host"] = who
            sev = out.severity("unexpected_port", None, "low")
        else:  # between two hosts without a role
            msg = (
                f"Port {proto}/{dst_port} is documented nowhere in the "
                f"'{ruleset.name}' ruleset ({endpoint})."
            )
            sev = "low"
        if "rejected" in states:
            ev["note"] = "attempt answered by RST: someone tried"
        out.put(
            "unexpected_port",
            sev,
            rule_id,
            msg,
            ev,
            src_ip,
            dst_ip,
            dst_port,
            proto,
            roles_text(src),
            roles_text(dst),
            first_seen,
            last_seen,
            packets,
            nbytes,
            flow_ids or [],
            list(dict.fromkeys(community_ids or ())),
            flows=flows,
        )


_NO_ROLES: list[str] = []


def scan(out: Findings, row: dict[str, Any], inv: bool) -> None:
    """One unexpected_port finding for a source that tried many ports (or hosts)."""
    sample = [str(x) for x in row["sample"]][:SCAN_SAMPLE]
    open_ = [str(x) for x in (row["open_sample"] or [])[:SCAN_SAMPLE]]
    span = f"{sample[0]} to {row['last']}"
    if row["scan"] == "ports":
        what = f"{row['targets']} undocumented {row['proto']} ports on {row['dst_ip']}"
        listed = f"ports {span}"
    else:
        what = f"{row['proto']}/{row['dst_port']}, undocumented, on {row['targets']} hosts"
        listed = f"hosts {span}"
    msg = (
        f"{row['src_ip']} tried {what} ({row['rejected']} refused, {row['answered']} "
        f"answered): a scan, reported once ({listed})."
    )
    ev = {
        "scan": row["scan"],
        "targets": row["targets"],
        "sample": sample,
        "answered": open_,
        "refused": row["rejected"],
        "flows": row["flows"],
        "states": row["states"] or [],
        "flow_ids_truncated": row["flows"] > len(row["flow_ids"] or []),
    }
    known = bool(row["src_roles"]) or bool(row["dst_roles"])
    sev = out.severity("unexpected_port", None, "medium" if known or inv else "low")
    out.add("unexpected_port", row, None, msg, ev, sev)
