"""What a capture is and what reading it found: :class:`CaptureInfo`, one
:class:`InterfaceInfo` per interface, and the names of link types. Plain data, filled in by
the reader (:mod:`auditor.capture.reader`) as it goes; complete once a pass has ended."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_WARNINGS = 20  #: non-fatal problems kept in CaptureInfo.warnings
MAX_LISTED_INTERFACES = 1024  #: interfaces listed in CaptureInfo (all are decoded)

#: LINKTYPE_* numbers (tcpdump.org/linktypes.html) -> short names used in CaptureInfo.
LINKTYPE_NAMES: dict[int, str] = {
    0: "null",
    1: "ethernet",
    3: "ax25",
    6: "ieee802_5",
    7: "arcnet_bsd",
    8: "slip",
    9: "ppp",
    10: "fddi",
    12: "raw",  # DLT_RAW as written by OpenBSD and some tools
    14: "raw",
    50: "ppp_hdlc",
    51: "ppp_ether",
    100: "atm_rfc1483",
    101: "raw",
    104: "c_hdlc",
    105: "ieee802_11",
    107: "frelay",
    108: "loop",
    113: "linux_sll",
    114: "ltalk",
    117: "pflog",
    119: "ieee802_11_prism",
    122: "ip_over_fc",
    123: "sunatm",
    127: "ieee802_11_radiotap",
    129: "arcnet_linux",
    138: "apple_ip_over_ieee1394",
    139: "mtp2_with_phdr",
    140: "mtp2",
    141: "mtp3",
    142: "sccp",
    143: "docsis",
    144: "linux_irda",
    163: "ieee802_11_avs",
    165: "bacnet_ms_tp",
    166: "ppp_pppd",
    169: "gprs_llc",
    177: "linux_lapd",
    187: "bluetooth_hci_h4",
    189: "usb_linux",
    192: "ppi",
    195: "ieee802_15_4_withfcs",
    196: "sita",
    197: "erf",
    201: "bluetooth_hci_h4_with_phdr",
    202: "ax25_kiss",
    203: "lapd",
    204: "ppp_with_dir",
    205: "c_hdlc_with_dir",
    206: "frelay_with_dir",
    209: "ipmb_linux",
    215: "ieee802_15_4_nonask_phy",
    220: "usb_linux_mmapped",
    224: "fc_2",
    225: "fc_2_with_frame_delims",
    226: "ipnet",
    227: "can_socketcan",
    228: "ipv4",
    229: "ipv6",
    230: "ieee802_15_4_nofcs",
    231: "dbus",
    235: "dvb_ci",
    236: "mux27010",
    237: "stanag_5066_d_pdu",
    239: "nflog",
    240: "netanalyzer",
    241: "netanalyzer_transparent",
    242: "ipoib",
    243: "mpeg_2_ts",
    244: "ng40",
    245: "nfc_llcp",
    247: "infiniband",
    248: "sctp",
    249: "usbpcap",
    250: "rtac_serial",
    251: "bluetooth_le_ll",
    253: "netlink",
    254: "bluetooth_linux_monitor",
    255: "bluetooth_bredr_bb",
    256: "bluetooth_le_ll_with_phdr",
    257: "profibus_dl",
    258: "pktap",
    259: "epon",
    260: "ipmi_hpm_2",
    261: "zwave_r1_r2",
    262: "zwave_r3",
    263: "wattstopper_dlm",
    264: "iso_14443",
    265: "rds",
    266: "usb_darwin",
    268: "sdlc",
    270: "loratap",
    271: "vsock",
    272: "nordic_ble",
    273: "docsis31_xra31",
    274: "ethernet_mpacket",
    275: "displayport_aux",
    276: "linux_sll2",
    278: "openvizsla",
    279: "ebhscr",
    280: "vpp_dispatch",
    281: "dsa_tag_brcm",
    282: "dsa_tag_brcm_prepend",
    283: "ieee802_15_4_tap",
    284: "dsa_tag_dsa",
    285: "dsa_tag_edsa",
    286: "elee",
    287: "z_wave_serial",
    288: "usb_2_0",
    289: "atsc_alp",
    290: "etw",
    292: "zboss_ncp",
    293: "usb_2_0_low_speed",
    294: "usb_2_0_full_speed",
    295: "usb_2_0_high_speed",
    296: "auerswald_log",
    297: "zwave_tap",
    298: "silabs_debug_channel",
    299: "fira_uci",
}


def linktype_name(linktype: int) -> str | int:
    """The short name of a LINKTYPE_* number, or the number itself when unknown."""
    return LINKTYPE_NAMES.get(linktype, linktype)


@dataclass
class InterfaceInfo:
    """One capture interface: the pcap file header, or a pcapng Interface Description Block."""

    section: int  #: pcapng section (0-based); always 0 for pcap
    index: int  #: interface id inside its section
    linktype: int
    snaplen: int
    name: str | None = None  #: if_name
    description: str | None = None  #: if_description
    ticks_per_second: int = 1_000_000  #: timestamp resolution (if_tsresol)
    ts_offset: int = 0  #: seconds added to every timestamp (if_tsoffset)
    packets: int = 0  #: records read for this interface
    received: int | None = None  #: isb_ifrecv of the last Interface Statistics Block
    drops: int | None = None  #: isb_ifdrop (dropped by the interface/capture buffer)
    os_drops: int | None = None  #: isb_osdrop (dropped by the operating system)


@dataclass
class CaptureInfo:
    """What a capture is and what reading it found; complete once iteration has ended.

    ``packets`` counts rows, including ``bad_record`` rows (a record whose header could not
    be right; its lengths are 0 and it counts in neither ``bytes`` nor the time span).
    ``first_seen``/``last_seen`` are the smallest and largest timestamps, not those of the
    first and last records (captures merged from several sources are not in time order).

    ``decode_errors`` counts rows by non-``ok`` status (keys are ``STATUS_NAMES``:
    ``non_ip``, ``unsupported_linktype``, ``truncated_ip``, ``bad_record``, ...); which link
    types were unsupported, and how many records each, is in ``unsupported_linktypes``.
    They count rows only: a malformed pcapng section header, which has no row, shows in
    ``truncated`` and ``warnings``.
    """

    path: str
    format: str = ""  #: "pcap", "pcap-ns" (nanosecond timestamps) or "pcapng"
    compressed: bool = False  #: gzip or zstd, detected by content
    compression: str | None = None  #: "gzip" or "zstd"; None when not compressed
    byte_order: str = ""  #: "little" or "big" (of the first section)
    version: str = ""  #: format version from the file header, e.g. "2.4", "1.0"
    linktypes: list[str | int] = field(default_factory=list)  #: names; numbers if unknown
    snaplen: int = 0  #: largest snapshot length declared
    packets: int = 0  #: records read (rows produced)
    bytes: int = 0  #: sum of wire lengths
    first_seen: int | None = None  #: smallest timestamp, ns since the epoch
    last_seen: int | None = None  #: largest timestamp, ns since the epoch
    truncated: bool = False  #: reading stopped before a clean end of the file
    truncated_at: int | None = None  #: byte offset (in the uncompressed stream) of the stop
    ends_early: bool = False  #: truncated because the content ends inside a record or block
    decode_errors: dict[str, int] = field(default_factory=dict)
    unsupported_linktypes: dict[int, int] = field(default_factory=dict)
    interfaces: list[InterfaceInfo] = field(default_factory=list)
    drops: int | None = None  #: sum of the interfaces' ISB drop counts; None if never reported
    sections: int = 0  #: pcapng Section Header Blocks (1 for pcap)
    skipped_blocks: dict[str, int] = field(default_factory=dict)  #: pcapng blocks not used
    comments: dict[str, str] = field(default_factory=dict)  #: SHB hardware/os/application
    warnings: list[str] = field(default_factory=list)  #: non-fatal problems (first 20)
    #: tunnel packets reassembled from fragments of their outer IP header
    tunnel_reassembled: int = 0
    #: fragments of such packets that could not be reassembled (a fragment missing, not
    #: complete 30 s after the first, or more than 64 in progress): their packets are in no flow
    tunnel_fragments_lost: int = 0

    @property
    def format_label(self) -> str:
        """``format`` with the compression, e.g. ``pcapng+gzip``."""
        return self.format + (f"+{self.compression}" if self.compression else "")

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)
