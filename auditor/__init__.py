"""pcap-audit: check what ran on the wire against the vendor's documented flows.

The library API (no click needed):

    >>> from auditor import audit, load_ruleset, read_flows
    >>> result = audit(["capture.pcap"], load_ruleset("applayering"))
    >>> result.result.summary.findings  # typed (auditor.findings.model); .document: the JSON dict

Names are imported on first use (``import auditor`` stays cheap); type checkers see the real
signatures through the ``TYPE_CHECKING`` imports below.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what mypy and IDEs see; at run time __getattr__ imports on first use
    from auditor.capture import read_packets
    from auditor.findings.engine import AuditResult, audit
    from auditor.findings.model import AuditDocument, CaptureRecord, Finding, Summary
    from auditor.findings.waivers import load_waivers
    from auditor.query import query_store
    from auditor.rules import load_inventory, load_ruleset
    from auditor.store.diff import diff_documents, diff_runs
    from auditor.store.history import history
    from auditor.store.record import record_run
    from auditor.traffic import read_traffic as read_flows

__version__ = "0.1.0"

__all__ = [
    "AuditDocument",
    "AuditResult",
    "CaptureRecord",
    "Finding",
    "Summary",
    "__version__",
    "audit",
    "diff_documents",
    "diff_runs",
    "history",
    "load_inventory",
    "load_ruleset",
    "load_waivers",
    "query_store",
    "read_flows",
    "read_packets",
    "record_run",
]

#: the store's API and the result types: name -> its module (imported on first use)
_STORE = {
    "record_run": "auditor.store.record",
    "history": "auditor.store.history",
    "diff_runs": "auditor.store.diff",
    "diff_documents": "auditor.store.diff",
    "load_waivers": "auditor.findings.waivers",
    "query_store": "auditor.query",
    "AuditResult": "auditor.findings.engine",
    "AuditDocument": "auditor.findings.model",
    "CaptureRecord": "auditor.findings.model",
    "Finding": "auditor.findings.model",
    "Summary": "auditor.findings.model",
}


def __getattr__(name: str) -> object:
    """The API, imported on first use so that ``import auditor`` stays cheap."""
    if name == "audit":
        from auditor.findings.engine import audit

        return audit
    if name in ("load_ruleset", "load_inventory"):
        from auditor import rules

        return getattr(rules, name)
    if name == "read_flows":
        from auditor.traffic import read_traffic

        return read_traffic
    if name == "read_packets":
        from auditor.capture import read_packets

        return read_packets
    if name in _STORE:
        import importlib

        return getattr(importlib.import_module(_STORE[name]), name)
    raise AttributeError(name)
