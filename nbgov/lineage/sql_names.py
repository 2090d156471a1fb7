"""Notebook variables a SQL string reads by name: DuckDB's replacement scans.

``duckdb.sql("SELECT sum(a) FROM df")`` (or ``con.execute``, ``con.query``, ...) reads
the DataFrame ``df`` from the cell's namespace although the Python code never names it.
The text of such a call, when it is a literal, is parsed with sqlglot (DuckDB dialect)
and its unqualified table names that are Python identifiers and not CTEs are returned;
the recorder keeps those that name notebook data. Unparsable text gives nothing.
"""

from __future__ import annotations

import ast
import functools

_SQL_CALLS = frozenset({"sql", "execute", "query", "from_query"})
MAX_SQL_CHARS = 100_000


def sql_variables(call: ast.Call) -> tuple[str, ...]:
    """Table names of the literal SQL given to a DuckDB-style ``sql``/``execute``/``query`` call."""
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in _SQL_CALLS:
        return ()
    texts = [call.args[0]] if call.args else []
    texts += [k.value for k in call.keywords if k.arg == "query"]
    found: tuple[str, ...] = ()
    for text in texts:
        if isinstance(text, ast.Constant) and isinstance(text.value, str) and len(text.value) <= MAX_SQL_CHARS:
            lowered = text.value.lower()
            if "from" in lowered or "join" in lowered:
                found += table_names(text.value)
    return found


@functools.lru_cache(maxsize=256)
def table_names(text: str) -> tuple[str, ...]:
    """Unqualified, non-CTE table names of ``text`` (DuckDB dialect) that are identifiers."""
    try:
        import sqlglot
        from sqlglot import exp

        trees = sqlglot.parse(text, read="duckdb")
    except Exception:
        return ()
    names: list[str] = []
    for tree in trees:
        if tree is None:
            continue
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            name = table.name
            if (isinstance(table.this, exp.Identifier) and not table.db and not table.catalog
                    and name.isidentifier() and name not in ctes and name not in names):
                names.append(name)
    return tuple(names)
