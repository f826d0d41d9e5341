"""Finding and running tshark: the one place that knows how it is installed.

Commands that need Wireshark's dissectors (``verify``, ``show --deep``, ``audit --deep``)
call :func:`require_tshark` first: without tshark they stop with one line naming the
install command (exit USAGE); nothing else in pcap-audit needs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from auditor.errors import AuditorError, ExitCode

INSTALL_HINT = (
    "install it with: apt-get install tshark (Debian/Ubuntu), dnf install wireshark-cli "
    "(Fedora), brew install wireshark (macOS)"
)


class ToolMissing(AuditorError):
    """A program pcap-audit runs (tshark) is not installed."""

    exit_code = ExitCode.USAGE

    def __init__(self, tool: str, needed_for: str) -> None:
        super().__init__(
            tool, f"not installed (not on PATH); {needed_for} needs it: {INSTALL_HINT}"
        )


class ToolFailed(AuditorError):
    """tshark ran and failed on a capture."""

    exit_code = ExitCode.CAPTURE


def tshark_path() -> str | None:
    """The tshark binary: ``$PCAP_AUDIT_TSHARK`` (a name or path) when set, else ``tshark``
    on PATH; None when not found."""
    configured = os.environ.get("PCAP_AUDIT_TSHARK")
    if configured:
        return shutil.which(configured)
    return shutil.which("tshark")


def require_tshark(needed_for: str) -> str:
    """The tshark binary, or ToolMissing saying what needs it and how to install it."""
    path = tshark_path()
    if path is None:
        raise ToolMissing("tshark", needed_for)
    return path


def run_tshark(args: list[str], capture: str, needed_for: str, timeout: float = 3600) -> str:
    """Run ``tshark -n -r CAPTURE ARGS`` and return its stdout; a failure is a ToolFailed
    naming the capture and tshark's first line of complaint."""
    cmd = [require_tshark(needed_for), "-n", "-r", capture, *args]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, errors="replace"
        )
    except subprocess.TimeoutExpired:
        raise ToolFailed(capture, f"tshark did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0 and not (proc.stdout and "cut short" in proc.stderr):
        # a capture cut mid-record is read up to the cut, by tshark as by us
        lines = [x for x in proc.stderr.splitlines() if x.strip() and "Running as user" not in x]
        why = lines[0].strip() if lines else f"exit status {proc.returncode}"
        raise ToolFailed(capture, f"tshark failed: {why}")
    return proc.stdout
