"""The sidebar's model logic, tested by its own Node test runner (labextension/tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

LABEXTENSION = Path(__file__).resolve().parents[1] / "labextension"


def test_frontend_unit_tests_pass() -> None:
    jlpm = shutil.which("jlpm")
    assert jlpm, "jlpm (from jupyterlab) is needed to run the frontend unit tests"
    subprocess.run([jlpm, "install"], cwd=LABEXTENSION, check=True, capture_output=True, timeout=600)
    run = subprocess.run([jlpm, "test"], cwd=LABEXTENSION, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    passed = re.search(r"^# pass (\d+)", output, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)", output, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, output[-2000:]
    assert failed and int(failed.group(1)) == 0, output[-2000:]
