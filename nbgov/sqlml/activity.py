"""What a statement read and wrote, for the lineage recorder (see BRIEF "engine → recorder")."""

from __future__ import annotations

from typing import Any

import sqlglot.expressions as exp

from nbgov.sqlml.plan import ModelVersion

_FILE_READERS = {
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
    "read_ndjson", "read_ndjson_auto", "read_text", "read_blob", "read_xlsx",
}


def new_activity(statement: str, kind: str) -> dict[str, Any]:
    return {
        "statement": statement,
        "kind": kind,
        "tables_read": [],
        "tables_written": [],
        "files_read": [],
        "files_written": [],
        "models": [],
        "frames": [],
        "params": [],
    }


def model_entry(model: ModelVersion) -> dict[str, Any]:
    return {
        "name": model.name,
        "version": model.version,
        "sha256": model.sha256,
        "producer": model.producer,
        "opset": model.opset,
    }


def add_model(activity: dict[str, Any], model: ModelVersion) -> None:
    entry = model_entry(model)
    if entry not in activity["models"]:
        activity["models"].append(entry)


def _add(items: list[str], value: str) -> None:
    if value and value not in items:
        items.append(value)


def _looks_like_file(name: str) -> bool:
    return "." in name or "/" in name


def collect(tree: exp.Expression, activity: dict[str, Any], hidden: set[str]) -> None:
    """Fill tables/files read and written from a parsed statement; skip ``hidden`` names."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    written: set[int] = set()
    target = None
    if isinstance(tree, (exp.Create, exp.Insert)):
        target = tree.this.find(exp.Table) if isinstance(tree.this, exp.Expression) else None
        if isinstance(tree.this, exp.Table):
            target = tree.this
    elif isinstance(tree, (exp.Update, exp.Delete, exp.Drop, exp.Alter)):
        target = tree.this if isinstance(tree.this, exp.Table) else None
    if target is not None:
        _add(activity["tables_written"], _table_name(target))
        written.add(id(target))
    if isinstance(tree, exp.Copy):
        for file in tree.args.get("files") or []:
            if isinstance(file, exp.Literal) and file.is_string:
                if tree.args.get("kind") is False or tree.args.get("kind") is None:
                    _add(activity["files_written"], str(file.this))
                else:
                    _add(activity["files_read"], str(file.this))
        if isinstance(tree.this, exp.Table) and tree.args.get("kind"):
            _add(activity["tables_written"], _table_name(tree.this))
            written.add(id(tree.this))
    for func in tree.find_all(exp.Func):
        name = (func.sql_name() if not isinstance(func, exp.Anonymous) else str(func.this)).lower()
        if name in _FILE_READERS or type(func).__name__.lower() in _FILE_READERS:
            first = func.this if isinstance(func.this, exp.Expression) else (func.expressions or [None])[0]
            if isinstance(first, exp.Literal) and first.is_string:
                _add(activity["files_read"], str(first.this))
    for table in tree.find_all(exp.Table):
        if id(table) in written or not isinstance(table.this, exp.Identifier):
            continue
        name = _table_name(table)
        if name.lower() in ctes or name in hidden or name.lower().startswith("nbgov"):
            continue
        if table.this.quoted and _looks_like_file(table.name) and not table.db:
            _add(activity["files_read"], table.name)
        else:
            _add(activity["tables_read"], name)


def _table_name(table: exp.Table) -> str:
    parts = [p for p in (table.catalog, table.db, table.name) if p]
    return ".".join(parts)
