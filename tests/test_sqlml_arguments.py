"""Arguments are checked against the model's declared inputs before any rewrite, so a
value the model cannot take fails the same way with and without the optimizer (which
would otherwise drop an input its pruned trees no longer read, or inline the model as
SQL with casts of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from nbgov.errors import ModelBindingError, NbgovError, SqlmlError
from nbgov.sqlml.engine import Engine
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.sqlml import register, unwrapped

MODELS = ("tree_reg", "gb_reg", "rf_clf", "logreg", "mlp", "pipeline_mixed")
# Arguments no float input takes: text (a column and a literal), a date, a list, a struct.
# (argument, the type the message names)
NOT_NUMBERS = {
    "text column": ("plan", "VARCHAR"),
    "text literal": ("'7'", "VARCHAR"),
    "date": ("DATE '2024-01-31'", "DATE"),
    "list": ("[age, income]", "DOUBLE[]"),
    "struct": ("{'v': age}", "STRUCT(v DOUBLE)"),
}
# Arguments a string input does not take.
NOT_TEXT = {"integer": "tenure::INTEGER", "double": "age", "boolean": "age > 50", "date": "DATE '2024-01-31'"}
# Query shapes: the optimizer prunes with the WHERE, drops unused inputs, batches or inlines.
SHAPES = (
    "SELECT id, predict(m, {args}) AS p FROM customers WHERE age > 60 AND visits < 3",
    "SELECT count(*) AS n FROM customers WHERE age BETWEEN 70 AND 74 AND predict(m, {args}) IS NOT NULL",
    "WITH s AS (SELECT * FROM customers WHERE tenure = 4) SELECT avg(predict(m, {args})) AS p FROM s",
)


@pytest.fixture(scope="module")
def engines(onnx_models: Any) -> Iterator[dict[str, Engine]]:
    """One engine per model kind (model ``m``, table ``customers``), shared by the module."""
    from tests.fixtures.models import customers

    engines: dict[str, Engine] = {}
    try:
        for kind in MODELS:
            engine = Engine(progress_bar=False)
            register(engine, "m", onnx_models.get(kind).onnx)
            engine.execute("CREATE TABLE customers AS SELECT * FROM f", frames={"f": customers()})
            engines[kind] = engine
        yield engines
    finally:
        for engine in engines.values():
            engine.close()


def outcome(engine: Engine, sql: str, optimize: bool) -> tuple[str, str] | pd.DataFrame:
    """The error (class name, message) the statement raises, or its result."""
    try:
        return engine.execute(sql, optimize=optimize)[-1].df
    except NbgovError as error:
        return type(error).__name__, str(error)


def both_ways(engine: Engine, sql: str) -> tuple[str, str]:
    """The statement's error, asserted identical with and without the optimizer."""
    optimized, plain = outcome(engine, sql, True), outcome(engine, sql, False)
    assert isinstance(plain, tuple), f"--no-optimize accepted {sql}"
    assert optimized == plain, f"{sql}\n  optimized: {optimized}\n  --no-optimize: {plain}"
    return plain


def argument_lists(kind: str, wrong: str) -> Iterator[tuple[str, str]]:
    """Every positional argument list of the model with one argument replaced by ``wrong``,
    with the input it then feeds."""
    names = ["plan", *NUMERIC_FEATURES] if kind == "pipeline_mixed" else list(NUMERIC_FEATURES)
    for position, name in enumerate(names):
        if kind == "pipeline_mixed" and position == 0:
            continue  # the string input: NOT_TEXT covers it
        args = [*names[:position], wrong, *names[position + 1 :]]
        yield ", ".join(args), name


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("wrong", sorted(NOT_NUMBERS))
def test_wrong_type_fails_alike_with_and_without_the_optimizer(engines, kind, wrong):
    engine = engines[kind]
    argument, type_name = NOT_NUMBERS[wrong]
    for args, fed in argument_lists(kind, argument):
        for shape in SHAPES:
            name, message = both_ways(engine, shape.format(args=args))
            assert name == "ModelBindingError"
            assert f" is {type_name}, which cannot be cast to" in message
            assert "expected m@1(" in message
            target = f"input {fed} float[N,1]" if kind == "pipeline_mixed" else "of input input float[N,5]"
            assert target in message


@pytest.mark.parametrize("wrong", sorted(NOT_TEXT))
def test_wrong_type_for_a_string_input(engines, wrong):
    engine = engines["pipeline_mixed"]
    args = ", ".join([NOT_TEXT[wrong], *NUMERIC_FEATURES])
    for shape in SHAPES:
        name, message = both_ways(engine, shape.format(args=args))
        assert name == "ModelBindingError"
        assert "cannot be cast to input plan string[N,1]" in message and "it takes text or NULL" in message
    name, message = both_ways(engine, f"SELECT predict(m, plan := {NOT_TEXT[wrong]}, *) AS p FROM customers")
    assert "input plan string[N,1]" in message


@pytest.mark.parametrize("kind", MODELS)
def test_ml_predict_checks_column_types_before_planning(engines, kind):
    engine = engines[kind]
    if kind == "pipeline_mixed":
        replaced = "SELECT * REPLACE (DATE '2024-01-31' AS tenure) FROM customers WHERE age > 60"
        name, message = both_ways(engine, f"SELECT * FROM ML.PREDICT(MODEL m, ({replaced}))")
        assert name == "ModelBindingError" and '"tenure" is DATE' in message
    else:  # a bare model: its one 2-D input has no feature names, so ML.PREDICT cannot bind it
        name, message = both_ways(engine, "SELECT * FROM ML.PREDICT(MODEL m, TABLE customers)")
        assert "feature names are unknown" in message


@pytest.mark.parametrize("kind", MODELS)
def test_missing_column_fails_alike(engines, kind):
    engine = engines[kind]
    for args, _ in argument_lists(kind, "no_such_column"):
        name, message = both_ways(engine, SHAPES[0].format(args=args))
        assert name == "SqlmlError" and '"no_such_column"' in message and "model inputs: m@1(" in message
        assert "line 1" not in message  # a position in nbgov's own query would mislead


@pytest.mark.parametrize("kind", MODELS)
def test_arguments_the_inputs_take_give_equal_results(engines, kind):
    """Whole numbers, booleans, decimals and NULL feed float inputs; DuckDB ENUMs (pandas
    categoricals) feed string inputs; with and without the optimizer alike."""
    engine = engines[kind]
    numbers = ["age::INTEGER", "income::DECIMAL(12,2)", "tenure > 5", "visits::BIGINT", "NULL"]
    if kind == "pipeline_mixed":
        numbers = ["plan::ENUM('basic', 'silver', 'gold')", *numbers]
    sql = f"SELECT id, predict(m, {', '.join(numbers)}) AS p FROM customers WHERE age > 60 ORDER BY id"
    optimized, plain = outcome(engine, sql, True), outcome(engine, sql, False)
    assert isinstance(optimized, pd.DataFrame) and isinstance(plain, pd.DataFrame)
    assert len(optimized) == len(plain) > 0
    assert optimized.p.isna().all() and plain.p.isna().all()  # NULL in an input: NULL output
    sql = sql.replace(", NULL", ", balance")
    optimized, plain = outcome(engine, sql, True), outcome(engine, sql, False)
    assert isinstance(optimized, pd.DataFrame) and isinstance(plain, pd.DataFrame)
    assert optimized.p.notna().all() and optimized.id.tolist() == plain.id.tolist()
    np.testing.assert_allclose(numbers_of(optimized.p), numbers_of(plain.p), atol=1e-5)


def numbers_of(values: pd.Series) -> np.ndarray:
    """predict's values as one float matrix: a scalar per row, or a STRUCT's fields in order."""
    rows = [list(v.values()) if isinstance(v, dict) else [v] for v in values]
    return np.array([np.hstack([np.asarray(f, dtype=float).ravel() for f in row]) for row in rows])


def test_integer_input_takes_whole_numbers_only(engine: Engine):
    """A model with an int64 input: integers and booleans feed it; a DOUBLE would be rounded
    silently by a cast, so it is refused until the query casts it."""
    weights = numpy_helper.from_array(np.array([[2.0], [3.0]], dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT), helper.make_node("MatMul", ["xf", "w"], ["y"])],
        "counts",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[weights],
    )
    engine.execute("CREATE MODEL counts FROM $p", params={"p": helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)})
    for optimize in (True, False):
        df = engine.execute("SELECT predict(counts, i, i > 1) AS y FROM range(4) t(i) ORDER BY i", optimize=optimize)[0].df
        assert df.y.tolist() == [0.0, 2.0, 7.0, 9.0]
    name, message = both_ways(engine, "SELECT predict(counts, i / 2, i) AS y FROM range(4) t(i)")
    assert name == "ModelBindingError" and "i / 2 is DOUBLE" in message and "it takes a whole number, a boolean or NULL" in message
    df = engine.execute("SELECT predict(counts, CAST(i / 2 AS BIGINT), i) AS y FROM range(4) t(i)")[0].df
    assert len(df) == 4


@pytest.mark.parametrize("kind", ["tree_reg", "mlp"])
def test_select_list_aliases_are_typed_too(engines, kind):
    engine = engines[kind]
    sql = "SELECT id, age / 2 AS half, predict(m, half, income, tenure, visits, balance) AS p FROM customers ORDER BY id"
    optimized, plain = outcome(engine, sql, True), outcome(engine, sql, False)
    assert isinstance(optimized, pd.DataFrame) and isinstance(plain, pd.DataFrame)
    np.testing.assert_allclose(numbers_of(optimized.p), numbers_of(plain.p), atol=1e-5)
    if kind == "mlp":  # scored by onnxruntime: the FROM cannot be scored ahead (no alias there)
        assert "argument reads the select-list alias half" in unwrapped(engine.explain(sql))
    name, message = both_ways(engine, "SELECT plan AS half, predict(m, half, income, tenure, visits, balance) AS p FROM customers")
    assert name == "ModelBindingError" and "half is VARCHAR" in message


def test_correlated_arguments_run_the_original_model(engines):
    """Arguments the check cannot type apart from the query (a correlated subquery) run
    the original model unoptimized, and EXPLAIN says so."""
    engine = engines["tree_reg"]
    sql = "SELECT id, (SELECT predict(m, c.age, c.income, c.tenure, c.visits, c.balance)) AS p FROM customers c ORDER BY id"
    optimized, plain = outcome(engine, sql, True), outcome(engine, sql, False)
    assert isinstance(optimized, pd.DataFrame) and isinstance(plain, pd.DataFrame)
    pd.testing.assert_frame_equal(optimized, plain)
    assert "could not be described apart from the query" in unwrapped(engine.explain(sql))
    name, _ = both_ways(engine, sql.replace("c.balance", "c.plan"))
    assert name == "ModelBindingError"


def test_the_check_reads_no_rows_and_is_reused(engines):
    """The argument types come from the engine's description of a query (no row read); a
    re-run reuses the compiled statement while those types stay the same."""
    engine = engines["gb_reg"]
    engine.execute("CREATE OR REPLACE TABLE shifting AS SELECT * FROM customers")
    sql = f"SELECT avg(predict(m, {', '.join(NUMERIC_FEATURES)})) AS p FROM shifting WHERE age > 60"
    first = engine.execute(sql)[0].df
    assert engine.execute(sql)[0].df.equals(first)
    engine.execute("CREATE OR REPLACE TABLE shifting AS SELECT * REPLACE (CAST(age AS VARCHAR) AS balance) FROM customers")
    with pytest.raises(ModelBindingError, match="balance is VARCHAR"):
        engine.execute(sql)
    with pytest.raises(SqlmlError):
        engine.execute(sql, optimize=False)


def test_a_cached_ml_predict_sees_its_relation_change_type(engines):
    """ML.PREDICT's relation is described when compiled; a re-run reuses the plan only
    while that description holds, so a column turned to text is refused, not scored."""
    engine = engines["pipeline_mixed"]
    engine.execute("CREATE OR REPLACE TABLE moving AS SELECT * FROM customers")
    sql = "SELECT count(*) AS n, avg(predicted_output_label) AS l FROM ML.PREDICT(MODEL m, (SELECT * FROM moving WHERE age > 30))"
    first = engine.execute(sql)[0].df
    assert engine.execute(sql)[0].df.equals(first) and first.n[0] > 0
    engine.execute("CREATE OR REPLACE TABLE moving AS SELECT * REPLACE (CAST(tenure AS VARCHAR) AS tenure) FROM customers")
    name, message = both_ways(engine, sql)
    assert name == "ModelBindingError" and '"tenure" is VARCHAR' in message


# -- scikit-learn pipelines the optimizer lowers (one-hot / ordinal / scaler in front of trees,
# or of a logistic regression inlined as SQL): the same checks, the same errors --------------

PIPELINE_KINDS = ("gbc", "rf", "gbr_strict", "rfr_ordinal", "tree_ordinal", "logreg")
# Wrong arguments for a float input and for a string input: (argument, the type the message names)
NOT_FOR_FLOAT = {"text column": ("region", "VARCHAR"), "text literal": ("'7'", "VARCHAR"), "date": ("DATE '2024-01-31'", "DATE"), "list": ("[age, income]", "DOUBLE[]")}
NOT_FOR_STRING = {"integer": ("visits", "BIGINT"), "double": ("income", "DOUBLE"), "boolean": ("age > 50", "BOOLEAN"), "date": ("DATE '2024-01-31'", "DATE")}
# Shapes where the pipeline is lowered and pruned: one-hot fixed by equality, ranges through the
# scaler, the call in the same WHERE as its filters, a CTE's filter flowing out.
PIPELINE_SHAPES = (
    "SELECT id, predict(m, {args}) AS p FROM t WHERE plan = 'gold' AND age > 60",
    "SELECT count(*) AS n FROM t WHERE plan IN ('basic', 'silver') AND age BETWEEN 30 AND 40 AND predict(m, {args}) IS NOT NULL",
    "WITH s AS (SELECT * FROM t WHERE region = 'north' AND income > 60000) SELECT avg(predict(m, {args})) AS p FROM s",
)


@pytest.fixture(scope="module")
def pipeline_engines(sklearn_pipelines: Any) -> Iterator[dict[str, tuple[Engine, tuple[tuple[str, str], ...]]]]:
    """Per pipeline kind: an engine (model ``m``, the churn rows as ``t``) and the model's
    inputs as (name, element type)."""
    made: dict[str, tuple[Engine, tuple[tuple[str, str], ...]]] = {}
    try:
        for kind in PIPELINE_KINDS:
            trained = sklearn_pipelines.get(kind)
            engine = Engine(progress_bar=False)
            engine.execute("CREATE MODEL m FROM $p", params={"p": trained.onnx})
            engine.execute("CREATE TABLE t AS SELECT * FROM f", frames={"f": trained.frame})
            inputs = tuple((spec.name, spec.elem_type) for spec in engine.catalog.resolve("m").inputs)
            made[kind] = (engine, inputs)
        yield made
    finally:
        for engine, _ in made.values():
            engine.close()


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_pipeline_inputs_fail_alike_with_and_without_the_optimizer(pipeline_engines, kind):
    """Every input of every lowered pipeline, fed each wrong type positionally and by name,
    in every shape: the same error class and message with and without the optimizer."""
    engine, inputs = pipeline_engines[kind]
    names = [name for name, _ in inputs]
    explained = unwrapped(engine.explain(PIPELINE_SHAPES[0].format(args="*")))
    assert ("inlined as SQL" if kind == "logreg" else "plan = 'gold' (") in explained  # lowered and pruned by the category
    checked = 0
    for position, (name, elem_type) in enumerate(inputs):
        wrongs = NOT_FOR_STRING if elem_type == "string" else NOT_FOR_FLOAT
        for argument, type_name in wrongs.values():
            positional = ", ".join([*names[:position], argument, *names[position + 1 :]])
            for args in (positional, f"{name} := {argument}, *"):
                for shape in PIPELINE_SHAPES:
                    error, message = both_ways(engine, shape.format(args=args))
                    assert error == "ModelBindingError", message
                    assert f" is {type_name}, which cannot be cast to input {name} {elem_type}[N,1]" in message
                    assert "expected m@1(" in message
                    checked += 1
    assert checked == len(inputs) * 4 * 2 * len(PIPELINE_SHAPES)


def test_input_of_unknown_width_takes_the_values_given(engine: Engine):
    """A 2-D input declared ``[N, N]`` took "0 value(s)" whatever was passed: its width is
    now the number of values given (the same on every row of the call); none given, or
    ML.PREDICT (which binds by name), is a one-line error naming the input."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])], "open",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, None])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, None])],
    )
    engine.execute("CREATE MODEL open FROM $p", params={"p": helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)})
    for optimize in (True, False):
        df = engine.execute("SELECT predict(open, i, i * 2, 7) AS y FROM range(3) t(i) ORDER BY i", optimize=optimize)[0].df
        assert [list(v) for v in df.y] == [[0.0, 0.0, 7.0], [1.0, 2.0, 7.0], [2.0, 4.0, 7.0]]
        df = engine.execute("SELECT predict(open, 1.5) AS y", optimize=optimize)[0].df
        assert list(df.y[0]) == [1.5]
    name, message = both_ways(engine, "SELECT predict(open) AS y")
    assert (name, message) == ("ModelBindingError", (
        "predict(open@1): input X float[N,N] has no fixed width, so it takes the values given positionally, "
        "one per feature, and none was given; expected open@1(X float[N,N])"
    ))
    name, message = both_ways(engine, "SELECT * FROM ML.PREDICT(MODEL open, (SELECT 1.0 AS X))")
    assert name == "ModelBindingError" and "feature names are unknown" in message
