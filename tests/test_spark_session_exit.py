"""A Spark session nbgov started stops quietly: the JVM closing its accumulator connection
(as when the session stops at interpreter exit) printed a BrokenPipeError traceback.

Each test runs PySpark's own accumulator server, fresh: the shared session's server is
single-threaded and, once the JVM has connected to send updates (after any scoring), it
serves that connection only, so a test connection to it would wait unanswered."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nbgov.sqlml.spark.session import _quiet_closed_updates

pytestmark = pytest.mark.spark


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    """PySpark's accumulator server on a Unix socket, quietened as nbgov's sessions are;
    ``server.served`` is set each time it is done with a connection (its error, if any,
    printed)."""
    from pyspark.accumulators import _start_update_server

    started = _start_update_server("", is_unix_domain_sock=True, socket_path=str(tmp_path / "acc.sock"))
    _quiet_closed_updates(SimpleNamespace(_accumulatorServer=started))
    started.served = threading.Event()
    close = started.shutdown_request

    def closed(request: Any) -> None:  # socketserver's last step for a connection, after handle_error
        close(request)
        started.served.set()

    started.shutdown_request = closed
    try:
        yield started
    finally:
        started.shutdown()


def _update_then_hang_up(server: Any, payload: bytes) -> None:
    """What the JVM does when it stops: send to the accumulator server, close at once;
    returns once the server has finished with the connection."""
    server.served.clear()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(server.server_address)
        sock.sendall(payload)
    assert server.served.wait(timeout=30), "the accumulator server never finished the connection"


def test_a_closed_accumulator_connection_prints_nothing(server: Any, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    _update_then_hang_up(server, struct.pack("!i", 0))  # an update, its acknowledgement unread
    _update_then_hang_up(server, b"")  # closed before any update
    err = capfd.readouterr().err
    assert "BrokenPipeError" not in err and "Traceback" not in err, err


def test_other_accumulator_errors_are_still_printed(server: Any, capfd: pytest.CaptureFixture[str]) -> None:
    """Only a peer gone is quiet: a malformed update's error still reaches stderr."""
    capfd.readouterr()
    _update_then_hang_up(server, struct.pack("!i", 1) + struct.pack("!i", 3) + b"bad")
    assert "Exception occurred during processing of request" in capfd.readouterr().err


def test_sessions_nbgov_starts_are_quietened(spark: Any) -> None:
    server = spark.sparkContext._accumulatorServer
    assert server.handle_error.__qualname__.startswith("_quiet_closed_updates")
