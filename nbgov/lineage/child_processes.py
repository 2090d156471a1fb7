"""Whether a cell may have had child processes, whose file events look like any other
process's (fanotify names this process only, see ``fanotify``).

Three signs, any of which counts: the cell started a process through Python (an audit
event: ``subprocess``, ``os.system``, ``os.fork``...), a child's CPU time was added to
this process's when a child ended during the cell (native code that starts and waits for
a process raises no audit event), or this process has a child at the cell's end (one
started by an earlier cell, a Spark JVM for instance, may act during any cell).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from nbgov.lineage import files

_TASKS = "/proc/self/task"


def _reaped_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def has_children() -> bool:
    """A child process is alive now (True too where ``/proc`` cannot say)."""
    if not os.path.exists(f"{_TASKS}/{os.getpid()}/children"):
        return True  # a kernel built without the listing: cannot tell
    try:
        tasks = os.listdir(_TASKS)
    except OSError:
        return True
    for task in tasks:
        try:
            with open(f"{_TASKS}/{task}/children", "rb") as listing:
                if listing.read().strip():
                    return True
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        except OSError:
            return True
    return False


@dataclass(frozen=True)
class ChildWatch:
    """Taken when a cell starts; ``possible`` asked at its end."""

    spawned: int
    reaped_cpu: float

    @classmethod
    def start(cls) -> ChildWatch:
        return cls(files.spawned(), _reaped_cpu())

    def possible(self) -> bool:
        """The cell may have had a child process (or a child of an earlier cell lives on)."""
        return files.spawned() != self.spawned or _reaped_cpu() != self.reaped_cpu or has_children()
