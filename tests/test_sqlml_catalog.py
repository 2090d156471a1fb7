"""Models are first-class: stored in the database, versioned, described, dropped, refused when
bad -- the same statements and errors on DuckDB and on Spark (its warehouse table)."""

from __future__ import annotations

import hashlib
import json
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
from tests.fixtures.sqlml import register, store_as_an_older_nbgov, unwrapped


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


@pytest.mark.parametrize("source", ["file", "variable"])
def test_registering_the_same_bytes_again_uses_the_version_it_does_not_create_it(
    engine: BaseEngine, onnx_models, source
):
    """A CREATE MODEL that finds its bytes registered changes nothing: the version it names
    was created by the first registration, which stays its last writer in lineage."""
    model = onnx_models.get("rf_reg")
    sql, params = (f"CREATE MODEL m FROM '{model.path}'", None) if source == "file" else (
        "CREATE MODEL m FROM $b", {"b": model.onnx})
    first = engine.execute(sql, params=params)[0].activity
    again = engine.execute(sql, params=params)[0]
    assert "version 1 unchanged (same bytes)" in again.summary
    (created,) = first.models_created
    assert (created.ref, created.sha256) == ("m@1", hashlib.sha256(model.onnx).hexdigest())
    assert again.activity.models_created == () and again.activity.models_used == (created,)
    assert again.activity.files_read == first.files_read == ((str(model.path),) if source == "file" else ())
    assert again.activity.params == first.params
    assert [m["name"] for m in again.activity.to_json()["models"]] == ["m"]
    assert again.activity.to_json()["models_created"] == []
    newer = engine.execute("CREATE MODEL m FROM $b", params={"b": onnx_models.get("tree_reg").onnx})[0].activity
    assert [m.ref for m in newer.models_created] == ["m@2"] and newer.models_used == ()


def test_dropping_one_version_names_that_version(engine: BaseEngine, onnx_models):
    register(engine, "a", onnx_models.get("rf_reg").path)
    register(engine, "a", onnx_models.get("tree_reg").path)
    result = engine.execute("DROP MODEL 'a@1'")[0]
    assert [m.ref for m in result.activity.models_dropped] == ["a@1"]
    assert result.activity.models_dropped[0].sha256 == hashlib.sha256(onnx_models.get("rf_reg").onnx).hexdigest()
    assert _models(engine).version.tolist() == [2]
    assert [m["name"] + "@" + str(m["version"]) for m in result.activity.to_json()["models"]] == ["a@1"]
    assert result.activity.to_json()["models_dropped"] == ["a@1"]


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
    versions = _models(engine).set_index(["name", "version"]).sha256.to_dict()
    result = engine.execute("DROP MODEL a")[0]
    assert "2 version" in result.summary
    assert _models(engine).name.tolist() == ["b"]
    # lineage is told which versions went, so the cells that scored with them go stale
    assert [(m.ref, m.sha256) for m in result.activity.models_dropped] == [
        ("a@1", versions["a", 1]), ("a@2", versions["a", 2])
    ]
    assert result.activity.models_used == () and result.activity.models_created == ()
    assert engine.execute("DROP MODEL IF EXISTS a")[0].activity.models_dropped == ()
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


def _two_target_forest(customers_frame):
    """A two-target forest and its skl2onnx bytes, which declare the output ``[N, 1]``
    while onnxruntime returns ``[N, 2]``."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestRegressor

    X = customers_frame[["age", "income"]]
    forest = RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(X, np.c_[X.age, X.income / 1000])
    return forest, to_onnx(forest, X.to_numpy(np.float32)[:1]).SerializeToString()


def _store_as_an_older_nbgov(db: Path, name: str, payload: bytes, outputs: str) -> None:
    """Write a catalog row the way nbgov wrote it before CREATE MODEL ran the model: the
    same table, the signature onnxruntime declares (``outputs`` as JSON)."""
    import onnxruntime as ort

    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    inputs = json.dumps([{"name": i.name, "type": "float", "shape": [None, i.shape[1]]} for i in session.get_inputs()])
    store_as_an_older_nbgov(str(db), name, payload, inputs, outputs)


def _stored_outputs(db: Path) -> list[list]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT outputs FROM nbgov.models ORDER BY name, version").fetchall()
    return [[spec["shape"] for spec in json.loads(text)] for (text,) in rows]


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "naive"])
def test_a_model_stored_with_its_declared_width_by_an_older_nbgov_scores_with_the_width_it_returns(
    tmp_path, customers_frame, optimize
):
    """A ``--db`` file where an older nbgov registered a two-target forest as ``[N, 1]`` (what
    skl2onnx declares): every query failed "Unimplemented type for cast (FLOAT[] -> FLOAT)",
    and CREATE MODEL of the same bytes made no new version, so nothing corrected it. The
    signature is now read from the stored bytes when the model is loaded (the file is not
    written by a query), and CREATE [OR REPLACE] MODEL of the same bytes stores it, same
    version and sha256."""
    import onnxruntime as ort

    forest, payload = _two_target_forest(customers_frame)
    declared = ort.InferenceSession(payload, providers=["CPUExecutionProvider"]).get_outputs()[0].shape
    assert declared[1:] == [1]  # skl2onnx still declares one column: the row below is what older nbgov stored
    db = tmp_path / "old.duckdb"
    _store_as_an_older_nbgov(db, "forest", payload, json.dumps([{"name": "variable", "type": "float", "shape": [None, 1]}]))
    sql = "SELECT predict(forest, age, income) AS v FROM c ORDER BY id"
    with Engine(str(db)) as engine:
        shapes = engine.execute("DESCRIBE MODEL forest")[0].df.set_index("kind")["shape"].to_dict()
        assert shapes["output"] == "[N, 2]"
        assert _models(engine).outputs.tolist() == ["variable float[N, 2]"]
        df = engine.execute(sql, frames={"c": customers_frame}, optimize=optimize)[0].df
        np.testing.assert_allclose(np.stack(df.v.to_numpy()), forest.predict(customers_frame[["age", "income"]]), rtol=1e-5)
        older = engine.execute(
            "SELECT id, predict(forest, age, income)[2] AS thousands FROM c WHERE age > 60 ORDER BY id",
            frames={"c": customers_frame}, optimize=optimize,
        )[0]
        assert older.activity.models_used[0].version == 1
        assert older.df.id.tolist() == customers_frame.id[customers_frame.age > 60].tolist()
    assert _stored_outputs(db) == [[[None, 1]]]  # reading corrects nothing on disk

    with Engine(str(db)) as engine:
        created = engine.execute("CREATE OR REPLACE MODEL forest FROM $b", params={"b": payload})[0]
        assert "model forest version 1 unchanged (same bytes)" in created.summary
        assert "stored signature corrected to what onnxruntime returns: outputs variable float[N, 2]" in created.summary
        # the bytes (what lineage names a version by) were registered before: a use, not a creation
        assert created.activity.models_created == ()
        assert created.activity.models_used == (
            ModelRef("forest", 1, hashlib.sha256(payload).hexdigest(), "skl2onnx", created.activity.models_used[0].opset),
        )
        again = engine.execute("CREATE MODEL forest FROM $b", params={"b": payload})[0]
        assert again.summary.endswith(f"unchanged (same bytes), sha256 {hashlib.sha256(payload).hexdigest()[:12]}")
        assert _models(engine)[["name", "version"]].values.tolist() == [["forest", 1]]
    assert _stored_outputs(db) == [[[None, 2]]]


def test_explain_of_create_model_says_it_would_correct_a_stored_signature(tmp_path, customers_frame):
    _, payload = _two_target_forest(customers_frame)
    db = tmp_path / "old.duckdb"
    _store_as_an_older_nbgov(db, "forest", payload, json.dumps([{"name": "variable", "type": "float", "shape": [None, 1]}]))
    with Engine(str(db)) as engine:
        text = unwrapped(engine.explain("CREATE MODEL forest FROM $b", params={"b": payload}))
    assert "would leave unchanged (same bytes) but correct the stored signature of model forest version 1" in text
    assert "outputs variable float[N, 2]" in text
    assert _stored_outputs(db) == [[[None, 1]]]


def test_a_stored_model_that_is_now_refused_says_so_and_can_be_dropped(tmp_path, customers_frame):
    """An older nbgov registered skl2onnx's two-target MLPRegressor, whose ``[2N, 1]`` output
    spreads each row's targets over two rows: its queries gave scrambled rows. Loaded now,
    it is refused in one line naming it and how to remove it; SHOW MODELS still lists it."""
    import warnings

    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPRegressor

    X = customers_frame[["age", "income"]].to_numpy(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, X * 2)
    payload = to_onnx(network, X[:1]).SerializeToString()
    db = tmp_path / "old.duckdb"
    _store_as_an_older_nbgov(db, "net", payload, json.dumps([{"name": "variable", "type": "float", "shape": [None, 1]}]))
    with Engine(str(db)) as engine:
        assert _models(engine)[["name", "version", "outputs"]].values.tolist() == [["net", 1, "variable float[N, 1]"]]
        for sql in ("SELECT predict(net, age, income) FROM c", "DESCRIBE MODEL net"):
            with pytest.raises(InvalidModelError) as info:
                engine.execute(sql, frames={"c": customers_frame})
            message = str(info.value)
            assert "model net@1 as stored: output variable has 2 row(s) for 1 input row(s)" in message
            assert message.endswith("DROP MODEL net@1 removes it") and "\n" not in message
        dropped = engine.execute("DROP MODEL net")[0]
        assert "1 version" in dropped.summary
        # bytes refused now, yet the drop names the version as it was registered
        assert [(m.ref, m.sha256) for m in dropped.activity.models_dropped] == [
            ("net@1", hashlib.sha256(payload).hexdigest())
        ]
        assert _models(engine).empty


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
    fitted = onnx_models.get("rf_clf").estimator  # (trained, and converted, before skl2onnx goes)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # as if it were not installed
    with pytest.raises(InvalidModelError, match="skl2onnx"):
        engine.execute("CREATE MODEL m FROM $clf", params={"clf": fitted})
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
    text = unwrapped(engine.explain(cell, params={"new": str(second.path)}, frames={"c": customers_frame}))
    assert "CREATE MODEL: would register model churn version 2" in text
    assert "CREATE MODEL: would register model fresh version 1" in text
    assert "predict(churn@2)" in text and "predict(fresh@1)" in text
    # nothing stored: the catalog is as before, and the new model does not resolve
    assert _models(engine)[["name", "version"]].values.tolist() == [["churn", 1]]
    assert engine.catalog.resolve("churn").version == 1
    with pytest.raises(ModelNotFoundError, match="unknown model 'fresh'"):
        engine.execute(f"SELECT predict(fresh, {', '.join(NUMERIC_FEATURES)}) FROM c", frames={"c": customers_frame})
    same = unwrapped(engine.explain("CREATE MODEL churn FROM $old", params={"old": str(first.path)}))
    assert "would leave unchanged (same bytes)" in same and "version 1" in same
