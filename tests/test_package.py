"""The package as users install and load it."""

from __future__ import annotations

import json
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
    shell.run_cell("%load_ext nbgov").raise_error()
    assert len(shell.events.callbacks["post_run_cell"]) == 1


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
