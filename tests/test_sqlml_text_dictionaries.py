"""Repetitive text columns of notebook Arrow tables, polars and pandas frames are read
dictionary-encoded from the second statement on (``sql/text_dictionaries.py``): faster,
and never a different answer.

Each statement is run three times on the same frame: the first run reads the column as it
is, the later ones read the encoded copy; every run must give the same DataFrame (values,
NULLs, order and dtypes), and the later runs must really have read an encoded column.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.sql.text_dictionaries import MIN_ROWS
from tests.fixtures.pipelines import churn_frame

ROWS = MIN_ROWS + 7_000
PLANS = np.array(["basic", "silver", "gold", "platinum", "", "élan", "日本"], dtype=object)


def _customers(rows: int = ROWS, seed: int = 5) -> pa.Table:
    """Text with NULLs, empty strings and non-ASCII values (``large_string``), a ``string``
    column, a text column of distinct values, and NaN and NULL in a number."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(PLANS, rows).astype(object)
    plan[rng.random(rows) < 0.03] = None
    income = rng.normal(50_000, 15_000, rows)
    income[rng.random(rows) < 0.02] = np.nan
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "plan": pa.array(plan, type=pa.large_string()),
            "region": pa.array(rng.choice(["north", "south", "east", "west"], rows), type=pa.string()),
            "email": pa.array([f"user{i}@example.org" for i in range(rows)], type=pa.large_string()),
            "income": pa.array(income, mask=np.arange(rows) % 97 == 0),  # NaN, and NULL every 97th row
        }
    )


STATEMENTS = (
    "SELECT count(*) AS n FROM t WHERE plan = 'gold'",
    "SELECT plan, count(*) AS n, avg(income) AS mean FROM t GROUP BY plan ORDER BY plan NULLS FIRST",
    "SELECT id, plan FROM t WHERE plan IN ('gold', '', '日本') OR plan IS NULL ORDER BY id",
    "SELECT min(plan) AS lo, max(plan) AS hi, count(DISTINCT plan) AS k, string_agg(DISTINCT region, ',' ORDER BY region) AS r FROM t",
    "SELECT id, upper(plan) AS p, length(plan) AS l FROM t WHERE plan LIKE 'g%' OR plan ILIKE 'ÉLAN' ORDER BY id",
    "SELECT id, plan, region FROM t ORDER BY plan DESC NULLS LAST, region, id LIMIT 300",
    "SELECT a.id, b.plan FROM t a JOIN t b ON a.plan = b.plan AND a.id = b.id + 1 WHERE a.region <> 'west' ORDER BY a.id",
    "SELECT * FROM t WHERE region = 'north' AND plan > 'b' ORDER BY id",
    "SELECT plan || '/' || region AS k, count(*) AS n FROM t WHERE income > 40000 GROUP BY ALL ORDER BY k NULLS LAST",
)


def _as(kind: str, table: pa.Table) -> object:
    return {"pyarrow": table, "polars": pl.from_arrow(table), "pandas": table.to_pandas()}[kind]


@pytest.mark.parametrize("kind", ["pyarrow", "polars", "pandas"])
@pytest.mark.parametrize("sql", STATEMENTS)
def test_an_encoded_text_column_gives_what_the_column_gives(engine: Engine, sql: str, kind: str):
    """For pandas the first run is DuckDB's own pandas scan and the later ones read the
    frame converted to Arrow: NaN must stay NULL, as the pandas scan reads it."""
    frames = {"t": _as(kind, _customers())}
    runs = [engine.execute(sql, frames=frames)[0].df for _ in range(3)]
    assert len(engine.executor.texts) >= 1  # the later runs read an encoded copy
    for later in runs[1:]:
        pd.testing.assert_frame_equal(later, runs[0])


def test_a_pipeline_scores_the_same_from_encoded_text(engine: Engine, sklearn_pipelines):
    trained = sklearn_pipelines.get("gbc")
    engine.execute("CREATE MODEL churn FROM $m", params={"m": trained.estimator})
    frame = churn_frame(ROWS, seed=11)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sql = (
        "SELECT id, predict(churn, *).probabilities[2] AS p FROM customers "
        "WHERE plan = 'gold' AND region IN ('north', 'east') ORDER BY id"
    )
    runs = [engine.execute(sql, frames={"customers": table})[0].df for _ in range(3)]
    assert len(engine.executor.texts) == 2
    for later in runs[1:]:
        pd.testing.assert_frame_equal(later, runs[0])
    chosen = frame[(frame.plan == "gold") & frame.region.isin(["north", "east"])]
    expected = trained.estimator.predict_proba(chosen[list(trained.estimator.feature_names_in_)])[:, 1]
    np.testing.assert_allclose(runs[-1].p.to_numpy(), expected, atol=1e-5)


def test_an_edited_column_is_read_anew(engine: Engine):
    frame = pl.from_arrow(_customers())
    sql = "SELECT count(*) AS n FROM t WHERE plan = 'diamond'"
    for _ in range(2):
        assert engine.execute(sql, frames={"t": frame})[0].df.n[0] == 0
    assert len(engine.executor.texts) == 1
    frame[list(range(123)), "plan"] = "diamond"  # edited in place
    assert engine.execute(sql, frames={"t": frame})[0].df.n[0] == 123
    table = _customers()
    plan = pa.array(["diamond"] * 200 + table.column("plan").to_pylist()[200:], type=pa.large_string())
    table = table.set_column(table.schema.get_field_index("plan"), "plan", plan)  # a new column, most values the same
    assert engine.execute(sql, frames={"t": table})[0].df.n[0] == 200


def test_equal_content_is_encoded_once(engine: Engine):
    sql = "SELECT count(*) AS n FROM t WHERE plan = 'gold'"
    first = _customers()
    for _ in range(2):
        engine.execute(sql, frames={"t": first})
    copy = pa.Table.from_pylist(first.to_pylist(), schema=first.schema)  # other buffers, the same text
    expected = sum(1 for plan in first.column("plan").to_pylist() if plan == "gold")
    assert engine.execute(sql, frames={"t": copy})[0].df.n[0] == expected
    assert len(engine.executor.texts) == 1


def test_only_repetitive_columns_the_statement_reads_are_encoded(engine: Engine):
    frames = {"t": _customers()}
    for _ in range(3):
        engine.execute("SELECT avg(income) AS m FROM t WHERE id < 100", frames=frames)
    assert len(engine.executor.texts) == 0  # no text column read
    for _ in range(3):
        engine.execute("SELECT count(*) AS n FROM t WHERE region = 'west'", frames=frames)
    assert len(engine.executor.texts) == 1
    for _ in range(3):
        engine.execute("SELECT * FROM t WHERE id < 5", frames=frames)
    assert len(engine.executor.texts) == 2  # every column, but not the one of distinct e-mails


def test_short_frames_are_handed_over_as_they_are(engine: Engine):
    frames = {"t": _customers(rows=MIN_ROWS - 1)}
    for _ in range(3):
        engine.execute("SELECT count(*) AS n FROM t WHERE plan = 'gold'", frames=frames)
    assert len(engine.executor.texts) == 0


def _every_plain_dtype(rows: int = ROWS) -> pd.DataFrame:
    """A pandas frame of each numpy number, boolean and datetime dtype, with NaN, NaT,
    infinities, -0.0 and extremes, beside Arrow-backed text (pandas' default ``str`` and
    ``string[pyarrow]``)."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({name: rng.integers(np.iinfo(name).min, np.iinfo(name).max, rows, dtype=name, endpoint=True)
                          for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")})
    for name in ("float32", "float64"):
        values = rng.normal(0, 1e6, rows).astype(name)
        values[::101], values[1::211], values[2::307], values[3::401] = np.nan, np.inf, -np.inf, -0.0
        frame[name] = values
    frame["flag"] = rng.random(rows) < 0.3
    for unit in ("ns", "us", "s"):
        stamps = rng.integers(-2**40, 2**40, rows).astype(f"datetime64[{unit}]")
        stamps[::89] = np.datetime64("NaT")
        frame[f"at_{unit}"] = stamps
    plan = rng.choice(PLANS, rows).astype(object)
    plan[rng.random(rows) < 0.03] = None
    frame["plan"] = pd.Series(plan, dtype="str")
    frame["tier"] = pd.Series(rng.choice(["a", "b", None], rows), dtype="string[pyarrow]")
    return frame


PANDAS_STATEMENTS = (
    "SELECT * FROM t WHERE plan = 'gold' ORDER BY int64",
    "SELECT plan, tier, count(*) AS n, sum(int8) AS s8, sum(uint64::HUGEINT) AS su, avg(float32) AS f32, "
    "avg(float64) AS f64, count(float64) AS present, bool_or(flag) AS any_flag, max(at_ns) AS last_ns, "
    "min(at_us) AS first_us, count(at_s) AS dated FROM t "
    "GROUP BY ALL ORDER BY ALL NULLS FIRST",
    "SELECT count(*) AS n FROM t WHERE (plan = 'silver' OR tier = 'a') AND float64 IS NULL",
)


@pytest.mark.parametrize("sql", PANDAS_STATEMENTS)
def test_a_pandas_frame_read_as_arrow_gives_what_duckdbs_pandas_scan_gives(engine: Engine, sql: str):
    frame = _every_plain_dtype()
    runs = [engine.execute(sql, frames={"t": frame})[0].df for _ in range(3)]
    assert len(engine.executor.texts) >= 1  # the later runs read the frame as Arrow, text encoded
    for later in runs[1:]:
        pd.testing.assert_frame_equal(later, runs[0])


@pytest.mark.parametrize("other", ["datetime64[ns, UTC]", "timedelta64[ns]", "object", "category", "Int64"])
def test_a_pandas_frame_with_another_dtype_is_left_to_duckdbs_own_scan(engine: Engine, other: str):
    frame = _customers().to_pandas()
    frame["extra"] = pd.Series(np.arange(len(frame)) % 5, dtype="int64").astype(other)
    for _ in range(3):
        df = engine.execute("SELECT count(*) AS n FROM t WHERE plan = 'gold'", frames={"t": frame})[0].df
    assert df.n[0] == (frame.plan == "gold").sum()
    assert len(engine.executor.texts) == 0


def test_a_pandas_statement_reading_no_text_is_left_to_duckdbs_own_scan(engine: Engine):
    frame = _customers().to_pandas()
    for _ in range(3):
        df = engine.execute("SELECT count(*) AS n FROM t WHERE income > 50000", frames={"t": frame})[0].df
    assert df.n[0] == (frame.income > 50000).sum()
    assert len(engine.executor.texts) == 0


@pytest.mark.parametrize("kind", ["pyarrow", "pandas"])
def test_the_notebook_frame_is_not_kept_alive(engine: Engine, kind: str):
    frame = _as(kind, _customers())
    alive = weakref.ref(frame)
    for _ in range(3):
        engine.execute("SELECT count(*) AS n FROM t WHERE plan = 'gold'", frames={"t": frame})
    assert len(engine.executor.texts) == 1
    del frame
    gc.collect()
    assert alive() is None
