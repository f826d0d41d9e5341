"""Evidence: from the fast engine's flows back to packets, and a second opinion from tshark.

``tshark``: finding the binary and running it (one clear error where it is missing);
``conversations``: tshark's TCP/UDP conversations in the flow table's definitions, which
``verify`` compares with ours; ``packets``: a flow's frames in its capture files, their
one-line summaries and export to a new pcap; ``deep``: Wireshark's dissection of the
flagged flows' packets, through pyshark.
"""
