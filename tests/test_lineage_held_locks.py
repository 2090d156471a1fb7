"""Reading a file the notebook's libraries hold a POSIX lock on leaves the lock in place.

Closing any descriptor of a file drops every POSIX lock the process holds on it: hashing a
DuckDB database (locked while a connection is open) or a sqlite one in a transaction, then
closing the descriptor, let another process open it for writing beside the notebook's
connection. Each test checks the lock from another process, as that process would meet it;
each fails when nbgov closes its descriptor as before.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from nbgov.lineage import duckdb_connections, files, held_locks
from nbgov.lineage.database_files import is_duckdb
from tests.fixtures.lineage import RecordingShell, files_by_use, run_settled


def _other_process(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()


def _lock_free(path: Path) -> str:
    return _other_process(
        "import fcntl, os\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
        "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    print('free')\n"
        "except OSError:\n    print('locked')")


def test_a_locked_file_hashed_and_looked_into_stays_locked_and_is_closed_once_unlocked(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 10_000)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        before = held_locks.kept()
        for _ in range(50):  # a database hashed in every cell of a session: one descriptor kept, not fifty
            assert files.hash_file(str(path)) == files.hash_file(str(path))
            assert is_duckdb(str(path)) is False
        assert _lock_free(path) == "locked"
        assert held_locks.kept() == before + 1 and _descriptors_of(path) == 2  # the notebook's and the kept one
        fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    other = tmp_path / "other.bin"
    other.write_bytes(b"y")
    files.hash_file(str(other))  # the next close closes what was kept for a lock now gone
    assert _descriptors_of(path) == 0
    assert _lock_free(path) == "free"


def _descriptors_of(path: Path) -> int:
    """This process's open descriptors on ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue
    return count


def test_a_duckdb_database_queried_and_hashed_stays_locked_for_its_connection(
        recording: RecordingShell, tmp_path: Path) -> None:
    run_settled(recording, "import duckdb\ncon = duckdb.connect('shop.duckdb')\n"
                           "con.execute('CREATE TABLE t AS SELECT range AS x FROM range(5)')")
    body = run_settled(recording, "rows = con.sql('SELECT * FROM t').fetchall()")  # its header read, then hashed
    assert ("shop.duckdb", "read") in files_by_use(body)
    assert duckdb_connections.held_databases(lambda path: False)
    refused = _other_process(
        f"import duckdb\ntry:\n    duckdb.connect({str(tmp_path / 'shop.duckdb')!r})\n    print('opened')\n"
        "except duckdb.IOException:\n    print('refused')")
    assert refused == "refused", "another process opened the database beside the notebook's connection"


def test_a_sqlite_transaction_left_open_keeps_its_lock_after_the_cell(
        recording: RecordingShell, tmp_path: Path) -> None:
    run_settled(recording, "import sqlite3\ncon = sqlite3.connect('db.sqlite')\ncon.execute('create table t (x)')\n"
                           "con.commit()")
    body = run_settled(recording, "con.execute('BEGIN IMMEDIATE')\ncon.execute('insert into t values (1)')")
    assert ("db.sqlite", "write") in files_by_use(body)  # hashed after the cell, the transaction open
    written = _other_process(
        f"import sqlite3\nother = sqlite3.connect({str(tmp_path / 'db.sqlite')!r}, timeout=0)\n"
        "try:\n    other.execute('BEGIN IMMEDIATE')\n    print('written')\nexcept sqlite3.OperationalError:\n"
        "    print('locked')")
    assert written == "locked", "another process could write in the middle of the notebook's transaction"
    recording.run("con.rollback(); con.close()")
