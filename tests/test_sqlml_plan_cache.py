"""A statement run again replays its plan: same rows, same lineage, fresh run notes —
and a changed model catalog, frame set or setting makes it plan afresh."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbgov.errors import NbgovError

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.optimizer import Planner
from nbgov.sqlml.plan import CallPlan, ModelCall
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.sqlml import register

FEATURES = ", ".join(NUMERIC_FEATURES)


class CountingPlanner(Planner):
    """The optimizer, counting the calls it plans."""

    def __init__(self) -> None:
        super().__init__()
        self.planned = 0

    def plan_call(self, call: ModelCall) -> CallPlan:
        self.planned += 1
        return super().plan_call(call)


def test_a_rerun_gives_the_same_rows_lineage_and_fresh_notes(onnx_models, customers_frame):
    sql = f"SELECT id, predict(m, {FEATURES}) AS p FROM c WHERE age > 40 ORDER BY id"
    planner = CountingPlanner()
    with Engine(progress_bar=False, planner=planner) as engine:
        register(engine, "m", onnx_models.get("gb_reg").path)
        first = engine.execute(sql, frames={"c": customers_frame})[0]
        again = engine.execute(sql, frames={"c": customers_frame})[0]
    assert planner.planned == 1  # the second run replayed the plan
    pd.testing.assert_frame_equal(first.df, again.df)
    assert first.activity == again.activity
    assert first.explain == again.explain  # planning notes once, run notes (rows scored) fresh
    assert (again.explain or "").count("rows scored") == 1


def test_a_new_model_version_is_planned_afresh(onnx_models, customers_frame):
    sql = f"SELECT id, predict(m, {FEATURES}) AS p FROM c ORDER BY id"
    planner = CountingPlanner()
    with Engine(progress_bar=False, planner=planner) as engine:
        register(engine, "m", onnx_models.get("linreg").path)
        before = engine.execute(sql, frames={"c": customers_frame})[0]
        register(engine, "m", onnx_models.get("rf_reg").path)  # CREATE OR REPLACE: version 2
        after = engine.execute(sql, frames={"c": customers_frame})[0]
        assert planner.planned == 2
        fresh = Engine(progress_bar=False)
        try:
            register(fresh, "m", onnx_models.get("rf_reg").path)
            expected = fresh.execute(sql, frames={"c": customers_frame})[0].df
        finally:
            fresh.close()
    assert before.activity.models_used[0].version == 1 and after.activity.models_used[0].version == 2
    assert not np.allclose(before.df.p, after.df.p)
    np.testing.assert_array_equal(after.df.p.to_numpy(), expected.p.to_numpy())


def test_a_rerun_sees_new_rows_and_changed_parameters(onnx_models, customers_frame):
    sql = f"SELECT count(*) AS n, sum(predict(m, {FEATURES})) AS s FROM c WHERE age > $lo"
    with Engine(progress_bar=False) as engine:
        register(engine, "m", onnx_models.get("gb_reg").path)
        half = customers_frame.head(len(customers_frame) // 2)
        small = engine.execute(sql, params={"lo": 30}, frames={"c": half})[0].df
        full = engine.execute(sql, params={"lo": 30}, frames={"c": customers_frame})[0].df
        older = engine.execute(sql, params={"lo": 60}, frames={"c": customers_frame})[0].df
        plain = engine.execute(sql, params={"lo": 60}, frames={"c": customers_frame}, optimize=False)[0].df
    assert small.n[0] < full.n[0] and older.n[0] < full.n[0]
    assert older.n[0] == (customers_frame.age > 60).sum()
    np.testing.assert_allclose(older.s[0], plain.s[0], rtol=1e-6)


def test_ml_predict_is_reused_while_its_relation_keeps_its_columns(onnx_models, customers_frame):
    sql = "SELECT id, predicted_variable AS p FROM ML.PREDICT(MODEL m, (SELECT * FROM c WHERE age > $lo)) ORDER BY id"
    planner = CountingPlanner()
    with Engine(progress_bar=False, planner=planner) as engine:
        register(engine, "m", onnx_models.get("gb_reg").estimator)
        first = engine.execute(sql, params={"lo": 30}, frames={"c": customers_frame})[0].df
        shuffled = customers_frame.sample(frac=1.0, random_state=3)  # other row order, same columns
        again = engine.execute(sql, params={"lo": 30}, frames={"c": shuffled})[0].df
        assert planner.planned == 1
        reordered = customers_frame[list(reversed(customers_frame.columns))]  # the relation's columns changed
        moved = engine.execute(sql, params={"lo": 30}, frames={"c": reordered})[0].df
        assert planner.planned == 2
        typed = customers_frame.assign(age=customers_frame.age.astype("float64") + 0.5)
        retyped = engine.execute(sql, params={"lo": 30}, frames={"c": typed})[0].df
        assert planner.planned == 3
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, moved)
    assert len(retyped) == (typed.age > 30).sum()


def test_star_binds_by_name_so_its_plan_is_reused(onnx_models, customers_frame):
    sql = "SELECT id, predict(m, *) AS p FROM c ORDER BY id"
    planner = CountingPlanner()
    with Engine(progress_bar=False, planner=planner) as engine:
        register(engine, "m", onnx_models.get("gb_reg").estimator)
        first = engine.execute(sql, frames={"c": customers_frame})[0].df
        reordered = engine.execute(sql, frames={"c": customers_frame[list(reversed(customers_frame.columns))]})[0].df
        assert planner.planned == 1
        with pytest.raises(NbgovError, match="age"):  # a column '*' needs is gone: DuckDB says so, as before
            engine.execute(sql, frames={"c": customers_frame.drop(columns=["age"])})
    pd.testing.assert_frame_equal(first, reordered)


def _counting_columns(engine: Engine) -> list[object]:
    """Every question 'what are the columns of this relation?' the engine asks (a spy on the
    real executor)."""
    asked: list[object] = []
    columns = engine.executor.columns

    def counted(query, params):  # type: ignore[no-untyped-def]
        asked.append(query)
        return columns(query, params)

    engine.executor.columns = counted  # type: ignore[method-assign]
    return asked


def test_a_plan_over_tables_is_reused_unasked_until_the_catalog_changes(onnx_models, customers_frame):
    sql = "SELECT id, predicted_variable AS p FROM ML.PREDICT(MODEL m, (SELECT * FROM c WHERE age > 30)) ORDER BY id"
    planner = CountingPlanner()
    with Engine(progress_bar=False, planner=planner) as engine:
        register(engine, "m", onnx_models.get("gb_reg").estimator)
        engine.execute("CREATE TABLE c AS SELECT * FROM frame", frames={"frame": customers_frame})
        asked = _counting_columns(engine)
        first = engine.execute(sql)[0].df
        compiled = len(asked)
        again = engine.execute(sql)[0].df
        assert planner.planned == 1 and len(asked) == compiled  # nothing changed: not asked again
        engine.execute("CREATE TABLE unrelated AS SELECT 1 AS x")
        engine.execute(sql)
        assert planner.planned == 1 and len(asked) > compiled  # the catalog changed: asked, same answers
        engine.execute("CREATE OR REPLACE TABLE c AS SELECT * REPLACE (CAST(age + 0.5 AS FLOAT) AS age) FROM c")
        retyped = engine.execute(sql)[0].df
        assert planner.planned == 2  # age is a FLOAT now: planned afresh
    pd.testing.assert_frame_equal(first, again)
    assert len(retyped) == (customers_frame.age + 0.5 > 30).sum() > len(first)


def test_a_plan_over_a_file_asks_again_on_every_run(onnx_models, customers_frame, tmp_path):
    path = tmp_path / "customers.parquet"
    customers_frame.to_parquet(path)
    sql = f"SELECT id, predicted_variable AS p FROM ML.PREDICT(MODEL m, (SELECT * FROM '{path}' WHERE age > 30)) ORDER BY id"
    planner = CountingPlanner()
    with Engine(progress_bar=False, planner=planner) as engine:
        register(engine, "m", onnx_models.get("gb_reg").estimator)
        first = engine.execute(sql)[0].df
        customers_frame.assign(age=(customers_frame.age + 0.5).astype("float32")).to_parquet(path)  # unseen by the catalog
        retyped = engine.execute(sql)[0].df
        assert planner.planned == 2
    assert len(retyped) == (customers_frame.age + 0.5 > 30).sum() > len(first)


@pytest.mark.parametrize(
    ("sql", "bound"),
    [
        ("SELECT * FROM t", True),
        ("SELECT * FROM main.t JOIN v USING (a)", True),
        ("WITH w AS (SELECT * FROM t) SELECT * FROM w", True),
        ("SELECT * FROM t WHERE a > $lo", False),  # a parameter's type can change the columns
        ("SELECT * FROM 'data.csv'", False),
        ("SELECT * FROM read_parquet('data.parquet')", False),
        ("SELECT * FROM range(3)", False),
        ("SELECT * FROM nowhere", False),
    ],
)
def test_only_the_engines_own_tables_and_views_are_catalog_bound(sql, bound):
    from nbgov.sqlml.planning.prepared import Query
    from nbgov.sqlml.sql.parse import parse

    with Engine(progress_bar=False) as engine:
        engine.execute("CREATE TABLE t AS SELECT 1 AS a; CREATE VIEW v AS SELECT a FROM t")
        assert engine.executor.catalog_bound(Query(parse(sql))) is bound
