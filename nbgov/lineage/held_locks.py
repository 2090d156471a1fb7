"""Closing a file nbgov read without dropping the locks the notebook's libraries hold on it.

A POSIX record lock (``fcntl``) belongs to a process and a file, and closing *any* descriptor
of that file drops every such lock the process holds on it. DuckDB locks its database file
for as long as a connection is open, sqlite its database while a transaction runs: opening
the file to hash it or read its header, then closing it, silently dropped the library's lock,
and another process could then open the database for writing beside the notebook's
connection. So a descriptor nbgov opened on a file this process holds a POSIX lock on is not
closed: it is kept (as sqlite keeps its own in the same case), handed out again for the next
read of that file (one per file, however often it is hashed), and closed at a later close
once no lock is held on that file. nbgov only ever reads through its own descriptors with
``pread`` (no offset is shared with the library's).

The locks are read from ``/proc/locks`` (Linux), matched by this process's id and the
file's inode; where there is no ``/proc/locks`` a descriptor is closed as before.
"""

from __future__ import annotations

import os

from nbgov.lineage.fingerprint import static

_LOCKS = "/proc/locks"
_kept: dict[int, tuple[int, int]] = {}  # descriptor -> (device, inode): kept open while this process locks the file
_lent: dict[int, int] = {}  # kept descriptor -> reads it is handed out to now (never closed under them)


def open_reading(abspath: str, flags: int) -> int:
    """A descriptor to read ``abspath`` through: the one kept for its file if there is one
    (opening another, then closing it, would drop the lock), else a new one."""
    try:
        st = static.os_stat(abspath)
    except (OSError, ValueError):
        st = None
    if st is not None and _kept:
        for fd, key in _kept.items():
            if key == (st.st_dev, st.st_ino):
                _lent[fd] = _lent.get(fd, 0) + 1
                return fd
    return static.os_open(abspath, flags)


def close_keeping_locks(fd: int) -> None:
    """Close ``fd`` unless this process holds a POSIX lock on its file; then keep it (one per
    file: ``open_reading`` hands it out again). Kept descriptors whose files are no longer
    locked are closed now."""
    if fd in _lent:  # a kept one handed out: still in use while other reads hold it
        _lent[fd] -= 1
        if _lent[fd]:
            return
        del _lent[fd]
    try:
        st = static.os_fstat(fd)
    except OSError:
        _kept.pop(fd, None)
        static.os_close(fd)
        return
    locked = _locked_inodes()
    if locked is not None and st.st_ino in locked:
        _kept[fd] = (st.st_dev, st.st_ino)
    else:
        _kept.pop(fd, None)
        static.os_close(fd)
    for kept_fd, (_, inode) in list(_kept.items()):
        if kept_fd != fd and kept_fd not in _lent and (locked is None or inode not in locked):
            del _kept[kept_fd]
            static.os_close(kept_fd)


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
