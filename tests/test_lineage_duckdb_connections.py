"""A DuckDB database queried through a connection (or relation) made in an earlier cell is an
input of the cell that queried it. The file is open already and DuckDB serves what it read
before from its buffer pool, so neither the OS nor DuckDB reports a read: the cell's calls on
the DuckDB object are the evidence, and the record says what was counted and why.

Real DuckDB databases in a real IPython shell with the recorder installed, connections kept
open across cells as notebooks keep them. The first assertions on reads of each test fail
without ``duckdb_connections`` (the read was missing from the record).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage import duckdb_connections, files
from nbgov.lineage.files import FileHasher
from nbgov.lineage.stale import stale_flags
from tests.fixtures.kernel import make_notebook
from tests.fixtures.lineage import INSTALL_RECORDER, RecordingShell, files_by_use, run_settled

MAKE = ("import duckdb, pandas as pd\ncon = duckdb.connect('shop.duckdb')\n"
        "con.execute('create table t as select range as x from range(5)')")
COUNTED = "every DuckDB database the kernel held open counts as read"


def _duckdb_notes(body: dict[str, Any]) -> list[str]:
    return [note for note in body["notes"] if COUNTED in note]


def _used(body: dict[str, Any], folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """``files_by_use`` of the test's own folder: a database an earlier test in this process
    still holds open counts as read too (as any the kernel holds), and is not this test's."""
    return {use: f for use, f in files_by_use(body).items() if Path(f["abspath"]).parent == folder}


def test_a_query_through_an_earlier_connection_is_an_input_and_makes_the_cell_stale_when_changed(
        recording: RecordingShell, tmp_path: Path) -> None:
    made = run_settled(recording, MAKE)
    assert set(files_by_use(made)) == {("shop.duckdb", "write")}
    body = run_settled(recording, "df = con.sql('select sum(x) as s from t').df()")
    assert set(_used(body, tmp_path)) == {("shop.duckdb", "read")}, body["files"]
    read = _used(body, tmp_path)[("shop.duckdb", "read")]
    assert read["abspath"] == str(tmp_path / "shop.duckdb")
    assert read["hash"] == files.content_hash(str(tmp_path / "shop.duckdb")) == files_by_use(made)[
        ("shop.duckdb", "write")]["hash"]
    assert read["source"] == made["id"]
    assert _duckdb_notes(body) == [
        f"read through DuckDB `con` (opened in an earlier cell): DuckDB does not say which database a query reads, "
        f"so {COUNTED}"]
    assert body["id"] not in stale_flags(recording.rec.entries(), FileHasher())
    changed = run_settled(recording, "con.execute('insert into t values (9)')")
    assert ("shop.duckdb", "write") in files_by_use(changed)
    assert stale_flags(recording.rec.entries(), FileHasher())[body["id"]] == [
        f"file shop.duckdb rewritten by [{changed['execution_count']}]"]


def test_a_reader_after_the_database_is_checkpointed_says_what_is_not_known(
        recording: RecordingShell, tmp_path: Path) -> None:
    """The kernel's exit closes the connection: DuckDB checkpoints the WAL into the file, and
    the same tables hash differently on disk."""
    run_settled(recording, MAKE)
    body = run_settled(recording, "df = con.sql('select * from t').df()")
    assert (tmp_path / "shop.duckdb.wal").exists()
    recording.shell.run_cell("con.close()", silent=True)  # not recorded, as an exit is not
    assert not (tmp_path / "shop.duckdb.wal").exists()
    assert stale_flags(recording.rec.entries(), FileHasher())[body["id"]] == [
        "file shop.duckdb changed on disk since read, or was only checkpointed (DuckDB rewrites its bytes then, so "
        "whether its tables changed is not known)"]


def test_naming_a_connection_without_calling_on_it_reads_nothing(recording: RecordingShell, tmp_path: Path) -> None:
    run_settled(recording, MAKE)
    for code in ("c = con", "print(con)", "same = con is c", "kind = type(con)", "cur = con.cursor()", "con.commit()"):
        body = run_settled(recording, code)
        assert body["files"] == [] and _duckdb_notes(body) == [], (code, body["files"], body["notes"])
    body = run_settled(recording, "rows = c.execute('select * from t').fetchall()")  # by another name
    assert set(_used(body, tmp_path)) == {("shop.duckdb", "read")}
    assert "`c`" in _duckdb_notes(body)[0]


def test_a_relation_made_in_an_earlier_cell(recording: RecordingShell, tmp_path: Path) -> None:
    made = run_settled(recording, MAKE)
    run_settled(recording, "rel = con.table('t').filter('x > 2')")
    body = run_settled(recording, "rows = rel.fetchall()")
    assert [(f["path"], f["mode"], f["source"]) for f in _used(body, tmp_path).values()] == [
        ("shop.duckdb", "read", made["id"])]
    assert "`rel`" in _duckdb_notes(body)[0]
    assert recording.ns()["rows"] == [(3,), (4,)]


def test_a_connection_handed_to_a_call_or_named_by_a_called_function(recording: RecordingShell, tmp_path: Path) -> None:
    run_settled(recording, MAKE + "\ndef total(c):\n    return c.sql('select sum(x) from t').fetchall()[0][0]\n"
                                  "def rows():\n    return con.sql('select count(*) from t').fetchall()[0][0]")
    for code in ("s = total(con)", "n = rows()"):
        body = run_settled(recording, code)
        assert set(_used(body, tmp_path)) == {("shop.duckdb", "read")}, (code, body["files"])
        assert "`con`" in _duckdb_notes(body)[0]
    assert (recording.ns()["s"], recording.ns()["n"]) == (10, 5)


def test_a_function_defined_in_the_cell_is_not_a_call(recording: RecordingShell) -> None:
    run_settled(recording, MAKE)
    body = run_settled(recording, "def later():\n    return con.sql('select 1').fetchall()")
    assert body["files"] == [] and _duckdb_notes(body) == []


def test_an_in_memory_connection_reads_no_file(recording: RecordingShell, tmp_path: Path) -> None:
    run_settled(recording, "import duckdb\nmem = duckdb.connect()\nmem.execute('create table m as select 1 as a')")
    body = run_settled(recording, "rows = mem.sql('select * from m').fetchall()")
    assert _used(body, tmp_path) == {}
    held = duckdb_connections.held_databases(lambda path: False)  # other tests' only
    assert {f["abspath"] for f in body["files"]} == set(held) and len(_duckdb_notes(body)) == len(held[:1])


def test_every_database_held_open_counts_and_the_note_says_so(recording: RecordingShell, tmp_path: Path) -> None:
    run_settled(recording, MAKE + "\nother = duckdb.connect('other.duckdb')\nother.execute('create table u (y int)')")
    body = run_settled(recording, "df = con.sql('select * from t').df()")
    assert set(_used(body, tmp_path)) == {("shop.duckdb", "read"), ("other.duckdb", "read")}, body["files"]
    assert len(_duckdb_notes(body)) == 1


def test_a_query_then_a_write_through_an_earlier_connection(recording: RecordingShell, tmp_path: Path) -> None:
    """What the cell read is the database as it started, known when nbgov hashed it as it is."""
    made = run_settled(recording, MAKE)
    body = run_settled(recording, "con.execute('insert into t select x + 10 from t')")
    used = _used(body, tmp_path)
    assert set(used) == {("shop.duckdb", "read"), ("shop.duckdb", "write")}
    read, written = used[("shop.duckdb", "read")], used[("shop.duckdb", "write")]
    assert (read["hash"], read["source"]) == (files_by_use(made)[("shop.duckdb", "write")]["hash"], made["id"])
    assert written["hash"] == files.content_hash(str(tmp_path / "shop.duckdb")) != read["hash"]
    assert not any("overwritten" in note for note in body["notes"])


def test_a_query_then_a_write_after_a_change_nbgov_did_not_see(recording: RecordingShell, tmp_path: Path) -> None:
    run_settled(recording, MAKE)
    recording.shell.run_cell("con.execute('insert into t values (7)')", silent=True)  # not recorded
    body = run_settled(recording, "con.execute('insert into t select x + 10 from t')")
    assert _used(body, tmp_path)[("shop.duckdb", "read")]["hash"] is None
    assert "file shop.duckdb was read, then overwritten by the cell: its content when read is not known" in body["notes"]


def test_other_open_files_are_not_databases(recording: RecordingShell, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("DUCKDB is named here, not a database file")
    run_settled(recording, MAKE + "\nhandle = open('notes.txt')")
    held = duckdb_connections.held_databases(lambda path: False)
    assert str(tmp_path / "shop.duckdb") in held and str(tmp_path / "notes.txt") not in held
    body = run_settled(recording, "rows = con.sql('select 1').fetchall()")
    assert set(_used(body, tmp_path)) == {("shop.duckdb", "read")}
    recording.run("handle.close()")


def test_a_fifo_held_open_is_never_opened_to_look_at(recording: RecordingShell, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a FIFO could unblock a writer waiting for a reader, which closing it then breaks."""
    os.mkfifo(tmp_path / "pipe")
    held = os.open(tmp_path / "pipe", os.O_RDWR | os.O_NONBLOCK)
    looked: list[str] = []
    monkeypatch.setattr(duckdb_connections, "is_duckdb", lambda path: looked.append(path) or False)
    try:
        run_settled(recording, MAKE)
        body = run_settled(recording, "rows = con.sql('select 1').fetchall()")
    finally:
        os.close(held)
    assert str(tmp_path / "shop.duckdb") in looked and str(tmp_path / "pipe") not in looked
    assert _used(body, tmp_path) == {}  # (is_duckdb said no to every file here)


def test_a_notebook_class_s_metaclass_and_attributes_are_never_run(recording: RecordingShell) -> None:
    """The DuckDB objects are told by type identity: a notebook metaclass's ``__eq__`` (which
    ``in`` would call) and an object's ``__getattr__`` never run."""
    run_settled(recording, MAKE + "\nran = []\nclass Meta(type):\n    def __eq__(cls, other):\n"
                                  "        ran.append('eq')\n        return True\n    __hash__ = type.__hash__\n"
                                  "class Odd(metaclass=Meta):\n    def __getattr__(self, name):\n"
                                  "        ran.append(name)\n        return lambda: 1\nodd = Odd()")
    body = run_settled(recording, "value = odd.anything()")
    assert body["files"] == [] and _duckdb_notes(body) == []
    assert recording.ns()["ran"] == ["anything"]  # the cell's own call, nothing of nbgov's


def test_something_else_planted_under_duckdb_s_module_names_is_never_run(
        recording: RecordingShell, monkeypatch: pytest.MonkeyPatch) -> None:
    run_settled(recording, MAKE + "\nran = []\nclass Planted:\n    @property\n    def __dict__(self):\n"
                                  "        ran.append('__dict__')\n        return {}\n"
                                  "    @property\n    def __class__(self):\n        ran.append('__class__')\n"
                                  "        return type")
    planted = recording.ns()["Planted"]()
    monkeypatch.setitem(sys.modules, "duckdb._relation", planted)
    monkeypatch.setattr(sys.modules["_duckdb"], "DuckDBPyRelation", planted, raising=False)
    body = run_settled(recording, "rows = con.sql('select * from t').fetchall()")
    assert recording.ns()["ran"] == []
    assert "`con`" in _duckdb_notes(body)[0]  # the real connection class is still told


def test_without_proc_the_record_says_the_read_is_not_seen(recording: RecordingShell,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run_settled(recording, MAKE)
    monkeypatch.setattr(duckdb_connections, "_OPEN_FILES", "/no/such/proc/fd")
    body = run_settled(recording, "rows = con.sql('select * from t').fetchall()")
    assert body["files"] == []
    assert duckdb_connections.NOT_SEEN.format(objects="`con`") in body["notes"]


@pytest.mark.kernel
def test_a_query_through_an_earlier_connection_in_a_kernel(run_notebook: Any, tmp_path: Path) -> None:
    from nbgov.lineage.store import read_entries

    nb = make_notebook(INSTALL_RECORDER, MAKE, "df = con.sql('select * from t').df()")
    run_notebook(nb, path=tmp_path / "shop.ipynb")
    entries, problems = read_entries(tmp_path / ".nbgov" / "shop.jsonl")
    assert problems == []
    made, read = [e["body"] for e in entries if e["kind"] == "execution"]  # the install cell is not recorded
    assert [(f["path"], f["mode"]) for f in made["files"]] == [("shop.duckdb", "write")]
    assert [(f["path"], f["mode"], f["hash"], f["source"]) for f in read["files"]] == [
        ("shop.duckdb", "read", made["files"][0]["hash"], made["id"])]
