"""`nbgov verify`: is the recorded lineage the untouched append-only log?

Two checks: the sidecar's own hash chain (nbgov.lineage.store.verify_chain), and the
notebook metadata against the sidecar — the same entries with the same hashes. Entries
newer than the metadata are only a notice (the notebook was not saved since); entries
missing inside the metadata's range, or differing, are tampering.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbgov.errors import LineageError
from nbgov.lineage import notebook_meta
from nbgov.lineage.store import entry_hash, read_entries, verify_chain
from nbgov.replay.source import sidecar_file


@dataclass
class VerifyResult:
    """Problems (tampering or inconsistency) and notices (benign facts) found."""

    notebook: Path
    sidecar: Path | None
    sidecar_entries: int = 0
    metadata_entries: int = 0
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


def describe(entry: Mapping[str, Any]) -> str:
    """'entry 4 (execution [3] of cell ab12)' — enough for a reviewer to find it."""
    seq = entry.get("seq", "?")
    body = entry.get("body")
    if not isinstance(body, Mapping):
        return f"entry {seq}"
    if entry.get("kind") == "session":
        return f"entry {seq} (session {str(body.get('session', '?'))[:8]})"
    cell = body.get("cell_id")
    where = f" of cell {cell}" if cell else ""
    return f"entry {seq} (execution [{body.get('execution_count', '?')}]{where})"


def _compare_entry(entry: Mapping[str, Any], where: str, sidecar: Mapping[int, Mapping[str, Any]],
                   problems: list[str]) -> None:
    name = describe(entry)
    if entry_hash(entry) != entry.get("hash"):
        problems.append(f"{where}: {name} edited (hash mismatch)")
    twin = sidecar.get(int(entry["seq"]))
    if twin is None:
        problems.append(f"{where}: {name} is not in the sidecar "
                        "(deleted from the sidecar or inserted in the notebook)")
    elif dict(twin) != dict(entry):  # same hash field is not enough: either side may be edited
        problems.append(f"{where}: {name} differs from the sidecar's entry {twin.get('seq')} (edited)")


def _check_order(entries: list[dict[str, Any]], where: str, problems: list[str]) -> None:
    for before, after in zip(entries, entries[1:]):
        if int(after["seq"]) <= int(before["seq"]):
            problems.append(f"{where}: {describe(after)} comes after entry {before['seq']} (reordered)")


def check_metadata(meta: notebook_meta.NotebookLineage, cells: dict[str, dict[str, Any]],
                   sidecar_entries: list[dict[str, Any]], result: VerifyResult) -> None:
    """Notebook and cell metadata against the sidecar entries."""
    by_seq = {int(e["seq"]): e for e in sidecar_entries if isinstance(e.get("seq"), int)}
    _check_order(meta.sessions, "notebook metadata sessions", result.problems)
    _check_order(meta.log, "notebook metadata log", result.problems)
    for entry in meta.sessions:
        if entry["kind"] != "session":
            result.problems.append(f"notebook metadata: {describe(entry)} listed as a session")
    for entry in meta.log:
        if entry["kind"] != "execution":
            result.problems.append(f"notebook metadata: {describe(entry)} listed as an execution")
    entries = meta.entries()
    for entry in entries:
        _compare_entry(entry, "notebook metadata", by_seq, result.problems)
    present = {int(e["seq"]) for e in entries}
    newest = max(present, default=-1)
    for seq, entry in sorted(by_seq.items()):
        if seq <= newest and seq not in present:
            result.problems.append(f"notebook metadata: {describe(entry)} missing (deleted)")
    newer = [s for s in by_seq if s > newest]
    if newer:
        result.notices.append(
            f"the sidecar has {len(newer)} entries newer than the notebook metadata "
            "(the notebook was not saved after they ran)"
        )
    for cell_id, entry in cells.items():
        where = f"cell {cell_id} metadata"
        _compare_entry(entry, where, by_seq, result.problems)
        recorded_cell = entry["body"].get("cell_id")
        if recorded_cell and str(recorded_cell) != cell_id:
            result.problems.append(f"{where}: holds {describe(entry)} of another cell (moved)")


def verify(notebook: Path) -> VerifyResult:
    """Check one notebook's lineage; LineageError when there is nothing to check."""
    nb = notebook_meta.read_notebook(notebook)
    meta = notebook_meta.read_lineage(nb)
    cells = notebook_meta.cell_latest(nb)
    sidecar = sidecar_file(notebook)
    if meta is not None and meta.sidecar and (notebook.parent / meta.sidecar).exists():
        sidecar = notebook.parent / meta.sidecar
    if not sidecar.exists():
        if meta is None:
            raise LineageError(f"{notebook}: no lineage recorded (no 'nbgov' metadata, no sidecar)")
        result = VerifyResult(notebook, None, metadata_entries=len(meta.entries()))
        result.notices.append(f"no sidecar at {sidecar}: checked the metadata's own chain only")
        result.problems += [f"notebook metadata: {p.message}" for p in verify_chain(meta.entries())]
        return result
    entries, unreadable = read_entries(sidecar)
    if unreadable:
        raise LineageError(f"{sidecar}: corrupted sidecar ({unreadable[0].message})")
    result = VerifyResult(notebook, sidecar, sidecar_entries=len(entries))
    result.problems += [f"sidecar: {p.message}" for p in verify_chain(entries)]
    if meta is None:
        result.notices.append("the notebook has no 'nbgov' metadata: checked the sidecar only")
    else:
        result.metadata_entries = len(meta.entries())
        check_metadata(meta, cells, entries, result)
    return result
