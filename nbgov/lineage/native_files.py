"""Files opened by native code during a cell (pyarrow, polars, DuckDB, C extensions).

A file is an input only when it was actually opened. On Linux the OS says so: the
folders a cell can reach by name (the working folder, the folders of the paths it
names, and named folders themselves) are watched with inotify for the length of the
cell, and every open, close, write and removal in them is reported, by whichever
code made it (a file removed or renamed away that the cell did not make is recorded
as removed, as with Python's own ``os.remove``). Naming a path (``fname = "out.txt"``)
opens nothing and records nothing. A named folder is watched with its subfolders (a
partitioned dataset's ``year=2020/``, within the bound); a folder made during the cell
was not watched when its files were written, so every file in it is recorded as written.

Where inotify is missing, files the cell names are stat'ed before and after: a created
or changed file was written (that is evidence); reads cannot be seen, and the record
says so.

Another process touching a watched file during the cell is told from the cell by
fanotify where the OS offers it (``file_origins``); where it does not, or when the cell
may have had child processes, it is recorded as the cell's. Known limit, by design:
notebooks (``*.ipynb``) and editor/Jupyter temporary files are never data here (Python
opens of them are still seen by the audit hook).
"""

from __future__ import annotations

import os
import pathlib
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbgov.lineage.analysis import CellNames, plausible_path
from nbgov.lineage.child_processes import ChildWatch
from nbgov.lineage.fanotify import Fanotify, open_fanotify
from nbgov.lineage.file_origins import OwnTouches, own_touches
from nbgov.lineage.files import ANOTHER_PROCESS, FileEvent, FileKey, file_key
from nbgov.lineage.database_files import JOURNALS, index_only, is_regular, side_database
from nbgov.lineage.inotify import IN_CREATE, IN_MODIFY, Inotify, Touch, open_inotify
from nbgov.lineage.journal import describe

MAX_WATCHED_FOLDERS = 32
MAX_FILES_IN_NEW_FOLDERS = 10_000
MAX_PROBED_PATHS = 64
MAX_LISTED_PATHS = 64  # items of a list/tuple of paths looked at
_identity = object.__hash__  # (id() raises an audit event, which runs nbgov's own hook)
_STR = _identity(str)
_PATH_TYPE_IDS = frozenset(map(_identity, (pathlib.PurePosixPath, pathlib.PosixPath, pathlib.PureWindowsPath, pathlib.Path)))
_CLOCK_REALTIME_COARSE = 5  # Linux's (where inotify is); the time module does not name it
NO_INOTIFY = "files read by native code cannot be observed here (no inotify): only Python opens are recorded"


def mentioned_paths(names: CellNames, ns: Mapping[str, Any]) -> list[str]:
    """Paths the cell names: its string constants and the values of names it reads that are
    strings, standard ``pathlib`` paths, or lists/tuples of them (exact types only, so no
    user ``__fspath__``, ``__str__`` or ``__iter__`` runs)."""
    found: list[str] = list(names.strings)
    for name in sorted(names.loads):
        value: Any = ns.get(name)
        kind = type(value)
        items = value[:MAX_LISTED_PATHS] if kind is list or kind is tuple else (value,)
        for item in items:
            text = _path_text(item)
            if text is not None and plausible_path(text):
                found.append(text)
    return found


def _path_text(value: Any) -> str | None:
    kind = _identity(type(value))  # by identity: == (and hash) of a class run its metaclass's code
    if kind == _STR:
        return str(value)
    if kind in _PATH_TYPE_IDS:
        return str(value)
    return None


def _absolute(path: str, cwd: str) -> str:
    full = os.path.expanduser(path) if path.startswith("~") else path
    return os.path.normpath(os.path.join(cwd, full))


@dataclass
class NativeWatch:
    """One per recorder: ``start`` before a cell, ``stop`` after it."""

    ignored: Callable[[str], bool]
    _inotify: Inotify | None = None
    _tried: bool = False
    _probe: PathProbe | None = None
    _started: int = 0  # the file system's clock when the cell started (ns)
    # content a file had when last hashed, if its (size, mtime, inode, ctime) is still this
    known: Callable[[str, FileKey], tuple[int, str | None] | None] | None = None
    _at_start: dict[str, FileKey] = field(default_factory=dict)  # named files, stat'ed at the start
    _probed: frozenset[str] = frozenset()  # the named paths stat'ed at the start (absent ones too)
    # the last cell's (_probed, _at_start), kept after ``stop`` for the record's file reads
    _last_start: tuple[frozenset[str], dict[str, FileKey]] = (frozenset(), {})
    notes: list[str] = field(default_factory=list)
    _origins: Fanotify | None = None  # who made the events inotify sees (where the OS says)
    _children: ChildWatch | None = None
    _cwd: str = ""
    _cwd_folders: tuple[str, tuple[str, ...]] = ("", ())  # (working folder, what a cell naming no path watches)

    def changed_since_start(self, path: str, key: FileKey) -> bool | None:
        """Whether the file at ``path`` had another (size, mtime, inode, ctime) than ``key``, or
        was not there, when the last cell started; None when that cell did not name it."""
        probed, keys = self._last_start
        return keys.get(path) != key if path in probed else None

    @property
    def available(self) -> bool:
        if not self._tried:
            self._tried = True
            self._inotify = open_inotify()
            self._origins = open_fanotify() if self._inotify is not None else None
        return self._inotify is not None

    def start(self, mentions: Iterable[str], cwd: str | None = None) -> None:
        """Watch the folders the cell can reach by name (or stat named files, without inotify).
        ``cwd``: the working folder as ``os.getcwd()`` gives it (its real path)."""
        base = cwd or os.getcwd()
        paths = [_absolute(p, base) for p in mentions]
        self.notes = []
        self._last_start = (frozenset(), {})
        if not self.available:
            self._probe = PathProbe.start(paths, self.ignored)
            if paths:
                self.notes.append(NO_INOTIFY)
            return
        assert self._inotify is not None
        self._started = _fs_clock()
        entries = _lstats(paths)
        self._at_start = _file_keys(paths[:MAX_PROBED_PATHS], self.ignored, entries)
        self._probed = frozenset(paths[:MAX_PROBED_PATHS])
        self._inotify.start(_folders(base, paths, self.ignored, entries) if paths else self._working_folder(base))
        if self._origins is not None:
            try:
                self._origins.follow(self._inotify.watches)
                self._origins.drop()  # what happened between cells is for no cell (after inotify's drop)
                self._children = ChildWatch.start()
            except OSError as exc:
                self._origins_failed(exc)
            self._cwd = base

    def _working_folder(self, cwd: str) -> list[str]:
        """What a cell that names no path watches (most cells): the working folder, unless it
        is ignored; the verdict is kept per folder (``ignored`` answers a folder alike each time)."""
        known = self._cwd_folders
        if known[0] != cwd:
            known = self._cwd_folders = (cwd, tuple(_folders(cwd, [], self.ignored)))
        return list(known[1])

    def stop(self) -> list[FileEvent]:
        """Files opened in the watched folders since ``start``: written, else read."""
        if self._inotify is None:
            probe, self._probe = self._probe, None
            return probe.writes() if probe is not None else []
        touches, overflow = self._inotify.collect()
        if overflow:
            self.notes.append("the OS dropped file events (too many at once): files read may be missing")
        # the server's saves and editors' temporary files are no one's data: no note names them
        own = self._own([t for t in touches if not _not_data(t.name) and not self.ignored(t.path)])
        touches = own.touches
        self.notes += own.notes
        events: list[FileEvent] = []
        at_start, self._at_start = self._at_start, {}
        self._last_start, self._probed = (self._probed, at_start), frozenset()
        touched = {touch.path for touch in touches}
        rollback = {touch.path for touch in touches if touch.name.endswith(JOURNALS)}
        through_journal: dict[str, None] = {}  # databases a commit changed in their journal or WAL only
        for touch in touches:
            path = touch.path
            database = side_database(path, touched)
            if database is not None:  # a database's own side file: the database is what changed, if anything
                if _changes_database(touch):
                    through_journal[database] = None
                continue
            if touch.new_folder:
                events += self._made_in(path)
                continue
            if path in own.read_then_changed:  # another process changed it: what the cell read is gone
                events.append(FileEvent(path, path, "read", native=True, before_change=(None, None),
                                        changed_by=ANOTHER_PROCESS))
                continue
            if touch.only_taken_away and not os.path.lexists(path):
                if touch.opened:  # read, then removed: the read stays (its content is not known)
                    events.append(FileEvent(path, path, "read", native=True))
                events.append(FileEvent(path, path, "write", native=True, removes=True))
                continue
            if touch.only_closed_writable and _unchanged_since(path, self._started):
                # opened read-write (sqlite, HDF5) and closed, its content untouched: an open
                # in the cell read it, the close of an earlier handle did nothing
                if touch.opened:
                    events.append(FileEvent(path, path, "read", native=True))
                continue
            if is_regular(path):
                if touch.written and touch.read_first:  # read, then written: what it read is gone
                    events.append(FileEvent(path, path, "read", native=True, before_change=(None, None)))
                elif (touch.written and touch.opened_first and not touch.mask & IN_CREATE
                      and any(path + side in rollback for side in JOURNALS)):
                    # sqlite or DuckDB changed a database in place (its journal or WAL beside it): it read
                    # the header and schema first, as an r+ open does; what was there is known
                    # when the file was last hashed as it was when the cell started, else not
                    events.append(FileEvent(path, path, "read", native=True,
                                            before_change=self._content_at_start(path, at_start)))
                events.append(FileEvent(path, path, "write" if touch.written else "read", native=True,
                                        unopened_before=touch.written and not touch.opened_first and not overflow))
        written = {ev.abspath for ev in events if ev.mode == "write"}
        events += [FileEvent(db, db, "write", native=True) for db in through_journal
                   if db not in written and is_regular(db) and not self.ignored(db)]
        return events

    def _own(self, touches: list[Touch]) -> OwnTouches:
        """The touches this process made (fanotify read after inotify: it holds at least
        the events inotify's read held)."""
        children, self._children = self._children, None
        if not touches or self._origins is None or children is None:
            return OwnTouches(touches)
        try:
            return own_touches(touches, self._origins.collect(), children.possible, self._cwd)
        except OSError as exc:
            self._origins_failed(exc)
            return OwnTouches(touches)

    def _origins_failed(self, exc: OSError) -> None:
        """fanotify failed: from now on every process's files count, as inotify sees them."""
        if self._origins is not None:
            self._origins.close()
            self._origins = None
        self._children = None
        self.notes.append(f"which process opened a file cannot be told any more ({describe(exc)}): files other "
                          "processes open in watched folders count as the cell's")

    def _content_at_start(self, path: str, at_start: Mapping[str, FileKey]) -> tuple[int | None, str | None]:
        key = at_start.get(path)
        found = self.known(path, key) if key is not None and self.known is not None else None
        return found if found is not None else (None, None)

    def _made_in(self, folder: str) -> list[FileEvent]:
        """The files in a folder the cell made (``os.makedirs`` then a native writer, a
        partitioned dataset): its inotify watch came too late, but everything in it is new."""
        found = _files_under(folder, self.ignored, MAX_FILES_IN_NEW_FOLDERS)
        if len(found) >= MAX_FILES_IN_NEW_FOLDERS:
            self.notes.append(f"more than {MAX_FILES_IN_NEW_FOLDERS:,} files in folders the cell made: "
                              "only the first are recorded")
        made = set(found)
        return [FileEvent(path, path, "write", native=True) for path in found if side_database(path, made) is None]

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        if self._origins is not None:
            self._origins.close()
            self._origins = None


def _folders(cwd: str, paths: list[str], ignored: Callable[[str], bool],
             entries: Mapping[str, os.stat_result | None] | None = None) -> list[str]:
    """The working folder, folders of named paths and named folders (real and as named),
    then the subfolders of named folders (a partitioned dataset's ``year=2020/``), nearest
    first, within the bound. ``entries``: the paths' ``lstat``s, when already taken."""
    if not paths:  # most cells name no file: the working folder alone
        return [] if ignored(os.path.join(cwd, "")) else [cwd]
    entries = entries if entries is not None else _lstats(paths)
    found: dict[str, None] = {}
    named: list[str] = []
    reals: dict[str, str] = {}  # realpath is an lstat per part: once per folder here (most share the cwd)
    parents: dict[str, bool] = {cwd: False}  # the working folder is first anyway (real already: getcwd's)

    def real(path: str) -> str:
        known = reals.get(path)
        if known is None:
            known = reals[path] = os.path.realpath(path)
        return known

    for path in paths:
        entry = entries.get(path)
        is_link = entry is not None and stat.S_ISLNK(entry.st_mode)
        is_folder = entry is not None and (stat.S_ISDIR(entry.st_mode) or is_link and os.path.isdir(path))
        if is_folder:
            found[path] = None
            found[real(path)] = None
        if is_folder and path == cwd:
            continue  # "." names the working folder, watched already; its parent holds others' files
        parent = os.path.dirname(path)
        watch_parent = parents.get(parent)
        if watch_parent is None:
            watch_parent = parents[parent] = os.path.isdir(parent)
        if watch_parent:
            found[parent] = None
            found[real(parent)] = None
        if is_folder and real(path) != real(cwd):
            named.append(path)
        if is_link:
            found[os.path.dirname(os.path.realpath(path))] = None
    ordered = [cwd] + [f for f in found if f != cwd]
    chosen = [f for f in ordered if not ignored(os.path.join(f, ""))][:MAX_WATCHED_FOLDERS]
    for sub in _subfolders(named, ignored, MAX_WATCHED_FOLDERS - len(chosen)):
        if sub not in chosen:
            chosen.append(sub)
    return chosen[:MAX_WATCHED_FOLDERS]


def _subfolders(roots: list[str], ignored: Callable[[str], bool], limit: int) -> list[str]:
    """Folders below ``roots``, breadth first, at most ``limit`` (symlinked folders not followed)."""
    out: list[str] = []
    queue = list(roots)
    while queue and len(out) < limit:
        folder = queue.pop(0)
        try:
            entries = sorted(e.path for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for sub in entries:
            if len(out) >= limit:
                break
            if not ignored(os.path.join(sub, "")) and not _not_data(os.path.basename(sub)):
                out.append(sub)
                queue.append(sub)
    return out


def _files_under(folder: str, ignored: Callable[[str], bool], limit: int) -> list[str]:
    """Regular files below a folder (symlinks not followed), at most ``limit``."""
    out: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            if len(out) >= limit:
                return out
            if not _not_data(name) and not ignored(path) and is_regular(path):
                out.append(path)
    return out


def _not_data(name: str) -> bool:
    """Notebooks and Jupyter/editor temporary files: saved by the server, not by the cell."""
    return name.endswith((".ipynb", "~", ".swp")) or name.startswith((".~", ".#"))


def _changes_database(touch: Touch) -> bool:
    """A journal or WAL the cell left changed (a commit not yet checkpointed, an open
    transaction), or one from before the cell it took away (a commit, a checkpoint): the
    database's content (its file with them) changed though its file may not have. One made
    and removed in the cell changed nothing the database file's own events do not show; the
    WAL's index (-shm) holds no content."""
    if index_only(touch.path):
        return False
    return bool(touch.mask & IN_MODIFY) and is_regular(touch.path) or touch.only_taken_away


def _fs_clock() -> int:
    """The coarse clock file times are taken from: a change made after this reading has a
    modification and change time at or after it."""
    try:
        return time.clock_gettime_ns(_CLOCK_REALTIME_COARSE)
    except (OSError, AttributeError):
        return 0  # no such clock: every writable close counts as a write, as before


def _unchanged_since(path: str, started: int) -> bool:
    """A regular file whose data and inode were last changed before ``started`` (a tick
    before it: a change in the cell, a write through a mapping too, is at or after it)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(st.st_mode) and 0 < started and max(st.st_mtime_ns, st.st_ctime_ns) < started


StatKey = tuple[int, int, int]  # (size, mtime_ns, inode)


def _file_keys(abspaths: Iterable[str], ignored: Callable[[str], bool],
               entries: Mapping[str, os.stat_result | None]) -> dict[str, FileKey]:
    """(size, mtime, inode, ctime) of the named regular files that exist (``entries``: their
    ``lstat``s; a symlink is followed)."""
    keys: dict[str, FileKey] = {}
    for abspath in abspaths:
        entry = entries.get(abspath)
        if entry is None or abspath in keys or ignored(abspath):
            continue
        if stat.S_ISLNK(entry.st_mode):
            try:
                entry = os.stat(abspath)
            except (OSError, ValueError):
                continue
        if stat.S_ISREG(entry.st_mode):
            keys[abspath] = file_key(entry)
    return keys


def _lstats(abspaths: Iterable[str]) -> dict[str, os.stat_result | None]:
    """Each path's ``lstat`` (None when nothing is there): one system call per path at a
    cell's start, shared by what the start asks of it."""
    out: dict[str, os.stat_result | None] = {}
    for abspath in abspaths:
        if abspath not in out:
            try:
                out[abspath] = os.lstat(abspath)
            except (OSError, ValueError):
                out[abspath] = None
    return out


def stat_key(abspath: str) -> StatKey | None:
    """(size, mtime_ns, inode) of a regular file; None when missing or not a regular file."""
    try:
        st = os.stat(abspath)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


@dataclass
class PathProbe:
    """Named files, stat'ed before and after a cell: the fallback without inotify.

    A file created or changed by the cell was written. An unchanged file may or may not
    have been read, so nothing is claimed about it. Only a bounded number is stat'ed.
    """

    before: dict[str, StatKey | None] = field(default_factory=dict)

    @classmethod
    def start(
        cls, abspaths: Iterable[str], ignored: Callable[[str], bool], limit: int = MAX_PROBED_PATHS
    ) -> PathProbe | None:
        probe = cls()
        for abspath in abspaths:
            if len(probe.before) >= limit:
                break
            if abspath not in probe.before and not ignored(abspath):
                probe.before[abspath] = stat_key(abspath)
        return probe if probe.before else None

    def writes(self) -> list[FileEvent]:
        out: list[FileEvent] = []
        for abspath, before in self.before.items():
            after = stat_key(abspath)
            if after is not None and after != before:
                out.append(FileEvent(abspath, abspath, "write", native=True))
        return out


def reads_through_connections(paths: Iterable[str], events: list[FileEvent], ignored: Callable[[str], bool],
                              known_at_start: Mapping[str, tuple[int, str | None]] | None = None) -> list[FileEvent]:
    """Native reads of the databases read through earlier connections (sqlite's, DuckDB's),
    for ``recorder._files``: none for a file the cell's record already has as read; for a file
    the cell also wrote, one of its content at the cell's start where that is known, else of
    no content (and its note), since the read may have come before the write (the policy for
    native code's read before a write)."""
    read = {ev.abspath for ev in events if ev.mode == "read"}
    written = {ev.abspath for ev in events if ev.mode == "write" and not ev.removes}
    known = known_at_start or {}
    out: list[FileEvent] = []
    for path in paths:
        if path in read or ignored(path):
            continue
        before = known.get(path, (None, None)) if path in written else None
        out.append(FileEvent(path, path, "read", native=True, before_change=before))
    return out
