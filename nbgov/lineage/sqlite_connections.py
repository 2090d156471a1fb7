"""Reads through sqlite connections opened in earlier cells, seen by sqlite's own page counters.

A connection a notebook keeps open across cells (``con = sqlite3.connect(...)`` in one cell,
``pd.read_sql(q, con)`` in the next; a cursor made earlier; an SQLAlchemy engine's pool) has
its database file open already, so the OS reports no open and ``native_files`` sees nothing.
sqlite counts, per connection, every page its pager fetched (cache hits and misses): a
fetch during the cell means the connection read its database in the cell. That is the
evidence; naming ``con`` (``c = con``, ``con.total_changes``) fetches no page.

Every connection is announced by CPython's audit event ``sqlite3.connect/handle`` (3.10+),
which ``files``' audit hook hands here. ``sqlite3.Connection`` takes no weak reference, so
the tracker holds one to the connection's statement cache instead: an ``lru_cache`` wrapper
around the connection that only the connection holds, and that ``close()`` (and the
collection of the connection) drops. While it lives, the connection is open; it keeps
nothing alive. No code of the connection's Python side runs: the ``sqlite3 *`` handle is
read from the object's memory (the first field after the object header in CPython's
``pysqlite_Connection``, read afresh each time; NULL once closed), checked once per process
on a private connection to a known file, and sqlite's C API is called with the GIL held
(``PyDLL``) after taking the connection's mutex without waiting: a thread using the
connection at that moment (in sqlite, GIL released, maybe about to call back into Python)
makes the check skip it with a note, never wait for it.

Known limits, by design: the counters are per connection, not per database, so a cell that
reads only one database of a connection with others ``ATTACH``ed records all of them as read
(sqlite publishes no per-database counter); a connection used by another thread during the
cell counts as the cell's; a connection closed during the cell can no longer be asked (a
note names its database); one opened before nbgov recorded its first cell is not followed.
A connection closed by another thread in the instant between reading its handle and taking
its mutex is the one race left (``close()`` from another thread needs
``check_same_thread=False``). Where the check fails (another interpreter or layout), reads
through earlier connections are not seen, and records of cells run while one is open say so.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import sys
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nbgov.lineage import files
from nbgov.unrecorded import unrecorded

CONNECTED = "sqlite3.connect/handle"  # CPython's audit event, raised with the new connection
_CACHE_HIT, _CACHE_MISS = 7, 8  # sqlite3.h: SQLITE_DBSTATUS_CACHE_HIT, SQLITE_DBSTATUS_CACHE_MISS
_SQLITE_OK = 0
_HANDLE_AT = object.__basicsize__  # pysqlite_Connection: PyObject_HEAD, then ``sqlite3 *db``
_MAX_SCHEMAS = 128  # main, temp and at most 125 attached (SQLITE_MAX_ATTACHED)
NOT_SEEN = ("reads through sqlite connections opened in earlier cells cannot be seen here ({why}): "
            "a database read through one is missing from this record")


def _handle(address: int) -> Any:
    """The connection's ``sqlite3 *`` field, as a ``c_void_p`` over the object's memory: read
    afresh each time it is passed or its ``value`` asked (None once closed). Used only while
    the caller keeps the connection alive."""
    return ctypes.c_void_p.from_address(address + _HANDLE_AT)


class _Api:
    """sqlite's C functions from the library ``_sqlite3`` is linked with, called holding the GIL."""

    def __init__(self, library: str) -> None:
        lib = ctypes.PyDLL(library)
        handle, text = ctypes.c_void_p, ctypes.c_char_p
        # untyped (its ints are C ints, its handle a c_void_p, its outputs byrefs): a third of
        # the cost of a typed call, and it runs twice per connection per cell boundary
        self.status = lib.sqlite3_db_status
        self.status.restype = ctypes.c_int
        self.filename = _typed(lib.sqlite3_db_filename, text, [handle, text])
        named = getattr(lib, "sqlite3_db_name", None)  # SQLite 3.39+: attached schemas by index
        self.name = _typed(named, text, [handle, ctypes.c_int]) if named is not None else None
        self.mutex = _typed(lib.sqlite3_db_mutex, handle, [handle])
        self.try_enter = _typed(lib.sqlite3_mutex_try, ctypes.c_int, [handle])
        self.leave = _typed(lib.sqlite3_mutex_leave, None, [handle])

    def pages(self, db: Any, counter: _Counter) -> int | None:
        """Pages the connection fetched so far (hits + misses); None while another thread holds it."""
        mutex = self.mutex(db)
        if mutex and self.try_enter(mutex) != _SQLITE_OK:
            return None
        try:
            if self.status(db, _CACHE_HIT, counter.current_ref, counter.high_ref, 0) != _SQLITE_OK:
                return None
            hits = counter.current.value
            if self.status(db, _CACHE_MISS, counter.current_ref, counter.high_ref, 0) != _SQLITE_OK:
                return None
            return hits + counter.current.value
        finally:
            if mutex:
                self.leave(mutex)

    def files(self, db: Any) -> list[str] | None:
        """The database files of the connection's schemas (main and attached; not temp, not in
        memory); None while another thread holds it."""
        mutex = self.mutex(db)
        if mutex and self.try_enter(mutex) != _SQLITE_OK:
            return None
        try:
            names: list[bytes] = [b"main"]
            if self.name is not None:
                names = []
                for index in range(_MAX_SCHEMAS):
                    name = self.name(db, index)
                    if name is None:
                        break
                    names.append(name)
            found: list[str] = []
            for name in names:
                if name == b"temp":
                    continue
                path = self.filename(db, name)
                if path:  # "" for an in-memory or temporary database
                    found.append(os.fsdecode(path))
            return found
        finally:
            if mutex:
                self.leave(mutex)


class _Counter:
    """Where ``sqlite3_db_status`` writes its answer (made once per cell boundary, not per call)."""

    def __init__(self) -> None:
        self.current, self.high = ctypes.c_int(), ctypes.c_int()
        self.current_ref, self.high_ref = ctypes.byref(self.current), ctypes.byref(self.high)


def _typed(function: Any, restype: Any, argtypes: list[Any]) -> Any:
    function.restype = restype
    function.argtypes = argtypes
    return function


@dataclass(frozen=True)
class _Tracked:
    anchor: weakref.ref[Any]  # the connection's statement cache: alive while the connection is open
    address: int  # the connection's, read only while the anchor holds it alive
    database: str  # its main database's file when it connected ("" in memory), for notes


# Process-wide, as the audit hook is: connections by address (a re-initialised one replaces itself).
_tracked: dict[int, _Tracked] = {}
_checking = [False]  # the layout check is running (its own connection is not followed)
_unfollowed = [0]  # connections announced that could not be followed (no statement cache found)
_lru_type: type = functools._lru_cache_wrapper


def _connection_type() -> type | None:
    module = sys.modules.get("_sqlite3")
    kind = getattr(module, "Connection", None) if module is not None else None
    return kind if type(kind) is type else None


def _anchor_of(connection: Any) -> Any:
    """The connection's statement cache (found among what the connection references, by C
    traversal: no attribute of the connection is read), or None."""
    for referent in gc.get_referents(connection):
        if type(referent) is _lru_type and vars(referent).get("__wrapped__") is connection:
            return referent
    return None


def on_connect(args: tuple[Any, ...]) -> None:
    """The audit event of a new connection (any thread): follow it without keeping it alive."""
    if _checking[0]:
        return  # the check's own connection
    try:
        connection = args[0] if args else None
        base = _connection_type()
        if base is None or not any(k is base for k in type.__dict__["__mro__"].__get__(type(connection))):
            return
        anchor = _anchor_of(connection)
        if anchor is None:
            _unfollowed[0] += 1
            return
        address = id(connection)
        api = _api()
        database = ""
        if api is not None:
            db = _handle(address)
            found = api.files(db) if db.value else None
            database = found[0] if found else ""
        _tracked[address] = _Tracked(weakref.ref(anchor), address, database)
    except Exception:
        return  # an audit hook must never raise into user code


@functools.cache
def _api() -> _Api | None:
    """sqlite's API, once the handle's place in the connection was confirmed; None otherwise."""
    return _checked_api()[0]


@functools.cache
def _checked_api() -> tuple[_Api | None, str]:
    """(the API, "") when a private connection to a known file confirms the layout and the
    counters; (None, why) otherwise. Its files are nbgov's own, not a cell's."""
    _checking[0] = True
    try:
        with unrecorded():
            return _check()
    finally:
        _checking[0] = False


def _check() -> tuple[_Api | None, str]:
    try:
        if sys.implementation.name != "cpython":
            return None, f"{sys.implementation.name} is not CPython"
        import _sqlite3
        import sqlite3

        api = _Api(str(_sqlite3.__file__))
        with tempfile.TemporaryDirectory(prefix="nbgov-sqlite-check-") as folder:
            path = os.path.realpath(os.path.join(folder, "check.sqlite"))
            probe = sqlite3.connect(path)
            try:
                anchor = _anchor_of(probe)
                db = _handle(id(probe))
                if anchor is None or not db.value:
                    return None, "the connection's layout is not the one known"
                if api.filename(db, b"main") != os.fsencode(path) or api.files(db) != [path]:
                    return None, "the connection's handle is not where it is known to be"
                counter = _Counter()
                start = api.pages(db, counter)
                probe.execute("create table t (x)").close()
                probe.commit()
                idle = api.pages(db, counter)
                probe.execute("select count(*) from t").fetchall()
                after = api.pages(db, counter)
                if start is None or idle is None or after is None or after == idle:
                    return None, "sqlite's page counters did not move on a read"
                cache = weakref.ref(anchor)
                del anchor
            finally:
                probe.close()
            if _handle(id(probe)).value or cache() is not None:
                return None, "a closed connection did not look closed"
        return api, ""
    except Exception as exc:  # noqa: BLE001 - an advisory detector: its absence is a note
        return None, f"{type(exc).__name__}: {exc}"


def unavailable() -> str | None:
    """Why reads through earlier connections cannot be seen in this process, or None."""
    api, why = _checked_api()
    return None if api is not None else why


@dataclass
class ConnectionReads:
    """One per recorder: ``start`` as a cell starts, ``stop`` as it ends (the main thread).
    ``ignored``: files that are not the notebook's data (IPython's own history database);
    ``known``: a file's (size, hash) as it is now, when known without reading it."""

    ignored: Callable[[str], bool] = lambda path: False
    known: Callable[[str], tuple[int, str | None] | None] = lambda path: None
    notes: list[str] = field(default_factory=list)
    # each open connection's main database as the cell started, where known: what a cell that
    # reads and writes through it read (``native_files.reads_through_connections``)
    known_at_start: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    _before: dict[int, tuple[_Tracked, int | None]] = field(default_factory=dict)
    _unfollowed: int = 0

    def start(self) -> None:
        """Each live connection's page count now (nothing at all to do with none open)."""
        self.notes = []
        self._before = {}
        self.known_at_start = {}
        self._unfollowed = _unfollowed[0]
        if not _tracked:
            return
        api = _api()
        counter = _Counter()
        for address, entry in list(_tracked.items()):
            connection_cache = entry.anchor()
            if connection_cache is None:  # closed or collected: forget it
                if _tracked.get(address) is entry:
                    del _tracked[address]
                continue
            if api is None:
                self._before[address] = (entry, None)
                continue
            db = _handle(address)
            if db.value:
                self._before[address] = (entry, api.pages(db, counter))
                if entry.database and (content := self.known(entry.database)) is not None:
                    self.known_at_start[entry.database] = content
            del connection_cache

    def stop(self) -> list[str]:
        """The database files read through connections that were open at the start."""
        before, self._before = self._before, {}
        if _unfollowed[0] != self._unfollowed:
            self.notes.append(NOT_SEEN.format(why="a sqlite connection opened in this cell cannot be followed") +
                              " in later cells")
        if not before:
            return []
        api = _api()
        if api is None:
            self.notes.append(NOT_SEEN.format(why=unavailable()))
            return []
        counter = _Counter()
        found: dict[str, None] = {}
        for address, (entry, pages) in before.items():
            connection_cache = entry.anchor()
            db = _handle(address) if connection_cache is not None else None
            if db is None or not db.value:
                if entry.database and not self.ignored(entry.database):
                    self.notes.append(f"a sqlite connection to {entry.database} was closed during the cell: whether "
                                      "the cell read through it first is not known")
                continue
            now = api.pages(db, counter)
            if (pages is None or now is None) and entry.database and self.ignored(entry.database):
                continue
            if pages is None or now is None:
                self.notes.append(f"a sqlite connection to {entry.database or 'a database'} was in use by another "
                                  "thread as the cell started or ended: its reads in the cell are not known")
            elif now != pages:
                paths = api.files(db)
                if paths is None:
                    self.notes.append(f"a sqlite connection to {entry.database or 'a database'} was in use by "
                                      "another thread as the cell ended: which files it read is not known")
                found.update(dict.fromkeys(paths or ()))
            del connection_cache
        return list(found)


def follow() -> None:
    """Follow the connections opened from now on (idempotent). The layout is checked now when
    sqlite3 is loaded already (IPython's history loads it), else at the first connection."""
    if "_sqlite3" in sys.modules:
        _checked_api()
    files.listen_for_connections(on_connect)
