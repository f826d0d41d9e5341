"""``pcap-audit flows``: print or write the flow table."""

from __future__ import annotations

import sys

import click

from auditor.cli.common import captures_argument, fail, handle_errors, warn
from auditor.cli.output import output_file
from auditor.errors import ExitCode
from auditor.flows_out import FORMATS, write_flows
from auditor.traffic import read_traffic


@click.command("flows")
@captures_argument
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@handle_errors
def command(captures: tuple[str, ...], fmt: str, output: str | None) -> None:
    """Print or write the flow table of CAPTURE files (pcap, pcapng, gzip'd; or directories).

    Exit code 3 when a capture could not be read; the others are still written.

    Example:

        pcap-audit flows trace.pcapng --format json -o flows.json
    """
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        fail("--format parquet writes binary: give -o FILE", ExitCode.USAGE)
    with output_file(output, captures) as out:
        traffic = read_traffic(captures)
        for err in traffic.errors:
            warn(err.one_line())
        write_flows(traffic, fmt, out.stream if out is not None else sys.stdout.buffer)
        sys.stdout.flush()
    if traffic.errors:
        sys.exit(int(ExitCode.CAPTURE))
