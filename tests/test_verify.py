"""`nbgov verify` on a really recorded notebook, then tampered with in every way we name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbgov.lineage.store import entry_hash, sidecar_path
from tests.fixtures.replay import (
    edit_metadata_entry,
    form_seq,
    invoke,
    metadata_forms,
    record,
    set_metadata_forms,
    sidecar_lines,
    write_sidecar_lines,
)

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine recorded notebook (session + 4 executions); tests copy it."""
    folder = tmp_path_factory.mktemp("verify")
    return record(folder / "audit.ipynb", "a = 1", "b = a + 1", "c = b * 3", "d = c - a")


@pytest.fixture
def nb_path(recorded: Path, tmp_path: Path) -> Path:
    (tmp_path / ".nbgov").mkdir()
    target = tmp_path / "audit.ipynb"
    target.write_bytes(recorded.read_bytes())
    sidecar_path(target).write_bytes(sidecar_path(recorded).read_bytes())
    return target


@contextmanager
def tampered_sidecar(path: Path) -> Iterator[list[dict[str, Any]]]:
    """The sidecar's entries, to edit in place; written back as canonical lines."""
    entries = sidecar_lines(path)
    yield entries
    write_sidecar_lines(path, entries)


@contextmanager
def tampered_notebook(path: Path) -> Iterator[nbformat.NotebookNode]:
    """The notebook, to edit in place; written back with nbformat."""
    nb = nbformat.read(str(path), as_version=4)
    yield nb
    nbformat.write(nb, str(path))


def verify_output(path: Path, code: int) -> str:
    result = invoke("verify", path)
    assert result.exit_code == code, result.output
    return result.output


def named(out: str, *fragments: str) -> bool:
    """Does one reported line contain every fragment?"""
    lines = [" ".join(line.split()) for line in out.splitlines()]
    return any(all(f in line for f in fragments) for line in lines)


def test_untouched_lineage_verifies(nb_path: Path) -> None:
    out = verify_output(nb_path, 0)
    assert named(out, "lineage intact (5 entries: 1 session, 4 executions; 5 in the sidecar, "
                      "5 in the notebook metadata)")


def test_edited_code_in_the_sidecar_is_named(nb_path: Path) -> None:
    with tampered_sidecar(nb_path) as entries:
        entries[2]["body"]["code"] = "b = a + 1000"
    out = verify_output(nb_path, 1)
    assert named(out, "sidecar: entry 2", "edited")
    assert named(out, "notebook metadata: entry 2 (execution [2] of cell", "differs from the sidecar")


def test_edited_hash_is_named(nb_path: Path) -> None:
    with tampered_sidecar(nb_path) as entries:
        entries[3]["hash"] = "f" * 32
    out = verify_output(nb_path, 1)
    assert named(out, "sidecar: entry 3", "edited")
    assert named(out, "sidecar: entry 4", "entry 3")


def test_deleted_record_is_named(nb_path: Path) -> None:
    with tampered_sidecar(nb_path) as entries:
        del entries[2]
    out = verify_output(nb_path, 1)
    assert named(out, "sidecar: entry 2", "deleted")


def test_reordered_records_are_named(nb_path: Path) -> None:
    with tampered_sidecar(nb_path) as entries:
        entries[2], entries[3] = entries[3], entries[2]
    out = verify_output(nb_path, 1)
    assert named(out, "sidecar: entry 2", "entry 3", "reordered")


def test_inserted_record_is_named(nb_path: Path) -> None:
    with tampered_sidecar(nb_path) as entries:
        forged = dict(entries[2], body=dict(entries[2]["body"], code="b = 'forged'"))
        forged["hash"] = entry_hash(forged)
        entries.insert(3, forged)
    out = verify_output(nb_path, 1)
    assert named(out, "sidecar: entry 2", "inserted")


def test_a_consistently_rechained_forgery_is_caught_by_the_notebook_metadata(nb_path: Path) -> None:
    with tampered_sidecar(nb_path) as entries:
        entries[3]["body"]["code"] = "c = b * 300"
        prev = entries[2]["hash"]
        for entry in entries[3:]:
            entry["prev"] = prev
            entry["hash"] = entry_hash(entry)
            prev = entry["hash"]
    out = verify_output(nb_path, 1)
    assert "sidecar:" not in out  # the chain alone looks fine ...
    assert named(out, "notebook metadata: entry 3 (execution [3] of cell", "differs")  # ... not the notebook


def test_edited_notebook_metadata_is_named(nb_path: Path) -> None:
    with tampered_notebook(nb_path) as nb:
        edit_metadata_entry(nb, 2, code="b = 2")
    out = verify_output(nb_path, 1)
    assert named(out, "notebook metadata: entry 2 (execution [2]", "edited")


def test_reordered_or_thinned_notebook_metadata_is_not_delivered_not_tampering(nb_path: Path) -> None:
    """The sidecar is the log; the metadata a copy delivered to the notebook. Entries it
    lacks (saved before they ran, or run by another kernel) are said, not alarmed."""
    with tampered_notebook(nb_path) as nb:
        forms = metadata_forms(nb)
        forms[1], forms[2] = forms[2], forms[1]
        set_metadata_forms(nb, [f for f in forms if form_seq(f) != 3])  # entry 4 refers to it: the sidecar has it
    out = verify_output(nb_path, 0)
    assert named(out, "sidecar entry 3 not delivered to this notebook")
    assert "reordered" not in out and "deleted" not in out


def test_cell_metadata_moved_to_another_cell_is_named(nb_path: Path) -> None:
    with tampered_notebook(nb_path) as nb:
        nb.cells[0].metadata["nbgov"] = nb.cells[1].metadata["nbgov"]
    out = verify_output(nb_path, 1)
    assert named(out, f"cell {nb.cells[0].id} metadata: holds entry 2", "another cell")


def test_newer_sidecar_entries_are_a_notice_not_tampering(nb_path: Path) -> None:
    with tampered_notebook(nb_path) as nb:
        set_metadata_forms(nb, [f for f in metadata_forms(nb) if form_seq(f) <= 2])
        nb.cells[2].metadata.pop("nbgov")
        nb.cells[3].metadata.pop("nbgov")
    out = verify_output(nb_path, 0)
    assert named(out, "sidecar entries 3-4 not delivered to this notebook")


def test_sidecar_alone_and_metadata_alone_are_checked(nb_path: Path) -> None:
    with tampered_notebook(nb_path) as nb:
        saved = nb.metadata.pop("nbgov")
        for cell in nb.cells:
            cell.metadata.pop("nbgov")
    assert named(verify_output(nb_path, 0), "checked the sidecar only")
    nb.metadata["nbgov"] = saved
    edit_metadata_entry(nb, 1, code="a = 100")
    nbformat.write(nb, str(nb_path))
    sidecar_path(nb_path).unlink()
    out = verify_output(nb_path, 1)
    assert named(out, "checked the metadata's own chain only")
    assert named(out, "notebook metadata: entry 1", "edited")


def _rechained(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with every link and hash recomputed, as a forger would."""
    prev = "0" * 32
    for entry in entries:
        entry["prev"] = prev
        entry["hash"] = prev = entry_hash(entry)
    return entries


@pytest.mark.parametrize(("counts", "going_back"), [
    ((1, 2, 1, 4), "entry 3 has execution count 1 after entry 2's 2"),
    ((1, 2, 2, 3), None),  # a cell run without history keeps the count: not going back
    ((1, 2, 3, 4), None),
])
def test_execution_counts_going_back_in_a_session_are_noticed(
        nb_path: Path, counts: tuple[int, ...], going_back: str | None) -> None:
    """A hand-made log whose chain is valid but whose counts go back within one kernel
    session verifies (only signing vouches for content) with a notice naming the entry."""
    with tampered_notebook(nb_path) as nb:  # the sidecar alone: nothing to compare it with
        nb.metadata.pop("nbgov")
        for cell in nb.cells:
            cell.metadata.pop("nbgov", None)
    with tampered_sidecar(nb_path) as entries:
        executions = [e for e in entries if e["kind"] == "execution"]
        for entry, count in zip(executions, counts, strict=True):
            entry["body"]["execution_count"] = count
        _rechained(entries)
    out = verify_output(nb_path, 0)
    noticed = named(out, "execution counts go back within a kernel session")
    assert noticed == (going_back is not None), out
    if going_back is not None:
        assert named(out, going_back, "the log was edited, or code reset the kernel's counter"), out
