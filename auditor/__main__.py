"""``python -m auditor``: the same as the ``pcap-audit`` console script."""

from auditor.cli.entry import main

main()
