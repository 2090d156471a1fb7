"""Find a notebook's lineage: the notebook metadata, the sidecar, or both."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from nbgov.errors import LineageError, NbgovError
from nbgov.lineage import notebook_meta


def sidecar_file(notebook: Path) -> Path:
    """`<notebook dir>/.nbgov/<stem>.jsonl`, as the recorder writes it."""
    from nbgov.lineage.store import sidecar_path

    return Path(sidecar_path(notebook))


def read_sidecar(path: Path) -> list[dict[str, Any]]:
    """All entries of a sidecar; LineageError (one line) when it cannot be read."""
    from nbgov.lineage.store import SidecarStore

    try:
        entries = SidecarStore(path).entries()
    except NbgovError:
        raise
    except Exception as exc:  # a corrupted file surfaces as JSON/key/type errors
        raise LineageError(f"{path}: corrupted sidecar ({type(exc).__name__}: {exc})") from None
    return [dict(e) for e in entries]


@dataclass
class LineageLog:
    """Everything recorded about one notebook, from wherever it was found."""

    notebook: Path
    nb: nbformat.NotebookNode
    sidecar: Path
    meta: notebook_meta.NotebookLineage | None
    sidecar_entries: list[dict[str, Any]] | None
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def source(self) -> str:
        parts = []
        if self.meta is not None:
            parts.append("notebook metadata")
        if self.sidecar_entries is not None:
            parts.append("sidecar")
        return " + ".join(parts)

    def executions(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] == "execution"]

    def sessions(self) -> dict[str, dict[str, Any]]:
        """session uuid -> session entry."""
        return {str(e["body"].get("session")): e for e in self.entries if e["kind"] == "session"}


def merged_entries(*sources: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Union of entry lists by seq, the first source winning on a clash, in seq order."""
    by_seq: dict[int, dict[str, Any]] = {}
    for entries in sources:
        for entry in entries or []:
            by_seq.setdefault(int(entry["seq"]), entry)
    return [by_seq[s] for s in sorted(by_seq)]


def load_log(notebook: Path, require: bool = True) -> LineageLog:
    """Read a notebook and its lineage; with require, LineageError if there is none."""
    nb = notebook_meta.read_notebook(notebook)
    meta = notebook_meta.read_lineage(nb)
    sidecar = sidecar_file(notebook)
    if meta is not None and meta.sidecar:
        named = notebook.parent / meta.sidecar
        if named.exists():
            sidecar = named
    sidecar_entries = read_sidecar(sidecar) if sidecar.exists() else None
    log = LineageLog(notebook, nb, sidecar, meta, sidecar_entries)
    log.entries = merged_entries(meta.entries() if meta else None, sidecar_entries)
    if require and not log.executions():
        raise LineageError(
            f"{notebook}: no lineage recorded (no 'nbgov' metadata and no executions in "
            f"{sidecar.parent.name}/{sidecar.name}); run it with `nbgov run` first"
        )
    return log
