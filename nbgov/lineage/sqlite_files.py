"""sqlite's own files beside a database, told apart from data.

A database's rollback journal (``-journal``) and write-ahead log (``-wal``) hold pages of
it: its content is the file with them. The WAL's shared-memory index (``-shm``) holds
none. None of them is data the user made; the database is.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Container

from nbgov.lineage.fingerprint import static

SQLITE_JOURNALS = ("-wal", "-journal")
SQLITE_SIDE_FILES = (*SQLITE_JOURNALS, "-shm")
_SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_database(abspath: str, touched: Container[str] = ()) -> str | None:
    """The database a sqlite side file belongs to, when that database is beside it (or was
    touched in the cell): the side file is sqlite's implementation, not data; None otherwise."""
    if not abspath.endswith(SQLITE_SIDE_FILES):
        return None  # the common case: one string check
    for suffix in SQLITE_SIDE_FILES:
        if abspath.endswith(suffix):
            base = abspath[: -len(suffix)]
            if os.path.basename(base) and (base in touched or _regular(base)):
                return base
    return None


def database_path(path: str, abspath: str, database: str) -> str:
    """The database's path written as the code wrote its side file's."""
    suffix = abspath[len(database):]
    return path[: -len(suffix)] if path.endswith(suffix) else database


def _regular(abspath: str) -> bool:
    try:
        return stat.S_ISREG(static.os_stat(abspath).st_mode)
    except (OSError, ValueError):
        return False


def is_sqlite(abspath: str) -> bool:
    """The file starts with sqlite's header: only then are journals beside it its content."""
    try:
        fd = static.os_open(abspath, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = bytearray(len(_SQLITE_HEADER))
        return static.os_preadv(fd, [head], 0) == len(head) and head == _SQLITE_HEADER
    except OSError:
        return False
    finally:
        static.os_close(fd)
