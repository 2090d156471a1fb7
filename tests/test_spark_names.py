"""``names.duckdb_names`` without Spark: the names DuckDB gives a query, worked out over
empty tables of the columns Spark describes (here given), or why they cannot be."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot

from nbgov.sqlml.spark.names import duckdb_names

TABLES = {"t": {"a": "INTEGER", "Bc": "INTEGER"}, "people": {"id": "BIGINT", "Age": "DOUBLE", "Grp": "VARCHAR"}}


def _names(sql: str, functions: dict[str, str] | None = None, params: dict | None = None):
    con = duckdb.connect()
    tree = sqlglot.parse_one(sql, read="duckdb")
    named = duckdb_names(con, tree, sql, functions or {}, params or {}, lambda table: TABLES.get(table.name.lower()))
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)  # rolled back
    return named


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT A, bc FROM t", ("a", "Bc")),
    ("SELECT count(*), 'x', max(age)::INT FROM people", ("count_star()", "'x'", "CAST(max(age) AS INTEGER)")),
    ("WITH c AS (SELECT ID AS Key, AGE FROM people) SELECT * FROM c", ("Key", "Age")),
    ("SELECT p.ID, $n FROM people p JOIN t ON p.id = t.A", ("id", "$n")),
])
def test_names_are_duckdbs(sql, expected):
    assert _names(sql, params={"n": 1}).names == expected


def test_an_all_aliased_query_needs_no_names_and_a_helper_call_binds_as_its_type():
    assert _names("SELECT a AS x, 1 AS y FROM t") == _names("SELECT 1 AS z")  # nothing to rename
    named = _names("SELECT nbgov_udf_1(a).label AS l, A FROM t WHERE nbgov_udf_1(a).label = 1", {"nbgov_udf_1": "STRUCT(label BIGINT)"})
    assert named.names == ("l", "a")


@pytest.mark.parametrize(("sql", "said"), [
    ("SELECT A FROM cat.db.t", "another catalog"),
    ("SELECT a FROM unknown_table", "does not describe"),
    ("SELECT * FROM 's3://bucket/x.parquet'", "by URL"),
    ("SELECT spark_only_function(a) FROM t", "spark_only_function"),
])
def test_names_that_cannot_be_worked_out_say_why(sql, said):
    named = _names(sql)
    assert named.names is None and said in named.missing, named
