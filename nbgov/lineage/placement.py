"""Where a recorded session's files and working folder are now. The only copy of the mapping.

A notebook's log records absolute paths. A copied or moved folder (or a notebook run
with ``nbgov run NB -o out/NB.ipynb``, whose cells ran in NB's folder while the log sits
beside the output) must still be read where it is now, so replay and every stale check
from a saved log (``nbgov show``, the sidebar at open) map recorded paths the same way:

- the cells ran in the recorded working folder ``cwd``; now they run in the notebook's
  current folder joined with ``cwd`` relative to the recorded notebook's folder (the
  plain case, ``cwd`` = the notebook's folder, is the notebook's current folder);
- a recorded path under the recorded notebook folder is read under its current folder,
  one under the recorded working folder under the current working folder (the deeper
  of the two wins); any other absolute path is read as recorded;
- when that working folder is not there now, the notebook's folder stands in for it
  (both recorded folders map to it) and ``note`` says so.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nbgov.lineage.record import FileAccess, LogEntry, SessionInfo


@dataclass(frozen=True)
class Placement:
    """Recorded paths under ``recorded`` (the recorded notebook folder) are read under
    ``current`` (its folder now); under ``recorded_cwd``, under ``cwd`` (None: the same
    folders). ``cwd`` is where the session's cells run now."""

    recorded: Path | None
    current: Path
    recorded_cwd: Path | None = None
    cwd: Path | None = None
    note: str | None = None  # why the recorded working folder was not followed

    @property
    def folder(self) -> Path:
        """Where the session's cells run now (a replay kernel's working folder)."""
        return self.cwd or self.current

    def path(self, file: FileAccess) -> Path:
        """Where a recorded file access is now."""
        return self.locate(file.abspath or file.path)

    def shown(self, file: FileAccess) -> str:
        """How a file access is named to the user: as the cell wrote it when relative, else
        where it is now (a copied folder's own path, not the one recorded elsewhere)."""
        return file.path if file.path and not Path(file.path).is_absolute() else str(self.path(file))

    def locate(self, recorded: str) -> Path:
        raw = Path(recorded)
        if not raw.is_absolute():
            return self.folder / raw
        for old, new in self._roots():
            if raw.is_relative_to(old):
                return new / raw.relative_to(old)
        return raw

    def _roots(self) -> list[tuple[Path, Path]]:
        roots = [(self.recorded, self.current), (self.recorded_cwd, self.folder)]
        known = [(old, new) for old, new in roots if old is not None]
        return sorted(known, key=lambda pair: len(pair[0].parts), reverse=True)

    @property
    def moved(self) -> bool:
        """Whether any recorded path is read somewhere else now."""
        return any(old != new for old, new in self._roots())


def place(session: SessionInfo | None, notebook: Path) -> Placement:
    """The placement of a recorded session for ``notebook`` as it is now (see the module)."""
    current = notebook.resolve().parent
    if session is None:
        return Placement(None, current)
    cwd = Path(session.cwd) if session.cwd and Path(session.cwd).is_absolute() else None
    folder = Path(session.notebook).parent if session.notebook else None
    if folder is None or not folder.is_absolute():
        return Placement(cwd, current)  # no notebook path recorded: the working folder was its folder
    if cwd is None or cwd == folder:
        return Placement(folder, current)
    now = Path(os.path.normpath(current / os.path.relpath(cwd, folder)))
    if now.is_dir():
        return Placement(folder, current, cwd, now)
    where = os.path.relpath(cwd, folder)
    return Placement(folder, current, cwd, current, note=(
        f"the recorded working folder ({where} from the notebook's folder, {cwd}) is not at {now}: "
        "its cells run in the notebook's folder"))


def relocated(entries: Iterable[LogEntry], notebook: Path, keep: str | None = None) -> list[LogEntry]:
    """``entries`` with each execution's file paths where they are now, by its session's
    placement, so a stale check compares the files a replay would read. ``keep``: a
    session whose paths are live (the running kernel's own) and stay as recorded."""
    typed = list(entries)
    sessions = {e.session.session: e.session for e in typed if e.session is not None}
    placements: dict[str, Placement] = {}
    out: list[LogEntry] = []
    for entry in typed:
        record = entry.record
        if record is None or not record.files or record.session == keep:
            out.append(entry)
            continue
        placement = placements.get(record.session)
        if placement is None:
            placement = placements[record.session] = place(sessions.get(record.session), notebook)
        if not placement.moved:
            out.append(entry)
            continue
        files = tuple(dataclasses.replace(f, abspath=str(placement.path(f)), path=placement.shown(f)) for f in record.files)
        out.append(dataclasses.replace(entry, body=dataclasses.replace(record, files=files)))
    return out
