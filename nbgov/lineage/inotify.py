"""Linux inotify through ctypes: what was opened, read and written in a few folders.

The audit hook sees only files opened through Python; pyarrow, polars and DuckDB call
the C library directly. The kernel reports every open and close of a file to an inotify
watch on its folder, whoever made the call, so a watch kept for the length of a cell
sees native reads as they happen (stat'ing before and after can only see writes, and
naming a path proves nothing). Only a bounded number of folders is watched per cell,
and only open/close/modify/create events are asked for (not one event per read()).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from dataclasses import dataclass

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC

WATCH_MASK = IN_OPEN | IN_MODIFY | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_CREATE | IN_MOVED_TO
WRITTEN = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO
OPENED = IN_OPEN | IN_CLOSE_NOWRITE
_EVENT = struct.Struct("iIII")
_BUFFER = 64 * 1024


@dataclass(frozen=True)
class Touch:
    """Everything the OS reported about one file of a watched folder, OR-ed together."""

    folder: str
    name: str
    mask: int

    @property
    def path(self) -> str:
        return os.path.join(self.folder, self.name)

    @property
    def written(self) -> bool:
        return bool(self.mask & WRITTEN)


class Inotify:
    """One inotify instance: ``watch`` folders, ``collect`` what happened, ``clear`` the watches."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd
        self._folders: dict[int, str] = {}  # watch descriptor -> folder

    def watch(self, folder: str) -> bool:
        """Watch a folder (not following a symlinked folder); False if it cannot be watched."""
        wd = self._add(self.fd, os.fsencode(folder), WATCH_MASK | IN_ONLYDIR | IN_EXCL_UNLINK)
        if wd < 0:
            return False
        self._folders[wd] = folder
        return True

    def collect(self) -> tuple[list[Touch], bool]:
        """Files touched since the last collect, and whether the OS dropped events (overflow)."""
        masks: dict[tuple[str, str], int] = {}
        overflow = False
        while True:
            try:
                data = os.read(self.fd, _BUFFER)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    overflow = True
                    continue
                folder = self._folders.get(wd)
                if folder is None or mask & (IN_ISDIR | IN_IGNORED) or not length:
                    continue
                key = (folder, os.fsdecode(raw.rstrip(b"\0")))
                masks[key] = masks.get(key, 0) | mask
        return [Touch(folder, name, mask) for (folder, name), mask in masks.items()], overflow

    def clear(self) -> None:
        """Remove every watch (pending events of removed watches are dropped by collect)."""
        for wd in list(self._folders):
            self._rm(self.fd, wd)
        self._folders.clear()

    def close(self) -> None:
        self.clear()
        os.close(self.fd)


def open_inotify() -> Inotify | None:
    """An inotify instance, or None where there is none (not Linux, or the limit is reached)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Inotify()
    except (OSError, AttributeError):
        return None
