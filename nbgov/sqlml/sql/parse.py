"""sqlglot's parse of a DuckDB statement, cached per text (a re-run cell pays a copy)."""

from __future__ import annotations

from functools import lru_cache

import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import ParseError


def parse(text: str) -> exp.Expression | None:
    """The statement as a sqlglot tree of its own (callers may rewrite it in place), or
    None when sqlglot cannot read it (DuckDB may still: such text runs as written)."""
    tree = _parsed(text)
    return tree.copy() if tree is not None else None


@lru_cache(maxsize=256)
def _parsed(text: str) -> exp.Expression | None:
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
        return tree if isinstance(tree, exp.Expression) else None
    except (ParseError, sqlglot.errors.TokenError, ValueError):
        return None
