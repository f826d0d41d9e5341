"""``pcap-audit flows``: print or write the flow table."""

from __future__ import annotations

import sys
from typing import Any

import click

from auditor.cli.common import (
    captures_argument,
    dedup_options,
    fail,
    flow_limit_option,
    handle_errors,
    jobs_option,
    quiet_option,
    warn,
)
from auditor.cli.engine import engine_options, parquet_dir_option, reader_for
from auditor.cli.filters import filter_options, packet_filter
from auditor.cli.output import output_file
from auditor.cli.progress import progress_for
from auditor.cli.width import table_width
from auditor.errors import ExitCode
from auditor.flows_out import FORMATS, write_flows
from auditor.traffic import default_jobs, read_traffic


@click.command("flows")
@captures_argument
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@dedup_options
@jobs_option
@flow_limit_option
@engine_options
@parquet_dir_option
@quiet_option
@filter_options
@handle_errors
def command(
    captures: tuple[str, ...],
    fmt: str,
    output: str | None,
    dedup: bool,
    dedup_window: float,
    jobs: int | None,
    flow_limit: int,
    engine: str,
    master: str,
    split_size: int,
    parquet_dir: str | None,
    quiet: bool,
    **filters: Any,
) -> None:
    """Print or write the flow table of CAPTURE files (pcap, pcapng, gzip'd; or directories).

    The table shows a flow's main fields, as many as fit the terminal (COLUMNS, else 100
    columns when not a terminal); json, csv and parquet carry every field.

    Exit code 4 (CAPTURE) when a capture could not be read whole; the others are still written.

    Example:

        pcap-audit flows trace.pcapng --format json -o flows.json
    """
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        fail("--format parquet writes binary: give -o FILE", ExitCode.USAGE)
    select = packet_filter(**filters)
    read = reader_for(engine, master, split_size, dedup, jobs, select)
    with output_file(output, captures) as out:
        progress = progress_for(sys.stderr, quiet)
        if read is not None:
            traffic = read(list(captures))
        else:
            traffic = read_traffic(
                captures,
                progress=progress,
                dedup=dedup_window if dedup else None,
                jobs=jobs or default_jobs(),
                select=select,
                flow_limit=flow_limit,
            )
        if progress:
            progress.clear()
        for note in traffic.notes:
            warn(note)
        if parquet_dir:
            from auditor.lake import write_lake

            write_lake(parquet_dir, traffic)
        write_flows(
            traffic,
            fmt,
            out.stream if out is not None else sys.stdout.buffer,
            width=table_width(to_stdout=out is None),
        )
        sys.stdout.flush()
    if not traffic.complete:
        sys.exit(int(ExitCode.CAPTURE))
