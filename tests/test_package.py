"""The package as users install and load it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from tests.fixtures.kernel import make_notebook

REPO = Path(__file__).resolve().parents[1]


def test_load_and_unload_extension_registers_and_removes_magics(bare_shell) -> None:
    bare_shell.run_cell("%load_ext nbgov").raise_error()
    cell_magics = bare_shell.magics_manager.magics["cell"]
    line_magics = bare_shell.magics_manager.magics["line"]
    assert "sqlml" in cell_magics and "sqlml" in line_magics and "lineage" in line_magics
    callbacks = bare_shell.events.callbacks["post_run_cell"]
    assert callbacks, "the lineage recorder is registered on post_run_cell"

    bare_shell.run_cell("%unload_ext nbgov").raise_error()
    assert "sqlml" not in bare_shell.magics_manager.magics["cell"]
    assert "lineage" not in bare_shell.magics_manager.magics["line"]
    assert not bare_shell.events.callbacks["post_run_cell"]


def test_loading_twice_is_harmless(shell) -> None:
    callbacks = list(shell.events.callbacks["post_run_cell"])  # the recorder's, and %%sqlml's row limit's end
    assert len(callbacks) == 2
    shell.run_cell("%load_ext nbgov").raise_error()
    assert shell.events.callbacks["post_run_cell"] == callbacks


def test_extension_loads_in_a_real_kernel(run_notebook) -> None:
    nb = run_notebook(
        make_notebook(
            "%load_ext nbgov",
            "print(sorted(k for k in get_ipython().magics_manager.magics['cell'] if k == 'sqlml'))",
        )
    )
    assert nb.cells[1].outputs[0]["text"].strip() == "['sqlml']"


def test_labextension_is_installed_and_enabled() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    listing = out.stdout + out.stderr
    line = next((ln for ln in listing.splitlines() if ln.strip().startswith("nbgov")), "")
    assert "enabled" in line and "OK" in line, listing


def test_labextension_package_names_match() -> None:
    package = json.loads((REPO / "labextension" / "package.json").read_text())
    assert package["name"] == "nbgov"
    assert package["jupyterlab"]["outputDir"] == "../nbgov/labextension"


def test_example_notebooks_are_valid_nbformat() -> None:
    notebooks = sorted((REPO / "example_notebooks").glob("*.ipynb"))
    assert notebooks, "example notebooks are bundled"
    for path in notebooks:
        nbformat.validate(nbformat.read(path, as_version=4))


HEADLESS_IMPORTS = r"""
import os, sys, tempfile
os.chdir(tempfile.mkdtemp())
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.history_manager.enabled = False
shell.run_cell("%load_ext nbgov").raise_error()
for i in range(3):
    shell.run_cell(f"x{i} = {i}", store_history=True).raise_error()
assert len(shell._nbgov_installed[0].records) == 3
late = ["nbgov.lineage.compact", "nbgov.lineage.stale", "nbgov.replay.compare", "nbgov.replay.safe_text"]
print("BEFORE:" + ",".join(m for m in late if m in sys.modules))
shell.run_cell("%lineage", store_history=True).raise_error()
shell.run_cell("_ = get_ipython()._nbgov_installed[0].stale()", store_history=True).raise_error()
print("AFTER:" + ",".join(m for m in late if m in sys.modules))
"""


def test_a_headless_kernel_imports_only_what_recording_needs(tmp_path: Path) -> None:
    """Each `nbgov run` kernel imports nbgov (compiled from source where no bytecode is
    written): the sidebar's compact lines, stale flags and %lineage's text helpers wait
    until something asks for them, and then work."""
    env = {**os.environ, "NBGOV_HEADLESS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", HEADLESS_IMPORTS], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    before = next(line for line in lines if line.startswith("BEFORE:")).removeprefix("BEFORE:")
    after = next(line for line in lines if line.startswith("AFTER:")).removeprefix("AFTER:")
    assert before == "", f"imported before anything asked: {before}"
    assert set(after.split(",")) >= {"nbgov.lineage.stale", "nbgov.replay.safe_text"}
