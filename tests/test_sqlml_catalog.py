"""Models are first-class: stored in the database, versioned, described, dropped, refused when
bad -- the same statements and errors on DuckDB and on Spark (its warehouse table)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nbgov.errors import InvalidModelError, ModelNotFoundError, NbgovError
from nbgov.sqlml.activity import ModelRef
from nbgov.sqlml.engine import BaseEngine, Engine
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.sqlml import register


@pytest.fixture
def engine(any_engine: BaseEngine) -> BaseEngine:
    """Every test here runs on DuckDB and on Spark."""
    return any_engine


def _models(engine: BaseEngine):
    return engine.execute("SHOW MODELS")[0].df


def test_create_from_file_stores_bytes_sha_and_signature(engine: BaseEngine, onnx_models):
    model = onnx_models.get("pipeline_mixed")
    result = engine.execute("CREATE MODEL churn FROM $path", params={"path": str(model.path)})[0]
    assert result.kind == "create_model" and result.df is None
    assert "version 1" in result.summary
    shown = _models(engine)
    assert shown.name.tolist() == ["churn"] and shown.version.tolist() == [1]
    assert shown.sha256[0] == hashlib.sha256(model.onnx).hexdigest()
    assert "plan string[N, 1]" in shown.inputs[0] and "output_probability float[N, 2]" in shown.outputs[0]
    assert set(shown.columns) >= {"name", "version", "sha256", "inputs", "outputs", "created"}
    activity = result.activity
    assert activity.models_created == (
        ModelRef("churn", 1, shown.sha256[0], "skl2onnx", activity.models_created[0].opset),
    )
    assert activity.models_used == () and activity.kind == "create_model"
    assert activity.params == ("path",)
    assert activity.files_read == (str(model.path),)


def test_create_from_quoted_path_relative_to_cwd(engine: BaseEngine, onnx_models, tmp_path, monkeypatch):
    model = onnx_models.get("logreg")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "churn.onnx").write_bytes(model.onnx)
    monkeypatch.chdir(tmp_path)
    result = engine.execute("CREATE MODEL churn FROM 'models/churn.onnx'")[0]
    assert result.activity.files_read == ("models/churn.onnx",)
    assert engine.catalog.resolve("churn").onnx_bytes == model.onnx


def test_new_bytes_make_a_new_version_and_pins_work(engine: BaseEngine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("rf_reg").path)
    register(engine, "m", onnx_models.get("rf_reg").path)  # same bytes: no new version
    assert _models(engine).version.tolist() == [1]
    register(engine, "m", onnx_models.get("tree_reg").path)
    engine.execute("CREATE MODEL m FROM $b", params={"b": onnx_models.get("gb_reg").onnx})
    assert _models(engine).version.tolist() == [1, 2, 3]
    features = ", ".join(NUMERIC_FEATURES)
    df = engine.execute(
        f"SELECT predict(m, {features}) AS newest, predict('m@2', {features}) AS v2 FROM c ORDER BY id",
        frames={"c": customers_frame},
    )[0].df
    X = customers_frame[list(NUMERIC_FEATURES)]
    np.testing.assert_allclose(df.newest, onnx_models.get("gb_reg").estimator.predict(X), rtol=1e-3, atol=0.05)
    np.testing.assert_allclose(df.v2, onnx_models.get("tree_reg").estimator.predict(X), rtol=1e-3, atol=0.05)
    unquoted = engine.execute(f"SELECT predict(m@2, {features}) AS v2 FROM c ORDER BY id", frames={"c": customers_frame})[0]
    np.testing.assert_allclose(unquoted.df.v2, df.v2, rtol=1e-6)
    assert unquoted.activity.models_used[0].version == 2
    described = engine.execute("DESCRIBE MODEL m@2")[0]
    assert described.activity.models_used[0].version == 2


def test_describe_lists_inputs_and_outputs(engine: BaseEngine, onnx_models):
    register(engine, "churn", onnx_models.get("pipeline_mixed").path)
    df = engine.execute("DESCRIBE MODEL churn")[0].df
    assert df[["kind", "name", "type", "shape"]].values.tolist() == [
        ["input", "plan", "string", "[N, 1]"],
        *[["input", f, "float", "[N, 1]"] for f in NUMERIC_FEATURES],
        ["output", "output_label", "int64", "[N]"],
        ["output", "output_probability", "float", "[N, 2]"],
    ]


def test_drop_model_removes_every_version(engine: BaseEngine, onnx_models):
    register(engine, "a", onnx_models.get("rf_reg").path)
    register(engine, "a", onnx_models.get("tree_reg").path)
    register(engine, "b", onnx_models.get("tree_reg").path)
    result = engine.execute("DROP MODEL a")[0]
    assert "2 version" in result.summary
    assert _models(engine).name.tolist() == ["b"]
    engine.execute("DROP MODEL IF EXISTS a")
    with pytest.raises(ModelNotFoundError, match="known models: b"):
        engine.execute("DROP MODEL a")


def test_models_persist_in_a_database_file(tmp_path, onnx_models, customers_frame):
    db = str(tmp_path / "models.duckdb")
    with Engine(db) as first:
        register(first, "churn", onnx_models.get("pipeline_mixed").path)
    with Engine(db) as second:
        df = second.execute("SELECT predict(churn, *).output_label AS y FROM c", frames={"c": customers_frame})[0].df
        assert len(df) == len(customers_frame)
        assert second.execute("SHOW MODELS")[0].df.name.tolist() == ["churn"]


def _assert_nothing_registered(engine: BaseEngine) -> None:
    assert _models(engine).empty


def test_not_an_onnx_file_is_refused(engine: BaseEngine, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a model")
    with pytest.raises(InvalidModelError, match="not a valid ONNX"):
        engine.execute("CREATE MODEL m FROM $p", params={"p": str(bad)})
    _assert_nothing_registered(engine)


def test_truncated_file_is_refused(engine: BaseEngine, onnx_models, tmp_path):
    payload = onnx_models.get("rf_clf").onnx
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(InvalidModelError):
        engine.execute("CREATE MODEL m FROM $p", params={"p": str(cut)})
    _assert_nothing_registered(engine)


def test_unsupported_operator_is_refused(engine: BaseEngine):
    node = helper.make_node("NoSuchOperator", ["x"], ["y"], domain="com.example.nowhere")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example.nowhere", 1)], ir_version=9)
    with pytest.raises(InvalidModelError, match="onnxruntime cannot run.*NoSuchOperator"):
        engine.execute("CREATE MODEL m FROM $proto", params={"proto": proto})
    _assert_nothing_registered(engine)


def test_model_without_one_output_row_per_input_row_is_refused(engine: BaseEngine):
    """skl2onnx converts a two-target MLPRegressor to an output of ``[2N, 1]``: registered,
    its queries gave twice the rows, the two targets spread over them. One run on a row at
    CREATE MODEL finds it; nothing is registered."""
    import warnings

    from sklearn.neural_network import MLPRegressor

    X = np.arange(20.0).reshape(10, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, X * 2)
    with pytest.raises(InvalidModelError, match=r"output variable has 2 row\(s\) for 1 input row\(s\); expected one per row"):
        engine.execute("CREATE MODEL m FROM $p", params={"p": network})
    _assert_nothing_registered(engine)


def test_inputs_of_different_fixed_batch_sizes_are_refused(engine: BaseEngine):
    """Rows are fed to every input at once, in runs of the batch size an input fixes: inputs
    fixing different sizes could never be fed together."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["y"]), helper.make_node("Identity", ["b"], ["z"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2]), helper.make_tensor_value_info("b", TensorProto.FLOAT, [3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2]), helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 2])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    with pytest.raises(InvalidModelError, match=r"its inputs take different fixed numbers of rows \(1, 3\); expected one batch size"):
        engine.execute("CREATE MODEL m FROM $p", params={"p": proto})
    _assert_nothing_registered(engine)


def _external_model(folder: Path, location: str) -> Path:
    weights = numpy_helper.from_array(np.ones((2, 2), dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        initializer=[weights],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ext.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin", size_threshold=0)
    if location != "w.bin":
        loaded = onnx.load_model(str(path), load_external_data=False)
        for entry in loaded.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        path.write_bytes(loaded.SerializeToString())
    return path


def test_external_data_inside_the_folder_is_inlined(engine: BaseEngine, tmp_path):
    path = _external_model(tmp_path / "model", "w.bin")
    engine.execute("CREATE MODEL ext FROM $p", params={"p": str(path)})
    df = engine.execute("SELECT predict(ext, 1.0, 2.0) AS y")[0].df
    assert list(df.y[0]) == [3.0, 3.0]


def test_external_data_outside_the_folder_is_refused(engine: BaseEngine, tmp_path):
    (tmp_path / "secret.bin").write_bytes(np.ones(4, dtype=np.float32).tobytes())
    path = _external_model(tmp_path / "model", "../secret.bin")
    with pytest.raises(InvalidModelError, match="outside the model's folder"):
        engine.execute("CREATE MODEL ext FROM $p", params={"p": str(path)})
    _assert_nothing_registered(engine)


def test_sklearn_without_skl2onnx_names_the_package(engine: BaseEngine, onnx_models, monkeypatch):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # as if it were not installed
    with pytest.raises(InvalidModelError, match="skl2onnx"):
        engine.execute("CREATE MODEL m FROM $clf", params={"clf": onnx_models.get("rf_clf").estimator})
    _assert_nothing_registered(engine)


def test_unfitted_estimator_and_other_objects_are_refused(engine: BaseEngine):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(InvalidModelError, match="unfitted"):
        engine.execute("CREATE MODEL m FROM $clf", params={"clf": LogisticRegression()})
    with pytest.raises(InvalidModelError, match="expected ONNX bytes"):
        engine.execute("CREATE MODEL m FROM $clf", params={"clf": 42})
    _assert_nothing_registered(engine)


def test_model_statement_syntax_errors_are_one_line(engine: BaseEngine):
    for bad in ("CREATE MODEL m", "CREATE MODEL m FROM 42", "DROP MODEL", "DESCRIBE MODEL a b"):
        with pytest.raises(NbgovError) as info:
            engine.execute(bad)
        assert "\n" not in str(info.value)


def test_explain_plans_queries_on_a_model_created_in_the_same_cell_without_storing_it(
    engine: BaseEngine, onnx_models, customers_frame
):
    first, second = onnx_models.get("rf_clf"), onnx_models.get("logreg")
    register(engine, "churn", first.path)
    cell = (
        "CREATE MODEL churn FROM $new; CREATE MODEL fresh FROM $new;\n"
        f"SELECT predict(churn, {', '.join(NUMERIC_FEATURES)}) AS p, predict(fresh, {', '.join(NUMERIC_FEATURES)}) AS q FROM c"
    )
    text = engine.explain(cell, params={"new": str(second.path)}, frames={"c": customers_frame})
    assert "CREATE MODEL: would register model churn version 2" in text
    assert "CREATE MODEL: would register model fresh version 1" in text
    assert "predict(churn@2)" in text and "predict(fresh@1)" in text
    # nothing stored: the catalog is as before, and the new model does not resolve
    assert _models(engine)[["name", "version"]].values.tolist() == [["churn", 1]]
    assert engine.catalog.resolve("churn").version == 1
    with pytest.raises(ModelNotFoundError, match="unknown model 'fresh'"):
        engine.execute(f"SELECT predict(fresh, {', '.join(NUMERIC_FEATURES)}) FROM c", frames={"c": customers_frame})
    same = engine.explain("CREATE MODEL churn FROM $old", params={"old": str(first.path)})
    assert "would leave unchanged (same bytes)" in same and "version 1" in same
