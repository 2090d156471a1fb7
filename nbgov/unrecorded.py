"""nbgov's own file work is not the notebook's.

The lineage recorder's audit hook sees every file a process opens, removes or renames, in
every thread, while a cell runs. nbgov's compiled-kernel cache (publishing a library with
a temporary file and a rename, evicting old ones) and its temporary build folders are
nbgov's business, and happen or not depending on what an earlier run left in the cache:
recorded, they made a replay report "written/removed now, not in the recording". Code
doing such work runs inside ``unrecorded()``; the hook skips that thread meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_state = threading.local()


@contextmanager
def unrecorded() -> Iterator[None]:
    """File operations of this thread, meanwhile, are nbgov's own: not recorded."""
    before = getattr(_state, "on", False)
    _state.on = True
    try:
        yield
    finally:
        _state.on = before


def active() -> bool:
    """Whether this thread is inside ``unrecorded()``."""
    return bool(getattr(_state, "on", False))
