"""The built wheel works on its own: installed outside the checkout, it finds its rulesets.

The editable install the Makefile uses reads everything from the source tree, so it would
hide a wheel that forgot its package data. This test builds the wheel (no build isolation:
the project venv's setuptools, no network), installs it into a fresh virtual environment in
a temporary directory and runs the console script from there. The fresh environment gets
the third-party dependencies (duckdb, pyarrow, ...) through a ``.pth`` line pointing at the
project venv's site-packages: a path listed in a ``.pth`` file is not itself a site
directory, so the editable install's own ``.pth`` hook there is not run, and ``auditor``
can only come from the wheel (asserted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "applayering" / "findings.pcap"


def _run(args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(bin directory of a fresh venv holding only the wheel, the wheel build's output)."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "-w",
            tmp / "dist",
            ROOT,
        ],
        cwd=tmp,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp / "dist").glob("pcap_audit-*.whl")
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python]
    inst = _run([*pip, "install", "--quiet", "--no-deps", "--no-index", wheel], cwd=tmp)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp)
    deps = sysconfig.get_path("purelib")
    (Path(site.stdout.strip()) / "project-deps.pth").write_text(deps + "\n")
    return venv / "bin", built.stdout + built.stderr


def test_wheel_builds_without_warnings(installed: tuple[Path, str]) -> None:
    _, output = installed
    assert "warning" not in output.lower(), output


def test_installed_package_is_the_wheel_not_the_checkout(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    bindir, _ = installed
    res = _run([bindir / "python", "-c", "import auditor; print(auditor.__file__)"], tmp_path)
    assert res.returncode == 0, res.stderr
    location = Path(res.stdout.strip()).resolve()
    assert bindir.parent.resolve() in location.parents
    assert ROOT not in location.parents


def test_installed_wheel_lists_its_rulesets(installed: tuple[Path, str], tmp_path: Path) -> None:
    bindir, _ = installed
    res = _run([bindir / "pcap-audit", "rulesets", "list", "--format", "json"], tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [d["name"] for d in doc] == ["applayering", "kubernetes", "tas-diego", "uforge"]
    for d in doc:
        assert bindir.parent.resolve() in Path(d["path"]).resolve().parents


def test_installed_wheel_audits_a_sample(installed: tuple[Path, str], tmp_path: Path) -> None:
    bindir, _ = installed
    res = _run(
        [bindir / "pcap-audit", SAMPLE, "--ruleset", "applayering", "--format", "json"], tmp_path
    )
    assert res.returncode == 1, res.stderr  # the findings sample has findings at medium+
    doc = json.loads(res.stdout)
    assert doc["ruleset"]["name"] == "applayering"
    assert doc["summary"]["findings"] > 0
    assert res.stderr == ""
