"""Which process touched a file: Linux fanotify beside inotify, through ctypes.

inotify reports every open, write and removal in a watched folder but not who made it,
so a file another process opened while a cell ran (a second notebook, the Jupyter
server's file browser, a tool writing a log) looked like the cell's own. fanotify reports
the same events with the process's id. Unprivileged (Linux 5.13+), it reports this
process's id for its own threads and 0 for every other process, its children included,
which is all the recorder needs: an event from this process is the cell's, one from
elsewhere is not, unless the cell may have had child processes (then the two cannot be
told apart, and the record says so).

The group watches the same folders as the inotify instance, with the same events (the
two APIs share their event bits). Its events name a file by its folder's file handle
and its name; the folder is known by the handle ``name_to_handle_at`` gives for it when
it is marked. Where fanotify cannot be had (not Linux, an older kernel, a container that
forbids it, a file system without file handles), nothing is known of origins and the
recorder keeps what inotify saw, as before.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from nbgov.lineage import gil_kept
from nbgov.lineage.inotify import WATCH_MASK, read_waiting

_FAN_CLOEXEC = 0x01
_FAN_NONBLOCK = 0x02
_FAN_CLASS_NOTIF = 0x00
_FAN_REPORT_DIR_FID = 0x400
_FAN_REPORT_NAME = 0x800
_FAN_MARK_ADD = 0x01
_FAN_MARK_REMOVE = 0x02
_FAN_MARK_ONLYDIR = 0x08
_FAN_EVENT_ON_CHILD = 0x08000000
_FAN_Q_OVERFLOW = 0x4000
_FAN_EVENT_INFO_TYPE_DFID_NAME = 2
_AT_FDCWD = -100
_AT_HANDLE_FID = 0x200
_AT_SYMLINK_FOLLOW = 0x400
_MAX_HANDLE_SZ = 128
_FAN_ONDIR = 0x40000000
# fanotify's event bits are inotify's: the same events are asked of both (and of folders
# in a marked one: a folder made there is made by someone)
_MARK_MASK = WATCH_MASK | _FAN_EVENT_ON_CHILD | _FAN_ONDIR
_METADATA = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_INFO_HEADER = struct.Struct("=BBH")  # info_type, pad, len
_FID = struct.Struct("=8sIi")  # fsid, handle_bytes, handle_type
_READ_SIZE = 1 << 16

FolderKey = tuple[bytes, int, bytes]  # (fsid, handle type, handle): a folder whatever its name now


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * _MAX_HANDLE_SZ)]


@dataclass(frozen=True)
class Origin:
    """What this process and what other processes did to one file (inotify's bits, OR-ed)."""

    own: int = 0
    other: int = 0


@dataclass(frozen=True)
class Origins:
    """Who touched the files of watched folders since the last read; ``complete`` is false
    when the OS dropped events (then a file missing here may still have been touched)."""

    files: Mapping[tuple[str, str], Origin]  # (folder, name) -> origin
    complete: bool

    def of(self, folder: str, name: str) -> Origin | None:
        """The file's origin, or None when nothing is known of it (not reported, or events
        were dropped: then what a process did may be missing from what is known)."""
        return self.files.get((folder, name)) if self.complete else None


class Fanotify:
    """One unprivileged fanotify group marking the folders given to ``follow``."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        init = libc.fanotify_init
        init.argtypes, init.restype = (ctypes.c_uint, ctypes.c_uint), ctypes.c_int
        self._mark = libc.fanotify_mark
        self._mark.argtypes = (ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p)
        self._handle_of = libc.name_to_handle_at
        self._handle_of.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_FileHandle),
                                    ctypes.POINTER(ctypes.c_int), ctypes.c_int)
        fd = init(_FAN_CLASS_NOTIF | _FAN_REPORT_DIR_FID | _FAN_REPORT_NAME | _FAN_CLOEXEC | _FAN_NONBLOCK,
                  os.O_RDONLY | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"fanotify_init: {os.strerror(err)}")
        self.fd: int = fd
        self._pid = os.getpid()
        self._watches: dict[int, str] = {}  # the inotify watches followed: descriptor -> folder
        self._keys: dict[int, FolderKey] = {}  # descriptor -> its folder's key, where it is marked
        self._folders: dict[FolderKey, str] = {}  # key -> folder, as events are resolved

    def follow(self, watches: Mapping[int, str]) -> None:
        """Mark exactly the folders of these inotify watches (descriptor -> folder: a new
        descriptor under a name means the name now holds another folder, marked anew).
        Nothing is asked of the OS when they are the ones marked already (most cells)."""
        if watches == self._watches:
            return
        for wd in [wd for wd, folder in self._watches.items() if watches.get(wd) != folder]:
            self._unmark(wd)
        for wd, folder in watches.items():
            if wd not in self._watches:
                self._mark_folder(wd, folder)
        self._watches = dict(watches)

    def _mark_folder(self, wd: int, folder: str) -> None:
        key = self._key(folder)
        if key is not None and self._mark(self.fd, _FAN_MARK_ADD | _FAN_MARK_ONLYDIR,
                                          _MARK_MASK, _AT_FDCWD, os.fsencode(folder)) == 0:
            self._folders[key] = folder
            self._keys[wd] = key
        # else no file handle or no mark here: nothing is known of this folder's origins

    def _unmark(self, wd: int) -> None:
        folder = self._watches.pop(wd)
        key = self._keys.pop(wd, None)
        if key is None:
            return
        if self._folders.get(key) == folder:
            del self._folders[key]
        # fails harmlessly when the folder is gone (its mark went with it) or was replaced
        self._mark(self.fd, _FAN_MARK_REMOVE | _FAN_MARK_ONLYDIR,
                   _MARK_MASK, _AT_FDCWD, os.fsencode(folder))

    def _key(self, folder: str) -> FolderKey | None:
        """The folder's identity as fanotify reports it: its file system's id and file handle."""
        handle = _FileHandle()
        mount_id = ctypes.c_int(0)
        # a named folder is followed through a symlink, as inotify follows it; AT_HANDLE_FID
        # (Linux 6.5+) asks for the handle fanotify reports, where older kernels give the same
        for flags in (_AT_SYMLINK_FOLLOW | _AT_HANDLE_FID, _AT_SYMLINK_FOLLOW):
            handle.handle_bytes = _MAX_HANDLE_SZ
            if self._handle_of(_AT_FDCWD, os.fsencode(folder), ctypes.byref(handle), ctypes.byref(mount_id),
                               flags) == 0:
                break
            if ctypes.get_errno() != errno.EINVAL:
                return None
        else:
            return None
        try:
            fsid = os.statvfs(folder).f_fsid
        except OSError:
            return None
        return (struct.pack("=II", fsid & 0xFFFFFFFF, (fsid >> 32) & 0xFFFFFFFF), handle.handle_type,
                bytes(handle.f_handle[: handle.handle_bytes]))

    def collect(self) -> Origins:
        """Who touched what in the marked folders since the last collect: the events queued
        when it is called (a process writing without pause cannot keep it reading)."""
        files: dict[tuple[str, str], Origin] = {}
        complete = True
        events = gil_kept.queued(self.fd) // _METADATA.size  # FIONREAD counts each event's metadata only
        while events > 0:
            data = read_waiting(self.fd, _READ_SIZE)  # whole events, as many as fit
            if not data:
                break
            offset = 0
            while events > 0 and offset + _METADATA.size <= len(data):
                length, _vers, _reserved, metadata_length, mask, _fd, pid = _METADATA.unpack_from(data, offset)
                if length < _METADATA.size or metadata_length < _METADATA.size:
                    return Origins({}, False)  # not the layout this reads: nothing is known
                events -= 1
                if mask & _FAN_Q_OVERFLOW:
                    complete = False
                for folder_key, name in _names(data[offset + metadata_length : offset + length]):
                    folder = self._folders.get(folder_key)
                    if folder is None:
                        continue
                    before = files.get((folder, name), Origin())
                    bits = mask & WATCH_MASK
                    files[(folder, name)] = (Origin(before.own | bits, before.other) if pid == self._pid
                                             else Origin(before.own, before.other | bits))
                offset += length
        return Origins(files, complete)

    def drop(self) -> None:
        """Forget what happened so far (between cells: for no cell)."""
        if gil_kept.queued(self.fd):
            self.collect()

    def close(self) -> None:
        os.close(self.fd)
        self._watches.clear()
        self._keys.clear()
        self._folders.clear()


def _names(info: bytes) -> list[tuple[FolderKey, str]]:
    """The (folder, name) pairs an event's information records give."""
    found: list[tuple[FolderKey, str]] = []
    offset = 0
    while offset + _INFO_HEADER.size <= len(info):
        info_type, _pad, length = _INFO_HEADER.unpack_from(info, offset)
        if length < _INFO_HEADER.size:
            break
        if info_type == _FAN_EVENT_INFO_TYPE_DFID_NAME:
            start = offset + _INFO_HEADER.size
            fsid, handle_bytes, handle_type = _FID.unpack_from(info, start)
            handle_start = start + _FID.size
            handle = info[handle_start : handle_start + handle_bytes]
            name = info[handle_start + handle_bytes : offset + length].split(b"\0", 1)[0]
            if name:
                found.append(((fsid, handle_type, handle), os.fsdecode(name)))
        offset += length
    return found


def open_fanotify() -> Fanotify | None:
    """A fanotify group, or None where there is none (not Linux, too old, or not allowed)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Fanotify()
    except (OSError, AttributeError):
        return None
