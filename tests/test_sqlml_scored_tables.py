"""Scored relations are read by the statement's SQL without being registered as views:
nothing is left behind, the catalog version does not move, and the SQL reads them under
their own names."""

from __future__ import annotations

import pandas as pd

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.planning.prepared import Query, ScoreRelation
from nbgov.sqlml.sql.parse import parse
from tests.fixtures.sqlml import register


def test_sql_reading_names_the_source_and_keeps_the_steps_name():
    tree = parse(
        "SELECT nbgov_batch_1.id, s.p, 'nbgov_batch_1' AS text FROM nbgov_batch_1 "
        "JOIN nbgov_batch_2 AS s ON s.id = nbgov_batch_1.id"
    )
    query = Query(tree)
    first = query.sql_reading("duckdb", {"nbgov_batch_1": "__src_a", "nbgov_batch_2": 'odd"name'})
    second = query.sql_reading("duckdb", {"nbgov_batch_1": "__src_c", "nbgov_batch_2": "__src_d"})
    assert 'FROM "__src_a" AS nbgov_batch_1' in first
    assert 'JOIN "odd""name" AS s' in first  # quoted by the one helper; an alias of its own is kept
    assert "'nbgov_batch_1' AS text" in first  # a string is not a table name
    assert 'FROM "__src_c" AS nbgov_batch_1' in second and '"__src_d" AS s' in second
    assert query.sql_reading("duckdb", {"nbgov_batch_1": "x", "nbgov_batch_2": "y"}).count('"') == 4


def test_steps_leave_no_view_and_do_not_move_the_catalog_version(onnx_models, customers_frame):
    nested = (
        "SELECT id, predicted_variable AS p FROM ML.PREDICT(MODEL m, "
        "(SELECT * EXCLUDE (predicted_variable) FROM ML.PREDICT(MODEL m, TABLE c) WHERE age > 30)) ORDER BY id"
    )
    with Engine(progress_bar=False) as engine:
        register(engine, "m", onnx_models.get("gb_reg").estimator)
        engine.execute("CREATE TABLE c AS SELECT * FROM frame", frames={"frame": customers_frame})
        version = engine.executor.catalog_version()
        optimized = engine.execute(nested)[0]
        key = next(key for key in engine._plans._plans if key[0] == nested)
        steps = engine._plans._plans[key].prepared.steps
        assert sum(isinstance(step, ScoreRelation) for step in steps) == 2  # the second reads the first
        assert engine.executor.catalog_version() == version
        views = engine.con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall()
        assert views == [(0,)]
        plain = engine.execute(nested, optimize=False)[0].df
    pd.testing.assert_frame_equal(optimized.df, plain)
    assert len(plain) == (customers_frame.age > 30).sum()
