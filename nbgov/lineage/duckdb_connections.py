"""Reads through DuckDB connections opened in earlier cells, counted from the files they hold.

``con = duckdb.connect('shop.duckdb')`` in one cell, ``con.sql('SELECT ...').df()`` in the
next: the database file is open already, so the OS reports no open, and DuckDB serves what it
read before from its own buffer pool without reading the file again. Neither the OS nor
DuckDB says which database a query read (DuckDB has no per-connection read counter such as
sqlite's; asking it would run a query on the user's connection and drop the result they have
not fetched yet). So the evidence is the cell's code: a cell that calls a method of a
connection or relation made in an earlier cell (``con.sql(q)``, ``rel.df()``) or hands one to
a call (``pd.read_sql(q, con)``), or calls a notebook function that names one, counts every
DuckDB database file the kernel held open as it started as read, and its record says so in a
note. Merely naming one (``c = con``) reads nothing.

The files are found in ``/proc/self/fd`` (Linux): each regular file the process holds open
whose first bytes are DuckDB's header. The objects are told by their exact types, looked up
in DuckDB's loaded modules (no notebook code runs, no object is kept). Limits, by design: a
cell that queries one database counts the others the kernel holds open too (the note says
so); the module's own default connection (``duckdb.sql(...)``) and a connection held inside a
notebook object (``repo.load()`` querying ``self.con``) are not followed; where there is no
``/proc`` a read through an earlier connection is missing, and the record says that.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from nbgov.lineage.database_files import is_duckdb

_OPEN_FILES = "/proc/self/fd"
# (module, class name) of DuckDB's objects that query a database when a method runs
_QUERYING = (("_duckdb", "DuckDBPyConnection"), ("duckdb._relation", "DuckDBPyRelation"),
             ("_duckdb", "DuckDBPyRelation"))
NOT_SEEN = ("a read through the DuckDB {objects} (opened in an earlier cell) cannot be seen here (no /proc): "
            "a database read through it is missing from this record")


@dataclass(frozen=True)
class HeldReads:
    """The DuckDB objects a cell queried through, and the database files held open as it started."""

    objects: tuple[str, ...]
    paths: tuple[str, ...]
    # (size, hash) of those whose content at the start was known without reading them: what a
    # cell that also writes one read (its own later reads come from that state too)
    known_at_start: dict[str, tuple[int, str | None]]

    @property
    def note(self) -> str:
        named = ", ".join(f"`{name}`" for name in self.objects)
        return (f"read through DuckDB {named} (opened in an earlier cell): DuckDB does not say which database a "
                "query reads, so every DuckDB database the kernel held open counts as read")


def start(names: Iterable[str], ns: Mapping[str, Any], ignored: Callable[[str], bool], notes: list[str],
          known: Callable[[str], tuple[int, str | None] | None]) -> HeldReads | None:
    """The reads a cell about to run counts through DuckDB objects of earlier cells; None when
    it calls on none (every cell of a session that never imported DuckDB: one lookup)."""
    kinds = _querying_types()
    if not kinds:
        return None
    objects = tuple(sorted(name for name in names if _is_any(type(ns.get(name)), kinds)))
    if not objects:
        return None
    paths = held_databases(ignored)
    if paths is None:
        notes.append(NOT_SEEN.format(objects=", ".join(f"`{name}`" for name in objects)))
        return None
    if not paths:
        return None
    at_start = {path: content for path in paths if (content := known(path)) is not None}
    return HeldReads(objects, tuple(paths), at_start)


def _is_any(kind: type, kinds: tuple[type, ...]) -> bool:
    """By identity: ``in`` would call ``==``, which a notebook class's metaclass may define."""
    return any(kind is known for known in kinds)


def _querying_types() -> tuple[type, ...]:
    """DuckDB's connection and relation classes, from the modules already loaded (none: none)."""
    found: list[type] = []
    for module_name, class_name in _QUERYING:
        module = sys.modules.get(module_name)
        # a real module's own dict, and a real class: anything else put in sys.modules under
        # the name could answer ``vars`` or ``isinstance`` with its own code
        kind: Any = vars(module).get(class_name) if type(module) is ModuleType else None
        if issubclass(type(kind), type) and not _is_any(kind, tuple(found)):
            found.append(kind)
    return tuple(found)


def held_databases(ignored: Callable[[str], bool]) -> list[str] | None:
    """The DuckDB database files this process holds open, by real path (None without /proc)."""
    try:
        descriptors = os.listdir(_OPEN_FILES)
    except OSError:
        return None
    found: dict[str, None] = {}
    for descriptor in descriptors:
        try:
            target = os.readlink(f"{_OPEN_FILES}/{descriptor}")
        except OSError:  # closed meanwhile (listdir's own descriptor among them)
            continue
        if not target.startswith("/") or target in found or ignored(target) or not _regular(descriptor):
            continue  # a FIFO or device is never opened: that could unblock (then break) its writer
        if is_duckdb(target):
            found[target] = None
    return list(found)


def _regular(descriptor: str) -> bool:
    """The open file is a regular one (stat through its ``/proc`` link: the file itself)."""
    try:
        return stat.S_ISREG(os.stat(f"{_OPEN_FILES}/{descriptor}").st_mode)
    except OSError:
        return False
