"""ML.PREDICT follows the planner: a model the optimizer inlines as SQL is computed by
the engine itself (DuckDB or Spark), with the same columns, types, order and NULLs as
ONNX scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbgov.sqlml.engine import BaseEngine
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.spark import onnx_scored
from tests.fixtures.sqlml import register, unwrapped


@pytest.fixture
def engine(any_engine: BaseEngine) -> BaseEngine:
    """Every test here runs on DuckDB and on Spark."""
    return any_engine


def _with_nulls(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index[[2, 7]], "age"] = np.nan
    frame.loc[frame.index[11], "balance"] = np.nan
    return frame


def _assert_same_result(optimized: pd.DataFrame, naive: pd.DataFrame) -> None:
    assert list(optimized.columns) == list(naive.columns)
    assert list(optimized.dtypes) == list(naive.dtypes)
    assert len(optimized) == len(naive)
    for name in naive.columns:
        left, right = optimized[name], naive[name]
        assert left.isna().tolist() == right.isna().tolist(), name
        if name == "predicted_probabilities":
            scored = ~right.isna().to_numpy()
            np.testing.assert_allclose(np.stack(left[scored]), np.stack(right[scored]), atol=1e-5)
        elif name.startswith("predicted_") and left.dtype.kind == "f":
            np.testing.assert_allclose(left.to_numpy(), right.to_numpy(), rtol=1e-5, atol=1e-4)
        else:
            pd.testing.assert_series_equal(left, right)


def _small_tree(customers_frame: pd.DataFrame) -> object:
    from sklearn.tree import DecisionTreeClassifier

    features = customers_frame[list(NUMERIC_FEATURES)]
    return DecisionTreeClassifier(max_depth=2, random_state=0).fit(features, customers_frame.churned)


@pytest.mark.parametrize("kind", ["logreg", "linreg", "small_tree"])
@pytest.mark.parametrize("form", ["TABLE c", "(SELECT * FROM c WHERE tenure >= 2)"])
def test_ml_predict_inlined_as_sql_matches_onnx_scoring(engine: BaseEngine, onnx_models, customers_frame, kind, form):
    estimator = _small_tree(customers_frame) if kind == "small_tree" else onnx_models.get(kind).estimator
    register(engine, "m", estimator)
    frame = _with_nulls(customers_frame)
    query = f"SELECT * FROM ML.PREDICT(MODEL m, {form}) ORDER BY id"
    optimized = engine.execute(query, frames={"c": frame})[0]
    assert "ML.PREDICT(MODEL m@1): inlined as SQL" in (optimized.explain or "")
    assert onnx_scored(engine) == []  # nothing was scored by onnxruntime
    naive = engine.execute(query, frames={"c": frame}, optimize=False)[0]
    assert "ML.PREDICT(MODEL m@1): ONNX: the relation is scored in Arrow batches" in (naive.explain or "")
    assert "inlined" not in (naive.explain or "")
    _assert_same_result(optimized.df, naive.df)
    outputs = [c for c in naive.df.columns if c.startswith("predicted_")]
    assert optimized.df[outputs].isna().any(axis=1).sum() == naive.df[list(NUMERIC_FEATURES)].isna().any(axis=1).sum() > 0
    kinds = "SELECT " + ", ".join(f"typeof({c}) AS {c}" for c in outputs) + f" FROM ML.PREDICT(MODEL m, {form}) LIMIT 1"
    assert engine.execute(kinds, frames={"c": frame})[0].df.equals(engine.execute(kinds, frames={"c": frame}, optimize=False)[0].df)


def test_ml_predict_inlined_agrees_with_sklearn(engine: BaseEngine, onnx_models, customers_frame):
    model = onnx_models.get("logreg")
    register(engine, "m", model.estimator)
    df = engine.execute(
        "SELECT id, predicted_probabilities[2] AS p FROM ML.PREDICT(MODEL m, TABLE c) ORDER BY id",
        frames={"c": customers_frame},
    )[0].df
    expected = model.estimator.predict_proba(customers_frame.sort_values("id")[list(model.feature_names)])[:, 1]
    np.testing.assert_allclose(df.p.to_numpy(), expected, atol=1e-4)


def test_ml_predict_explain_names_the_sql_path_and_the_plan_runs_in_the_engine(engine: BaseEngine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("logreg").estimator)
    text = unwrapped(engine.explain("SELECT * FROM ML.PREDICT(MODEL m, TABLE c)", frames={"c": customers_frame}))
    assert "inlined as SQL" in text and "no ONNX scoring" in text
    assert "Arrow batches" not in text
    naive = unwrapped(engine.explain("SELECT * FROM ML.PREDICT(MODEL m, TABLE c)", frames={"c": customers_frame}, optimize=False))
    assert "ONNX: the relation is scored in Arrow batches" in naive


def test_ml_predict_inlined_relation_binds_parameters_and_nests(engine: BaseEngine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("linreg").estimator)
    query = (
        "SELECT p.id, p.predicted_variable FROM ML.PREDICT(MODEL m, (SELECT * FROM c WHERE age > $age)) AS p "
        "JOIN c USING (id) ORDER BY p.id"
    )
    optimized = engine.execute(query, frames={"c": customers_frame}, params={"age": 40})[0].df
    naive = engine.execute(query, frames={"c": customers_frame}, params={"age": 40}, optimize=False)[0].df
    assert optimized.id.tolist() == naive.id.tolist() == sorted(customers_frame.id[customers_frame.age > 40])
    np.testing.assert_allclose(optimized.predicted_variable, naive.predicted_variable, rtol=1e-5, atol=1e-3)


def test_ml_predict_inlined_computes_only_the_values_read_and_keeps_column_names(engine: BaseEngine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("logreg").estimator)
    frame = _with_nulls(customers_frame)
    query = (
        "SELECT count(p.predicted_label), sum(p.predicted_probabilities[2]) AS s, max(predicted_probabilities[1]) "
        "FROM ML.PREDICT(MODEL m, (SELECT * FROM c WHERE age > $age)) AS p WHERE p.predicted_probabilities[2] > 0.2"
    )
    optimized = engine.execute(query, frames={"c": frame}, params={"age": 30})[0]
    naive = engine.execute(query, frames={"c": frame}, params={"age": 30}, optimize=False)[0]
    assert "ML.PREDICT: output projection" in (optimized.explain or "")
    assert list(optimized.df.columns) == list(naive.df.columns)
    assert optimized.df.iloc[0, 0] == naive.df.iloc[0, 0] > 0
    np.testing.assert_allclose(optimized.df.iloc[0, 1:].astype(float), naive.df.iloc[0, 1:].astype(float), rtol=1e-5)


def test_ml_predict_weighs_sql_against_batched_onnx(engine: BaseEngine, onnx_models, customers_frame):
    """A depth-4 tree is cheaper in batched onnxruntime than as a SQL CASE (measured), so
    ML.PREDICT keeps it in ONNX; the cost in EXPLAIN is the batched one."""
    register(engine, "m", onnx_models.get("tree_clf").estimator)
    result = engine.execute("SELECT * FROM ML.PREDICT(MODEL m, TABLE c) ORDER BY id", frames={"c": customers_frame})[0]
    explain = result.explain or ""
    from nbgov.sqlml.optimizer.cost import BATCHED_TRANSFER_US, SPARK_WORKER_ROW_US

    cost = next(line for line in explain.splitlines() if "cost_ort=" in line)
    ort = float(cost.split("cost_ort=")[1].split(",")[0])
    if getattr(engine, "spark", None) is not None:  # Spark: onnxruntime means a Python worker per row
        assert "inlined as SQL" in explain and SPARK_WORKER_ROW_US <= ort < SPARK_WORKER_ROW_US + 0.2
    else:
        assert "kept as ONNX" in explain and "ML.PREDICT(MODEL m@1): ONNX: the relation is scored" in explain
        assert BATCHED_TRANSFER_US <= ort < BATCHED_TRANSFER_US + 0.2
    naive = engine.execute("SELECT * FROM ML.PREDICT(MODEL m, TABLE c) ORDER BY id", frames={"c": customers_frame}, optimize=False)[0]
    pd.testing.assert_frame_equal(result.df, naive.df)


def test_batched_cost_model_moves_the_sql_threshold_only_for_batched_scoring():
    from nbgov.sqlml.optimizer.cost import DUCKDB

    assert DUCKDB.trees(4).prefer_sql and not DUCKDB.trees(4, batched=True).prefer_sql
    assert DUCKDB.trees(3, batched=True).prefer_sql
    assert DUCKDB.linear(10, batched=True).prefer_sql
