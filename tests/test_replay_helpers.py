"""Helpers shared by the reviewer-tool tests (run, replay, verify, export), and their own checks.

Every scenario is recorded for real: a real ipykernel with `%load_ext nbgov`, the real
recorder writing the real sidecar, driven by `nbgov run` or by a RecordingKernel when
a test needs cells run out of order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
from click.testing import CliRunner, Result

from nbgov.cli import cli
from nbgov.lineage import notebook_meta
from nbgov.lineage.store import sidecar_path
from nbgov.replay.kernel import RecordingKernel
from nbgov.replay.source import read_sidecar


def make_nb(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    return nb


def write_nb(folder: Path, *sources: str, name: str = "analysis.ipynb") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(make_nb(*sources), str(path))
    return path


def invoke(*args: Any) -> Result:
    """Run the real `nbgov` command in-process (click's runner)."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def record(path: Path, *sources: str) -> Path:
    """Write a notebook and record it with `nbgov run` (real kernel, real recorder)."""
    write_nb(path.parent, *sources, name=path.name)
    result = invoke("run", path)
    assert result.exit_code == 0, result.output
    return path


def run_in_order(path: Path, order: Sequence[int]) -> list[dict[str, Any]]:
    """Execute the notebook's cells in the given order (by index) in one recording kernel,
    as a user clicking around would, then save the lineage into the notebook metadata."""
    nb = notebook_meta.read_notebook(path)
    with RecordingKernel("python3", path.parent, path) as kernel:
        for index in order:
            cell = nb.cells[index]
            outcome = kernel.execute(cell.source, cell.id, timeout=120)
            assert outcome.status == "ok", (outcome.ename, outcome.evalue)
    entries = read_sidecar(sidecar_path(path))
    notebook_meta.merge_entries(nb, entries, notebook_meta.sidecar_relpath(path))
    notebook_meta.write_notebook(nb, path)
    return entries


def sidecar_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sidecar_path(path).read_text().splitlines() if line.strip()]


def write_sidecar_lines(path: Path, entries: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
                   for e in entries)
    sidecar_path(path).write_text(text)


def test_run_records_every_cell_with_its_cell_id(tmp_path: Path) -> None:
    path = record(tmp_path / "analysis.ipynb", "a = 41", "b = a + 1\nprint(b)")
    nb = nbformat.read(str(path), as_version=4)
    executions = [e for e in sidecar_lines(path) if e["kind"] == "execution"]
    assert [e["body"]["cell_id"] for e in executions] == [c.id for c in nb.cells]
    assert [e["body"]["code"] for e in executions] == ["a = 41", "b = a + 1\nprint(b)"]
    # the load of nbgov itself is not a recorded cell, and the outputs are real
    assert nb.cells[1].outputs[0]["text"] == "42\n"
    assert executions[1]["body"]["reads"][0]["name"] == "a"
    assert executions[1]["body"]["reads"][0]["source"] == executions[0]["body"]["id"]


def test_run_writes_notebook_and_cell_metadata_matching_the_sidecar(tmp_path: Path) -> None:
    path = record(tmp_path / "analysis.ipynb", "x = [1, 2, 3]", "y = sum(x)")
    nb = nbformat.read(str(path), as_version=4)
    meta = nb.metadata["nbgov"]
    assert meta["schema"] == "nbgov.notebook/1"
    assert meta["sidecar"] == ".nbgov/analysis.jsonl"
    on_disk = sidecar_lines(path)
    assert meta["sessions"] + meta["log"] == sorted(on_disk, key=lambda e: e["seq"])
    for cell, entry in zip(nb.cells, meta["log"]):
        assert cell.metadata["nbgov"] == {"schema": "nbgov.cell/1", "latest": entry}


def test_run_to_another_output_keeps_the_source_untouched(tmp_path: Path) -> None:
    source = write_nb(tmp_path, "z = 3", name="source.ipynb")
    before = source.read_text()
    out = tmp_path / "out" / "ran.ipynb"
    result = invoke("run", source, "-o", out)
    assert result.exit_code == 0, result.output
    assert "recorded 1 executions" in result.output
    assert source.read_text() == before
    assert not (tmp_path / ".nbgov").exists()
    ran = nbformat.read(str(out), as_version=4)
    assert ran.metadata["nbgov"]["log"][0]["body"]["code"] == "z = 3"
    assert (out.parent / ".nbgov" / "ran.jsonl").exists()


def test_run_reports_a_failing_cell_and_still_records_it(tmp_path: Path) -> None:
    path = write_nb(tmp_path, "ok = 1", "1 / 0", "never = 2")
    result = invoke("run", path)
    assert result.exit_code == 1
    assert "ZeroDivisionError" in result.output
    executions = [e for e in sidecar_lines(path) if e["kind"] == "execution"]
    assert [e["body"]["status"] for e in executions] == ["ok", "error"]
    assert executions[1]["body"]["error"]["type"] == "ZeroDivisionError"


def test_a_notebook_shared_without_its_sidecar_continues_its_chain(tmp_path: Path) -> None:
    path = record(tmp_path / "shared.ipynb", "first = 1")
    sidecar_path(path).unlink()
    result = invoke("run", path)
    assert result.exit_code == 0, result.output
    entries = sidecar_lines(path)
    assert [e["seq"] for e in entries] == [0, 1, 2, 3]
    assert len({e["body"]["session"] for e in entries}) == 2
    assert invoke("verify", path).exit_code == 0
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata["nbgov"]["log"][0]["body"]["code"] = "first = 'edited'"
    nbformat.write(nb, str(path))
    sidecar_path(path).unlink()
    refused = invoke("run", path)
    assert refused.exit_code == 2 and "does not verify" in refused.output
