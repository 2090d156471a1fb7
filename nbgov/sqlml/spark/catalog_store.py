"""The model catalog as the Spark warehouse table ``nbgov_models``, so models sit where
the data is and every notebook on that warehouse sees them.

Rows are events, appended and never rewritten: ``registered`` (with the ONNX bytes)
or ``dropped`` (one version, or every version when ``version`` is NULL). A plain
parquet table takes appends but not DELETE, and an append-only history is what a
governed registry wants anyway. The live versions are the events folded in ``seq``
order. The rules (versions, ``m@2``, errors) are ``ModelCatalog``'s, shared with DuckDB.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbgov.sqlml.catalog.catalog import StoredModel

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TABLE = "nbgov_models"
REGISTERED = "registered"
DROPPED = "dropped"
_METADATA = ("name", "version", "sha256", "inputs", "outputs", "producer", "opset", "feature_names", "created")
_DDL = (
    "name STRING, version INT, sha256 STRING, onnx BINARY, inputs STRING, outputs STRING, "
    "producer STRING, opset INT, feature_names STRING, created STRING, event STRING, seq BIGINT"
)


class SparkModelStore:
    """Catalog rows in the warehouse table ``nbgov_models`` of the current database."""

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark
        self._ensure_table()

    # --- ModelStore ---------------------------------------------------------------

    def latest(self, name: str) -> StoredModel | None:
        live = self._live(self._events(name))
        return max(live, key=lambda row: row.version) if live else None

    def get(self, name: str, version: int) -> StoredModel | None:
        return next((row for row in self._live(self._events(name)) if row.version == version), None)

    def add(self, row: StoredModel, payload: bytes) -> None:
        values = [row.name, row.version, row.sha256, bytearray(payload), row.inputs, row.outputs,
                  row.producer, row.opset, row.feature_names, row.created, REGISTERED, _next_seq()]
        self._append(values)

    def remove(self, name: str, version: int | None) -> int:
        live = self._live(self._events(name))
        removed = [row for row in live if version is None or row.version == version]
        if removed:
            stored = removed[0].name
            self._append([stored, version, "", None, "", "", None, None, None, _now(), DROPPED, _next_seq()])
        return len(removed)

    def rows(self) -> list[StoredModel]:
        by_name: dict[str, list[tuple[StoredModel, str, int]]] = {}
        for event in self._events(None):
            by_name.setdefault(event[0].name.lower(), []).append(event)
        live = [row for events in by_name.values() for row in self._live(events)]
        return sorted(live, key=lambda row: (row.name, row.version))

    def payload(self, name: str, version: int) -> bytes:
        from pyspark.sql import functions as F

        found = (
            self._table()
            .where((F.col("name") == F.lit(name)) & (F.col("version") == F.lit(version)) & (F.col("event") == F.lit(REGISTERED)))
            .orderBy(F.col("seq").desc())
            .select("onnx")
            .limit(1)
            .collect()
        )
        if not found:
            raise KeyError(f"{name}@{version}")
        return bytes(found[0][0])

    # --- the table ------------------------------------------------------------------

    def _ensure_table(self) -> None:
        """Create ``nbgov_models`` when missing. With Spark's in-memory catalog (no Hive
        metastore) the table is external where Spark would keep it as a managed table of
        the current database, so a later session finds the models already there."""
        spark = self._spark
        if spark.catalog.tableExists(TABLE):
            return
        from pyspark.sql.types import StructType

        schema = StructType.fromDDL(_DDL)
        assert isinstance(schema, StructType)
        if spark.conf.get("spark.sql.catalogImplementation", "in-memory") == "hive":
            spark.catalog.createTable(TABLE, source="parquet", schema=schema)
            return
        warehouse = str(spark.conf.get("spark.sql.warehouse.dir")).rstrip("/")
        database = spark.catalog.currentDatabase()
        folder = warehouse if database == "default" else f"{warehouse}/{database}.db"
        spark.catalog.createTable(TABLE, path=f"{folder}/{TABLE}", source="parquet", schema=schema)

    def _table(self) -> DataFrame:
        return self._spark.table(TABLE)

    def _append(self, values: list[Any]) -> None:
        frame = self._spark.createDataFrame([tuple(values)], schema=self._table().schema)
        frame.write.insertInto(TABLE)
        self._spark.catalog.refreshTable(TABLE)

    def _events(self, name: str | None) -> list[tuple[StoredModel, str, int]]:
        """(row, event, seq) for ``name`` (case-insensitive), or for every model; no bytes read."""
        from pyspark.sql import functions as F

        table = self._table()
        if name is not None:
            table = table.where(F.lower(F.col("name")) == F.lit(name.lower()))
        rows = table.select(*_METADATA, "event", "seq").collect()
        return [
            (
                StoredModel(
                    name=r["name"], version=r["version"], sha256=r["sha256"], inputs=r["inputs"],
                    outputs=r["outputs"], producer=r["producer"], opset=r["opset"],
                    feature_names=r["feature_names"], created=r["created"],
                ),
                r["event"],
                r["seq"],
            )
            for r in rows
        ]

    @staticmethod
    def _live(events: Iterable[tuple[StoredModel, str, int]]) -> list[StoredModel]:
        """The versions of one model still registered after its events, in ``seq`` order."""
        live: dict[int, StoredModel] = {}
        for row, event, _ in sorted(events, key=lambda e: e[2]):
            if event == REGISTERED:
                live[row.version] = row
            elif row.version is None:
                live.clear()
            else:
                live.pop(row.version, None)
        return list(live.values())


def _next_seq() -> int:
    """Orders events; nanoseconds keep two kernels appending at once apart."""
    return time.time_ns()


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
