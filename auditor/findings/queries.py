"""The checks, as SQL over three tables: ``flows``, ``host_roles`` (ip, role) and ``rules``
(one row per rule and port range, from ``auditor.rules.rules_table``).

``PREPARE`` builds the working tables:

* ``f`` — the TCP/UDP flows with their endpoints' role lists;
* ``m`` — every (flow, rule) pair in which the rule covers the flow: ``how = 'roles'`` when
  the source holds the rule's from-role and the destination its to-role, ``how = 'port'``
  when an endpoint has no role and the rule is compatible with the side that has one.

Each check is then one SELECT returning one row per finding (already grouped per
source, destination, port and protocol), which ``engine`` turns into finding objects.
"""

from __future__ import annotations

#: the flow table columns the queries read (the rest is not handed to DuckDB)
FLOW_COLUMNS = (
    "flow_id", "community_id", "src_ip", "dst_ip", "dst_port", "proto", "first_seen",
    "last_seen", "packets_fwd", "packets_rev", "bytes_fwd", "bytes_rev", "payload_bytes_fwd",
    "payload_bytes_rev", "state", "app", "encrypted", "tls_version", "tls_cert_requested",
    "tls_client_cert", "http_method", "http_target", "http_host", "http_user_agent",
)  # fmt: skip

PREPARE = """
CREATE OR REPLACE TEMP TABLE hr AS
    SELECT ip, list(DISTINCT role ORDER BY role) AS roles FROM host_roles GROUP BY ip;

CREATE OR REPLACE TEMP TABLE f AS
    SELECT fl.*, coalesce(s.roles, []::VARCHAR[]) AS src_roles,
           coalesce(d.roles, []::VARCHAR[]) AS dst_roles
    FROM flows fl
    LEFT JOIN hr s ON s.ip = fl.src_ip
    LEFT JOIN hr d ON d.ip = fl.dst_ip
    WHERE fl.proto IN ('tcp', 'udp');

CREATE OR REPLACE TEMP TABLE m AS
    SELECT DISTINCT f.flow_id, r.rule_id, 'roles' AS how
    FROM f
    JOIN host_roles hs ON hs.ip = f.src_ip
    JOIN host_roles hd ON hd.ip = f.dst_ip
    JOIN rules r ON r.from_role = hs.role AND r.to_role = hd.role AND r.proto = f.proto
                AND f.dst_port BETWEEN r.port_lo AND r.port_hi
    UNION
    SELECT DISTINCT f.flow_id, r.rule_id, 'port' AS how
    FROM f JOIN rules r ON r.proto = f.proto AND f.dst_port BETWEEN r.port_lo AND r.port_hi
    WHERE (len(f.src_roles) = 0 OR len(f.dst_roles) = 0)
      AND (len(f.src_roles) = 0 OR list_contains(f.src_roles, r.from_role))
      AND (len(f.dst_roles) = 0 OR list_contains(f.dst_roles, r.to_role));

-- the rules that speak for each flow's content: role matches when there are any; port
-- matches only when one endpoint has a role (two unplaced hosts on port 80 are not an App
-- Layering upgrade download just because the port fits)
CREATE OR REPLACE TEMP TABLE cm AS
    SELECT DISTINCT m.flow_id, m.rule_id, m.how FROM m JOIN f USING (flow_id)
    WHERE m.how = 'roles'
       OR (m.flow_id NOT IN (SELECT flow_id FROM m WHERE how = 'roles')
           AND (len(f.src_roles) > 0 OR len(f.dst_roles) > 0));
"""

# Columns every per-flow finding query returns, in this order (engine.py reads them so).
_FINDING_COLS = """
    f.src_ip, f.dst_ip, f.dst_port, f.proto,
    any_value(f.src_roles) AS src_roles, any_value(f.dst_roles) AS dst_roles,
    min(f.first_seen) AS first_seen, max(f.last_seen) AS last_seen,
    sum(f.packets_fwd + f.packets_rev) AS packets, sum(f.bytes_fwd + f.bytes_rev) AS bytes,
    list(f.flow_id ORDER BY f.first_seen) AS flow_ids,
    list(DISTINCT f.community_id) AS community_ids,
    list(DISTINCT f.state) FILTER (WHERE f.state IS NOT NULL) AS states,
    list(DISTINCT f.app) AS apps,
    count(*) AS flows
"""

# Allowed = covered by a rule between the endpoints' roles; without an inventory, port
# matches (an endpoint of unknown role) allow too. Scope: with an inventory, flows between
# two hosts outside it are none of the audit's business. ``u`` holds the unexpected flows.
UNEXPECTED = (
    """
CREATE OR REPLACE TEMP TABLE u AS
SELECT f.*,
       CASE WHEN len(f.src_roles) > 0 AND len(f.dst_roles) > 0 THEN 'undocumented'
            WHEN len(f.src_roles) > 0 OR len(f.dst_roles) > 0 THEN 'unknown_peer'
            ELSE 'undocumented_port' END AS variant
FROM f
WHERE f.flow_id NOT IN (SELECT flow_id FROM m WHERE how = 'roles' OR NOT $inventory)
  AND (NOT $inventory OR len(f.src_roles) > 0 OR len(f.dst_roles) > 0)
""",
    """
-- scans: one source trying more than $scan distinct unexpected ports on one destination
-- (vertical), or one unexpected port on more than $scan destinations (horizontal)
CREATE OR REPLACE TEMP TABLE scan_v AS
SELECT src_ip, dst_ip, proto FROM u GROUP BY ALL HAVING count(DISTINCT dst_port) > $scan
""",
    """
CREATE OR REPLACE TEMP TABLE scan_h AS
SELECT src_ip, dst_port, proto FROM u
WHERE (src_ip, dst_ip, proto) NOT IN (SELECT * FROM scan_v)
GROUP BY ALL HAVING count(DISTINCT dst_ip) > $scan
""",
)

UNEXPECTED_PORT = f"""
SELECT {_FINDING_COLS}, any_value(f.variant) AS variant
FROM u f
WHERE (f.src_ip, f.dst_ip, f.proto) NOT IN (SELECT * FROM scan_v)
  AND (f.src_ip, f.dst_port, f.proto) NOT IN (SELECT * FROM scan_h)
GROUP BY f.src_ip, f.dst_ip, f.dst_port, f.proto
ORDER BY f.src_ip, f.dst_ip, f.dst_port
"""

_SCAN_COLS = """
    f.src_ip, f.proto,
    any_value(f.src_roles) AS src_roles,
    min(f.first_seen) AS first_seen, max(f.last_seen) AS last_seen,
    sum(f.packets_fwd + f.packets_rev) AS packets, sum(f.bytes_fwd + f.bytes_rev) AS bytes,
    list(f.flow_id ORDER BY f.first_seen)[1:100] AS flow_ids,
    list(DISTINCT f.community_id)[1:100] AS community_ids,
    list(DISTINCT f.state) FILTER (WHERE f.state IS NOT NULL) AS states,
    count(*) AS flows,
    count(*) FILTER (WHERE f.state = 'rejected') AS rejected,
    count(*) FILTER (WHERE f.packets_rev > 0 AND coalesce(f.state, '') NOT IN
                     ('rejected', 'attempted')) AS answered
"""

UNEXPECTED_SCAN = f"""
SELECT 'ports' AS scan, {_SCAN_COLS}, f.dst_ip, NULL::INTEGER AS dst_port,
       any_value(f.dst_roles) AS dst_roles,
       count(DISTINCT f.dst_port) AS targets,
       list(DISTINCT f.dst_port ORDER BY f.dst_port) AS sample,
       list(DISTINCT f.dst_port ORDER BY f.dst_port)
           FILTER (WHERE f.packets_rev > 0 AND coalesce(f.state, '') NOT IN
                   ('rejected', 'attempted')) AS open_sample
FROM u f JOIN scan_v USING (src_ip, dst_ip, proto)
GROUP BY f.src_ip, f.dst_ip, f.proto
UNION ALL
SELECT 'hosts' AS scan, {_SCAN_COLS}, NULL AS dst_ip, f.dst_port,
       []::VARCHAR[] AS dst_roles,
       count(DISTINCT f.dst_ip) AS targets,
       list(DISTINCT f.dst_ip ORDER BY f.dst_ip) AS sample,
       list(DISTINCT f.dst_ip ORDER BY f.dst_ip)
           FILTER (WHERE f.packets_rev > 0 AND coalesce(f.state, '') NOT IN
                   ('rejected', 'attempted')) AS open_sample
FROM u f JOIN scan_h USING (src_ip, dst_port, proto)
GROUP BY f.src_ip, f.dst_port, f.proto
ORDER BY 2, 3
"""


def _flow_rules(condition: str) -> str:
    """One row per flow: the sorted ids of the content rules (``cm``) meeting ``condition``.

    Joining this instead of ``cm`` keeps one row per flow when several rules match it (two
    Diego components on one port), so the sums, counts and flow lists of _FINDING_COLS count
    each flow once."""
    return f"""(
    SELECT cm.flow_id, list(DISTINCT cm.rule_id ORDER BY cm.rule_id) AS rule_ids
    FROM cm JOIN (SELECT DISTINCT rule_id, disk_transfer, encrypted_required, security
                  FROM rules) r USING (rule_id)
    WHERE {condition}
    GROUP BY cm.flow_id) r"""


# The rules behind a finding: every matching rule, and the first of them as the one cited.
_RULE_COLS = """
    list_sort(list_distinct(flatten(list(r.rule_ids)))) AS rule_ids,
    list_min(flatten(list(r.rule_ids))) AS rule_id
"""

# A disk/file transfer moves bulk data: a flow on a disk-transfer rule with less cleartext
# payload than $min_disk (an API call, a BITS session set-up) is judged as plain cleartext.
PLAINTEXT_DISK_TRANSFER = f"""
SELECT {_FINDING_COLS}, {_RULE_COLS},
       sum(f.payload_bytes_fwd + f.payload_bytes_rev) AS payload_bytes,
       list(DISTINCT f.http_method) FILTER (WHERE f.http_method IS NOT NULL) AS methods,
       list(DISTINCT f.http_user_agent) FILTER (WHERE f.http_user_agent IS NOT NULL) AS agents,
       list(DISTINCT f.http_target) FILTER (WHERE f.http_target IS NOT NULL) AS targets
FROM f JOIN {_flow_rules("r.disk_transfer")} USING (flow_id)
WHERE f.encrypted = false
  AND f.payload_bytes_fwd + f.payload_bytes_rev >= $min_disk
GROUP BY f.src_ip, f.dst_ip, f.dst_port, f.proto
ORDER BY f.src_ip, f.dst_ip, f.dst_port
"""

PLAINTEXT_WHERE_TLS_REQUIRED = f"""
SELECT {_FINDING_COLS}, {_RULE_COLS},
       sum(f.payload_bytes_fwd + f.payload_bytes_rev) AS payload_bytes,
       list(DISTINCT f.http_method) FILTER (WHERE f.http_method IS NOT NULL) AS methods,
       list(DISTINCT f.http_host) FILTER (WHERE f.http_host IS NOT NULL) AS hosts
FROM f JOIN {_flow_rules("r.encrypted_required")} USING (flow_id)
WHERE f.encrypted = false
  AND NOT (f.payload_bytes_fwd + f.payload_bytes_rev >= $min_disk
           AND f.flow_id IN (SELECT flow_id FROM {_flow_rules("r.disk_transfer")}))
GROUP BY f.src_ip, f.dst_ip, f.dst_port, f.proto
ORDER BY f.src_ip, f.dst_ip, f.dst_port
"""

# verdict: 'no_client_cert' (handshake visible, no certificate), 'tls13' (not verifiable),
# 'not_visible' (TLS <= 1.2 but the handshake is not in the capture)
MTLS_NOT_OBSERVED = f"""
SELECT {_FINDING_COLS}, {_RULE_COLS},
       CASE WHEN bool_or(f.tls_client_cert = false) THEN 'no_client_cert'
            WHEN bool_and(f.tls_version = 'TLS 1.3') THEN 'tls13'
            ELSE 'not_visible' END AS verdict,
       list(DISTINCT f.tls_version) FILTER (WHERE f.tls_version IS NOT NULL) AS versions,
       bool_or(f.tls_cert_requested) AS cert_requested,
       count(*) FILTER (WHERE f.tls_client_cert = false) AS without_cert
FROM f JOIN {_flow_rules("r.security = 'mtls'")} USING (flow_id)
WHERE f.app = 'tls' AND f.tls_client_cert IS DISTINCT FROM true
GROUP BY f.src_ip, f.dst_ip, f.dst_port, f.proto
HAVING bool_or(f.tls_client_cert = false) OR bool_and(f.tls_client_cert IS NULL)
ORDER BY f.src_ip, f.dst_ip, f.dst_port
"""

WEAK_TLS = f"""
SELECT {_FINDING_COLS}, {_RULE_COLS},
       list(DISTINCT f.tls_version) AS versions
FROM f JOIN {_flow_rules("true")} USING (flow_id)
WHERE f.tls_version IN ('SSL 2.0', 'SSL 3.0', 'TLS 1.0', 'TLS 1.1')
GROUP BY f.src_ip, f.dst_ip, f.dst_port, f.proto
ORDER BY f.src_ip, f.dst_ip, f.dst_port
"""

# A documented flow expected between two roles that both have hosts, and not seen. The
# cleartext and TLS variants of one purpose (``pair``) satisfy each other; one finding per
# purpose, on the variant that requires encryption when there is one.
MISSING_FLOW = """
WITH present AS (SELECT DISTINCT role FROM host_roles),
seen AS (
    SELECT DISTINCT r.rule_id
    FROM rules r
    JOIN host_roles hs ON hs.role = r.from_role
    JOIN host_roles hd ON hd.role = r.to_role
    JOIN f ON f.src_ip = hs.ip AND f.dst_ip = hd.ip AND f.proto = r.proto
          AND f.dst_port BETWEEN r.port_lo AND r.port_hi
),
exp AS (
    SELECT rule_id, any_value(from_role) AS from_role, any_value(to_role) AS to_role,
           any_value(proto) AS proto, min(port_lo) AS port_lo, any_value(pair) AS pair,
           bool_or(encrypted_required) AS enc
    FROM rules
    WHERE expected AND from_role IN (SELECT role FROM present)
      AND to_role IN (SELECT role FROM present)
    GROUP BY rule_id
)
SELECT e.rule_id, e.from_role, e.to_role, e.proto, e.port_lo,
       (SELECT list(DISTINCT ip ORDER BY ip) FROM host_roles WHERE role = e.from_role) AS src_hosts,
       (SELECT list(DISTINCT ip ORDER BY ip) FROM host_roles WHERE role = e.to_role) AS dst_hosts
FROM exp e
WHERE e.rule_id NOT IN (SELECT rule_id FROM seen)
  AND (e.pair IS NULL OR e.pair NOT IN (SELECT rule_id FROM seen))
  AND (e.pair IS NULL OR e.enc OR e.pair NOT IN (SELECT rule_id FROM exp)
       OR NOT (SELECT bool_or(enc) FROM exp x WHERE x.rule_id = e.pair))
ORDER BY e.from_role, e.to_role, e.rule_id
"""

UNKNOWN_HOST = """
WITH edges AS (
    SELECT src_ip AS ip, dst_ip AS peer, dst_roles AS peer_roles, proto, dst_port AS port,
           first_seen, last_seen, packets_fwd + packets_rev AS packets,
           bytes_fwd + bytes_rev AS bytes, flow_id, community_id
    FROM f WHERE len(src_roles) = 0 AND len(dst_roles) > 0
    UNION ALL
    SELECT dst_ip, src_ip, src_roles, proto, dst_port, first_seen, last_seen,
           packets_fwd + packets_rev, bytes_fwd + bytes_rev, flow_id, community_id
    FROM f WHERE len(dst_roles) = 0 AND len(src_roles) > 0
)
SELECT ip, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
       sum(packets) AS packets, sum(bytes) AS bytes,
       list(flow_id ORDER BY first_seen) AS flow_ids, list(DISTINCT community_id) AS community_ids,
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
# unexpected_port reports it.
ROLE_PAIRS = """
WITH covered AS (
    SELECT DISTINCT r.from_role AS src_role, r.to_role AS dst_role, f.proto, f.dst_port, f.flow_id
    FROM f JOIN m ON m.flow_id = f.flow_id AND m.how = 'roles'
    JOIN rules r ON r.rule_id = m.rule_id
),
uncovered AS (
    SELECT hs.role AS src_role, hd.role AS dst_role, f.proto, f.dst_port, f.flow_id
    FROM f JOIN host_roles hs ON hs.ip = f.src_ip JOIN host_roles hd ON hd.ip = f.dst_ip
    WHERE f.flow_id NOT IN (SELECT flow_id FROM m WHERE how = 'roles')
),
obs AS (
    SELECT src_role, dst_role, proto, dst_port, count(DISTINCT flow_id) AS flows
    FROM (SELECT * FROM covered UNION ALL SELECT * FROM uncovered)
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
WHERE coalesce(o.src_role, d.src_role) IN (SELECT role FROM host_roles)
  AND coalesce(o.dst_role, d.dst_role) IN (SELECT role FROM host_roles)
ORDER BY 1, 2, 3, 4
"""
