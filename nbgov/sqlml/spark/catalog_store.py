"""The model catalog as the Spark warehouse table ``nbgov_models``, so models sit where
the data is and every notebook on that warehouse sees them.

Rows are events, appended and never rewritten: ``registered`` (with the ONNX bytes)
or ``dropped`` (one version, or every version when ``version`` is NULL). A version's
signature corrected for the same bytes is that version ``registered`` again. A plain
parquet table takes appends but not DELETE, and an append-only history is what a
governed registry wants anyway. The live versions are the events folded in ``seq``
order. The rules (versions, ``m@2``, errors) are ``ModelCatalog``'s, shared with DuckDB.

Every lookup needs the events, and reading them is a Spark job over every file of the
table. So each store keeps the events' metadata (never the bytes) with the listing of
the table's data files it was read after, and re-reads only when a fresh listing (one
file-system call, no job) differs: another kernel's append or a file put there by hand
adds a file, so it is seen on the next lookup. No listing, no cache: read as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from nbgov.sqlml.catalog.catalog import StoredModel

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TABLE = "nbgov_models"
# A file this young may still change within its modification time's tick (seconds on
# some object stores) without the listing showing it: events read then are not kept.
_RACY_SECONDS = 2.0
REGISTERED = "registered"
DROPPED = "dropped"
_METADATA = ("name", "version", "sha256", "inputs", "outputs", "producer", "opset", "feature_names", "created")
_DDL = (
    "name STRING, version INT, sha256 STRING, onnx BINARY, inputs STRING, outputs STRING, "
    "producer STRING, opset INT, feature_names STRING, created STRING, event STRING, seq BIGINT"
)

Event = tuple[StoredModel, str, int]
"""(row without bytes, ``registered``/``dropped``, seq)."""
Listing = tuple[str, tuple[tuple[str, int, int], ...]]
"""The table's location and its data files as (path, length, modification ns), sorted."""


class SparkModelStore:
    """Catalog rows in the warehouse table ``nbgov_models`` of the current database."""

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark
        self._ensure_table()
        self._cached: tuple[Listing, list[Event]] | None = None

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

    def resign(self, row: StoredModel) -> None:
        """The version registered again with its bytes: the later event is the live one
        (a new kind of event would read as a drop to an older nbgov)."""
        self.add(row, self.payload(row.name, row.version))

    def mark(self, row: StoredModel) -> None:
        """Nothing: the events keep no check mark (a column older nbgov's appends, which
        write every column by position, could not fill), so a version is checked with a
        session when a process first uses it, as it was before marks."""

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
        found = self._payload(name, version)
        if found is None:  # Spark's own listing of the table may predate the file
            self._spark.catalog.refreshTable(TABLE)
            found = self._payload(name, version)
        if found is None:
            raise KeyError(f"{name}@{version}")
        return found

    def _payload(self, name: str, version: int) -> bytes | None:
        from pyspark.sql import functions as F

        found = (
            self._table()
            .where((F.col("name") == F.lit(name)) & (F.col("version") == F.lit(version)) & (F.col("event") == F.lit(REGISTERED)))
            .orderBy(F.col("seq").desc())
            .select("onnx")
            .limit(1)
            .collect()
        )
        return bytes(found[0][0]) if found else None

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
        self._cached = None
        frame.write.insertInto(TABLE)
        self._spark.catalog.refreshTable(TABLE)

    def _events(self, name: str | None) -> list[Event]:
        """The events of ``name`` (case-insensitive), or of every model; no bytes read.
        Listed before read: a file added meanwhile is in the read or in the next listing."""
        now = time.time()
        listing = self._listing()
        cached = self._cached
        if listing is not None and cached is not None and cached[0] == listing:
            events = cached[1]
        else:
            self._spark.catalog.refreshTable(TABLE)  # Spark's own listing may miss new files
            events = self._read_events()
            if listing is not None and not _racy(listing, now):
                self._cached = (listing, events)
        if name is None:
            return list(events)
        key = name.lower()
        return [event for event in events if event[0].name.lower() == key]

    def _read_events(self) -> list[Event]:
        rows = self._table().select(*_METADATA, "event", "seq").collect()
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

    def _listing(self) -> Listing | None:
        """The table's data files as the file system lists them now (Hadoop's FileSystem,
        what Spark reads; a local folder directly); None when that cannot be known exactly."""
        try:
            spark = self._spark
            if spark.catalog.currentCatalog() != "spark_catalog":
                return None
            jvm: Any = spark._jvm
            state = spark._jsparkSession.sessionState()
            catalog = state.catalog()
            ident = state.sqlParser().parseTableIdentifier(TABLE)
            if catalog.isTempView(ident):
                return None
            table = catalog.getTableMetadata(ident)
            provider = table.provider()
            if (
                provider.isEmpty()
                or str(provider.get()).lower() != "parquet"
                or not table.partitionColumnNames().isEmpty()
                or str(table.tableType().name()) not in ("MANAGED", "EXTERNAL")
            ):
                return None
            location = str(table.location().toString())
            files: list[tuple[str, int, int]] = []
            conf = spark._jsc.hadoopConfiguration()
            if location.startswith("file:/") and conf.get("fs.file.impl") is None:  # no JVM call per file
                folder = url2pathname(urlparse(location).path)
                if os.path.isdir(folder):  # Spark reads a missing root folder as empty
                    _list_local(folder, files)
                return location, tuple(sorted(files))
            path = jvm.org.apache.hadoop.fs.Path(location)
            fs = path.getFileSystem(conf)
            if fs.exists(path):
                _list_files(fs, path, files)
            return location, tuple(sorted(files))
        except Exception:
            return None

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


def _list_files(fs: Any, folder: Any, files: list[tuple[str, int, int]]) -> None:
    """Every file Spark's ``InMemoryFileIndex`` would read under ``folder``, recursively."""
    for status in fs.listStatus(folder):
        path = status.getPath()
        text = str(path.toString())
        if _spark_ignores(text.rsplit("/", 1)[-1]):
            continue
        if status.isDirectory():
            _list_files(fs, path, files)
        else:
            files.append((text, int(status.getLen()), int(status.getModificationTime()) * 1_000_000))


def _list_local(folder: str, files: list[tuple[str, int, int]]) -> None:
    """``_list_files`` for a local folder, by the operating system (nanosecond times)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if _spark_ignores(entry.name):
                continue
            if entry.is_dir():
                _list_local(entry.path, files)
            else:
                stat = entry.stat()
                files.append((entry.path, stat.st_size, stat.st_mtime_ns))


def _spark_ignores(name: str) -> bool:
    """``InMemoryFileIndex.shouldFilterOut``: hidden and ``_`` files (``_SUCCESS``,
    ``.crc``, ``_temporary``) but Parquet's ``_metadata``; files still being copied."""
    exclude = (name.startswith("_") and "=" not in name) or name.startswith(".") or name.endswith("._COPYING_")
    return exclude and not (name.startswith("_common_metadata") or name.startswith("_metadata"))


def _racy(listing: Listing, now: float) -> bool:
    """Whether a listed file is so recent that a rewrite could keep its length and time."""
    return any(modified >= (now - _RACY_SECONDS) * 1e9 for _, _, modified in listing[1])


def _next_seq() -> int:
    """Orders events; nanoseconds keep two kernels appending at once apart."""
    return time.time_ns()


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
