"""A ``--db`` file's models cost nothing until used: opening the database and SHOW MODELS
read rows, not bytes, and make no onnxruntime session; a version is checked against its
bytes when first used, and scored by one session, made when it scores. A row whose bytes
or signature were changed behind nbgov's back is still not trusted.

Sessions are counted at the one boundary every session goes through, onnxruntime's
``InferenceSession`` as ``models/runtime.py`` calls it; everything else is real."""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import onnx
import pytest

from nbgov.errors import InvalidModelError
from nbgov.sqlml.catalog.catalog import StoredModel, _marked
from nbgov.sqlml.catalog.modelfile import _spec, from_bytes, load_object
from nbgov.sqlml.engine import Engine
from nbgov.sqlml.models import runtime
from nbgov.sqlml.models.runtime import declared_signature, strip_zipmap
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.sqlml import store_as_an_older_nbgov

KINDS = ("logreg", "linreg", "rf_clf", "rf_reg", "gb_clf", "gb_reg", "tree_clf", "tree_reg", "mlp", "pipeline_mixed")
SCORE = "SELECT id, predict(rf_clf, age, income, tenure, visits, balance).output_label AS y FROM c ORDER BY id"


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[bytes]]:
    """The model bytes of every onnxruntime session made while the test runs. The compiled
    trees' disk cache is the test's own: a kernel an earlier test compiled for the same
    fixture model would otherwise be loaded, with a session of its own for the tail."""
    monkeypatch.setenv("NBGOV_CACHE_DIR", str(tmp_path / "cache"))
    made: list[bytes] = []
    original = runtime.ort.InferenceSession

    def counting(model: bytes, *args: object, **kwargs: object) -> object:
        made.append(model)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(runtime.ort, "InferenceSession", counting)
    yield made


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[weakref.ref[object]]:
    """A weak reference to every onnxruntime session made while the test runs (whether the
    engine still holds it); the compiled trees' disk cache is the test's own (see ``sessions``)."""
    monkeypatch.setenv("NBGOV_CACHE_DIR", str(tmp_path / "cache"))
    refs: list[weakref.ref[object]] = []
    original = runtime.ort.InferenceSession

    def tracked(model: bytes, *args: object, **kwargs: object) -> object:
        session = original(model, *args, **kwargs)
        refs.append(weakref.ref(session))
        return session

    monkeypatch.setattr(runtime.ort, "InferenceSession", tracked)
    return refs


def _database(tmp_path: Path, onnx_models) -> tuple[str, list[list[object]]]:
    """A file holding every fixture kind (plus ``churn`` in two versions), and SHOW MODELS
    as the engine that registered them lists them."""
    db = str(tmp_path / "models.duckdb")
    with Engine(db) as writer:
        for kind in KINDS:
            writer.execute(f"CREATE MODEL {kind} FROM $p", params={"p": onnx_models.get(kind).onnx})
        for kind in ("gb_clf", "rf_clf"):
            writer.execute("CREATE MODEL churn FROM $p", params={"p": onnx_models.get(kind).onnx})
        listed = writer.execute("SHOW MODELS")[0].df.values.tolist()
    assert len(listed) == len(KINDS) + 2
    return db, listed


def _session_signature(payload: bytes):
    session = runtime.open_session(payload)
    return tuple(_spec(a) for a in session.get_inputs()), tuple(_spec(a) for a in session.get_outputs())


@pytest.mark.parametrize("kind", ["pipeline_mixed", "rf_clf", "gb_clf", "logreg", "gb_reg", "linreg", "mlp"])
def test_the_graph_declares_the_signature_a_session_reports(onnx_models, kind):
    """What the catalog checks a stored row against without a session is what onnxruntime
    reports: skl2onnx's mixed pipeline (string and float inputs, one-hot, scaler, ZipMap),
    classifiers with ZipMap, regressors; and what CREATE MODEL stores for them."""
    payload = onnx_models.get(kind).onnx
    proto = onnx.load_model_from_string(payload)
    if onnx_models.get(kind).is_classifier:
        assert any(node.op_type == "ZipMap" for node in proto.graph.node)  # the default conversion keeps it
    declared = declared_signature(proto)
    assert declared == _session_signature(payload)
    loaded = from_bytes(payload, label=kind)
    assert declared == (loaded.inputs, loaded.outputs)


@pytest.mark.parametrize("kind", ["pipeline_mixed", "rf_clf", "gb_reg"])
def test_the_graph_declares_the_signature_of_nbgovs_own_conversion(onnx_models, kind):
    """The same for a fitted estimator CREATE MODEL converts itself (ZipMap off, nbgov's
    converters)."""
    loaded = load_object(onnx_models.get(kind).estimator, label=kind)
    declared = declared_signature(onnx.load_model_from_string(loaded.onnx_bytes))
    assert declared == _session_signature(loaded.onnx_bytes) == (loaded.inputs, loaded.outputs)


def _two_target_forest(customers_frame) -> bytes:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestRegressor

    X = customers_frame[["age", "income"]]
    forest = RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(X, np.c_[X.age, X.income / 1000])
    return to_onnx(forest, X.to_numpy(np.float32)[:1]).SerializeToString()


def test_a_width_only_a_run_tells_is_the_one_difference_and_is_taken_as_stored(
    tmp_path, customers_frame, sessions
):
    """skl2onnx declares a two-target forest ``[N, 1]`` and onnxruntime returns ``[N, 2]``:
    the graph (and a session's declaration) cannot tell, only CREATE MODEL's run. The row it
    stored is marked as checked, so a later process takes its ``[N, 2]`` with no session."""
    payload = _two_target_forest(customers_frame)
    declared = declared_signature(onnx.load_model_from_string(payload))
    assert declared == _session_signature(payload)
    assert [o.shape for o in declared[1]] == [(None, 1)]
    assert [o.shape for o in from_bytes(payload, label="forest").outputs] == [(None, 2)]
    db = str(tmp_path / "forest.duckdb")
    with Engine(db) as writer:
        writer.execute("CREATE MODEL forest FROM $p", params={"p": payload})
    sessions.clear()
    with Engine(db) as engine:
        shapes = engine.execute("DESCRIBE MODEL forest")[0].df.set_index("kind")["shape"].to_dict()
        assert shapes["output"] == "[N, 2]"
        assert sessions == []
        df = engine.execute("SELECT predict(forest, age, income)[2] AS v FROM c", frames={"c": customers_frame},
                            optimize=False)[0].df
        assert len(df) == len(customers_frame) and len(sessions) == 1


def test_opening_a_database_and_listing_its_models_makes_no_session(tmp_path, onnx_models, sessions):
    db, listed = _database(tmp_path, onnx_models)
    sessions.clear()
    with Engine(db) as engine:
        assert sessions == []
        assert engine.execute("SHOW MODELS")[0].df.values.tolist() == listed
        assert engine.execute("SHOW MODELS")[0].df.values.tolist() == listed
        assert sessions == []
        for kind in KINDS:  # its signature checked against its graph: still no session
            described = engine.execute(f"DESCRIBE MODEL {kind}")[0].df
            assert len(described) >= 2
        assert sessions == []


def test_scoring_one_model_makes_one_session_for_that_version_and_keeps_it(
    tmp_path, onnx_models, customers_frame, sessions
):
    db, _ = _database(tmp_path, onnx_models)
    model = onnx_models.get("rf_clf")
    with Engine(db) as writer:
        # registered by _database already: the same bytes, the version this statement used
        created = writer.execute("CREATE MODEL rf_clf FROM $p", params={"p": model.onnx})[0].activity.models_used
    sessions.clear()
    with Engine(db) as engine:
        engine.execute("SHOW MODELS")
        first = engine.execute(SCORE, frames={"c": customers_frame}, optimize=False)[0]
        assert sessions == [strip_zipmap(model.onnx)]  # one, for rf_clf@1: none for the other models
        again = engine.execute(SCORE, frames={"c": customers_frame}, optimize=False)[0]
        optimized = engine.execute(SCORE, frames={"c": customers_frame})[0]
        assert len(sessions) == 1
    expected = model.estimator.predict(customers_frame[list(NUMERIC_FEATURES)])
    for result in (first, again, optimized):
        assert result.df.y.tolist() == expected.tolist()
        assert result.activity.models_used == created  # lineage: name, version, sha256, producer, opset
    assert created[0].sha256 == hashlib.sha256(model.onnx).hexdigest()


def _rewrite(db: str, sql: str, params: list[object]) -> None:
    with duckdb.connect(db) as con:
        con.execute(sql, params)


def _one_line_refusal(engine: Engine, sql: str, frames=None) -> str:
    with pytest.raises(InvalidModelError) as info:
        engine.execute(sql, frames=frames)
    message = str(info.value)
    assert "\n" not in message and message.endswith("DROP MODEL rf_clf@1 removes it")
    return message


def _moved_threshold(payload: bytes) -> bytes:
    """The model with one tree threshold moved: still a valid model, other predictions."""
    proto = onnx.load_model_from_string(payload)
    node = next(n for n in proto.graph.node if n.op_type == "TreeEnsembleClassifier")
    thresholds = next(a for a in node.attribute if a.name == "nodes_values")
    thresholds.floats[0] += 1.0
    return proto.SerializeToString()


@pytest.mark.parametrize("change", ["another model", "a moved threshold", "truncated"])
def test_bytes_changed_behind_nbgovs_back_are_refused_when_used_and_still_listed(
    tmp_path, onnx_models, customers_frame, sessions, change
):
    """The bytes of a stored row rewritten in the table directly. Bytes that are no longer a
    model are refused with the error they always gave; bytes that are another valid model
    (before, scored silently and recorded in lineage under the registered sha256) are
    refused as not the model registered. Either way in one line naming the version and how
    to remove it, when the model is used (DESCRIBE, predict); SHOW MODELS, which reads no
    bytes, still lists the row, so the user sees what to drop."""
    db, listed = _database(tmp_path, onnx_models)
    good = onnx_models.get("rf_clf").onnx
    bad = {
        "another model": onnx_models.get("gb_clf").onnx,
        "a moved threshold": _moved_threshold(good),
        "truncated": good[: len(good) // 2],
    }[change]
    _rewrite(db, "UPDATE nbgov.models SET onnx = ? WHERE name = 'rf_clf'", [bad])
    with Engine(db) as engine:
        assert engine.execute("SHOW MODELS")[0].df.values.tolist() == listed
        for sql in ("DESCRIBE MODEL rf_clf", SCORE):
            message = _one_line_refusal(engine, sql, {"c": customers_frame})
            if change == "truncated":
                assert message.startswith("model rf_clf@1 as stored is not a valid ONNX model (")
            else:
                assert message.startswith(
                    f"model rf_clf@1 as stored is not the model registered: its bytes have sha256 "
                    f"{hashlib.sha256(bad).hexdigest()[:12]}, registered as {hashlib.sha256(good).hexdigest()[:12]}"
                )
        assert engine.execute("SELECT predict(rf_reg, age, income, tenure, visits, balance) FROM c",
                              frames={"c": customers_frame})[0].df.shape[0] == len(customers_frame)
        assert "1 version" in engine.execute("DROP MODEL rf_clf")[0].summary


def _stored_row(db: str, name: str) -> StoredModel:
    with duckdb.connect(db, read_only=True) as con:
        found = con.execute(
            "SELECT name, version, sha256, inputs, outputs, producer, opset, feature_names, created, checked "
            "FROM nbgov.models WHERE name = ?", [name],
        ).fetchall()
    return StoredModel(*found[0])


def test_a_signature_edited_in_the_table_is_read_from_the_bytes_again(
    tmp_path, onnx_models, customers_frame, sessions
):
    """A row's signature rewritten directly no longer matches its check mark: the version is
    read from a session on its bytes, as every version was before marks, and scored by what
    its bytes say. (A width is what the graph alone cannot vouch for: a run may return
    another than it declares.)"""
    db, listed = _database(tmp_path, onnx_models)
    outputs = json.loads(_stored_row(db, "rf_clf").outputs)
    assert outputs[1]["shape"] == [None, 2]
    outputs[1]["shape"] = [None, 3]
    _rewrite(db, "UPDATE nbgov.models SET outputs = ? WHERE name = 'rf_clf'", [json.dumps(outputs)])
    sessions.clear()
    with Engine(db) as engine:
        described = engine.execute("DESCRIBE MODEL rf_clf")[0].df
        assert described[described.kind == "output"]["shape"].tolist() == ["[N]", "[N, 2]"]
        assert len(sessions) == 1  # the check
        assert engine.execute("SHOW MODELS")[0].df.values.tolist() == listed  # the checked signature
        engine.execute(SCORE, frames={"c": customers_frame}, optimize=False)
        assert len(sessions) == 1  # scored with the check's session, not a second one


def test_a_forged_mark_over_reordered_inputs_is_caught_by_the_graph(tmp_path, onnx_models, customers_frame, sessions):
    """A mark recomputed over an edited signature (two inputs swapped, which would feed each
    the other's column) disagrees with the inputs the graph declares: the bytes decide."""
    db, _ = _database(tmp_path, onnx_models)
    row = _stored_row(db, "pipeline_mixed")
    inputs = json.loads(row.inputs)
    inputs[1], inputs[2] = inputs[2], inputs[1]
    forged = _marked(StoredModel(**{**row.__dict__, "inputs": json.dumps(inputs)}))
    _rewrite(db, "UPDATE nbgov.models SET inputs = ?, checked = ? WHERE name = 'pipeline_mixed'",
             [forged.inputs, forged.checked])
    sessions.clear()
    with Engine(db) as engine:
        described = engine.execute("DESCRIBE MODEL pipeline_mixed")[0].df
        assert described[described.kind == "input"].name.tolist() == ["plan", *NUMERIC_FEATURES]
        assert len(sessions) == 1


def _older_nbgov_database(db: str, name: str, payload: bytes) -> None:
    """A file written before check marks: the table without ``checked``, the row as CREATE
    MODEL then stored it (the signature a session declares)."""
    inputs, outputs = _session_signature(payload)
    as_json = lambda specs: json.dumps([{"name": s.name, "type": s.elem_type, "shape": list(s.shape)} for s in specs])
    store_as_an_older_nbgov(db, name, payload, as_json(inputs), as_json(outputs))


def _columns(db: str) -> list[str]:
    with duckdb.connect(db, read_only=True) as con:
        return [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'nbgov' AND table_name = 'models'"
        ).fetchall()]


def test_a_database_an_older_nbgov_wrote_is_opened_unchanged_and_marked_by_create_model(
    tmp_path, onnx_models, sessions
):
    """Its rows have no mark: opening and listing still make no session and write nothing;
    the first use checks the version with a session, as before; CREATE MODEL of the same
    bytes (unchanged, same version) marks the row, so the next process needs no session."""
    payload = onnx_models.get("rf_clf").onnx
    db = str(tmp_path / "old.duckdb")
    _older_nbgov_database(db, "rf_clf", payload)
    before = _columns(db)
    sessions.clear()
    with Engine(db) as engine:
        assert engine.execute("SHOW MODELS")[0].df.name.tolist() == ["rf_clf"]
        assert sessions == []
        engine.execute("DESCRIBE MODEL rf_clf")
        engine.execute("DESCRIBE MODEL rf_clf")
        assert len(sessions) == 1
    assert _columns(db) == before and "checked" not in before
    with Engine(db) as engine:
        created = engine.execute("CREATE MODEL rf_clf FROM $p", params={"p": payload})[0]
        assert "version 1 unchanged (same bytes)" in created.summary
    assert _stored_row(db, "rf_clf").checked is not None
    sessions.clear()
    with Engine(db) as engine:
        engine.execute("DESCRIBE MODEL rf_clf")
        assert sessions == []


@pytest.mark.parametrize("optimize", [False, True])
def test_a_query_of_a_row_an_older_nbgov_wrote_makes_one_session(
    tmp_path, onnx_models, customers_frame, sessions, optimize
):
    """A row with no mark is checked with a session on its bytes when first used: the query
    scores with that session, and its rows are the model's."""
    model = onnx_models.get("rf_clf")
    db = str(tmp_path / "old.duckdb")
    _older_nbgov_database(db, "rf_clf", model.onnx)
    sessions.clear()
    with Engine(db) as engine:
        first = engine.execute(SCORE, frames={"c": customers_frame}, optimize=optimize)[0]
        again = engine.execute(SCORE, frames={"c": customers_frame}, optimize=optimize)[0]
        assert len(sessions) == 1
    expected = model.estimator.predict(customers_frame[list(NUMERIC_FEATURES)])
    assert first.df.y.tolist() == again.df.y.tolist() == expected.tolist()


@pytest.mark.parametrize("optimize", [False, True])
def test_create_model_then_a_query_in_the_same_engine_makes_one_session(
    tmp_path, onnx_models, customers_frame, sessions, optimize
):
    """CREATE MODEL checks the model with a session and a run; the first query scoring it
    in the same engine scores with that session instead of opening a second on the same
    bytes. (The optimizer keeps this MLP whole: it scores the model as registered.)"""
    model = onnx_models.get("mlp")
    sql = f"SELECT id, predict(mlp, {', '.join(NUMERIC_FEATURES)}).output_label AS y FROM c ORDER BY id"
    with Engine(str(tmp_path / "one.duckdb")) as engine:
        created = engine.execute("CREATE MODEL mlp FROM $p", params={"p": model.onnx})[0].activity.models_created
        assert sessions == [strip_zipmap(model.onnx)]  # CREATE MODEL's checks
        assert engine.sessions.keys() == []  # nothing scored yet
        first = engine.execute(sql, frames={"c": customers_frame}, optimize=optimize)[0]
        engine.execute(sql, frames={"c": customers_frame}, optimize=optimize)
        assert len(sessions) == 1
        assert engine.sessions.keys() == [f"{created[0].sha256}:original"]
    expected = model.estimator.predict(customers_frame[list(NUMERIC_FEATURES)])
    assert first.df.y.tolist() == expected.tolist()


def test_a_created_model_never_scored_keeps_no_session_past_its_engine(tmp_path, onnx_models, opened):
    """The session CREATE MODEL's checks opened waits for the engine's first query of the
    model; unscored, it goes with the engine."""
    import gc

    engine = Engine(str(tmp_path / "unscored.duckdb"))
    engine.execute("CREATE MODEL rf_clf FROM $p", params={"p": onnx_models.get("rf_clf").onnx})
    assert len(opened) == 1 and opened[0]() is not None and engine.sessions.keys() == []
    engine.close()
    gc.collect()
    assert opened[0]() is None


def test_models_registered_and_never_scored_keep_only_the_latest_few_sessions(
    tmp_path, onnx_models, customers_frame, opened
):
    """Registering many models keeps at most MAX_WAITING_SESSIONS of their check sessions for
    a first query: the latest is scored with its own, an earlier one dropped is opened again
    (and scores as scikit-learn does)."""
    import gc

    from nbgov.sqlml.execution.scoring import MAX_WAITING_SESSIONS

    kinds = ("rf_clf", "logreg", "gb_clf", "tree_clf", "rf_reg", "linreg")
    assert len(kinds) > MAX_WAITING_SESSIONS
    with Engine(str(tmp_path / "zoo.duckdb")) as engine:
        for kind in kinds:
            engine.execute(f"CREATE MODEL {kind} FROM $p", params={"p": onnx_models.get(kind).onnx})
        gc.collect()
        alive = [ref() is not None for ref in opened]
        assert alive == [False] * (len(kinds) - MAX_WAITING_SESSIONS) + [True] * MAX_WAITING_SESSIONS
        latest = f"SELECT id, predict(linreg, {', '.join(NUMERIC_FEATURES)}) AS y FROM c ORDER BY id"
        engine.execute(latest, frames={"c": customers_frame}, optimize=False)
        assert len(opened) == len(kinds), "the latest registered model scores with its check session"
        first = engine.execute(SCORE, frames={"c": customers_frame}, optimize=False)[0]
        assert len(opened) == len(kinds) + 1, "a dropped one is opened again"
    expected = onnx_models.get("rf_clf").estimator.predict(customers_frame[list(NUMERIC_FEATURES)])
    assert first.df.y.tolist() == expected.tolist()
