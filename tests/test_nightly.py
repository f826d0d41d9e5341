"""The nightly recipe (contrib/nightly) run as cron or systemd would run it, over three
nights of sample captures, with a `mail` that delivers into a directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "contrib" / "nightly" / "pcap-audit-nightly"
AL = ROOT / "samples" / "applayering"
BIN = Path(sys.executable).parent

MAIL = """#!/bin/sh
# mail -s SUBJECT TO < body: one file per message
n=$(ls "$MAILBOX" | wc -l)
{ echo "To: $3"; echo "Subject: $2"; echo; cat; } > "$MAILBOX/$n.txt"
"""

pytestmark = pytest.mark.skipif(
    shutil.which("sh") is None or not (BIN / "pcap-audit").exists(),
    reason="needs sh and the pcap-audit console script",
)


def night(tmp_path: Path, name: str, capture: Path) -> tuple[int, list[str]]:
    """Run the script for one night; returns its status and the mails sent that night."""
    mailbox = tmp_path / "mail"
    fake = tmp_path / "bin"
    if not fake.exists():
        fake.mkdir()
        (fake / "mail").write_text(MAIL)
        (fake / "mail").chmod(0o755)
        mailbox.mkdir()
    before = len(list(mailbox.iterdir()))
    env = {
        "PATH": f"{fake}:{BIN}:/usr/bin:/bin",
        "MAILBOX": str(mailbox),
        "CAPTURES": str(capture),
        "RULESET": "applayering",
        "INVENTORY": str(AL / "findings.inventory.yaml"),
        "STORE": str(tmp_path / "store.duckdb"),
        "OUT": str(tmp_path / "reports"),
        "MAIL_TO": "netsec@example.com",
        "ALERT_TO": "oncall@example.com",
        "NIGHT": name,
        "HOME": str(tmp_path),
    }
    res = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    mails = sorted(mailbox.iterdir(), key=lambda p: int(p.stem))[before:]
    return res.returncode, [m.read_text() for m in mails]


def test_three_nights(tmp_path: Path) -> None:
    # night 1: documented traffic only (one info finding): a summary, no alert
    status, mails = night(tmp_path, "n1", AL / "clean.pcap")
    assert status == 0, mails
    assert len(mails) == 1
    assert mails[0].startswith("To: netsec@example.com\nSubject: pcap-audit n1: summary\n")
    body = mails[0].split("\n\n", 1)[1]
    assert len(body.splitlines()) <= 10
    assert "New: no baseline to compare with" in body
    # night 2: the capture with findings: the summary says what is new, and an alert
    status, mails = night(tmp_path, "n2", AL / "findings.pcap")
    assert status == 0
    assert [m.splitlines()[1] for m in mails] == [
        "Subject: pcap-audit n2: summary",
        "Subject: pcap-audit n2: NEW findings at or above medium",
    ]
    assert "New since run 1" in mails[0]
    assert mails[1].startswith("To: oncall@example.com\n")
    assert "PLA-2f95d12e4ab0" in mails[1]  # the BITS transfer, in the Markdown diff
    # night 3: the capture job failed and left night 2's file: said so, no second alert
    renamed = tmp_path / "night3.pcap"
    shutil.copy(AL / "findings.pcap", renamed)
    status, mails = night(tmp_path, "n3", renamed)
    assert status == 0
    assert len(mails) == 1
    assert "already audited with the same ruleset, inventory and waivers as run 2" in mails[0]
    # night 4: both captures: the same problems as night 2, nothing new: no alert
    both = tmp_path / "night4"
    both.mkdir()
    for name in ("clean.pcap", "findings.pcap"):
        shutil.copy(AL / name, both / name)
    status, mails = night(tmp_path, "n4", both)
    assert status == 0
    assert len(mails) == 1 and "New since run 2" in mails[0], mails
    reports = tmp_path / "reports"
    assert (reports / "history.html").exists()
    assert sorted(p.name for p in (reports / "n2").iterdir()) == [
        "audit.html", "audit.json", "audit.log", "new.md"
    ]  # fmt: skip


def test_a_night_without_captures_alerts_and_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    status, mails = night(tmp_path, "n1", empty)
    assert status not in (0, 1)  # a capture problem, whatever its number
    assert [m.splitlines()[:2] for m in mails] == [
        ["To: netsec@example.com", "Subject: pcap-audit n1: summary"],
        ["To: oncall@example.com", f"Subject: pcap-audit n1: audit incomplete (exit {status})"],
    ]
    assert "! 1 capture(s) not read whole" in mails[0]
    assert "store.duckdb: recorded as run 1 (1 capture)\n" in mails[0]  # kept as evidence
    assert f"{empty}: directory holds no capture files" in mails[1]
