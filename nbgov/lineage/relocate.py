"""Move a sidecar when its notebook is renamed or moved, so recording follows the notebook.

The file is moved whole (``rename``, or copy then remove across file systems) while
holding the same lock appends take, so its entries, hashes and chain are unchanged and
no append lands half in each file. A log already at the new name (left by a deleted
notebook) is kept aside, never overwritten. Symbolic links are never followed: a
sidecar or ``.nbgov`` folder that is a link is left alone and the move is refused.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path


def move_sidecar(old: Path, new: Path) -> str | None:
    """Move ``old`` to ``new``; returns one line for the user when something was not plain."""
    for path in (old, old.parent, new.parent, new):
        if path.is_symlink():
            return f"lineage log not moved to {new}: {path} is a symbolic link"
    if not old.exists():
        return None
    new.parent.mkdir(parents=True, exist_ok=True)
    if new.parent.is_symlink():
        return f"lineage log not moved to {new}: {new.parent} is a symbolic link"
    note = None
    fd = os.open(old, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if new.exists() and new.stat().st_size > 0:
            kept = _free_name(new)
            os.rename(new, kept)
            note = f"an older lineage log named {new.name} was kept as {kept.name}"
        try:
            os.rename(old, new)
        except OSError:  # another file system: copy, make it durable, then remove
            shutil.copyfile(old, new, follow_symlinks=False)
            with open(new, "rb") as copied:
                os.fsync(copied.fileno())
            os.unlink(old)
    finally:
        os.close(fd)
    return note


def _free_name(path: Path) -> Path:
    for n in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}.before-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"no free name next to {path}")
