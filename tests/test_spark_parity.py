"""Spark gives what DuckDB gives, on the queries a data scientist writes: the same rows,
the same pandas result (dtypes, names), the same errors. Each test runs one cell on the
DuckDB engine and on the Spark engine and compares them (and the model with scikit-learn)."""

from __future__ import annotations

import datetime
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.tree import DecisionTreeClassifier

from nbgov.errors import SqlError, SqlmlError
from tests.fixtures.sqlml import register

pytestmark = pytest.mark.spark


@pytest.fixture
def people() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 60
    frame = pd.DataFrame({
        "id": np.arange(n),
        "age": rng.integers(18, 90, n).astype(float),
        "income": rng.normal(50, 10, n),
        "joined": pd.Timestamp("2024-01-01 09:30") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
        "active": pd.array(rng.choice([True, False], n), dtype="boolean"),
    })
    frame.loc[[3, 11], "age"] = np.nan  # NULL inputs: NULL predictions, the other rows scored
    frame.loc[[5], "active"] = pd.NA
    frame.loc[[8], "joined"] = pd.NaT
    return frame


@pytest.fixture
def tree(people: pd.DataFrame) -> DecisionTreeClassifier:
    known = people.dropna(subset=["age"])
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(
        known[["age", "income"]].to_numpy(np.float32), (known.age > 50).astype(int)
    )


@pytest.fixture
def engines(engine, spark_engine, tree):
    for each in (engine, spark_engine):
        register(each, "m", tree)
    return engine, spark_engine


def _both(engines, sql: str, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    duck, spark = (each.execute(sql, **kwargs)[-1].df for each in engines)
    assert duck is not None and spark is not None
    return duck, spark


def _refused_in_one_line(spark_engine, frames: dict[str, pd.DataFrame], cases: list[tuple[str, str]]) -> None:
    """Each statement fails on Spark with one line saying ``said``."""
    for sql, said in cases:
        with pytest.raises(SqlError) as refused:
            spark_engine.execute(sql, frames=frames)
        assert said in str(refused.value) and "\n" not in str(refused.value), sql


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
def test_a_whole_prediction_with_null_inputs_reads_as_on_duckdb(engines, people, tree, optimize):
    """``predict(m, ...)`` as one STRUCT column, NULL for the rows with a NULL input: Spark
    read it back (inlined as SQL, its NOT NULL fields under a NULL struct broke PySpark's
    toArrow) as the Arrow-backed column DuckDB gives, read with ``.struct.field``."""
    sql = "SELECT id, predict(m, age, income) AS p, predict(m, age, income).label AS l FROM people ORDER BY id"
    duck, spark = _both(engines, sql, frames={"people": people}, optimize=optimize)
    assert isinstance(duck.p.dtype, pd.ArrowDtype) and spark.p.dtype == duck.p.dtype
    labels = spark.p.struct.field("label")
    assert labels.tolist() == duck.p.struct.field("label").tolist()
    assert spark.l.dtype == duck.l.dtype and spark.l.isna().tolist() == duck.l.isna().tolist()
    known = people.age.notna().to_numpy()
    expected = tree.predict(people.loc[known, ["age", "income"]].to_numpy(np.float32))
    assert labels[known].astype(int).tolist() == expected.tolist() and labels[~known].isna().all()
    probabilities = np.stack(spark.p.struct.field("probabilities")[known].to_numpy())
    np.testing.assert_allclose(probabilities, np.stack(duck.p.struct.field("probabilities")[known].to_numpy()), atol=1e-6)


def test_result_frames_have_duckdbs_dtypes_and_column_names(engines, people):
    """Nullable integers and booleans stay nullable (not float64 / object) and a repeated
    name is suffixed as DuckDB does (``id``, ``id_1``), so a cell reads its result alike."""
    sql = "SELECT id, id, active, predict(m, age, income).label AS l, CAST(age AS BIGINT) AS years FROM people ORDER BY id"
    duck, spark = _both(engines, sql, frames={"people": people})
    assert list(spark.columns) == list(duck.columns) == ["id", "id_1", "active", "l", "years"]
    pd.testing.assert_frame_equal(spark, duck)


def test_naive_timestamps_keep_their_wall_clock_time(engines, people):
    """A pandas datetime without a time zone is DuckDB's TIMESTAMP; on Spark it was read as
    an instant (TIMESTAMP_LTZ) and came back tz-aware. Now both give the same values and
    dtype, and a date parameter filters them alike."""
    sql = "SELECT id, joined, CAST(joined AS DATE) AS day FROM people WHERE joined >= $since ORDER BY id"
    since = datetime.date(2024, 6, 1)
    duck, spark = _both(engines, sql, frames={"people": people}, params={"since": since})
    assert len(duck) == int((people.joined >= pd.Timestamp(since)).sum()) > 0
    pd.testing.assert_frame_equal(spark, duck)


def test_date_parts_and_differences_count_as_duckdb_does(engine, spark_engine):
    """sqlglot turns DuckDB's day of the week (0 = Sunday), ISO day, day and month names and
    date_diff (boundaries crossed) into Spark functions that count otherwise: 1 = Sunday,
    'Thu', whole months elapsed... Each now gives DuckDB's values, over random pairs of times."""
    rng = np.random.default_rng(1)
    start = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 1500 * 24 * 60, 120), unit="min")
    end = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 1500 * 24 * 60, 120), unit="min")
    pairs = pd.DataFrame({"a": start, "b": end, "da": start.normalize().date, "db": end.normalize().date})
    parts = [
        "dayofweek(da)", "isodow(da)", "weekday(a)", "extract(dow FROM a)", "extract(isodow FROM da)",
        "date_part('dow', da)", "date_part('isodow', a)", "dayname(da)", "monthname(a)",
        *(f"date_diff('{unit}', a, b)" for unit in ("year", "quarter", "month", "week", "day", "hour", "minute", "second")),
        *(f"datediff('{unit}', da, db)" for unit in ("year", "quarter", "month", "week", "day")),
    ]
    sql = f"SELECT {', '.join(f'{part} AS c{i}' for i, part in enumerate(parts))} FROM pairs"
    duck, spark = _both((engine, spark_engine), sql, frames={"pairs": pairs})
    assert duck.c0.nunique() == 7 and duck.c13.nunique() > 50  # days of the week, days apart: not constant
    pd.testing.assert_frame_equal(spark, duck)


def test_quantiles_are_duckdbs_exact_ones(engine, spark_engine):
    """quantile_cont(x, q) / quantile_disc(x, q) failed on Spark (sqlglot kept two arguments),
    DuckDB's quantile (discrete) became a continuous one and WITHIN GROUP percentiles
    approximate ones; now each is Spark's exact equivalent, NULLs ignored as on DuckDB."""
    rng = np.random.default_rng(3)
    groups = pd.DataFrame({"k": rng.choice(["a", "b", "c"], 101), "x": rng.normal(0, 1, 101).round(3)})
    groups.loc[[4, 9], "x"] = np.nan
    sql = (
        "SELECT k, quantile_cont(x, 0.5) AS a, quantile_disc(x, 0.25) AS b, quantile(x, 0.3) AS c, median(x) AS d, "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY x) AS e, percentile_disc(0.5) WITHIN GROUP (ORDER BY x) AS f "
        "FROM groups GROUP BY k ORDER BY k"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"groups": groups})
    for k, row in duck.set_index("k").iterrows():
        values = groups.x[groups.k == k].dropna()
        assert row.a == pytest.approx(values.quantile(0.5)) and row.e == pytest.approx(values.quantile(0.9))
    pd.testing.assert_frame_equal(spark, duck)


def test_a_temporary_table_keeps_its_rows_after_the_cell(engines, people, tree):
    """``CREATE TEMP TABLE t AS SELECT ... FROM frame`` became Spark's TEMPORARY VIEW of the
    SQL text, which read the notebook frame again, gone after the statement: the next cell
    failed. Now it holds the rows (and lineage hashes them), as on DuckDB; OR REPLACE and
    IF NOT EXISTS behave alike."""
    create = "CREATE TEMP TABLE older AS SELECT id, predict(m, age, income).label AS l FROM people WHERE age > $lo"
    count = "SELECT count(*) AS n, sum(l) AS s FROM older"
    results = []
    for each in engines:
        try:
            (made,) = each.execute(create, frames={"people": people}, params={"lo": 40})
            (written,) = made.activity.written
            results.append((written.rows, each.execute(count)[0].df))
            each.execute("CREATE TEMP TABLE IF NOT EXISTS older AS SELECT 1 AS id, 1 AS l")  # kept as it is
            results.append(each.execute(count)[0].df)
            each.execute("CREATE OR REPLACE TEMP TABLE older AS SELECT 7 AS id, 1 AS l")
            results.append(each.execute(count)[0].df)
        finally:  # Spark's temporary views outlive the test's database
            each.execute("DROP TABLE IF EXISTS older")
    (duck_rows, duck), duck_kept, duck_replaced, (spark_rows, spark), spark_kept, spark_replaced = results
    older = people[people.age > 40]
    assert duck_rows == spark_rows == int(duck.n[0]) == len(older)
    assert int(duck.s[0]) == int(tree.predict(older[["age", "income"]].to_numpy(np.float32)).sum())
    pd.testing.assert_frame_equal(spark, duck, check_dtype=False)
    pd.testing.assert_frame_equal(spark_kept, duck_kept, check_dtype=False)
    assert int(spark_replaced.n[0]) == int(duck_replaced.n[0]) == 1


def test_create_or_replace_table_replaces_it(engines, people):
    """Spark's built-in catalog refuses REPLACE TABLE AS SELECT: the DuckDB idiom failed.
    Now the rows are written over the table, as DuckDB replaces it (new columns too)."""
    counts = []
    for each in engines:
        each.execute("CREATE TABLE kept AS SELECT id FROM people", frames={"people": people})
        each.execute("CREATE OR REPLACE TABLE kept AS SELECT id, age FROM people WHERE id < $n", frames={"people": people}, params={"n": 5})
        counts.append(each.execute("SELECT count(*) AS n, count(age) AS a FROM kept")[0].df)
    duck, spark = counts
    assert int(duck.n[0]) == 5
    pd.testing.assert_frame_equal(spark, duck)


def test_list_aggregates_keep_nulls_and_their_order(engines, people, tree):
    """``list(x ORDER BY k)`` became Spark's COLLECT_LIST(x): the ORDER BY dropped (an
    arbitrary order) and the NULLs too (a NULL prediction vanished). Now each group's list
    is DuckDB's: every value, in the order asked."""
    sql = (
        "SELECT active, list(predict(m, age, income).label ORDER BY income DESC) AS labels, "
        "list(id ORDER BY joined NULLS FIRST, id) AS ids FROM people GROUP BY active ORDER BY active NULLS LAST"
    )
    duck, spark = _both(engines, sql, frames={"people": people})
    assert [len(v) for v in duck.labels] == people.groupby("active", dropna=False).size().tolist()
    assert any(v is None or v != v for labels in duck.labels for v in labels)  # a NULL label kept
    for column in ("labels", "ids"):
        assert [list(v) for v in spark[column]] == [list(v) for v in duck[column]]


def test_csv_files_read_as_on_duckdb(engines, people, tree, tmp_path):
    """``FROM 'x.csv'`` and ``read_csv('x.csv')`` (the contract's file forms) failed on Spark:
    Spark SQL has neither. Now the file is read with its header and inferred types, scored
    alike, and recorded as a file read."""
    path = tmp_path / "people.csv"
    people[["id", "age", "income"]].to_csv(path, index=False)
    sql = (
        f"SELECT id, predict(m, age, income).label AS l FROM '{path}' WHERE age > 30 "
        f"UNION ALL SELECT id, -1 FROM read_csv('{path}') WHERE age IS NULL ORDER BY id"
    )
    results = [each.execute(sql)[0] for each in engines]
    duck, spark = (r.df for r in results)
    known = people[people.age > 30]
    assert duck.l[duck.l >= 0].tolist() == tree.predict(known[["age", "income"]].to_numpy(np.float32)).tolist()
    pd.testing.assert_frame_equal(spark, duck, check_dtype=False)  # Spark infers INT where DuckDB infers BIGINT
    assert results[0].activity.files_read == results[1].activity.files_read == (str(path),)


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
def test_user_mistakes_fail_alike_in_one_line(engines, people, optimize):
    """The same mistake is the same kind of error on both engines, one line, no Java, with
    the model's inputs named where a model call is involved (Spark's message ended with
    its own ';' before nbgov's '; model inputs', reading ';;')."""
    cells = [
        "SELECT id, predict(m, age) FROM people",  # arity
        "SELECT id, predict(m, CAST(id AS VARCHAR), income) FROM people",  # a string for a float input
        "SELECT id, predict(m, age, nosuch) FROM people",  # an unknown column in a model call
        "SELECT id, predict(nosuch, age, income) FROM people",  # an unknown model
    ]
    for sql in cells:
        raised = []
        for each in engines:
            with pytest.raises(Exception) as caught:
                each.execute(sql, frames={"people": people}, optimize=optimize)
            raised.append(caught.value)
        duck, spark = raised
        assert type(spark) is type(duck), sql
        text = str(spark)
        assert "\n" not in text and "java" not in text.lower() and ";;" not in text, text
        assert "m@1(input float[N,2])" in text or "unknown model 'nosuch'" in text, text


def test_a_quotient_cast_to_an_integer_rounds_as_on_duckdb(engine, spark_engine):
    """``(age / 10)::INTEGER``, the usual age bucket: DuckDB's quotient is a DOUBLE its cast
    rounds half to even; Spark's cast truncated it, putting ages 25-29 in the bucket below."""
    values = pd.DataFrame({"x": np.array([25, 27, 35, -25, -27, 14, 15, 0, 99], dtype=np.int64), "d": [2, 2, 2, 2, 2, 2, 2, 3, 7]})
    sql = (
        "SELECT x, (x / 10)::INTEGER AS a, CAST(x / d AS BIGINT) AS b, TRY_CAST((x + 0.0) / 4 AS SMALLINT) AS c, "
        "CAST(x / 10 AS DOUBLE) AS keep FROM v ORDER BY x"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"v": values})
    assert duck.a.tolist() == [-3, -2, 0, 1, 2, 2, 3, 4, 10]  # -2.5 -> -2, 1.5 -> 2, 2.5 -> 2, 2.7 -> 3, 3.5 -> 4
    pd.testing.assert_frame_equal(spark, duck, check_dtype=False)


def test_a_double_cast_to_an_integer_rounds_as_on_duckdb(engine, spark_engine):
    """DuckDB's cast of a DOUBLE or FLOAT to an integer type rounds half to even, of a DECIMAL
    half away from zero; Spark's truncated every one (3.5 -> 3, -0.5 -> 0 but 1.5 -> 1), for a
    bare column of a frame or a Spark table as for any DOUBLE expression: products, square
    roots, averages, a ``$name`` float. Each is now typed as DuckDB types it and rounded so."""
    x = [2.5, -2.5, 3.5, -3.5, 0.49999999999999994, -0.5, 1.5, 6.25, 12.25, np.nan]
    values = pd.DataFrame({"n": np.arange(len(x), dtype=np.int64), "x": x, "f": np.array(x, dtype=np.float32), "k": [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]})
    sql = (
        "SELECT n, x::INTEGER AS a, CAST(x AS BIGINT) AS b, TRY_CAST(x AS SMALLINT) AS c, f::INTEGER AS d, "
        "(x * 1.5)::INTEGER AS e, sqrt(abs(x))::INTEGER AS g, (n * 0.5)::INTEGER AS h, "
        "CAST(CAST(x AS DECIMAL(10, 1)) AS INTEGER) AS i, $p::INTEGER AS j FROM v ORDER BY n"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"v": values}, params={"p": 3.5})
    assert duck.a.tolist()[:9] == [2, -2, 4, -4, 0, 0, 2, 6, 12] and duck.a.isna().tolist()[9]
    assert duck.g.tolist()[7:9] == [2, 4] and duck.h.tolist()[5] == 3 and duck.i.tolist()[:4] == [3, -3, 4, -4]
    pd.testing.assert_frame_equal(spark, duck)
    grouped = "SELECT k, AVG(x)::INTEGER AS mean, median(x)::BIGINT AS middle FROM doubles GROUP BY k ORDER BY k"
    for each in (engine, spark_engine):  # a table of the engine's own (a Spark table on Spark)
        each.execute("CREATE TABLE doubles AS SELECT * FROM v", frames={"v": values})
    duck, spark = _both((engine, spark_engine), grouped)
    assert duck["mean"].tolist()[:4] == [0, 0, 0, 4]  # 3.875 in the last: truncated, it was 3
    pd.testing.assert_frame_equal(spark, duck)


def test_a_double_cast_to_a_decimal_rounds_as_on_duckdb(engine, spark_engine):
    """DuckDB casts a DOUBLE to DECIMAL(p, s) by rounding ``x * 10^s`` as a double: 1.005 is
    100.49999999999999 hundredths, so 1.00; Spark rounded the shortest decimal text of x, 1.005,
    to 1.01. The same values now on both."""
    values = pd.DataFrame({"x": [1.005, 0.285, 2.675, 0.125, -1.005, 1.15, 1234.5678, np.nan]})
    sql = "SELECT x, CAST(x AS DECIMAL(10, 2)) AS cents, x::DECIMAL AS d, CAST(x * 10 AS DECIMAL(12, 1)) AS tenths FROM v"
    duck, spark = _both((engine, spark_engine), sql, frames={"v": values})
    assert duck.cents.tolist()[:5] == [1.0, 0.28, 2.68, 0.13, -1.0]
    pd.testing.assert_frame_equal(spark, duck)



def test_round_to_places_of_a_double_reads_as_on_duckdb(engine, spark_engine):
    """DuckDB rounds a DOUBLE's exact value at n places (2.675 is 2.67499999999999982..., so
    2.67; 1.15 is 1.1; 0.125 is a true tie, 0.13), and ``round_even`` so to even. Spark
    rounded the shortest decimal text instead (2.68, 1.2) and had no ``round_even``: 22 of
    these 400 values next to a tie, rounded to cents, differed by a cent. Now the same on
    both, for literal and column places, negative places, FLOAT, NULL, NaN and overflow."""
    rng = np.random.default_rng(7)
    places = rng.integers(-2, 4, 400)
    near_ties = np.array([round(v, int(k)) for v, k in zip(rng.uniform(-1000, 1000, 400), places)]) + 5.0 / 10.0 ** (places + 1)
    x = np.concatenate([near_ties, [2.675, 1.15, 0.125, -0.285, 1e308, np.nan, np.inf, 1234.5, np.nan]])
    n = np.concatenate([places, [2, 1, 2, 2, 2, 2, -2, -1, 0]]).astype(np.int32)
    with np.errstate(over="ignore"):  # 1e308 is infinite as a FLOAT
        single = x.astype(np.float32)
    values = pd.DataFrame({"id": np.arange(len(x)), "x": x, "n": n, "f": single})
    values.loc[len(values) - 1, "x"] = None
    sql = (
        "SELECT id, round(x, 2) AS cents, round(x, n) AS places, round_even(x, n) AS even, round(x, -1) AS tens, "
        "roundbankers(x, 2) AS bankers, round(f, 2) AS f2, round(x * 1.0, n) AS scaled FROM v ORDER BY id"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"v": values})
    assert duck.cents.tolist()[400:404] == [2.67, 1.15, 0.13, -0.28] and duck.places.tolist()[401] == 1.1
    assert duck.even.tolist()[402] == 0.12 and duck.f2.dtype == np.float32
    pd.testing.assert_frame_equal(spark, duck)



def test_logarithms_regex_replacement_format_and_list_ends_read_as_on_duckdb(engine, spark_engine):
    """Functions whose Spark namesakes meant something else, silently: DuckDB's ``log(x)`` is
    base 10 (Spark: natural), ``log10`` exact (Spark's came as ln(x)/ln(10): 2.9999999999999996
    for 1000); ``regexp_replace`` replaces the first match unless ``'g'``, reads ``\\1`` as
    a group and ``$`` as itself (Spark replaced every match, read ``\\1`` as ``1`` and ``$1``
    as a group); ``format('{} {}', ...)`` fills its ``{}`` (Spark printed them); ``substring``
    from 0 takes one character fewer, and a negative length those before the start;
    ``isinf`` / ``isfinite``, ``list[-1]`` (the last) and ``list[3]`` past the end of a list
    (NULL on DuckDB) failed on Spark."""
    texts = pd.DataFrame(
        {
            "id": np.arange(5),
            "s": ["a1b2", "Price 5 and 7", "x\ny", None, "AaA"],
            "x": [1000.0, 100.0, np.inf, np.nan, 0.001],
            "items": pd.Series([[1, 2, 3], [4], [5, 6], None, []], dtype=pd.ArrowDtype(pa.list_(pa.int64()))),
        }
    )
    sql = (
        "SELECT id, log(x) AS lg, log10(x) AS l10, log(2, x) AS l2, regexp_replace(s, '[0-9]', '#') AS first, "
        "regexp_replace(s, '[0-9]', '#', 'g') AS every, regexp_replace(s, '([0-9])', '<\\1$>', 'g') AS groups, "
        "regexp_replace(s, 'a', '-', 'i') AS nocase, regexp_replace(s, 'x.y', 'Z') AS dot, "
        "regexp_replace(s, '([a-z])([0-9])\\s*', '\\2\\1') AS swap, "
        "format('{} is {}%', s, id) AS f, isinf(x) AS inf, isfinite(x) AS fin, items[-1] AS last, "
        "substring(s, 0, 3) AS head, substring(s, 3, -2) AS before, items[1] AS first_item, items[3] AS third FROM t ORDER BY id"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"t": texts})
    assert duck.lg.tolist()[:2] == [3.0, 2.0] and duck.l10.tolist()[0] == 3.0
    assert duck["first"].tolist()[:2] == ["a#b2", "Price # and 7"] and duck.every.tolist()[0] == "a#b#"
    assert duck.groups.tolist()[1] == "Price <5$> and <7$>" and duck.nocase.tolist()[4] == "-aA"
    assert duck.swap.tolist()[0] == "1ab2"
    assert duck.f.tolist()[0] == "a1b2 is 0%" and duck.f.isna().tolist()[3]
    assert duck["last"].tolist()[:3] == [3, 4, 6] and duck["head"].tolist()[0] == "a1" and duck.before.tolist()[0] == "a1"
    assert duck.first_item.tolist()[:3] == [1, 4, 5] and duck.third.isna().tolist() == [False, True, True, True, True]
    pd.testing.assert_frame_equal(spark, duck)
    _refused_in_one_line(spark_engine, {"t": texts}, [
        ("SELECT regexp_replace(s, s, 'x') AS r FROM t", "needs a text literal pattern on the spark engine"),
        ("SELECT format('{:.2f}', x) AS r FROM t", "format() on the spark engine takes a text literal with one {}"),
    ])



def test_dates_and_times_read_as_on_duckdb(engine, spark_engine):
    """DuckDB's ``shipped - ordered`` of DATEs is a number of days (Spark gave intervals);
    ``date_trunc`` of a TIMESTAMP, ``strptime``, ``epoch_ms(n)`` and ``make_timestamp``
    are wall-clock TIMESTAMPs (Spark gave instants: tz-aware values); ``epoch(t)`` and
    ``EXTRACT(epoch FROM t)`` are seconds with their fractions (Spark: whole seconds, or
    an error)."""
    orders = pd.DataFrame(
        {
            "id": np.arange(4),
            "ordered": pd.to_datetime(["2024-02-28", "2024-12-31", "2023-03-01", None]).date,
            "shipped": pd.to_datetime(["2024-03-01", "2025-01-02", "2023-03-01", "2024-01-01"]).date,
            "placed": pd.to_datetime(["2024-05-19 10:11:12.25", "2024-12-31 23:59:59", "1969-12-31 23:00:00", None], format="ISO8601"),
            "text": ["2024-05-19 10:11", "2024-12-31 23:59", None, "1999-01-01 00:00"],
            "ms": [1716112800123, 0, -1000, None],
        }
    )
    orders["ms"] = orders["ms"].astype("Int64")
    sql = (
        "SELECT id, shipped - ordered AS days, (shipped - ordered) * 24 AS hours, date_trunc('hour', placed) AS hour, "
        "date_trunc('month', ordered) AS month, strptime(text, '%Y-%m-%d %H:%M') AS parsed, epoch_ms(ms) AS stamp, "
        "make_timestamp(2024, 5, id + 1, 10, 11, 12.5) AS made, epoch(placed) AS seconds, "
        "EXTRACT(epoch FROM placed) AS extracted FROM orders ORDER BY id"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"orders": orders})
    assert duck.days.tolist()[:3] == [2, 2, 0] and duck.seconds.tolist()[0] == 1716113472.25
    assert str(duck.hour.dtype) == "datetime64[us]" and str(duck.parsed.dtype) == "datetime64[us]"
    pd.testing.assert_frame_equal(spark, duck)



def test_qualify_arg_max_and_series_read_as_on_duckdb(engine, spark_engine):
    """``SELECT * ... QUALIFY`` showed sqlglot's helper column ``_w`` on Spark, and a LIMIT
    cut rows before QUALIFY filtered them (DuckDB: after); ``arg_max(s, x)`` returned a NULL
    ``s`` where DuckDB skips those rows; ``FROM range(0)`` gave two rows (Spark's
    SEQUENCE(0, -1) counts down) and series columns were named ``col``."""
    people = pd.DataFrame(
        {"id": np.arange(8), "g": list("aabbbccc"), "x": [5.0, 9, 7, 8, 1, 3, 6, 2], "s": ["p", None, "q", None, "r", "s", "t", "u"]}
    )
    queries = [
        "SELECT * FROM people QUALIFY row_number() OVER (PARTITION BY g ORDER BY x DESC) = 1 ORDER BY id",
        "SELECT id, g FROM people QUALIFY rank() OVER (PARTITION BY g ORDER BY x) <= 2 ORDER BY x DESC LIMIT 3",
        "SELECT g, arg_max(s, x) AS top, arg_min(s, x) AS bottom FROM people GROUP BY g ORDER BY g",
        "SELECT * FROM range(3)",
        "SELECT count(*) AS n FROM range(0)",
        "SELECT * FROM range(5, 0, -2)",
        "SELECT * FROM generate_series(3, 1)",
        "SELECT s.v * 2 AS w FROM generate_series(1, 3) AS s(v)",
    ]
    duck, spark = zip(*(_both((engine, spark_engine), sql, frames={"people": people}) for sql in queries))
    assert list(duck[0].columns) == ["id", "g", "x", "s"] and duck[0].id.tolist() == [1, 3, 6]
    assert duck[1].id.tolist() == [1, 2, 0] and duck[2].top.tolist() == ["p", "q", "t"]
    assert duck[3].columns.tolist() == ["range"] and int(duck[4].n[0]) == 0 and duck[5]["range"].tolist() == [5, 3, 1]
    for mine, theirs in zip(spark, duck):
        pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)



def test_quotients_and_averages_of_decimals_are_doubles_as_on_duckdb(engine, spark_engine):
    """DuckDB's ``/`` and ``avg`` of a DECIMAL are DOUBLEs: ``price / 3`` of 2.00 is
    0.6666666666666666 and the average of 1, 2 and 2 is 1.6666666666666667. Spark kept
    DECIMALs of a few places (0.666667, 1.66667, as Python Decimals); windows, FILTER and
    DISTINCT alike. DuckDB's ``prefix`` / ``suffix`` are Spark's startswith / endswith."""
    prices = pd.DataFrame({"id": np.arange(6), "g": list("aaabbb"), "cents": [100, 200, 200, 150, 275, 333], "s": ["ab", "ba", None, "a", "b", "ab"]})
    sql = (
        "SELECT id, cents::DECIMAL(10, 2) / 300 AS third, 10 / (cents::DECIMAL(6, 1) + 1) AS inverse, "
        "avg(cents::DECIMAL(8, 2)) OVER (PARTITION BY g) AS mean, prefix(s, 'a') AS p, suffix(s, 'b') AS q FROM v ORDER BY id"
    )
    grouped = (
        "SELECT g, avg(cents::DECIMAL(8, 2) / 100) AS mean, avg(DISTINCT cents::DECIMAL(8, 2)) AS distinct_mean, "
        "avg(cents::DECIMAL(8, 2)) FILTER (WHERE id > 0) AS filtered, avg(cents::DECIMAL(8, 2)) / 7 AS seventh FROM v GROUP BY g ORDER BY g"
    )
    for query in (sql, grouped):
        duck, spark = _both((engine, spark_engine), query, frames={"v": prices})
        pd.testing.assert_frame_equal(spark, duck)
    duck, _ = _both((engine, spark_engine), sql, frames={"v": prices})
    assert duck.third.tolist()[1] == 2 / 3 and duck["mean"].tolist()[0] == 500 / 3 and duck.p.tolist()[:2] == [True, False]



def test_show_tables_describe_and_replacing_a_table_read_as_on_duckdb(engine, spark_engine):
    """A new user's first look at a warehouse: ``SHOW TABLES`` failed on Spark (sqlglot
    printed "Unsupported SHOW statement" and Spark saw an empty statement); ``DESCRIBE``
    came in Spark's shape (col_name, data_type, comment); ``CREATE OR REPLACE TABLE t
    (columns)``, the idempotent form of a cell run twice, failed on Spark's built-in catalog.
    Now as on DuckDB: a ``name`` column, DuckDB's DESCRIBE columns and type names, and the
    table replaced (nbgov's model catalog table is not listed)."""
    statements = [
        "CREATE OR REPLACE TABLE listed_b (i INTEGER, s VARCHAR, d DECIMAL(10, 2), t TIMESTAMP, l INTEGER[], st STRUCT(a DOUBLE))",
        "CREATE OR REPLACE TABLE listed_b (i INTEGER, s VARCHAR, d DECIMAL(10, 2), t TIMESTAMP, l INTEGER[], st STRUCT(a DOUBLE))",
        "CREATE OR REPLACE TABLE listed_a AS SELECT 1 AS one",
    ]
    for each in (engine, spark_engine):
        each.execute("; ".join(statements))
    try:
        duck, spark = _both((engine, spark_engine), "SHOW TABLES")
        assert {"listed_a", "listed_b"} <= set(spark.name) and "nbgov_models" not in set(spark.name)
        listed = [frame[frame.name.str.startswith("listed_")].reset_index(drop=True) for frame in (duck, spark)]
        pd.testing.assert_frame_equal(listed[1], listed[0])
        duck, spark = _both((engine, spark_engine), "DESCRIBE listed_b")
        assert duck.column_type.tolist() == ["INTEGER", "VARCHAR", "DECIMAL(10,2)", "TIMESTAMP", "INTEGER[]", "STRUCT(a DOUBLE)"]
        pd.testing.assert_frame_equal(spark, duck)
    finally:
        for each in (engine, spark_engine):
            each.execute("DROP TABLE IF EXISTS listed_a; DROP TABLE IF EXISTS listed_b")



def test_list_parameters_bind_as_on_duckdb(engine, spark_engine, capfd):
    """``top = people.nlargest(3, "income").id`` then ``WHERE id IN $top``: Spark failed to
    parse ``IN :top`` and refused a pandas Series or Index. Now ``array_contains``, and a
    Series binds as its values, as on DuckDB; a DataFrame is refused in the same words. A
    list mixing None with values, which Spark cannot bind, is refused in one line, and
    PySpark's JSON log of the refused parameter no longer reaches the cell's stderr."""
    people = pd.DataFrame({"id": np.arange(6), "income": [5, 9, 1, 7, 3, 8]})
    params = {"top": people.nlargest(3, "income").id, "few": pd.Index([0, 1]), "whole": people.head(2), "gaps": [1, None]}
    for sql in ("SELECT id FROM people WHERE id IN $top ORDER BY id", "SELECT id FROM people WHERE id NOT IN $few ORDER BY id"):
        duck, spark = _both((engine, spark_engine), sql, frames={"people": people}, params=params)
        pd.testing.assert_frame_equal(spark, duck)
    assert duck.id.tolist() == [2, 3, 4, 5]
    refused = []
    for each in (engine, spark_engine):
        with pytest.raises(SqlmlError) as caught:
            each.execute("SELECT $whole AS w", params=params)
        refused.append(str(caught.value))
    assert refused[0] == refused[1] == (
        "parameter $whole is a DataFrame, a table: read it by name (FROM whole); $name binds a number, string, date or a list of them"
    )
    capfd.readouterr()
    with pytest.raises(SqlmlError, match=r"^parameter \$gaps holds None among other values"):
        spark_engine.execute("SELECT $gaps AS g", params=params)
    assert "QueryContextLogger" not in capfd.readouterr().err


@pytest.fixture
def new_york_clock(monkeypatch: pytest.MonkeyPatch):
    """Python's local time zone New York's (the Spark session's stays UTC), as on a laptop."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_naive_datetime_parameter_is_a_timestamp_as_on_duckdb(engine, spark_engine, new_york_clock):
    """A ``$name`` holding a naive datetime is DuckDB's TIMESTAMP: the wall-clock time as
    written. Spark bound it as an instant read in Python's local zone: ``SELECT $since`` came
    back tz-aware (04:00 UTC for midnight in New York) and ``joined >= $since`` dropped the
    rows of the first four hours."""
    joined = pd.to_datetime(["2024-05-31 23:59:59", "2024-06-01 00:00:00", "2024-06-01 02:30:00", "2024-06-01 05:00:00", None])
    people = pd.DataFrame({"id": np.arange(5), "joined": joined})
    since = datetime.datetime(2024, 6, 1)
    sql = "SELECT id, joined, $since AS t, $stamp AS s FROM people WHERE joined >= $since ORDER BY id"
    params = {"since": since, "stamp": pd.Timestamp("2024-06-01 12:30:05.123456")}
    duck, spark = _both((engine, spark_engine), sql, frames={"people": people}, params=params)
    assert duck.id.tolist() == [1, 2, 3] and duck.t.dtype == "datetime64[us]"
    pd.testing.assert_frame_equal(spark, duck)


def test_list_and_text_lengths_count_as_on_duckdb(engine, spark_engine):
    """``len(list)`` failed on Spark (sqlglot writes LENGTH, which takes text only) and
    ``array_length`` / ``length(text)`` came back as int32; now a list's size and a text's
    length, BIGINTs, NULL for NULL, as on DuckDB."""
    lists = pd.DataFrame({"id": [1, 2, 3], "tags": [[1, 2], [], None], "s": ["ab", None, "é"]})
    sql = "SELECT id, len(tags) AS a, array_length(tags) AS b, len(s) AS c, length(s) AS d FROM lists ORDER BY id"
    duck, spark = _both((engine, spark_engine), sql, frames={"lists": lists})
    assert duck.a.tolist()[:2] == [2, 0] and duck.c.tolist()[::2] == [2, 1]
    pd.testing.assert_frame_equal(spark, duck)


def test_star_exclude_replace_and_rename_select_as_on_duckdb(engine, spark_engine, people):
    """``SELECT * REPLACE (...)`` and ``* RENAME (...)`` failed to parse on Spark, and ``*
    EXCLUDE (s)`` over a join whose sides both have ``s`` was ambiguous there (DuckDB drops
    both). The stars are now expanded into the columns they stand for, as DuckDB reads them."""
    extra = people[["id", "income"]].assign(note="x").rename(columns={"id": "Id", "note": "Note Text"})
    frames = {"people": people, "extra": extra}
    cells = [
        "SELECT * REPLACE (round(income) AS income, age + 1 AS age) FROM people WHERE age > 40 ORDER BY id",
        "SELECT * EXCLUDE (joined) RENAME (income AS pay) FROM people ORDER BY id",
        "SELECT * EXCLUDE (income) FROM extra JOIN people USING (id) ORDER BY id",
        'SELECT p.* EXCLUDE (joined, active), e.* REPLACE (upper("note text") AS "NOTE text") FROM people p JOIN extra e ON p.id = e.id ORDER BY p.id',
        "WITH older AS (SELECT * EXCLUDE (joined) FROM people WHERE age > 60) SELECT * REPLACE (age::INTEGER AS age) FROM older ORDER BY id",
        "SELECT * REPLACE (Income * 2 AS income) FROM (SELECT id AS ID, income AS Income FROM people) ORDER BY id",
    ]
    for sql in cells:
        duck, spark = _both((engine, spark_engine), sql, frames=frames)
        assert len(duck) > 0, sql
        pd.testing.assert_frame_equal(spark, duck, obj=sql)


def test_duckdb_only_column_choices_fail_in_one_line_on_spark(engine, spark_engine, people):
    """``COLUMNS(...)`` and ``* LIKE`` (columns chosen by name) have no Spark form sqlglot can
    write: Spark said UNRESOLVED_ROUTINE or a syntax error; now one line says the construct is
    DuckDB-only on the spark engine."""
    for sql in ("SELECT min(COLUMNS('inc.*')) FROM people", "SELECT * LIKE 'a%' FROM people"):
        assert len(engine.execute(sql, frames={"people": people})[0].df.columns) > 0
        with pytest.raises(SqlError) as caught:
            spark_engine.execute(sql, frames={"people": people})
        text = str(caught.value)
        assert "DuckDB-only on the spark engine" in text and "\n" not in text and "java" not in text.lower(), text


def test_names_that_differ_only_in_case_are_suffixed_as_on_duckdb(engine, spark_engine):
    """DuckDB's names ignore case, so ``id`` then ``Id`` is a repeated name, suffixed ``Id_1``;
    Spark's results kept ``id``, ``Id``, ``ID`` as three names."""
    sql = 'SELECT 1 AS id, 2 AS "Id", 3 AS "ID", 4 AS id_1, 5 AS "iD"'
    duck, spark = _both((engine, spark_engine), sql)
    assert list(duck.columns) == ["id", "Id_1", "ID_2", "id_1_1", "iD_3"]
    pd.testing.assert_frame_equal(spark, duck)


def test_division_by_zero_gives_duckdbs_values(engine, spark_engine):
    """DuckDB's ``/`` is a DOUBLE: ``x / 0`` is inf, -inf or NaN (NULL for NULL), and a
    DOUBLE's ``x % 0`` is NaN. Spark's ANSI mode failed the query (DIVIDE_BY_ZERO); now the
    same values on both. Integer ``%`` and ``//`` by zero fail on both."""
    values = pd.DataFrame({
        "id": np.arange(6), "x": pd.array([3, 0, -2, None, 7, 5], dtype="Int64"), "z": [0, 0, 0, 0, 2, -0],
        "d": [2.5, 0.0, -1.0, None, 9.0, 1.0], "zd": [0.0, -0.0, -0.0, 0.0, 4.0, np.nan],
    })
    sql = (
        "SELECT id, x / z AS a, d / zd AS b, x / 0 AS c, d / z AS e, d % zd AS f, d % 0 AS g, (x / z)::DOUBLE AS h, "
        "1 / zd AS i FROM v ORDER BY id"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"v": values})
    assert duck.a.tolist()[:3] == [np.inf, None, -np.inf] or np.isnan(duck.a[1])
    assert duck.i.tolist()[:2] == [np.inf, -np.inf] and np.isnan(duck.f[0])
    pd.testing.assert_frame_equal(spark, duck)
    for sql in ("SELECT x % z AS r FROM v", "SELECT x // z AS q FROM v"):
        for each in (engine, spark_engine):
            with pytest.raises(SqlError, match="(?i)division by zero") as caught:
                each.execute(sql, frames={"v": values})
        assert "NULLIF" in str(caught.value) and "try_divide" not in str(caught.value)  # the notebook's SQL, not Spark's


def test_text_cast_to_an_integer_rounds_as_on_duckdb(engine, spark_engine):
    """DuckDB's ``'2.5'::INTEGER`` reads the text as a number and rounds it half away from
    zero (3); Spark's cast refused text with a fraction (CAST_INVALID_INPUT)."""
    texts = pd.DataFrame({"id": np.arange(7), "s": ["2.5", "-2.5", " 2.45 ", "1e2", "7", None, "x"]})
    sql = (
        "SELECT id, '2.5'::INT AS a, CAST('-3.5' AS BIGINT) AS b, TRY_CAST(s AS INTEGER) AS c, "
        "TRY_CAST(s AS SMALLINT) AS d FROM v ORDER BY id"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"v": texts})
    assert duck.a[0] == 3 and duck.b[0] == -4 and duck.c.tolist()[:5] == [3, -3, 2, 100, 7]
    pd.testing.assert_frame_equal(spark, duck)
    for each in (engine, spark_engine):
        with pytest.raises(SqlError):
            each.execute("SELECT s::INT AS n FROM v", frames={"v": texts})


def test_ceil_and_floor_are_doubles_as_on_duckdb(engine, spark_engine):
    """DuckDB's ``ceil`` / ``floor`` of an integer or DOUBLE are DOUBLEs (a FLOAT's FLOATs);
    Spark's BIGINTs came back as int64 and failed past 2^63 (``ceil(1e300)``)."""
    x = [1.5, -1.5, 2.0, 1e300, np.inf, np.nan, None]
    with np.errstate(over="ignore"):  # 1e300 is infinite as a FLOAT
        single = np.array(x, dtype=np.float32)
    values = pd.DataFrame({"id": np.arange(7), "x": x, "f": single, "n": np.arange(7, dtype=np.int32)})
    sql = "SELECT id, ceil(x) AS a, floor(x) AS b, ceil(f) AS c, floor(n) AS d, ceil(n / 2) AS e FROM v ORDER BY id"
    duck, spark = _both((engine, spark_engine), sql, frames={"v": values})
    assert duck.a.dtype == np.float64 and duck.c.dtype == np.float32 and duck.a.tolist()[:4] == [2.0, -1.0, 2.0, 1e300]
    pd.testing.assert_frame_equal(spark, duck)


def test_an_insert_reports_its_rows_as_on_duckdb(engine, spark_engine):
    """DuckDB's ``INSERT`` says how many rows it wrote (``INSERT: 3 row(s)``); Spark's said
    ``INSERT: ok``. Now Spark's own count of the rows written, for a query, VALUES and none."""
    values = pd.DataFrame({"x": [1, 2, 3]})
    summaries = []
    for each in (engine, spark_engine):
        each.execute("CREATE TABLE counted (x BIGINT)")
        cells = ["INSERT INTO counted SELECT x FROM v", "INSERT INTO counted VALUES (7), (8)", "INSERT INTO counted SELECT x FROM v WHERE x > 5"]
        summaries.append([each.execute(sql, frames={"v": values})[-1].summary for sql in cells])
    assert summaries[0] == summaries[1] == ["INSERT: 3 row(s)", "INSERT: 2 row(s)", "INSERT: 0 row(s)"]
    duck, spark = _both((engine, spark_engine), "SELECT x FROM counted ORDER BY x")
    pd.testing.assert_frame_equal(spark, duck)


def test_in_a_subquery_read_as_a_value_is_null_as_on_duckdb(engine, spark_engine):
    """``x IN (SELECT ...)`` in a SELECT list is NULL on DuckDB when ``x`` is NULL or when
    nothing matches and the subquery has a NULL; Spark gave false (its IN became an
    existence join). Now three-valued on both, correlated, grouped and combined subqueries
    too; filters read as before. ``= ANY`` / ``<> ALL`` of a subquery, which Spark cannot
    parse, are IN and NOT IN; a row value IN a subquery read as a value, and other ANY / ALL
    comparisons, are refused in one line."""
    v = pd.DataFrame({"id": np.arange(5), "x": pd.array([1, 3, None, 2, 5], dtype="Int64"), "g": ["a", "a", "b", "b", "c"]})
    t = pd.DataFrame({"k": pd.array([1, 2, None, 5], dtype="Int64"), "g": ["a", "b", "b", "c"]})
    cells = [
        "SELECT id, x IN (SELECT k FROM t) AS a, x NOT IN (SELECT k FROM t) AS b, x IN (SELECT k FROM t WHERE k IS NOT NULL) AS c, "
        "x IN (SELECT k FROM t WHERE false) AS d FROM v ORDER BY id",
        "SELECT id, x IN (SELECT k FROM t WHERE t.g = v.g) AS a, x IN (SELECT max(k) FROM t GROUP BY g) AS b, "
        "x IN (SELECT k FROM t UNION ALL SELECT 3) AS c, CASE WHEN x IN (SELECT k FROM t) THEN 'y' ELSE 'n' END AS e FROM v ORDER BY id",
        "SELECT id FROM v WHERE x NOT IN (SELECT k FROM t WHERE k IS NOT NULL) OR id = 0 ORDER BY id",
        "SELECT id FROM v WHERE x IN (SELECT k FROM t) AND NOT x IN (SELECT k FROM t WHERE k > 4) ORDER BY id",
        "SELECT id, (SELECT count(*) FROM v WHERE x NOT IN (SELECT k FROM t)) AS none_left FROM v JOIN t ON v.x IN (SELECT k FROM t) AND v.x = t.k ORDER BY id",
        "SELECT id, x = ANY (SELECT k FROM t) AS a, x <> ALL (SELECT k FROM t WHERE k < 3) AS b FROM v WHERE x = ANY (SELECT k FROM t) OR id > 2 ORDER BY id",
    ]
    duck_frames = []
    for sql in cells:
        duck, spark = _both((engine, spark_engine), sql, frames={"v": v, "t": t})
        pd.testing.assert_frame_equal(spark, duck, obj=sql)
        duck_frames.append(duck)
    duck = duck_frames[0]  # the first cell's DuckDB result, read above (not run again)
    assert duck.a.isna().tolist() == [False, True, True, False, False] and not duck.d.isna().any()  # none IN nothing: false
    for sql in ("SELECT (x, g) IN (SELECT k, g FROM t) AS r FROM v", "SELECT x > ALL (SELECT k FROM t) AS r FROM v"):
        with pytest.raises(SqlError, match="DuckDB-only on the spark engine"):
            spark_engine.execute(sql, frames={"v": v, "t": t})


def test_integer_division_reads_as_on_duckdb(engine, spark_engine):
    """DuckDB's ``x // y`` of integers truncates in the wider operand's type (an INTEGER
    stays int32; Spark's ``div`` gave BIGINT), and of a DOUBLE, FLOAT or DECIMAL is their
    quotient (``7.5 // 2`` is 3.75; Spark's ``div`` refused the types). Zero fails on both."""
    values = pd.DataFrame({
        "n": np.array([-7, 7, 9, 1], dtype=np.int32), "b": np.array([2, -2, 4, 3], dtype=np.int64),
        "d": [7.5, -1.0, 2.25, np.nan], "f": np.array([5, 1, 3, 2], dtype=np.float32),
    })
    sql = "SELECT n // 2 AS a, n // b AS c, d // 2 AS e, 7.5 // 2 AS g, f // f AS h, d // b AS i FROM v ORDER BY n"
    duck, spark = _both((engine, spark_engine), sql, frames={"v": values})
    assert duck.a.dtype == np.int32 and duck.a.tolist()[0] == -3 and duck.g[0] == 3.75 and duck.h.dtype == np.float32
    pd.testing.assert_frame_equal(spark, duck)
    for each in (engine, spark_engine):
        with pytest.raises(SqlError):
            each.execute("SELECT d // 0 AS q FROM v", frames={"v": values})


def test_numpy_scalar_parameters_bind_as_on_duckdb(engine, spark_engine):
    """``thr = cust.age.mean()`` is a ``numpy.float64``, which is also a Python float: Spark
    refused it (INVALID_SQL_ARG) because it was passed on unconverted. Every numpy scalar
    now binds as its Python value, and filters and reads back as on DuckDB."""
    cust = pd.DataFrame({"age": np.arange(18.0, 90.0), "name": [f"n{i % 3}" for i in range(72)]})
    params = {"thr": cust.age.mean(), "f32": np.float32(40.5), "i64": np.int64(30), "yes": np.bool_(True), "who": np.str_("n1")}
    assert isinstance(params["thr"], np.float64)
    sql = (
        "SELECT count(*) FILTER (WHERE age > $thr) AS over_mean, count(*) FILTER (WHERE age < $f32) AS young, "
        "count(*) FILTER (WHERE age <= $i64 AND $yes) AS thirty, count(*) FILTER (WHERE name = $who) AS named, "
        "$thr AS thr, $f32 AS f, $i64 AS i, $yes AS y, $who AS w FROM cust"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"cust": cust}, params=params)
    assert duck[["over_mean", "young", "thirty", "named"]].iloc[0].tolist() == [36, 23, 13, 24]
    pd.testing.assert_frame_equal(spark, duck)


def test_the_length_of_a_list_parameter_is_its_size_as_on_duckdb(engine, spark_engine):
    """``len($ids)`` of a list failed on Spark (LENGTH of an ARRAY): a parameter's type was
    not looked at, so it was not written as a list's size. A list, tuple, array or Series
    bound is a list; its elements' type types ``$ids[k]`` too (NULL past its end)."""
    params = {"ids": [1, 2, 3, 5], "pair": ("a", "b"), "arr": np.array([1.5, 2.5, 3.5]), "col": pd.Series([7, 8]), "word": "four"}
    sql = (
        "SELECT len($ids) AS n, length($pair) AS p, len($arr) AS a, length($col) AS c, len($word) AS w, "
        "$ids[2] AS second, $ids[9] AS past FROM range(1)"
    )
    duck, spark = _both((engine, spark_engine), sql, params=params)
    assert duck[["n", "p", "a", "c", "w", "second"]].iloc[0].tolist() == [4, 2, 3, 2, 4, 2] and duck.past.isna().all()
    pd.testing.assert_frame_equal(spark, duck)


def test_like_reads_a_backslash_as_an_ordinary_character_as_on_duckdb(engine, spark_engine):
    """DuckDB's LIKE has no escape character unless ESCAPE names one; Spark's default is the
    backslash, so ``'%\\_%'`` matched any ``_`` there (rows 4 and 5, not row 1's backslash)
    and ``'C:\\temp%'`` failed. Now literal, column and ``$name`` patterns, ILIKE, NOT and
    DuckDB's ``~~`` forms match as on DuckDB, and an ESCAPE given is kept."""
    paths = pd.DataFrame(
        {
            "k": [1, 2, 3, 4, 5, 6],
            "s": ["C:\\temp\\x", "a.b", "axb", "50%_off", "A_B\\", None],
            "p": ["C:\\t%", "a_b", "%\\", "%\\%%", "a_b\\", "%"],
        }
    )
    sql = (
        "SELECT k, s LIKE '%\\_%' AS u, s ILIKE '%\\%%' AS pc, s NOT LIKE 'C:\\temp%' AS nt, s LIKE p AS col, "
        "s ILIKE p AS icol, s NOT ILIKE p AS nicol, s ~~ '%\\' AS tail, s !~~* 'a\\_%' AS nti, s LIKE $pat AS par, "
        "s LIKE '%!_%' ESCAPE '!' AS esc, s LIKE '%\\%%' ESCAPE '\\' AS bs, s NOT LIKE '%\\%' ESCAPE '' AS none "
        "FROM paths ORDER BY k"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"paths": paths}, params={"pat": "%\\x"})
    assert duck.u.tolist()[:5] == [True, False, False, False, False] and duck.pc.tolist()[:5] == [True, False, False, False, True]
    assert duck.col.tolist()[:5] == [True, True, False, False, False] and duck.icol.tolist()[4] and duck.par.tolist()[0]
    assert duck.esc.tolist()[:5] == [False, False, False, True, True] and duck.bs.tolist()[:5] == [False, False, False, True, False]
    pd.testing.assert_frame_equal(spark, duck)
    where = "SELECT k FROM paths WHERE s LIKE 'C:\\temp%' OR s ILIKE p ORDER BY k"
    duck, spark = _both((engine, spark_engine), where, frames={"paths": paths})
    assert duck.k.tolist() == [1, 2, 5]
    pd.testing.assert_frame_equal(spark, duck)


STRFTIME_CODES = "%Y %m %d %H %M %S %f %g %n %y %-y %b %h %B %a %A %p %I %j %-j %-d %-m %-H %-I %-M %-S %c %x %X %T %U %W %w %u %V %G %z %Z %%".split()


def test_strftime_codes_write_what_duckdb_writes(engine, spark_engine):
    """sqlglot's Java patterns wrote some of DuckDB's strftime codes otherwise: ``%j`` as 65
    (DuckDB: 065), ``%Z`` of a TIMESTAMP as 'UTC' (DuckDB: ''), ``%w``, ``%U``, ``%G``...
    as the code's text, and the format's own words as pattern letters. Each code, and text
    around codes, now writes DuckDB's text for dates and times around New Year (where week
    numbers and ISO years turn), NULL for NULL."""
    rng = np.random.default_rng(3)
    days = pd.to_datetime([f"{year}-12-{day}" for year in range(2018, 2026) for day in (28, 29, 30, 31)] + ["2021-01-01", "2021-01-03", "2024-01-01"])
    moments = days + pd.to_timedelta(rng.integers(0, 86_400_000_000, len(days)), unit="us")
    times = pd.DataFrame({"id": np.arange(len(days) + 1), "t": [*moments, None], "d": [*days.date, None]})
    codes = [f"strftime(t, '{code}') AS t{i}, strftime(d, '{code}') AS d{i}" for i, code in enumerate(STRFTIME_CODES)]
    sql = f"SELECT id, {', '.join(codes)}, strftime(t, 'Year %Y, day %j (it''s %A) at %-I:%M %p') AS text FROM times ORDER BY id"
    duck, spark = _both((engine, spark_engine), sql, frames={"times": times})
    row = duck.set_index("id").loc[len(days) - 1]  # 2024-01-01, a Monday
    assert [row[f"d{STRFTIME_CODES.index(code)}"] for code in ("%j", "%U", "%W", "%V", "%G", "%w", "%u", "%z", "%Z")] == [
        "001", "00", "01", "01", "2024", "1", "1", "+00", ""]
    assert duck.text.tolist()[-2].startswith("Year 2024, day 001 (it's Monday) at ") and duck.iloc[-1, 1:].isna().all()
    pd.testing.assert_frame_equal(spark, duck)
    zoned = pd.DataFrame({"t": pd.to_datetime(["2024-01-05 13:02:03"]).tz_localize("UTC")})
    for sql, said in (
        ("SELECT strftime(t, '%e') AS s FROM times", "strftime code %e has no Spark form"),
        ("SELECT strftime(t, $fmt) AS s FROM times", "strftime needs a text literal format on the spark engine"),
        ("SELECT strftime(t, '%H %Z') AS s FROM zoned", "strftime %Z of a TIMESTAMP WITH TIME ZONE is DuckDB-only on the spark engine"),
    ):
        with pytest.raises(SqlError, match=said) as refused:
            spark_engine.execute(sql, frames={"times": times, "zoned": zoned}, params={"fmt": "%Y"})
        assert "\n" not in str(refused.value)


def test_result_dtypes_of_sums_ranks_date_parts_and_truncation_are_duckdbs(engine, spark_engine):
    """Values were equal but the frames' dtypes were not: a sum of integers is DuckDB's
    HUGEINT (float64 in the DuckDB engine's frame; Spark: int64), ranks, row numbers, tiles
    and date parts BIGINTs (Spark: int32), ``extract(second ...)`` whole seconds (Spark: a
    DECIMAL with fractions), ``list_position`` an INTEGER and NULL when absent (Spark: an
    int64 0), ``trunc`` of a DOUBLE or FLOAT a DOUBLE or FLOAT (Spark: int64) and
    ``week(t)`` ISO's week (Spark: no such function)."""
    frame = pd.DataFrame(
        {
            "x": [3, 1, 2, 2],
            "g": [1, 1, 2, 2],
            "small": pd.array([1, 2, 3, 4], dtype="int32"),
            "d": [1.5, -2.5, np.inf, 7.0],
            "f": np.array([1.5, -2.5, 3.7, -0.2], dtype="float32"),
            "t": pd.to_datetime(["2024-01-01 10:00:01.5", "2024-12-30 23:59:59", "2023-06-15 00:00:00", "2021-01-03 12:30:00"], format="ISO8601"),
            "l": [[1, 2], [3, 4], [5], [3]],
        }
    )
    sql = (
        "SELECT x, rank() OVER (ORDER BY x) AS r, dense_rank() OVER (ORDER BY x) AS dr, row_number() OVER (ORDER BY x) AS rn, "
        "ntile(2) OVER (ORDER BY x) AS nt, sum(x) OVER (PARTITION BY g) AS running, hour(t) AS h, minute(t) AS mi, "
        "second(t) AS s, year(t) AS y, month(t) AS mo, day(t) AS dd, dayofyear(t) AS doy, quarter(t) AS q, week(t) AS w, "
        "extract(second FROM t) AS es, extract(hour FROM t) AS eh, date_part('week', t) AS pw, list_position(l, 3) AS lp, "
        "trunc(d) AS td, trunc(f) AS tf, trunc(small) AS ts FROM frame ORDER BY x, d"
    )
    duck, spark = _both((engine, spark_engine), sql, frames={"frame": frame})
    assert str(duck.r.dtype) == str(duck.h.dtype) == "int64" and str(duck.running.dtype) == "float64"
    assert duck.lp.isna().tolist() == [False, False, True, True] and str(duck.tf.dtype) == "float32"
    assert duck.w.tolist() == [1, 53, 24, 1] and duck.es.tolist()[-1] == 1 and duck.td.tolist()[2:] == [np.inf, 1.0]
    pd.testing.assert_frame_equal(spark, duck)
    totals = "SELECT g, sum(x) AS s, sum(small) AS s32, sum(DISTINCT x) AS sd, sum(d) AS sf FROM frame GROUP BY g UNION ALL SELECT 9, 4, 4, 4, 4 ORDER BY g"
    duck, spark = _both((engine, spark_engine), totals, frames={"frame": frame})
    assert str(duck.s.dtype) == str(duck.s32.dtype) == "float64" and duck.s.tolist() == [4.0, 4.0, 4.0]
    pd.testing.assert_frame_equal(spark, duck)


def test_strptime_reads_what_duckdb_reads(engine, spark_engine):
    """DuckDB's strptime formats on Spark: the format's own text is text (sqlglot left
    ``Date:``'s letters as Java pattern letters), ``%j`` reads a day of the year of three
    digits (``DD`` read 065 as nothing: NULL), numbers are read with or without their
    leading zeros, and a list of formats or a code Spark cannot read fails in one line."""
    texts = pd.DataFrame({
        "id": np.arange(3),
        "labelled": ["Date: 2024-05-19", "Date: 1999-12-31", None],
        "yearday": ["2024 065", "2023 365", "2024 001"],
        "spoken": ["May 9 2024 07:05 PM", "Dec 31 1999 11:59 AM", "Jan 1 2000 12:00 AM"],
        "short": ["9/5/2024", "31/12/1999", "01/01/2000"],
    })
    sql = ("SELECT id, strptime(labelled, 'Date: %Y-%m-%d') AS labelled, strptime(yearday, '%Y %j') AS yearday, "
           "strptime(spoken, '%b %-d %Y %I:%M %p') AS spoken, strptime(short, '%d/%m/%Y') AS short "
           "FROM texts ORDER BY id")
    duck, spark = _both((engine, spark_engine), sql, frames={"texts": texts})
    assert str(duck.yearday[0]) == "2024-03-05 00:00:00" and str(duck.spoken[0]) == "2024-05-09 19:05:00"
    assert str(duck.short[0]) == "2024-05-09 00:00:00" and duck.labelled.isna().tolist() == [False, False, True]
    pd.testing.assert_frame_equal(spark, duck)
    _refused_in_one_line(spark_engine, {"texts": texts}, [
        ("SELECT strptime(short, ['%d/%m/%Y', '%Y']) AS r FROM texts", "strptime needs one text literal format"),
        ("SELECT strptime(short, '%U %Y') AS r FROM texts", "strptime code %U has no Spark form"),
    ])


def test_sign_is_a_tinyint_as_on_duckdb(engine, spark_engine):
    """DuckDB's ``sign(x)`` is a TINYINT (int8) for integers, DOUBLEs, FLOATs and DECIMALs,
    0 for NaN; Spark's SIGN (signum) was a DOUBLE (float64), NaN for NaN."""
    frame = pd.DataFrame({
        "i": pd.array([3, -2, 0, None], dtype="Int32"),
        "b": np.array([3, -2, 0, 5], dtype="int64"),
        "d": [1.5, -0.0, 2.0, -np.inf],
        "m": [1.25, 0.5, -3.0, 1.0],
        "f": np.array([1.5, -2, 0, np.inf], dtype="float32"),
    })
    sql = ("SELECT sign(i) AS i, sign(b) AS b, sign(d) AS d, sign(f) AS f, sign(CAST(m AS DECIMAL(9, 2)) - 1) AS m, "
           "sign(i + b) AS s, sign(CAST('NaN' AS DOUBLE)) AS nan FROM frame ORDER BY b")
    duck, spark = _both((engine, spark_engine), sql, frames={"frame": frame})
    assert {str(dtype).lower() for dtype in duck.dtypes} == {"int8"} and duck.nan.tolist() == [0, 0, 0, 0]
    pd.testing.assert_frame_equal(spark, duck)


def test_what_is_computed_from_an_integer_sum_is_float64_as_on_duckdb(engine, spark_engine):
    """DuckDB's sum of integers is a HUGEINT (float64 in its frame), and so is what is
    computed from one: ``sum(x) + 1``, a CASE or COALESCE of it, a CTE's or subquery's sum
    read by the outer query (by name or through a star), a window over such sums, and
    DuckDB's count_if (a HUGEINT too). Spark cast only a sum that was itself a result
    column; the others came back int64. A cast to BIGINT and a quotient keep their own
    types, as on DuckDB."""
    frame = pd.DataFrame({"x": [3, 1, 2, 2], "g": [1, 1, 2, 2], "small": pd.array([1, 2, 3, None], dtype="Int32")})
    cells = [
        "SELECT g, sum(x) + 1 AS a, -sum(small) AS b, abs(sum(x)) AS c, coalesce(sum(small), 0) AS d, "
        "CASE WHEN g > 1 THEN sum(x) ELSE 0 END AS e, sum(x) // 2 AS f, sum(x) % 2 AS h, count(*) + sum(x) AS i, "
        "sum(x) / 2 AS j, CAST(sum(x) AS BIGINT) AS k, count_if(x > 1) AS l, count_if(x > 1) + 1 AS m FROM frame GROUP BY g ORDER BY g",
        "WITH t AS (SELECT g, sum(x) AS s FROM frame GROUP BY g) SELECT g, s, s + 1 AS s1, max(s) OVER () AS m, "
        "sum(s) OVER () AS total FROM t ORDER BY g",
        "WITH t AS (SELECT g, sum(x) AS s FROM frame GROUP BY g) SELECT * FROM t ORDER BY g",
        "SELECT q.*, q.S * 2 AS twice FROM (SELECT g, sum(x) AS S, count(*) AS n FROM frame GROUP BY g) AS q ORDER BY g",
        "SELECT s, count(*) AS n FROM (SELECT sum(x) AS s FROM frame GROUP BY g) GROUP BY s "
        "UNION ALL SELECT 9, 1 ORDER BY s",
        "SELECT g, count_if(x > 1) AS c FROM frame GROUP BY g ORDER BY g",
    ]
    for sql in cells:
        duck, spark = _both((engine, spark_engine), sql, frames={"frame": frame})
        assert "float64" in set(duck.dtypes.astype(str)) and "int64" in set(duck.dtypes.astype(str)), sql
        pd.testing.assert_frame_equal(spark, duck, obj=sql)


def test_similar_to_and_like_escape_read_as_on_duckdb(engine, spark_engine):
    """Spark has no ``SIMILAR TO`` (a syntax error) nor ``like_escape`` (an unknown routine):
    SIMILAR TO and regexp_full_match match the whole text (RLIKE anchored at both ends, a
    ``.`` refusing only a newline, as RE2's: Java's also refused ``\\r``), like_escape and
    its NOT / ILIKE siblings are the LIKE ... ESCAPE they mean. An escape before an
    ordinary character makes it ordinary, as on DuckDB (Spark refused it: ESC_IN_THE_MIDDLE)."""
    texts = pd.DataFrame({
        "s": ["abc", "xabc", "a\nc", "a\rc", "ab\n", None, "a_c", "a%c", "A_C", "a$c", "a\\c"],
        "p": ["a.c", "b", "a.c", "a.c", "ab$", "a", "a.c", "x", ".*", "a\\$c", "a\\\\c"],
    })
    cells = [
        "SELECT s, s SIMILAR TO 'a.c' AS a, s NOT SIMILAR TO 'a.c' AS b, s SIMILAR TO p AS c, "
        "regexp_full_match(s, '(?i)a.C') AS d, s SIMILAR TO 'ab$' AS e, s SIMILAR TO 'a|x.*' AS f FROM texts",
        "SELECT s, like_escape(s, 'a$_c', '$') AS a, not_like_escape(s, 'a$_c', '$') AS b, ilike_escape(s, 'a#_c', '#') AS c, "
        "not_ilike_escape(s, 'a#_c', '#') AS d, like_escape(s, 'a\\_c', '') AS e, like_escape(s, '$a$%c', '$') AS f, "
        "s LIKE 'a#$c' ESCAPE '#' AS g FROM texts",
    ]
    for sql in cells:
        duck, spark = _both((engine, spark_engine), sql, frames={"texts": texts})
        assert sum(bool(duck[column].any()) for column in duck.columns[1:]) >= len(duck.columns) - 2, sql  # not all False
        pd.testing.assert_frame_equal(spark, duck, obj=sql)
    _refused_in_one_line(spark_engine, {"texts": texts}, [
        ("SELECT like_escape(s, 'a$_c', p) AS r FROM texts", "like_escape needs a text literal"),
        ("SELECT regexp_full_match(s, 'a.c', 'i') AS r FROM texts", "regexp_full_match options are DuckDB-only"),
    ])


def test_list_and_text_slices_read_as_on_duckdb(engine, spark_engine):
    """``l[a:b]`` / ``s[a:b]`` were a syntax error on Spark, and ``array_slice(l, a, b)`` became
    Spark's SLICE, which reads ``b`` as a length (silently other elements). Each is now
    DuckDB's slice: both bounds included, 1-based, negative from the end, clamped at both
    ends, a missing bound the first or last, NULL for a NULL bound; over every pair of
    bounds, of a list and of a text (``||`` of lists is a list); ``l[:b]`` is a slice (sqlglot
    read it as ``l[$b]``, the notebook variable's element). A step fails in one line."""
    bounds = [0, 1, 2, -1, -2, -5, -6, 5, 6, None]
    pairs = [(a, b) for a in bounds for b in bounds]
    frame = pa.table({
        "id": list(range(len(pairs) + 2)),
        "l": [[10, 20, 30, 40, 50]] * len(pairs) + [None, []],
        "s": ["héllo"] * len(pairs) + [None, ""],
        "a": [a for a, _ in pairs] + [1, 1],
        "b": [b for _, b in pairs] + [2, 2],
    })
    cells = [
        "SELECT id, l[a:b] AS x, s[a:b] AS y, list_slice(l, a, b) AS z, array_slice(s, a, b) AS w FROM frame ORDER BY id",
        "SELECT id, l[2:3] AS a, l[:2] AS b, l[2:] AS c, l[:] AS d, l[-2:] AS e, l[:-2] AS f, l[0:1] AS g, l[-7:2] AS h, "
        "s[2:3] AS i, s[-3:] AS j, array_slice(l, 2, 3) AS k, l[a:] AS m, l[:b] AS n, (l || l)[4:7] AS o, (s || s)[4:7] AS p "
        "FROM frame ORDER BY id",
    ]
    for sql in cells:  # ``b`` a notebook variable too: l[:b] is the column's slice, not l[$b]
        duck, spark = _both((engine, spark_engine), sql, frames={"frame": frame}, params={"b": 1})
        assert duck.iloc[:, 1:].map(len, na_action="ignore").stack().nunique() > 3, sql
        pd.testing.assert_frame_equal(spark, duck, obj=sql)
    _refused_in_one_line(spark_engine, {"frame": frame}, [
        ("SELECT l[1:5:2] AS r FROM frame", "a slice with a step (l[a:b:c]) is DuckDB-only"),
    ])


def test_union_by_name_reads_as_on_duckdb(engine, spark_engine):
    """``UNION [ALL] BY NAME`` was a syntax error on Spark: now each side's columns are
    matched by name (ignoring case), the left side's in order then the right side's others,
    NULL where a side lacks one, through stars, chained and under an outer query. A side
    whose column has no name fails in one line."""
    t = pd.DataFrame({"id": [1, 2], "name": ["a", "b"], "x": [1.5, 2.5]})
    u = pd.DataFrame({"x": [9.5], "ID": [3], "extra": ["e"]})
    cells = [
        "SELECT * FROM t UNION ALL BY NAME SELECT * FROM u ORDER BY id",
        "SELECT id, name FROM t UNION BY NAME SELECT name, id FROM t ORDER BY id",
        "SELECT id, x FROM t UNION ALL BY NAME SELECT x, id AS \"Id\" FROM u UNION ALL BY NAME SELECT 7 AS other, 8 AS id ORDER BY id",
        "SELECT * FROM (SELECT id FROM t UNION ALL BY NAME SELECT extra FROM u) ORDER BY id",
    ]
    for sql in cells:
        duck, spark = _both((engine, spark_engine), sql, frames={"t": t, "u": u})
        assert len(duck) >= 2, sql
        pd.testing.assert_frame_equal(spark, duck, obj=sql)
    _refused_in_one_line(spark_engine, {"t": t, "u": u}, [
        ("SELECT id + 1 FROM t UNION ALL BY NAME SELECT id FROM u", "UNION BY NAME needs each side's columns named"),
    ])


def test_glob_reads_as_on_duckdb(engine, spark_engine):
    """``GLOB`` was a syntax error on Spark: a literal pattern is now the regular expression
    matching the same whole texts (``*``, ``?``, escapes, sets, ``[!...]``, ranges, a set
    never closed), over random texts and patterns of wildcards, regex metacharacters,
    accents, an emoji and line ends, with NULL. A pattern that is not a literal fails in
    one line."""
    rng = np.random.default_rng(5)
    alphabet = list("abz*?[]!-\\^.$(){}|+&'") + ["é", "😀", "\n", "A", "%", "_", "\r"]

    def word(longest: int) -> str:
        return "".join(rng.choice(alphabet, rng.integers(0, longest + 1)))

    texts = pd.DataFrame({"s": [word(6) for _ in range(150)] + [None, "abc", "a*"]})
    texts["id"] = np.arange(len(texts))
    patterns = [word(7) for _ in range(50)] + ["*", "a*", "?", "[a-z]*", "[!a]*", "*\\*", "[]a]*", "a[b", "\\"]
    shown = ", ".join(f"s GLOB '{pattern.replace(chr(39), chr(39) * 2)}' AS g{i}" for i, pattern in enumerate(patterns))
    sql = f"SELECT id, {shown}, s NOT GLOB 'a*' AS n FROM texts ORDER BY id"
    duck, spark = _both((engine, spark_engine), sql, frames={"texts": texts})
    assert duck.iloc[:, 1:].sum().sum() > 100 and duck.n.isna().sum() == 1
    pd.testing.assert_frame_equal(spark, duck)
    _refused_in_one_line(spark_engine, {"texts": texts}, [
        ("SELECT s GLOB s AS r FROM texts", "GLOB needs a text literal pattern"),
    ])


@pytest.fixture
def cased() -> dict[str, pd.DataFrame]:
    """Notebook frames whose column names mix letter case."""
    people = pd.DataFrame({"id": [1, 2, 3], "Age": [30.0, 60.0, 70.0], "income": [1.0, 2.0, 3.0], "Grp": ["a", "b", "a"]})
    return {"people": people, "other": pd.DataFrame({"ID": [1, 2], "Name": ["x", "y"]})}


def _same_names(engines, cells: list[str], frames: dict[str, pd.DataFrame], **kwargs) -> None:
    for sql in cells:
        duck, spark = _both(engines, sql, frames=frames, **kwargs)
        assert list(spark.columns) == list(duck.columns), sql
        pd.testing.assert_frame_equal(spark, duck, obj=sql)


def test_a_column_written_in_other_case_is_named_as_stored_as_on_duckdb(engine, spark_engine, cased):
    """DuckDB names a column referenced in other letter case as its table stores it (``a``
    for ``SELECT A``, ``Age`` for ``age``), through joins, GROUP BY, subqueries and CTEs,
    and an alias or ``*`` as written or stored; Spark named them as the query wrote them."""
    for each in (engine, spark_engine):
        each.execute("CREATE TABLE t (a INTEGER, Bc INTEGER)")
        each.execute("INSERT INTO t VALUES (1, 2), (3, 4)")
    _same_names((engine, spark_engine), [
        "SELECT A, bC FROM t ORDER BY a",
        'SELECT t.A, "BC" FROM t ORDER BY a',
        "SELECT a AS Foo, * FROM t ORDER BY a",
        "SELECT ID, age, GRP FROM people ORDER BY id",
        "SELECT grp, sum(Income) AS total FROM people GROUP BY GRP ORDER BY GRP",
        "SELECT p.ID, o.name FROM people p JOIN other o ON p.id = o.id ORDER BY 1",
        "SELECT * FROM people p JOIN other o ON p.id = o.id ORDER BY 1",
        "WITH c AS (SELECT ID AS Key, AGE FROM people) SELECT key, age FROM c ORDER BY 1",
        "WITH c AS (SELECT ID AS Key, AGE FROM people) SELECT * FROM c ORDER BY 1",
        "SELECT sub.X FROM (SELECT id AS x FROM people) sub ORDER BY 1",
        "SELECT id FROM other AS o(ID, name) UNION ALL SELECT ID FROM people ORDER BY 1",
    ], cased)


def test_an_unaliased_expression_is_named_as_duckdb_names_it(engine, spark_engine, cased):
    """An expression without an alias is named by DuckDB's text of it (``count_star()``,
    ``'x'``, ``CAST(age AS INTEGER)``, ``$n``); Spark gave its own text, of its translation
    (``count(1)``, ``x``, ``CAST(bround(age, 0) AS INT)``)."""
    _same_names((engine, spark_engine), [
        "SELECT count(*), count(1), max(AGE), sum(Income) FROM people",
        "SELECT grp, count(*) FROM people GROUP BY GRP ORDER BY 1",
        "SELECT 1, 'x', 1.5, true, age + 1, AGE > 50, $n FROM people ORDER BY id",
        "SELECT CAST(age AS INT), age::DOUBLE, length(grp), coalesce(age, 0) FROM people ORDER BY id",
        "SELECT CASE WHEN age > 50 THEN 1 ELSE 0 END, row_number() OVER (ORDER BY id) FROM people ORDER BY id",
    ], cased, params={"n": 3})


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
def test_predictions_are_named_as_on_duckdb(engine, spark_engine, cased, optimize):
    """``predict(m, ...)`` is named as written beside columns named as stored; ``ML.PREDICT``
    over a query that names its columns in other case keeps DuckDB's names (scored as a
    relation, without the optimizer, Spark kept the query's ``ID``, ``AGE``)."""
    features = pd.DataFrame({"age": [30.0, 60.0, 70.0, 20.0], "income": [1.0, 2.0, 3.0, 4.0]})
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(features, [0, 1, 1, 0])
    for each in (engine, spark_engine):
        register(each, "m", model)
    _same_names((engine, spark_engine), [
        "SELECT ID, predict(m, age, income), predict(m, AGE, income).label FROM people ORDER BY id",
        "SELECT * FROM ML.PREDICT(MODEL m, (SELECT ID, AGE, Income FROM people)) ORDER BY id",
        "SELECT id, AGE, predicted_label FROM ML.PREDICT(MODEL m, (SELECT ID, AGE, Income FROM people)) ORDER BY id",
    ], cased, optimize=optimize)


def test_names_duckdb_cannot_work_out_are_sparks_and_say_so(spark_engine, spark_database):
    """A table DuckDB cannot stand in for (one named with its Spark catalog): the result
    keeps Spark's names, and a warning in the cell says so (never a silent difference)."""
    spark_engine.execute("CREATE TABLE t (a INTEGER)")
    spark_engine.execute("INSERT INTO t VALUES (1)")
    with pytest.warns(UserWarning, match="column names as Spark gives them"):
        result = spark_engine.execute(f"SELECT A FROM spark_catalog.{spark_database}.t")[-1]
    assert result.df is not None and list(result.df.columns) == ["A"]
    assert result.explain is not None and "another catalog" in result.explain


def test_a_table_or_view_made_from_a_query_stores_duckdbs_names(engine, spark_engine, cased):
    """``CREATE [TEMP|OR REPLACE] TABLE ... AS SELECT`` and ``CREATE VIEW ... AS SELECT`` store
    the columns as DuckDB names them, so ``SELECT *`` of it later reads the same names;
    Spark stored ``A``, ``count(1)`` (and refused a view of an unaliased expression)."""
    for each in (engine, spark_engine):
        each.execute("CREATE TABLE t (a INTEGER, Bc INTEGER)")
        each.execute("INSERT INTO t VALUES (1, 2), (3, 4)")
        each.execute("CREATE TABLE x1 AS SELECT A, count(*) FROM t GROUP BY A")
        each.execute("CREATE OR REPLACE TABLE x2 AS SELECT A, 'k', BC + 1 FROM t")
        each.execute("CREATE TEMP TABLE x3 AS SELECT ID, AGE FROM people", frames=cased)
        each.execute("CREATE VIEW v4 AS SELECT A, count(*) FROM t GROUP BY A")
    try:
        _same_names((engine, spark_engine), [
            "SELECT * FROM x1 ORDER BY 1", "SELECT * FROM x2 ORDER BY 1", "SELECT * FROM x3 ORDER BY 1", "SELECT * FROM v4 ORDER BY 1",
        ], {})
    finally:  # Spark's temporary views outlive the test's database
        spark_engine.execute("DROP TABLE IF EXISTS x3")
