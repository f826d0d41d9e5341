"""``pcap-audit verify``: the flow table against tshark's reading of the same captures."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from auditor.cli.common import captures_argument, emit, handle_errors, quiet_option, warn
from auditor.cli.output import output_file
from auditor.errors import ExitCode
from auditor.escape import printable
from auditor.evidence.verify import render_text, verify
from auditor.report.json_ import render as json_text


@click.command("verify")
@captures_argument
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@quiet_option
@handle_errors
def command(captures: tuple[str, ...], fmt: str, output: str | None, quiet: bool) -> None:
    """Compare the flow table of CAPTURE files with tshark's dissection of them.

    Per capture, every TCP/UDP conversation (endpoint pair) is compared: packets and bytes
    must be equal, and the application protocol must match where tshark names one. Prints
    the agreement rate and each difference with our flow ids and tshark's frame numbers.
    Needs tshark. Exit 0 when all agree, 1 when any differs, 2 without tshark, or'd with 4
    when a capture could not be read whole.

    Example:

        pcap-audit verify night.pcapng
    """
    with output_file(output, captures) as out:
        result = verify(captures, progress=_progress(quiet))
        for note in result.notes:
            warn(note)
        text = json_text(result.to_json()) if fmt == "json" else render_text(result)
        if out is not None:
            out.write_text(text)
        else:
            emit(text)
    code = ExitCode.OK if result.agree else ExitCode.FINDINGS
    if not result.complete:
        code |= ExitCode.CAPTURE
    sys.exit(int(code))


def _progress(quiet: bool) -> Callable[[str], None] | None:
    """``reading PATH`` on a terminal before each capture (not with -q)."""
    if quiet or not sys.stderr.isatty():
        return None
    return lambda p: click.echo(f"reading {printable(p)}", err=True)
