"""Files a user names on the command line: read only a regular file, write never through a symlink.

A notebook, a key or an allowed-signers file, or a path given to ``-o``/``--report``,
may sit in a folder someone else controls (a cloned repository). Reading: a FIFO or a
device would block forever or never end, so the path must be a regular file before it
is opened, and it is opened without blocking (``O_NONBLOCK``) and checked again on the
descriptor, so a swap in between cannot hang the command either; a path handed to
another program (ssh-keygen) is checked the same way first. Writing: a symlink
in the file's own place (a dangling one too) is refused, never followed; the new
content goes to a temporary file in the same folder, renamed over the old one, so a
crash leaves the old file whole and a link swapped in after the check is replaced,
not written through (the same for a hard link's other names).

Folders above the file are the user's to choose and are followed; the lineage's own
``.nbgov/`` folder is guarded by nbgov.lineage.store.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO

from nbgov.errors import NbgovError


class UserFileError(NbgovError):
    """A named file nbgov will not (a symlink, a folder, a FIFO or device) or cannot read or write."""


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    """'a FIFO (named pipe)', ... for anything that is not a regular file."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


NO_SUCH_FILE = "no such file"


def not_regular(path: Path) -> str | None:
    """Why ``path`` (symlinks followed: reading is harmless) is no regular file to read:
    NO_SUCH_FILE (also for a name no file system holds, a lone surrogate or a NUL), 'is a
    FIFO (named pipe), not a file', 'cannot be read (...)'; None when it is one. Looked at
    before anything opens it: opening a FIFO waits for a writer."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, ValueError):
        return NO_SUCH_FILE
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None if stat.S_ISREG(mode) else f"is {_kind(mode)}, not a file"


def check_regular(path: Path, expected: str) -> None:
    """UserFileError (one line naming ``expected``) unless ``path`` is a regular file: for a
    path another program (ssh-keygen) opens by name, which would block on a FIFO."""
    why = not_regular(path)
    if why is not None:
        raise UserFileError(f"{path}: {why} (expected {expected})")


def open_regular(path: Path, expected: str) -> BinaryIO:
    """``path`` open for reading, refused with one line naming ``expected`` (UserFileError)
    when it is missing or no regular file, before the open and again on the descriptor."""
    check_regular(path, expected)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UserFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    fh = os.fdopen(fd, "rb")
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # swapped after the check: the open did not block on it
            raise UserFileError(f"{path}: is {_kind(mode)}, not a file (expected {expected})")
        os.set_blocking(fd, True)
    except BaseException:
        fh.close()
        raise
    return fh


def read_regular(path: Path, expected: str) -> bytes:
    """The bytes of ``path`` (``open_regular``'s checks and refusals)."""
    with open_regular(path, expected) as fh:
        return fh.read()


def _existing_mode(path: Path, dir_fd: int, advice: str = "") -> int | None:
    """The permission bits of ``path`` (looked at in its folder ``dir_fd``, its last link not
    followed) when it is a regular file, None when it is missing; UserFileError naming the
    path and why (then ``advice``) for anything else."""
    try:
        mode = os.lstat(path.name, dir_fd=dir_fd).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return stat.S_IMODE(mode)
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path.name, dir_fd=dir_fd)
        except OSError:
            target = "?"
        why = f"is a symlink (to {target[:200]!r}); nbgov does not write through a symlink"
    else:
        why = f"is {_kind(mode)}; nbgov writes only a regular file there"
    raise UserFileError(f"{path}: {why}{advice}")


def _open_folder(path: Path) -> int:
    if path.name in ("", ".", ".."):
        raise UserFileError(f"{path}: is a folder; name a file to write")
    try:
        return os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UserFileError(f"{path}: cannot write there ({path.parent}: {exc.strerror or exc})") from None


def check_writable(path: Path, advice: str = "") -> None:
    """UserFileError (one line, naming the path and why, then ``advice``) when
    ``write_replacing`` would refuse ``path``: said before a long run rather than after it."""
    if path.name not in ("", ".", "..") and not path.parent.exists():
        return  # a folder not made yet holds nothing to refuse
    dir_fd = _open_folder(path)
    try:
        _existing_mode(path, dir_fd, advice)
    finally:
        os.close(dir_fd)


def write_replacing(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path``, never through a symlink: a temporary file beside it,
    flushed to disk, renamed over it (an existing file keeps its permissions). A link
    swapped in after the check is replaced by the rename, never followed."""
    dir_fd = _open_folder(path)
    temp = f".nbgov-{secrets.token_hex(6)}.tmp"
    try:
        mode = _existing_mode(path, dir_fd)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666,
                         dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as fh:
                if mode is not None:  # a new file gets what the umask gives, as any new file
                    os.fchmod(fd, mode)
                fh.write(data)
                fh.flush()
                os.fsync(fd)
            os.replace(temp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            _remove_quietly(temp, dir_fd)
            raise UserFileError(f"{path}: cannot write ({exc.strerror or exc})") from None
        except BaseException:
            _remove_quietly(temp, dir_fd)
            raise
    finally:
        os.close(dir_fd)


def _remove_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def check_apart(output: Path, notebook: Path, what: str, in_place_ok: bool = False) -> None:
    """UserFileError (one line) when writing ``what`` to ``output`` would replace the notebook
    being reviewed or anything in its lineage folder (``.nbgov/``: its sidecar, a sidecar its
    metadata names, its signatures): a mistyped ``-o``/``--report`` must not destroy what it
    reports on. Paths are compared resolved and, when both exist, as files (samefile), so
    another spelling of the same path is caught. ``in_place_ok``: over the notebook is allowed
    (``nbgov run`` writes it in place)."""
    if not in_place_ok and _same_file(output, notebook):
        raise UserFileError(f"will not write {what} over the notebook being reviewed ({notebook.name}); "
                            "choose another path")
    from nbgov.lineage.store import sidecar_path

    folders = {sidecar_path(notebook).parent, sidecar_path(_resolved(notebook)).parent}
    inside = _resolved(output).parents
    if any(_same_file(ancestor, folder) for ancestor in inside for folder in folders):
        raise UserFileError(f"will not write {what} into {sidecar_path(notebook).parent}/, the lineage folder of "
                            f"{notebook.name} (its sidecar and signatures); choose another path")


def _resolved(path: Path) -> Path:
    """``path`` absolute with every symlink followed, also when its last parts do not exist yet."""
    return Path(os.path.realpath(path))


def _same_file(a: Path, b: Path) -> bool:
    """The same path once resolved, or (both existing) the same file: a hard link, a bind mount or
    a case-insensitive spelling too."""
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False
