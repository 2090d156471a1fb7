"""The SparkSession a ``--engine spark`` cell runs on.

The active session when the notebook already has one (its settings are the user's and
are left alone); otherwise one started from ``SqlML.spark_master``, configured so a
notebook stays readable: Arrow transfers on, no UI, no console progress bar, Spark's
own log lines off, a local master's workers running the kernel's own Python (so they
import nbgov and pyarrow) from nbgov's daemon (``daemon.py``: a worker whose JVM hung up
after a failed task prints no traceback into the cell), and Python talking to the JVM over
Unix sockets.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbgov.errors import SqlmlError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"
_LOG4J = os.path.join(os.path.dirname(__file__), "log4j2.properties")

# Settings of a session nbgov starts; a session the user started keeps its own.
STARTED_SESSION_CONF: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{_LOG4J}",
    "spark.executor.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{_LOG4J}",
    "spark.pyspark.python": sys.executable,
    "spark.pyspark.driver.python": sys.executable,
    # results and frames cross between the JVM and Python over a private Unix socket, not a
    # localhost TCP port: no other local process can reach it, and a stray client that
    # reconnects to a recycled port (a stopped kernel's ZMQ socket sends 0xFF000000 first)
    # cannot take the result's connection (Spark then failed the query)
    "spark.python.unix.domain.socket.enabled": "true",
}

# On a local master the Python workers' stderr is the kernel's, shown in the notebook: they
# run from nbgov's daemon, which keeps the traceback of a worker whose JVM hung up out of it.
# Elsewhere it goes to the executors' logs, and executors run PySpark's own daemon.
LOCAL_SESSION_CONF: dict[str, str] = {"spark.python.daemon.module": "nbgov.sqlml.spark.daemon"}


def _local(master: str) -> bool:
    """``local``, ``local[2]``, ``local[*]``, ``local[2,3]``: a master running in this process's JVM."""
    return master == "local" or master.startswith("local[") and master.endswith("]")


@dataclass(frozen=True)
class SparkHandle:
    """A session and whether nbgov started it (then nbgov may stop it)."""

    session: SparkSession
    started: bool


def pyspark_missing() -> str | None:
    """Why the Spark engine cannot start here, or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "the spark engine needs PySpark: pip install 'nbgov[spark]'"
    return None


def java_missing() -> str | None:
    """Why no JVM can be launched, or None: PySpark starts Spark with ``java``."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return None
    if shutil.which("java"):
        return None
    return "the spark engine needs Java 17 (Debian: apt-get install openjdk-17-jre-headless) or JAVA_HOME set"


def active_session() -> SparkSession | None:
    """The notebook's active (or default) SparkSession, if it has one; never starts one."""
    if pyspark_missing() is not None:
        return None
    from pyspark.errors import PySparkRuntimeError
    from pyspark.sql import SparkSession

    try:
        return SparkSession.active()
    except PySparkRuntimeError:  # NO_ACTIVE_OR_DEFAULT_SESSION
        return None


def spark_session(master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None) -> SparkHandle:
    """The active session, or a new one on ``master`` (e.g. ``local[2]``, ``spark://host:7077``)
    with nbgov's settings plus ``conf``."""
    missing = pyspark_missing()
    if missing is not None:
        raise SqlmlError(missing)
    active = active_session()
    if active is not None:
        return SparkHandle(active, started=False)
    missing = java_missing()
    if missing is not None:
        raise SqlmlError(missing)
    from pyspark.sql import SparkSession

    builder: Any = SparkSession.builder.master(master).appName("nbgov")
    local = LOCAL_SESSION_CONF if _local(master.strip()) else {}
    for key, value in {**STARTED_SESSION_CONF, **local, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        with _local_workers_run(sys.executable, master):
            session = builder.getOrCreate()
    except Exception as error:  # the JVM did not start: bad master URL, no memory, ...
        message = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise SqlmlError(f"cannot start Spark on master {master!r}: {message}") from None
    session.sparkContext.setLogLevel("OFF")
    _quiet_closed_updates(session.sparkContext)
    return SparkHandle(session, started=True)


# the JVM's end of a connection went away: its updates are moot, nothing failed in Python
_PEER_GONE = (BrokenPipeError, ConnectionResetError, EOFError)


def _quiet_closed_updates(context: Any) -> None:
    """PySpark's accumulator server acknowledges each update the JVM sends; when the JVM
    closes the connection first (the session stopping, at interpreter exit), the
    acknowledgement fails and ``socketserver`` printed a BrokenPipeError traceback on
    stderr. A peer gone is ignored; any other error is still printed."""
    server = getattr(context, "_accumulatorServer", None)
    if server is None:
        return
    printed = server.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], _PEER_GONE):
            printed(request, client_address)

    server.handle_error = handle_error


@contextmanager
def _local_workers_run(python: str, master: str) -> Iterator[None]:
    """While a SparkContext starts on a local master, ``PYSPARK_PYTHON`` names the kernel's
    own Python (unless the user set it): PySpark takes its workers' Python from that
    variable alone (``spark.pyspark.python`` is read by spark-submit, not by a context
    started in a notebook), so a kernel run from a virtualenv that is not first on PATH
    scored nothing ("No module named 'pyarrow'" on every worker). The variable is restored
    after: the context has kept its choice."""
    if "PYSPARK_PYTHON" in os.environ or not master.startswith("local"):
        yield
        return
    os.environ["PYSPARK_PYTHON"] = python
    try:
        yield
    finally:
        os.environ.pop("PYSPARK_PYTHON", None)
