"""A query's result column names as the DuckDB engine gives them, for the Spark engine.

The engines name columns differently for the same SQL: DuckDB names a column referenced
in other letter case (``SELECT AGE``, ``t.A``, a CTE's ``AGE`` read by ``*``) as the table
stores it, Spark as written; an unaliased expression is ``count_star()``,
``'x'``, ``CAST(age AS INTEGER)`` on DuckDB and ``count(1)``, ``x``, Spark's own text of
its translation on Spark. DuckDB derives those names while binding, so the names are asked
of DuckDB itself: the statement's DuckDB text bound (never run) over empty tables of the
same names and columns as Spark reads them, in one transaction rolled back after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import sqlglot.expressions as exp

from nbgov.sqlml.execution.duckdb_executor import duckdb_value
from nbgov.sqlml.spark.dialect import reads_file
from nbgov.sqlml.sql.quoting import quote_ident

TableTypes = Callable[[exp.Table], "dict[str, str] | None"]


@dataclass(frozen=True)
class Names:
    """DuckDB's names for a result (``names`` None: keep Spark's; ``missing`` says why
    DuckDB's could not be worked out, empty when Spark's are already DuckDB's)."""

    names: tuple[str, ...] | None = None
    missing: str = ""


def duckdb_names(
    con: duckdb.DuckDBPyConnection,
    tree: exp.Expr,
    text: str,
    functions: Mapping[str, str],
    params: Mapping[str, Any],
    table_types: TableTypes,
) -> Names:
    """The names DuckDB gives the result of the query ``tree`` (``text``: its DuckDB SQL,
    as the DuckDB engine runs it). ``functions``: nbgov's helper functions in it and their
    value types (DuckDB has none of them: each call is bound as a typed NULL, which names
    nothing, since compile aliases every projection holding a model call). ``con`` holds no
    table of its own; what is made in it is rolled back."""
    if not isinstance(tree, exp.Query):
        return Names()
    aliased = _aliases(tree)
    if aliased is not None:  # every column named as written: the same on both engines
        return Names()
    query: exp.Query = tree
    if functions:
        query, text = _without_helpers(query, functions)
    ctes = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    tables: dict[tuple[str, str], exp.Table] = {}
    for table in query.find_all(exp.Table):
        if _remote(table):
            return Names(missing="the query reads a file by URL, which the names are not worked out over")
        if not isinstance(table.this, exp.Identifier) or reads_file(table):
            continue  # a table function or a file: DuckDB reads it as the DuckDB engine does
        if table.catalog:
            return Names(missing=f"{table.sql('spark')} is in another catalog")
        if not table.db and table.name.lower() in ctes:
            continue
        tables.setdefault((table.db.lower(), table.name.lower()), table)
    described: list[tuple[exp.Table, dict[str, str]]] = []
    for table in tables.values():
        columns = table_types(table)
        if columns is None:
            return Names(missing=f"Spark does not describe {table.sql('spark')}")
        described.append((table, columns))
    try:
        used = {node.name for node in tree.find_all(exp.Placeholder, exp.Parameter)}
        bound = {name: duckdb_value(name, params[name]) for name in used if name in params}
    except Exception as error:
        return Names(missing=_first_line(error))
    con.execute("BEGIN TRANSACTION")
    try:
        for table, columns in described:
            name = quote_ident(table.name)
            if table.db:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(table.db)}")
                name = f"{quote_ident(table.db)}.{name}"
            listed = ", ".join(f"{quote_ident(column)} {_creatable(kind)}" for column, kind in columns.items())
            con.execute(f"CREATE TABLE {name} ({listed})")
        return Names(tuple(con.sql(text, params=bound or None).columns))
    except Exception as error:  # a type or function DuckDB does not have, Spark-only SQL
        return Names(missing=_first_line(error))
    finally:
        con.execute("ROLLBACK")


def _remote(table: exp.Table) -> bool:
    """Whether ``table`` reads a file by URL (``s3://``, ``https://``...): DuckDB would load
    an extension and go over the network to describe it, for names only."""
    if isinstance(table.this, exp.Identifier) and "://" in table.this.name:
        return True
    return any(literal.is_string and "://" in str(literal.this) for literal in table.find_all(exp.Literal))


def _aliases(tree: exp.Query) -> list[str] | None:
    """The result's names when the query names each column with an alias (both engines
    keep an alias as written), else None."""
    while isinstance(tree, exp.SetOperation):
        tree = tree.this
    if not isinstance(tree, exp.Select):
        return None
    projections = tree.expressions
    if not projections or not all(isinstance(each, exp.Alias) for each in projections):
        return None
    return [each.alias for each in projections]


def _without_helpers(tree: exp.Query, functions: Mapping[str, str]) -> tuple[exp.Query, str]:
    """``tree`` with each helper function call a NULL of the function's type, and its DuckDB text."""
    types = {name.lower(): kind for name, kind in functions.items()}
    copied = tree.copy()
    for call in list(copied.find_all(exp.Anonymous)):
        kind = types.get(str(call.this).lower())
        if kind is not None:
            call.replace(exp.cast(exp.null(), exp.DataType.build(kind, dialect="duckdb")))
    return copied, copied.sql("duckdb")


def _creatable(kind: str) -> str:
    """A column type DuckDB can create: a Spark type sqlglot cannot name (``UNKNOWN``) as
    text, which names a column as well (a name is the expression's text, never its type)."""
    return "VARCHAR" if kind.upper() == "UNKNOWN" else kind


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
