"""Which of the file events inotify saw during a cell were the cell's own.

inotify reports every process's opens in a watched folder; fanotify says which were this
process's (``fanotify.Origins``). A file only other processes touched is not the cell's
and is left out, with a note naming it, unless the cell may have had child processes
(``child_processes``): then nothing tells the cell's own subprocess from a stranger, and
the file stays the cell's, with a note saying so. A file both touched keeps what this
process did: another process's read claims nothing for the cell, and another process's
write or removal makes what the cell read unknown (its content now is not what it read).
Where origins are unknown (no fanotify, dropped events, a file it did not report), every
event is kept, as inotify saw it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nbgov.lineage.fanotify import Origins
from nbgov.lineage.inotify import (IN_CLOSE_NOWRITE, IN_CREATE, IN_MOVED_TO, IN_OPEN, TAKEN_AWAY, WATCH_MASK,
                                   WRITTEN, Touch)

_SHOWN = 5  # paths named in one note


@dataclass(frozen=True)
class OwnTouches:
    """The cell's own share of what inotify saw, and what the record says about the rest."""

    touches: list[Touch]
    read_then_changed: frozenset[str] = frozenset()  # read by the cell, changed by another process
    notes: tuple[str, ...] = ()


def own_touches(touches: list[Touch], origins: Origins | None, children_possible: Callable[[], bool],
                cwd: str) -> OwnTouches:
    """The touches this process made (see the module's text); ``children_possible`` is asked
    only when another process touched a watched file."""
    if origins is None:
        return OwnTouches(touches)
    kept: list[Touch] = []
    left_out: list[str] = []
    shared: list[str] = []  # kept though another process touched them: a child may have
    also_written: list[str] = []
    read_then_changed: set[str] = set()
    children: bool | None = None
    for touch in touches:
        origin = origins.of(touch.folder, touch.name)
        if origin is None or not origin.other:
            kept.append(touch)
            continue
        if children is None:
            children = children_possible()
        if children:
            kept.append(touch)
            shared.append(touch.path)
            continue
        own = _own_share(touch, origin.own)
        if own is None:
            left_out.append(touch.path)
            continue
        kept.append(own)
        if origin.other & (WRITTEN | TAKEN_AWAY) and not touch.new_folder:
            if own.written:
                also_written.append(touch.path)
            elif own.opened:
                read_then_changed.add(touch.path)
    notes = []
    if left_out:
        notes.append(f"not recorded, opened only by another process while the cell ran (the cell started no "
                     f"process): {_named(left_out, cwd)}")
    if shared:
        notes.append(f"recorded as the cell's, though another process opened them while it ran (a process the "
                     f"cell started is not told from others): {_named(shared, cwd)}")
    if also_written:
        notes.append(f"also written by another process while the cell ran, so what they hold after it may not be "
                     f"the cell's alone: {_named(also_written, cwd)}")
    return OwnTouches(kept, frozenset(read_then_changed), tuple(notes))


def _own_share(touch: Touch, own: int) -> Touch | None:
    """What this process did to the file, or None when it did nothing the cell could claim."""
    if touch.new_folder:  # a folder made in the cell: by this process, or not the cell's
        return touch if own & (IN_CREATE | IN_MOVED_TO) else None
    mask = touch.mask & (own | ~WATCH_MASK)
    if not mask & WATCH_MASK & ~IN_CLOSE_NOWRITE:
        return None  # nothing, or only the close of a handle opened before the cell
    opened = bool(own & IN_OPEN)
    return dataclasses.replace(touch, mask=mask, opened_first=touch.opened_first and opened,
                               read_first=touch.read_first and opened and bool(own & IN_CLOSE_NOWRITE))


def _named(paths: Iterable[str], cwd: str) -> str:
    shown = [_relative(path, cwd) for path in sorted(paths)]
    more = len(shown) - _SHOWN
    return ", ".join(shown[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _relative(path: str, cwd: str) -> str:
    rel = os.path.relpath(path, cwd)
    return path if rel.startswith("..") else rel
