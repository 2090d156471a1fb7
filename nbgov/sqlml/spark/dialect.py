"""Users write DuckDB SQL; Spark runs Spark SQL. sqlglot translates the tree, and
``$name`` parameters become Spark's named parameter markers (``:name``), bound by
``spark.sql(query, args=...)``: values never enter the SQL text."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from typing import Any

import numpy as np
import sqlglot.expressions as exp

from nbgov.errors import SqlmlError

# DuckDB reads ``FROM 'file.parquet'``; Spark's form is ``parquet.`file.parquet```.
_FILE_FORMATS = {".parquet": "parquet", ".orc": "orc", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
_SCALARS = (str, int, float, bool, bytes, decimal.Decimal, datetime.date, datetime.datetime)


def to_spark(tree: exp.Expression) -> str:
    """The Spark SQL text of a DuckDB statement tree (the tree is not changed)."""
    tree = tree.copy()
    for table in list(tree.find_all(exp.Table)):
        fmt = _file_format(table)
        if fmt is not None:
            table.set("db", exp.to_identifier(fmt))
    return tree.sql(dialect="spark")


def _file_format(table: exp.Table) -> str | None:
    identifier = table.this
    if table.db or not isinstance(identifier, exp.Identifier) or not identifier.quoted:
        return None
    name = identifier.name.lower()
    return next((fmt for ext, fmt in _FILE_FORMATS.items() if name.endswith(ext)), None)


def parameter_names(tree: exp.Expression) -> list[str]:
    """The ``$name`` parameters of a statement, in order of first use."""
    names: list[str] = []
    for node in tree.find_all(exp.Placeholder, exp.Parameter):
        name = node.name
        if name and name not in names:
            names.append(name)
    return names


def bind_parameters(names: list[str], params: Mapping[str, Any]) -> dict[str, Any]:
    """Spark ``args`` for the statement's parameters, from notebook variables."""
    bound: dict[str, Any] = {}
    for name in names:
        if name.isdigit():
            raise SqlmlError(f"positional parameter ${name} is not supported; use $name for a notebook variable")
        if name not in params:
            raise SqlmlError(f"unknown parameter ${name}: no notebook variable of that name")
        bound[name] = spark_value(name, params[name])
    return bound


def spark_value(name: str, value: Any) -> Any:
    """A value Spark binds as a literal: Python scalars as they are, numpy scalars as
    Python ones, lists and arrays as ARRAY literals."""
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)) and not (isinstance(value, np.ndarray) and value.ndim != 1):
        from pyspark.sql import functions as F

        items = value.tolist() if isinstance(value, np.ndarray) else list(value)
        return F.array(*[F.lit(spark_value(name, item)) for item in items])
    raise SqlmlError(
        f"parameter ${name} is a {type(value).__name__}; expected a number, string, date, bytes or a list of them"
    )
