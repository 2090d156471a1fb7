"""Notebook DataFrames (pandas, polars, pyarrow, numpy record arrays) as Spark temporary
views, by variable name, for one statement. Data goes through Arrow; Spark tables and
views of the same name win, as tables do on DuckDB."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from nbgov.sqlml.frames import as_relation_source

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def as_arrow(value: Any) -> pa.Table | None:
    """``value`` as an Arrow table of types Spark reads, or None if it is not table-like."""
    source = as_relation_source(value)
    if source is None:
        return None
    if isinstance(source, pa.RecordBatch):
        table = pa.Table.from_batches([source])
    elif isinstance(source, pa.Table):
        table = source
    else:  # pandas
        table = pa.Table.from_pandas(source, preserve_index=False)
    return table.cast(pa.schema([pa.field(f.name, _spark_readable(f.type), f.nullable) for f in table.schema]))


def _spark_readable(kind: pa.DataType) -> pa.DataType:
    """Large and view string/binary types, and dictionaries, as the plain types Spark maps."""
    if pa.types.is_dictionary(kind):
        return _spark_readable(kind.value_type)
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_large_list(kind) or pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        return pa.list_(_spark_readable(kind.value_type))
    if pa.types.is_list(kind):
        return pa.list_(_spark_readable(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _spark_readable(f.type), f.nullable) for f in kind])
    return kind


class SparkFrames:
    """Registers the named notebook frames as temporary views on enter, drops them on exit."""

    def __init__(self, spark: SparkSession, frames: Mapping[str, Any] | None, names: Iterable[str]) -> None:
        self._spark = spark
        self._frames = frames or {}
        self._names = list(dict.fromkeys(names))
        self.registered: list[str] = []

    def __enter__(self) -> SparkFrames:
        for name in self._names:
            if name not in self._frames or self._spark.catalog.tableExists(name):
                continue
            table = as_arrow(self._frames[name])
            if table is None:
                continue
            self._spark.createDataFrame(table).createOrReplaceTempView(name)
            self.registered.append(name)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.registered:
            try:
                self._spark.catalog.dropTempView(name)
            except Exception:  # the session is gone: nothing left to drop
                pass
