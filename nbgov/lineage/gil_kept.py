"""The few system calls recording makes in every cell, made without releasing the GIL.

CPython releases the GIL around a system call. During a cell another thread is often
waiting for it: IPython's history writer, which every cell wakes, and a kernel's IOPub
thread with the cell's messages to send. That thread takes the GIL at the first release,
and the recorder waits for it back: measured here, a call that takes one microsecond then
costs fifteen. These calls never wait long (a lock tried without waiting, the working
folder's name, the size of an open file, which file a local path names, a small append
to a local file), so keeping the GIL through them costs nothing. A lock another process holds is waited for with the usual
call, which releases the GIL. Where the C library cannot be loaded, the usual calls are
made.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import sys
import termios
import threading
from typing import Any


def _libc() -> Any:
    try:
        libc = ctypes.PyDLL(None, use_errno=True)  # a PyDLL function keeps the GIL
        functions = (libc.getcwd, libc.flock, libc.lseek, libc.write, libc.ioctl)
    except (OSError, AttributeError):
        return None
    getcwd, flock, lseek, write, ioctl = functions
    ioctl.argtypes, ioctl.restype = [ctypes.c_int, ctypes.c_ulong, ctypes.POINTER(ctypes.c_int)], ctypes.c_int
    getcwd.argtypes, getcwd.restype = [ctypes.c_char_p, ctypes.c_size_t], ctypes.c_void_p
    flock.argtypes, flock.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    lseek.argtypes, lseek.restype = [ctypes.c_int, ctypes.c_int64, ctypes.c_int], ctypes.c_int64
    write.argtypes, write.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_ssize_t
    return libc


def _lstat(libc: Any) -> Any:
    """The C library's ``lstat`` where ``struct stat`` starts with 64-bit ``st_dev`` and
    ``st_ino`` (64-bit Linux: x86-64 and the generic layout arm64 uses); None elsewhere, or
    where the C library does not export it (glibc before 2.33)."""
    if libc is None or not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    function = getattr(libc, "lstat", None)
    if function is not None:
        function.argtypes, function.restype = [ctypes.c_char_p, ctypes.c_void_p], ctypes.c_int
    return function


_LIBC = _libc()
_LSTAT = _lstat(_LIBC)
_PATH_MAX = 4096
_STAT_SIZE = 256  # more than any 64-bit Linux struct stat (144 bytes on x86-64, 128 on arm64)


class _Buffers(threading.local):
    """Each thread's own buffers for the calls below (made once per thread, not per call: an
    allocation per call cost as much as the call; shared, two threads could mix answers)."""

    def __init__(self) -> None:
        self.path = ctypes.create_string_buffer(_PATH_MAX)
        self.count = ctypes.c_int(0)
        self.count_ref = ctypes.byref(self.count)
        self.stat = (ctypes.c_uint64 * (_STAT_SIZE // 8))()


_buffers = _Buffers()


def getcwd() -> str:
    """``os.getcwd()``: the same text, the same errors (a removed folder raises)."""
    buffer = _buffers.path
    if _LIBC is None or _LIBC.getcwd(buffer, _PATH_MAX) is None:
        return os.getcwd()  # no C library, a path too long for the buffer, or an error to raise
    return os.fsdecode(buffer.value)


def lock(fd: int, operation: int) -> None:
    """``fcntl.flock(fd, operation)``: tried first without waiting; a lock another process
    holds is then waited for with the GIL released."""
    if _LIBC is not None and _LIBC.flock(fd, operation | fcntl.LOCK_NB) == 0:
        return
    fcntl.flock(fd, operation)


def size(fd: int) -> int:
    """The size of the open file ``fd`` (its offset moved to the end: for a file opened to
    append, where every write goes to the end anyway)."""
    if _LIBC is None:
        return os.fstat(fd).st_size
    end = _LIBC.lseek(fd, 0, os.SEEK_END)
    if end < 0:
        raise _error()
    return int(end)


def identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(device, inode) of what ``path`` names, not following a final symlink (``os.lstat``);
    None when nothing is there. Other errors raise OSError, as ``os.lstat`` would."""
    if _LSTAT is not None:
        found = _buffers.stat
        if _LSTAT(os.fsencode(path), found) == 0:
            return int(found[0]), int(found[1])
        if ctypes.get_errno() in (errno.ENOENT, errno.ENOTDIR):
            return None
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info.st_dev, info.st_ino


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``; an error raises OSError, as ``os.write`` would."""
    if _LIBC is None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return
    done = 0
    while done < len(data):
        part = data[done:] if done else data
        n = _LIBC.write(fd, part, len(part))
        if n < 0:
            if ctypes.get_errno() == errno.EINTR:
                continue
            raise _error()
        if n == 0:
            raise OSError(errno.EIO, "short write to lineage log")
        done += n


def queued(fd: int) -> int:
    """What ``FIONREAD`` says is waiting on ``fd`` (never blocks)."""
    buffers = _buffers
    count = buffers.count
    if _LIBC is None:
        fcntl.ioctl(fd, termios.FIONREAD, count)  # fills ``count``
        return count.value
    if _LIBC.ioctl(fd, termios.FIONREAD, buffers.count_ref) < 0:
        raise _error()
    return count.value


def _error() -> OSError:
    code = ctypes.get_errno()
    return OSError(code, os.strerror(code))
