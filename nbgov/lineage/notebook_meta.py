"""The lineage log as it travels inside the .ipynb file (notebook and cell metadata).

The sidecar is the durable, append-only log; the notebook metadata carries the same
entries so a notebook shared on its own can still be replayed and checked, plus the
stale flags the one rule (``stale``) gave when it was last written, which the sidebar
shows when no kernel is there to ask. This module is the one place (on the Python side)
that reads and writes that metadata, through nbformat, and it refuses malformed
metadata with a clear LineageError instead of guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from nbgov.errors import LineageError
from nbgov.lineage.record import LogEntry
from nbgov.lineage.stale import stale_flags

NOTEBOOK_SCHEMA = "nbgov.notebook/1"
CELL_SCHEMA = "nbgov.cell/1"
META_KEY = "nbgov"
ENTRY_KINDS = ("session", "execution")
_ENTRY_KEYS = ("seq", "prev", "hash", "kind", "body")


@dataclass
class NotebookLineage:
    """The lineage found in one notebook's metadata."""

    sidecar: str | None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    stale: dict[str, list[str]] = field(default_factory=dict)  # as judged when last written

    def entries(self) -> list[dict[str, Any]]:
        """Session and execution entries together, in log (seq) order."""
        return sorted([*self.sessions, *self.log], key=lambda e: int(e["seq"]))


def sidecar_relpath(notebook_path: Path) -> str:
    """Where the sidecar lives, relative to the notebook's folder (as stored in metadata)."""
    return f".nbgov/{notebook_path.stem}.jsonl"


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook file, or raise LineageError saying why it is not one."""
    if not path.exists():
        raise LineageError(f"{path}: no such file (expected a .ipynb notebook)")
    if path.is_dir():
        raise LineageError(f"{path}: is a folder (expected a .ipynb notebook)")
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for junk input
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LineageError(f"{path}: not a Jupyter notebook ({reason})") from None
    if not isinstance(nb, nbformat.NotebookNode) or "cells" not in nb:
        raise LineageError(f"{path}: not a Jupyter notebook (no cells)")
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write a notebook back as nbformat 4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def _check_entry(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise LineageError(f"{where}: expected an entry object, got {type(entry).__name__}")
    missing = [k for k in _ENTRY_KEYS if k not in entry]
    if missing:
        raise LineageError(f"{where}: entry lacks {', '.join(missing)}")
    if entry["kind"] not in ENTRY_KINDS:
        raise LineageError(f"{where}: unknown entry kind {entry['kind']!r}")
    if not isinstance(entry["seq"], int) or not isinstance(entry["body"], Mapping):
        raise LineageError(f"{where}: entry needs an integer seq and an object body")
    return dict(entry)


def read_lineage(nb: nbformat.NotebookNode) -> NotebookLineage | None:
    """The notebook's lineage metadata, None when it has none; LineageError if malformed."""
    raw = nb.get("metadata", {}).get(META_KEY)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise LineageError("notebook metadata 'nbgov' is not an object")
    schema = raw.get("schema")
    if schema != NOTEBOOK_SCHEMA:
        raise LineageError(
            f"notebook metadata 'nbgov' has schema {schema!r}; expected {NOTEBOOK_SCHEMA!r}"
        )
    sessions = raw.get("sessions", [])
    log = raw.get("log", [])
    if not isinstance(sessions, list) or not isinstance(log, list):
        raise LineageError("notebook metadata 'nbgov': 'sessions' and 'log' must be lists")
    sidecar = raw.get("sidecar")
    return NotebookLineage(
        sidecar=sidecar if isinstance(sidecar, str) else None,
        sessions=[_check_entry(e, f"metadata sessions[{i}]") for i, e in enumerate(sessions)],
        log=[_check_entry(e, f"metadata log[{i}]") for i, e in enumerate(log)],
        stale=_stale_map(raw.get("stale")),
    )


def _stale_map(raw: Any) -> dict[str, list[str]]:
    """Saved stale flags: only lists of strings by record id are kept (display only)."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(k): [r for r in v if isinstance(r, str)] for k, v in raw.items() if isinstance(v, list)
    }


def cell_latest(nb: nbformat.NotebookNode) -> dict[str, dict[str, Any]]:
    """cell id -> the execution entry stored in that cell's metadata (well-formed ones only)."""
    found: dict[str, dict[str, Any]] = {}
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get(META_KEY)
        if not isinstance(meta, Mapping) or meta.get("schema") != CELL_SCHEMA:
            continue
        latest = meta.get("latest")
        if latest is None:
            continue
        cell_id = cell.get("id") or f"#{index}"
        found[str(cell_id)] = _check_entry(latest, f"cell {cell_id} metadata")
    return found


def merge_entries(
    nb: nbformat.NotebookNode, entries: Iterable[Mapping[str, Any] | LogEntry], sidecar: str
) -> int:
    """Merge sidecar entries into the notebook metadata (dedupe by hash); returns how many were new.

    Cell metadata gets the latest execution entry of each cell whose id a record carries;
    the stale flags of the merged log are saved with it.
    """
    current = read_lineage(nb) or NotebookLineage(sidecar=sidecar)
    known = {e["hash"] for e in current.entries()}
    added = 0
    for item in entries:
        raw = item.raw if isinstance(item, LogEntry) else item
        entry = _check_entry(raw, f"sidecar entry {raw.get('seq', '?')}")
        if entry["hash"] in known:
            continue
        known.add(entry["hash"])
        (current.sessions if entry["kind"] == "session" else current.log).append(entry)
        added += 1
    current.sessions.sort(key=lambda e: int(e["seq"]))
    current.log.sort(key=lambda e: int(e["seq"]))
    nb.metadata[META_KEY] = {
        "schema": NOTEBOOK_SCHEMA,
        "sidecar": sidecar,
        "sessions": current.sessions,
        "log": current.log,
        "stale": stale_flags([*current.sessions, *current.log]),
    }
    latest: dict[str, dict[str, Any]] = {}
    for entry in current.log:
        cell_id = entry["body"].get("cell_id")
        if cell_id:
            latest[str(cell_id)] = entry
    for cell in nb.cells:
        newest = latest.get(str(cell.get("id")))
        if newest is not None:
            cell.metadata[META_KEY] = {"schema": CELL_SCHEMA, "latest": newest}
    return added
