"""Rulesets (a vendor's documented flows, as data) and inventories (which host holds which role).

Rules live in ``rulesets/*.yaml`` with the vendor document, section and words they come
from; this package loads and validates them (every error with file, line and key), turns
them into an Arrow table for the audit's joins, and reads/writes inventories. Nothing here
imports click.
"""

from auditor.rules.entries import classify_entry
from auditor.rules.inventory import Inventory, dump_inventory
from auditor.rules.inventory_reader import load_inventory
from auditor.rules.loader import (
    RULESETS_DIR,
    CheckResult,
    builtin_rulesets,
    check_ruleset,
    load_ruleset,
    resolve_ruleset,
)
from auditor.rules.model import (
    APPS,
    FINDING_KINDS,
    PROTOS,
    SECURITY,
    SEVERITIES,
    TRANSFERS,
    Deny,
    Hints,
    Role,
    Rule,
    Ruleset,
    Source,
    SourceDocument,
)
from auditor.rules.names import name_matches, normalise_name
from auditor.rules.table import DENIES_SCHEMA, RULES_SCHEMA, denies_table, rules_table
from auditor.rules.yamlmarks import Problem

__all__ = [
    "APPS",
    "DENIES_SCHEMA",
    "FINDING_KINDS",
    "PROTOS",
    "RULESETS_DIR",
    "RULES_SCHEMA",
    "SECURITY",
    "SEVERITIES",
    "TRANSFERS",
    "CheckResult",
    "Deny",
    "Hints",
    "Inventory",
    "Problem",
    "Role",
    "Rule",
    "Ruleset",
    "Source",
    "SourceDocument",
    "builtin_rulesets",
    "check_ruleset",
    "classify_entry",
    "denies_table",
    "dump_inventory",
    "load_inventory",
    "load_ruleset",
    "name_matches",
    "normalise_name",
    "resolve_ruleset",
    "rules_table",
]
