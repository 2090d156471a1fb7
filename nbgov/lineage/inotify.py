"""Linux inotify through ctypes: what was opened, read and written in a few folders.

The audit hook sees only files opened through Python; pyarrow, polars and DuckDB call
the C library directly. The kernel reports every open and close of a file to an inotify
watch on its folder, whoever made the call, so a watch kept for the length of a cell
sees native reads as they happen (stat'ing before and after can only see writes, and
naming a path proves nothing). Only a bounded number of folders is watched per cell,
and only opens, writes (modify, close after writing, create) and removals (delete,
rename away) are asked for, not one event per read() nor the close of a file opened
before the cell.

Removing a watch costs the kernel milliseconds (it waits for a grace period), so watches
are kept between cells, the oldest removed beyond a bound. A folder the next cell can
reach again (the working folder, nearly always) stays awake between cells: what happens
there meanwhile is read at that cell's start and dropped, which costs less than putting
it to sleep and waking it (two system calls per cell). A folder the next cell cannot
reach sleeps: it asks only for attribute changes of its files (chmod, utime; rare). Not
nothing: a watch that starts asking for its files' events again makes the kernel mark
every entry it has cached for the folder, failed lookups included (0.6 ms for a /tmp,
5 ms after a few hundred cells there), while one that never stopped is woken in
microseconds. What a sleeping folder reports is dropped (``collect`` reports only awake
folders).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from nbgov.lineage import gil_kept

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC

# A read is an open during the cell (IN_OPEN): the close of a file opened earlier (a
# handle a library closes later, on a thread or when it is collected) is not a read by
# the cell it happens in.
# A removal (deleted, or renamed away) is a write too: the content that was there is gone.
# A read-only handle opened in the cell and closed before anything wrote the file
# (IN_OPEN, IN_CLOSE_NOWRITE, then a write) read what was there before the cell wrote it:
# its content is not what is there after. A close alone is no read.
# A read-only handle still open at the first write is one too, when the events show it:
# the OS merges consecutive identical events, so the reader's and the writer's opens are
# often one IN_OPEN; a read-only close after the write with no open after it closes a
# handle opened before the write. It was opened in the cell unless an earlier cell left
# it open: files this watch last saw opened, not closed, are not claimed (an earlier
# handle whose open was merged with another's, or opened where nothing watched, is not
# told apart; a handle the cell keeps open past its end shows no close and is no read).
# A file nothing opened in the cell before its first write (made by it, or written through
# a handle from before): a read of it the audit hook saw failed, or read the cell's output.
WATCH_MASK = (IN_OPEN | IN_MODIFY | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_CREATE | IN_MOVED_TO | IN_DELETE
              | IN_MOVED_FROM)
SLEEP_MASK = IN_ATTRIB  # a file event that is rare, so the kernel keeps its marks on the folder's entries
WRITTEN = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO
TAKEN_AWAY = IN_DELETE | IN_MOVED_FROM
_EVENT = struct.Struct("iIII")
_MAX_READ = 1 << 20
MAX_KEPT_WATCHES = 64
MAX_LEFT_OPEN = 4096  # files earlier cells left open; beyond it, no close after a write is a read


@dataclass(frozen=True)
class Touch:
    """Everything the OS reported about one file of a watched folder, OR-ed together."""

    folder: str
    name: str
    mask: int
    read_first: bool = False  # a read-only handle opened in the cell before the file was first written
    opened_first: bool = False  # opened in the cell before it was first written (by anyone)

    @property
    def path(self) -> str:
        return os.path.join(self.folder, self.name)

    @property
    def written(self) -> bool:
        return bool(self.mask & WRITTEN)

    @property
    def only_closed_writable(self) -> bool:
        """A handle opened for writing was closed, and nothing reported a change: no write,
        truncation, creation or move here (a write through a shared mapping reports none
        either; the caller asks the file's own times)."""
        return bool(self.mask & IN_CLOSE_WRITE) and not self.mask & (IN_MODIFY | IN_CREATE | IN_MOVED_TO)

    @property
    def opened(self) -> bool:
        return bool(self.mask & IN_OPEN)

    @property
    def new_folder(self) -> bool:
        """A folder made (or moved in) during the cell: nothing in it was watched."""
        return bool(self.mask & IN_ISDIR)

    @property
    def only_taken_away(self) -> bool:
        """Removed or renamed away, and neither made nor written in the cell: what was there
        came from before it (a file the cell made and removed is no claim either way)."""
        return bool(self.mask & TAKEN_AWAY) and not self.written


class Inotify:
    """One inotify instance: ``start`` a cell on some folders, ``collect`` what happened."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        kept = ctypes.PyDLL(None, use_errno=True)  # calls made every cell keep the GIL (see gil_kept)
        self._add = kept.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = kept.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd
        self._folders: dict[int, str] = {}  # watch descriptor -> folder, oldest first
        self._awake: set[int] = set()
        self._named: dict[str, int] = {}  # folder -> the watch descriptor its name gave last
        # files whose last open or close seen was an open: a handle may be kept across cells
        self._left_open: set[tuple[str, str]] = set()
        self._left_open_unknown = False  # more than the bound: any file may be

    @property
    def watches(self) -> Mapping[int, str]:
        """The watches kept (awake or asleep): descriptor -> folder (read-only view)."""
        return self._folders

    def watch(self, folder: str) -> bool:
        """Report what happens in a folder (not following a symlinked folder) until it sleeps."""
        wd = self._ask(folder, WATCH_MASK | IN_EXCL_UNLINK)
        if wd < 0:
            return False
        self._folders.pop(wd, None)
        self._folders[wd] = folder  # most recently used last
        self._awake.add(wd)
        return True

    def _ask(self, folder: str, mask: int) -> int:
        """Set the events the folder at this name reports; a watch kept under the name for a
        folder since renamed away or removed is dropped (it would report its files under
        this name)."""
        wd = int(self._add(self.fd, os.fsencode(folder), mask | IN_ONLYDIR))
        previous = self._named.get(folder)
        if previous is not None and previous != wd and self._folders.get(previous) == folder:
            del self._folders[previous]
            self._awake.discard(previous)
            self._rm(self.fd, previous)
        if wd >= 0:
            self._named[folder] = wd
            self._folders.setdefault(wd, folder)
        else:
            self._named.pop(folder, None)
        return wd

    def collect(self) -> tuple[list[Touch], bool]:
        """Files touched in awake folders since the last collect, and whether the OS dropped
        events (overflow). Reads only the events already queued when it is called: what a
        process writing without pause in a watched folder adds meanwhile (a tracer logging
        each of these reads there) cannot keep it reading."""
        queued = gil_kept.queued(self.fd)  # whole events; kept GIL: a release hands it to the IOPub thread
        if not queued:
            return [], False  # nothing happened (most cells, and most gaps between cells)
        masks: dict[tuple[str, str], int] = {}
        read_first: set[tuple[str, str]] = set()
        opened_first: set[tuple[str, str]] = set()
        opened_after: set[tuple[str, str]] = set()  # opened after the file was first written
        closed_after: set[tuple[str, str]] = set()  # a read-only handle closed after that
        last_open: dict[tuple[str, str], bool] = {}  # the last open or close was an open
        overflow = False
        while queued > 0:
            data = read_waiting(self.fd, min(queued, _MAX_READ))
            if not data:
                break
            queued -= len(data)
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    overflow = True
                    continue
                if mask & IN_IGNORED:
                    gone = self._folders.pop(wd, None)  # the folder went away
                    if gone is not None and self._named.get(gone) == wd:
                        del self._named[gone]
                    self._awake.discard(wd)
                    continue
                folder = self._folders.get(wd)
                if folder is None or wd not in self._awake or not length:
                    continue
                if mask & IN_ISDIR and not mask & (IN_CREATE | IN_MOVED_TO):
                    continue  # a folder opened or removed: its files' own events say what happened
                key = (folder, os.fsdecode(raw.rstrip(b"\0")))
                before = masks.get(key, 0)
                if mask & IN_OPEN:
                    (opened_after if before & WRITTEN else opened_first).add(key)
                    last_open[key] = True
                if mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
                    last_open[key] = False
                if mask & IN_CLOSE_NOWRITE:  # a read only when opened in the cell, before any write
                    if before & IN_OPEN and not before & WRITTEN:
                        read_first.add(key)
                    elif before & WRITTEN:
                        closed_after.add(key)
                    mask &= ~IN_CLOSE_NOWRITE
                    if not mask:
                        continue
                masks[key] = before | mask
        held = (opened_first & closed_after) - opened_after  # opened before the write, closed after it
        if held and not self._left_open_unknown:
            read_first |= held - self._left_open
        self._left_open |= {key for key, opened in last_open.items() if opened}
        self._left_open -= {key for key, opened in last_open.items() if not opened}
        if len(self._left_open) > MAX_LEFT_OPEN:
            self._left_open_unknown = True
            self._left_open.clear()
        touches = [Touch(folder, name, mask, (folder, name) in read_first, (folder, name) in opened_first)
                   for (folder, name), mask in masks.items()]
        return touches, overflow

    def start(self, folders: list[str]) -> None:
        """The start of a cell: drop what happened since the last one, watch the folders this
        cell can reach (each name looked up anew: a folder replaced under its name is the one
        followed), and put the other awake ones to sleep."""
        self.collect()  # what happened between cells is for no cell
        was_awake, self._awake = self._awake, set()
        for folder in folders:
            self.watch(folder)
        self._sleep(was_awake - self._awake)
        while len(self._folders) > MAX_KEPT_WATCHES:
            wd = next(iter(self._folders))
            del self._folders[wd]
            self._awake.discard(wd)
            self._rm(self.fd, wd)

    def _sleep(self, wds: AbstractSet[int]) -> None:
        for wd in wds:
            folder = self._folders.get(wd)
            if folder is not None:
                self._ask(folder, SLEEP_MASK)

    def close(self) -> None:
        os.close(self.fd)  # closing the instance drops every watch at once
        self._folders.clear()
        self._named.clear()
        self._awake.clear()


def read_waiting(fd: int, size: int) -> bytes:
    """Whole events waiting on a non-blocking ``fd``, up to ``size`` bytes; empty when none."""
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise


def open_inotify() -> Inotify | None:
    """An inotify instance, or None where there is none (not Linux, or the limit is reached)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Inotify()
    except (OSError, AttributeError):
        return None
