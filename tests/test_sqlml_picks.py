"""Batched scoring computes only the outputs a query reads (``predict(...).output_probability[2]``,
``ML.PREDICT``'s ``predicted_<output>[k]``) and gives the same rows as the whole value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlglot

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.planning.picks import relation_picks
from nbgov.sqlml.plan import TensorSpec
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.sqlml import register, unwrapped

FEATURES = ", ".join(NUMERIC_FEATURES)
OUTPUTS = (TensorSpec("output_label", "int64", (None,)), TensorSpec("output_probability", "float", (None, 2)))


def _both(engine: Engine, sql: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Optimized and --no-optimize results, and the optimized EXPLAIN."""
    frames = {"customers": frame}
    optimized = engine.execute(sql, frames=frames)[0].df
    naive = engine.execute(sql, frames=frames, optimize=False)[0].df
    return optimized, naive, unwrapped(engine.explain(sql, frames=frames))


@pytest.mark.parametrize("kind", ["mlp", "rf_clf"])
def test_predict_reading_one_probability_scores_only_that(engine: Engine, onnx_models, customers_frame, kind):
    model = onnx_models.get(kind)
    register(engine, "m", model.path)
    sql = f"SELECT id, predict(m, {FEATURES}).output_probability[2] AS p1 FROM customers ORDER BY id"
    optimized, naive, explain = _both(engine, sql, customers_frame)
    assert "output projection: only output_probability[2] computed and returned" in explain
    assert optimized.p1.dtype == naive.p1.dtype
    pd.testing.assert_frame_equal(optimized, naive)
    expected = model.estimator.predict_proba(customers_frame[list(NUMERIC_FEATURES)])[:, 1]
    np.testing.assert_allclose(optimized.p1.to_numpy(), expected, atol=1e-4)


def test_identical_calls_reading_several_parts_share_one_scoring(engine: Engine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("mlp").path)
    sql = (
        f"SELECT predict(m, {FEATURES}).output_label AS label, count(*) AS n, "
        f"avg(predict(m, {FEATURES}).output_probability[1]) AS p0, max(predict(m, {FEATURES}).output_probability[2]) AS p1 "
        f"FROM customers GROUP BY predict(m, {FEATURES}).output_label ORDER BY label"
    )
    optimized, naive, explain = _both(engine, sql, customers_frame)
    pd.testing.assert_frame_equal(optimized, naive)
    assert optimized.n.sum() == len(customers_frame)
    assert "only output_label, output_probability[1], output_probability[2] computed" in explain
    assert explain.count("batching: the relation is scored once") == 1


def test_grouping_by_the_whole_value_keeps_the_whole_value(engine: Engine, onnx_models, customers_frame):
    """GROUP BY predict(...) must match predict(...).output_label in the SELECT: no projection."""
    register(engine, "m", onnx_models.get("rf_clf").path)
    sql = (
        f"SELECT predict(m, {FEATURES}).output_label AS label, count(*) AS n FROM customers "
        f"GROUP BY predict(m, {FEATURES}) ORDER BY label, n"
    )
    optimized, naive, explain = _both(engine, sql, customers_frame)
    pd.testing.assert_frame_equal(optimized, naive)
    assert "output projection" not in explain


def test_null_inputs_give_null_picked_values(engine: Engine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("mlp").path)
    first, *rest = NUMERIC_FEATURES
    args = ", ".join([f"CASE WHEN id % 4 = 0 THEN NULL ELSE {first} END", *rest])
    sql = f"SELECT id, predict(m, {args}).output_probability[2] AS p1 FROM customers ORDER BY id"
    optimized, naive, _ = _both(engine, sql, customers_frame)
    pd.testing.assert_frame_equal(optimized, naive)
    assert optimized.p1[optimized.id % 4 == 0].isna().all()
    assert optimized.p1[optimized.id % 4 != 0].notna().all()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id, predicted_probabilities[2] AS p1 FROM ML.PREDICT(MODEL m, TABLE customers) ORDER BY id",
        "SELECT q.id, q.predicted_probabilities[2] AS p1 FROM ML.PREDICT(MODEL m, TABLE customers) AS q ORDER BY q.id",
        "SELECT avg(predicted_probabilities[2]) AS p1, count(*) AS n FROM ML.PREDICT(MODEL m, (SELECT * FROM customers WHERE age > 40))",
    ],
    ids=["plain", "aliased", "aggregate-over-filter"],
)
def test_ml_predict_computes_only_the_predicted_values_read(engine: Engine, onnx_models, customers_frame, sql):
    register(engine, "m", onnx_models.get("mlp").estimator)  # with feature names, to bind by column
    optimized, naive, explain = _both(engine, sql, customers_frame)
    pd.testing.assert_frame_equal(optimized, naive)
    assert "ML.PREDICT(MODEL m@1): output projection: only probabilities[2] computed and returned" in explain


def test_ml_predict_reading_everything_is_not_projected(engine: Engine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("mlp").estimator)
    sql = "SELECT * FROM ML.PREDICT(MODEL m, TABLE customers) ORDER BY id"
    optimized, naive, explain = _both(engine, sql, customers_frame)
    pd.testing.assert_frame_equal(optimized, naive)
    assert {"predicted_label", "predicted_probabilities"} <= set(optimized.columns)
    assert "output projection" not in explain


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM P",  # every column
        "SELECT predicted_output_label AS predicted_output_probability FROM P",  # an alias shadows a column
        "SELECT a.predicted_output_probability[2] FROM P AS a JOIN t ON true",  # a join
        "SELECT (SELECT 1), predicted_output_probability[2] FROM P",  # a subquery
        "SELECT count(*) FROM P",  # nothing read: scored as usual
        "SELECT x.predicted_output_probability[2] FROM P",  # another relation's column
    ],
)
def test_relation_picks_refuses_what_it_cannot_prove(sql):
    assert relation_picks(sqlglot.parse_one(sql, read="duckdb"), "P", OUTPUTS, "h_") is None


def test_relation_picks_reads_elements_and_whole_outputs():
    tree = sqlglot.parse_one(
        "SELECT predicted_output_probability[2], predicted_output_probability[2] + 1, predicted_output_label FROM P",
        read="duckdb",
    )
    found = relation_picks(tree, "P", OUTPUTS, "h_")
    assert found is not None
    picks, replaced = found
    assert [(p.output, p.element) for p in picks] == [("output_label", None), ("output_probability", 1)]
    assert picks[0].column == "predicted_output_label"
    assert len(replaced) == 2 and {column for _, column in replaced} == {picks[1].column}
