"""Make notebook DataFrames visible to DuckDB by variable name, for one statement.

DuckDB 2.0 only finds Python objects in the calling frame, so the engine registers
the objects a statement names (pandas/polars DataFrames, pyarrow Tables, numpy
record arrays) and unregisters them afterwards. Existing tables and views win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa


def as_relation_source(value: Any) -> Any | None:
    """What con.register accepts for ``value``, or None if it is not table-like."""
    module = type(value).__module__.split(".")[0]
    if module == "pandas" and type(value).__name__ == "DataFrame":
        return value
    if module == "polars" and type(value).__name__ in ("DataFrame", "LazyFrame"):
        frame = value.collect() if type(value).__name__ == "LazyFrame" else value
        return frame.to_arrow()
    if isinstance(value, (pa.Table, pa.RecordBatch)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.names:
        import pandas as pd

        return pd.DataFrame.from_records(value)
    return None


class FrameScope:
    """Registers the named frames on enter and removes them on exit."""

    def __init__(self, con: duckdb.DuckDBPyConnection, frames: Mapping[str, Any] | None, names: Iterable[str]):
        self._con = con
        self._frames = frames or {}
        self._names = list(dict.fromkeys(names))
        self.registered: list[str] = []

    def __enter__(self) -> FrameScope:
        if not self._frames:
            return self
        existing = self._existing_relations()
        for name in self._names:
            if name.lower() in existing or name not in self._frames:
                continue
            source = as_relation_source(self._frames[name])
            if source is None:
                continue
            self._con.register(name, source)
            self.registered.append(name)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.registered:
            try:
                self._con.unregister(name)
            except duckdb.Error:
                pass

    def _existing_relations(self) -> set[str]:
        rows = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = current_schema() "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = current_schema()"
        ).fetchall()
        return {str(r[0]).lower() for r in rows}
