"""The C extensions under AddressSanitizer and UndefinedBehaviorSanitizer (issue 10, item 7).

The record scanners (pcap and pcapng), the header decoder, the flow table and the flow
identifiers are built with ``-fsanitize=address,undefined -fno-sanitize-recover=all`` into a
temporary directory and run, in a child process with libasan preloaded
(tests/sanitize_driver.py), over every capture of ../shared/corpus and over mutated
captures: bit flips, splices, truncations, and length, count, timestamp and if_tsresol /
if_tsoffset fields set to extremes, from a fixed seed. Any sanitizer report fails the test.
(tests/test_decode.py runs the decoder alone, record by record, under the same sanitizers.)

Both tests always run, bounded: the whole corpus (34 MB) takes ~6 s of CPU under the
sanitizers, the mutations ~5 s for the default 1,500 cases. PCAP_AUDIT_FUZZ_CASES raises
the number of mutated captures (a different PCAP_AUDIT_FUZZ_SEED tries others).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
DRIVER = Path(__file__).with_name("sanitize_driver.py")
FLAGS = ["-std=c99", "-O1", "-g", "-fno-omit-frame-pointer", "-fPIC", "-shared", "-Wall",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]  # fmt: skip
SOURCES = {
    "_fast": ["auditor/capture/_fast.c", "auditor/capture/decode.c"],
    "_flowtab": ["auditor/_flowtab.c"],
    "_flowid": ["auditor/_flowid.c"],
}
CASES = int(os.environ.get("PCAP_AUDIT_FUZZ_CASES", "1500"))
SEED = int(os.environ.get("PCAP_AUDIT_FUZZ_SEED", "1"))


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The directory of the sanitized extensions and the environment to run them in."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    runtime = subprocess.run(
        [cc, "-print-file-name=libasan.so"], capture_output=True, text=True
    ).stdout.strip()
    if not os.path.isabs(runtime) or not os.path.exists(runtime):
        pytest.skip(f"{cc} has no AddressSanitizer runtime (libasan.so) to preload")
    out = tmp_path_factory.mktemp("sanitized")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = ["-I", sysconfig.get_paths()["include"], "-I", str(REPO / "auditor" / "capture")]
    for name, sources in SOURCES.items():
        cmd = [cc, *FLAGS, *include, *(str(REPO / s) for s in sources), "-o"]
        r = subprocess.run([*cmd, str(out / f"{name}{suffix}")], capture_output=True, text=True)
        assert r.returncode == 0, f"{name} does not build with the sanitizers:\n{r.stderr}"
    env = {
        **os.environ,
        "LD_PRELOAD": runtime,
        "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        "PYTHONPATH": str(REPO),
    }
    return out, env


def run_driver(env: dict[str, str], args: list[str]) -> int:
    r = subprocess.run(
        [sys.executable, str(DRIVER), *args], capture_output=True, text=True, env=env, timeout=900
    )
    assert r.returncode == 0, (
        f"exit {r.returncode}; the last capture named is the one:\n{r.stderr[-4000:]}"
    )
    assert "runtime error" not in r.stderr and "Sanitizer" not in r.stderr, r.stderr[-4000:]
    return int(r.stdout.split()[-1])


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus not present")
def test_whole_corpus_under_sanitizers(sanitized: tuple[Path, dict[str, str]]) -> None:
    so_dir, env = sanitized
    files = sorted(str(p) for p in CORPUS.glob("*/*") if p.name != "README.md")
    assert run_driver(env, [str(so_dir), "corpus", *files]) == len(files)


def test_mutated_captures_under_sanitizers(
    sanitized: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    so_dir, env = sanitized
    bases = [str(p) for p in sorted(REPO.glob("samples/*/*.pcap"))]
    if CORPUS.exists():  # small real captures of many kinds: every 12th under 16 KB
        small = sorted(p for p in CORPUS.glob("*/*.pcap*") if p.stat().st_size < 16384)
        bases += [str(p) for p in small[11::12]]
    args = [str(so_dir), "mutate", str(SEED), str(CASES), str(tmp_path), *bases]
    assert run_driver(env, args) == CASES
