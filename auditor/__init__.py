"""pcap-audit: check what ran on the wire against the vendor's documented flows.

The library API (no click needed):

    >>> from auditor import audit, load_ruleset, read_flows
    >>> result = audit(["capture.pcap"], load_ruleset("applayering"))
    >>> result.document["summary"]
"""

__version__ = "0.1.0"

__all__ = [
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

#: the store's API: name -> its module (imported on first use, like the rest)
_STORE = {
    "record_run": "auditor.store.record",
    "history": "auditor.store.history",
    "diff_runs": "auditor.store.diff",
    "diff_documents": "auditor.store.diff",
    "load_waivers": "auditor.findings.waivers",
    "query_store": "auditor.query",
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
