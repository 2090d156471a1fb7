"""Tree ensembles inlined as Spark SQL: the optimizer's SQL plan runs in Spark (no Python
worker) and gives DuckDB's values: labels exact, scores within 1e-5."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.optimizer import Planner, cost
from tests.fixtures.sqlml import unwrapped

pytestmark = pytest.mark.spark

FEATURES = ("f0", "f1", "f2", "f3")
ARGS = ", ".join(FEATURES)
WHERE = "WHERE f0 > 0.8 AND f1 < 0.3"
FREE_SQL = replace(cost.SPARK, sql_max_levels=float("inf"), sql_tree_level_us=0.0, sql_node_statement_us=0.0)


def _data(rows: int = 3_000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({name: rng.random(rows) for name in FEATURES})
    frame.insert(0, "id", np.arange(rows, dtype=np.int64))
    frame.loc[5, ["f0", "f1", "f2"]] = [0.9, 0.1, np.nan]  # a row the query reads: NULL in, NULL out
    return frame


def _onnx(estimator: object) -> bytes:
    model = convert_sklearn(
        estimator, initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
        target_opset={"": 17, "ai.onnx.ml": 3}, options={id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None,
    )
    return model.SerializeToString()


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    frame = _data(2_000).fillna(0.5)
    x = frame[list(FEATURES)].to_numpy(np.float32)
    y = x[:, 0] * 2 - x[:, 1] + np.sin(6 * x[:, 2])
    return {
        # deep trees and many of them: the SQL once failed with a RecursionError here
        "reg": _onnx(RandomForestRegressor(n_estimators=50, max_depth=8, random_state=0).fit(x, y)),
        "binary": _onnx(GradientBoostingClassifier(n_estimators=20, max_depth=5, random_state=0).fit(x, y > 0.5)),
        "multi": _onnx(RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(x, np.digitize(y, [0.0, 1.0]))),
        # three classes through a SOFTMAX (a list_sum in DuckDB's SQL)
        "softmax": _onnx(GradientBoostingClassifier(n_estimators=6, max_depth=3, random_state=0).fit(x, np.digitize(y, [0.0, 1.0]))),
    }


@pytest.fixture
def unlimited_engine(spark, spark_database):
    """A Spark engine whose planner takes inlined SQL as free and ignores Spark's
    code-generation limit: the 50-tree forest, which ``cost.SPARK`` keeps in ONNX, is
    forced into SQL."""
    from nbgov.sqlml.spark.engine import SparkEngine

    planner = Planner(batched=True, costs=FREE_SQL)
    engine = SparkEngine(session=spark, planner=planner)
    yield engine
    engine.close()


@pytest.fixture
def data_view(spark):
    frame = _data()
    spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False)).createOrReplaceTempView("data")
    yield frame
    spark.catalog.dropTempView("data")


QUERIES = {
    "reg": f"SELECT id, predict(m, {ARGS}) AS v FROM data {WHERE} ORDER BY id",
    "binary": f"SELECT id, predict(m, {ARGS}).label AS label, predict(m, {ARGS}).probabilities[2] AS p FROM data {WHERE} ORDER BY id",
    "multi": f"SELECT id, predict(m, {ARGS}).label AS label, predict(m, {ARGS}).probabilities[3] AS p FROM data {WHERE} ORDER BY id",
    "softmax": f"SELECT id, predict(m, {ARGS}).label AS label, predict(m, {ARGS}).probabilities[3] AS p FROM data {WHERE} ORDER BY id",
}


@pytest.mark.parametrize("kind", list(QUERIES))
def test_pruned_forest_runs_as_spark_sql_with_duckdbs_values(unlimited_engine, data_view, models, kind):
    # the 50-tree forest is too large for Spark's generated code (cost.py keeps it in ONNX):
    # forced into SQL here, its translation must still be exact (it once hit a RecursionError)
    sql = QUERIES[kind]
    create = "CREATE OR REPLACE MODEL m FROM $m"
    unlimited_engine.execute(create, params={"m": models[kind]})
    explained = unwrapped(unlimited_engine.explain(sql))
    assert "inlined as SQL" in explained, explained[-800:]
    assert "MapInArrow" not in explained and "ArrowEvalPython" not in explained  # no Python worker
    inlined = unlimited_engine.execute(sql)[0].df
    kept = unlimited_engine.execute(sql, optimize=False)[0].df
    with Engine() as duckdb:
        duckdb.execute(create, params={"m": models[kind]})
        expected = duckdb.execute(sql, frames={"data": data_view})[0].df
    assert len(inlined) == len(expected) == len(kept) > 50
    assert inlined.id.tolist() == expected.id.tolist() == kept.id.tolist()
    for got in (inlined, kept):
        if kind == "reg":
            values, reference = got.v.to_numpy(float), expected.v.to_numpy(float)
        else:
            assert _labels(got) == _labels(expected)  # labels exact
            values, reference = got.p.to_numpy(float), expected.p.to_numpy(float)
        assert np.array_equal(np.isnan(values), np.isnan(reference))  # the NULL row stays NULL
        ok = ~np.isnan(reference)
        np.testing.assert_allclose(values[ok], reference[ok], rtol=0, atol=1e-5)
    assert np.isnan(inlined.iloc[:, 1].to_numpy(float)).sum() == 1


def _labels(frame: pd.DataFrame) -> list[object]:
    return [None if pd.isna(v) else int(v) for v in frame.label]


def test_spark_inlines_only_what_wins_at_any_row_count() -> None:
    """Measured on Spark (cost.py): a CASE level costs ~0.045 µs a row against ~0.3 µs
    for the Python worker, and each inlined node ~0.4 ms a statement against the worker's
    ~70 ms. Compile sees no row count, so SQL only when it wins on both: a shallow tree is
    SQL; a 4-tree depth-5 forest (20 levels, 252 nodes: 2.4x slower than --no-optimize
    inlined on a full table) and a shallow but wide one stay ONNX; DuckDB is unchanged."""
    assert cost.SPARK.trees(3, nodes=15, batched=True).prefer_sql
    forest = cost.SPARK.trees(20, nodes=252, batched=True)
    assert not forest.prefer_sql and "per statement" in forest.describe()
    assert not cost.SPARK.trees(6, nodes=400, batched=True).prefer_sql  # its code outweighs the worker
    assert not cost.DUCKDB.trees(30, batched=True).prefer_sql
    assert cost.DUCKDB.trees(3, nodes=10_000, batched=True).prefer_sql  # DuckDB: no cost per statement
    large = cost.SPARK.trees(240, batched=True)
    assert not large.prefer_sql and "too large" in large.describe()


def test_a_small_forest_on_a_whole_table_stays_in_onnx_on_spark(spark_engine, data_view, engine):
    """The 4-tree depth-5 forest of cost.py's measurement, unpruned on a full table: the
    optimizer keeps it in ONNX on Spark (it inlined it before, 2.4x slower at 1M rows), with
    --no-optimize's and DuckDB's values."""
    frame = data_view.fillna(0.5)
    x = frame[list(FEATURES)].to_numpy(np.float32)
    payload = _onnx(RandomForestRegressor(n_estimators=4, max_depth=5, random_state=0).fit(x, x[:, 0] - x[:, 1]))
    sql = f"SELECT id, predict(m, {ARGS}) AS v FROM data ORDER BY id"
    for each in (spark_engine, engine):
        each.execute("CREATE OR REPLACE MODEL m FROM $m", params={"m": payload})
    explained = unwrapped(spark_engine.explain(sql))
    assert "kept as ONNX: 4 trees" in explained and "inlined" not in explained and "MapInArrow" in explained
    optimized = spark_engine.execute(sql)[0].df
    naive = spark_engine.execute(sql, optimize=False)[0].df
    expected = engine.execute(sql, frames={"data": data_view})[0].df
    assert optimized.id.tolist() == naive.id.tolist() == expected.id.tolist()
    for got in (optimized, naive):
        np.testing.assert_allclose(got.v.to_numpy(float), expected.v.to_numpy(float), rtol=0, atol=1e-5, equal_nan=True)


def test_a_models_sql_is_not_retyped_but_the_users_is(unlimited_engine, data_view, models, monkeypatch):
    """Spark's translation types a statement (``typed.py``) for DuckDB's meanings of
    ``-``, ``/`` and ``avg`` of dates and DECIMALs. A model inlined as SQL is FLOAT
    arithmetic over thousands of nodes: typing it cost each query tens of milliseconds and
    changed nothing, so it is left as written; the user's own DECIMAL average still is."""
    from nbgov.sqlml.spark import typed

    typings: list[str] = []
    annotate = typed._annotate
    monkeypatch.setattr(typed, "_annotate", lambda tree, *rest: typings.append(tree.sql()) or annotate(tree, *rest))
    unlimited_engine.execute("CREATE OR REPLACE MODEL m FROM $m", params={"m": models["binary"]})
    inlined = f"SELECT avg(predict(m, {ARGS}).probabilities[2]) AS p, avg(predict(m, {ARGS}).probabilities[2] / 2) AS half FROM data {WHERE}"
    assert "inlined as SQL" in unlimited_engine.explain(inlined)
    unlimited_engine.execute(inlined)
    assert typings == []
    mean = unlimited_engine.execute(f"SELECT avg(f0::DECIMAL(10, 3)) AS d, avg(predict(m, {ARGS}).probabilities[2]) AS p FROM data {WHERE}")[-1].df
    assert len(typings) == 1 and "NBGOV_INLINED_MODEL()" in typings[0] and isinstance(mean.d[0], float)
