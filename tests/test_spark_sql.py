"""DuckDB SQL on Spark: translation, parameters, notebook frames, errors, table identity."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import sqlglot

from nbgov.errors import ModelBindingError, SqlError, SqlmlError
from nbgov.sqlml.spark.dialect import DIALECT, bind_parameters, parameter_names
from nbgov.sqlml.spark.errors import spark_error
from nbgov.sqlml.spark.regex import capturing_groups, java_replacement
from nbgov.sqlml.spark.frames import FrameCache, SparkFrames, as_arrow
from nbgov.sqlml.sql.arrow_digest import arrow_digest
from nbgov.sqlml.spark.tables import table_content, table_identity
from nbgov.sqlml.sql.frames import FrameNames

pytestmark = pytest.mark.spark


def _spark_rows(spark, duckdb_sql: str, params: dict | None = None):
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    args = bind_parameters(parameter_names(tree), params or {})
    return spark.sql(tree.sql(dialect=DIALECT), args=args or None).toArrow().to_pylist()


def test_duckdb_dialect_runs_on_spark_with_the_same_results(spark):
    query = (
        "SELECT id, [id, id * 2, id * 3][2] AS second, {'a': id, 'b': 'x'}.a AS field, "
        "id // 2 AS half, CAST(id AS DOUBLE) / 4 AS quarter, id::VARCHAR || '!' AS text "
        "FROM t WHERE id % 2 = 0 ORDER BY id"
    )
    spark.range(6).createOrReplaceTempView("t")
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS id FROM range(6)")
    try:
        expected = con.execute(query)
        names = [d[0] for d in expected.description]
        assert _spark_rows(spark, query) == [dict(zip(names, row)) for row in expected.fetchall()]
    finally:
        spark.catalog.dropTempView("t")


def test_duckdb_file_tables_read_as_spark_file_tables(spark, tmp_path):
    path = tmp_path / "points.parquet"
    duckdb.sql("SELECT range AS id FROM range(3)").write_parquet(str(path))
    assert _spark_rows(spark, f"SELECT sum(id) AS s FROM '{path}'") == [{"s": 3}]


def test_parameters_are_bound_never_pasted(spark):
    tree = sqlglot.parse_one("SELECT * FROM t WHERE name = $who AND n > $low", read="duckdb")
    text = tree.sql(dialect=DIALECT)
    assert ":who" in text and ":low" in text and "O'Brien" not in text
    spark.createDataFrame(pa.table({"name": ["O'Brien", "x"], "n": [5, 1]})).createOrReplaceTempView("t")
    try:
        rows = _spark_rows(spark, "SELECT n FROM t WHERE name = $who AND n > $low", {"who": "O'Brien", "low": np.int64(2)})
        assert rows == [{"n": 5}]
        assert _spark_rows(spark, "SELECT count(*) AS c FROM t WHERE n IN (SELECT explode($ns))", {"ns": [1, 5]}) == [{"c": 2}]
        with pytest.raises(SqlmlError, match=r"^unknown parameter \$nobody: no notebook variable of that name$"):
            _spark_rows(spark, "SELECT * FROM t WHERE name = $nobody")
        with pytest.raises(SqlmlError, match=r"parameter \$who is a DataFrame"):
            _spark_rows(spark, "SELECT * FROM t WHERE name = $who", {"who": pd.DataFrame()})
        with pytest.raises(SqlmlError, match=r"positional parameter \$1 is not supported"):
            _spark_rows(spark, "SELECT * FROM t WHERE name = $1")
    finally:
        spark.catalog.dropTempView("t")


def test_notebook_frames_become_temporary_views_for_one_statement(spark):
    frames = {
        "pdf": pd.DataFrame({"k": [1, 2], "s": pd.array(["a", None], dtype="str")}),
        "plf": pl.DataFrame({"k": [3], "s": ["c"]}),
        "arw": pa.table({"k": [4], "s": pa.array(["d"], pa.large_string())}),
        "rec": np.array([(5, "e")], dtype=[("k", "i8"), ("s", "U1")]),
        "existing": pd.DataFrame({"k": [99]}),
    }
    spark.range(1).createOrReplaceTempView("existing")  # a Spark view of the same name wins
    try:
        with SparkFrames(spark, FrameCache(spark), frames, FrameNames(tuple(frames), exact=True)) as scope:
            assert scope.registered == ["pdf", "plf", "arw", "rec"]
            rows = spark.sql(
                "SELECT k, s FROM pdf UNION ALL SELECT k, s FROM plf UNION ALL SELECT k, s FROM arw "
                "UNION ALL SELECT k, s FROM rec UNION ALL SELECT id, 'view' FROM existing ORDER BY k"
            ).collect()
        assert [tuple(r) for r in rows] == [(0, "view"), (1, "a"), (2, None), (3, "c"), (4, "d"), (5, "e")]
        assert not any(spark.catalog.tableExists(n) for n in ["pdf", "plf", "arw", "rec"])
    finally:
        spark.catalog.dropTempView("existing")


def test_a_notebook_variable_that_is_not_a_table_is_named(spark):
    with pytest.raises(SqlmlError, match=r"^'limit' is a int, not a table"):
        with SparkFrames(spark, FrameCache(spark), {"limit": 42}, FrameNames(("limit",), exact=True)):
            pass


def test_a_frame_is_copied_to_spark_once_while_its_data_is_the_same(spark):
    cache = FrameCache(spark)
    frame = pd.DataFrame({"k": [1, 2, 3]})
    first = cache.frame(as_arrow(frame))
    assert cache.frame(as_arrow(frame.copy())) is first  # equal data, another object: reused
    frame.loc[0, "k"] = 10  # changed in place: copied again
    changed = cache.frame(as_arrow(frame))
    assert changed is not first and sorted(r.k for r in changed.collect()) == [2, 3, 10]
    sliced = pa.table({"k": [1, 2, 3, 4]}).slice(1, 3)
    assert arrow_digest(sliced) != arrow_digest(pa.table({"k": [1, 2, 3]}))


@pytest.mark.parametrize(
    ("sql", "pattern"),
    [
        ("SELECT * FROM no_such_table", r"^\[TABLE_OR_VIEW_NOT_FOUND\] The table or view `no_such_table` cannot be found"),
        ("SELEC 1", r"^\[PARSE_SYNTAX_ERROR\] Syntax error at or near 'SELEC'\. \(line 1, pos 0\)$"),
        ("SELECT CAST('x' AS DOUBLE) + id FROM range(2)", r"^\[CAST_INVALID_INPUT\] The value 'x'"),
    ],
)
def test_spark_errors_are_one_line_without_java(spark, sql, pattern):
    with pytest.raises(Exception) as caught:
        spark.sql(sql).collect()
    error = spark_error(caught.value)
    assert isinstance(error, SqlError)
    text = str(error)
    assert "\n" not in text and "org.apache" not in text and "SQLSTATE" not in text
    assert re.search(pattern, text), text


def test_an_nbgov_error_raised_on_an_executor_comes_back_as_itself(spark):
    from pyspark.sql.functions import udf

    def refuse(value: int) -> int:
        raise ModelBindingError(f"predict(m@1): row {value} cannot be scored; expected m@1(x float[N,1])")

    failing = udf(refuse, "int")
    with pytest.raises(Exception) as caught:
        spark.range(1).select(failing("id")).collect()
    error = spark_error(caught.value)
    assert type(error) is ModelBindingError
    assert str(error) == "predict(m@1): row 0 cannot be scored; expected m@1(x float[N,1])"


def test_table_identity_follows_the_files_of_a_table(spark, spark_database):
    spark.sql("CREATE TABLE visits (id BIGINT, n INT) USING parquet")
    spark.sql("INSERT INTO visits VALUES (1, 2)")
    first = table_identity(spark, "visits")
    assert first.provider == "parquet" and first.location and first.listing and first.reason is None
    assert not first.exact  # a file listing is not a version
    assert table_identity(spark, "visits") == first  # nothing changed: same identity
    spark.sql("INSERT INTO visits VALUES (3, 4)")
    second = table_identity(spark, "visits")
    assert second.location == first.location and second.listing != first.listing
    spark.sql("CREATE OR REPLACE TEMPORARY VIEW recent AS SELECT * FROM visits")
    try:
        view = table_identity(spark, "recent")
        assert view.listing is None and "a view" in (view.reason or "")
    finally:
        spark.catalog.dropTempView("recent")
    missing = table_identity(spark, "nowhere")
    assert missing.listing is None and missing.reason and missing.reason.startswith("could not read")


def test_table_content_of_a_written_table_is_its_rows_hash(spark, spark_database):
    spark.sql("CREATE TABLE a USING parquet AS SELECT id, id * 2 AS twice FROM range(5)")
    spark.sql("CREATE TABLE b USING parquet AS SELECT id, id * 2 AS twice FROM range(4, -1, -1)")
    first, second = table_content(spark, "a"), table_content(spark, "b")
    assert first.rows == 5 and first.hash and first.hash == second.hash  # same rows, any order
    spark.sql("INSERT INTO b VALUES (9, 9)")
    assert table_content(spark, "b").hash != first.hash
    gone = table_content(spark, "nowhere")
    assert gone.hash is None and "no longer exists" in (gone.reason or "")


@pytest.mark.parametrize(
    ("pattern", "groups"),
    [
        ("(a)(b)", 2),
        (r"(?:a)(?<name>b)(?=c)(?<=d)(?!e)(?<!f)", 1),
        (r"\(x\)[(]\Q((\E", 0),
        (r"[]()](x)[^]]", 1),
        (r"(?i)(a|(b))", 2),
    ],
)
def test_capturing_groups_are_counted_as_java_numbers_them(pattern: str, groups: int) -> None:
    """A first-match regexp_replace puts the rest of the text back as the group after the
    pattern's own: escapes, quoted text, classes and non-capturing groups do not count."""
    assert capturing_groups(pattern) == groups


def test_a_duckdb_replacement_reads_the_same_in_java() -> None:
    """RE2's ``\\1`` is Java's ``$1``; a ``$`` or a backslash stays itself."""
    assert java_replacement(r"<\1>$\\x") == r"<$1>\$\\x"
