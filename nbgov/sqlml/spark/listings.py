"""DuckDB's answers to ``SHOW TABLES`` and ``DESCRIBE``, from Spark's catalog.

Spark names and shapes them otherwise (``namespace, tableName, isTemporary``; ``col_name,
data_type, comment`` with partition sections), and sqlglot cannot write DuckDB's ``SHOW
TABLES`` for Spark at all. A cell reads them as on DuckDB: a ``name`` column in order; and
``column_name, column_type`` (DuckDB's type names), ``null``, ``key``, ``default``,
``extra``. nbgov's model catalog table is not listed: ``SHOW MODELS`` lists models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import sqlglot.expressions as exp

from nbgov.sqlml.spark.catalog_store import TABLE as MODELS_TABLE
from nbgov.sqlml.spark.tables import NO_ARGS
from nbgov.sqlml.spark.typed import duckdb_type

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# sqlglot's DuckDB type words where DuckDB's own DESCRIBE says otherwise
_DUCKDB_WORDS = {"TEXT": "VARCHAR", "INT": "INTEGER", "REAL": "FLOAT", "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def shows_tables(tree: exp.Expression | None) -> bool:
    """Whether the statement is DuckDB's ``SHOW TABLES``."""
    return isinstance(tree, exp.Show) and str(tree.name).upper() == "TABLES"


def table_names(spark: SparkSession) -> pd.DataFrame:
    """The current database's tables and views (temporary ones too), by name, in order."""
    names = sorted({row.tableName for row in spark.sql("SHOW TABLES", args=NO_ARGS).collect()} - {MODELS_TABLE})
    return pd.DataFrame({"name": pd.Series(names, dtype=pd.StringDtype(na_value=float("nan")))})


def described(result: DataFrame) -> pd.DataFrame:
    """Spark's DESCRIBE rows as DuckDB's: one row per column, DuckDB's type names."""
    rows = [row for row in result.collect() if row.col_name and not row.col_name.startswith("#")]
    count = len(rows)
    text = pd.StringDtype(na_value=float("nan"))
    return pd.DataFrame(
        {
            "column_name": pd.Series([row.col_name for row in rows], dtype=text),
            "column_type": pd.Series([_duckdb_name(row.data_type) for row in rows], dtype=text),
            "null": pd.Series(["YES"] * count, dtype=text),
            "key": pd.Series([None] * count, dtype=object),
            "default": pd.Series([None] * count, dtype=object),
            "extra": pd.Series([None] * count, dtype=object),
        }
    )


def _duckdb_name(spark_type: str) -> str:
    """A Spark type as DuckDB's DESCRIBE writes it (``INTEGER[]``, ``DECIMAL(10,2)``)."""
    out: list[str] = []
    word: list[str] = []
    in_decimal = False
    for char in f"{duckdb_type(spark_type)} ":  # the space ends the last word
        if char.isalnum() or char == "_":
            word.append(char)
            continue
        if word:
            written = "".join(word)
            out.append(_DUCKDB_WORDS.get(written, written))
            in_decimal = in_decimal or written == "DECIMAL"
            word = []
        if char == ")":
            in_decimal = False
        if not (in_decimal and char == " "):
            out.append(char)
    return "".join(out).rstrip()
