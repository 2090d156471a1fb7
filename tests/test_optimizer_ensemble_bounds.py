"""Output predicates on ensembles: cells the bounds decide are TRUE or FALSE without scoring,
and the answer is onnxruntime's comparison on every row (NaN, infinities and boundaries)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import duckdb
import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pytest
import sqlglot
import sqlglot.expressions as exp

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.optimizer.domains import Domain
from nbgov.sqlml.optimizer.ensemble_bounds import FALLBACK, boolean_ensemble, compared_value
from nbgov.sqlml.models.forest import read_forest
from nbgov.sqlml.models.runtime import open_session
from tests.fixtures.sqlml import unwrapped
from tests.test_optimizer_forest_sql import fitted, rows

OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}


def evaluate(body: str, X: np.ndarray, fallback: np.ndarray | None) -> list[Any]:
    """The boolean SQL over X; undecided cells read ``fallback`` (NULL when None)."""
    expression = sqlglot.parse_one(body, dialect="duckdb")

    def put(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.name == FALLBACK:
            return exp.column("fb") if fallback is not None else exp.Null()
        if isinstance(node, exp.Column) and node.name.startswith("__f"):
            return exp.column(f"x{node.name[3:-2]}")
        return node

    sql = expression.transform(put).sql(dialect="duckdb")
    columns = {f"x{i}": pa.array(X[:, i]) for i in range(X.shape[1])}
    columns["fb"] = pa.array(fallback if fallback is not None else np.zeros(len(X), dtype=bool))
    con = duckdb.connect()
    try:
        con.register("t", pa.table(columns))
        return [r[0] for r in con.execute(f"SELECT {sql} FROM t").fetchall()]
    finally:
        con.close()


@pytest.mark.parametrize(
    "kind, element, op, quantile",
    [
        ("gb_reg", None, ">", 0.9),
        ("gb_reg", None, "<=", 0.2),
        ("gb_binary", 1, ">", 0.8),
        ("gb_binary", 0, ">=", 0.7),
        ("rf_binary", 1, "<", 0.1),
    ],
)
def test_boolean_ensemble_matches_the_comparison(kind: str, element: int | None, op: str, quantile: float) -> None:
    payload = fitted(kind)
    node = onnx.load_model_from_string(payload).graph.node[0]
    forest = read_forest(node)
    X = rows()
    outputs = open_session(payload).run(None, {"input": X})
    value = np.asarray(outputs[0]).ravel() if element is None else np.asarray(outputs[1])[:, element]
    constant = float(np.quantile(value, quantile))
    truth = OPS[op](value, np.float32(constant))
    compared = compared_value(node, forest, element, op, constant)
    assert compared is not None
    built = boolean_ensemble(forest, {}, compared)
    assert built.decided_true + built.decided_false > 0
    assert evaluate(built.body, X, truth) == truth.tolist()
    decided = [v for v in evaluate(built.body, X, None) if v is not None]
    assert len(decided) > len(X) * 0.3  # most rows never reach the model
    # exact at the boundary: rows whose value is the constant are decided right or left open
    at = np.flatnonzero(value == np.float32(constant))
    assert at.size > 0
    for row, decision in zip(at, evaluate(built.body, X[at], None)):
        assert decision is None or decision == truth[row]


def test_cells_use_the_query_domains() -> None:
    payload = fitted("gb_reg")
    node = onnx.load_model_from_string(payload).graph.node[0]
    forest = read_forest(node)
    X = rows()
    (value,) = open_session(payload).run(None, {"input": X})
    value = np.asarray(value).ravel()
    inside = X[:, 0] > 1.0
    constant = float(np.quantile(value[inside], 0.5))
    compared = compared_value(node, forest, None, ">", constant)
    assert compared is not None
    narrow = boolean_ensemble(forest, {0: Domain.compare(">", 1.0).in_model_space("float")}, compared)
    wide = boolean_ensemble(forest, {}, compared)
    assert narrow.body != wide.body
    truth = value > np.float32(constant)
    got = evaluate(narrow.body, X[inside], truth[inside])
    assert got == truth[inside].tolist()


def test_refuses_values_not_monotone_in_the_score() -> None:
    payload = fitted("gb_three")
    node = onnx.load_model_from_string(payload).graph.node[0]
    assert compared_value(node, read_forest(node), 1, ">", 0.5) is None  # softmax of three scores


@pytest.fixture(scope="module")
def bounded() -> Iterator[tuple[Engine, dict[str, np.ndarray]]]:
    """An engine with a boosted regressor ``reg`` and classifier ``clf`` over table ``t``
    (NaN, ±inf rows included), and each model's value on the rows DuckDB does not read as
    NULL (pandas' NaN)."""
    X = rows()
    frame = pd.DataFrame({f"x{i}": X[:, i] for i in range(3)})
    frame.insert(0, "id", np.arange(len(X), dtype=np.int64))
    payloads = {"reg": fitted("gb_reg"), "clf": fitted("gb_binary")}
    engine = Engine()
    engine.execute("CREATE MODEL reg FROM $reg; CREATE MODEL clf FROM $clf", params=payloads)
    engine.execute("CREATE TABLE t AS SELECT * FROM frame", frames={"frame": frame})
    valid = ~np.isnan(X).any(axis=1)
    outputs = {name: open_session(payload).run(None, {"input": X}) for name, payload in payloads.items()}
    values = {"reg": np.asarray(outputs["reg"][0]).ravel()[valid], "clf": np.asarray(outputs["clf"][1])[valid, 1]}
    yield engine, values
    engine.close()


def _filtered(engine: Engine, compared: str, tail: str = "") -> tuple[str, list[int], list[int]]:
    sql = f"SELECT id FROM t WHERE {compared} ORDER BY id{tail}"
    optimized = engine.execute(sql)[-1].df.id.tolist()
    plain = engine.execute(sql, optimize=False)[-1].df.id.tolist()
    return unwrapped(engine.explain(sql)), optimized, plain


def test_bounds_that_decide_most_cells_filter_in_sql_and_call_the_model_once(bounded) -> None:
    engine, values = bounded
    # above the median probability: 3 of 16 cells stay open
    constant = float(np.quantile(values["clf"], 0.5))
    explained, optimized, plain = _filtered(engine, f"predict(clf, x0, x1, x2).probabilities[2] > {constant!r}")
    assert re.search(r"bounds of the trees' leaf sums decide \d+ of \d+ cells", explained)
    assert "batching: not applied (an output predicate scores only the rows its bounds leave open)" in explained
    assert explained.count("nbgov_udf_") == 1  # the open cells read one model call, not one per cell
    assert optimized == plain and len(plain) > 5_000


def test_bounds_that_leave_most_cells_open_give_way_to_batched_scoring(bounded) -> None:
    engine, values = bounded
    # above the median value: 12 of 27 cells stay open, cheaper to score every row in batches
    compared = f"predict(reg, x0, x1, x2) > {float(np.quantile(values['reg'], 0.5))!r}"
    explained, optimized, plain = _filtered(engine, compared)
    assert re.search(r"left to batched scoring \(strategy onnx\): its bounds leave \d+% of the input cells open", explained)
    assert "batching: the relation is scored once" in explained and "nbgov_udf_" not in explained
    assert optimized == plain and len(plain) > 5_000
    # where the statement cannot be batched (LIMIT stops row-at-a-time scoring early), the bounds stay
    explained, optimized, plain = _filtered(engine, compared, " LIMIT 100000")
    assert "bounds of the trees' leaf sums decide" in explained and "left to batched scoring" not in explained
    assert explained.count("nbgov_udf_") == 1
    assert optimized == plain and len(plain) > 5_000
