"""What compile may ask the engine (no data is read): how it parses a statement, and the
column names and types of a relation. Helper tables and functions that exist only once
the steps have run are described through typed stand-ins instead."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import sqlglot.expressions as exp

from nbgov.sqlml.engine_name import EngineName
from nbgov.sqlml.planning.prepared import Column, Query


@dataclass(frozen=True)
class Parsed:
    """The engine parser's view of a statement: its type and the ``$name`` parameters."""

    statement_type: str
    parameters: tuple[str, ...]


class Relations(Protocol):
    """Questions compile asks an engine; implemented by each executor."""

    engine: EngineName  # named in EXPLAIN notes, and by its key in the lineage activity
    dialect: str  # sqlglot dialect of the SQL it runs and of the type names it gives

    def parse(self, text: str) -> Parsed:
        """Raises ``SqlError`` with the engine's own message when ``text`` does not parse."""
        ...

    def columns(self, query: Query, params: Mapping[str, Any]) -> tuple[Column, ...]:
        """The columns of ``query``, without reading its rows; raises ``NbgovError``."""
        ...


@dataclass(frozen=True)
class StandIns:
    """Typed stand-ins for what the steps will create: tables (a query with the same
    columns and types and no rows) and scalar functions (their value type)."""

    tables: Mapping[str, exp.Expression]
    functions: Mapping[str, str]

    def apply(self, tree: exp.Expression) -> exp.Expression:
        """A copy of ``tree`` an engine can describe before any step has run."""
        if not self.tables and not self.functions:
            return tree

        def replace(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Table) and not node.db and node.name in self.tables:
                alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name, quoted=True))
                return exp.Subquery(this=self.tables[node.name].copy(), alias=alias.copy())
            if isinstance(node, exp.Anonymous) and str(node.this) in self.functions:
                return exp.Cast(this=exp.Null(), to=exp.DataType.build(self.functions[str(node.this)], dialect="duckdb"))
            return node

        return tree.transform(replace)


def select_all(relation: exp.Expression, alias: str) -> exp.Select:
    """``SELECT * FROM (relation) AS alias LIMIT 0``: the relation's columns, no rows."""
    source = exp.Subquery(this=relation, alias=exp.TableAlias(this=exp.to_identifier(alias)))
    return exp.select(exp.Star()).from_(source, copy=False).limit(0, copy=False)
