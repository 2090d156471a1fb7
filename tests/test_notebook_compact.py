"""The compact notebook form of the log (nbgov.notebook/2): lossless, small, and checked
entry by entry against the sidecar; notebooks in the old form still read and verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbgov.lineage import compact, notebook_meta
from nbgov.lineage.compact import Compactor, Lookup, expand
from nbgov.lineage.store import sidecar_path
from tests.fixtures.replay import (
    edit_metadata_entry,
    form_seq,
    invoke,
    metadata_entries,
    metadata_forms,
    record,
    set_metadata_forms,
    sidecar_lines,
)

pytestmark = pytest.mark.kernel

CELLS = (
    "import pandas as pd\nfrom sklearn.datasets import load_iris\niris = load_iris(as_frame=True).frame",
    "iris.describe()",
    "small = iris[iris['sepal length (cm)'] > 7.0].copy()",
    "small['ratio'] = small['sepal length (cm)'] / small['sepal width (cm)']",  # a change in place
    "n = len(small)\nprint(n)",
    "n = len(small)\nprint(n)",  # the same code again: stored once
    "1 / 0",
    "del n",
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compact")
    nb_path = folder / "iris.ipynb"
    nbformat.write(_notebook(*CELLS), str(nb_path))
    result = invoke("run", nb_path, "--allow-errors")
    assert result.exit_code in (0, 1), result.output
    return nb_path


def _notebook(*sources: str) -> nbformat.NotebookNode:
    from tests.fixtures.kernel import make_notebook

    return make_notebook(*sources)


@pytest.fixture
def nb_path(recorded: Path, tmp_path: Path) -> Path:
    (tmp_path / ".nbgov").mkdir()
    target = tmp_path / recorded.name
    target.write_bytes(recorded.read_bytes())
    sidecar_path(target).write_bytes(sidecar_path(recorded).read_bytes())
    return target


def verify(path: Path, code: int) -> str:
    result = invoke("verify", path)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def test_every_line_expands_to_the_sidecar_entry_exactly(recorded: Path) -> None:
    sidecar = sidecar_lines(recorded)
    assert metadata_entries(recorded) == sidecar
    forms = metadata_forms(nbformat.read(str(recorded), as_version=4))
    executions = [f for f in forms if "kind" not in f]
    assert len(executions) == len(CELLS), "every execution of a recorded session has the shorthand"
    by_seq = {f["s"]: f for f in executions}
    rerun = [f for f in executions if "same" in f]
    assert len(rerun) == 1 and "code" not in rerun[0], "repeated code is stored once"
    assert by_seq[rerun[0]["same"]]["code"] == "n = len(small)\nprint(n)"
    assert any(isinstance(r, list) for f in executions for r in f.get("r", [])), "reads refer to their writer"
    error = next(f for f in executions if f.get("code") == "1 / 0")
    assert error["body"]["status"] == "error" and error["body"]["error"]["type"] == "ZeroDivisionError"
    assert verify(recorded, 0).endswith(f"lineage intact ({len(sidecar)} entries: 1 session, "
                                        f"{len(CELLS)} executions; {len(sidecar)} in the sidecar, "
                                        f"{len(sidecar)} in the notebook metadata)")


def test_the_file_holds_one_line_per_entry_and_cells_name_their_latest_by_hash(recorded: Path) -> None:
    text = recorded.read_text()
    nb = nbformat.reads(text, as_version=4)
    lines = nb.metadata["nbgov"]["log"]
    assert all(text.count(json.dumps(line, ensure_ascii=False)) == 1 for line in lines)
    sidecar = {e["hash"]: e for e in sidecar_lines(recorded)}
    for cell in nb.cells:
        reference = cell.metadata["nbgov"]["latest"]
        assert len(reference) == 16
        (entry,) = [e for h, e in sidecar.items() if h.startswith(reference)]
        assert entry["body"]["cell_id"] == cell.id


def test_a_tampered_compact_entry_is_caught(nb_path: Path) -> None:
    nb = nbformat.read(str(nb_path), as_version=4)
    forms = metadata_forms(nb)
    target = next(f for f in forms if "w" in f and isinstance(f["w"][0], list) and f["s"] > 1)
    target["w"][0][2] = "0" * 32  # another value written, same hash claimed
    set_metadata_forms(nb, forms)
    nbformat.write(nb, str(nb_path))
    out = verify(nb_path, 1)
    assert f"notebook metadata: entry {target['s']} (execution" in out and "edited (hash mismatch)" in out


def test_a_compact_entry_edited_with_its_hash_recomputed_differs_from_the_sidecar(nb_path: Path) -> None:
    nb = nbformat.read(str(nb_path), as_version=4)
    meta = notebook_meta.read_lineage(nb)
    assert meta is not None
    entries = meta.entries()
    entries[2] = {**entries[2], "body": {**entries[2]["body"], "duration_s": 99.0}}
    from nbgov.lineage.store import entry_hash

    entries[2]["hash"] = entry_hash(entries[2])
    compactor = Compactor()
    nb.metadata["nbgov"]["log"] = [compactor.compact(e) for e in entries]
    nbformat.write(nb, str(nb_path))
    out = verify(nb_path, 1)
    assert "notebook metadata: entry 2 (execution [2]" in out and "differs from the sidecar" in out


def test_a_cell_naming_an_entry_found_nowhere_is_named(nb_path: Path) -> None:
    nb = nbformat.read(str(nb_path), as_version=4)
    nb.cells[1].metadata["nbgov"] = {"latest": "f" * 16}
    nbformat.write(nb, str(nb_path))
    out = verify(nb_path, 1)
    assert f"cell {nb.cells[1].id} metadata names entry 'ffffffffffffffff'" in out


def test_lines_the_notebook_lacks_are_read_through_the_sidecar_or_named(nb_path: Path) -> None:
    nb = nbformat.read(str(nb_path), as_version=4)
    set_metadata_forms(nb, [f for f in metadata_forms(nb) if form_seq(f) != 3])
    for cell in nb.cells:
        cell.metadata.pop("nbgov")
    nbformat.write(nb, str(nb_path))
    assert "sidecar entry 3 not delivered to this notebook" in verify(nb_path, 0)
    sidecar_path(nb_path).unlink()
    out = verify(nb_path, 1)
    assert "entry 4): entry 4 refers to entry 3, which is not at hand" in out


def test_hostile_lines_are_refused_one_by_one(nb_path: Path) -> None:
    nb = nbformat.read(str(nb_path), as_version=4)
    nb.metadata["nbgov"]["log"] += ["not json", json.dumps({"s": 10**9, "h": "x"}), "[1, 2]",
                                    json.dumps({"s": 50, "h": "y", "p": "z", "sid": "s", "n": 1, "at": "t",
                                                "same": 49})]
    nbformat.write(nb, str(nb_path))
    out = verify(nb_path, 1)
    assert "not a compact entry" in out and "refers to entry" in out
    assert "Traceback" not in out


def _old_form(nb: nbformat.NotebookNode, entries: list[dict[str, Any]]) -> None:
    """The notebook metadata as nbgov wrote it before the compact form (nbgov.notebook/1)."""
    nb.metadata["nbgov"] = {
        "schema": "nbgov.notebook/1", "sidecar": nb.metadata["nbgov"]["sidecar"],
        "sessions": [e for e in entries if e["kind"] == "session"],
        "log": [e for e in entries if e["kind"] == "execution"], "stale": {},
    }
    latest = {e["body"]["cell_id"]: e for e in entries if e["kind"] == "execution"}
    for cell in nb.cells:
        cell.metadata["nbgov"] = {"schema": "nbgov.cell/1", "latest": latest[cell.id]}


def test_a_notebook_in_the_old_form_still_verifies_and_is_rewritten_compact(nb_path: Path) -> None:
    nb = nbformat.read(str(nb_path), as_version=4)
    entries = sidecar_lines(nb_path)
    _old_form(nb, entries)
    nbformat.write(nb, str(nb_path))
    verify(nb_path, 0)
    assert invoke("show", nb_path, "--json").exit_code == 0
    notebook_meta.merge_entries(nb, entries, ".nbgov/iris.jsonl")
    assert nb.metadata["nbgov"]["schema"] == "nbgov.notebook/2"
    nbformat.write(nb, str(nb_path))
    assert metadata_entries(nb_path) == entries
    verify(nb_path, 0)


def test_a_tampered_old_form_entry_is_still_caught(nb_path: Path) -> None:
    nb = nbformat.read(str(nb_path), as_version=4)
    entries = sidecar_lines(nb_path)
    _old_form(nb, entries)
    nb.metadata["nbgov"]["log"][1]["body"]["code"] = "small = iris"
    nbformat.write(nb, str(nb_path))
    assert "notebook metadata: entry 2 (execution [2]" in verify(nb_path, 1)


def test_expanding_needs_only_the_entries_before_it(recorded: Path) -> None:
    """The compactor is fed in order and each line expands from earlier entries alone:
    what a frontend that receives lines one at a time relies on."""
    entries = sidecar_lines(recorded)
    compactor = Compactor()
    lookup = Lookup()
    for entry in entries:
        line = compactor.compact(entry)
        assert expand(line, lookup) == entry
        lookup.add(entry)


@pytest.mark.parametrize("form", [
    {"s": 3, "h": "ab", "code": "print('ünïcode ✓ \\u2028 \"q\" \\\\ \\t')", "d": 0.000148, "w": [["x", "int", "h", "4"]]},
    {"kind": "execution", "body": {"b": [1, 2.5, None, True, False, {"z": {}, "a": []}]}, "seq": 0},
    {"emoji": "🧪", "control": "\x00\x1f\x7f", "big": 2**70, "neg": -0.0, "small": 1e-300},
])
def test_a_compact_line_is_what_json_dumps_writes(form: dict[str, Any]) -> None:
    """The notebook's lines come from the sidecar's compiled encoder: the same text as
    json.dumps with the options the format names, NaN refused as there."""
    assert compact.dumps(form) == json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                             allow_nan=False)
    with pytest.raises(ValueError):
        compact.dumps({**form, "nan": float("nan")})
