"""Rule 3: small models as SQL expressions, chosen by the cost model."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from nbgov.sqlml.optimizer import Planner
from nbgov.sqlml.optimizer.cost import DUCKDB
from nbgov.sqlml.plan import OnnxPlan, SqlPlan
from tests.fixtures.models import customers
from tests.fixtures.optimizer import (
    FEATURES,
    calls_in,
    model_version,
    score_onnx,
    sql_values,
)

SELECT_ALL = f"SELECT predict(m, {', '.join(FEATURES)}) FROM rows"


def plan_for(trained: Any, sql: str = SELECT_ALL) -> tuple[Any, Any]:
    call = calls_in(sql, model_version(trained.onnx))[0]
    return call, Planner().plan_call(call)


def frame_with_holes() -> pd.DataFrame:
    frame = customers(500, seed=11)
    frame.loc[3, "income"] = None
    frame.loc[7, "age"] = None
    frame.loc[9, "balance"] = (
        np.nan
    )  # stays NaN in pandas float → DuckDB NULL; see below
    return frame


def test_linear_regression_is_inlined_and_matches_onnxruntime(onnx_models: Any) -> None:
    trained = onnx_models.get("linreg")
    call, plan = plan_for(trained)
    assert isinstance(plan.strategy, SqlPlan)
    assert any(
        n.startswith("inlined as SQL expression: linear model, 5 terms (cost SQL ")
        for n in plan.notes
    )
    frame = customers(800, seed=5)
    expected = score_onnx(OnnxPlan(call.model.onnx_bytes, "k", call.inputs), frame)[
        0
    ].ravel()
    got = np.array(sql_values(plan.strategy, frame), dtype=np.float64)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_logistic_pipeline_is_inlined_as_struct(onnx_models: Any) -> None:
    trained = onnx_models.get(
        "logreg"
    )  # StandardScaler + LogisticRegression → Scaler + LinearClassifier
    call, plan = plan_for(trained)
    assert isinstance(plan.strategy, SqlPlan)
    frame = customers(800, seed=6)
    labels, probabilities = score_onnx(
        OnnxPlan(call.model.onnx_bytes, "k", call.inputs), frame
    )
    values = sql_values(plan.strategy, frame)
    assert [v["output_label"] for v in values] == labels.tolist()
    np.testing.assert_allclose(
        np.array([v["output_probability"] for v in values]), probabilities, atol=1e-6
    )
    np.testing.assert_allclose(
        np.array([v["output_probability"] for v in values]),
        trained.estimator.predict_proba(frame[list(FEATURES)]),
        atol=1e-5,
    )


def test_sql_result_types_match_predict(onnx_models: Any) -> None:
    con = duckdb.connect()
    con.register("rows", customers(10))
    _, plan = plan_for(onnx_models.get("logreg"))
    described = con.execute(
        f"DESCRIBE SELECT {plan.strategy.expression.sql(dialect='duckdb')} AS p FROM rows"
    ).fetchall()
    assert described[0][1] == "STRUCT(output_label BIGINT, output_probability FLOAT[])"
    _, plan = plan_for(onnx_models.get("linreg"))
    described = con.execute(
        f"DESCRIBE SELECT {plan.strategy.expression.sql(dialect='duckdb')} AS p FROM rows"
    ).fetchall()
    assert described[0][1] == "FLOAT"


@pytest.mark.parametrize("kind", ["linreg", "logreg", "tree_reg"])
def test_null_input_gives_null(kind: str, onnx_models: Any) -> None:
    _, plan = plan_for(onnx_models.get(kind))
    assert isinstance(plan.strategy, SqlPlan)
    frame = frame_with_holes()
    values = sql_values(plan.strategy, frame)
    assert values[3] is None and values[7] is None and values[9] is None
    assert all(v is not None for i, v in enumerate(values) if i not in (3, 7, 9))


def test_small_tree_after_pruning_is_inlined_exactly(onnx_models: Any) -> None:
    trained = onnx_models.get("tree_reg")
    sql = SELECT_ALL + " WHERE age > 60"
    call, plan = plan_for(trained, sql)
    assert isinstance(plan.strategy, SqlPlan)
    assert any(n.startswith("inlined as SQL CASE: 1 tree") for n in plan.notes)
    frame = customers(2000, seed=8)
    frame = frame[frame.age > 60].reset_index(drop=True)
    expected = score_onnx(OnnxPlan(call.model.onnx_bytes, "k", call.inputs), frame)[
        0
    ].ravel()
    got = np.array(sql_values(plan.strategy, frame), dtype=np.float32)
    np.testing.assert_array_equal(got, expected)


def test_tree_sql_routes_nan_like_onnxruntime(onnx_models: Any) -> None:
    trained = onnx_models.get("tree_reg")
    _, plan = plan_for(trained)
    assert isinstance(plan.strategy, SqlPlan)
    frame = customers(300, seed=9)
    X = frame[list(FEATURES)].to_numpy().astype(np.float32)
    nan_rows = frame.id.to_numpy() % 3 == 0
    for feature in (0, 1, 2):
        X_nan = X.copy()
        X_nan[nan_rows, feature] = np.nan
        session = ort.InferenceSession(trained.onnx, providers=["CPUExecutionProvider"])
        expected = session.run(None, {session.get_inputs()[0].name: X_nan})[0].ravel()
        con = duckdb.connect()
        con.register("raw", frame)
        name = FEATURES[feature]
        # a real NaN (not NULL): DuckDB sorts NaN above all numbers, ORT sends it to the false branch
        source = f"SELECT * REPLACE (CASE WHEN id % 3 = 0 THEN 'nan'::DOUBLE ELSE {name} END AS {name}) FROM raw"
        rows = con.execute(
            f"SELECT {plan.strategy.expression.sql(dialect='duckdb')} FROM ({source}) ORDER BY id"
        ).fetchall()
        np.testing.assert_array_equal(
            np.array([r[0] for r in rows], dtype=np.float32), expected
        )


def test_big_ensembles_stay_in_onnx(onnx_models: Any) -> None:
    _, plan = plan_for(onnx_models.get("gb_reg_100x8"))
    assert isinstance(plan.strategy, OnnxPlan)
    assert any(
        n.startswith("kept as ONNX: 100 trees, estimated cheaper (SQL ")
        for n in plan.notes
    )
    assert float(plan.stats["cost_sql"]) > float(plan.stats["cost_ort"])  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["mlp"])  # pipelines are rewritten now: test_optimizer_pipelines.py
def test_unsupported_models_run_unchanged(kind: str, onnx_models: Any) -> None:
    trained = onnx_models.get(kind)
    model = model_version(trained.onnx)
    args = (
        "plan, " + ", ".join(FEATURES)
        if kind == "pipeline_mixed"
        else ", ".join(FEATURES)
    )
    call = calls_in(f"SELECT predict(m, {args}) FROM rows WHERE age > 50", model)[0]
    plan = Planner().plan_call(call)
    assert (
        isinstance(plan.strategy, OnnxPlan)
        and plan.strategy.model_bytes == model.onnx_bytes
    )
    assert plan.strategy.inputs == call.inputs
    assert any(n.startswith("kept as ONNX") for n in plan.notes)


def test_cost_model_prefers_sql_for_linear_and_onnx_for_forests() -> None:
    assert DUCKDB.linear(10).prefer_sql
    assert not DUCKDB.trees(50 * 8).prefer_sql
    assert DUCKDB.trees(4).prefer_sql  # one depth-4 tree: measured 0.19 s (SQL) vs 0.28 s (ORT) per 1M rows
    assert not DUCKDB.trees(10 * 5).prefer_sql  # 10 trees of depth 5: 2.3 s (SQL) vs 0.9 s (ORT)
    assert DUCKDB.trees(400).describe().startswith("SQL 2.")


@pytest.mark.parametrize("kind", ["tree_clf", "tree_reg"])
def test_single_tree_is_tabulated_exactly(kind: str, onnx_models: Any) -> None:
    # every leaf's output comes from onnxruntime itself: labels and probabilities are exact
    trained = onnx_models.get(kind)
    call, plan = plan_for(trained, SELECT_ALL + " WHERE age > 40")
    assert isinstance(plan.strategy, SqlPlan)
    frame = customers(1500, seed=31)
    frame = frame[frame.age > 40].reset_index(drop=True)
    expected = score_onnx(OnnxPlan(call.model.onnx_bytes, "k", call.inputs), frame)
    values = sql_values(plan.strategy, frame)
    if kind == "tree_clf":
        assert [v["output_label"] for v in values] == expected[0].tolist()
        np.testing.assert_array_equal(
            np.array([v["output_probability"] for v in values], dtype=np.float32),
            expected[1],
        )
    else:
        np.testing.assert_array_equal(
            np.array(values, dtype=np.float32), expected[0].ravel()
        )


def _one_tree(root: tuple[str, float, int], right: tuple[str, float, int]) -> bytes:
    """One regression tree over (x0, x1): ``root`` tests x0; its true child tests x1 <= 0 (NaN
    true), its false child ``right`` tests x0 again; the leaves score 1, 2, 3, 4."""
    from onnx import TensorProto, helper

    tests = {0: (0, *root), 1: (1, "BRANCH_LEQ", 0.0, 1), 4: (0, *right)}
    leaves = {2: 1.0, 3: 2.0, 5: 3.0, 6: 4.0}
    children = {0: (1, 4), 1: (2, 3), 4: (5, 6)}
    ids = range(7)
    node = helper.make_node(
        "TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=1,
        nodes_treeids=[0] * 7, nodes_nodeids=list(ids),
        nodes_featureids=[tests[i][0] if i in tests else 0 for i in ids],
        nodes_modes=[tests[i][1] if i in tests else "LEAF" for i in ids],
        nodes_values=[tests[i][2] if i in tests else 0.0 for i in ids],
        nodes_missing_value_tracks_true=[tests[i][3] if i in tests else 0 for i in ids],
        nodes_truenodeids=[children.get(i, (0, 0))[0] for i in ids],
        nodes_falsenodeids=[children.get(i, (0, 0))[1] for i in ids],
        target_treeids=[0] * 4, target_nodeids=list(leaves), target_ids=[0] * 4, target_weights=list(leaves.values()),
    )
    graph = helper.make_graph(
        [node], "one_tree", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    return model.SerializeToString()


_ODD_TESTS = [
    *((mode, t, nan) for mode in ("BRANCH_LEQ", "BRANCH_LT") for t in (np.inf, -np.inf, np.nan, 0.0) for nan in (0, 1)),
    *((mode, np.nan, nan) for mode in ("BRANCH_GT", "BRANCH_NEQ") for nan in (0, 1)),
]


@pytest.mark.parametrize("root", _ODD_TESTS, ids=str)
@pytest.mark.parametrize("right", [("BRANCH_LT", np.inf, 0), ("BRANCH_LEQ", np.nan, 1)], ids=str)
def test_single_tree_sql_routes_every_value_as_onnxruntime_past_odd_thresholds(
    root: tuple[str, float, int], right: tuple[str, float, int]
) -> None:
    """NaN, ±inf and signed zeros through infinite and NaN thresholds, NaN sent either way: the
    inlined CASE scores every row as onnxruntime does. The leaf only NaN reaches past ``x <= inf``
    was scored on inf (its witness), which onnxruntime sends the other way; and DuckDB holds
    ``x <= NaN`` for every number, where onnxruntime's comparison with a NaN threshold is false."""
    import onnx
    import pyarrow as pa
    import sqlglot.expressions as exp

    from nbgov.sqlml.models.forest import read_forest
    from nbgov.sqlml.optimizer.to_sql import fill, single_tree_sql, template

    payload = _one_tree(root, right)
    outputs = model_version(payload, feature_names=("x0", "x1")).outputs
    forest = read_forest(onnx.load_model_from_string(payload).graph.node[0])
    sql_model = single_tree_sql(payload, forest, 2, outputs)
    assert sql_model is not None
    shape = template(sql_model, outputs, 0)
    assert shape is not None
    body = fill(shape, [exp.column("x0"), exp.column("x1")], []).sql(dialect="duckdb")
    values = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 3.4e38], dtype=np.float32)
    X = np.array([(a, b) for a in values for b in values], dtype=np.float32)
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"X": X})[0].ravel()
    con = duckdb.connect()
    con.register("t", pa.table({"i": np.arange(len(X)), "x0": X[:, 0], "x1": X[:, 1]}))
    got = [r[0] for r in con.execute(f"SELECT {body} FROM t ORDER BY i").fetchall()]
    np.testing.assert_array_equal(np.array(got, dtype=np.float32), expected, err_msg=body)
