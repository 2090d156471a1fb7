"""EXPLAIN notes name the engine that runs the SQL they describe: an output predicate's
boolean tree, a collation that stops string predicates, an inlined ML.PREDICT. The same
rewrites run on Spark, where the notes once said DuckDB."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeRegressor

from nbgov.sqlml.engine import BaseEngine, Engine
from tests.fixtures.sqlml import register, unwrapped

FEATURES = ("f0", "f1", "f2", "f3")
ARGS = ", ".join(FEATURES)
PLANS = ("basic", "silver", "gold")


def _data(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({name: rng.random(rows) for name in FEATURES})
    frame.insert(0, "id", np.arange(rows, dtype=np.int64))
    frame["plan"] = rng.choice(np.array(PLANS, dtype=object), rows)
    return frame


def _target(frame: pd.DataFrame) -> np.ndarray:
    plan = frame.plan.map({"basic": 0.5, "silver": 0.0, "gold": -0.5})
    return np.asarray(frame.f0 * 2 - frame.f1 + np.sin(6 * frame.f2) + plan)


@pytest.fixture(scope="module")
def tree() -> tuple[bytes, DecisionTreeRegressor]:
    """A depth-2 regression tree over f0..f3 as ONNX (one float matrix input), and the tree
    itself: its leaves, and ``CREATE MODEL ... FROM $estimator`` (feature names known)."""
    frame = _data(1_000)
    x = frame[list(FEATURES)].astype(np.float32)
    estimator = DecisionTreeRegressor(max_depth=2, random_state=0).fit(x, _target(frame))
    model = convert_sklearn(
        estimator,
        initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return model.SerializeToString(), estimator


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    """A tree behind a one-hot encoder of the string column ``plan`` (lowered to SQL columns)."""
    frame = _data(1_000)
    encode = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough")
    return Pipeline([("pre", encode), ("reg", DecisionTreeRegressor(max_depth=3, random_state=0))]).fit(
        frame[["plan", "f0", "f1"]], _target(frame)
    )


def _names(engine: BaseEngine) -> tuple[str, str]:
    """(the engine the notes must name, the one they must not)."""
    return ("DuckDB", "Spark") if isinstance(engine, Engine) else ("Spark", "DuckDB")


def _notes(text: str, start: str) -> list[str]:
    """The EXPLAIN lines holding ``start``, each read whole."""
    return [line.strip() for line in unwrapped(text).split("\n") if start in line]


def _boundary_constant(estimator: DecisionTreeRegressor) -> str:
    """A leaf's output written as its shortest FLOAT spelling, which as a DOUBLE is another
    number: ``= constant`` holds as FLOAT and fails as DOUBLE, so the optimizer leaves that
    leaf's comparison to the engine."""
    leaves = estimator.tree_.value[estimator.tree_.children_left == -1, 0, 0]
    for value in leaves:
        text = str(np.float32(value))
        if float(text) != float(np.float32(value)):
            return text
    raise AssertionError(f"no leaf output differs from its FLOAT spelling as a DOUBLE: {leaves}")


def test_output_predicate_note_names_the_engine_that_runs_the_filter(any_engine: BaseEngine, tree: Any) -> None:
    payload, estimator = tree
    expected, other = _names(any_engine)
    register(any_engine, "tree", payload)
    constant = _boundary_constant(estimator)
    sql = f"SELECT id FROM t WHERE predict(tree, {ARGS}) = {constant} ORDER BY id"
    text = any_engine.explain(sql, frames={"t": _data()})
    notes = _notes(text, "output predicate = ")
    assert len(notes) == 1, text
    (note,) = notes
    assert f"runs in {expected} as a filter (no model scoring)" in note, note
    assert f"1 at the boundary, compared by {expected})" in note, note
    assert other not in note, note


def test_collation_note_names_the_engine_whose_equality_may_differ(any_engine: BaseEngine, pipeline: Pipeline) -> None:
    expected, other = _names(any_engine)
    register(any_engine, "pipe", pipeline)
    if isinstance(any_engine, Engine):
        any_engine.execute("PRAGMA default_collation = 'nocase'")  # Spark never takes strings as bytes
    text = any_engine.explain("SELECT id, predict(pipe, *) AS p FROM t WHERE plan = 'gold'", frames={"t": _data()})
    notes = _notes(text, "string predicates not used")
    assert notes, text
    said = f"a collation may make {expected}'s = differ from the model's"
    assert all(said in note and other not in note for note in notes), notes


def test_inlined_ml_predict_note_names_the_engine_that_computes_it(any_engine: BaseEngine, tree: Any) -> None:
    expected, other = _names(any_engine)
    register(any_engine, "tree", tree[1])  # ML.PREDICT binds the inputs by feature name
    sql = f"SELECT id, predicted_variable FROM ML.PREDICT(MODEL tree, (SELECT id, {ARGS} FROM t))"
    text = any_engine.explain(sql, frames={"t": _data()})
    notes = _notes(text, "inlined as SQL: ")
    assert notes, text
    said = f"inlined as SQL: {expected} computes predicted_variable natively"
    assert all(said in note and other not in note for note in notes), notes


@pytest.fixture(scope="module")
def refusing_pipeline() -> Pipeline:
    """A tree behind a one-hot encoder that refuses unknown categories: its SQL raises
    ``error()`` (Spark: ``raise_error()``) for them."""
    frame = _data(1_000)
    encode = ColumnTransformer([("cat", OneHotEncoder(), ["plan"])], remainder="passthrough")
    return Pipeline([("pre", encode), ("reg", DecisionTreeRegressor(max_depth=3, random_state=0))]).fit(
        frame[["plan", "f0", "f1"]], _target(frame)
    )


def test_window_key_note_names_the_engine_that_refuses_error(any_engine: BaseEngine, refusing_pipeline: Pipeline) -> None:
    """DuckDB refuses error() in a window's PARTITION BY/ORDER BY, so the call stays ONNX
    there with a note naming DuckDB; Spark runs raise_error() there, so its SQL stays,
    scoring as --no-optimize does (the note once said DuckDB on Spark too)."""
    register(any_engine, "pipe", refusing_pipeline)
    sql = "SELECT id, rank() OVER (PARTITION BY plan ORDER BY predict(pipe, plan, f0, f1), id) AS r FROM t ORDER BY id"
    frames = {"t": _data()}
    text = any_engine.explain(sql, frames=frames)
    notes = _notes(text, "kept as ONNX: in a window's")
    if isinstance(any_engine, Engine):
        assert len(notes) == 1 and "where DuckDB refuses the error()" in notes[0], notes
    else:
        assert notes == [], notes
        assert _notes(text, "every predict() runs as SQL"), text
    results = [any_engine.execute(sql, frames=frames, optimize=o)[-1].df for o in (True, False)]
    assert results[0] is not None and results[1] is not None
    pd.testing.assert_frame_equal(results[0], results[1])
