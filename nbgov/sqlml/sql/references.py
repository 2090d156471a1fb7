"""The tables and files a parsed statement reads and writes, for lineage: read from the
sqlglot tree as written, before any rewrite moves its FROM into a scored relation."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import sqlglot.expressions as exp

from nbgov.sqlml.activity import unique

_FILE_READERS = {
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
    "read_ndjson", "read_ndjson_auto", "read_text", "read_blob", "read_xlsx",
}


@dataclass(frozen=True)
class References:
    """Names a statement reads and writes, in first-seen order."""

    tables_read: tuple[str, ...] = ()
    tables_written: tuple[str, ...] = ()
    files_read: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()

    def __add__(self, other: References) -> References:
        return References(
            unique(self.tables_read + other.tables_read),
            unique(self.tables_written + other.tables_written),
            unique(self.files_read + other.files_read),
            unique(self.files_written + other.files_written),
        )


def references(tree: exp.Expression, hidden: Collection[str] = ()) -> References:
    """What ``tree`` reads and writes; names in ``hidden`` (notebook frames, nbgov's helper
    tables), CTEs and ``nbgov*`` names are not tables."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables_read: list[str] = []
    tables_written: list[str] = []
    files_read: list[str] = []
    files_written: list[str] = []
    written: set[int] = set()
    for target in written_tables(tree):
        tables_written.append(_table_name(target))
        written.add(id(target))
    if isinstance(tree, exp.Copy):
        for file in tree.args.get("files") or []:
            if isinstance(file, exp.Literal) and file.is_string:
                (files_read if tree.args.get("kind") else files_written).append(str(file.this))
        if isinstance(tree.this, exp.Table) and tree.args.get("kind"):
            tables_written.append(_table_name(tree.this))
            written.add(id(tree.this))
    for func in tree.find_all(exp.Func):
        name = (func.sql_name() if not isinstance(func, exp.Anonymous) else str(func.this)).lower()
        if name in _FILE_READERS or type(func).__name__.lower() in _FILE_READERS:
            first = func.this if isinstance(func.this, exp.Expression) else (func.expressions or [None])[0]
            if isinstance(first, exp.Literal) and first.is_string:
                files_read.append(str(first.this))
    for table in tree.find_all(exp.Table):
        if id(table) in written or not isinstance(table.this, exp.Identifier):
            continue
        name = _table_name(table)
        if name.lower() in ctes or name in hidden or name.lower().startswith("nbgov"):
            continue
        if table.this.quoted and _looks_like_file(table.name) and not table.db:
            files_read.append(table.name)
        else:
            tables_read.append(name)
    return References(unique(tables_read), unique(tables_written), unique(files_read), unique(files_written))


def written_tables(tree: exp.Expression) -> list[exp.Table]:
    """The tables a CREATE, INSERT, UPDATE, DELETE, DROP or ALTER writes (or removes)."""
    if isinstance(tree, (exp.Create, exp.Insert)):
        if isinstance(tree.this, exp.Table):
            return [tree.this]
        target = tree.this.find(exp.Table) if isinstance(tree.this, exp.Expression) else None
        return [target] if target is not None else []
    if isinstance(tree, exp.Drop):
        return [t for t in tree.args.get("tables") or [] if isinstance(t, exp.Table)]
    if isinstance(tree, (exp.Update, exp.Delete, exp.Alter)):
        return [tree.this] if isinstance(tree.this, exp.Table) else []
    return []


def _looks_like_file(name: str) -> bool:
    return "." in name or "/" in name


def _table_name(table: exp.Table) -> str:
    parts = [p for p in (table.catalog, table.db, table.name) if p]
    return ".".join(parts)
