"""predict(...) is a scalar usable anywhere an expression is, on DuckDB and on Spark."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nbgov.sqlml.engine import BaseEngine, Engine
from nbgov.sqlml.optimizer import Planner
from tests.fixtures.models import customers
from tests.fixtures.spark import ENGINES, engine_on, module_database
from tests.fixtures.sqlml import register

# These tests are about where predict() sits and how ONNX calls are batched: the mixed
# pipeline stays in ONNX here (the optimizer would otherwise inline it as SQL).
ONNX_KEPT = Planner(inline_sql=False)


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine(planner=ONNX_KEPT)
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def spark_engine(spark: Any, spark_database: str) -> Iterator[BaseEngine]:
    from nbgov.sqlml.spark.engine import SparkEngine

    eng = SparkEngine(session=spark, planner=ONNX_KEPT)
    try:
        yield eng
    finally:
        eng.close()


def _churn(engine: BaseEngine, onnx_models, customers_frame) -> tuple[BaseEngine, pd.DataFrame]:
    """``engine`` with model `churn` (mixed pipeline) and the customers table, plus expected p."""
    model = onnx_models.get("pipeline_mixed")
    register(engine, "churn", model.path)
    engine.execute("CREATE TABLE customers AS SELECT * FROM frame", frames={"frame": customers_frame})
    expected = customers_frame.assign(p=model.estimator.predict_proba(model.X)[:, 1])
    return engine, expected


@pytest.fixture
def scored_to_change(any_engine: BaseEngine, onnx_models, customers_frame) -> tuple[BaseEngine, pd.DataFrame]:
    """What `scored` gives, in a database of the test's own: for tests that add tables or
    model versions."""
    return _churn(any_engine, onnx_models, customers_frame)


@pytest.fixture(scope="module")
def spark_churn_database(spark: Any, onnx_models) -> Iterator[str]:
    """One Spark database for the module with model `churn` and the customers table, which
    the `scored` tests only read: each gets a fresh engine on it instead of registering the
    model and writing the table again."""
    with module_database(spark, "nbgov_test_positions_churn", lambda engine: _churn(engine, onnx_models, customers()),
                         planner=ONNX_KEPT) as name:
        yield name


@pytest.fixture(params=ENGINES)
def scored(request: pytest.FixtureRequest, onnx_models, customers_frame) -> Iterator[tuple[BaseEngine, pd.DataFrame]]:
    """A fresh engine with model `churn` and the customers table, plus expected p; for tests
    that only read them (Spark's are the module's database, see spark_churn_database)."""
    if request.param == "duckdb":
        yield _churn(request.getfixturevalue("engine"), onnx_models, customers_frame)
        return
    database = request.getfixturevalue("spark_churn_database")
    with engine_on(request.getfixturevalue("spark"), database, planner=ONNX_KEPT) as engine:
        model = onnx_models.get("pipeline_mixed")
        yield engine, customers_frame.assign(p=model.estimator.predict_proba(model.X)[:, 1])


P = "predict(churn, *).output_probability[2]"


@pytest.mark.parametrize("optimize", [True, False])
def test_in_where(scored, optimize):
    engine, expected = scored
    df = engine.execute(f"SELECT id FROM customers WHERE {P} > 0.7 ORDER BY id", optimize=optimize)[0].df
    assert df.id.tolist() == expected[expected.p > 0.7].id.tolist()


@pytest.mark.parametrize("optimize", [True, False])
def test_in_order_by_with_limit(scored, optimize):
    engine, expected = scored
    df = engine.execute(f"SELECT id FROM customers ORDER BY {P} DESC LIMIT 5", optimize=optimize)[0].df
    assert df.id.tolist() == expected.sort_values("p", ascending=False).id.head(5).tolist()


@pytest.mark.parametrize("optimize", [True, False])
def test_in_group_by_and_aggregate(scored, optimize):
    engine, expected = scored
    df = engine.execute(
        f"SELECT predict(churn, *).output_label AS label, count(*) AS n, avg({P}) AS mean_p "
        "FROM customers GROUP BY predict(churn, *).output_label ORDER BY label",
        optimize=optimize,
    )[0].df
    labels = (expected.p > 0.5).astype(int)
    want = expected.assign(label=labels).groupby("label").agg(n=("id", "size"), mean_p=("p", "mean")).reset_index()
    assert df.label.tolist() == want.label.tolist()
    assert df.n.tolist() == want.n.tolist()
    np.testing.assert_allclose(df.mean_p, want.mean_p, atol=1e-5)


@pytest.mark.parametrize("optimize", [True, False])
def test_in_join(scored_to_change, optimize):
    engine, expected = scored_to_change
    engine.execute("CREATE TABLE regions AS SELECT id, id % 3 AS region FROM customers")
    df = engine.execute(
        f"SELECT r.region, avg({P}) AS p FROM customers c JOIN regions r ON c.id = r.id "
        "GROUP BY r.region ORDER BY r.region",
        optimize=optimize,
    )[0].df
    want = expected.assign(region=expected.id % 3).groupby("region").p.mean()
    np.testing.assert_allclose(df.p.to_numpy(), want.to_numpy(), atol=1e-5)


@pytest.mark.parametrize("optimize", [True, False])
def test_in_cte_and_subquery(scored, optimize):
    engine, expected = scored
    df = engine.execute(
        f"WITH s AS (SELECT id, {P} AS p FROM customers) "
        "SELECT id, p FROM s WHERE p > (SELECT avg(p) FROM s) ORDER BY id",
        optimize=optimize,
    )[0].df
    assert df.id.tolist() == expected[expected.p > expected.p.mean()].id.tolist()


@pytest.mark.parametrize("optimize", [True, False])
def test_select_star_with_prediction_and_having(scored, optimize):
    engine, expected = scored
    df = engine.execute(f"SELECT *, {P} AS p FROM customers ORDER BY id", optimize=optimize)[0].df
    assert list(df.columns) == [*expected.columns[:-1], "p"]
    np.testing.assert_allclose(df.p, expected.p, atol=1e-5)
    having = engine.execute(
        f"SELECT plan, max({P}) AS top FROM customers GROUP BY plan HAVING max({P}) > 0.9 ORDER BY plan",
        optimize=optimize,
    )[0].df
    want = expected.groupby("plan").p.max()
    assert having.plan.tolist() == sorted(want[want > 0.9].index)


def test_create_table_as_and_insert_select(scored_to_change):
    engine, expected = scored_to_change
    engine.execute(f"CREATE TABLE scores AS SELECT id, {P} AS p FROM customers")
    engine.execute(f"INSERT INTO scores SELECT id + 1000, {P} FROM customers WHERE id < 10")
    df = engine.execute("SELECT * FROM scores ORDER BY id")[0].df
    assert len(df) == 410
    np.testing.assert_allclose(df.p.head(400), expected.p, atol=1e-5)


def test_pinned_version_and_ml_predict_inside_a_larger_query(scored_to_change, onnx_models):
    engine, expected = scored_to_change
    register(engine, "churn", onnx_models.get("rf_clf").path)  # churn@2 now has other inputs
    df = engine.execute(
        "SELECT plan, avg(predict('churn@1', *).output_probability[2]) AS p FROM customers GROUP BY plan ORDER BY plan"
    )[0].df
    np.testing.assert_allclose(df.p, expected.groupby("plan").p.mean().sort_index(), atol=1e-5)
    counted = engine.execute(
        "SELECT count(*) AS n FROM ML.PREDICT(MODEL 'churn@1', (SELECT * FROM customers)) "
        "WHERE predicted_output_label = 1"
    )[0].df
    assert counted.n[0] == int((expected.p > 0.5).sum())


@pytest.mark.parametrize(
    ("sql", "note"),
    [
        (f"SELECT id, {P} AS p FROM customers", "scored once"),
        (f"SELECT avg({P}) AS p FROM customers WHERE age > 50", "scored once"),
        (f"SELECT c.id, {P} AS p FROM customers AS c ORDER BY c.id", "scored once"),
        (f"SELECT id FROM customers WHERE {P} > 0.5", "scored once"),
        (f"SELECT id FROM customers WHERE {P} > 0.5 AND age > 40 AND plan <> 'basic'", "scored once"),
        # beside an OR, DuckDB may score only the rows the other operand leaves undecided
        (f"SELECT id FROM customers WHERE ({P} > 0.5 OR age > 70) AND tenure < 5", "beside an OR"),
        (f"SELECT id, {P} AS p FROM customers LIMIT 5", "LIMIT/OFFSET"),
        (f"SELECT id, {P} AS p FROM customers ORDER BY id LIMIT 5", "LIMIT/OFFSET"),
        # sorted by the prediction, every row is scored before LIMIT: batching loses nothing
        (f"SELECT id FROM customers ORDER BY {P} DESC, id LIMIT 5", "scored once"),
        (f"SELECT id, {P} AS p FROM customers WHERE age > 30 ORDER BY p, id LIMIT 5 OFFSET 2", "scored once"),
        (f"SELECT c.id, {P} AS p FROM customers c JOIN (SELECT id AS rid FROM customers) d ON c.id = d.rid", "joins several relations"),
    ],
)
def test_batching_is_applied_only_where_sound(scored, sql, note):
    engine, _ = scored
    optimized = engine.execute(sql)[0]
    assert note in (optimized.explain or "")
    naive = engine.execute(sql, optimize=False)[0]
    sort = list(optimized.df.columns)
    pd.testing.assert_frame_equal(
        optimized.df.sort_values(sort).reset_index(drop=True), naive.df.sort_values(sort).reset_index(drop=True)
    )


def test_a_select_alias_in_where_is_read_over_the_scored_rows(engine: Engine, onnx_models, customers_frame):
    """DuckDB reads a select alias in WHERE (Spark SQL does not: its own error says so)."""
    _churn(engine, onnx_models, customers_frame)
    sql = f"SELECT id, {P} AS p FROM customers WHERE p > 0.5 AND age > 40"
    optimized = engine.execute(sql)[0]
    assert "scored once" in (optimized.explain or "")
    naive = engine.execute(sql, optimize=False)[0]
    pd.testing.assert_frame_equal(optimized.df.sort_values("id").reset_index(drop=True), naive.df.sort_values("id").reset_index(drop=True))


def test_a_where_with_predict_filters_before_scoring_and_keeps_the_rest(scored):
    """Conjuncts without predict() filter the rows that are scored; the others run after."""
    engine, expected = scored
    result = engine.execute(f"SELECT id FROM customers WHERE {P} > 0.5 AND age > 40 ORDER BY id")[0]
    older = expected[expected.age > 40]
    assert f"scoring: predict(churn@1): {len(older):,} rows scored" in (result.explain or "")
    assert result.df.id.tolist() == sorted(older[older.p > 0.5].id)


@pytest.mark.parametrize("kind", ["rf_clf", "gb_reg", "tree_reg", "logreg"])
def test_planned_calls_equal_naive_ones_in_every_executor_path(any_engine: BaseEngine, onnx_models, customers_frame, kind):
    """Whatever the planner returns (pruned ONNX, fewer features, SQL), batched or UDF, the values match."""
    engine = any_engine
    register(engine, "m", onnx_models.get(kind).path)
    args = "age, income, tenure, visits, balance"
    value = f"predict(m, {args})" + (".output_probability[2]" if onnx_models.get(kind).is_classifier else "")
    for sql in (
        f"SELECT id, {value} AS p FROM c WHERE age > 60 AND tenure < 5 ORDER BY id",  # batched
        f"SELECT id, {value} AS p FROM c WHERE age > 60 ORDER BY id LIMIT 50",  # UDF
        f"SELECT id, CASE WHEN age > 70 THEN {value} END AS p FROM c ORDER BY id",
    ):
        optimized = engine.execute(sql, frames={"c": customers_frame})[0]
        naive = engine.execute(sql, frames={"c": customers_frame}, optimize=False)[0]
        assert optimized.df.id.tolist() == naive.df.id.tolist()
        np.testing.assert_allclose(optimized.df.p.astype(float), naive.df.p.astype(float), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "select",
    [
        "COLUMNS('a.*')",
        "* LIKE 'a%'",
        "c.* EXCLUDE (plan)",
        "* REPLACE (age * 2 AS age)",
    ],
)
def test_star_forms_never_show_helper_columns(engine: Engine, onnx_models, customers_frame, select):
    """DuckDB's own star forms (COLUMNS, LIKE, EXCLUDE, REPLACE)."""
    _churn(engine, onnx_models, customers_frame)
    sql = f"SELECT {select}, {P} AS p FROM customers AS c ORDER BY id"
    optimized = engine.execute(sql)[0].df
    naive = engine.execute(sql, optimize=False)[0].df
    assert not [c for c in optimized.columns if c.startswith("nbgov")]
    pd.testing.assert_frame_equal(optimized, naive)


def test_unnamed_predictions_are_named_as_written_with_or_without_the_optimizer(scored):
    """A column computed from predict(...) without an alias is named after the expression
    as the user wrote it (as DuckDB names columns), never after the helper column or
    function it was scored through, and the same with and without the optimizer."""
    engine, _ = scored
    sql = f"SELECT plan, avg({P}), max({P}) > 0.5 FROM customers WHERE age > 30 GROUP BY plan ORDER BY plan"
    optimized = engine.execute(sql)[0]
    naive = engine.execute(sql, optimize=False)[0]
    names = ["plan", f"avg({P})", f"max({P}) > 0.5"]
    assert list(optimized.df.columns) == names == list(naive.df.columns)
    assert "scored once" in (optimized.explain or "")  # the batched path, whose helper columns stay hidden
    pd.testing.assert_frame_equal(optimized.df, naive.df, check_exact=False, atol=1e-6)
