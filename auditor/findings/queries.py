"""The checks, as SQL over four tables: ``flows`` (with ``i``, its row number), ``host_roles``
(ip, role: the hosts of the traffic), ``held_roles`` (role: the roles some host holds, an
inventory's address the traffic never shows included) and ``rules`` (one row per rule and
port range, from ``auditor.rules.rules_table``).

``PREPARE`` builds ``f``, one narrow row per flow (every transport) in flow-table order: its
endpoints' role lists and the rules that cover it. A rule covers a flow when the protocol
and port fit and each endpoint either holds the rule's role on its side or has no role at
all: a *role match* when both endpoints have roles, a *port match* when one or both have
none. ``f`` keeps, per flow, the sorted ids of all covering rules and of those with a disk
transfer, required encryption or mutual TLS, and whether the flow is unexpected.

``UNEXPECTED_PORT`` and ``FINDINGS`` return one row per finding of the per-flow kinds
(kind, source, destination, port, protocol): the unexpected flows grouped as they are, and
the flows a rule speaks for judged for each kind that can concern them, one (flow, kind)
row each, then grouped; ``engine`` turns each row into a finding. The other queries each
answer a question the flows do not group the same way: scans, missing flows, unknown hosts
and the role-to-role picture. The wide flow columns are joined back by ``i`` only where a
finding needs them; both sides of that join are unique on ``i`` and ``f`` is in flow
order, so each aggregate reads its flows in flow-table (time) order, and the engine keeps
the values of the evidence (states, apps, HTTP methods...) in order of first appearance.

Planning a DuckDB query costs milliseconds even when it returns nothing, more than
running these ones on tens of thousands of flows, so the checks are few statements that
each do much, and the engine skips the ones whose answer is known to be empty.
"""

from __future__ import annotations

#: the flow table columns the queries read (the rest is not handed to DuckDB)
FLOW_COLUMNS = (
    "flow_id", "community_id", "src_ip", "src_port", "dst_ip", "dst_port", "proto", "first_seen",
    "last_seen", "packets_fwd", "packets_rev", "bytes_fwd", "bytes_rev", "payload_bytes_fwd",
    "payload_bytes_rev", "state", "app", "encrypted", "tls_version", "tls_cert_requested",
    "tls_client_cert", "http_method", "http_target", "http_host", "http_user_agent",
)  # fmt: skip


def _iso(ns: str) -> str:
    """SQL for ``ns`` (int64 nanoseconds since the epoch) as ISO 8601 UTC text, exactly as
    auditor.traffic.iso writes it (microseconds, left out when zero): formatting a few
    thousand timestamps in DuckDB costs less than converting them for Python to format."""
    # floored, as Python's // and %: DuckDB truncates towards zero (and never overflows here)
    frac = f"(({ns}) % 1000000000 + 1000000000) % 1000000000"
    sec = f"(({ns}) // 1000000000 - (({ns}) % 1000000000 < 0)::BIGINT)"
    return (
        f"strftime(epoch_ms(({sec}) * 1000), '%Y-%m-%dT%H:%M:%S') || "
        f"CASE WHEN {frac} < 1000 THEN 'Z' ELSE printf('.%06dZ', {frac} // 1000) END"
    )


# Unexpected = not allowed: allowed means covered by a role match (each side's role held, or
# its peer 'any' / 'internet' met); without an inventory a port match (an endpoint of
# unknown role) allows too. Every transport is judged: ICMP's type stands for the port. Scope: with an inventory, flows
# between two hosts outside it are none of the audit's business.
_PREPARE = """
CREATE OR REPLACE TEMP TABLE f AS
WITH hr AS (
    SELECT ip, list(DISTINCT role ORDER BY role) AS roles FROM host_roles GROUP BY ip
),
fr AS (
    SELECT fl.i, fl.src_ip, fl.dst_ip, fl.dst_port, fl.proto, coalesce(fl.app, 'none') AS app,
           coalesce(s.roles, []::VARCHAR[]) AS src_roles,
           coalesce(d.roles, []::VARCHAR[]) AS dst_roles,
           -- within one host: the same address, or a loopback one (never leaves the host)
           {is_local} AS is_local,
           -- the source port, only where a rule names source ports (else one combo per flow)
           -- (-1: none named; the joins below are USING, where NULL never equals NULL)
           {sp} AS sp,
           {src_public} AS src_public,
           {dst_public} AS dst_public
    FROM flows fl
    LEFT JOIN hr s ON s.ip = fl.src_ip
    LEFT JOIN hr d ON d.ip = fl.dst_ip
),
-- what covers a flow depends only on its protocol, port, payload's protocol, role lists,
-- locality, named source port and public ends: match each such combination once (a few
-- hundred) rather than each flow. A rule's side is a role its endpoint holds (or any host
-- without a role: a port match), or the peer 'any' (every host) or 'internet' (a public
-- address); ``role_ok``: every side met by a role or a peer, not by a missing role.
combos AS (
    SELECT DISTINCT proto, dst_port, app, is_local, sp, src_public, dst_public, src_roles,
                    dst_roles
    FROM fr
),
m AS (
    SELECT c.*, r.rule_id, r.disk_transfer, r.encrypted_required, r.security = 'mtls' AS mtls,
           len(r.wire_apps) = 0 OR list_contains(r.wire_apps, c.app) AS app_fits,
           list_position($tls_versions, coalesce(r.min_tls, $min_tls)) AS min_tls_rank,
           (r.from_role = 'any' OR list_contains(c.src_roles, r.from_role)
            OR (r.from_role = 'internet' AND c.src_public))
           AND (r.to_role = 'any' OR list_contains(c.dst_roles, r.to_role)
                OR (r.to_role = 'internet' AND c.dst_public)) AS role_ok
    FROM combos c JOIN rules r
      ON r.proto = c.proto AND c.dst_port BETWEEN r.port_lo AND r.port_hi
    WHERE CASE r.from_role WHEN 'any' THEN true WHEN 'internet' THEN c.src_public
               ELSE len(c.src_roles) = 0 OR list_contains(c.src_roles, r.from_role) END
      AND CASE r.to_role WHEN 'any' THEN true WHEN 'internet' THEN c.dst_public
               ELSE len(c.dst_roles) = 0 OR list_contains(c.dst_roles, r.to_role) END
      AND (NOT r.local OR c.is_local)
      AND (r.src_lo IS NULL OR c.sp BETWEEN r.src_lo AND r.src_hi)
),
fm AS (
    SELECT proto, dst_port, app, is_local, sp, src_public, dst_public, src_roles, dst_roles,
           list(DISTINCT rule_id ORDER BY rule_id) AS rule_ids,
           list(DISTINCT rule_id ORDER BY rule_id) FILTER (WHERE disk_transfer) AS disk_ids,
           list(DISTINCT rule_id ORDER BY rule_id) FILTER (WHERE encrypted_required) AS enc_ids,
           list(DISTINCT rule_id ORDER BY rule_id) FILTER (WHERE mtls) AS mtls_ids,
           bool_or(app_fits) AS app_fits,
           min(min_tls_rank) AS min_tls_rank,
           bool_or(role_ok) AS role_ok
    FROM m GROUP BY ALL
),
-- what the ruleset forbids (auditor.rules.denies_table): an endpoint without a role meets
-- a role condition unless the entry names only roles; with an inventory, a flow with no
-- placed endpoint is none of the audit's business
dm AS (
    SELECT c.proto, c.dst_port, c.app, c.is_local, c.sp, c.src_public, c.dst_public,
           c.src_roles, c.dst_roles, list(DISTINCT d.deny_id ORDER BY d.deny_id) AS deny_ids
    FROM combos c JOIN denies d
      ON (d.proto IS NULL OR d.proto = c.proto)
     AND (d.port_lo IS NULL OR c.dst_port BETWEEN d.port_lo AND d.port_hi)
     AND (d.app IS NULL OR d.app = c.app)
    WHERE (NOT d.local OR NOT c.is_local)
      AND (d.from_role IS NULL OR list_contains(c.src_roles, d.from_role)
           OR (len(c.src_roles) = 0 AND NOT d.roles_only))
      AND (d.to_role IS NULL OR list_contains(c.dst_roles, d.to_role)
           OR (len(c.dst_roles) = 0 AND NOT d.roles_only))
      AND (NOT $inventory OR len(c.src_roles) > 0 OR len(c.dst_roles) > 0)
    GROUP BY ALL
)
SELECT fr.*, fm.rule_ids, fm.disk_ids, fm.enc_ids, fm.mtls_ids, fm.app_fits,
       fm.min_tls_rank, coalesce(fm.role_ok, false) AS role_ok, dm.deny_ids,
       len(fr.src_roles) > 0 OR len(fr.dst_roles) > 0 AS placed,
       dm.deny_ids IS NULL AND CASE WHEN $inventory
            THEN (len(fr.src_roles) > 0 OR len(fr.dst_roles) > 0)
                 AND NOT coalesce(fm.role_ok, false)
            ELSE fm.rule_ids IS NULL END AS unexpected,
       false AS scan_ports, false AS scan_hosts
FROM fr
LEFT JOIN fm USING (proto, dst_port, app, is_local, sp, src_public, dst_public, src_roles,
                    dst_roles)
LEFT JOIN dm USING (proto, dst_port, app, is_local, sp, src_public, dst_public, src_roles,
                    dst_roles)
ORDER BY fr.i
"""


_IS_LOCAL = """(fl.src_ip = fl.dst_ip OR fl.src_ip LIKE '127.%' OR fl.dst_ip LIKE '127.%'
            OR fl.src_ip = '::1' OR fl.dst_ip = '::1')"""


def prepare(source_ports: bool, internet: bool, local: bool = True) -> str:
    """PREPARE for a ruleset: the source port, the public ends and whether a flow stays in
    its host are only computed (per flow) when a rule names source ports ($src_ports), the
    peer 'internet' (public_ips) or a local scope."""
    return _PREPARE.format(
        is_local=_IS_LOCAL if local else "false",
        sp=(
            "CASE WHEN list_contains($src_ports::INTEGER[], fl.src_port) THEN fl.src_port "
            "ELSE -1 END"
            if source_ports
            else "-1"
        ),
        src_public="fl.src_ip IN (SELECT ip FROM public_ips)" if internet else "false",
        dst_public="fl.dst_ip IN (SELECT ip FROM public_ips)" if internet else "false",
    )


# Scans: one source trying more than $scan distinct unexpected ports on one destination
# (vertical), or one unexpected port on more than $scan destinations (horizontal).
SCANS = """
WITH u AS (SELECT src_ip, dst_ip, dst_port, proto FROM f WHERE unexpected),
v AS (SELECT src_ip, dst_ip, proto FROM u GROUP BY ALL HAVING count(DISTINCT dst_port) > $scan)
SELECT 'ports' AS scan, src_ip, dst_ip, NULL::INTEGER AS dst_port, proto FROM v
UNION ALL
SELECT 'hosts', src_ip, NULL, dst_port, proto FROM u
WHERE (src_ip, dst_ip, proto) NOT IN (SELECT * FROM v)
GROUP BY ALL HAVING count(DISTINCT dst_ip) > $scan
"""

# Only run when SCANS found some: marks their flows, which FINDINGS then leaves to SCAN.
MARK_SCANS = """
UPDATE f SET
    scan_ports = (src_ip, dst_ip, proto) IN (SELECT src_ip, dst_ip, proto FROM scans
                                             WHERE scan = 'ports'),
    scan_hosts = (src_ip, dst_port, proto) IN (SELECT src_ip, dst_port, proto FROM scans
                                               WHERE scan = 'hosts')
WHERE unexpected
"""

# The kinds a flow that a rule speaks for can show, each with its condition on the flow and
# the covering rules it cites. The rules that speak for a flow's content are its role
# matches, or its port matches when one endpoint has a role (``placed``: two unplaced hosts
# on port 80 are not an App Layering upgrade download just because the port fits).
# A disk/file transfer moves bulk data: a flow on a disk-transfer rule with less cleartext
# payload than $min_disk (an API call, a BITS session set-up) is judged as plain cleartext.
# mtls_not_observed is settled per finding (HAVING): a client certificate seen on none of
# its flows, or not visible on any (TLS 1.3, handshake not in the capture).
_CONTENT_KINDS = """
    [CASE WHEN NOT f.app_fits AND fl.app NOT IN ('unknown', 'none')
               AND NOT (f.enc_ids IS NOT NULL AND fl.encrypted = false)
          THEN 'protocol_mismatch' END,
     CASE WHEN f.disk_ids IS NOT NULL AND fl.encrypted = false AND fl.payload_bytes_fwd
               + fl.payload_bytes_rev >= $min_disk THEN 'plaintext_disk_transfer' END,
     CASE WHEN f.enc_ids IS NOT NULL AND fl.encrypted = false
               AND NOT (fl.payload_bytes_fwd + fl.payload_bytes_rev >= $min_disk
                        AND f.disk_ids IS NOT NULL) THEN 'plaintext_where_tls_required' END,
     CASE WHEN f.mtls_ids IS NOT NULL AND fl.app = 'tls'
               AND fl.tls_client_cert IS DISTINCT FROM true THEN 'mtls_not_observed' END,
     CASE WHEN list_position($tls_versions, fl.tls_version) < f.min_tls_rank
          THEN 'weak_tls' END]
"""

# What every finding over flows reports. The flow ids, community ids, states and apps come
# joined by spaces (none of them holds one) rather than as lists: building and converting a
# list per finding costs DuckDB and Python several times more. They are in flow order; the
# engine keeps the first appearance of each state and app, as list(DISTINCT) would.
#: the flows a finding lists (``flow_ids``, and the Community IDs of those flows): the first
#: by first packet. A finding of more flows says so (``evidence.flow_ids_truncated``) and
#: counts them all (``evidence.flows``): a list of every flow's id, which DuckDB cannot
#: spill, made one finding of a million flows 100 MB of JSON.
FLOW_IDS = 1000

_FLOW_AGGREGATES = f"""
    {_iso("min(first_seen)")} AS first_seen, {_iso("max(last_seen)")} AS last_seen,
    sum(packets_fwd + packets_rev)::BIGINT AS packets,
    sum(bytes_fwd + bytes_rev)::BIGINT AS bytes,
    count(*) AS flows,
    arg_min(flow_id, row(first_seen, i), {FLOW_IDS}) AS flow_ids,
    arg_min(community_id, row(first_seen, i), {FLOW_IDS}) AS community_ids,
    string_agg(state, ' ') AS states,
    string_agg(app, ' ') AS apps
"""

# One row per unexpected_port finding: flows no rule allows (scans apart), per source,
# destination, port and protocol.
UNEXPECTED_PORT_COLUMNS = (
    "src_ip", "dst_ip", "dst_port", "proto", "first_seen", "last_seen", "packets", "bytes",
    "flows", "flow_ids", "community_ids", "states", "apps",
)  # fmt: skip
UNEXPECTED_PORT = f"""
SELECT src_ip, dst_ip, dst_port, proto, {_FLOW_AGGREGATES}
FROM (SELECT fl.* FROM f JOIN flows fl USING (i)
      WHERE f.unexpected AND NOT f.scan_ports AND NOT f.scan_hosts)
GROUP BY src_ip, dst_ip, dst_port, proto
"""

# One row per finding of the other per-flow kinds: each flow a rule speaks for, judged for
# every kind that can concern it, one (flow, kind) row each, grouped per kind, source,
# destination, port and protocol.
FINDINGS = f"""
SELECT kind, src_ip, dst_ip, dst_port, proto, {_FLOW_AGGREGATES},
    -- the rules behind a finding: every matching rule, and the first of them as the one cited
    list_sort(list_distinct(flatten(list(cited)))) AS rule_ids,
    list_min(flatten(list(cited))) AS rule_id,
    sum(payload_bytes_fwd + payload_bytes_rev)::BIGINT AS payload_bytes,
    list(http_method) FILTER (WHERE http_method IS NOT NULL) AS methods,
    list(http_user_agent) FILTER (WHERE http_user_agent IS NOT NULL) AS agents,
    list(http_target) FILTER (WHERE http_target IS NOT NULL) AS targets,
    list(http_host) FILTER (WHERE http_host IS NOT NULL) AS hosts,
    list(tls_version) FILTER (WHERE tls_version IS NOT NULL) AS versions,
    -- mtls_not_observed: 'no_client_cert' (handshake visible, no certificate), 'tls13' (not
    -- verifiable), 'not_visible' (TLS <= 1.2 but the handshake is not in the capture)
    CASE WHEN bool_or(tls_client_cert = false) THEN 'no_client_cert'
         WHEN bool_and(tls_version = 'TLS 1.3') THEN 'tls13'
         ELSE 'not_visible' END AS verdict,
    bool_or(tls_cert_requested) AS cert_requested,
    count(*) FILTER (WHERE tls_client_cert = false) AS without_cert
FROM (SELECT *, CASE kind WHEN 'plaintext_disk_transfer' THEN disk_ids
                          WHEN 'plaintext_where_tls_required' THEN enc_ids
                          WHEN 'mtls_not_observed' THEN mtls_ids
                          ELSE all_ids END AS cited
      FROM (SELECT unnest({_CONTENT_KINDS}) AS kind, fl.*,
                   f.rule_ids AS all_ids, f.disk_ids, f.enc_ids, f.mtls_ids
            FROM f JOIN flows fl USING (i)
            WHERE f.placed AND f.rule_ids IS NOT NULL AND f.deny_ids IS NULL)
      WHERE kind IS NOT NULL)
GROUP BY kind, src_ip, dst_ip, dst_port, proto
HAVING kind <> 'mtls_not_observed'
    OR bool_or(tls_client_cert = false) OR bool_and(tls_client_cert IS NULL)
"""

# One row per prohibited_flow finding: the flows a deny entry (or a local-scope rule) matches,
# per source, destination, port and protocol; the first matching entry is the one cited.
# Whether PROHIBITED has anything to report (planning it costs more than this scan).
ANY_PROHIBITED = "SELECT count(*) FROM f WHERE deny_ids IS NOT NULL"

# FTP data connections (app 'ftp-data') go to a new port each: those of one source and
# destination are one finding, its port null and the ports listed.
PROHIBITED = f"""
SELECT src_ip, dst_ip, port AS dst_port, proto, {_FLOW_AGGREGATES},
    list_sort(list_distinct(flatten(list(deny_ids)))) AS rule_ids,
    list_min(flatten(list(deny_ids))) AS rule_id,
    list(DISTINCT dst_port ORDER BY dst_port) AS ports
FROM (SELECT f.deny_ids, fl.*,
             CASE WHEN fl.app = 'ftp-data' THEN NULL ELSE fl.dst_port END AS port
      FROM f JOIN flows fl USING (i)
      WHERE f.deny_ids IS NOT NULL)
GROUP BY src_ip, dst_ip, port, proto
"""

# One row per (host, peer, port, protocol) where a host holding a role restricted to one
# address family ($family_ips: its addresses of the other family) talks.
ADDRESS_FAMILY = f"""
SELECT src_ip, dst_ip, dst_port, proto, {_FLOW_AGGREGATES}
FROM (SELECT fl.* FROM flows fl
      WHERE list_contains($family_ips, fl.src_ip) OR list_contains($family_ips, fl.dst_ip))
GROUP BY src_ip, dst_ip, dst_port, proto
ORDER BY src_ip, dst_ip, dst_port, proto
"""

_SCAN_COLS = f"""
    f.src_ip, f.proto,
    any_value(f.src_roles) AS src_roles,
    {_iso("min(f.first_seen)")} AS first_seen, {_iso("max(f.last_seen)")} AS last_seen,
    sum(f.packets_fwd + f.packets_rev) AS packets, sum(f.bytes_fwd + f.bytes_rev) AS bytes,
    arg_min(f.flow_id, row(f.first_seen, f.i), 100) AS flow_ids,
    min(DISTINCT f.community_id, 100) AS community_ids,
    list(DISTINCT f.state) FILTER (WHERE f.state IS NOT NULL) AS states,
    count(*) AS flows,
    count(*) FILTER (WHERE f.state = 'rejected') AS rejected,
    count(*) FILTER (WHERE f.packets_rev > 0 AND coalesce(f.state, '') NOT IN
                     ('rejected', 'attempted')) AS answered
"""

# One row per scan (only run when SCANS found some). Its lists are the first few values
# (min(x, n), arg_min(x, key, n)), never every flow's: a scan of millions of flows is
# aggregated within DuckDB's memory limit (a list aggregate cannot spill).
UNEXPECTED_SCAN = f"""
WITH s AS NOT MATERIALIZED (SELECT f.scan_ports, f.scan_hosts, f.src_roles, f.dst_roles, fl.*
           FROM f JOIN flows fl USING (i) WHERE f.scan_ports OR f.scan_hosts)
SELECT 'ports' AS scan, {_SCAN_COLS}, f.dst_ip, NULL::INTEGER AS dst_port,
       any_value(f.dst_roles) AS dst_roles,
       count(DISTINCT f.dst_port) AS targets,
       min(DISTINCT f.dst_port, $sample) AS sample, max(f.dst_port) AS last,
       min(DISTINCT f.dst_port, $sample)
           FILTER (WHERE f.packets_rev > 0 AND coalesce(f.state, '') NOT IN
                   ('rejected', 'attempted')) AS open_sample
FROM s f WHERE f.scan_ports
GROUP BY f.src_ip, f.dst_ip, f.proto
UNION ALL
SELECT 'hosts' AS scan, {_SCAN_COLS}, NULL AS dst_ip, f.dst_port,
       []::VARCHAR[] AS dst_roles,
       count(DISTINCT f.dst_ip) AS targets,
       min(DISTINCT f.dst_ip, $sample) AS sample, max(f.dst_ip) AS last,
       min(DISTINCT f.dst_ip, $sample)
           FILTER (WHERE f.packets_rev > 0 AND coalesce(f.state, '') NOT IN
                   ('rejected', 'attempted')) AS open_sample
FROM s f WHERE f.scan_hosts
GROUP BY f.src_ip, f.dst_port, f.proto
ORDER BY 2, 3
"""

# A documented flow expected between two roles that both have hosts (the joins on
# ``held_roles``), and not seen (no role match). The cleartext and TLS variants of one
# purpose (``pair``) satisfy each other; one finding per purpose, on the variant that
# requires encryption when there is one (the expected pair ``p``). The hosts of each role
# (the evidence) the engine adds: an inventory may give a role 20,000 addresses.
MISSING_FLOW = """
WITH seen AS (
    SELECT DISTINCT unnest(rule_ids) AS rule_id
    FROM f WHERE len(src_roles) > 0 AND len(dst_roles) > 0
),
exp AS (
    SELECT rule_id, any_value(from_role) AS from_role, any_value(to_role) AS to_role,
           any_value(proto) AS proto, min(port_lo) AS port_lo, any_value(pair) AS pair,
           bool_or(encrypted_required) AS enc
    FROM rules WHERE expected GROUP BY rule_id
)
SELECT e.rule_id, e.from_role, e.to_role, e.proto, e.port_lo
FROM exp e
JOIN held_roles s ON s.role = e.from_role
JOIN held_roles d ON d.role = e.to_role
LEFT JOIN exp p ON p.rule_id = e.pair
WHERE e.rule_id NOT IN (SELECT rule_id FROM seen)
  AND (e.pair IS NULL OR e.pair NOT IN (SELECT rule_id FROM seen))
  AND (e.pair IS NULL OR e.enc OR p.rule_id IS NULL OR NOT p.enc)
ORDER BY e.from_role, e.to_role, e.rule_id
"""

# A host without a role that talks to hosts with one, other than as the peer 'any' or
# 'internet' of a rule (the Internet holds no role).
UNKNOWN_HOST = f"""
WITH edges AS (
    SELECT fl.src_ip AS ip, fl.dst_ip AS peer, f.dst_roles AS peer_roles, fl.proto,
           fl.dst_port AS port, fl.first_seen, fl.last_seen,
           fl.packets_fwd + fl.packets_rev AS packets, fl.bytes_fwd + fl.bytes_rev AS bytes,
           fl.flow_id, fl.community_id, fl.i
    FROM f JOIN flows fl USING (i)
    WHERE len(f.src_roles) = 0 AND len(f.dst_roles) > 0 AND NOT f.role_ok
    UNION ALL
    SELECT fl.dst_ip, fl.src_ip, f.src_roles, fl.proto, fl.dst_port, fl.first_seen,
           fl.last_seen, fl.packets_fwd + fl.packets_rev, fl.bytes_fwd + fl.bytes_rev,
           fl.flow_id, fl.community_id, fl.i
    FROM f JOIN flows fl USING (i)
    WHERE len(f.dst_roles) = 0 AND len(f.src_roles) > 0 AND NOT f.role_ok
)
SELECT ip, {_iso("min(first_seen)")} AS first_seen, {_iso("max(last_seen)")} AS last_seen,
       sum(packets) AS packets, sum(bytes) AS bytes,
       arg_min(flow_id, row(first_seen, i), {FLOW_IDS}) AS flow_ids,
       arg_min(community_id, row(first_seen, i), {FLOW_IDS}) AS community_ids, count(*) AS flows,
       list(DISTINCT peer ORDER BY peer) AS peers,
       list(DISTINCT proto || '/' || port) AS ports,
       flatten(list(DISTINCT peer_roles)) AS peer_roles
FROM edges
GROUP BY ip
ORDER BY ip
"""

# What was seen between roles against what is documented (the role-to-role picture). A flow
# a rule covers counts for that rule's pair of roles only (a host that is agent+pvs_agent
# fetching a disk on 3009 observes pvs_agent -> appliance, not an undocumented agent ->
# appliance); a flow no rule covers counts for every pair of its hosts' roles, as
# unexpected_port reports it. Flows with the same protocol, port, role lists and rules
# count together (``combos``): each is one flow for each pair of roles it makes.
ROLE_PAIRS = """
WITH combos AS (
    SELECT proto, dst_port, src_roles, dst_roles, rule_ids, count(*) AS n
    FROM f WHERE len(src_roles) > 0 AND len(dst_roles) > 0
    GROUP BY proto, dst_port, src_roles, dst_roles, rule_ids
),
covered AS (
    SELECT DISTINCT c.proto, c.dst_port, c.src_roles, c.dst_roles, c.rule_ids, c.n,
           r.from_role AS src_role, r.to_role AS dst_role
    FROM (SELECT *, unnest(rule_ids) AS rule_id FROM combos) c JOIN rules r USING (rule_id)
),
uncovered AS (
    SELECT proto, dst_port, n, src_role, unnest(dst_roles) AS dst_role
    FROM (SELECT *, unnest(src_roles) AS src_role FROM combos WHERE rule_ids IS NULL)
),
obs AS (
    SELECT src_role, dst_role, proto, dst_port, sum(n)::BIGINT AS flows
    FROM (SELECT src_role, dst_role, proto, dst_port, n FROM covered
          UNION ALL
          SELECT src_role, dst_role, proto, dst_port, n FROM uncovered)
    GROUP BY ALL
),
doc AS (
    SELECT from_role AS src_role, to_role AS dst_role, proto, port_lo, port_hi,
           list(DISTINCT rule_id ORDER BY rule_id) AS rule_ids
    FROM rules GROUP BY ALL
)
SELECT coalesce(o.src_role, d.src_role) AS src_role, coalesce(o.dst_role, d.dst_role) AS dst_role,
       coalesce(o.proto, d.proto) AS proto, coalesce(o.dst_port, d.port_lo) AS dst_port,
       d.port_hi AS port_hi, d.rule_ids IS NOT NULL AS documented, o.flows IS NOT NULL AS observed,
       coalesce(o.flows, 0) AS flows, coalesce(d.rule_ids, []::VARCHAR[]) AS rule_ids
FROM obs o FULL OUTER JOIN doc d
  ON o.src_role = d.src_role AND o.dst_role = d.dst_role AND o.proto = d.proto
 AND o.dst_port BETWEEN d.port_lo AND d.port_hi
WHERE coalesce(o.src_role, d.src_role) IN (SELECT role FROM held_roles)
  AND coalesce(o.dst_role, d.dst_role) IN (SELECT role FROM held_roles)
ORDER BY 1, 2, 3, 4
"""
