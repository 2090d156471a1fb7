"""User mistakes give short one-line NbgovError messages that say what was expected, on
DuckDB and on Spark."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nbgov.errors import ModelBindingError, ModelNotFoundError, NbgovError, SqlError
from nbgov.sqlml.engine import BaseEngine, Engine
from tests.fixtures.models import customers
from tests.fixtures.spark import ENGINES, engine_on, helper_functions, module_database
from tests.fixtures.sqlml import register


def _load_churn(engine: BaseEngine, onnx_models: Any, frame: pd.DataFrame) -> BaseEngine:
    register(engine, "churn", onnx_models.get("pipeline_mixed").path)
    register(engine, "spend", onnx_models.get("gb_reg").path)
    engine.execute("CREATE TABLE customers AS SELECT * FROM f", frames={"f": frame})
    return engine


@pytest.fixture(scope="module")
def spark_churn_database(spark: Any, onnx_models: Any) -> Iterator[str]:
    """One Spark database for the module, holding `churn`, `spend` and `customers`: the
    `churn` tests only read it (their statements fail or select), so each Spark test gets a
    fresh engine on it instead of registering the models and writing the table again."""
    with module_database(spark, "nbgov_test_errors_churn",
                         lambda engine: _load_churn(engine, onnx_models, customers())) as name:
        yield name


@pytest.fixture(params=ENGINES)
def churn(request: pytest.FixtureRequest, onnx_models, customers_frame) -> Iterator[BaseEngine]:
    """A fresh engine with models `churn` and `spend` and the customers table: DuckDB's
    loaded for the test, Spark's on the module's database (see spark_churn_database)."""
    if request.param == "duckdb":
        yield _load_churn(request.getfixturevalue("engine"), onnx_models, customers_frame)
        return
    with engine_on(request.getfixturevalue("spark"), request.getfixturevalue("spark_churn_database")) as engine:
        yield engine


# a relation whose age is text: a value the model's float input cannot take
TEXT_AGE = "(SELECT id, plan, 'x' AS age, income, tenure, visits, balance FROM customers)"


def _error(engine: BaseEngine, sql: str, kind: type[Exception] = NbgovError, **kwargs) -> str:
    with pytest.raises(kind) as info:
        engine.execute(sql, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


EXPECTED = "churn@1(plan string[N,1], age float[N,1], income float[N,1], tenure float[N,1], visits float[N,1], balance float[N,1])"


def test_unknown_model_lists_known_models(churn):
    message = _error(churn, "SELECT predict(nosuch, age) FROM customers", ModelNotFoundError)
    assert "nosuch" in message and "known models: churn, spend" in message
    _error(churn, "SELECT predict('churn@7', *) FROM customers", ModelNotFoundError)
    _error(churn, "SELECT * FROM ML.PREDICT(MODEL nosuch, TABLE customers)", ModelNotFoundError)
    _error(churn, "DESCRIBE MODEL nosuch", ModelNotFoundError)


@pytest.mark.parametrize("optimize", [True, False])
def test_wrong_arity_shows_the_signature(churn, optimize):
    message = _error(churn, "SELECT predict(churn, plan, age) FROM customers", ModelBindingError, optimize=optimize)
    assert "takes 6 value(s), got 2" in message and EXPECTED in message
    message = _error(churn, "SELECT predict(spend, 1, 2, 3, 4, 5, 6) FROM customers", ModelBindingError)
    assert "takes 5 value(s), got 6" in message and "input float[N,5]" in message


def test_missing_column_for_star_names_the_inputs(churn, customers_frame):
    without_plan = customers_frame.drop(columns=["plan"])
    message = _error(churn, "SELECT predict(churn, *) FROM f", frames={"f": without_plan})
    assert ('"plan"' in message or "`plan`" in message) and EXPECTED in message
    message = _error(churn, "SELECT * FROM ML.PREDICT(MODEL churn, (SELECT age FROM customers))", ModelBindingError)
    assert "no column 'plan'" in message and EXPECTED in message


def test_star_without_feature_names_says_so(churn):
    message = _error(churn, "SELECT predict(spend, *) FROM customers", ModelBindingError)
    assert "feature names are unknown" in message and "input float[N,5]" in message


def test_unknown_named_input(churn):
    message = _error(churn, "SELECT predict(churn, height := age, *) FROM customers", ModelBindingError)
    assert "no input named 'height'" in message and EXPECTED in message


@pytest.mark.parametrize("optimize", [True, False])
def test_value_that_cannot_be_cast_shows_the_signature(churn, optimize):
    message = _error(
        churn,
        "SELECT predict(churn, plan, 'old', income, tenure, visits, balance) FROM customers",
        ModelBindingError,
        optimize=optimize,
    )
    assert "'old'" in message and EXPECTED in message
    message = _error(churn, f"SELECT * FROM ML.PREDICT(MODEL churn, {TEXT_AGE})", ModelBindingError)
    # scored in batches the scorer casts ("cannot be cast"); inlined as SQL (this pipeline is),
    # the engine's CAST says it, as for predict() itself
    assert ("cannot be cast" in message or "Could not convert string 'x'" in message) and EXPECTED in message


def test_syntax_error_keeps_duckdb_message_and_position(engine: Engine):
    message = _error(engine, "SELECT * FORM customers", SqlError)
    assert message.startswith("Parser Error: syntax error at or near") and "(line 1, column 15)" in message
    message = _error(engine, "SELECT id,\n  predict(churn, *) FROM customers WHERE")
    assert "Parser Error" in message and "line 2" in message


def test_syntax_error_on_spark_names_the_position(spark_engine: BaseEngine):
    """Spark reads the DuckDB dialect through sqlglot, whose message gives the position."""
    message = _error(spark_engine, "SELECT * FORM customers", SqlError)
    assert message == "cannot parse the statement for Spark: Invalid expression / Unexpected token at 'customers' (line 1, column 23)"
    message = _error(spark_engine, "SELECT id,\n  predict(churn, *) FROM customers WHERE")
    assert message.startswith("cannot parse the statement for Spark") and "(line 2, column" in message


def test_unknown_parameter_is_named(churn):
    message = _error(churn, "SELECT * FROM customers WHERE age > $threshold", params={"other": 1})
    assert "$threshold" in message
    message = _error(churn, "CREATE MODEL x FROM $clf", params={})
    assert "$clf" in message


def test_not_a_model_argument(churn):
    message = _error(churn, "SELECT predict(1 + 2, age) FROM customers", ModelBindingError)
    assert "model name first" in message
    message = _error(churn, "SELECT * FROM ML.PREDICT(churn, TABLE customers)")
    assert "usage: ML.PREDICT(MODEL name" in message


def test_a_failed_statement_leaves_the_engine_usable(churn):
    _error(churn, "SELECT predict(churn, plan) FROM customers")
    assert churn.execute("SELECT count(*) AS n FROM customers")[0].df.n[0] == 400
    assert helper_functions(churn) == []


@pytest.mark.parametrize("optimize", [True, False])
def test_engine_usable_after_a_failure_while_scoring(churn, optimize):
    _error(churn, "SELECT predict(churn, plan, 'old', income, tenure, visits, balance) FROM customers", ModelBindingError, optimize=optimize)
    _error(churn, f"SELECT * FROM ML.PREDICT(MODEL churn, {TEXT_AGE})", ModelBindingError)
    assert helper_functions(churn) == []
    df = churn.execute("SELECT count(predict(churn, *)) AS n FROM customers", optimize=not optimize)[0].df
    assert df.n[0] == 400


@pytest.mark.parametrize("optimize", [True, False])
def test_onnxruntime_failure_is_a_one_line_error(any_engine: BaseEngine, optimize):
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([3, 2], dtype=np.int64), name="shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "three_rows",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],  # runs on exactly 3 rows
        initializer=[shape],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    any_engine.execute("CREATE MODEL fixed FROM $p", params={"p": proto})
    rows = {"t": pd.DataFrame({"i": np.arange(10.0)})}
    message = _error(any_engine, "SELECT predict(fixed, i, i) FROM t", optimize=optimize, frames=rows)
    assert "onnxruntime could not score" in message


@pytest.mark.parametrize("optimize", [True, False])
def test_missing_output_field_names_the_outputs(engine: Engine, customers_frame, optimize):
    """``.probabilities`` of a model whose outputs are skl2onnx's ``output_label`` /
    ``output_probability`` was DuckDB's "Could not find key" followed by the model's
    inputs; of a one-output regressor it named an internal helper ("nbgov_p1_0_0")."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression

    X = customers_frame[["age", "income"]].to_numpy(np.float32)
    clf = LogisticRegression().fit(X, customers_frame.age > 40)
    engine.execute("CREATE MODEL c FROM $p", params={"p": to_onnx(clf, X[:1])})
    engine.execute("CREATE MODEL r FROM $p", params={"p": LinearRegression().fit(X, customers_frame.income)})
    frames = {"customers": customers_frame}
    message = _error(engine, "SELECT predict(c, age, income).probabilities[2] AS p FROM customers", ModelBindingError,
                     optimize=optimize, frames=frames)
    assert message == (
        "predict(c@1) has no output field 'probabilities'; the model's outputs are output_label int64[N], "
        "output_probability float[N,2] (read one as predict(...).output_label)"
    )
    message = _error(engine, "SELECT predict(r, age, income).probabilities AS p FROM customers", ModelBindingError,
                     optimize=optimize, frames=frames)
    assert message == (
        "predict(r@1) has no output field 'probabilities': the model has one output (variable float[N,1]), "
        "which predict() returns as it is, not as a STRUCT; drop .probabilities"
    )
    df = engine.execute("SELECT predict(c, age, income).OUTPUT_probability[2] AS p FROM customers",
                        optimize=optimize, frames=frames)[0].df
    np.testing.assert_allclose(df.p, clf.predict_proba(X)[:, 1], atol=1e-5)


def test_nested_predict_is_refused_clearly(churn):
    message = _error(churn, "SELECT predict(spend, predict(churn, *).output_label, age, income, tenure, visits) FROM customers")
    assert "cannot be nested" in message
