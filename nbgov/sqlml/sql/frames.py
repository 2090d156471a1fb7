"""Make notebook DataFrames visible to DuckDB by variable name, for one statement.

DuckDB 2.0 only finds Python objects in the calling frame, so the engine registers
the objects a statement reads from (pandas/polars DataFrames, pyarrow Tables, numpy
record arrays) and unregisters them afterwards. Existing tables and views win; the
database is asked for them only when a name the statement reads is a notebook variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import sqlglot.expressions as exp

from nbgov.errors import NbgovError, SqlmlError
from nbgov.sqlml.sql.parse import parse
from nbgov.sqlml.sql.references import written_tables
from nbgov.sqlml.sql.statements import Statement, rewrite_extensions, tokenize
from nbgov.sqlml.sql.text_dictionaries import TextDictionaries


def as_relation_source(value: Any) -> Any | None:
    """What con.register accepts for ``value``, or None if it is not table-like."""
    module = type(value).__module__.split(".")[0]
    if module == "pandas" and type(value).__name__ == "DataFrame":
        return value
    if module == "polars" and type(value).__name__ in ("DataFrame", "LazyFrame"):
        return polars_arrow(value.collect() if type(value).__name__ == "LazyFrame" else value)
    if isinstance(value, (pa.Table, pa.RecordBatch)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.names:
        import pandas as pd

        return pd.DataFrame.from_records(value)
    return None


def polars_arrow(frame: Any) -> pa.Table:
    """A polars DataFrame as Arrow, its text read in place as string views when every column
    is text, a number, a boolean or a time (polars' default export copies each string into a
    ``large_string`` array: 11 ms a statement for two text columns of 1M rows). DuckDB reads
    a view as the same VARCHAR; other dtypes keep the default export."""
    import polars as pl

    def plain(dtype: Any) -> bool:
        return bool(
            dtype == pl.String or dtype == pl.Boolean or dtype.is_integer() or dtype.is_float() or dtype.is_temporal()
        )

    levels = getattr(pl, "CompatLevel", None)  # polars >= 1.1
    if levels is not None and all(plain(dtype) for dtype in frame.schema.values()):
        return frame.to_arrow(compat_level=levels.newest())
    return frame.to_arrow()


def scan_source(source: Any, columns: frozenset[str] | None, texts: TextDictionaries | None) -> Any:
    """What DuckDB scans for a notebook frame (``as_relation_source``'s value): an Arrow table
    (pyarrow, polars) with the repetitive text columns among ``columns`` dictionary-encoded;
    a pandas DataFrame likewise when one of its text columns is encoded, else the frame for
    DuckDB's own pandas scan (numbers read in place)."""
    if texts is None:
        return source
    if isinstance(source, pa.Table):
        return texts.table(source, columns)
    if type(source).__name__ == "DataFrame" and type(source).__module__.split(".")[0] == "pandas":
        table = texts.frame(source, columns)
        if table is not None:
            return table
    return source


@dataclass(frozen=True)
class FrameNames:
    """The names a statement reads tables by. ``exact``: read from its parsed tree; else
    every identifier of its text (when it does not parse), an over-approximation."""

    names: tuple[str, ...]
    exact: bool
    columns: frozenset[str] | None = None  # lower-cased column names it reads (None: any, as with *)


class FrameScope:
    """Registers the named frames on enter and removes them on exit. A name the statement
    reads from that is a notebook variable but not a table (a list, a dict...) is an error
    naming what it is, unless the database has a table or view of that name."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, frames: Mapping[str, Any] | None, names: FrameNames,
        texts: TextDictionaries | None = None,
    ):
        self._con = con
        self._frames = frames or {}
        self._names = names
        self._texts = texts
        self.registered: list[str] = []

    def __enter__(self) -> FrameScope:
        wanted = [name for name in dict.fromkeys(self._names.names) if name in self._frames]
        through_views = [
            name for name in views_read(self._con, self._names.names, self._frames) if name not in wanted
        ]
        if not wanted and not through_views:
            return self
        existing = existing_relations(self._con, wanted + through_views)
        try:
            for name in wanted + through_views:
                if name.lower() in existing:
                    continue
                source = as_relation_source(self._frames[name])
                if source is None:
                    if self._names.exact and name in wanted:
                        raise SqlmlError(not_a_table(name, self._frames[name]))
                    continue
                columns = self._names.columns if name in wanted else None
                self._con.register(name, scan_source(source, columns, self._texts))
                self.registered.append(name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        unregister_views(self._con, self.registered)
        self.registered.clear()


def unregister_views(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    """Remove the views nbgov registered for one statement; one already gone is no error
    (an error on the way out must not hide the statement's own)."""
    for name in names:
        try:
            con.unregister(name)
        except duckdb.Error:
            pass



def views_read(con: duckdb.DuckDBPyConnection, names: tuple[str, ...], frames: Mapping[str, Any]) -> list[str]:
    """Notebook frames read through the database's views among ``names``, views of views
    too. A view over a frame (``CREATE VIEW recent AS SELECT * FROM df``) is stored reading
    ``df`` by name, and frames are visible only while a statement that names them runs:
    every later ``SELECT ... FROM recent`` failed with "Table with name df does not exist!".
    Asked of the catalog only for names that are views (DuckDB 2 answers that from memory)."""
    table_kind = getattr(con, "_table_kind", None)
    if table_kind is None or not frames:
        return []
    found: list[str] = []
    seen: set[str] = set()
    pending = [name for name in dict.fromkeys(names) if name not in frames]
    while pending:
        name = pending.pop()
        if name.lower() in seen or table_kind(name) != "view":
            continue
        seen.add(name.lower())
        rows = con.execute(
            "SELECT sql FROM duckdb_views() WHERE NOT internal AND lower(view_name) = lower(?) "
            "AND schema_name = current_schema()",
            [name],
        ).fetchall()
        for (sql,) in rows:
            for read in _frame_candidates(str(sql).strip().rstrip(";")).names:
                if read in frames:
                    if read not in found:
                        found.append(read)
                else:
                    pending.append(read)
    return found


def existing_relations(con: duckdb.DuckDBPyConnection, names: list[str]) -> set[str]:
    """Which of ``names`` (lower-cased) already name a table or view of the database.

    DuckDB 2 answers from its catalog without running a statement (microseconds, where
    the catalog query below costs a statement per query that reads a notebook frame);
    older versions are asked with that query.
    """
    table_kind = getattr(con, "_table_kind", None)
    if table_kind is not None:
        return {name.lower() for name in names if table_kind(name) != "none"}
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = current_schema() "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = current_schema()"
    ).fetchall()
    return {str(r[0]).lower() for r in rows}


def not_a_table(name: str, value: Any) -> str:
    """One line saying what ``value`` is and which notebook objects a query can read."""
    kind = type(value)
    what = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return (
        f"{name!r} is a {what}, not a table: FROM and JOIN read notebook variables that are pandas or "
        f"polars DataFrames, pyarrow Tables or numpy record arrays (e.g. pandas.DataFrame({name}) first)"
    )


def frame_candidates(statement: Statement) -> FrameNames:
    """Names the statement (and its ML.PREDICT relations) reads tables by: the notebook
    objects of those names are the ones to make visible. CTEs and the table a statement
    writes are not read. Kept per statement text (a re-run pays no parse)."""
    return _frame_candidates(statement.text)


@lru_cache(maxsize=256)
def _frame_candidates(text: str) -> FrameNames:
    statement = Statement(text, tokenize(text))
    try:
        rewritten = rewrite_extensions(statement, "nbgov_probe_")
    except NbgovError:
        rewritten = None
    tree = parse(rewritten.text) if rewritten is not None else None
    if isinstance(tree, exp.Command) and isinstance(tree.expression, exp.Literal) and tree.expression.is_string:
        # EXPLAIN [ANALYZE] SELECT ... FROM frame: sqlglot keeps the rest of a command as one
        # string, so the frame it reads was never made visible ('Table with name frame does
        # not exist!'); the names are those of the statement the command is about.
        inner = _frame_candidates(tree.expression.name)
        return FrameNames((*inner.names, *(t.text for t in statement.tokens or () if t.text.isidentifier())), False)
    # the engine will report the error; over-approximate. sqlglot keeps what it cannot read
    # (CREATE TABLE t AS PIVOT frame ...) as an opaque Command: no table in it, none found.
    if rewritten is None or tree is None or isinstance(tree, exp.Command):
        return FrameNames(tuple(t.text for t in statement.tokens or () if t.text.isidentifier()), exact=False)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    targets = {id(table) for table in written_tables(tree)}
    names = [
        table.name
        for table in tree.find_all(exp.Table)
        if isinstance(table.this, exp.Identifier) and not table.db and id(table) not in targets
        and table.name.lower() not in ctes
    ]
    exact = True
    columns = _columns_read(tree)
    for call in rewritten.ml_predicts:
        inner = _frame_candidates(call.query)
        names.extend(inner.names)
        exact = exact and inner.exact
        columns = None if columns is None or inner.columns is None else columns | inner.columns
    return FrameNames(tuple(names), exact, columns)


def _columns_read(tree: exp.Expression) -> frozenset[str] | None:
    """Lower-cased names of the columns ``tree`` refers to; None when it may read any (a ``*``
    other than ``count(*)``'s)."""
    if any(not isinstance(star.parent, exp.Count) for star in tree.find_all(exp.Star)):
        return None
    return frozenset(column.name.lower() for column in tree.find_all(exp.Column))


def refuse_table_parameter(name: str, value: object) -> None:
    """A table given as ``$name`` (a DataFrame) is read by name, not bound: said in one line."""
    if as_relation_source(value) is not None:
        raise SqlmlError(
            f"parameter ${name} is a {type(value).__name__}, a table: read it by name (FROM {name}); "
            "$name binds a number, string, date or a list of them"
        )
