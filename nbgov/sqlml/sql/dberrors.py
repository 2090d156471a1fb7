"""Turn DuckDB exceptions into one-line nbgov errors, keeping DuckDB's message and position."""

from __future__ import annotations

import duckdb

from nbgov.errors import SqlError


# DuckDB names the column a failed cast read only when the cast reads a bare column:
# ``CAST(a AS FLOAT)`` says "... when casting from source column a", the same cast of an
# expression (as the optimizer's SQL writes it) does not, so the same value in the same
# statement failed in two wordings with and without the optimizer. The value is named.
_SOURCE_COLUMN = " when casting from source column "


def _without_source_column(message: str) -> str:
    head, found, column = message.rpartition(_SOURCE_COLUMN)
    return head if found and column else message


def one_line(error: duckdb.Error, *, position: bool = True) -> str:
    """``Parser Error: syntax error at or near "t" (line 1, column 15)``; without the
    position when the SQL that failed is not the user's (nbgov rewrote it)."""
    lines = str(error).splitlines()
    head = _without_source_column(lines[0].strip()) if lines else type(error).__name__
    if not position:
        return head
    for index, line in enumerate(lines):
        if line.startswith("LINE ") and ":" in line and index + 1 < len(lines):
            prefix = line.index(":") + 2
            caret = lines[index + 1].find("^")
            number = line[5 : line.index(":")]
            if caret >= prefix and number.isdigit():
                return f"{head} (line {number}, column {caret - prefix + 1})"
    return head


def sql_error(error: duckdb.Error, *, position: bool = True) -> SqlError:
    return SqlError(one_line(error, position=position))
