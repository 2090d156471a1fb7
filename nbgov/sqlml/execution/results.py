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

import warnings
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from nbgov.sqlml.sql.quoting import quote_ident

NESTED = frozenset({"struct", "list", "map", "array", "union"})  # DuckDB type ids


_MEMO_LIMIT = 256


class ResultFetcher:
    """Fetches a query's rows as ``result_frame`` does, with one bind fewer for queries seen.

    Learning whether a result has nested columns costs a bind (``con.sql(...).types``), then
    a second one to run the query: about half a millisecond a query. Once a SQL text is known
    to give no nested column it is run at once through the DB-API and checked from the
    result's description (free); should its types have changed to nested meanwhile, its
    rows are read as Arrow from that same result (one extra copy, once) and the memo follows.
    """

    def __init__(self) -> None:
        self._flat: dict[str, bool] = {}  # SQL text -> its last result had no nested column

    def frame(
        self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None, key: str | None = None
    ) -> pd.DataFrame:
        """``key``: what the memo knows the statement by (default its text; a text whose
        table names change per run is known by its template)."""
        key = sql if key is None else key
        if self._flat.get(key):
            con.execute(sql, params)
            types = [column[1] for column in con.description or ()]
            nested = _nested(types)
            if not any(nested):
                frame: pd.DataFrame = con.df()
                return frame
            self._flat[key] = False
            with warnings.catch_warnings():  # the extra copy it warns of is this one result's
                warnings.simplefilter("ignore")
                return _arrow_frame(con, con.to_arrow_table(), types, nested)
        relation = con.sql(sql, params=params)
        types = list(relation.types)
        nested = _nested(types)
        if len(self._flat) >= _MEMO_LIMIT:
            self._flat.clear()
        self._flat[key] = not any(nested)
        if not any(nested):  # DuckDB's own frame (its DB-API path has the least fixed cost)
            flat: pd.DataFrame = con.execute(sql, params).df()
            return flat
        return _arrow_frame(con, relation.to_arrow_table(), types, nested)


def result_frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None) -> pd.DataFrame:
    """The rows of the query ``sql`` as a DataFrame (its types are known before it runs)."""
    return ResultFetcher().frame(con, sql, params)


def arrow_result_frame(con: duckdb.DuckDBPyConnection, table: pa.Table) -> pd.DataFrame:
    """Another engine's result rows (Arrow) as the DuckDB engine gives a query's: the same
    pandas dtypes (nullable integers and booleans, ``df()``'s conversions, nested columns
    Arrow-backed) and repeated names suffixed, so a cell reads its result the same way
    whichever engine ran it. ``con`` only converts (no table of its own is read)."""
    nested = [i for i, field in enumerate(table.schema) if _arrow_nested(field.type)]
    if nested:  # read back as DuckDB writes them: its Arrow types (nullable, child names) are the dtypes
        positional = table.select(nested).rename_columns([f"c{i}" for i in nested])
        read = con.from_arrow(positional).to_arrow_table()
        for i in nested:
            table = table.set_column(i, table.field(i).name, read.column(f"c{i}"))
    return _arrow_frame(con, table, None, [i in nested for i in range(table.num_columns)])


def _arrow_nested(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_struct(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind) or pa.types.is_map(kind) or pa.types.is_union(kind)
    )


def _nested(types: list[Any]) -> list[bool]:
    return [str(kind.id) in NESTED for kind in types]


def _arrow_frame(con: duckdb.DuckDBPyConnection, table: pa.Table, types: list[Any] | None, nested: list[bool]) -> pd.DataFrame:
    """Nested columns kept as Arrow, the others cast back to the query's types by DuckDB
    (``types`` None: converted from their Arrow types, as DuckDB reads them)."""
    names = list(table.column_names)
    columns: dict[int, Any] = {
        i: pd.arrays.ArrowExtensionArray(table.column(i)) for i in range(len(names)) if nested[i]
    }
    scalar = [i for i in range(len(names)) if not nested[i]]
    if scalar:  # positional names: a result may repeat a column name
        subset = table.select(scalar).rename_columns([f"c{i}" for i in scalar])
        relation = con.from_arrow(subset)
        if types is not None:
            relation = relation.project(
                ", ".join(f"CAST({quote_ident(f'c{i}')} AS {types[i]}) AS {quote_ident(f'c{i}')}" for i in scalar)
            )
        converted = relation.df()
        columns.update({i: converted[f"c{i}"].array for i in scalar})
    frame = pd.DataFrame({i: columns[i] for i in range(len(names))}, copy=False)
    frame.columns = pd.Index(unique_names(names))
    return frame


def unique_names(names: list[str]) -> list[str]:
    """Repeated column names suffixed as DuckDB's ``df()`` does (``i``, ``i_1``, ``i_2``),
    names that differ only in case being the same name to DuckDB (``id``, ``Id_1``)."""
    seen: set[str] = set()
    counts: dict[str, int] = {}
    unique: list[str] = []
    for name in names:
        candidate = name
        while candidate.lower() in seen:
            counts[name.lower()] = counts.get(name.lower(), 0) + 1
            candidate = f"{name}_{counts[name.lower()]}"
        seen.add(candidate.lower())
        unique.append(candidate)
    return unique
