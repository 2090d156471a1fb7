"""Files a replayed step must not be run against: a FIFO, a device or a socket where it read,
a FIFO where it wrote.

A step's record names the files it read. When one of them is now (or was already when
recorded) a FIFO (named pipe), a character or block device or a socket, running the step
would not reproduce anything: its open of a FIFO waits for a writer until ``--timeout``,
a terminal or ``/dev/stdin`` waits for input nobody types, and whatever such a file gives
is not content the record could have hashed. Replay looks before the step runs, with
``lstat``/``stat`` only (nothing is opened, so nothing here can block), and stops there
with one line naming the file and what it is. A symlink is followed to see what it leads
to, and the line says so: the path the cell named and where it really leads.

Folders and missing files are not this module's: opening them fails at once, and the
step's own error (and ``compare.precheck_files``) says what happened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nbgov.lineage import files
from nbgov.lineage.placement import Placement
from nbgov.lineage.record import ExecutionRecord, FileAccess

# why a read of each kind (nbgov.lineage.files.SPECIAL_KINDS, the recorder's names) cannot reproduce
_WHY = {
    files.FIFO: "opening it waits for a writer",
    "a character device": "reading it waits for input or gives no file's content",
    "a block device": "what it holds is no file's content",
    "a socket": "it holds no file's content",
}


@dataclass(frozen=True)
class BlockingInput:
    """A file a step read that is no regular file now: ``kind`` ('a FIFO (named pipe)', ...),
    ``why`` a read of it cannot reproduce, ``via``: where a symlink on the way led (None: no
    link followed)."""

    file: FileAccess  # the read as recorded
    shown: str  # how the user knows it (relative paths as the cell wrote them)
    kind: str
    why: str
    via: str | None = None
    linked: bool = False  # the path itself is a symlink (else ``via`` is through a folder's)

    def text(self) -> str:
        """'data.csv is a FIFO (named pipe): ...'; for a link 'data.csv is a symlink to
        /x/pipe, which is a FIFO (named pipe): ...'; through a linked folder 'sub/data.csv
        (through a symlinked folder: /x/data.csv) is a FIFO (named pipe): ...'."""
        if self.via is None:
            return f"{self.shown} is {self.kind}: {self.why}"
        if self.linked:
            return f"{self.shown} is a symlink to {self.via}, which is {self.kind}: {self.why}"
        return f"{self.shown} (through a symlinked folder: {self.via}) is {self.kind}: {self.why}"


def blocking_kind(path: Path) -> tuple[str, str, str | None, bool] | None:
    """(what ``path`` is, why a read of it cannot reproduce, where a symlink led or None,
    whether the path itself is the link) when
    it is a FIFO, a device or a socket, itself or at the end of its symlinks; None for a
    regular file, a folder, nothing there, or a path that cannot be looked at. Only
    ``lstat``/``stat``/``realpath``: nothing is opened."""
    try:
        own = os.lstat(path).st_mode
        mode = os.stat(path).st_mode if stat.S_ISLNK(own) else own
    except (OSError, ValueError):  # missing, a dangling or looping link, a name no file system holds
        return None
    kind = files.special_kind(mode)
    if kind is None:
        return None
    real = os.path.realpath(path)
    via = real if real != os.path.abspath(path) else None  # a link, here or in a folder above
    return kind, _WHY.get(kind, "it holds no file's content"), via, stat.S_ISLNK(own)


def first_blocking(record: ExecutionRecord, placement: Placement,
                   skip: Callable[[FileAccess], bool] = lambda file: False) -> BlockingInput | None:
    """The first file ``record`` read that is a FIFO, device or socket where ``placement`` puts
    it now (the replay folder, as every other check reads it), or wrote that is a FIFO now (its
    open for writing waits for a reader; a device or socket takes the write or fails at once),
    or None; ``skip``: files that are no notebook data (nbgov's own modules). One ``lstat`` per
    file (two for a link): cheap enough before every step."""
    for file in record.files:
        if skip(file):
            continue
        found = blocking_kind(placement.path(file))
        if found is None:
            continue
        if file.mode == "read":
            return BlockingInput(file, placement.shown(file), *found)
        if found[0] == files.FIFO:
            return BlockingInput(file, placement.shown(file), found[0], _WRITE_WAITS, *found[2:])
    return None


_WRITE_WAITS = "opening it to write waits for a reader"
