"""Capture files in, packet batches out: the only layer that knows pcap and pcapng.

``read_packets(path)`` gives an iterable of Arrow RecordBatches (``PACKET_SCHEMA``) with
the capture's metadata in ``.info``; see :mod:`auditor.capture.reader` for why it is built
around a C chunk scanner.
"""

from auditor.capture.reader import (
    LINKTYPE_NAMES,
    CaptureInfo,
    InterfaceInfo,
    PacketReader,
    detect_format,
    linktype_name,
    read_packets,
)
from auditor.capture.schema import PACKET_SCHEMA, STATUS_NAMES, TUNNEL_NAMES

__all__ = [
    "LINKTYPE_NAMES",
    "PACKET_SCHEMA",
    "STATUS_NAMES",
    "TUNNEL_NAMES",
    "CaptureInfo",
    "InterfaceInfo",
    "PacketReader",
    "detect_format",
    "linktype_name",
    "read_packets",
]
