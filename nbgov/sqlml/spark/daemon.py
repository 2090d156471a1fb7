"""PySpark's Python daemon (``pyspark.daemon``) for a local session nbgov starts, with one
difference: a worker whose JVM end hung up exits without a traceback.

On a local master the daemon's stderr is the JVM's, which is the kernel's: ipykernel
shows it in whichever cell runs when it arrives. When a task fails (onnxruntime refused a
value in one worker), Spark fails the stage and closes its connections to the workers still
talking to it; each then fails to flush its last output, and the daemon printed that
``BrokenPipeError`` as a multi-line traceback from ``pyspark/daemon.py``, in the failing
cell and, late, in the next one. The worker was done: the error that matters reaches the
driver through the task, and nbgov says it in one line. Only that case is quiet (a
``BrokenPipeError``/``ConnectionResetError`` raised out of the daemon's ``worker``); the
worker then exits with status 1 as the daemon makes it, and anything else a worker raises
is printed as before.

Spark starts it as ``python -m nbgov.sqlml.spark.daemon`` (``spark.python.daemon.module``,
``session.py``): importing ``nbgov`` starts no thread, which the daemon's fork requires.
"""

from __future__ import annotations

import os
from typing import Any

# the JVM's end of the worker's connection went away: nothing failed in Python
_PEER_GONE = (BrokenPipeError, ConnectionResetError)


def main() -> None:
    import pyspark.daemon as daemon

    serve = getattr(daemon, "worker", None)
    if serve is None:  # a PySpark whose daemon is shaped otherwise: run it as it is
        daemon.manager()
        return

    def worker(*args: Any, **kwargs: Any) -> int:
        try:
            return serve(*args, **kwargs)
        except _PEER_GONE:
            os._exit(1)  # as the daemon exits a failed worker, without printing its traceback

    daemon.worker = worker  # the forked child's call (``manager`` reads the module global)
    daemon.manager()


if __name__ == "__main__":
    main()
