"""``%%sqlml --engine spark`` and ``%config SqlML.engine = "spark"`` in a real IPython shell."""

from __future__ import annotations

import numpy as np
import pytest
from IPython.core.error import UsageError

pytestmark = pytest.mark.spark


@pytest.fixture
def spark_shell(spark, spark_database, sql_shell):
    yield sql_shell


def _run(shell, cell: str):
    result = shell.run_cell(cell)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_one_cell_on_spark_then_every_cell(spark_shell, noted_sql, onnx_models, customers_frame):
    model = onnx_models.get("pipeline_mixed")
    spark_shell.user_ns.update(customers=customers_frame, clf=model.onnx, low=60)
    _run(spark_shell, "%%sqlml --engine spark\nCREATE MODEL churn FROM $clf")
    df = _run(
        spark_shell,
        "%%sqlml --engine spark\nrisk << SELECT id, predict(churn, *).output_probability[2] AS p "
        "FROM customers WHERE age > $low ORDER BY id",
    )
    expected = customers_frame[customers_frame.age > 60]
    assert df.id.tolist() == expected.id.tolist()
    np.testing.assert_allclose(df.p, model.estimator.predict_proba(model.X[customers_frame.age > 60])[:, 1], atol=1e-5)
    assert spark_shell.user_ns["risk"] is df
    assert [a.engine for a in noted_sql.activities] == ["spark", "spark"]
    assert noted_sql.activities[1].params == ("low",) and noted_sql.activities[1].frames == ("customers",)
    with pytest.raises(UsageError, match="unknown model 'churn'"):
        _run(spark_shell, "%sqlml SELECT predict(churn, *) FROM customers")  # DuckDB's catalog is its own
    _run(spark_shell, '%config SqlML.engine = "spark"')
    assert _run(spark_shell, "%sqlml SELECT count(*) AS n FROM customers").n.tolist() == [len(customers_frame)]
    assert noted_sql.activities[-1].engine == "spark"
    with pytest.raises(UsageError) as caught:
        _run(spark_shell, "%sqlml SELECT * FROM no_such_table")
    assert str(caught.value).startswith("[TABLE_OR_VIEW_NOT_FOUND]") and "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="does not apply to --engine spark"):
        _run(spark_shell, "%sqlml --db x.duckdb SELECT 1")
    with pytest.raises(UsageError, match="unknown engine 'hive'; expected one of: duckdb, spark"):
        _run(spark_shell, "%sqlml --engine hive SELECT 1")
    _run(spark_shell, '%config SqlML.engine = "duckdb"')
    assert "nbgov_models" not in set(_run(spark_shell, "%sqlml SELECT table_name FROM duckdb_tables()").table_name)
