"""The one place identifiers become SQL text; values never do (they are parameters)."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Quote ``name`` as a DuckDB identifier, doubling embedded double quotes."""
    if not isinstance(name, str) or name == "" or "\x00" in name:
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'
