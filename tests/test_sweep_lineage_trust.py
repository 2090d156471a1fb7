"""Trust sweep over documentation-shaped notebooks (scikit-learn with loky workers, RNGs,
logging, sqlite3, pandas I/O, hostile objects): each record says what the code did, or
says why it cannot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import xxhash
from IPython.core.interactiveshell import InteractiveShell

from tests.fixtures.lineage import run_recorded


def _files(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["path"], f["mode"]): f for f in body["files"]}


def test_a_sqlite_query_reads_the_database_it_does_not_write(shell: InteractiveShell, tmp_path: Path) -> None:
    # sqlite opens its file read-write: the close of a handle that wrote nothing is no write,
    # and the query read the file (it was recorded as a write of unchanged content, no read)
    made = run_recorded(shell, "import sqlite3\ncon = sqlite3.connect('data.db')\n"
                               "con.execute('create table t (a int)')\ncon.execute('insert into t values (1)')\n"
                               "con.commit()\ncon.close()")
    assert set(_files(made)) == {("data.db", "write")}
    time.sleep(0.05)  # older than the next cell by more than the file system's clock tick
    body = run_recorded(shell, "con = sqlite3.connect('data.db')\nn = con.execute('select count(*) from t')"
                               ".fetchone()[0]\ncon.close()")
    seen = _files(body)
    assert set(seen) == {("data.db", "read")}, seen
    assert seen[("data.db", "read")]["hash"] == xxhash.xxh3_128_hexdigest((tmp_path / "data.db").read_bytes())
    assert seen[("data.db", "read")]["source"] == made["id"]
    assert body["notes"] == []
