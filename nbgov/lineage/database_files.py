"""Embedded databases' own files beside a database, told apart from data.

sqlite's rollback journal (``-journal``) and write-ahead log (``-wal``), and DuckDB's
write-ahead log (``.wal``), hold changes to the database not yet in its file: its content
is the file with them. sqlite's shared-memory index (``-shm``) holds none. None of them is
data the user made; the database is. A side file counts as one only beside a file that
starts with its engine's header (or is still empty: sqlite writes the header with the
first commit), so ``notes-journal`` beside a text file ``notes`` is data like any other.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Container

from nbgov.lineage.fingerprint import static
from nbgov.lineage.held_locks import close_keeping_locks, open_reading

SQLITE_JOURNALS = ("-wal", "-journal")
_DUCKDB_JOURNALS = (".wal",)
JOURNALS = (*SQLITE_JOURNALS, *_DUCKDB_JOURNALS)  # side files holding the database's content
SIDE_FILES = (*JOURNALS, "-shm")
_SQLITE_SIDE_FILES = (*SQLITE_JOURNALS, "-shm")
_SQLITE_HEADER = b"SQLite format 3\x00"
_DUCKDB_MAGIC = (8, b"DUCK")  # after the header block's checksum
HEAD_BYTES = 16  # enough for either engine's header


def side_database(abspath: str, touched: Container[str] = (), look_inside: bool = True) -> str | None:
    """The database a side file belongs to, when that database is beside it (or was touched
    in the cell, when it is gone now): the side file is the engine's, not data; None otherwise.

    ``look_inside=False`` (Python's opens, seen while a cell runs, when reading the database's
    header would itself show up as a read of it): sqlite's side files beside any regular file,
    by name; DuckDB's ``.wal``, a common name, is then data."""
    if not abspath.endswith(SIDE_FILES):
        return None  # the common case: one string check
    for suffix in SIDE_FILES:
        if not abspath.endswith(suffix) or not os.path.basename(base := abspath[: -len(suffix)]):
            continue
        if not look_inside:
            return base if suffix in _SQLITE_SIDE_FILES and (base in touched or is_regular(base)) else None
        head = _head(base)
        if head is None:  # gone: a sqlite database the cell touched, then removed
            return base if suffix in _SQLITE_SIDE_FILES and base in touched else None
        kinds = journals_of(head)
        return base if suffix in kinds or (suffix == "-shm" and kinds == SQLITE_JOURNALS) else None
    return None


def is_regular(abspath: str) -> bool:
    """A regular file now (stat'ed with the ``os`` function captured at import)."""
    try:
        return stat.S_ISREG(static.os_stat(abspath).st_mode)
    except (OSError, ValueError):
        return False


def index_only(abspath: str) -> bool:
    """sqlite's shared-memory index: no content of the database, so no read or write of it."""
    return abspath.endswith("-shm")


def database_path(path: str, abspath: str, database: str) -> str:
    """The database's path written as the code wrote its side file's."""
    suffix = abspath[len(database):]
    return path[: -len(suffix)] if path.endswith(suffix) else database


def journals_of(head: bytes) -> tuple[str, ...]:
    """The suffixes of the side files that hold part of a file's content, told by its first
    bytes: sqlite's journal and WAL for a sqlite database (or a file sqlite made and has not
    written yet), DuckDB's WAL for a DuckDB one, none for any other file."""
    if not head or head.startswith(_SQLITE_HEADER):
        return SQLITE_JOURNALS
    at, magic = _DUCKDB_MAGIC
    if head[at:at + len(magic)] == magic:
        return _DUCKDB_JOURNALS
    return ()


def is_duckdb(abspath: str) -> bool:
    """A DuckDB database file: the same tables, written the same way, make different bytes
    in every run (its blocks, checksums and header counters are its own), so only its tables
    can be compared across runs."""
    head = _head(abspath)
    return head is not None and journals_of(head) == _DUCKDB_JOURNALS


def _head(abspath: str) -> bytes | None:
    """The first bytes of a regular file (fewer when it is shorter); None when it is not one."""
    try:
        fd = open_reading(abspath, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(static.os_fstat(fd).st_mode):
            return None
        head = bytearray(HEAD_BYTES)
        return bytes(head[:static.os_preadv(fd, [head], 0)])
    except OSError:
        return None
    finally:
        close_keeping_locks(fd)  # a database the notebook holds locked stays locked
