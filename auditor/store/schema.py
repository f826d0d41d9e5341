"""The store's tables, by schema version, and the migrations between versions.

A store is a DuckDB file whose ``pcap_audit_meta`` table names the application and the
schema version; anything else is a foreign file and is refused, never written to. A store
written by an older pcap-audit is migrated in place, in one transaction, the first time a
newer one opens it: each step in `MIGRATIONS` takes version N to N + 1. `CREATE` is the
current schema, for a new store; `HISTORIC` keeps the DDL of every older version, so the
tests can build an old store and migrate it as a user's store would be.

Version 1 recorded runs, their captures and their findings. Version 2 adds the flows of
each run (aggregated), waivers (the waivers file of a run, the waived mark of a finding),
whether a run read every capture whole (``complete``), and the hash of the run's
document.
"""

from __future__ import annotations

APPLICATION = "pcap-audit store"
VERSION = 2

_V1 = [
    "CREATE TABLE pcap_audit_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started VARCHAR NOT NULL,     -- ISO 8601 UTC, when the audit started
        finished VARCHAR NOT NULL,    -- when it was recorded
        tool_version VARCHAR,
        ruleset_name VARCHAR,
        ruleset_sha256 VARCHAR,
        inventory_path VARCHAR,
        inventory_sha256 VARCHAR,
        fail_on VARCHAR,
        packets BIGINT,
        flows BIGINT,
        findings INTEGER,
        by_kind VARCHAR,              -- JSON object
        by_severity VARCHAR,          -- JSON object
        duration_s DOUBLE,
        exit_code INTEGER,
        inputs_sha256 VARCHAR         -- captures + ruleset + inventory: one run per inputs
    )""",
    """CREATE TABLE captures (
        sha256 VARCHAR PRIMARY KEY,   -- content hash: a capture is stored once
        first_run INTEGER,
        path VARCHAR,
        format VARCHAR,
        packets BIGINT,
        bytes BIGINT,
        first_seen VARCHAR,
        last_seen VARCHAR
    )""",
    """CREATE TABLE run_captures (
        run_id INTEGER,
        position INTEGER,
        path VARCHAR,
        sha256 VARCHAR,               -- null when the file could not be hashed
        packets BIGINT,
        new BOOLEAN,                  -- first seen by the store in this run
        error VARCHAR
    )""",
    """CREATE TABLE findings (
        run_id INTEGER,
        position INTEGER,
        id VARCHAR,
        kind VARCHAR,
        severity VARCHAR,
        src_ip VARCHAR,
        dst_ip VARCHAR,
        dst_port INTEGER,
        proto VARCHAR,
        src_role VARCHAR,
        dst_role VARCHAR,
        rule_id VARCHAR,
        message VARCHAR,
        finding VARCHAR               -- the finding's JSON, whole
    )""",
]

_FLOWS = """CREATE TABLE flows (
        run_id INTEGER,
        src VARCHAR,                  -- the source's role(s), else its address
        dst VARCHAR,                  -- the destination's role(s), else its address
        dst_port INTEGER,
        proto VARCHAR,
        app VARCHAR,
        flows BIGINT,
        packets BIGINT,
        bytes BIGINT
    )"""

_V1_TO_V2 = [
    "ALTER TABLE runs ADD COLUMN waivers_path VARCHAR",
    "ALTER TABLE runs ADD COLUMN waivers_sha256 VARCHAR",
    "ALTER TABLE runs ADD COLUMN waived INTEGER DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN complete BOOLEAN DEFAULT true",
    "ALTER TABLE runs ADD COLUMN flows_recorded BOOLEAN DEFAULT false",
    "ALTER TABLE runs ADD COLUMN document_sha256 VARCHAR",
    "ALTER TABLE findings ADD COLUMN waived BOOLEAN DEFAULT false",
    _FLOWS,
]

#: the DDL each older version was created with (the tests build old stores from it)
HISTORIC: dict[int, list[str]] = {1: _V1}

#: from version N (the key) to N + 1
MIGRATIONS: dict[int, list[str]] = {1: _V1_TO_V2}

#: a new store: the first version's tables, then every migration (one definition of each
#: table, so a migrated store and a new one cannot drift apart)
CREATE: list[str] = [*_V1, *(s for v in sorted(MIGRATIONS) for s in MIGRATIONS[v])]
