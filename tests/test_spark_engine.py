"""The same cells on both engines: every SQL position of predict, ML.PREDICT, model
statements and errors run on DuckDB and on Spark (local[2]), results compared (labels
exact, scores within 1e-5), optimized and not."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from nbgov.errors import ModelBindingError, ModelNotFoundError, NbgovError, SqlmlError
from nbgov.sqlml.engine import Engine
from nbgov.sqlml.spark.catalog_store import TABLE
from nbgov.sqlml.spark.engine import SparkEngine

P = "predict(churn, *).output_probability[2]"
RF = "predict(rf, age, income, tenure, visits, balance)"
LIN = "predict(lin, age, income, tenure, visits, balance)"


def _reset_warehouse(spark) -> None:
    spark.sql(f"DROP TABLE IF EXISTS {TABLE}")
    shutil.rmtree(Path(urlparse(str(spark.conf.get("spark.sql.warehouse.dir"))).path) / TABLE, ignore_errors=True)


@pytest.fixture(scope="module")
def engines(spark, onnx_models):
    """A DuckDB engine and a Spark engine with the same models registered."""
    _reset_warehouse(spark)
    duck, sparked = Engine(), SparkEngine(session=spark)
    for engine in (duck, sparked):
        engine.execute(
            "CREATE MODEL churn FROM $a; CREATE MODEL rf FROM $b; CREATE MODEL lin FROM $c; CREATE MODEL gb FROM $d",
            params={name: onnx_models.get(kind).onnx for name, kind in
                    [("a", "pipeline_mixed"), ("b", "rf_clf"), ("c", "linreg"), ("d", "gb_reg")]},
        )
    yield duck, sparked
    duck.close()
    sparked.close()
    _reset_warehouse(spark)


def assert_same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Equal column names and values: floats within 1e-5, lists element-wise, the rest exact."""
    assert list(left.columns) == list(right.columns)
    assert len(left) == len(right)
    for name in left.columns:
        a, b = left[name].tolist(), right[name].tolist()
        for x, y in zip(a, b):
            if _missing(x) or _missing(y):
                assert _missing(x) and _missing(y), (name, x, y)
            elif isinstance(x, (float, np.floating)):
                assert abs(float(x) - float(y)) <= 1e-5, (name, x, y)
            elif isinstance(x, (list, np.ndarray)):
                np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), atol=1e-5)
            else:
                assert x == y, (name, x, y)


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


QUERIES = [
    pytest.param(f"SELECT id, {P} AS p FROM customers ORDER BY id", id="select"),
    pytest.param(f"SELECT id FROM customers WHERE {P} > 0.7 ORDER BY id", id="where"),
    pytest.param(f"SELECT id FROM customers ORDER BY {P} DESC, id LIMIT 5", id="order-by-limit"),
    pytest.param(
        "SELECT predict(churn, *).output_label AS label, count(*) AS n, avg(" + P + ") AS mean_p "
        "FROM customers GROUP BY predict(churn, *).output_label ORDER BY label", id="group-by"),
    pytest.param(f"SELECT plan, max({P}) AS top FROM customers GROUP BY plan HAVING max({P}) > 0.9 ORDER BY plan", id="having"),
    pytest.param(
        f"SELECT r.region, avg({P}) AS p FROM customers c JOIN (SELECT id, id % 3 AS region FROM customers) r "
        "ON c.id = r.id GROUP BY r.region ORDER BY r.region", id="join"),
    pytest.param(f"WITH s AS (SELECT id, {P} AS p FROM customers) SELECT id, p FROM s WHERE p > (SELECT avg(p) FROM s) ORDER BY id", id="cte-subquery"),
    pytest.param(f"SELECT *, {P} AS p FROM customers ORDER BY id", id="star"),
    pytest.param(f"SELECT id, predict(churn, age := age + 1, *).output_label AS l FROM customers ORDER BY id", id="named-argument"),
    pytest.param("SELECT plan, avg(predict('churn@1', *).output_probability[2]) AS p FROM customers GROUP BY plan ORDER BY plan", id="pinned"),
    pytest.param(f"SELECT id, {RF}.output_label AS l, {RF}.output_probability[2] AS p FROM customers WHERE age > 60 AND tenure < 5 ORDER BY id", id="forest-pruned"),
    pytest.param(f"SELECT id, {LIN} AS y FROM customers WHERE visits > 3 ORDER BY id", id="linear-inlined"),
    pytest.param(f"SELECT id, CASE WHEN age > 70 THEN {RF}.output_label END AS l FROM customers ORDER BY id", id="case"),
    pytest.param("SELECT * FROM ML.PREDICT(MODEL churn, (SELECT * FROM customers WHERE age > 60)) ORDER BY id", id="ml-predict"),
    pytest.param("SELECT id, predicted_output_probability[2] AS p FROM ML.PREDICT(MODEL churn, TABLE customers) ORDER BY id", id="ml-predict-table-projected"),
    pytest.param("SELECT count(*) AS n FROM ML.PREDICT(MODEL churn, (SELECT * FROM customers)) WHERE predicted_output_label = 1", id="ml-predict-aggregate"),
    pytest.param("SELECT id, predicted_variable AS y FROM ML.PREDICT(MODEL gb, (SELECT * FROM customers WHERE age < 30)) ORDER BY id", id="ml-predict-no-feature-names-error"),
]


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "naive"])
@pytest.mark.parametrize("sql", QUERIES)
def test_both_engines_give_the_same_results(engines, customers_frame, sql, optimize):
    duck, sparked = engines
    frames = {"customers": customers_frame}
    try:
        expected = duck.execute(sql, frames=frames, optimize=optimize)[-1]
    except NbgovError as error:  # the same refusal on both engines
        with pytest.raises(type(error)) as caught:
            sparked.execute(sql, frames=frames, optimize=optimize)
        assert str(caught.value) == str(error)
        return
    result = sparked.execute(sql, frames=frames, optimize=optimize)[-1]
    assert_same(expected.df, result.df)
    assert result.activity["engine"] == "spark"
    assert [m["name"] for m in result.activity["models"]] == [m["name"] for m in expected.activity["models"]]
    assert result.activity["frames"] == ["customers"] and result.activity["tables_read"] == []


def test_predictions_equal_scikit_learn(engines, customers_frame, onnx_models):
    model = onnx_models.get("pipeline_mixed")
    df = engines[1].execute(f"SELECT id, {P} AS p FROM customers ORDER BY id", frames={"customers": customers_frame})[0].df
    np.testing.assert_allclose(df.p.to_numpy(), model.estimator.predict_proba(model.X)[:, 1], atol=1e-5)


def test_explain_shows_sparks_plan_and_nbgovs_notes(engines, customers_frame):
    text = engines[1].explain(f"SELECT id, {RF}.output_label AS l FROM customers WHERE age > 60", frames={"customers": customers_frame})
    assert "== Physical Plan ==" in text and "MapInArrow" in text
    assert "pruned" in text and "using age > 60" in text and "mapInArrow on the executors" in text
    naive = engines[1].explain(f"SELECT id, {RF}.output_label AS l FROM customers", frames={"customers": customers_frame}, optimize=False)
    assert "ArrowEvalPython" in naive and "optimizer off" in naive


@pytest.mark.parametrize(
    ("sql", "params", "error", "text"),
    [
        ("SELECT predict(nope, age) FROM customers", {}, ModelNotFoundError, "unknown model 'nope'; known models: churn, gb, lin, rf"),
        ("SELECT predict(rf, age, income) FROM customers", {}, ModelBindingError, "predict(rf@1) takes 5 value(s), got 2"),
        ("SELECT predict(churn, *) FROM (SELECT age FROM customers)", {}, SqlmlError, "model inputs: churn@1("),
        ("SELECT predict(rf, plan, income, tenure, visits, balance) FROM customers", {}, ModelBindingError, "expected rf@1(input float[N,5])"),
        ("SELECT * FROM customers WHERE age > $nobody", {}, SqlmlError, "unknown parameter $nobody: no notebook variable of that name"),
        ("SELECT predict(rf, predict(lin, age, income, tenure, visits, balance), income, tenure, visits, balance) FROM customers", {},
         SqlmlError, "cannot be nested"),
    ],
    ids=["unknown-model", "arity", "missing-column", "cast", "parameter", "nested"],
)
def test_errors_are_the_same_one_line_on_both_engines(engines, customers_frame, sql, params, error, text):
    frames = {"customers": customers_frame}
    for engine in engines:
        with pytest.raises(error) as caught:
            engine.execute(sql, params=params, frames=frames)
        message = str(caught.value)
        assert text in message and "\n" not in message and "org.apache" not in message, message
    assert engines[1].execute("SELECT 1 AS ok")[0].df.ok.tolist() == [1]  # still usable


def test_model_statements_list_the_same_catalog(engines):
    duck, sparked = engines
    columns = ["name", "version", "sha256", "inputs", "outputs", "producer", "opset"]
    assert_same(duck.execute("SHOW MODELS")[0].df[columns], sparked.execute("SHOW MODELS")[0].df[columns])
    assert_same(duck.execute("DESCRIBE MODEL churn@1")[0].df, sparked.execute("DESCRIBE MODEL churn@1")[0].df)


def test_spark_tables_by_name_and_their_identity_in_lineage(engines, spark, customers_frame):
    sparked = engines[1]
    spark.createDataFrame(customers_frame).write.mode("overwrite").saveAsTable("warehouse_customers")
    try:
        result = sparked.execute(f"SELECT count(*) AS n, avg({P}) AS p FROM warehouse_customers")[0]
        assert result.df.n.tolist() == [len(customers_frame)]
        assert result.activity["tables_read"] == ["warehouse_customers"]
        (identity,) = result.activity["table_identities"]
        assert identity["name"] == "warehouse_customers" and identity["provider"] == "parquet"
        assert identity["location"] and identity["listing"].startswith("xxh3_128:")
    finally:
        spark.sql("DROP TABLE IF EXISTS warehouse_customers")
