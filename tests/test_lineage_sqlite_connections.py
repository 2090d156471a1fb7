"""A sqlite database read through a connection opened in an earlier cell is an input of the
cell that read it. The file is open already, so the OS reports no open: sqlite's own page
counters for the connection (hits + misses) say whether the cell fetched any page through it.

Real sqlite databases in a real IPython shell with the recorder installed, connections kept
open across cells as notebooks keep them. Each test's first assertions on reads fail without
``sqlite_connections`` (the read was missing from the record).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage import files, sqlite_connections
from nbgov.lineage.files import FileHasher
from nbgov.lineage.stale import stale_flags
from tests.fixtures.kernel import make_notebook
from tests.fixtures.lineage import INSTALL_RECORDER, RecordingShell, files_by_use, run_settled

MAKE = ("import sqlite3, pandas as pd\ncon = sqlite3.connect('db.sqlite')\ncon.execute('create table t (x)')\n"
        "con.execute('insert into t values (1)')\ncon.commit()")


def test_the_check_found_the_connection_layout() -> None:
    assert sqlite_connections.unavailable() is None


def test_a_read_through_an_earlier_connection_is_an_input_and_makes_the_cell_stale_when_changed(
        recording: RecordingShell, tmp_path: Path) -> None:
    made = run_settled(recording, MAKE)
    assert set(files_by_use(made)) == {("db.sqlite", "write")}
    body = run_settled(recording, "df = pd.read_sql('select * from t', con)")
    read = files_by_use(body)[("db.sqlite", "read")]
    assert set(files_by_use(body)) == {("db.sqlite", "read")}, body["files"]
    assert read["abspath"] == str(tmp_path / "db.sqlite")
    assert read["hash"] == files.content_hash(str(tmp_path / "db.sqlite")) == files_by_use(made)[("db.sqlite", "write")]["hash"]
    assert read["source"] == made["id"]
    assert body["id"] not in stale_flags(recording.rec.entries(), FileHasher())
    # another connection changes the database: the reader is stale
    changed = run_settled(recording, "other = sqlite3.connect('db.sqlite')\nother.execute('insert into t values (2)')\n"
                              "other.commit()\nother.close()")
    assert ("db.sqlite", "write") in files_by_use(changed)
    assert stale_flags(recording.rec.entries(), FileHasher())[body["id"]] == [
        f"file db.sqlite rewritten by [{changed['execution_count']}]"]


def test_naming_a_connection_reads_nothing(recording: RecordingShell) -> None:
    run_settled(recording, MAKE)
    for code in ("c = con", "n = con.total_changes", "cur = con.cursor()", "con.commit()"):
        body = run_settled(recording, code)
        assert body["files"] == [], (code, body["files"])
    body = run_settled(recording, "rows = c.execute('select * from t').fetchall()")  # the same connection, by another name
    assert set(files_by_use(body)) == {("db.sqlite", "read")}


def test_a_wal_database_read_twice_with_a_warm_cache_is_read_by_both_cells(
        recording: RecordingShell, tmp_path: Path) -> None:
    made = run_settled(recording, "import sqlite3\ncon = sqlite3.connect('db.sqlite')\ncon.execute('PRAGMA journal_mode=WAL')\n"
                           "con.execute('create table t (x)')\ncon.execute('insert into t values (1)')\ncon.commit()")
    assert (tmp_path / "db.sqlite-wal").exists()
    content = files.content_hash(str(tmp_path / "db.sqlite"))
    for _ in range(2):  # the second read is served from the connection's cache: hits count too
        body = run_settled(recording, "rows = con.execute('select * from t').fetchall()")
        assert set(files_by_use(body)) == {("db.sqlite", "read")}, body["files"]
        read = files_by_use(body)[("db.sqlite", "read")]
        assert (read["hash"], read["source"]) == (content, made["id"])


def test_a_cursor_made_in_an_earlier_cell(recording: RecordingShell) -> None:
    made = run_settled(recording, MAKE + "\ncur = con.cursor()")
    body = run_settled(recording, "rows = cur.execute('select * from t').fetchall()")
    assert [(f["path"], f["mode"], f["source"]) for f in body["files"]] == [("db.sqlite", "read", made["id"])]
    assert recording.ns()["rows"] == [(1,)]


def test_an_attached_database_is_read_with_its_connection_s_main_one(
        recording: RecordingShell, tmp_path: Path) -> None:
    # sqlite counts pages per connection, not per database: a query of the attached database
    # alone records both files as read (a known limit, in sqlite_connections' docstring)
    run_settled(recording, MAKE + "\ncon.execute(\"attach 'other.sqlite' as other\")\n"
                           "con.execute('create table other.u (y)')\ncon.execute('insert into other.u values (2)')\n"
                           "con.commit()")
    body = run_settled(recording, "rows = con.execute('select * from other.u').fetchall()")
    assert set(files_by_use(body)) == {("db.sqlite", "read"), ("other.sqlite", "read")}, body["files"]
    assert files_by_use(body)[("other.sqlite", "read")]["hash"] == files.content_hash(str(tmp_path / "other.sqlite"))


def test_where_the_layout_check_failed_the_record_says_reads_are_not_seen(
        recording: RecordingShell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_connections, "_api", lambda: None)
    monkeypatch.setattr(sqlite_connections, "_checked_api", lambda: (None, "another layout"))
    run_settled(recording, MAKE)
    body = run_settled(recording, "df = pd.read_sql('select * from t', con)")
    assert body["files"] == []  # never a guess
    assert sqlite_connections.NOT_SEEN.format(why="another layout") in body["notes"]


def test_without_sqlite3_db_name_only_the_main_database_is_known(
        recording: RecordingShell, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite before 3.39 has no sqlite3_db_name: attached schemas cannot be listed
    api = sqlite_connections._api()
    assert api is not None
    monkeypatch.setattr(api, "name", None)
    run_settled(recording, MAKE + "\ncon.execute(\"attach 'other.sqlite' as other\")\n"
                           "con.execute('create table other.u (y)')\ncon.commit()")
    body = run_settled(recording, "rows = con.execute('select * from other.u').fetchall()")
    assert set(files_by_use(body)) == {("db.sqlite", "read")}, body["files"]


def test_closed_and_collected_connections_record_nothing_and_are_not_kept_alive(recording: RecordingShell) -> None:
    run_settled(recording, MAKE + "\nimport gc, weakref\nkept = sqlite3.connect('kept.sqlite')\n"
                           "kept.execute('create table k (z)')\nkept.commit()\n"
                           "class Connection(sqlite3.Connection):\n    pass\n"
                           "dropped = sqlite3.connect('dropped.sqlite', factory=Connection)\n"
                           "dropped.execute('create table d (w)')\ndropped.commit()\nref = weakref.ref(dropped)")
    body = run_settled(recording, "con.close()")
    assert body["files"] == []
    assert any("was closed during the cell" in note for note in body["notes"])
    body = run_settled(recording, "del dropped\ngc.collect()")
    assert body["files"] == []
    assert recording.ns()["ref"]() is None  # the tracker held no reference to it
    plain = run_settled(recording, "before = sum(type(o) is sqlite3.Connection for o in gc.get_objects())\n"
                            "kept.close()\ndel kept\ngc.collect()\n"
                            "after = sum(type(o) is sqlite3.Connection for o in gc.get_objects())")
    assert recording.ns()["before"] - recording.ns()["after"] == 1
    assert plain["files"] == []
    # a connection still open is still seen, the closed and collected ones are dropped
    body = run_settled(recording, "again = sqlite3.connect('db.sqlite')")
    body = run_settled(recording, "rows = again.execute('select * from t').fetchall()")
    assert set(files_by_use(body)) == {("db.sqlite", "read")}, body["files"]
    assert all(entry.anchor() is not None for entry in sqlite_connections._tracked.values())


def test_a_read_then_a_write_through_an_earlier_connection(recording: RecordingShell, tmp_path: Path) -> None:
    """What the cell read is the database as it started: known, without reading it again, when
    nbgov hashed it as it is (the cell that made it)."""
    made = run_settled(recording, MAKE)
    body = run_settled(recording, "n = con.execute('select count(*) from t').fetchone()[0]\n"
                           "con.execute('insert into t values (?)', (n + 1,))\ncon.commit()")
    seen = files_by_use(body)
    assert set(seen) == {("db.sqlite", "read"), ("db.sqlite", "write")}, body["files"]
    made_file = files_by_use(made)[("db.sqlite", "write")]
    read = seen[("db.sqlite", "read")]
    assert (read["size"], read["hash"], read["source"]) == (made_file["size"], made_file["hash"], made["id"])
    assert not any("overwritten" in note for note in body["notes"])
    assert seen[("db.sqlite", "write")]["hash"] == files.content_hash(str(tmp_path / "db.sqlite")) != read["hash"]


def test_a_read_then_a_write_after_a_change_nbgov_did_not_see(recording: RecordingShell) -> None:
    run_settled(recording, MAKE)
    recording.shell.run_cell("con.execute('insert into t values (5)'); con.commit()", silent=True)  # not recorded
    body = run_settled(recording, "n = con.execute('select count(*) from t').fetchone()[0]\n"
                           "con.execute('insert into t values (?)', (n + 1,))\ncon.commit()")
    seen = files_by_use(body)
    # native code's read before a write: what was read is no longer there, so no hash, and a note
    assert (seen[("db.sqlite", "read")]["size"], seen[("db.sqlite", "read")]["hash"]) == (None, None)
    assert "file db.sqlite was read, then overwritten by the cell: its content when read is not known" in body["notes"]


def test_an_in_memory_connection_is_no_file(recording: RecordingShell) -> None:
    run_settled(recording, MAKE + "\nmem = sqlite3.connect(':memory:')\nmem.execute('create table m (v)')\n"
                           "mem.execute('insert into m values (3)')")
    body = run_settled(recording, "rows = mem.execute('select * from m').fetchall()")
    assert body["files"] == []
    body = run_settled(recording, "rows = mem.execute('select * from m').fetchall() + con.execute('select * from t').fetchall()")
    assert set(files_by_use(body)) == {("db.sqlite", "read")}, body["files"]


@pytest.mark.kernel
def test_a_read_through_an_earlier_connection_in_a_kernel(run_notebook: Any, tmp_path: Path) -> None:
    from nbgov.lineage.store import read_entries

    nb = make_notebook(INSTALL_RECORDER, MAKE, "df = pd.read_sql('select * from t', con)")
    run_notebook(nb, path=tmp_path / "db.ipynb")
    entries, problems = read_entries(tmp_path / ".nbgov" / "db.jsonl")
    assert problems == []
    made, read = [e["body"] for e in entries if e["kind"] == "execution"]  # the install cell is not recorded
    assert [(f["path"], f["mode"]) for f in made["files"]] == [("db.sqlite", "write")]
    assert [(f["path"], f["mode"], f["hash"], f["source"]) for f in read["files"]] == [
        ("db.sqlite", "read", made["files"][0]["hash"], made["id"])]
