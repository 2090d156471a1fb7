"""The lineage log as it travels inside the .ipynb file (notebook and cell metadata).

The sidecar is the durable, append-only log; the notebook metadata carries the same
entries so a notebook shared on its own can still be replayed and checked, plus the
stale flags the one rule (``stale``) gave when it was last written, which the sidebar
shows when no kernel is there to ask. This module is the one place (on the Python side)
that reads and writes that metadata, through nbformat, and it refuses malformed
metadata with a clear LineageError instead of guessing.

Two forms are read. ``nbgov.notebook/2`` (written now): ``log`` is a list of compact
lines, one per entry (``compact``), and a cell's metadata names its latest entry by
hash. ``nbgov.notebook/1`` (older notebooks): whole entries in ``sessions`` and
``log``, and a copy of the latest entry in each cell.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from nbgov.errors import LineageError
from nbgov.lineage.compact import CompactError, Compactor, Lookup, expand
from nbgov.lineage.record import LogEntry
from nbgov.lineage.stale import stale_flags
from nbgov.lineage.strict_json import non_finite
from nbgov.lineage.user_files import UserFileError, read_regular, write_replacing

NOTEBOOK_SCHEMA = "nbgov.notebook/2"
OLD_NOTEBOOK_SCHEMA = "nbgov.notebook/1"
OLD_CELL_SCHEMA = "nbgov.cell/1"
REFERENCE_CHARS = 16  # a cell names its latest entry by this many hex digits of the entry's hash
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
    unreadable: list[str] = field(default_factory=list)  # compact lines that could not be expanded

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
        raw = read_regular(path, "a .ipynb notebook")  # a FIFO would block forever
    except UserFileError as exc:
        raise LineageError(str(exc)) from None
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for junk input
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LineageError(f"{path}: not a Jupyter notebook ({reason})") from None
    if not isinstance(nb, nbformat.NotebookNode) or "cells" not in nb:
        raise LineageError(f"{path}: not a Jupyter notebook (no cells)")
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write a notebook back as nbformat 4, never through a symlink (UserFileError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb)
    write_replacing(path, (text if text.endswith("\n") else text + "\n").encode("utf-8"))


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
    if non_finite(entry):  # nbformat reads NaN and Infinity; the log never holds them
        raise LineageError(f"{where}: entry holds NaN or an infinity, which is not a JSON number "
                           "(forged or corrupted)")
    return dict(entry)


def read_lineage(nb: nbformat.NotebookNode, fallback: Lookup | None = None) -> NotebookLineage | None:
    """The notebook's lineage metadata, None when it has none; LineageError if malformed.

    Compact lines refer to earlier entries; one the notebook lacks is looked up in
    ``fallback`` (the sidecar's entries) when given. A line that still cannot be expanded
    is left out and named in ``unreadable``."""
    raw = nb.get("metadata", {}).get(META_KEY)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise LineageError("notebook metadata 'nbgov' is not an object")
    schema = raw.get("schema")
    if schema not in (NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA):
        raise LineageError(
            f"notebook metadata 'nbgov' has schema {schema!r}; expected {NOTEBOOK_SCHEMA!r}"
        )
    sidecar = raw.get("sidecar")
    found = NotebookLineage(sidecar=sidecar if isinstance(sidecar, str) else None, stale=_stale_map(raw.get("stale")))
    if schema == OLD_NOTEBOOK_SCHEMA:
        sessions, log = raw.get("sessions", []), raw.get("log", [])
        if not isinstance(sessions, list) or not isinstance(log, list):
            raise LineageError("notebook metadata 'nbgov': 'sessions' and 'log' must be lists")
        found.sessions = [_check_entry(e, f"metadata sessions[{i}]") for i, e in enumerate(sessions)]
        found.log = [_check_entry(e, f"metadata log[{i}]") for i, e in enumerate(log)]
        return found
    lines = raw.get("log", [])
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise LineageError("notebook metadata 'nbgov': 'log' must be a list of compact entry lines")
    for entry in _expand_lines(lines, fallback, found.unreadable):
        (found.sessions if entry["kind"] == "session" else found.log).append(entry)
    return found


def _expand_lines(lines: list[str], fallback: Lookup | None, unreadable: list[str]) -> list[dict[str, Any]]:
    """Compact lines expanded in seq order (each may refer to the ones before it)."""
    forms: list[tuple[int, int, str]] = []
    for index, line in enumerate(lines):
        try:
            form = json.loads(line)
            seq = form.get("seq" if "kind" in form else "s")  # a whole entry, or a compact one
        except (ValueError, AttributeError, RecursionError):
            seq = None
        if type(seq) is not int:
            unreadable.append(f"metadata log[{index}]: not a compact entry (no integer seq)")
            continue
        forms.append((seq, index, line))
    lookup = Lookup(fallback)
    entries: list[dict[str, Any]] = []
    for seq, index, line in sorted(forms):
        try:
            entry = _check_entry(expand(line, lookup), f"metadata log[{index}]")
        except (CompactError, LineageError) as exc:
            unreadable.append(f"metadata log[{index}] (entry {seq}): {exc}")
            continue
        lookup.add(entry)
        entries.append(entry)
    return entries


def _stale_map(raw: Any) -> dict[str, list[str]]:
    """Saved stale flags: only lists of strings by record id are kept (display only)."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(k): [r for r in v if isinstance(r, str)] for k, v in raw.items() if isinstance(v, list)
    }


def cell_latest(nb: nbformat.NotebookNode, meta: NotebookLineage | None = None,
                elsewhere: Iterable[Mapping[str, Any]] = ()) -> dict[str, dict[str, Any]]:
    """cell id -> the execution entry that cell's metadata names as its latest.

    A compact cell names the entry by the start of its hash, looked up in the notebook's log, then in
    ``elsewhere`` (the sidecar's entries); naming an entry found nowhere raises
    LineageError. An old cell carries the entry itself."""
    if meta is None:
        try:
            meta = read_lineage(nb)
        except LineageError:
            meta = None  # the notebook metadata's own error is reported by whoever read it
    by_hash = {str(e.get("hash")): dict(e) for e in elsewhere}
    by_hash.update({str(e["hash"]): e for e in meta.entries()} if meta is not None else {})
    by_prefix: dict[str, list[dict[str, Any]]] = {}
    for digest, entry in by_hash.items():
        by_prefix.setdefault(digest[:REFERENCE_CHARS], []).append(entry)
    found: dict[str, dict[str, Any]] = {}
    for index, cell in enumerate(nb.cells):
        cell_meta = cell.get("metadata", {}).get(META_KEY)
        if not isinstance(cell_meta, Mapping):
            continue
        latest = cell_meta.get("latest")
        cell_id = str(cell.get("id") or f"#{index}")
        if cell_meta.get("schema") == OLD_CELL_SCHEMA and latest is not None:
            found[cell_id] = _check_entry(latest, f"cell {cell_id} metadata")
        elif "schema" in cell_meta or set(cell_meta) != {"latest"} or not isinstance(latest, str):
            continue  # someone else's key
        elif len(latest) >= REFERENCE_CHARS and latest[:REFERENCE_CHARS] in by_prefix:
            named = by_prefix[latest[:REFERENCE_CHARS]]
            if len(named) > 1 or not str(named[0]["hash"]).startswith(latest):
                raise LineageError(f"cell {cell_id} metadata names entry {latest[:40]!r}, which "
                                   f"{'is ambiguous' if len(named) > 1 else 'is not the entry of that hash'}")
            found[cell_id] = named[0]
        else:
            raise LineageError(f"cell {cell_id} metadata names entry {latest[:40]!r}, "
                               "which is in neither the notebook's log nor the sidecar")
    return found


def merge_entries(
    nb: nbformat.NotebookNode, entries: Iterable[Mapping[str, Any] | LogEntry], sidecar: str
) -> int:
    """Merge sidecar entries into the notebook metadata (dedupe by hash); returns how many were new.

    The metadata is (re)written in the compact form; cell metadata names the latest
    execution entry of each cell whose id a record carries; the stale flags of the merged
    log are saved with it.
    """
    current = read_lineage(nb) or NotebookLineage(sidecar=sidecar)
    known = {e["hash"] for e in current.entries()}
    merged = current.entries()
    added = 0
    for item in entries:
        raw = item.raw if isinstance(item, LogEntry) else item
        entry = _check_entry(raw, f"sidecar entry {raw.get('seq', '?')}")
        if entry["hash"] in known:
            continue
        known.add(entry["hash"])
        merged.append(entry)
        added += 1
    merged.sort(key=lambda e: int(e["seq"]))
    compactor = Compactor()
    nb.metadata[META_KEY] = {
        "schema": NOTEBOOK_SCHEMA,
        "sidecar": sidecar,
        "log": [compactor.compact(e) for e in merged],
        "stale": stale_flags(merged),
    }
    latest: dict[str, str] = {}
    for entry in merged:
        cell_id = entry["body"].get("cell_id") if entry["kind"] == "execution" else None
        if cell_id:
            latest[str(cell_id)] = str(entry["hash"])
    for cell in nb.cells:
        newest = latest.get(str(cell.get("id")))
        if newest is not None:
            cell.metadata[META_KEY] = cell_reference(newest)
    return added


def cell_reference(entry_hash: str) -> dict[str, str]:
    """A cell's metadata: its latest entry, named by the first 16 hex digits of its hash
    (as git names commits; where the old form held the entry itself, with a ``schema``)."""
    return {"latest": entry_hash[:REFERENCE_CHARS]}
