"""The tables a statement's steps scored, made readable by its SQL for one run.

DuckDB 2's ``register``/``unregister`` each run a statement (parse, bind, plan: about
0.3 ms apiece, and each bumps the catalog version, so a cached plan had to be checked
again). Its source handles put an Arrow table under a generated name without a
statement and release it when the handle is dropped; the SQL then reads that name
(``Query.sql_reading``), the step's own name kept as the alias. A DuckDB without
source handles, or SQL kept as text, gets the tables registered under the steps' names.
"""

from __future__ import annotations

from typing import Any

import duckdb

from nbgov.sqlml.planning.prepared import Query
from nbgov.sqlml.sql.frames import unregister_views


class ScoredTables:
    """Step name -> the scored table, for one run on ``con``; ``close`` releases them all."""

    def __init__(self, con: duckdb.DuckDBPyConnection, dialect: str) -> None:
        self._con = con
        self._dialect = dialect
        self._handles: dict[str, tuple[Any, Any]] = {}  # step name -> (DuckDB source handle, the table)
        self._registered: list[str] = []  # step names registered as views (no handles, or a relation)

    def add(self, name: str, table: Any) -> None:
        """Make ``table`` (an Arrow table, or a DuckDB relation) readable as ``name``."""
        register_source = getattr(self._con, "_register_source", None)
        if register_source is not None and not isinstance(table, duckdb.DuckDBPyRelation):
            self._handles[name] = (register_source(table, None), table)
            return
        self._register(name, table)

    def sql(self, query: Query) -> str:
        """``query``'s SQL, reading the tables added so far. A text nbgov did not rewrite as a
        tree (DuckDB reads it byte for byte: a PIVOT sqlglot cannot read) finds them by
        their own names, registered as views."""
        if not self._handles:
            return query.sql(self._dialect)
        if query.tree is None:
            for name, (_, table) in list(self._handles.items()):
                self._register(name, table)
                del self._handles[name]
            return query.sql(self._dialect)
        return query.sql_reading(self._dialect, {name: handle.name for name, (handle, _) in self._handles.items()})

    def _register(self, name: str, table: Any) -> None:
        self._con.register(name, table)
        self._registered.append(name)

    def close(self) -> None:
        self._handles.clear()
        unregister_views(self._con, self._registered)
        self._registered.clear()
