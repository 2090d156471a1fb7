"""sqlglot's parse of a DuckDB statement, cached per text (a re-run cell pays a copy)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import sqlglot
import sqlglot.expressions as exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError
from sqlglot.parsers.duckdb import DuckDBParser
from sqlglot.tokens import TokenType


class SliceReadingParser(DuckDBParser):
    """sqlglot's DuckDB parser without ``:name`` parameters, which DuckDB has none of (its
    are ``$name``, ``$1`` and ``?``): sqlglot read the slice ``l[:n]`` as ``l[$n]``, an
    element at the index the notebook variable ``n`` holds."""

    PLACEHOLDER_PARSERS = {kind: read for kind, read in DuckDBParser.PLACEHOLDER_PARSERS.items() if kind is not TokenType.COLON}


class _DuckDB(DuckDB):
    Parser = SliceReadingParser


def parse(text: str) -> exp.Expression | None:
    """The statement as a sqlglot tree of its own (callers may rewrite it in place), or
    None when sqlglot cannot read it (DuckDB may still: such text runs as written)."""
    tree = _parsed(text)
    return tree.copy() if tree is not None else None


@lru_cache(maxsize=256)
def _parsed(text: str) -> exp.Expression | None:
    try:
        with _quiet():
            tree = sqlglot.parse_one(text, read=_DuckDB)
        return tree if isinstance(tree, exp.Expression) else None
    except (ParseError, sqlglot.errors.TokenError, ValueError):
        return None


class _ThisThread(logging.Filter):
    """Drops the records of one thread."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextmanager
def _quiet() -> Iterator[None]:
    """sqlglot's log records silenced while nbgov parses a statement on this thread.

    sqlglot warns on the root logger's last-resort handler when it keeps a statement it
    cannot read as a Command ("'CALL f()' contains unsupported syntax. Falling back to
    parsing as a 'Command'."): a notebook showed that line in red under valid DuckDB
    statements (CALL, LOAD, CREATE TYPE, CREATE TABLE AS PIVOT) DuckDB then ran fine.
    What DuckDB cannot run it reports itself. Other threads' sqlglot logging is untouched."""
    logger = logging.getLogger("sqlglot")
    quiet = _ThisThread()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
