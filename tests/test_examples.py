"""The example notebooks never rot: each runs headless through `nbgov run` and replays.

Every notebook in example_notebooks/ is copied to a temporary folder and executed with
the real CLI (a subprocess, a real kernel), so recording is exercised exactly as a
user's `nbgov run` would: one recorded execution per code cell, all ok, the sidecar and
the notebook metadata agreeing, `nbgov verify` intact and `nbgov replay` reproducing.
The bundled example data is checked against its seeded generator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from nbgov import data
from nbgov.lineage import notebook_meta

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "example_notebooks"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
EXPECTED_NOTEBOOKS = {
    "01_quickstart.ipynb",
    "02_optimizer.ipynb",
    "03_reviewer_replay.ipynb",
    "04_workshop.ipynb",
}
LONGEST = "03_reviewer_replay.ipynb"
# handed out with its data file, as a workshop is: its setup copies customers.parquet only
# when it is missing, so that a changed file is an input replay catches (its Exercise 5.1)
HANDED_OUT_WITH_DATA = {"04_workshop.ipynb"}
WORKSHOP = "04_workshop.ipynb"


def nbgov_cli(*args: str, cwd: Path, tmpdir: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`nbgov ARGS` as a user types it, importing nbgov from this checkout.

    TMPDIR points into the test's folder, so any scratch file a notebook makes in the
    system temp folder is cleaned up with it (03's scratch copy is a subfolder of its own).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["TMPDIR"] = str(tmpdir)
    env.pop("JPY_SESSION_NAME", None)
    return subprocess.run(
        [sys.executable, "-m", "nbgov.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


def said(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def read_sidecar(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_example_notebook_is_present() -> None:
    assert {path.name for path in NOTEBOOKS} == EXPECTED_NOTEBOOKS


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebook_is_clean(source: Path) -> None:
    """Valid nbformat 4.5 with cell ids, no outputs, no recorded lineage committed."""
    nb = nbformat.read(source, as_version=4)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) >= (4, 5)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    ids = [cell.get("id") for cell in nb.cells]
    assert all(ids) and len(ids) == len(set(ids))
    assert "nbgov" not in nb.metadata
    for cell in nb.cells:
        assert "nbgov" not in cell.metadata, cell.id
    for cell in code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, f"cell {cell.id} has outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def test_bundled_data_is_its_seeded_generation(tmp_path: Path) -> None:
    bundled = pd.read_parquet(data.bundled_path("customers.parquet"))
    pd.testing.assert_frame_equal(bundled, data.customers(n=2_000, seed=42))
    written = data.write_example_data(tmp_path)
    assert [path.name for path in written] == ["customers.parquet"]
    assert written[0].read_bytes() == data.bundled_path("customers.parquet").read_bytes()
    assert data.bundled_path("customers.parquet").stat().st_size < 300_000


def test_generators_are_deterministic_and_mixed() -> None:
    pd.testing.assert_frame_equal(data.customers(n=500, seed=1), data.customers(n=500, seed=1))
    assert not data.customers(n=500, seed=1).equals(data.customers(n=500, seed=2))
    stays = data.hospital_stays(n=1_000, seed=3)
    pd.testing.assert_frame_equal(stays, data.hospital_stays(n=1_000, seed=3))
    for frame, features in ((data.customers(n=300), data.CUSTOMER_NUMERIC_FEATURES),
                            (stays, data.HOSPITAL_NUMERIC_FEATURES)):
        assert len(frame.columns) >= 11
        assert all(frame[name].dtype == "float64" for name in features)
        assert any(frame[name].dtype == object or str(frame[name].dtype) in ("str", "string")
                   for name in frame.columns), "expected string categories too"
    with pytest.raises(FileNotFoundError, match="customers.parquet"):
        data.bundled_path("nope.csv")


@dataclass(frozen=True)
class ExampleRun:
    """One example notebook taken through `nbgov run`, then `verify` and `replay` (when the
    run succeeded), each a real CLI process, as the test used to do them one by one."""

    notebook: Path  # the notebook in its work folder
    after_run: Path  # a copy of the notebook and its .nbgov/ as `nbgov run` left them
    run: subprocess.CompletedProcess[str]
    verify: subprocess.CompletedProcess[str] | None
    replay: subprocess.CompletedProcess[str] | None


def _run_example(source: Path, base: Path) -> ExampleRun:
    work = base / "examples"
    work.mkdir()
    notebook = work / source.name
    shutil.copyfile(source, notebook)  # the notebook alone: it makes its own data files
    if source.name in HANDED_OUT_WITH_DATA:  # ... or the notebook with the data file it is handed out with
        data.write_example_data(work)
    tmpdir = base / "tmp"
    tmpdir.mkdir()
    after_run = base / "after_run"
    run = nbgov_cli("run", notebook.name, cwd=work, tmpdir=tmpdir)
    if run.returncode != 0:
        return ExampleRun(notebook, after_run, run, None, None)
    # what the test reads of the run is copied before verify and replay go near it
    after_run.mkdir()
    shutil.copyfile(notebook, after_run / notebook.name)
    if (work / ".nbgov").exists():
        shutil.copytree(work / ".nbgov", after_run / ".nbgov")
    verify = nbgov_cli("verify", notebook.name, cwd=work, tmpdir=tmpdir)
    if verify.returncode != 0:
        return ExampleRun(notebook, after_run, run, verify, None)
    # strict: every value of the example notebooks has an exact fingerprint, so no step may be
    # "unverifiable"
    replay = nbgov_cli("replay", notebook.name, "--report", "replay.html", cwd=work, tmpdir=tmpdir)
    return ExampleRun(notebook, after_run, run, verify, replay)


@pytest.fixture(scope="module")
def example_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Path, Future[ExampleRun]]]:
    """Each selected example notebook's run, verify and replay, two notebooks at a time.

    Every notebook works in a folder (and TMPDIR) of its own through separate CLI processes
    and kernels, so nothing one does is seen by another; most of each step is a process
    waiting on its kernel, so two go side by side on two cores. Each test waits for its own
    notebook's outcome and asserts on it exactly as when it ran the commands itself.
    """
    selected = {
        item.callspec.params["source"]
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_notebook_runs_recorded_and_replays"
    }
    # 03 runs, replays and verifies a notebook of its own inside each of its own runs: the
    # longest by far, so it starts first and the others take turns beside it
    order = sorted((source for source in NOTEBOOKS if source in selected), key=lambda source: source.name != LONGEST)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="example")
    try:
        yield {source: pool.submit(_run_example, source, tmp_path_factory.mktemp(source.stem)) for source in order}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.kernel
@pytest.mark.timeout(420)
@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_recorded_and_replays(source: Path, example_runs: dict[Path, Future[ExampleRun]]) -> None:
    done = example_runs[source].result()
    run = done.run
    assert run.returncode == 0, said(run)

    notebook = done.after_run / source.name
    nb = nbformat.read(notebook, as_version=4)
    cells = code_cells(nb)
    for cell in cells:
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors and cell.execution_count, f"cell {cell.id} did not run cleanly: {errors}"

    sidecar = done.after_run / ".nbgov" / f"{notebook.stem}.jsonl"
    entries = read_sidecar(sidecar)
    executions = [entry for entry in entries if entry["kind"] == "execution"]
    assert [e["body"]["cell_id"] for e in executions] == [cell.id for cell in cells]
    for cell, entry in zip(cells, executions):
        body = entry["body"]
        assert body["status"] == "ok", f"cell {cell.id}: {body.get('error')}"
        assert body["code"].rstrip() == cell.source.rstrip()
        assert entry["hash"].startswith(cell.metadata["nbgov"]["latest"]), cell.id
    meta = notebook_meta.read_lineage(nb)
    assert meta is not None and not meta.unreadable
    assert [entry["hash"] for entry in meta.log] == [entry["hash"] for entry in executions]

    if source.name == WORKSHOP:
        # its last cell prints (never raises, so a student's handout ends cleanly) whether every
        # reference solution passes its check
        last = cells[-1]
        said_last = "".join(out.get("text", "") for out in last.outputs if out.output_type == "stream")
        assert "reference solutions: all 14 checks pass" in said_last, said_last

    verify = done.verify
    assert verify is not None and verify.returncode == 0, said(verify) if verify else "not run"

    # strict: every value of the example notebooks has an exact fingerprint, so no step may be
    # "unverifiable"
    replay = done.replay
    assert replay is not None and replay.returncode == 0, said(replay) if replay else "not run"
    assert " 0 diverged" in replay.stdout or "steps reproduced" in replay.stdout, said(replay)
    assert (done.notebook.parent / "replay.html").stat().st_size > 0
