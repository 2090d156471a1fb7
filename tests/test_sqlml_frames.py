"""Notebook data by variable name, and $name parameters that always stay data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from nbgov.errors import NbgovError
from nbgov.sqlml.engine import Engine
from nbgov.sqlml.sql import frames as frames_module
from tests.fixtures.sqlml import register


def _frames(customers: pd.DataFrame) -> dict[str, object]:
    return {
        "pandas_df": customers,
        "polars_df": pl.from_pandas(customers),
        "arrow_table": pa.Table.from_pandas(customers, preserve_index=False),
        "records": customers.drop(columns=["plan"]).to_records(index=False),
    }


@pytest.mark.parametrize("name", ["pandas_df", "polars_df", "arrow_table", "records"])
def test_frames_usable_by_variable_name(engine: Engine, onnx_models, customers_frame, name):
    register(engine, "spend", onnx_models.get("gb_reg").path)
    namespace = _frames(customers_frame)
    result = engine.execute(
        f"SELECT id, predict(spend, age, income, tenure, visits, balance) AS s FROM {name} ORDER BY id",
        frames=namespace,
        params=namespace,
    )[0]
    model = onnx_models.get("gb_reg")
    np.testing.assert_allclose(result.df.s, model.estimator.predict(model.X), rtol=1e-3, atol=0.05)
    assert result.activity.frames == (name,)
    assert result.activity.tables_read == ()
    assert result.activity.models_used[0].name == "spend"


def test_frames_are_unregistered_afterwards_and_tables_win(engine: Engine, customers_frame):
    engine.execute("SELECT count(*) FROM c", frames={"c": customers_frame})
    with pytest.raises(NbgovError, match="c does not exist"):
        engine.execute("SELECT count(*) FROM c")
    engine.execute("CREATE TABLE c AS SELECT 1 AS one")
    df = engine.execute("SELECT * FROM c", frames={"c": customers_frame})[0].df
    assert df.columns.tolist() == ["one"]


def test_a_frame_named_like_the_catalog_table_still_works(engine: Engine, customers_frame):
    df = engine.execute("SELECT count(*) AS n FROM models", frames={"models": customers_frame})[0].df
    assert df.n[0] == len(customers_frame)


def test_join_frame_with_table_and_files(engine: Engine, customers_frame, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    customers_frame[["id", "plan"]].to_csv("plans.csv", index=False)
    result = engine.execute(
        "CREATE TABLE joined AS SELECT c.id, p.plan FROM cust c JOIN read_csv('plans.csv') p ON c.id = p.id",
        frames={"cust": customers_frame},
    )[0]
    assert result.kind == "ddl" and result.df is None
    assert result.activity.tables_written == ("joined",)
    assert result.activity.files_read == ("plans.csv",)
    assert result.activity.frames == ("cust",)
    copy = engine.execute("COPY joined TO 'out.parquet'")[0]
    assert copy.activity.files_written == ("out.parquet",) and "400" in copy.summary
    assert engine.execute("SELECT count(*) AS n FROM 'out.parquet'")[0].activity.files_read == ("out.parquet",)


def test_parameters_bind_values(engine: Engine, customers_frame):
    params = {"min_age": 60, "plan": "gold"}
    result = engine.execute(
        "SELECT count(*) AS n FROM c WHERE age > $min_age AND plan = $plan", frames={"c": customers_frame}, params=params
    )[0]
    assert result.df.n[0] == int(((customers_frame.age > 60) & (customers_frame.plan == "gold")).sum())
    assert sorted(result.activity.params) == ["min_age", "plan"]


@pytest.mark.parametrize(
    "attack",
    [
        "gold' OR '1'='1",
        "x'; DROP TABLE customers; --",
        '"; DELETE FROM customers; --',
        "$plan",
    ],
)
def test_injection_through_parameters_stays_data(engine: Engine, customers_frame, attack):
    engine.execute("CREATE TABLE customers AS SELECT * FROM f", frames={"f": customers_frame})
    df = engine.execute("SELECT count(*) AS n, $plan AS echoed FROM customers WHERE plan = $plan", params={"plan": attack})[0].df
    assert df.n[0] == 0 and df.echoed[0] == attack
    assert engine.execute("SELECT count(*) AS n FROM customers")[0].df.n[0] == len(customers_frame)


def test_parameters_inside_predict_and_ml_predict(engine: Engine, onnx_models, customers_frame):
    register(engine, "churn", onnx_models.get("pipeline_mixed").path)
    params = {"who": "gold' --", "age": 70}
    df = engine.execute(
        "SELECT predict(churn, plan := $who, *).output_label AS y FROM c WHERE age > $age",
        frames={"c": customers_frame},
        params=params,
    )[0].df
    assert len(df) == int((customers_frame.age > 70).sum())
    ml = engine.execute(
        "SELECT count(*) AS n FROM ML.PREDICT(MODEL churn, (SELECT * FROM c WHERE age > $age))",
        frames={"c": customers_frame},
        params=params,
    )[0]
    assert ml.df.n[0] == int((customers_frame.age > 70).sum())
    assert ml.activity.params == ("age",) and ml.activity.frames == ("c",)


def test_only_frames_used_as_tables_are_registered(engine: Engine, customers_frame):
    namespace = {"c": customers_frame, "age": pd.DataFrame({"x": [1]})}
    result = engine.execute("SELECT max(age) AS a FROM c", frames=namespace)[0]
    assert result.activity.frames == ("c",) and result.df.a[0] == customers_frame.age.max()


@pytest.mark.parametrize(
    ("value", "what"),
    [([{"a": 1}], "a list"), ({"a": [1]}, "a dict"), (np.arange(3), "a numpy.ndarray"), (pd.Series([1]), "a pandas.Series")],
)
def test_a_variable_that_is_not_a_table_says_what_it_is(engine: Engine, value, what):
    with pytest.raises(NbgovError) as raised:
        engine.execute("SELECT * FROM rows", frames={"rows": value})
    message = str(raised.value)
    assert message.startswith(f"'rows' is {what}, not a table") and "\n" not in message
    assert "pandas or polars DataFrames, pyarrow Tables or numpy record arrays" in message
    with pytest.raises(NbgovError, match="'rows' is"):  # in a join, and in ML.PREDICT's relation
        engine.execute("SELECT * FROM range(3) AS r JOIN rows ON true", frames={"rows": value})


def test_names_that_are_not_reads_do_not_need_to_be_tables(engine: Engine):
    rows = [1, 2, 3]  # a list named like a CTE, a written table, then a database table
    with_cte = engine.execute("WITH rows AS (SELECT 2 AS a) SELECT a FROM rows", frames={"rows": rows})[0]
    assert with_cte.df.a.tolist() == [2]
    engine.execute("CREATE TABLE rows AS SELECT 1 AS a", frames={"rows": rows})
    assert engine.execute("SELECT a FROM rows", frames={"rows": rows})[0].df.a.tolist() == [1]


@pytest.mark.parametrize("optimize", [True, False])
def test_activity_names_tables_read_even_when_batched(engine: Engine, onnx_models, customers_frame, optimize):
    register(engine, "churn", onnx_models.get("pipeline_mixed").path)
    engine.execute("CREATE TABLE customers AS SELECT * FROM f", frames={"f": customers_frame})
    result = engine.execute(
        "CREATE TABLE scored AS SELECT id, predict(churn, *).output_label AS y FROM customers WHERE age > 30",
        optimize=optimize,
    )[0]
    assert result.activity.tables_read == ("customers",)
    assert result.activity.tables_written == ("scored",)
    ml = engine.execute("SELECT count(*) FROM ML.PREDICT(MODEL churn, TABLE customers)")[0]
    assert ml.activity.tables_read == ("customers",) and ml.activity.models_used[0].name == "churn"


def _polars_of_every_kind(rows: int = 500) -> pl.DataFrame:
    rng = np.random.default_rng(9)
    income = rng.normal(50_000, 15_000, rows)
    income[::37] = np.nan
    return pl.DataFrame(
        {
            "id": np.arange(rows),
            "plan": [None if i % 41 == 0 else ["basic", "", "élan", "日本"][i % 4] for i in range(rows)],
            "income": pl.Series(income).set(pl.Series(np.arange(rows) % 53 == 0), None),
            "member": rng.random(rows) < 0.4,
            "day": pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 1, 1) + pl.duration(days=rows - 1), eager=True),
            "small": rng.integers(0, 100, rows).astype(np.int8),
        }
    ).with_columns(seen=pl.col("day").cast(pl.Datetime("us", "UTC")), wait=pl.duration(seconds=pl.col("id")))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t ORDER BY id",
        "SELECT plan, count(*) AS n, avg(income) AS m, count(income) AS k FROM t GROUP BY plan ORDER BY plan NULLS FIRST",
        "SELECT id, upper(plan) AS p FROM t WHERE plan LIKE '_%' AND member AND seen < TIMESTAMPTZ '2024-06-01 00:00:00+00' ORDER BY id",
    ],
)
def test_polars_text_read_as_views_gives_what_polars_default_export_gives(engine: Engine, sql: str):
    frame = _polars_of_every_kind()
    assert pa.types.is_string_view(frames_module.polars_arrow(frame).schema.field("plan").type)
    as_views = engine.execute(sql, frames={"t": frame})[0].df
    as_exported = engine.execute(sql, frames={"t": frame.to_arrow()})[0].df
    pd.testing.assert_frame_equal(as_views, as_exported)


def test_polars_frames_with_other_dtypes_keep_the_default_export(engine: Engine):
    frame = _polars_of_every_kind().with_columns(kind=pl.col("plan").cast(pl.Categorical), tags=pl.concat_list("plan", "plan"))
    assert pa.types.is_large_string(frames_module.polars_arrow(frame).schema.field("plan").type)
    df = engine.execute("SELECT count(*) AS n FROM t WHERE kind = 'élan' AND len(tags) = 2", frames={"t": frame})[0].df
    assert df.n[0] == frame.filter(pl.col("plan") == "élan").height
