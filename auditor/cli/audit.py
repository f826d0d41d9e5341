"""``pcap-audit CAPTURE... --ruleset NAME``: the audit (also ``pcap-audit audit ...``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from auditor.capture.select import PacketFilter
from auditor.cli.common import (
    captures_argument,
    check_store,
    dedup_options,
    duckdb_options,
    emit,
    fail,
    flow_limit_option,
    handle_errors,
    inventory_option,
    jobs_option,
    quiet_option,
    record_in_store,
    ruleset_option,
    waiver_warnings,
    warn,
)
from auditor.cli.engine import engine_options, parquet_dir_option, reader_for
from auditor.cli.filters import filter_options, packet_filter
from auditor.cli.output import output_file
from auditor.cli.progress import progress_for
from auditor.cli.width import table_width
from auditor.errors import ExitCode, combine
from auditor.evidence.tshark import require_tshark
from auditor.findings.engine import SEVERITIES, AuditResult, audit
from auditor.findings.waivers import Waivers, load_waivers
from auditor.flows import FLOW_LIMIT
from auditor.report import FORMATS, render
from auditor.report.each import EACH_FORMATS, render_each
from auditor.rules import Inventory, Ruleset, load_inventory, load_ruleset
from auditor.rules.model import TLS_VERSIONS
from auditor.traffic import Traffic, default_jobs


def _tls_version(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``TLS 1.2``, ``tls1.2`` or ``1.2`` -> ``TLS 1.2``."""
    if value is None:
        return None
    key = value.strip().lower().replace(" ", "").replace("v", "")
    for version in TLS_VERSIONS:
        name = version.lower().replace(" ", "")
        if key in (name, name.removeprefix("tls")):
            return version
    raise click.BadParameter(
        f"expected one of {', '.join(TLS_VERSIONS)} (or 1.0-1.3), got {value!r}"
    )


@click.command("audit")
@captures_argument
@ruleset_option
@inventory_option("Roles -> hosts (YAML). Without it, roles are inferred from the traffic.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@duckdb_options
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
@click.option(
    "--min-tls",
    callback=_tls_version,
    metavar="VERSION",
    help="Minimum TLS version (e.g. 1.2, 'TLS 1.3'), replacing the ruleset's policy "
    "(default TLS 1.2); a rule's own minimum still applies.",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Dissect the flows behind findings with tshark (pyshark) and attach what it "
    "reads, frame by frame. Needs tshark.",
)
@click.option(
    "--deep-limit",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    metavar="N",
    help="Flows dissected at most by --deep (most severe findings first).",
)
@filter_options
@dedup_options
@jobs_option
@flow_limit_option
@engine_options
@parquet_dir_option
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
    jobs: int | None,
    flow_limit: int,
    engine: str,
    master: str,
    split_size: int,
    parquet_dir: str | None,
    quiet: bool,
    min_tls: str | None,
    store: str | None,
    waivers: str | None,
    deep: bool,
    deep_limit: int,
    **filters: Any,
) -> None:
    """Audit CAPTURE files or directories against a ruleset; all captures form one traffic set
    (with --each, each CAPTURE is a set of its own). `-` reads standard input.

    Exit codes (bits): 0 OK, 1 findings at or above --fail-on, 4 a capture not read whole
    (5: both), 2 usage/ruleset/inventory/output error, 8 out of memory or disk, 16 internal
    error, 130/143 interrupted by SIGINT/SIGTERM.

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
    select = packet_filter(**filters)
    read = reader_for(engine, master, split_size, dedup, jobs, select, deep)
    if deep:
        require_tshark("--deep")
    started = datetime.now(UTC)
    ruleset = load_ruleset(ruleset_name)
    inv = load_inventory(inventory, ruleset) if inventory else None
    waiver_set = load_waivers(waivers) if waivers else None
    if store:
        check_store(store)
    options = AuditOptions(
        fail_on,
        each,
        dedup_window if dedup else None,
        quiet,
        min_tls,
        waiver_set,
        jobs or default_jobs(),
        select,
        read,
        parquet_dir,
        flow_limit,
    )
    with output_file(output, [*captures, ruleset.path, inventory, store, waivers]) as out:
        results = _audit_sets(captures, ruleset, inv, options)
        codes = [r.exit_code for r in results]
        if deep:
            codes = [_deepen(r, deep_limit) for r in results]
        code = combine(codes)
        color = fmt == "table" and out is None and sys.stdout.isatty()
        if each:
            text = render_each(
                [(c, r.result) for c, r in zip(captures, results, strict=True)],
                fmt,
                code,
                color=color,
                width=table_width(to_stdout=out is None),
            )
        else:
            text = render(
                results[0].result, fmt, color=color, width=table_width(to_stdout=out is None)
            )
        if out is not None:
            out.write_text(text)
        else:
            emit(text)
    if store:
        for result in results:
            record_in_store(store, result, started, inventory, waivers)
    sys.exit(int(code))


@dataclass(frozen=True)
class AuditOptions:
    """The audit's options that every traffic set shares."""

    fail_on: str
    each: bool
    dedup: float | None
    quiet: bool
    min_tls: str | None
    waivers: Waivers | None
    jobs: int
    select: PacketFilter | None  #: --since/--until/--host/--port/--filter
    #: another engine's reader (--engine spark) in place of the local one
    read: Callable[[list[str]], Traffic] | None = None
    parquet_dir: str | None = None  #: --parquet-dir
    flow_limit: int | None = FLOW_LIMIT  #: --flow-limit


def _audit_sets(
    captures: tuple[str, ...], ruleset: Ruleset, inv: Inventory | None, options: AuditOptions
) -> list[AuditResult]:
    """One audit per traffic set: all CAPTURE together, or each alone (--each)."""
    progress = progress_for(sys.stderr, options.quiet)
    sets = [[c] for c in captures] if options.each else [list(captures)]
    results = []
    for paths in sets:
        result = audit(
            paths,
            ruleset,
            inv,
            fail_on=options.fail_on,
            progress=progress,
            dedup=options.dedup,
            min_tls=options.min_tls,
            waivers=options.waivers,
            jobs=options.jobs,
            select=options.select,
            read=options.read,
            flow_limit=options.flow_limit,
        )
        if progress:
            progress.clear()
        for note in result.notes:
            warn(note)
        for line in waiver_warnings(result.result):
            warn(line)
        if options.parquet_dir:
            from auditor.lake import write_lake

            write_lake(options.parquet_dir, result.traffic, result.result.findings, ruleset.name)
        results.append(result)
    return results


def _deepen(result: AuditResult, limit: int) -> ExitCode:
    """--deep on one result's findings; its exit code, with CAPTURE when tshark's evidence
    could not be read (the findings stand)."""
    from auditor.evidence.deep import deepen  # pyshark: only for --deep

    result.result, summary = deepen(result.result, result.traffic, limit)
    if summary.error:
        warn(f"--deep: no evidence attached: {summary.error}")
        return result.exit_code | ExitCode.CAPTURE
    return result.exit_code
