"""``pcap-audit flows``: print or write the flow table."""

from __future__ import annotations

import sys
from typing import Any

import click

from auditor.cli.common import captures_argument, fail, handle_errors
from auditor.cli.filters import filter_options, packet_filter
from auditor.errors import ExitCode
from auditor.flows_out import FORMATS, write_flows
from auditor.traffic import read_traffic


@click.command("flows")
@captures_argument
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@filter_options
@handle_errors
def command(captures: tuple[str, ...], fmt: str, output: str | None, **filters: Any) -> None:
    """Print or write the flow table of CAPTURE files (pcap, pcapng, gzip'd; or directories).

    Exit code 3 when a capture could not be read; the others are still written.

    Example:

        pcap-audit flows trace.pcapng --format json -o flows.json
    """
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        fail("--format parquet writes binary: give -o FILE", ExitCode.USAGE)
    select = packet_filter(**filters)
    traffic = read_traffic(captures, select=select)
    for err in traffic.errors:
        click.echo(f"pcap-audit: {err.one_line()}", err=True)
    if output:
        with open(output, "wb") as fh:
            write_flows(traffic, fmt, fh)
    else:
        write_flows(traffic, fmt, sys.stdout.buffer)
        sys.stdout.flush()
    if traffic.errors:
        sys.exit(int(ExitCode.CAPTURE))
