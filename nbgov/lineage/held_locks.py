"""Closing a file nbgov read without dropping the locks the notebook's libraries hold on it.

A POSIX record lock (``fcntl``) belongs to a process and a file, and closing *any* descriptor
of that file drops every such lock the process holds on it. DuckDB locks its database file
for as long as a connection is open, sqlite its database while a transaction runs: opening
the file to hash it or read its header, then closing it, silently dropped the library's lock,
and another process could then open the database for writing beside the notebook's
connection. So a descriptor nbgov opened on a file this process holds a POSIX lock on is not
closed: it is kept (as sqlite keeps its own in the same case) and closed at a later call once
no lock is held on that file. nbgov only ever reads through its own descriptors with
``pread`` (no offset is shared with the library's).

The locks are read from ``/proc/locks`` (Linux), matched by this process's id and the
file's inode; where there is no ``/proc/locks`` a descriptor is closed as before.
"""

from __future__ import annotations

import os

from nbgov.lineage.fingerprint import static

_LOCKS = "/proc/locks"
_kept: dict[int, int] = {}  # descriptor -> inode: kept open while this process locks the file


def close_keeping_locks(fd: int) -> None:
    """Close ``fd`` unless this process holds a POSIX lock on its file; then keep it. Kept
    descriptors whose files are no longer locked are closed now."""
    try:
        inode = static.os_fstat(fd).st_ino
    except OSError:
        static.os_close(fd)
        return
    locked = _locked_inodes()
    if locked is not None and inode in locked:
        _kept[fd] = inode
    else:
        static.os_close(fd)
    for kept, kept_inode in list(_kept.items()):
        if kept != fd and (locked is None or kept_inode not in locked):
            del _kept[kept]
            static.os_close(kept)


def kept() -> int:
    """How many descriptors are kept open for locks held now."""
    return len(_kept)


def _locked_inodes() -> set[int] | None:
    """Inodes of the files this process holds a POSIX lock on (None: no ``/proc/locks``).

    A line reads ``1: POSIX  ADVISORY  WRITE 6523 fe:00:2147223 0 EOF``; a waiting request
    (``1: -> POSIX ...``) holds nothing. Matched by inode alone: the device numbers there are
    the filesystem's, which an overlay's ``stat`` does not give; a false match only keeps a
    descriptor open a little longer."""
    try:
        with static.builtin_open(_LOCKS, "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    pid = str(os.getpid()).encode()
    found: set[int] = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[1] == b"POSIX" and parts[4] == pid:
            try:
                found.add(int(parts[5].rsplit(b":", 1)[1]))
            except (IndexError, ValueError):
                continue
    return found
