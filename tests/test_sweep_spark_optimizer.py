"""The optimizer on Spark gives what --no-optimize gives on Spark (and on DuckDB): cases the
differential harness's queries found when run on Spark (``local[2]``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from nbgov.errors import ModelBindingError, SqlError
from nbgov.sqlml.engine import Engine
from nbgov.sqlml.spark.errors import _sql_error
import tests.test_optimizer_differential as D
from tests.fixtures.sqlml import register

pytestmark = pytest.mark.spark


def _training() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"plan": rng.choice(["basic", "gold", "silver"], 300), "a": rng.normal(0, 3, 300), "b": rng.normal(0, 2, 300)})
    frame["y"] = ((frame.a > 0) ^ (frame.plan == "gold")).astype(int)
    return frame


def _pipeline() -> Pipeline:
    """The documentation's mixed-types shape: an encoder that refuses unknown categories
    and a scaler in front of a small tree (small enough to be inlined as SQL)."""
    prepare = ColumnTransformer([("cat", OneHotEncoder(), ["plan"]), ("num", StandardScaler(), ["a", "b"])])
    frame = _training()
    return Pipeline([("ct", prepare), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))]).fit(frame[["plan", "a", "b"]], frame.y)


# rows: an unknown category ('platinum') in a row whose `a` is a number, NaN (not NULL:
# Arrow keeps it, where DuckDB reads a pandas NaN as NULL) in others
ROWS = pa.table({
    "rid": pa.array([0, 1, 2, 3, 4], pa.int64()),
    "plan": ["basic", "platinum", "gold", "silver", "basic"],
    "a": pa.array([1.0, 2.0, float("nan"), -1.5, float("nan")], pa.float64()),
    "b": pa.array([0.5, 1.0, 0.2, 3.0, 1.2], pa.float64()),
})


@pytest.fixture
def engines(spark_engine: Any) -> Any:
    duckdb = Engine()
    for engine in (spark_engine, duckdb):
        register(engine, "p", _pipeline())
    yield {"spark": spark_engine, "duckdb": duckdb}
    duckdb.close()


def _outcome(engine: Any, sql: str, optimize: bool) -> Any:
    try:
        return engine.execute(sql, frames={"t": ROWS}, optimize=optimize)[-1].df
    except Exception as error:  # noqa: BLE001 - the same error is part of the same outcome
        return type(error).__name__, str(error)


def _same_everywhere(engines: dict[str, Any], sql: str) -> Any:
    """The outcome, after checking it is the same optimized and not, on both engines."""
    outcomes = {(name, optimize): _outcome(engine, sql, optimize) for name, engine in engines.items() for optimize in (True, False)}
    first = outcomes["duckdb", False]
    for key, found in outcomes.items():
        if isinstance(first, tuple) or isinstance(found, tuple):
            assert found == first, f"{key}: {found!r} vs DuckDB --no-optimize {first!r}"
        else:
            pd.testing.assert_frame_equal(found, first, check_dtype=False, obj=str(key))
    return first


def test_an_element_past_the_end_of_an_inlined_models_list_is_null_on_spark(engines: dict[str, Any]) -> None:
    """``.probabilities[3]`` of two classes: NULL on DuckDB and through the UDF; Spark's
    ``[]`` on the inlined model's ARRAY failed with INVALID_ARRAY_INDEX."""
    sql = "SELECT rid, predict(p, plan, a, b).probabilities[3] AS p FROM t WHERE plan <> 'platinum' ORDER BY rid"
    assert "inlined as SQL" in engines["spark"].explain(sql, frames={"t": ROWS})
    found = _same_everywhere(engines, sql)
    assert list(found.rid) == [0, 2, 3, 4] and found.p.isna().all()


def test_a_where_conjunct_scoring_an_inlined_model_waits_for_the_plain_ones_on_spark(engines: dict[str, Any]) -> None:
    """Spark pushes the conjuncts that call no UDF below the UDF, so --no-optimize never
    scored row 1 (an unknown category, dropped by ``isnan(a)``); the inlined model sat first
    in the same filter, which Spark evaluates left to right, and refused it."""
    sql = "SELECT rid FROM t WHERE COALESCE(predict(p, plan, a, b).probabilities[1], -1) < 2 AND (b <= 1.5 AND isnan(a)) ORDER BY rid"
    found = _same_everywhere(engines, sql)
    assert list(found.rid) == [2, 4]


def test_a_spark_error_quoting_a_refusal_in_its_echoed_sql_is_that_error_not_the_refusal() -> None:
    """Spark echoes the statement after some errors, with the optimizer's raise_error
    messages in it (quotes escaped): only the message Spark raised is a refusal."""
    echoed = (
        "[INVALID_ARRAY_INDEX] The index 2 is out of bounds. SQLSTATE: 22003\n== SQL (line 1, position 28) ==\n"
        "SELECT CASE WHEN NOT plan IN ('basic') THEN RAISE_ERROR('predict(p@1): input \\'plan\\' holds a category "
        "the model\\'s OneHotEncoder does not know (it refuses unknown categories); known: basic') END FROM t"
    )
    error = _sql_error(echoed.splitlines()[0], echoed)
    assert isinstance(error, SqlError) and not isinstance(error, ModelBindingError)
    assert str(error) == "[INVALID_ARRAY_INDEX] The index 2 is out of bounds."
    raised = "[USER_RAISED_EXCEPTION] predict(p@1): input 'plan' holds a category the model's OneHotEncoder does not know (it refuses unknown categories); known: basic SQLSTATE: P0001"
    refusal = _sql_error(raised, raised)
    assert isinstance(refusal, ModelBindingError) and str(refusal).startswith("predict(p@1): input 'plan' holds") and "SQLSTATE" not in str(refusal)


def test_a_refusal_on_spark_reads_as_on_duckdb(engines: dict[str, Any]) -> None:
    sql = "SELECT rid, predict(p, plan, a, b).label AS l FROM t ORDER BY rid"
    kind, message = _same_everywhere(engines, sql)
    assert kind == "ModelBindingError" and message.startswith("predict(p@1): input 'plan' holds a category")



def test_a_correlated_subquerys_condition_is_no_filter_an_inlined_model_waits_for_on_spark(engines: dict[str, Any]) -> None:
    """Spark makes ``y.rid = x.rid`` a join condition, met after the UDF scored every row
    of ``y``: --no-optimize refuses the unknown category, so the inlined model must too."""
    sql = ("SELECT rid FROM t x WHERE EXISTS (SELECT 1 FROM t y WHERE y.rid = x.rid AND "
           "predict(p, y.plan, y.a, y.b).label IN (0, 1)) AND x.b > 100 ORDER BY rid")
    kind, message = _same_everywhere(engines, sql)
    assert kind == "ModelBindingError" and "'plan' holds a category" in message


def test_a_refusal_the_udf_raised_inside_a_subquerys_job_reads_as_the_refusal_on_spark(engines: dict[str, Any]) -> None:
    """Spark wraps it in "Exception thrown in awaitResult"; the worker's traceback holds it."""
    sql = "SELECT (SELECT max(predict(p, plan, a, b).probabilities[2]) FROM t) AS m"
    kind, message = _same_everywhere(engines, sql)
    assert kind == "ModelBindingError" and message.startswith("predict(p@1): input 'plan' holds a category")

# --- the differential harness's cases on Spark (a sample: Spark runs a job per query) ------

SAMPLE = D.CASES[::8]


@pytest.fixture(scope="module")
def spark_differential(spark: Any) -> Any:
    """A Spark engine in a database of its own with the harness's fitted models."""
    from nbgov.sqlml.spark.engine import SparkEngine

    spark.sql("CREATE DATABASE nbgov_spark_differential")
    spark.catalog.setCurrentDatabase("nbgov_spark_differential")
    engine = SparkEngine(session=spark)
    try:
        for spec in D.SPECS:
            register(engine, spec.name, D._fit(spec))
        yield engine
    finally:
        engine.close()
        spark.catalog.setCurrentDatabase("default")
        spark.sql("DROP DATABASE IF EXISTS nbgov_spark_differential CASCADE")


def _spark_cast_value(outcome: Any) -> Any:
    """Spark's failed cast without the value it names: which failing row Spark meets first
    depends on the plan (the harness's "the same failed cast of another row")."""
    if not isinstance(outcome, tuple) or "[CAST_" not in outcome[1]:
        return outcome
    head, found, rest = outcome[1].partition("The value ")
    return (outcome[0], head + rest.partition(" of the type ")[2]) if found else outcome


@pytest.mark.parametrize("case", SAMPLE, ids=[f"case_{8 * i:03d}_{c.model}" for i, c in enumerate(SAMPLE)])
def test_the_optimizer_on_spark_gives_what_no_optimize_gives_on_spark(spark_differential: Any, case: Any) -> None:
    frame = D.FRAMES[case.frame]
    plain = _spark_cast_value(D.outcome(spark_differential, case.sql, frame, optimize=False))
    optimized = _spark_cast_value(D.outcome(spark_differential, case.sql, frame, optimize=True))
    D.assert_same(optimized, plain, case)
