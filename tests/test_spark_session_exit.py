"""A Spark session nbgov started stops quietly: the JVM closing its accumulator connection
(as when the session stops at interpreter exit) printed a BrokenPipeError traceback."""

from __future__ import annotations

import socket
import struct
import time

import pytest

pytestmark = pytest.mark.spark


def _update_then_hang_up(spark, payload: bytes) -> None:
    """What the JVM does when it stops: send to the accumulator server, close at once."""
    server = spark.sparkContext._accumulatorServer
    assert isinstance(server.server_address, str)  # nbgov's sessions use a Unix socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(server.server_address)
        sock.sendall(payload)
    time.sleep(1.5)  # the server polls once a second


def test_a_closed_accumulator_connection_prints_nothing(spark, capfd):
    capfd.readouterr()
    _update_then_hang_up(spark, struct.pack("!i", 0))  # an update, its acknowledgement unread
    _update_then_hang_up(spark, b"")  # closed before any update
    err = capfd.readouterr().err
    assert "BrokenPipeError" not in err and "Traceback" not in err, err


def test_other_accumulator_errors_are_still_printed(spark, capfd):
    """Only a peer gone is quiet: a malformed update's error still reaches stderr."""
    capfd.readouterr()
    _update_then_hang_up(spark, struct.pack("!i", 1) + struct.pack("!i", 3) + b"bad")
    assert "Exception occurred during processing of request" in capfd.readouterr().err
