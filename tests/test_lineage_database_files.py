"""Embedded databases' own files are their implementation, not data: sqlite's ``-wal``,
``-shm`` and ``-journal``, DuckDB's ``<db>.wal``. The record names the database, whose
content is its file with its journal or WAL (a commit lands in the WAL first; the file
changes at a checkpoint). A side file's name beside anything but its engine's database is
data like any other.

Real sqlite and DuckDB databases in a real IPython shell with the recorder installed;
connections are kept open across cells, as notebooks do, so the side files outlive the cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbgov.lineage import files
from tests.fixtures.lineage import RecordingShell, files_by_use, run_settled

SIDE = ("-wal", "-shm", "-journal")


def test_a_wal_database_is_recorded_as_itself_with_its_wal_in_its_content(
        recording: RecordingShell, tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    made = run_settled(recording, "import sqlite3\ncon = sqlite3.connect('db.sqlite')\n"
                           "con.execute('PRAGMA journal_mode=WAL')\ncon.execute('create table t (x)')\n"
                           "con.execute('insert into t values (1)')\ncon.commit()")
    assert (tmp_path / "db.sqlite-wal").exists() and (tmp_path / "db.sqlite-shm").exists()
    assert set(files_by_use(made)) == {("db.sqlite", "write")}, made["files"]
    first = files_by_use(made)[("db.sqlite", "write")]["hash"]
    assert first == files.content_hash(str(db)) != files.hash_file(str(db))  # the WAL is in it
    # a commit that lands in the WAL only: the database changed, its file did not
    plain = files.hash_file(str(db))
    body = run_settled(recording, "con.execute('insert into t values (2)')\ncon.commit()")
    assert files.hash_file(str(db)) == plain
    # the insert read the table first, through the connection (sqlite's page counters,
    # ``sqlite_connections``): read as the database was when the cell started (its file and WAL
    # unchanged since nbgov hashed them)
    assert set(files_by_use(body)) == {("db.sqlite", "write"), ("db.sqlite", "read")}, body["files"]
    assert files_by_use(body)[("db.sqlite", "read")]["hash"] == first
    assert files_by_use(body)[("db.sqlite", "write")]["hash"] not in (first, None)
    # the close checkpoints into the file and removes the side files: no removals recorded
    body = run_settled(recording, "con.close()")
    assert set(files_by_use(body)) == {("db.sqlite", "write")}, body["files"]
    assert files_by_use(body)[("db.sqlite", "write")]["hash"] == files.hash_file(str(db))
    assert not any(f["path"].endswith(SIDE) for f in recording.body()["files"])


def test_a_rollback_journal_is_not_data_and_an_open_transaction_is_in_the_content(
        recording: RecordingShell, tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    made = run_settled(recording, "import sqlite3\ncon = sqlite3.connect('data.db')\ncon.execute('create table t (x)')\n"
                           "con.execute('insert into t values (1)')\ncon.commit()")
    assert set(files_by_use(made)) == {("data.db", "write")}
    body = run_settled(recording, "con.execute('insert into t values (2)')")  # a transaction left open
    assert (tmp_path / "data.db-journal").exists()
    assert set(files_by_use(body)) == {("data.db", "write"), ("data.db", "read")}, body["files"]  # the insert read first
    assert files_by_use(body)[("data.db", "write")]["hash"] == files.content_hash(str(db))
    assert files_by_use(body)[("data.db", "write")]["hash"] != files_by_use(made)[("data.db", "write")]["hash"]
    body = run_settled(recording, "con.commit()")
    assert not (tmp_path / "data.db-journal").exists()
    # no journal "removed"; the commit fetched the header page through the connection: a read too
    assert set(files_by_use(body)) == {("data.db", "write"), ("data.db", "read")}, body["files"]
    assert files_by_use(body)[("data.db", "write")]["hash"] == files.hash_file(str(db))


def test_python_opens_of_side_files_are_opens_of_their_database(
        recording: RecordingShell, tmp_path: Path) -> None:
    # copying a live WAL database file by file (shutil, through Python's open): what was
    # read is the database (file + WAL), what was written the copy, never "-wal" files
    run_settled(recording, "import sqlite3, shutil\ncon = sqlite3.connect('db.sqlite')\n"
                    "con.execute('PRAGMA journal_mode=WAL')\ncon.execute('create table t (x)')\n"
                    "con.execute('insert into t values (1)')\ncon.commit()")
    body = run_settled(recording, "shutil.copyfile('db.sqlite', 'copy.sqlite')\n"
                           "shutil.copyfile('db.sqlite-wal', 'copy.sqlite-wal')")
    seen = files_by_use(body)
    assert set(seen) == {("db.sqlite", "read"), ("copy.sqlite", "write")}, body["files"]
    assert seen[("db.sqlite", "read")]["hash"] == files.content_hash(str(tmp_path / "db.sqlite"))
    assert seen[("copy.sqlite", "write")]["hash"] == files.content_hash(str(tmp_path / "copy.sqlite"))
    # a file named like a side file with no database beside it is data like any other
    body = run_settled(recording, "open('notes-wal', 'w').write('x')")
    assert set(files_by_use(body)) == {("notes-wal", "write")}


def test_a_database_in_a_folder_the_cell_made_is_written_without_its_side_files(
        recording: RecordingShell, tmp_path: Path) -> None:
    # the folder's watch came too late, so its files are listed after the cell: a
    # connection left open leaves its WAL and index there
    body = run_settled(recording, "import os, sqlite3\nos.makedirs('out')\ncon = sqlite3.connect('out/db.sqlite')\n"
                           "con.execute('PRAGMA journal_mode=WAL')\ncon.execute('create table t (x)')\n"
                           "con.execute('insert into t values (1)')\ncon.commit()")
    assert (tmp_path / "out" / "db.sqlite-wal").exists()
    assert set(files_by_use(body)) == {("out/db.sqlite", "write")}, body["files"]
    assert files_by_use(body)[("out/db.sqlite", "write")]["hash"] == files.content_hash(str(tmp_path / "out" / "db.sqlite"))


def test_a_duckdb_database_is_recorded_as_itself_with_its_wal_in_its_content(
        recording: RecordingShell, tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    made = run_settled(recording, "import duckdb\ncon = duckdb.connect('shop.duckdb')\n"
                           "con.sql('CREATE TABLE orders AS SELECT range AS id FROM range(10)')")
    assert (tmp_path / "shop.duckdb.wal").exists()  # not checkpointed: the table is in the WAL
    assert set(files_by_use(made)) == {("shop.duckdb", "write")}, made["files"]
    first = files_by_use(made)[("shop.duckdb", "write")]["hash"]
    assert first == files.content_hash(str(db)) and first != files.hash_file(str(db))

    body = run_settled(recording, "con.sql('INSERT INTO orders VALUES (10)')")  # into the WAL only
    # a query through the connection made before: a read too, of the database as the cell started
    assert set(files_by_use(body)) == {("shop.duckdb", "write"), ("shop.duckdb", "read")}, body["files"]
    assert files_by_use(body)[("shop.duckdb", "read")]["hash"] == first
    second = files_by_use(body)[("shop.duckdb", "write")]["hash"]
    assert second not in (first, None)

    body = run_settled(recording, "con.close()")  # the checkpoint: into the file, the WAL gone
    assert not (tmp_path / "shop.duckdb.wal").exists()
    assert set(files_by_use(body)) == {("shop.duckdb", "write")}, body["files"]
    assert files_by_use(body)[("shop.duckdb", "write")]["hash"] == files.hash_file(str(db))

    body = run_settled(recording, "con = duckdb.connect('shop.duckdb', read_only=True)\n"
                           "n = con.execute('SELECT count(*) FROM orders').fetchone()[0]")
    assert body["files"] and {(f["path"], f["mode"]) for f in body["files"]} == {("shop.duckdb", "read")}


def test_a_wal_file_beside_a_file_that_is_no_database_is_data(recording: RecordingShell, tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("plain text\n")
    native = run_settled(recording, "import subprocess\n"
                             "subprocess.run('echo line >> notes.wal; echo more >> notes-journal', shell=True, check=True)")
    assert set(files_by_use(native)) == {("notes.wal", "write"), ("notes-journal", "write")}, native["files"]
    python = run_settled(recording, "with open('notes.wal', 'w') as f:\n    f.write('log line')")
    assert set(files_by_use(python)) == {("notes.wal", "write")}, python["files"]
