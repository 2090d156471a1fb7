"""The sidebar's model logic, tested by vitest (labextension/tests) through `jlpm test`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

LABEXTENSION = Path(__file__).resolve().parents[1] / "labextension"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# vitest's summary line, e.g. "      Tests  1 failed | 18 passed (19)"
TESTS_SUMMARY = re.compile(r"^\s*Tests\s+(?P<counts>.+?)\s+\((?P<total>\d+)\)\s*$", re.MULTILINE)


def _installed_is_current() -> bool:
    """Whether ``labextension/node_modules`` was installed after the last change to the
    manifest and lockfile: yarn writes ``node_modules/.yarn-state.yml`` at the end of a
    successful install (the wheel build that ``make install-test`` runs does one), so a
    later ``jlpm install`` would only re-link the same packages."""
    state = LABEXTENSION / "node_modules" / ".yarn-state.yml"
    if not state.is_file():
        return False
    installed = state.stat().st_mtime
    return all((LABEXTENSION / name).stat().st_mtime < installed for name in ("package.json", "yarn.lock"))


def _count(counts: str, state: str) -> int:
    found = re.search(rf"(\d+) {state}\b", counts)
    return int(found.group(1)) if found else 0


def test_frontend_unit_tests_pass() -> None:
    jlpm = shutil.which("jlpm")
    assert jlpm, "jlpm (from jupyterlab) is needed to run the frontend unit tests"
    if not _installed_is_current():
        subprocess.run([jlpm, "install"], cwd=LABEXTENSION, check=True, capture_output=True, timeout=600)
    run = subprocess.run([jlpm, "test"], cwd=LABEXTENSION, capture_output=True, text=True, timeout=300)
    output = ANSI_ESCAPE.sub("", run.stdout + run.stderr)
    assert run.returncode == 0, output[-4000:]
    summaries = TESTS_SUMMARY.findall(output)
    assert len(summaries) == 1, f"expected one vitest 'Tests' summary line:\n{output[-2000:]}"
    counts, total = summaries[0]
    passed = _count(counts, "passed")
    assert passed > 0, output[-2000:]
    assert _count(counts, "failed") == 0, output[-2000:]
    assert passed == int(total), f"skipped or todo tests: {counts} ({total})"
