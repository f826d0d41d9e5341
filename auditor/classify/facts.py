"""FlowFacts: what the payload heads of one flow told us, one value per flow-table column.

A frozen, slotted dataclass rather than a dict: the field list is the column list
(:data:`FLOW_FACTS_FIELDS`, :data:`FLOW_FACTS_SCHEMA`), a typo is an error, and the two most
common results (no payload, unknown payload) are shared singletons. Sequences are tuples so
a value is hashable and cannot be changed behind the flow table's back. ``None`` means "not
visible in the heads", never "false".
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa

#: Field values found by a protocol reader, by FlowFacts field name.
Facts = dict[str, Any]

#: Values of :attr:`FlowFacts.app`.
APPS: tuple[str, ...] = (
    "none",  # no payload at all
    "unknown",
    "tls",
    "http",
    "ssh",
    "ldap",
    "smb",
    "dns",
    "ntp",
    "dhcp",
    "iscsi",
    "nats",
    "mysql",
    "ftp",
    "ftp-data",
    "telnet",
    "smtp",
    "pop3",
    "imap",
    "irc",
    "redis",
    "kerberos",
    "dcerpc",
    "rdp",
    "modbus",
    "quic",
    "dtls",
    "nfs",
    "portmap",
    "postgresql",
    "vnc",
    "snmp",
    "syslog",
    "netbios-ns",
    "netbios-dgm",
)


@dataclass(frozen=True, slots=True)
class FlowFacts:
    """Application facts of one bidirectional flow, learned from its first payload heads."""

    app: str = "unknown"
    #: True: payload encrypted (TLS, SSH, LDAP after StartTLS, SMB3 transform, ...);
    #: False: cleartext application data seen; None: cannot tell.
    encrypted: bool | None = None

    # TLS (also when TLS follows a StartTLS-like upgrade inside another protocol)
    tls_record_version: str | None = None  # version field of the flow's first TLS record
    tls_client_versions: tuple[str, ...] = ()  # offered: supported_versions, else legacy version
    tls_version: str | None = None  # negotiated, from the ServerHello
    tls_cipher_suite: int | None = None  # negotiated, from the ServerHello
    sni: str | None = None
    alpn: tuple[str, ...] = ()  # offered by the client
    alpn_selected: str | None = None  # chosen by the server (TLS <= 1.2 only: 1.3 encrypts it)
    tls_cert_requested: bool | None = None  # the server sent a CertificateRequest
    tls_client_cert: bool | None = None  # the client sent a non-empty Certificate

    # HTTP: the flow's first request and first response
    http_method: str | None = None
    http_target: str | None = None
    http_host: str | None = None
    http_user_agent: str | None = None
    http_status: int | None = None

    # SSH
    ssh_banner: str | None = None  # the server's identification string, else the client's
    ssh_client_banner: str | None = None

    #: a text protocol's upgrade to TLS was asked for: FTP ``AUTH TLS``, SMTP and IMAP
    #: ``STARTTLS``, POP3 ``STLS`` (LDAP has its own field)
    starttls: bool = False

    # LDAP
    ldap_starttls: bool = False  # extendedRequest 1.3.6.1.4.1.1466.20037 seen
    ldap_bind: str | None = None  # "simple" or "sasl:<mechanism>" of the first BindRequest

    # DNS (names lower-cased, without the trailing dot)
    dns_queries: tuple[str, ...] = ()
    dns_answers: tuple[tuple[str, str], ...] = ()  # (name, address); CNAME owners included

    # SMB
    smb_dialect: str | None = None  # "2.0.2" ... "3.1.1", or the SMB1 dialect string
    smb_signing_required: bool | None = None  # server's negotiate SecurityMode

    # NTP
    ntp_version: int | None = None
    ntp_mode: int | None = None

    # QUIC: the version of the first long-header packet ("1", "2", "draft-29", "Q050", ...)
    quic_version: str | None = None

    # RDP: the security protocol the server selected (rdp, tls, credssp, rdstls, credssp_ex)
    rdp_security: str | None = None

    #: Software the server announced: MySQL version, NATS version, HTTP ``Server`` header.
    server_version: str | None = None


FLOW_FACTS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(FlowFacts))

_STR_LIST = pa.list_(pa.string())

#: Arrow types of the columns, in field order.
FLOW_FACTS_SCHEMA = pa.schema(
    [
        ("app", pa.string()),
        ("encrypted", pa.bool_()),
        ("tls_record_version", pa.string()),
        ("tls_client_versions", _STR_LIST),
        ("tls_version", pa.string()),
        ("tls_cipher_suite", pa.uint16()),
        ("sni", pa.string()),
        ("alpn", _STR_LIST),
        ("alpn_selected", pa.string()),
        ("tls_cert_requested", pa.bool_()),
        ("tls_client_cert", pa.bool_()),
        ("http_method", pa.string()),
        ("http_target", pa.string()),
        ("http_host", pa.string()),
        ("http_user_agent", pa.string()),
        ("http_status", pa.uint16()),
        ("ssh_banner", pa.string()),
        ("ssh_client_banner", pa.string()),
        ("starttls", pa.bool_()),
        ("ldap_starttls", pa.bool_()),
        ("ldap_bind", pa.string()),
        ("dns_queries", _STR_LIST),
        ("dns_answers", pa.list_(pa.struct([("name", pa.string()), ("address", pa.string())]))),
        ("smb_dialect", pa.string()),
        ("smb_signing_required", pa.bool_()),
        ("ntp_version", pa.uint8()),
        ("ntp_mode", pa.uint8()),
        ("quic_version", pa.string()),
        ("rdp_security", pa.string()),
        ("server_version", pa.string()),
    ]
)


def facts_table(facts: Sequence[FlowFacts]) -> pa.Table:
    """FlowFacts as an Arrow table with :data:`FLOW_FACTS_SCHEMA`, one row per flow.

    Most flows share a few FlowFacts objects (no payload, unknown payload): one attrgetter
    call per distinct object reads all its fields at C speed, and each column is the distinct
    values repeated by numpy indexing (not Table.take, whose pyarrow.compute import alone
    costs ~45 ms).
    """
    index: dict[int, int] = {}
    distinct: list[FlowFacts] = []
    picks = []
    for f in facts:
        i = index.get(id(f))
        if i is None:
            i = index[id(f)] = len(distinct)
            distinct.append(f)
        picks.append(i)
    return facts_table_of(distinct, np.array(picks, dtype=np.intp))


def facts_table_of(distinct: Sequence[FlowFacts], which: np.ndarray) -> pa.Table:
    """The table whose row i is ``distinct[which[i]]``: for callers that keep an index per
    flow rather than a FlowFacts reference per flow (millions of flows)."""
    rows = list(map(operator.attrgetter(*FLOW_FACTS_FIELDS), distinct))
    transposed = list(zip(*rows, strict=True)) if rows else [()] * len(FLOW_FACTS_FIELDS)
    columns = []
    zero: pa.Buffer | None = None
    for name, ftype, column in zip(
        FLOW_FACTS_FIELDS, FLOW_FACTS_SCHEMA.types, transposed, strict=True
    ):
        if all(v is None for v in column):
            if zero is None:
                zero = zeros(len(which))
            columns.append(null_column(len(which), ftype, zero))
            continue
        values = np.empty(len(column), dtype=object)  # filled one by one: tuples stay whole
        for i, v in enumerate(column):
            values[i] = [{"name": n, "address": a} for n, a in v] if name == "dns_answers" else v
        columns.append(pa.array(values[which], type=ftype))
    return pa.Table.from_arrays(columns, schema=FLOW_FACTS_SCHEMA)


def zeros(n: int) -> pa.Buffer:
    """A zeroed buffer as long as any buffer of an n-row column of nulls (``null_column``).
    From numpy's calloc'd memory: its pages are only touched (and held) when read."""
    return pa.py_buffer(np.zeros(8 * n + 64, np.uint8))


def null_column(n: int, ftype: pa.DataType, zero: pa.Buffer) -> pa.Array:
    """n nulls of ``ftype`` (a flat type or a list) on the shared buffer ``zero``: most fact
    columns are null on most flows, and ``pa.nulls`` gives each its own zeroed offsets and
    validity (4-5 bytes a flow each: 40 such columns of millions of flows)."""
    if pa.types.is_list(ftype):
        return pa.Array.from_buffers(
            ftype, n, [zero, zero], null_count=n, children=[pa.nulls(0, ftype.value_type)]
        )
    if pa.types.is_string(ftype) or pa.types.is_binary(ftype):
        return pa.Array.from_buffers(ftype, n, [zero, zero, zero], null_count=n)
    return pa.Array.from_buffers(ftype, n, [zero, zero], null_count=n)


NO_PAYLOAD = FlowFacts(app="none")
UNKNOWN = FlowFacts(app="unknown")
