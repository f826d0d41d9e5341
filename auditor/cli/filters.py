"""The packet filters every command that reads captures takes, as click options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from auditor.capture.select import PacketFilter, parse_time

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--since", metavar="TIME",
                 help="Packets at or after TIME: ISO 8601 (UTC without a zone) or +30s, +5m, "
                      "+1h30m from the first packet."),
    click.option("--until", metavar="TIME", help="Packets at or before TIME (as --since)."),
    click.option("--host", "hosts", multiple=True, metavar="ADDR|CIDR",
                 help="Packets from or to this address or network (repeatable: any)."),
    click.option("--port", "ports", multiple=True, type=click.IntRange(0, 65535), metavar="N",
                 help="TCP/UDP/SCTP packets from or to this port (repeatable: any)."),
    click.option("--filter", "bpf", metavar="EXPR",
                 help="A capture filter as tcpdump takes it (libpcap syntax), e.g. "
                      "'tcp port 443 and not host 10.0.0.1'."),
]  # fmt: skip


def filter_options(func: F) -> F:
    """Add --since, --until, --host, --port and --filter to a command."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def packet_filter(
    since: str | None,
    until: str | None,
    hosts: tuple[str, ...],
    ports: tuple[int, ...],
    bpf: str | None,
) -> PacketFilter | None:
    """The options as a PacketFilter (None when none is given); FilterError when one does
    not parse (a usage error naming the option)."""
    spec = PacketFilter(
        since=parse_time(since, "--since") if since else None,
        until=parse_time(until, "--until") if until else None,
        hosts=tuple(hosts),
        ports=tuple(ports),
        bpf=bpf,
    )
    return spec if spec.active else None
