"""Find a notebook's lineage: the notebook metadata, the sidecar, or both.

The notebook's metadata names its sidecar, but the notebook may come from someone
else: a name is only followed when it stays inside the notebook's own ``.nbgov/``
folder (relative, no ``..``), and the file is read without following symlinks.
Every reader (verify, show, replay, export, graph) finds the sidecar here, so they
agree on which log they read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat

from nbgov.errors import LineageError
from nbgov.lineage import notebook_meta
from nbgov.lineage.record import ExecutionRecord, RecordError, SessionInfo
from nbgov.lineage.store import SidecarRead, read_log, sidecar_path

SIDECAR_FOLDER = ".nbgov"


def sidecar_file(notebook: Path) -> Path:
    """`<notebook dir>/.nbgov/<stem>.jsonl`, as the recorder writes it."""
    return Path(sidecar_path(notebook))


@dataclass(frozen=True)
class SidecarChoice:
    """Which sidecar belongs to a notebook, and what was wrong with the metadata's claim."""

    path: Path
    problems: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()


def named_sidecar_problem(named: str) -> str | None:
    """Why the metadata's ``sidecar`` value is not a file in the notebook's own .nbgov/."""
    pure = PurePosixPath(named)
    if "\\" in named or "\x00" in named or pure.is_absolute() or named.startswith("~"):
        return "is not a relative path"
    if len(pure.parts) != 2 or pure.parts[0] != SIDECAR_FOLDER or pure.parts[1] in ("..", "."):
        return f"is not a file directly inside the notebook's own {SIDECAR_FOLDER}/ folder"
    if not pure.name.endswith(".jsonl"):
        return "is not a .jsonl file"
    return None


def choose_sidecar(notebook: Path, meta: notebook_meta.NotebookLineage | None) -> SidecarChoice:
    """The notebook's own sidecar, or the one its metadata names when that one is safe.

    A named sidecar other than the notebook's own is used only when the notebook's own
    does not exist (the notebook was renamed); when both exist the metadata may be
    pointing away from the real log, which is reported.
    """
    own = sidecar_file(notebook)
    if meta is None or not meta.sidecar:
        return SidecarChoice(own)
    named = meta.sidecar
    shown = repr(named[:200])
    wrong = named_sidecar_problem(named)
    if wrong is not None:
        return SidecarChoice(own, problems=(f"notebook metadata: sidecar {shown} {wrong}; ignored it",))
    candidate = notebook.parent / named
    if candidate == own:
        return SidecarChoice(own)
    if own.exists() or own.is_symlink():
        return SidecarChoice(own, problems=(
            f"notebook metadata names sidecar {shown}, but the notebook's own "
            f"{SIDECAR_FOLDER}/{own.name} exists: checked that one (the metadata may point away "
            "from the real log)",))
    if candidate.exists() or candidate.is_symlink():
        return SidecarChoice(candidate, notices=(
            f"the metadata names sidecar {shown} (the notebook was renamed or copied since it ran)",))
    return SidecarChoice(own)


def read_sidecar(path: Path) -> list[dict[str, Any]]:
    """All entries of a sidecar; LineageError (one line) when it cannot be read."""
    read = read_log(path)
    if read.problems:
        raise LineageError(f"{path}: corrupted sidecar ({read.problems[0].message})")
    return read.entries


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

    def random_seed_sessions(self) -> set[str]:
        """Sessions recorded as running with a random PYTHONHASHSEED (``hash_seed: null``);
        older logs, which do not say, are not among them."""
        return {str(e["body"].get("session")) for e in self.entries
                if e["kind"] == "session" and "hash_seed" in e["body"] and e["body"]["hash_seed"] is None}

    def execution_records(self) -> list[ExecutionRecord]:
        """The executions as typed records, in log order (the one place bodies are parsed)."""
        return [typed_execution(e) for e in self.executions()]

    def session_infos(self) -> dict[str, SessionInfo]:
        """session uuid -> the session's typed environment record."""
        out: dict[str, SessionInfo] = {}
        for entry in self.entries:
            if entry["kind"] == "session":
                info = typed_session(entry)
                out[info.session] = info
        return out


def typed_execution(entry: dict[str, Any]) -> ExecutionRecord:
    """An execution entry's body as a record; LineageError naming the entry if it is not one."""
    try:
        return ExecutionRecord.from_json(entry["body"])
    except (RecordError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LineageError(f"entry {entry.get('seq')}: not an execution record ({type(exc).__name__}: "
                           f"{str(exc)[:80]})") from None


def typed_session(entry: dict[str, Any]) -> SessionInfo:
    """A session entry's body as a record; LineageError naming the entry if it is not one."""
    try:
        return SessionInfo.from_json(entry["body"])
    except (RecordError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LineageError(f"entry {entry.get('seq')}: not a session record ({type(exc).__name__}: "
                           f"{str(exc)[:80]})") from None


def merged_entries(*sources: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Union of entry lists by hash, the first source winning, in seq order.

    Keyed by hash, not seq: an entry the notebook kept while the sidecar could not be
    written may share its seq with one the sidecar got later; both really ran.
    """
    by_hash: dict[str, dict[str, Any]] = {}
    for entries in sources:
        for entry in entries or []:
            by_hash.setdefault(str(entry["hash"]), entry)
    return sorted(by_hash.values(), key=lambda e: int(e["seq"]))


def read_sources(notebook: Path) -> tuple[nbformat.NotebookNode, notebook_meta.NotebookLineage | None,
                                          SidecarChoice, SidecarRead]:
    """The notebook, its metadata lineage, the chosen sidecar and what it holds."""
    nb = notebook_meta.read_notebook(notebook)
    meta = notebook_meta.read_lineage(nb)
    choice = choose_sidecar(notebook, meta)
    return nb, meta, choice, read_log(choice.path)


def load_log(notebook: Path, require: bool = True) -> LineageLog:
    """Read a notebook and its lineage; with require, LineageError if there is none."""
    nb, meta, choice, read = read_sources(notebook)
    if read.problems:
        raise LineageError(f"{choice.path}: corrupted sidecar ({read.problems[0].message})")
    sidecar_entries = read.entries if read.exists else None
    log = LineageLog(notebook, nb, choice.path, meta, sidecar_entries)
    log.entries = merged_entries(sidecar_entries, meta.entries() if meta else None)
    if require and not log.executions():
        raise LineageError(
            f"{notebook}: no lineage recorded (no 'nbgov' metadata and no executions in "
            f"{choice.path.parent.name}/{choice.path.name}); run it with `nbgov run` first"
        )
    return log
