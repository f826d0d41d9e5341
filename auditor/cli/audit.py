"""``pcap-audit CAPTURE... --ruleset NAME``: the audit (also ``pcap-audit audit ...``)."""

from __future__ import annotations

import sys

import click

from auditor.cli.common import (
    captures_argument,
    dedup_options,
    emit,
    fail,
    handle_errors,
    inventory_option,
    quiet_option,
    ruleset_option,
)
from auditor.cli.engine import engine_options, parquet_dir_option, reader_for
from auditor.cli.progress import progress_for
from auditor.errors import ExitCode, combine
from auditor.findings.engine import SEVERITIES, audit
from auditor.report import FORMATS, render
from auditor.report.each import EACH_FORMATS, render_each
from auditor.rules import load_inventory, load_ruleset


@click.command("audit")
@captures_argument
@ruleset_option
@inventory_option("Roles -> hosts (YAML). Without it, roles are inferred from the traffic.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option(
    "--each",
    is_flag=True,
    help="Audit each CAPTURE (file or directory) as its own traffic set: one result per set.",
)
@click.option(
    "--fail-on",
    type=click.Choice([*SEVERITIES, "never"]),
    default="medium",
    show_default=True,
    help="Exit 1 when a finding is at or above this severity.",
)
@dedup_options
@engine_options
@parquet_dir_option
@quiet_option
@handle_errors
def command(
    captures: tuple[str, ...],
    ruleset_name: str,
    inventory: str | None,
    fmt: str,
    output: str | None,
    fail_on: str,
    each: bool,
    dedup: bool,
    dedup_window: float,
    engine: str,
    master: str,
    split_size: int,
    parquet_dir: str | None,
    quiet: bool,
) -> None:
    """Audit CAPTURE files or directories against a ruleset; all captures form one traffic set
    (with --each, each CAPTURE is a set of its own). `-` reads standard input.

    Exit codes (bits): 0 OK, 1 findings at or above --fail-on, 4 a capture not read whole
    (5: both), 2 usage/ruleset/inventory error, 8 out of memory or disk, 16 internal error.

    Example:

        pcap-audit night.pcapng --ruleset applayering --inventory hosts.yaml --format sarif -o audit.sarif
    """
    if each and fmt not in EACH_FORMATS:
        fail(
            f"--each writes {', '.join(EACH_FORMATS)}; --format {fmt} is one document per set",
            ExitCode.USAGE,
        )
    read = reader_for(engine, master, split_size, dedup)
    ruleset = load_ruleset(ruleset_name)
    inv = load_inventory(inventory, ruleset) if inventory else None
    progress = progress_for(sys.stderr, quiet)
    color = fmt == "table" and output is None and sys.stdout.isatty()
    sets = [[c] for c in captures] if each else [list(captures)]
    results = []
    for paths in sets:
        result = audit(
            paths,
            ruleset,
            inv,
            fail_on=fail_on,
            progress=progress,
            dedup=dedup_window if dedup else None,
            read=read,
        )
        if progress:
            progress.clear()
        for note in result.notes:
            click.echo(f"pcap-audit: {note}", err=True)
        if parquet_dir:
            from auditor.lake import write_lake

            write_lake(parquet_dir, result.traffic, result.document["findings"], ruleset.name)
        results.append(result)
    code = combine(r.exit_code for r in results)
    if each:
        text = render_each(
            [(c, r.document) for c, r in zip(captures, results, strict=True)],
            fmt,
            code,
            color=color,
        )
    else:
        text = render(results[0].document, fmt, color=color)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        emit(text)
    sys.exit(int(code))
