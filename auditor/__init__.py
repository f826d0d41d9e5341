"""pcap-audit: check what ran on the wire against the vendor's documented flows."""

__version__ = "0.1.0"
