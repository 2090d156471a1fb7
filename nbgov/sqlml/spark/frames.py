"""Notebook DataFrames (pandas, polars, pyarrow, numpy record arrays) as Spark temporary
views, by variable name, for one statement. Data goes through Arrow; Spark tables and
views of the same name win, as tables do on DuckDB.

Handing a frame to Spark copies it into the JVM, which costs far more than the query
over a small frame: the Spark DataFrame made from a notebook frame is kept and reused
while the frame's Arrow data is the same (an xxh3-128 digest of its buffers, read in
place), so a cell run again, or the next statement over the same frame, copies nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from nbgov.errors import SqlmlError
from nbgov.sqlml.sql.arrow_digest import arrow_digest
from nbgov.sqlml.sql.frames import FrameNames, as_relation_source, not_a_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

KEPT_FRAMES = 16  # Spark DataFrames kept for reuse
KEPT_BYTES = 1 << 30  # ... holding at most this much Arrow data


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
    readable = pa.schema([pa.field(f.name, _spark_readable(f.type), f.nullable) for f in table.schema])
    return table if readable == table.schema else table.cast(readable)


def _spark_readable(kind: pa.DataType) -> pa.DataType:
    """Large and view string/binary types, and dictionaries, as the plain types Spark maps."""
    if pa.types.is_dictionary(kind):
        return _spark_readable(kind.value_type)
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        return pa.list_(_spark_readable(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _spark_readable(f.type), f.nullable) for f in kind])
    return kind


def spark_schema(schema: pa.Schema) -> StructType:
    """The Spark schema of an Arrow one, a timestamp without a time zone read as Spark's
    ``TIMESTAMP_NTZ`` (DuckDB's ``TIMESTAMP``: the wall-clock time as written) whatever
    ``spark.sql.timestampType`` says, not as an instant in the session's time zone."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema, prefer_timestamp_ntz=True)


class FrameCache:
    """Spark DataFrames made from notebook frames, by the digest of their Arrow data."""

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark
        self._kept: OrderedDict[str, tuple[DataFrame, int]] = OrderedDict()

    def frame(self, table: pa.Table) -> DataFrame:
        key = arrow_digest(table)
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
            return found[0]
        made = self._spark.createDataFrame(table, schema=spark_schema(table.schema))
        self._kept[key] = (made, table.nbytes)
        while len(self._kept) > KEPT_FRAMES or (len(self._kept) > 1 and sum(n for _, n in self._kept.values()) > KEPT_BYTES):
            self._kept.popitem(last=False)
        return made

    def clear(self) -> None:
        self._kept.clear()


class SparkFrames:
    """Registers the named notebook frames as temporary views on enter, drops them on
    exit. A name read that is a notebook variable but not a table is an error naming
    what it is (as on DuckDB), unless Spark has a table or view of that name."""

    def __init__(self, spark: SparkSession, cache: FrameCache, frames: Mapping[str, Any] | None, names: FrameNames) -> None:
        self._spark = spark
        self._cache = cache
        self._frames = frames or {}
        self._names = names
        self.registered: list[str] = []
        self.schemas: dict[str, StructType] = {}  # lower-cased name -> the view's schema, known without asking the JVM

    def __enter__(self) -> SparkFrames:
        try:
            for name in dict.fromkeys(self._names.names):
                if name not in self._frames or self._spark.catalog.tableExists(name):
                    continue
                table = as_arrow(self._frames[name])
                if table is None:
                    if self._names.exact:
                        raise SqlmlError(not_a_table(name, self._frames[name]))
                    continue
                self._cache.frame(table).createOrReplaceTempView(name)
                self.registered.append(name)
                self.schemas[name.lower()] = spark_schema(table.schema)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.registered:
            try:
                self._spark.catalog.dropTempView(name)
            except Exception:  # the session is gone: nothing left to drop
                pass
        self.registered.clear()
        self.schemas.clear()
