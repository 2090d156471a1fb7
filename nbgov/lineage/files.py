"""Files a cell opens through Python, caught by an audit hook, then sized and hashed.

Audit hooks cannot be removed, so one hook is added per process, the first time
a watcher starts; it does nothing unless a watcher is active (one list check).
Python's own imports, the interpreter's installation, system folders (``/etc``,
``/usr``, ``/proc``, ``/sys``, ``/dev``…) and tool caches are not the notebook's data
and are ignored: a library reading ``/etc/os-release`` at import is not an input.
Contents are hashed after the cell ends, when written files are closed, with the ``os``
functions captured at import (a user's patched ``open`` is never called); an unchanged
file (same size, mtime, inode, ctime) is not re-read. Native code (pyarrow, polars,
DuckDB) bypasses ``open``: see ``native_files``.

Files changed without ``open`` are writes too, from their audit events: removed
(``os.remove``/``unlink``, ``Path.unlink``, ``shutil.rmtree``'s unlinks), renamed (``os.rename``/
``replace``, ``shutil.move``, ``Path.rename``/``replace``: both paths), truncated by path,
and new names made by ``os.link``/``os.symlink``. A path whose file came from before the
cell and is gone after it is recorded as removed, so stale flags and replay see it.
"""

from __future__ import annotations

import errno
import functools
import glob
import os
import pathlib
import site
import stat
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from nbgov import unrecorded
from nbgov.lineage import gil_kept, sqlite_wal
from nbgov.lineage.fingerprint import static
from nbgov.lineage.held_locks import close_keeping_locks, open_reading
from nbgov.lineage.database_files import (HEAD_BYTES, SQLITE_JOURNALS, database_path, index_only, journals_of,
                                          side_database)

_PATH_TYPES = (pathlib.PurePosixPath, pathlib.PosixPath, pathlib.PureWindowsPath, pathlib.Path)
SYSTEM_ROOTS = ("/etc", "/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/boot", "/run", "/proc", "/sys",
                "/dev", "/var/lib", "/var/cache", "/var/run", "/snap")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_CHUNK = 4 * 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 8 * 1024**3

# Process-wide by necessity (sys.addaudithook is forever): the active watchers.
_active: list[FileWatcher] = []
_hook_installed = False
_install_lock = threading.Lock()


# Audit events (CPython's own) that change files by path, and where their paths are:
# (index of the path, index of its dir_fd or -1) for each path the event changes; the
# first path of a removal or rename is the one it takes away.
_CHANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "os.remove": ((0, 1),),  # os.remove, os.unlink, Path.unlink, shutil.rmtree's unlinks
    "os.rename": ((0, 2), (1, 3)),  # os.rename, os.replace, Path.rename/replace, shutil.move
    "os.truncate": ((0, -1),),  # a descriptor's truncate: its open was seen
    "os.link": ((1, 3),),
    "os.symlink": ((1, 2),),
}
_TAKES_AWAY = frozenset({"os.remove", "os.rename"})
# Audit events that start a process: its files are not told from other processes' (fanotify)
_SPAWNS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "os.fork",
                     "os.forkpty"})
_CONNECTED = "sqlite3.connect/handle"  # a new sqlite3 connection: told to ``sqlite_connections``, cells or not
_EVENTS = frozenset({"open", _CONNECTED, *_CHANGES, *_SPAWNS})
_spawned = 0  # processes started while a cell was watched (by anyone in this process, nbgov too)
_connection_listeners: list[Callable[[tuple[Any, ...]], None]] = []


def spawned() -> int:
    """How many processes this process started while a cell's files were watched."""
    return _spawned


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Runs for every audited event of every thread: one set lookup for all unrelated ones.
    global _spawned
    if event not in _EVENTS:
        return
    if event == _CONNECTED:
        for listener in tuple(_connection_listeners):
            listener(args)
        return
    if not _active:
        return
    if event in _SPAWNS:
        _spawned += 1
        return
    if unrecorded.active():
        return
    if event == "open":
        for watcher in tuple(_active):
            watcher._on_open(args)
        return
    for watcher in tuple(_active):
        watcher._on_change(event, args)


def listen_for_connections(listener: Callable[[tuple[Any, ...]], None]) -> None:
    """Call ``listener`` with the audit arguments of every sqlite3 connection opened from now
    on, in any thread, between cells too (it must never raise); installs the hook."""
    if listener not in _connection_listeners:
        _connection_listeners.append(listener)
    _ensure_hook()


def _ensure_hook() -> None:
    global _hook_installed
    if _hook_installed:  # every cell asks: no lock once it is in
        return
    with _install_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True


FileKey = tuple[int, int, int, int]  # (size, mtime_ns, inode, ctime_ns)


@dataclass(frozen=True)
class FileEvent:
    path: str  # as the code gave it
    abspath: str
    mode: str  # "read" | "write"
    native: bool = False  # reported by the OS (inotify, stat), not by Python's open
    removes: bool = False  # removes or renames away what was at the path then
    # a read whose file the cell then changed: (size, hash) read just before the change
    # (hash None: too big or unreadable); None when the file is hashed after the cell
    before_change: tuple[int | None, str | None] | None = None
    # the file's (size, mtime, inode, ctime) when ``before_change`` was taken: tells whether
    # what the read saw was already the cell's own (native) write
    before_change_key: FileKey | None = None
    # a native write of a file nothing opened in the cell before it was first written: a
    # read of it Python saw failed (nothing was there) or read what the cell wrote
    unopened_before: bool = False
    changed_by: str = "the cell"  # who changed a file read before the change: the cell, or ANOTHER_PROCESS


ANOTHER_PROCESS = "another process"


_CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".pth")


def file_key(st: os.stat_result) -> FileKey:
    """What says a file is unchanged since it was hashed: the one key hashing and native
    reads of content known at a cell's start compare."""
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


def _code_roots(cwd: str | None = None) -> tuple[str, ...]:
    """sys.path folders other than the working folder: where imported code lives."""
    path = sys.path
    if set(map(type, path)) == {str}:  # the usual sys.path, in C loops (every cell asks)
        entries = tuple(path)
    else:  # strings only: hashing the others could run user code
        entries = tuple(entry for entry in path if type(entry) is str)
    return _roots_of(entries, _folder_prefix(cwd or os.getcwd()))


@functools.lru_cache(maxsize=8)
def _folder_prefix(folder: str) -> str:
    """``folder`` absolute, ending in a separator (every cell asks, of the same working folder)."""
    return os.path.join(os.path.abspath(folder), "")


@functools.lru_cache(maxsize=8)
def _roots_of(entries: tuple[str, ...], cwd: str) -> tuple[str, ...]:
    roots = (os.path.join(os.path.abspath(os.path.join(cwd, entry)), "") for entry in entries)
    return tuple(root for root in roots if root != cwd)


def _ignored_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *SYSTEM_ROOTS}
    roots.add(str(Path(__file__).resolve().parents[1]))  # nbgov's own code, even from a checkout
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except Exception:
        pass
    home = os.path.expanduser("~")
    for sub in (".ipython", ".jupyter", ".cache", ".config", ".local", ".matplotlib", ".keras"):
        roots.add(os.path.join(home, sub))
    return tuple(sorted(os.path.join(os.path.realpath(r), "") for r in roots if r))


@dataclass(eq=False)  # identity semantics: watchers are registered and removed by identity
class FileWatcher:
    """Collects the files opened between start() and stop()."""

    ignore: tuple[str, ...] = field(default_factory=_ignored_roots)
    events: list[FileEvent] = field(default_factory=list)
    _code_roots: tuple[str, ...] = ()
    # abspath -> index in events of its first read this cell; -1 once the cell changed it
    _first_read: dict[str, int] = field(default_factory=dict)
    _failed: set[int] = field(default_factory=set)  # reads found to have failed (nothing was there)

    def start(self, cwd: str | None = None) -> None:
        _ensure_hook()
        self._code_roots = _code_roots(cwd)
        self.events = []
        self._first_read = {}
        self._failed = set()
        if not any(w is self for w in _active):
            _active.append(self)

    def stop(self) -> list[FileEvent]:
        _active[:] = [w for w in _active if w is not self]
        events, self.events = self.events, []
        failed, self._failed = self._failed, set()
        return [ev for i, ev in enumerate(events) if i not in failed] if failed else events

    @property
    def active(self) -> bool:
        return any(w is self for w in _active)

    def _on_open(self, args: tuple[Any, ...]) -> None:
        try:
            path = _opened_path(args[0])
            if path is None:
                return  # a descriptor (its open was seen), or a user PathLike: never call its code
            mode = args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            if isinstance(mode, str):
                writing = any(c in mode for c in "wax+")
                # r+ reads what is there; an append's result is what was there plus what it adds
                reading = "r" in mode or "a" in mode
            else:
                writing = bool(flags & _WRITE_FLAGS)
                keeps = not flags & os.O_TRUNC
                reading = keeps and (flags & os.O_ACCMODE != os.O_WRONLY or bool(flags & os.O_APPEND))
            abspath = os.path.abspath(path)
            if self._ignored(abspath):
                return
            database = side_database(abspath, look_inside=False)
            if database is not None:  # its journal or WAL is the database's content; -shm none
                if index_only(abspath):
                    return
                path, abspath = database_path(path, abspath, database), database
            if writing and reading and not absent(abspath):  # r+, a, a+: what was there is an input
                self._read(FileEvent(path, abspath, "read"))
            if writing:
                self._before_change(abspath)
                self.events.append(FileEvent(path, abspath, "write"))
            else:
                self._read(FileEvent(path, abspath, "read"))
        except Exception:
            return  # an audit hook must never raise into user code

    def _read(self, event: FileEvent) -> None:
        """A read, unless the cell already changed the file: then it reads the cell's own
        output (``np.save`` then ``np.load``), not an input (as native reads after a write)."""
        if self._first_read.setdefault(event.abspath, len(self.events)) >= 0:
            self.events.append(event)

    def _before_change(self, abspath: str) -> None:
        """The file is about to be written (the hook runs before the open truncates it, or
        the truncate, rename or link replaces it): a read of it earlier in the cell read
        what is there now, so hash it now (once, only then). Hashed after the cell, the
        read would claim content the file never had when it was read."""
        first_read = self._first_read.get(abspath)
        self._first_read[abspath] = -1  # changed: a later read sees the cell's own content
        if first_read is None or first_read < 0:
            return
        content, key = _content_and_key(abspath)
        if content[0] is None:  # nothing there: the read's open failed (`try: open(cache)`)
            self._failed.add(first_read)
            return
        ev = self.events[first_read]
        self.events[first_read] = FileEvent(ev.path, abspath, "read", before_change=content, before_change_key=key)

    def _on_change(self, event: str, args: tuple[Any, ...]) -> None:
        """A path removed, renamed (both names), truncated or newly linked: a write of it.

        The hook runs before the operation: a removal or rename of a path where nothing is
        will fail and change nothing (``try: os.remove(p) except FileNotFoundError``), so
        it is not recorded; one that can succeed marks its first path as taken away."""
        try:
            takes_away = event in _TAKES_AWAY
            for index, (at, dir_at) in enumerate(_CHANGES[event]):
                path = _opened_path(args[at]) if at < len(args) else None
                if path is None:
                    continue  # a descriptor (its open was seen), or a user PathLike: never call its code
                dir_fd = args[dir_at] if 0 <= dir_at < len(args) else -1
                abspath = _absolute(path, dir_fd)
                if abspath is None:
                    continue
                removes = takes_away and index == 0
                if removes and absent(abspath):
                    return  # nothing to remove or rename: the call fails, nothing changes
                if self._ignored(abspath):
                    continue
                database = side_database(abspath, look_inside=False)
                if database is not None:  # removing or moving a journal changes the database
                    if index_only(abspath):
                        continue
                    path, abspath, removes = database_path(path, abspath, database), database, False
                if removes:
                    self._first_read[abspath] = -1  # its read is noted as of unknown content
                else:
                    self._before_change(abspath)
                shown = path if type(dir_fd) is not int or dir_fd < 0 else abspath
                self.events.append(FileEvent(shown, abspath, "write", removes=removes))
        except Exception:
            return  # an audit hook must never raise into user code

    def ignored(self, abspath: str) -> bool:
        """Not the notebook's data: nbgov's own files, installed code, imports, .nbgov."""
        return self._ignored(abspath)

    def _ignored(self, abspath: str) -> bool:
        if "__pycache__" in abspath or f"{os.sep}.nbgov{os.sep}" in abspath:
            return True
        if abspath.endswith(_CODE_SUFFIXES) and abspath.startswith(self._code_roots):
            return True  # an import from sys.path (a module in the notebook's folder still counts)
        return abspath.startswith(self.ignore)


@dataclass(frozen=True)
class _Hashed:
    key: FileKey
    digest: str | None
    journals: tuple[str, ...] = ()  # a database's side files holding part of its content (suffixes)
    journal_keys: tuple[FileKey | None, ...] = ()  # theirs when it was hashed (None: none there)


class FileHasher:
    """Size + content hash of files, cached by ``file_key`` (and, for a sqlite or DuckDB
    database, its journals' keys: a commit into its WAL changes its content, not its file)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._cache: dict[str, _Hashed] = {}

    def known(self, abspath: str, key: FileKey) -> tuple[int, str | None] | None:
        """(size, hash) last read of the file, if it was read with this key (and, a database,
        with no journal beside it: what its journals held at that key is not known)."""
        hit = self._cache.get(abspath)
        if hit is None or hit.key != key or any(hit.journal_keys):
            return None
        return key[0], hit.digest

    def known_now(self, abspath: str) -> tuple[int, str | None] | None:
        """(size, hash) of the file as it is now, when it was last hashed as it is now (its key
        and its journals' keys unchanged): nothing is read. None when not known so."""
        hit = self._cache.get(abspath)
        if hit is None:
            return None
        try:
            key = file_key(static.os_stat(abspath))
        except (OSError, ValueError):
            return None
        if key != hit.key or _journal_keys(abspath, hit.journals) != hit.journal_keys:
            return None
        return key[0], hit.digest

    def forget(self, abspath: str) -> None:
        """The file's content changed where its stat may not show it (a write through a shared
        memory map to a page already dirty changes no time stamp): hash it again next time."""
        self._cache.pop(abspath, None)

    def hash(self, abspath: str) -> tuple[int | None, str | None]:
        """(size, hash); (None, None) when the file is gone or is not a regular file, or the
        path is none a file system can hold (a lone surrogate or a NUL a forged log put there)."""
        try:
            st = os.stat(abspath)
        except (OSError, ValueError):
            return None, None
        if not stat.S_ISREG(st.st_mode):
            return None, None
        key = file_key(st)
        hit = self._cache.get(abspath)
        if hit is not None and hit.key == key and (
                not hit.journals or hit.journal_keys == _journal_keys(abspath, hit.journals)):
            return st.st_size, hit.digest
        hashed = _Hashed(key, None)
        if st.st_size <= self.max_bytes:
            try:
                hashed = _digest(abspath, key, self.max_bytes)
            except OSError:
                pass
        self._cache[abspath] = hashed
        return st.st_size, hashed.digest


def content_hash(abspath: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> str | None:
    """The hash the recorder gives a file's content now (a database with its journal or
    WAL); None when it cannot be read or is too big."""
    try:
        return _digest(abspath, (0, 0, 0, 0), max_bytes).digest
    except OSError:
        return None


def _digest(abspath: str, key: FileKey, max_bytes: int) -> _Hashed:
    """xxh3_128 of the file; a sqlite database with a WAL beside it, of the file a full
    checkpoint would leave (``sqlite_wal``: a checkpoint does not change its hash); any other
    database with a journal or WAL beside it (an open transaction, DuckDB's commits not yet
    checkpointed, a WAL that does not parse) gets one hash of their digests, so equal hashes
    still mean equal content."""
    checkpointed = _checkpointed(abspath, key, max_bytes)
    if checkpointed is not None:
        return checkpointed
    digest, head = _hash_and_head(abspath)
    suffixes = journals_of(head)
    keys = _journal_keys(abspath, suffixes)
    if not any(keys):
        return _Hashed(key, digest, suffixes, keys)
    parts = [digest]
    for suffix, journal in zip(suffixes, keys):
        if journal is not None:
            if journal[0] > max_bytes:
                return _Hashed(key, None, suffixes, keys)  # a journal too big to read: not known
            parts.append(f"{suffix}:{hash_file(abspath + suffix)}")
    return _Hashed(key, xxhash.xxh3_128_hexdigest(("database:" + " ".join(parts)).encode()), suffixes, keys)


def _checkpointed(abspath: str, key: FileKey, max_bytes: int) -> _Hashed | None:
    """A sqlite database with a non-empty WAL and no rollback journal, hashed as its effective
    image; None for any other file, or a WAL that is not one of this database."""
    if _journal_keys(abspath, ("-wal",)) == (None,):
        return None  # the common case: one stat
    keys = _journal_keys(abspath, SQLITE_JOURNALS)
    wal, journal = keys  # SQLITE_JOURNALS: ("-wal", "-journal")
    if wal is None or journal is not None or wal[0] > max_bytes:
        return None
    digest = sqlite_wal.image_digest(abspath)
    return None if digest is None else _Hashed(key, digest, SQLITE_JOURNALS, keys)


def _journal_keys(abspath: str, suffixes: tuple[str, ...]) -> tuple[FileKey | None, ...]:
    """Keys of the database's non-empty journals (None where there is none)."""
    keys: list[FileKey | None] = []
    for suffix in suffixes:
        try:
            st = static.os_stat(abspath + suffix)
        except (OSError, ValueError):
            keys.append(None)
            continue
        keys.append(file_key(st) if stat.S_ISREG(st.st_mode) and st.st_size else None)
    return tuple(keys)


def _content(abspath: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[int | None, str | None]:
    """(size, hash) of a regular file now; hash None when it cannot be read or is too big."""
    return _content_and_key(abspath, max_bytes)[0]


def _content_and_key(abspath: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES
                     ) -> tuple[tuple[int | None, str | None], FileKey | None]:
    """``_content``, and the file's key when it was stat'ed (None when nothing is there)."""
    try:
        st = static.os_stat(abspath)
        if not stat.S_ISREG(st.st_mode):
            return (None, None), None
        return (st.st_size, content_hash(abspath, max_bytes) if st.st_size <= max_bytes else None), file_key(st)
    except OSError:
        return (None, None), None


def _opened_path(target: Any) -> str | None:
    kind = type(target)
    if kind is str:
        return str(target)
    if kind is bytes:
        return os.fsdecode(bytes(target))
    if any(kind is path_type for path_type in _PATH_TYPES):  # not `in`: == runs a metaclass's __eq__
        return str(target)
    return None


def _absolute(path: str, dir_fd: Any) -> str | None:
    """The absolute path an event names: relative to a directory descriptor when one is given
    (``shutil.rmtree`` unlinks by name inside the folder it opened), else to the working folder."""
    if type(dir_fd) is not int or dir_fd < 0 or os.path.isabs(path):
        return os.path.abspath(path)
    try:
        folder = static.os_readlink(f"/proc/self/fd/{dir_fd}")
    except OSError:
        return None
    return os.path.normpath(os.path.join(folder, path)) if folder.startswith("/") else None


# files whose reads give no content a hash could stand for (and whose open or read may wait)
FIFO = "a FIFO (named pipe)"
SPECIAL_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISFIFO, FIFO), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"))


def special_kind(mode: int) -> str | None:
    """'a FIFO (named pipe)', 'a character device', 'a block device' or 'a socket' for a stat
    ``st_mode`` of one; None for a regular file, a folder, a symlink not followed."""
    return next((name for test, name in SPECIAL_KINDS if test(mode)), None)


def special_file(abspath: str) -> str | None:
    """``special_kind`` of what is at the path (symlinks followed) now; None for anything else
    or nothing there. A stat only (with the ``os`` function captured at import): never opened."""
    try:
        return special_kind(static.os_stat(abspath).st_mode)
    except (OSError, ValueError):
        return None


def absent(abspath: str) -> bool:
    """True when nothing exists at the path (not even a dangling link): removed, or renamed away."""
    try:
        static.os_lstat(abspath)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def hash_file(abspath: str) -> str:
    """xxh3_128 of the file's bytes, read with the ``os`` functions captured at import (a
    notebook's patched ``open`` is never called). Holes of a sparse file are fed as zeros
    without reading them: the digest is the same, a 2 GB sparse file costs no disk reads."""
    return _hash_and_head(abspath)[0]


def _hash_and_head(abspath: str) -> tuple[str, bytes]:
    """``hash_file``'s digest, and the file's first bytes (what tells a database), read in the same pass."""
    h = xxhash.xxh3_128()
    head = b""
    # callers stat first; a FIFO swapped in after that must not block the open (nor be read)
    fd = open_reading(abspath, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = static.os_fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", abspath)
        size = st.st_size
        # buffers no bigger than the file (two of _CHUNK, zeroed, cost a small file 3 ms);
        # the zeros only for a file with a hole
        chunk = max(1, min(_CHUNK, size))
        view = memoryview(bytearray(chunk))
        zeros: memoryview | None = None
        position = 0
        for begin, end in [*static.data_extents(fd, 0, size), (size, size)]:
            while position < begin:  # a hole: zeros by definition
                zeros = zeros if zeros is not None else memoryview(bytes(chunk))
                step = min(chunk, begin - position)
                h.update(zeros[:step])
                head = head or bytes(zeros[:min(step, HEAD_BYTES)])
                position += step
            while position < end:
                n = static.os_preadv(fd, [view[: min(chunk, end - position)]], position)
                if not n:
                    return h.hexdigest(), head  # truncated meanwhile: what was there
                h.update(view[:n])
                head = head if len(head) >= HEAD_BYTES else (head + bytes(view[:n]))[:HEAD_BYTES]
                position += n
    finally:
        close_keeping_locks(fd)  # a database the notebook holds locked stays locked
    return h.hexdigest(), head


def expand_sql_paths(paths: Iterable[str], cwd: str | None = None) -> list[tuple[str, str]]:
    """(path as written, abspath) for DuckDB file arguments, globs expanded; URLs skipped."""
    out: list[tuple[str, str]] = []
    if not paths:
        return out  # most statements: no file (and no system call for the working folder)
    base = cwd or gil_kept.getcwd()
    for path in paths:
        if "://" in path:
            continue
        full = path if os.path.isabs(path) else os.path.join(base, path)
        if any(c in path for c in "*?["):
            matches = sorted(glob.glob(full, recursive=True))
            out.extend((path if len(matches) == 1 else m, os.path.abspath(m)) for m in matches)
        else:
            out.append((path, os.path.abspath(full)))
    return out


def is_under(path: str, root: str | Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False
