"""DuckDB's write-ahead log (``<db>.wal``) is its implementation, not data: the record
names the database, whose content is its file with its WAL (a commit lands in the WAL
first; the file changes at a checkpoint). A ``.wal`` file beside anything but a DuckDB
database is data like any other.

A real DuckDB in a real IPython shell with the recorder installed; the connection is kept
open across cells, as notebooks do, so the WAL outlives the cell.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nbgov.lineage import files
from tests.fixtures.lineage import RecordingShell


def _files(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["path"], f["mode"]): f for f in body["files"]}


def _run(recording: RecordingShell, code: str) -> dict[str, Any]:
    result = recording.run(code)
    result.raise_error()
    time.sleep(0.05)  # older than the next cell by more than the file system's clock tick
    return recording.body()


def test_a_duckdb_database_is_recorded_as_itself_with_its_wal_in_its_content(
        recording: RecordingShell, tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    made = _run(recording, "import duckdb\ncon = duckdb.connect('shop.duckdb')\n"
                           "con.sql('CREATE TABLE orders AS SELECT range AS id FROM range(10)')")
    assert (tmp_path / "shop.duckdb.wal").exists()  # not checkpointed: the table is in the WAL
    assert set(_files(made)) == {("shop.duckdb", "write")}, made["files"]
    first = _files(made)[("shop.duckdb", "write")]["hash"]
    assert first == files.content_hash(str(db)) and first != files.hash_file(str(db))

    body = _run(recording, "con.sql('INSERT INTO orders VALUES (10)')")  # into the WAL only
    assert set(_files(body)) == {("shop.duckdb", "write")}, body["files"]
    second = _files(body)[("shop.duckdb", "write")]["hash"]
    assert second not in (first, None)

    body = _run(recording, "con.close()")  # the checkpoint: into the file, the WAL gone
    assert not (tmp_path / "shop.duckdb.wal").exists()
    assert set(_files(body)) == {("shop.duckdb", "write")}, body["files"]
    assert _files(body)[("shop.duckdb", "write")]["hash"] == files.hash_file(str(db))

    body = _run(recording, "con = duckdb.connect('shop.duckdb', read_only=True)\n"
                           "n = con.execute('SELECT count(*) FROM orders').fetchone()[0]")
    assert body["files"] and {(f["path"], f["mode"]) for f in body["files"]} == {("shop.duckdb", "read")}


def test_a_wal_file_beside_a_file_that_is_no_database_is_data(recording: RecordingShell, tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("plain text\n")
    native = _run(recording, "import subprocess\n"
                             "subprocess.run('echo line >> notes.wal; echo more >> notes-journal', shell=True, check=True)")
    assert set(_files(native)) == {("notes.wal", "write"), ("notes-journal", "write")}, native["files"]
    python = _run(recording, "with open('notes.wal', 'w') as f:\n    f.write('log line')")
    assert set(_files(python)) == {("notes.wal", "write")}, python["files"]
