"""Tree ensembles as SQL, one CASE per tree, against onnxruntime on the same rows: scores
and labels identical, probabilities through LOGISTIC / SOFTMAX within 1e-6."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import duckdb
import numpy as np
import onnx
import pyarrow as pa
import pytest
import sqlglot.expressions as exp

from nbgov.sqlml.models.forest import read_forest
from nbgov.sqlml.optimizer.forest_sql import NotTranslatable, ensemble_sql
from nbgov.sqlml.optimizer.to_sql import fill, template, tree_regressor_sql
from nbgov.sqlml.models.runtime import open_session
from tests.fixtures.optimizer import model_version


@functools.lru_cache(maxsize=None)
def fitted(kind: str) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(5)
    X = rng.normal(size=(3_000, 3)).astype(np.float32)
    noisy = X[:, 0] + 0.4 * rng.normal(size=len(X))
    targets = {
        "binary": (noisy > 0.3).astype(int),
        "three": np.digitize(noisy, [-0.5, 0.5]),
        "value": 2 * X[:, 0] + X[:, 1] ** 2,
    }
    estimators = {
        "gb_reg": (GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0), "value"),
        "rf_reg": (RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0), "value"),
        "gb_binary": (GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), "binary"),
        "rf_binary": (RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0), "binary"),
        "gb_three": (GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0), "three"),
        "rf_three": (RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0), "three"),
        "tree_three": (DecisionTreeClassifier(max_depth=5, random_state=0), "three"),
        # deep trees, many of them: nested CASEs, summed in one fold (no RecursionError)
        "rf_deep": (RandomForestClassifier(n_estimators=12, max_depth=10, random_state=0), "three"),
    }
    estimator, target = estimators[kind]
    options = {id(estimator): {"zipmap": False}} if "reg" not in kind else None
    proto = convert_sklearn(
        estimator.fit(X, targets[target]),
        initial_types=[("input", FloatTensorType([None, 3]))],
        options=options,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return proto.SerializeToString()


def rows() -> np.ndarray:
    rng = np.random.default_rng(9)
    X = rng.normal(size=(20_000, 3)).astype(np.float32)
    X[::7, 1] = np.nan
    X[::11, 2] = np.inf
    X[::13, 0] = -np.inf
    return X


def sql_rows(payload: bytes, X: np.ndarray) -> list[Any]:
    model = onnx.load_model_from_string(payload)
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    outputs = model_version(payload).outputs
    shape = template(ensemble_sql(node, read_forest(node), outputs), outputs, 0)
    assert shape is not None
    expression = fill(shape, [exp.column(f"x{i}") for i in range(X.shape[1])], [])
    con = duckdb.connect()
    try:
        con.register("t", pa.table({f"x{i}": pa.array(X[:, i]) for i in range(X.shape[1])}))
        return [r[0] for r in con.execute(f"SELECT {expression.sql(dialect='duckdb')} FROM t").fetchall()]
    finally:
        con.close()


@pytest.mark.parametrize("kind", ["gb_reg", "rf_reg"])
def test_regressors_are_bit_identical(kind: str) -> None:
    payload = fitted(kind)
    X = rows()
    (expected,) = open_session(payload).run(None, {"input": X})
    assert np.array_equal(np.array(sql_rows(payload, X), dtype=np.float32), np.asarray(expected).ravel())


@pytest.mark.parametrize("kind", ["gb_binary", "rf_binary", "gb_three", "rf_three", "tree_three", "rf_deep"])
def test_classifiers_give_identical_labels(kind: str) -> None:
    payload = fitted(kind)
    X = rows()
    labels, probabilities = open_session(payload).run(None, {"input": X})
    got = sql_rows(payload, X)
    assert [r["label"] for r in got] == np.asarray(labels).tolist()
    mine = np.array([r["probabilities"] for r in got], dtype=np.float32)
    exact = kind.startswith(("rf", "tree"))  # no post transform: the summed scores themselves
    if exact:
        assert np.array_equal(mine, np.asarray(probabilities))
    else:
        assert np.abs(mine - np.asarray(probabilities)).max() < 1e-6


def test_one_case_per_tree_keeps_the_expression_shallow() -> None:
    payload = fitted("gb_reg")
    model = onnx.load_model_from_string(payload)
    node = model.graph.node[0]
    body = ensemble_sql(node, read_forest(node), model_version(payload).outputs).body
    assert body is not None and body.count("list_reduce(") == 1 and body.count("CASE WHEN") > 40
    # 40 trees, each its own list element: nesting is one tree deep, not forty
    depth = max_paren_depth(body)
    assert depth < 40


@pytest.mark.parametrize("kind", ["gb_reg", "rf_reg", "gb_binary", "rf_binary", "gb_three", "rf_three", "tree_three"])
@pytest.mark.parametrize("guards", [0, 2])
def test_the_built_tree_is_the_parsed_text(kind: str, guards: int) -> None:
    """The template built from the node arrays is the tree parsing the body gives: the same
    nodes, arguments and sqlglot types (``repr`` shows them), so the same SQL in every dialect."""
    payload = fitted(kind)
    model = onnx.load_model_from_string(payload)
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    outputs = model_version(payload).outputs
    models = [ensemble_sql(node, read_forest(node), outputs)]
    if kind.endswith("reg"):
        regressor = tree_regressor_sql(node, read_forest(node), "float")
        assert regressor is not None
        models.append(regressor)
    for built in models:
        assert built.trees
        parsed = template(replace(built, trees={}), outputs, guards)
        shape = template(built, outputs, guards)
        assert shape is not None and parsed is not None
        assert repr(shape) == repr(parsed) and shape == parsed
        assert shape.sql(dialect="duckdb") == parsed.sql(dialect="duckdb")


@pytest.mark.parametrize("kind", ["rf_reg", "gb_binary", "rf_three"])
@pytest.mark.parametrize("modes", [("BRANCH_LEQ", "BRANCH_LT"), ("BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_LEQ")])
def test_the_built_tree_is_the_parsed_text_for_every_test_and_value(kind: str, modes: tuple[str, ...]) -> None:
    """Every branch mode, NaN routed either way, and infinite, NaN, negative and zero thresholds
    and weights: the built tree is still the parsed one."""
    from onnx import helper

    payload = fitted(kind)
    model = onnx.load_model_from_string(payload)
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    count = len(values["nodes_modes"])
    odd = [float("inf"), float("-inf"), float("nan"), -0.0, 0.0, -1.5e-7, 3.0e20]
    changed = {
        "nodes_modes": [m if m == b"LEAF" else modes[i % len(modes)].encode() for i, m in enumerate(values["nodes_modes"])],
        "nodes_values": [odd[i % len(odd)] if i % 3 == 0 else v for i, v in enumerate(values["nodes_values"])],
        "nodes_missing_value_tracks_true": [i % 2 for i in range(count)],
    }
    weights = "target_weights" if "target_weights" in values else "class_weights"
    changed[weights] = [odd[i % len(odd)] if i % 4 == 0 else w for i, w in enumerate(values[weights])]
    kept = [a for a in node.attribute if a.name not in changed]
    del node.attribute[:]
    node.attribute.extend([*kept, *(helper.make_attribute(k, v) for k, v in changed.items())])
    outputs = model_version(payload).outputs
    models = [ensemble_sql(node, read_forest(node), outputs)]
    regressor = tree_regressor_sql(node, read_forest(node), "float") if kind.endswith("reg") else None
    models += [regressor] if regressor is not None else []
    assert len(models) == (2 if kind.endswith("reg") and "BRANCH_GT" not in modes else 1)
    body = models[0].body or ""
    assert all(text in body for text in ("'nan'", "'-inf'", "isnan", "CAST(-0.0 AS FLOAT)", "e-07", "e+20"))
    for built in models:
        for guards in (0, 1):
            parsed = template(replace(built, trees={}), outputs, guards)
            shape = template(built, outputs, guards)
            assert shape is not None and parsed is not None
            assert repr(shape) == repr(parsed) and shape == parsed


def test_with_a_sqlglot_whose_built_trees_differ_the_text_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building trees relies on sqlglot's node layout: a sqlglot whose sample check fails (or
    raises) gets no builders, and the template is the parsed text, as before."""
    from nbgov.sqlml.optimizer import forest_sql, to_sql

    assert to_sql.building_agrees.__wrapped__(lambda: 1 / 0 > 0) is False  # an internal that moved
    assert to_sql.building_agrees(forest_sql._sample_agrees)  # this sqlglot: the built trees are used
    payload = fitted("gb_reg")
    model = onnx.load_model_from_string(payload)
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    outputs = model_version(payload).outputs
    expected = template(ensemble_sql(node, read_forest(node), outputs), outputs, 1)
    for module in (forest_sql, to_sql):
        monkeypatch.setattr(module, "building_agrees", lambda sample: False)
    for built in (ensemble_sql(node, read_forest(node), outputs), tree_regressor_sql(node, read_forest(node), "float")):
        assert built is not None and not built.trees
    shape = template(ensemble_sql(node, read_forest(node), outputs), outputs, 1)
    assert shape is not None and expected is not None and repr(shape) == repr(expected)


def max_paren_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        depth += char == "("
        depth -= char == ")"
        deepest = max(deepest, depth)
    return deepest


def test_a_thousand_trees_run_in_duckdb() -> None:
    """DuckDB refuses expressions deeper than 1,000: a sum of 1,200 trees must still run."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 2)).astype(np.float32)
    model = GradientBoostingRegressor(n_estimators=1_200, max_depth=1, learning_rate=0.01, random_state=0)
    proto = convert_sklearn(model.fit(X, X[:, 0] - X[:, 1]), initial_types=[("input", FloatTensorType([None, 2]))])
    payload = proto.SerializeToString()
    (expected,) = open_session(payload).run(None, {"input": X})
    assert np.array_equal(np.array(sql_rows(payload, X), dtype=np.float32), np.asarray(expected).ravel())


def test_refuses_what_it_cannot_reproduce() -> None:
    payload = fitted("gb_binary")
    model = onnx.load_model_from_string(payload)
    node = model.graph.node[0]
    for attr in node.attribute:
        if attr.name == "post_transform":
            attr.s = b"PROBIT"
    with pytest.raises(NotTranslatable, match="PROBIT"):
        ensemble_sql(node, read_forest(node), model_version(payload).outputs)
