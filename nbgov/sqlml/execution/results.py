"""A query's rows as a pandas DataFrame, without a Python object per nested value.

DuckDB's ``df()`` turns every STRUCT, LIST or MAP value into Python dicts and lists:
for ``predict(classifier, *)`` over a million rows (a STRUCT of a label and a list of
probabilities) that costs more than scoring the model. So a result with nested columns
is fetched once as Arrow: nested columns stay Arrow-backed (``pandas.ArrowDtype``, read
with ``.struct.field(...)`` / ``.list[...]``; one value still reads as a dict or list),
and the other columns go through DuckDB's own conversion (cast back to the query's
types), so they have the dtypes ``df()`` gives.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from nbgov.sqlml.sql.quoting import quote_ident

NESTED = frozenset({"struct", "list", "map", "array", "union"})  # DuckDB type ids


def result_frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None) -> pd.DataFrame:
    """The rows of the query ``sql`` as a DataFrame (its types are known before it runs)."""
    relation = con.sql(sql, params=params)
    types = list(relation.types)
    nested = [str(kind.id) in NESTED for kind in types]
    if not any(nested):  # DuckDB's own frame (its DB-API path has the least fixed cost)
        frame: pd.DataFrame = con.execute(sql, params).df()
        return frame
    table: pa.Table = relation.to_arrow_table()
    names = list(table.column_names)
    columns: dict[int, Any] = {
        i: pd.arrays.ArrowExtensionArray(table.column(i)) for i in range(len(names)) if nested[i]
    }
    scalar = [i for i in range(len(names)) if not nested[i]]
    if scalar:  # positional names: a result may repeat a column name
        subset = table.select(scalar).rename_columns([f"c{i}" for i in scalar])
        cast = ", ".join(f"CAST({quote_ident(f'c{i}')} AS {types[i]}) AS {quote_ident(f'c{i}')}" for i in scalar)
        converted = con.from_arrow(subset).project(cast).df()
        columns.update({i: converted[f"c{i}"].array for i in scalar})
    frame = pd.DataFrame({i: columns[i] for i in range(len(names))}, copy=False)
    frame.columns = pd.Index(unique_names(names))
    return frame


def unique_names(names: list[str]) -> list[str]:
    """Repeated column names suffixed as DuckDB's ``df()`` does (``i``, ``i_1``, ``i_2``)."""
    seen: set[str] = set()
    counts: dict[str, int] = {}
    unique: list[str] = []
    for name in names:
        candidate = name
        while candidate in seen:
            counts[name] = counts.get(name, 0) + 1
            candidate = f"{name}_{counts[name]}"
        seen.add(candidate)
        unique.append(candidate)
    return unique
