"""Notebook and cell metadata (nbgov.lineage.notebook_meta) against entries of a real sidecar store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbgov.errors import LineageError
from nbgov.lineage import notebook_meta
from nbgov.lineage.store import SidecarStore, sidecar_path
from tests.fixtures.kernel import make_notebook


def body(cell_id: str | None, count: int, code: str) -> dict[str, Any]:
    return {"schema": "nbgov.record/1", "id": f"s:{count}", "session": "s", "execution_count": count,
            "cell_id": cell_id, "code": code, "status": "ok", "reads": [], "writes": [], "files": []}


def store_entries(tmp_path: Path, nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    store = SidecarStore(sidecar_path(tmp_path / "nb.ipynb"), background_fsync=False)
    store.append("session", {"schema": "nbgov.session/1", "session": "s"})
    store.append("execution", body(nb.cells[0].id, 1, "a = 1"))
    store.append("execution", body(nb.cells[1].id, 2, "b = a"))
    store.append("execution", body(nb.cells[0].id, 3, "a = 2"))
    store.append("execution", body(None, 4, "print('no cell id')"))
    store.close()
    return store.entries()


def test_merge_writes_the_log_and_each_cells_latest_entry(tmp_path: Path) -> None:
    nb = make_notebook("a = 1", "b = a", "untouched = True")
    entries = store_entries(tmp_path, nb)
    assert notebook_meta.merge_entries(nb, entries, ".nbgov/nb.jsonl") == 5
    meta = notebook_meta.read_lineage(nb)
    assert meta is not None and meta.sidecar == ".nbgov/nb.jsonl"
    assert meta.entries() == entries
    assert [e["seq"] for e in meta.sessions] == [0] and [e["seq"] for e in meta.log] == [1, 2, 3, 4]
    latest = notebook_meta.cell_latest(nb)
    assert latest == {nb.cells[0].id: entries[3], nb.cells[1].id: entries[2]}
    assert "nbgov" not in nb.cells[2].metadata


def test_merge_dedupes_by_hash_and_survives_a_save(tmp_path: Path) -> None:
    nb = make_notebook("a = 1", "b = a")
    entries = store_entries(tmp_path, nb)
    notebook_meta.merge_entries(nb, entries[:3], ".nbgov/nb.jsonl")
    path = tmp_path / "nb.ipynb"
    notebook_meta.write_notebook(nb, path)
    again = notebook_meta.read_notebook(path)
    assert notebook_meta.merge_entries(again, entries, ".nbgov/nb.jsonl") == 2
    assert notebook_meta.merge_entries(again, entries, ".nbgov/nb.jsonl") == 0
    meta = notebook_meta.read_lineage(again)
    assert meta is not None and meta.entries() == entries


def test_a_notebook_without_lineage_has_none() -> None:
    assert notebook_meta.read_lineage(make_notebook("x = 1")) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("junk", "is not an object"),
        ({"schema": "other/1"}, "expected 'nbgov.notebook/2'"),
        ({"schema": "nbgov.notebook/2", "log": [{"seq": 1}]}, "must be a list of compact entry lines"),
        ({"schema": "nbgov.notebook/1", "log": {}}, "must be lists"),
        ({"schema": "nbgov.notebook/1", "log": [{"seq": 1}]}, "log[0]: entry lacks prev, hash, kind, body"),
        ({"schema": "nbgov.notebook/1", "log": [{"seq": 1, "prev": "", "hash": "", "kind": "x", "body": {}}]},
         "unknown entry kind 'x'"),
        ({"schema": "nbgov.notebook/1", "sessions": [3]}, "sessions[0]: expected an entry object"),
    ],
)
def test_malformed_metadata_is_refused_with_a_clear_message(raw: Any, message: str) -> None:
    nb = make_notebook("x = 1")
    nb.metadata["nbgov"] = raw
    with pytest.raises(LineageError) as caught:
        notebook_meta.read_lineage(nb)
    assert message in str(caught.value)


def test_foreign_cell_metadata_is_ignored(tmp_path: Path) -> None:
    nb = make_notebook("a = 1", "b = a")
    nb.cells[0].metadata["nbgov"] = {"schema": "someone-else/2", "latest": 42}
    assert notebook_meta.cell_latest(nb) == {}


def test_reading_something_that_is_not_a_notebook(tmp_path: Path) -> None:
    (tmp_path / "x.ipynb").write_text('{"cells": "nope"}')
    with pytest.raises(LineageError, match="not a Jupyter notebook"):
        notebook_meta.read_notebook(tmp_path / "x.ipynb")
    with pytest.raises(LineageError, match="is a folder"):
        notebook_meta.read_notebook(tmp_path)
