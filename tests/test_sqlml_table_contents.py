"""A table a statement created or changed gets a content fingerprint after it ran — the
same rows give the same hash whatever their order — or a reason why it has none."""

from __future__ import annotations

import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.activity import TableContent
from nbgov.sqlml.execution import contents


def _written(engine: Engine, sql: str) -> TableContent:
    (content,) = engine.execute(sql)[0].activity.written
    return content


def test_written_tables_are_hashed_by_content_not_by_row_order(engine: Engine) -> None:
    created = _written(engine, "CREATE TABLE t AS SELECT range AS id, range * 2 AS v, 'x' || range AS s FROM range(100)")
    assert (created.table, created.rows, created.reason) == ("t", 100, None) and len(created.hash or "") == 32
    reversed_copy = _written(engine, "CREATE TABLE u AS SELECT * FROM t ORDER BY id DESC")
    assert reversed_copy.hash == created.hash
    updated = _written(engine, "UPDATE t SET v = v + 1 WHERE id = 7")
    assert updated.hash != created.hash and updated.rows == 100
    restored = _written(engine, "UPDATE t SET v = v - 1 WHERE id = 7")
    assert restored.hash == created.hash
    inserted = _written(engine, "INSERT INTO t VALUES (100, 200, NULL)")
    assert inserted.rows == 101 and inserted.hash not in (created.hash, None)
    retyped = _written(engine, "CREATE TABLE w AS SELECT id::INTEGER AS id, v, s FROM u")
    assert retyped.hash != created.hash  # same numbers, another type: another content
    assert engine.execute("SELECT count(*) FROM t")[0].activity.written == ()


def test_tables_without_a_hash_say_why(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.execute("CREATE TABLE t AS SELECT range AS id FROM range(20)")
    view = _written(engine, "CREATE VIEW v AS SELECT * FROM t")
    assert view.hash is None and "view" in (view.reason or "")
    dropped = _written(engine, "DROP TABLE t")
    assert dropped.hash is None and "no longer exists" in (dropped.reason or "")
    monkeypatch.setattr(contents, "MAX_CELLS", 10)
    large = _written(engine, "CREATE TABLE big AS SELECT range AS id, range AS v FROM range(20)")
    assert large.hash is None and large.rows == 20
    assert large.reason == "20 rows x 2 columns: above the 10-cell bound for hashing"


def test_a_failed_statement_reports_nothing(engine: Engine) -> None:
    engine.execute("CREATE TABLE t AS SELECT 1 AS id")
    with pytest.raises(Exception, match="t"):
        engine.execute("INSERT INTO t VALUES ('not a number')")
    assert _written(engine, "INSERT INTO t VALUES (2)").rows == 2
