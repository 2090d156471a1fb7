"""predict(...) and ML.PREDICT give the same numbers as scikit-learn and onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.optimizer import Planner
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.sqlml import register

CLASSIFIERS = ["logreg", "rf_clf", "gb_clf", "mlp", "tree_clf"]
REGRESSORS = ["linreg", "rf_reg", "gb_reg", "tree_reg"]
FEATURES = ", ".join(NUMERIC_FEATURES)


def _ort_outputs(onnx_bytes: bytes, X: pd.DataFrame, mixed: bool) -> list[object]:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    if mixed:
        feeds = {
            i.name: (X[[i.name]].to_numpy().astype(object) if i.type == "tensor(string)" else X[[i.name]].to_numpy(np.float32))
            for i in session.get_inputs()
        }
    else:
        feeds = {"input": X[list(NUMERIC_FEATURES)].to_numpy(np.float32)}
    return session.run(None, feeds)


def _scored(engine: Engine, path, frame: pd.DataFrame, optimize: bool) -> pd.DataFrame:
    """``SELECT id, predict(m, features) AS p`` over ``frame``, ordered by id."""
    register(engine, "m", path)
    return engine.execute(
        f"SELECT id, predict(m, {FEATURES}) AS p FROM customers ORDER BY id",
        frames={"customers": frame},
        optimize=optimize,
    )[0].df


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "naive"])
@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_classifier_probabilities_equal_sklearn(engine: Engine, onnx_models, customers_frame, kind, optimize):
    model = onnx_models.get(kind)
    result = _scored(engine, model.path, customers_frame, optimize)
    labels = np.array([row["output_label"] for row in result.p])
    probabilities = np.array([row["output_probability"] for row in result.p])
    expected = model.estimator.predict_proba(customers_frame[list(NUMERIC_FEATURES)])
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    assert (labels == model.estimator.predict(customers_frame[list(NUMERIC_FEATURES)])).mean() > 0.99


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "naive"])
@pytest.mark.parametrize("kind", REGRESSORS)
def test_regressor_values_equal_onnxruntime_and_sklearn(engine: Engine, onnx_models, customers_frame, kind, optimize):
    model = onnx_models.get(kind)
    result = _scored(engine, model.path, customers_frame, optimize)
    raw = np.asarray(_ort_outputs(model.onnx, customers_frame, mixed=False)[0]).reshape(-1)
    np.testing.assert_allclose(result.p.to_numpy(), raw, rtol=1e-5, atol=1e-3)
    sklearn = model.estimator.predict(customers_frame[list(NUMERIC_FEATURES)])
    np.testing.assert_allclose(result.p.to_numpy(), sklearn, rtol=1e-3, atol=0.05)


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "naive"])
def test_mixed_pipeline_string_and_float_inputs(engine: Engine, onnx_models, customers_frame, optimize):
    model = onnx_models.get("pipeline_mixed")
    register(engine, "churn", model.path)
    result = engine.execute(
        "SELECT id, predict(churn, *) AS p, predict(churn, *).output_probability[2] AS p1 FROM customers ORDER BY id",
        frames={"customers": customers_frame},
        optimize=optimize,
    )[0].df
    expected = model.estimator.predict_proba(model.X)
    np.testing.assert_allclose(np.stack(result.p.map(lambda r: r["output_probability"])), expected, atol=1e-4)
    np.testing.assert_allclose(result.p1.to_numpy(), expected[:, 1], atol=1e-4)
    assert (result.p.map(lambda r: r["output_label"]).to_numpy() == model.estimator.predict(model.X)).all()


def test_positional_arguments_feed_mixed_inputs_in_order(engine: Engine, onnx_models, customers_frame):
    model = onnx_models.get("pipeline_mixed")
    register(engine, "churn", model.path)
    df = engine.execute(
        "SELECT predict(churn, plan, age, income, tenure, visits, balance).output_probability[2] AS p "
        "FROM customers ORDER BY id",
        frames={"customers": customers_frame},
    )[0].df
    np.testing.assert_allclose(df.p.to_numpy(), model.estimator.predict_proba(model.X)[:, 1], atol=1e-4)


def test_named_argument_renames_one_input(engine: Engine, onnx_models, customers_frame):
    model = onnx_models.get("pipeline_mixed")
    register(engine, "churn", model.path)
    renamed = customers_frame.rename(columns={"age": "years"})
    df = engine.execute(
        "SELECT predict(churn, age := years, *).output_probability[2] AS p FROM customers ORDER BY id",
        frames={"customers": renamed},
    )[0].df
    np.testing.assert_allclose(df.p.to_numpy(), model.estimator.predict_proba(model.X)[:, 1], atol=1e-4)


@pytest.mark.parametrize("kind", ["logreg", "rf_clf", "gb_reg", "mlp"])
def test_estimator_registered_from_variable_binds_star_by_feature_name(engine: Engine, onnx_models, customers_frame, kind):
    model = onnx_models.get(kind)
    register(engine, "m", model.estimator)  # converted with skl2onnx, feature names kept
    df = engine.execute("SELECT predict(m, *) AS p FROM customers ORDER BY id", frames={"customers": customers_frame})[0].df
    X = customers_frame[list(NUMERIC_FEATURES)]
    if model.is_classifier:
        got = np.stack(df.p.map(lambda r: r["probabilities"]))
        np.testing.assert_allclose(got, model.estimator.predict_proba(X), atol=1e-4)
    else:
        np.testing.assert_allclose(df.p.to_numpy(), model.estimator.predict(X), rtol=1e-3, atol=0.05)


def test_mixed_pipeline_estimator_converts_with_string_input(engine: Engine, onnx_models, customers_frame):
    model = onnx_models.get("pipeline_mixed")
    register(engine, "m", model.estimator)
    described = engine.execute("DESCRIBE MODEL m")[0].df
    inputs = described[described.kind == "input"].set_index("name")["type"].to_dict()
    assert inputs["plan"] == "string" and inputs["age"] == "float"
    df = engine.execute("SELECT predict(m, *).probabilities[2] AS p FROM c ORDER BY id", frames={"c": customers_frame})[0].df
    np.testing.assert_allclose(df.p.to_numpy(), model.estimator.predict_proba(model.X)[:, 1], atol=1e-4)


@pytest.mark.parametrize("kind", ["pipeline_mixed", "rf_clf", "gb_reg", "mlp"])
def test_ml_predict_returns_input_columns_and_predicted_outputs(engine: Engine, onnx_models, customers_frame, kind):
    model = onnx_models.get(kind)
    register(engine, "m", model.estimator)
    df = engine.execute(
        "SELECT * FROM ML.PREDICT(MODEL m, (SELECT * FROM customers WHERE age > 60)) ORDER BY id",
        frames={"customers": customers_frame},
    )[0].df
    subset = customers_frame[customers_frame.age > 60].sort_values("id")
    assert list(df.columns[: len(customers_frame.columns)]) == list(customers_frame.columns)
    assert df.id.tolist() == subset.id.tolist()
    X = subset[list(model.feature_names)]
    if model.is_classifier:
        assert {"predicted_label", "predicted_probabilities"} <= set(df.columns)
        np.testing.assert_allclose(np.stack(df.predicted_probabilities), model.estimator.predict_proba(X), atol=1e-4)
    else:
        np.testing.assert_allclose(df.predicted_variable.to_numpy(), model.estimator.predict(X), rtol=1e-3, atol=0.05)


def test_ml_predict_table_form_scores_in_large_batches(onnx_models, customers_frame):
    model = onnx_models.get("pipeline_mixed")
    big = pd.concat([customers_frame] * 50, ignore_index=True)  # 20,000 rows
    with Engine(batch_rows=4096, planner=Planner(inline_sql=False, batched=True)) as eng:  # kept in ONNX
        register(eng, "m", model.path)
        eng.execute("CREATE TABLE customers AS SELECT * FROM big", frames={"big": big})
        result = eng.execute("SELECT * FROM ML.PREDICT(MODEL m, TABLE customers)")[0]
    assert len(result.df) == len(big)
    expected = model.estimator.predict_proba(big[list(model.feature_names)])
    np.testing.assert_allclose(np.stack(result.df.predicted_output_probability), expected, atol=1e-4)
    assert "batches of 4,096" in (result.explain or "")


def test_null_input_gives_null_output_and_other_rows_are_scored(engine: Engine, onnx_models, customers_frame):
    model = onnx_models.get("pipeline_mixed")
    register(engine, "m", model.path)
    frame = customers_frame.head(20).copy()
    frame.loc[3, "age"] = np.nan
    frame["age"] = frame["age"].astype("Float64")
    frame.loc[3, "age"] = pd.NA
    frame.loc[5, "plan"] = None
    for optimize in (True, False):
        df = engine.execute(
            "SELECT id, predict(m, *).output_probability[2] AS p FROM f ORDER BY id", frames={"f": frame}, optimize=optimize
        )[0].df
        assert df.p.isna().tolist() == [i in (3, 5) for i in range(20)]
        keep = frame.drop(index=[3, 5])
        expected = model.estimator.predict_proba(keep[list(model.feature_names)].astype({"age": float}))[:, 1]
        np.testing.assert_allclose(df.p.dropna().to_numpy(), expected, atol=1e-4)
    ml = engine.execute("SELECT id, predicted_output_label FROM ML.PREDICT(MODEL m, TABLE f) ORDER BY id", frames={"f": frame})[0].df
    assert ml.predicted_output_label.isna().tolist() == [i in (3, 5) for i in range(20)]


def test_batched_and_udf_paths_agree(engine: Engine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("rf_reg").path)
    sql = f"SELECT id, predict(m, {FEATURES}) AS p FROM c ORDER BY id"
    batched = engine.execute(sql, frames={"c": customers_frame})[0]
    naive = engine.execute(sql, frames={"c": customers_frame}, optimize=False)[0]
    assert "scored once" in (batched.explain or "")
    assert "batching: off" in (naive.explain or "")
    pd.testing.assert_frame_equal(batched.df, naive.df)


def test_session_is_cached_per_model_version(engine: Engine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("rf_clf").path)
    for _ in range(3):
        engine.execute(f"SELECT predict(m, {FEATURES}) FROM c", frames={"c": customers_frame}, optimize=False)
    assert len(engine.sessions) == 1
    register(engine, "m", onnx_models.get("tree_clf").path)  # version 2
    engine.execute(f"SELECT predict(m, {FEATURES}) FROM c", frames={"c": customers_frame}, optimize=False)
    assert len(engine.sessions) == 2


def test_batched_scoring_reports_progress(onnx_models, customers_frame):
    big = pd.concat([customers_frame] * 10, ignore_index=True)  # 4,000 rows
    seen: list[tuple[str, int, int]] = []
    with Engine(batch_rows=1000, planner=Planner(inline_sql=False, batched=True)) as eng:  # kept in ONNX
        eng.progress = lambda label, done, total: seen.append((label, done, total))
        register(eng, "m", onnx_models.get("pipeline_mixed").path)
        eng.execute("SELECT count(*) FROM ML.PREDICT(MODEL m, TABLE big)", frames={"big": big})
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[-1] == 4000 and len(done) >= 4  # one report per slice scored
    assert all(total == 4000 for _, _, total in seen)
    assert seen[0][0] == "ML.PREDICT(MODEL m@1)"


@pytest.mark.parametrize("optimize", [True, False])
def test_ml_predict_goes_through_the_planner_only_when_optimizing(engine: Engine, onnx_models, customers_frame, optimize):
    model = onnx_models.get("rf_clf")
    register(engine, "churn", model.estimator)
    result = engine.execute(
        "SELECT * FROM ML.PREDICT(MODEL churn, (SELECT * FROM c WHERE age > 60)) ORDER BY id",
        frames={"c": customers_frame},
        optimize=optimize,
    )[0]
    subset = customers_frame[customers_frame.age > 60].sort_values("id")
    expected = model.estimator.predict_proba(subset[list(model.feature_names)])
    np.testing.assert_allclose(np.stack(result.df.predicted_probabilities), expected, atol=1e-5)
    planned = "predict(churn@1)" in (result.explain or "")
    assert planned is optimize


def test_relation_call_node_is_inside_its_statement():
    import sqlglot

    from nbgov.sqlml.planning.mlpredict import relation_call

    for relation in ("SELECT * FROM t WHERE age > 1", "SELECT age, income FROM t GROUP BY ALL"):
        model = _two_feature_model()
        call = relation_call(model, ["age", "income"], sqlglot.parse_one(relation, read="duckdb"))
        assert any(node is call.node for node in call.statement.walk()), relation


def _two_feature_model():
    from nbgov.sqlml.plan import ModelVersion, TensorSpec

    spec = TensorSpec("input", "float", (None, 2))
    return ModelVersion(
        name="m", version=1, sha256="0" * 64, onnx_bytes=b"", inputs=(spec,),
        outputs=(TensorSpec("variable", "float", (None, 1)),), producer=None, opset=None,
        feature_names=("age", "income"), created="",
    )


def test_ml_predict_scores_with_the_pruned_model_when_a_dropped_input_needs_a_null_guard():
    from sklearn.tree import DecisionTreeClassifier

    from nbgov.sqlml.optimizer import Planner

    # This small tree would be inlined as SQL; a planner that keeps ONNX exercises the
    # batched scoring of a pruned model whose dropped input still needs its NULL guard.
    with Engine(planner=Planner(inline_sql=False), progress_bar=False) as engine:
        _pruned_onnx_ml_predict_keeps_null_guard(engine, DecisionTreeClassifier)


def _pruned_onnx_ml_predict_keeps_null_guard(engine: Engine, DecisionTreeClassifier: type) -> None:

    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame(
        {"age": rng.integers(18, 90, n).astype(float), "income": rng.normal(5e4, 1e4, n), "tenure": rng.integers(0, 10, n).astype(float)}
    )
    label = np.where(frame.age > 50, frame.income > 5e4, frame.tenure > 5).astype(int)
    clf = DecisionTreeClassifier(max_depth=2, random_state=0).fit(frame, label)
    split_income = float(clf.tree_.threshold[0])
    assert clf.tree_.feature[0] == 1  # the root tests income; tenure only matters below it
    frame.loc[frame.index[frame.income > split_income + 5000][:3], "tenure"] = np.nan
    register(engine, "m", clf)
    # NOT isnan: DuckDB's > lets NaN through, and the root sends NaN where scikit-learn learned to
    query = f"SELECT * FROM ML.PREDICT(MODEL m, (SELECT * FROM d WHERE income > {split_income + 5000} AND NOT isnan(income))) ORDER BY income"
    optimized = engine.execute(query, frames={"d": frame})[0]
    keys = engine.sessions.keys()
    assert any(":pruned:" in k for k in keys) and not any(k.endswith(":original") for k in keys), keys
    assert "dropped 2 of 3 unused inputs" in (optimized.explain or "")
    assert "ML.PREDICT(MODEL m@1): ONNX: the relation is scored in Arrow batches" in (optimized.explain or "")
    naive = engine.execute(query, frames={"d": frame}, optimize=False)[0]
    pd.testing.assert_frame_equal(optimized.df, naive.df)
    assert optimized.df.predicted_label.isna().sum() == 3


def test_sliced_scoring_keeps_the_scan_order_and_values(onnx_models, customers_frame):
    """The relation is scored in slices on the pool: results come back in scan order."""
    big = pd.concat([customers_frame] * 25, ignore_index=True)  # 10,000 rows
    big["row"] = np.arange(len(big))
    sql = f"SELECT row, predict(m, {FEATURES}).output_probability[2] AS p FROM big"
    with Engine(batch_rows=700, progress_bar=False) as eng:
        register(eng, "m", onnx_models.get("mlp").path)
        streamed = eng.execute(sql, frames={"big": big})[0]
        naive = eng.execute(sql, frames={"big": big}, optimize=False)[0].df
    assert "batching: the relation is scored once" in (streamed.explain or "")
    assert streamed.df.row.tolist() == naive.row.tolist() == list(range(len(big)))
    np.testing.assert_array_equal(streamed.df.p.to_numpy(), naive.p.to_numpy())


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "naive"])
def test_multi_output_tree_regressor_returns_a_list_per_row(engine: Engine, customers_frame, optimize):
    """skl2onnx declares a two-target forest's output ``[N, 1]`` and onnxruntime returns
    ``[N, 2]``: every query failed "Unimplemented type for cast (FLOAT[] -> FLOAT)". The
    registered shape is the one onnxruntime returns, from an estimator or its ONNX file."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestRegressor

    X = customers_frame[["age", "income"]]
    forest = RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(X, np.c_[X.age, X.income / 1000])
    expected = forest.predict(X)
    register(engine, "estimator", forest)
    register(engine, "file", to_onnx(forest, X.to_numpy(np.float32)[:1]).SerializeToString())
    for name in ("estimator", "file"):
        shapes = engine.execute(f"DESCRIBE MODEL {name}")[0].df.set_index("kind")["shape"].to_dict()
        assert shapes["output"] == "[N, 2]"
        df = engine.execute(f"SELECT predict({name}, age, income) AS v FROM c ORDER BY id", frames={"c": customers_frame},
                            optimize=optimize)[0].df
        np.testing.assert_allclose(np.stack(df.v.to_numpy()), expected, rtol=1e-5)
    df = engine.execute("SELECT predicted_variable FROM ML.PREDICT(MODEL estimator, (SELECT * FROM c WHERE age > 60)) ORDER BY id",
                        frames={"c": customers_frame}, optimize=optimize)[0].df
    np.testing.assert_allclose(np.stack(df.predicted_variable.to_numpy()), forest.predict(X[X.age > 60]), rtol=1e-5)


def _fixed_batch_model(rows: int):
    """``Y = X * X`` on an input of exactly ``rows`` rows, as a tracing exporter writes it."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["X", "X"], ["Y"])], "fixed",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [rows, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [rows, 2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "naive"])
@pytest.mark.parametrize("rows", [1, 4])
def test_fixed_batch_model_scores_in_runs_of_its_size(engine: Engine, rows, optimize):
    """An input of fixed batch size (``[1, 2]``) registered, then every query of more rows
    failed "Got invalid dimensions for input: X". Rows are fed in runs of that size, the
    last one padded and its padding dropped."""
    register(engine, "fixed", _fixed_batch_model(rows))
    df = engine.execute("SELECT x, predict(fixed, x, x + 1) AS y FROM range(10) t(x) ORDER BY x", optimize=optimize)[0].df
    x = np.arange(10.0)
    np.testing.assert_array_equal(np.stack(df.y.to_numpy()), np.c_[x * x, (x + 1) ** 2])
