"""``pcap-audit CAPTURE... --ruleset NAME``: the audit (also ``pcap-audit audit ...``)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from auditor.cli.common import (
    captures_argument,
    check_store,
    dedup_options,
    emit,
    fail,
    handle_errors,
    inventory_option,
    quiet_option,
    record_in_store,
    ruleset_option,
    waiver_warnings,
)
from auditor.cli.progress import progress_for
from auditor.errors import ExitCode, combine
from auditor.findings.engine import SEVERITIES, audit
from auditor.findings.waivers import load_waivers
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
@quiet_option
@click.option(
    "--store",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Record the run in this store (a DuckDB file, created if absent).",
)
@click.option(
    "--waivers",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Waived findings (YAML): shown with their reason, not counted for the exit code.",
)
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
    quiet: bool,
    store: str | None,
    waivers: str | None,
) -> None:
    """Audit CAPTURE files or directories against a ruleset; all captures form one traffic set
    (with --each, each CAPTURE is a set of its own). `-` reads standard input.

    Exit codes (bits): 0 OK, 1 findings at or above --fail-on, 4 a capture not read whole
    (5: both), 2 usage/ruleset/inventory error, 8 out of memory or disk, 16 internal error.

    A directory holding a Zeek conn.log (with ssl.log, http.log) is read as Zeek logs.
    --store PATH records the run (captures with their hashes, findings, flows; with
    --each, one run per set) for 'pcap-audit history' and 'pcap-audit diff'; --waivers
    FILE marks accepted findings.

    Example:

        pcap-audit night.pcapng --ruleset applayering --inventory hosts.yaml --format sarif -o audit.sarif
    """
    if each and fmt not in EACH_FORMATS:
        fail(
            f"--each writes {', '.join(EACH_FORMATS)}; --format {fmt} is one document per set",
            ExitCode.USAGE,
        )
    started = datetime.now(UTC)
    ruleset = load_ruleset(ruleset_name)
    inv = load_inventory(inventory, ruleset) if inventory else None
    waiver_set = load_waivers(waivers) if waivers else None
    if store:
        check_store(store)
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
            waivers=waiver_set,
        )
        if progress:
            progress.clear()
        for note in result.notes:
            click.echo(f"pcap-audit: {note}", err=True)
        for line in waiver_warnings(result.document):
            click.echo(f"pcap-audit: {line}", err=True)
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
    if store:
        for result in results:
            record_in_store(store, result, started, inventory, waivers)
    sys.exit(int(code))
