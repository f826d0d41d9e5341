"""``pcap-audit verify``: the flow table against tshark's reading of the same captures."""

from __future__ import annotations

import sys

import click

from auditor.cli.common import captures_argument, emit, handle_errors
from auditor.errors import ExitCode
from auditor.evidence.verify import render_text, verify
from auditor.report.json_ import render as json_text


@click.command("verify")
@captures_argument
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@handle_errors
def command(captures: tuple[str, ...], fmt: str, output: str | None) -> None:
    """Compare the flow table of CAPTURE files with tshark's dissection of them.

    Per capture, every TCP/UDP conversation (endpoint pair) is compared: packets and bytes
    must be equal, and the application protocol must match where tshark names one. Prints
    the agreement rate and each difference with our flow ids and tshark's frame numbers.
    Needs tshark. Exit 0 when all agree, 1 when any differs, 2 without tshark, and the
    capture code when a capture could not be read.

    Example:

        pcap-audit verify night.pcapng
    """
    progress = (lambda p: click.echo(f"reading {p}", err=True)) if sys.stderr.isatty() else None
    result = verify(captures, progress=progress)
    for err in result.errors:
        click.echo(f"pcap-audit: {err.one_line()}", err=True)
    text = json_text(result.to_json()) if fmt == "json" else render_text(result)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        emit(text)
    code = 0 if result.agree else int(ExitCode.FINDINGS)
    if result.errors:
        code |= int(ExitCode.CAPTURE)
    sys.exit(code)
