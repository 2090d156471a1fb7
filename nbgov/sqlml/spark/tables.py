"""The Spark tables a statement read and wrote, for lineage.

Read: which version of each table. Delta and Iceberg tables carry versions: the table's
current version (Delta's ``DESCRIBE HISTORY``, Iceberg's newest snapshot) names the data
exactly. Other tables are identified by their location plus an xxh3-128 fingerprint of
the file listing (path, size, modification time of every file), which changes whenever
a file is added, removed or rewritten. A view has no storage of its own: it is named as
a view, with the reason it cannot be pinned.

Written: the table's content, hashed as on DuckDB (xxh3-128 of its Arrow data in a
stable row order) when it is small enough, else the reason it was not.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlglot.expressions as exp
import xxhash

from nbgov.sqlml.activity import TableContent, TableIdentity
from nbgov.sqlml.execution.contents import MAX_CELLS, arrow_hash

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MAX_LISTED_FILES = 100_000
# Spark binds no parameter for an empty dict, as for None (the default), but None costs
# PySpark four JVM round trips more (an empty Java array built by reflection)
NO_ARGS: dict[str, Any] = {}


def quoted(name: str) -> str:
    """A (possibly qualified) table name as a quoted Spark identifier."""
    return exp.to_table(name, dialect="spark").sql(dialect="spark", identify=True)


def inserted_rows(result: Any) -> int | None:
    """How many rows an INSERT that has run wrote, as DuckDB reports it: Spark's own count of
    the rows written (the file writer's ``numOutputRows``), or None where Spark keeps no such
    count (Spark Connect, a table format with its own writer)."""
    try:
        command = result._jdf.queryExecution().executedPlan().commandPhysicalPlan()
        metric = command.metrics().get("numOutputRows")
        return int(metric.get().value()) if metric.isDefined() else None
    except Exception:  # no JVM plan to ask: the summary says "ok"
        return None


def table_identity(spark: SparkSession, name: str) -> TableIdentity:
    """The identity of table ``name`` as it is now; never raises."""
    try:
        return _identity(spark, name)
    except Exception as error:  # lineage never breaks a statement
        return TableIdentity(name, None, reason=f"could not read the table's identity: {_first_line(error)}")


def table_content(spark: SparkSession, name: str, *, snapshot: bool = False) -> TableContent:
    """The content fingerprint of table ``name`` after a statement wrote it (``snapshot``:
    a temporary view of stored rows, hashed like a table); never raises."""
    try:
        if not spark.catalog.tableExists(name):
            return TableContent(name, None, None, "the table no longer exists (dropped or renamed)")
        if not snapshot and _is_view(spark, name):
            return TableContent(name, None, None, "a view: its rows are computed when it is read")
        table = spark.table(quoted(name))
        rows, columns = table.count(), len(table.columns)
        if rows * columns > MAX_CELLS:
            return TableContent(
                name, rows, None, f"{rows:,} rows x {columns} columns: above the {MAX_CELLS:,}-cell bound for hashing"
            )
        return TableContent(name, rows, arrow_hash(table.orderBy(*table.columns).toArrow()))
    except Exception as error:  # lineage never breaks a statement
        return TableContent(name, None, None, f"not readable for hashing: {_first_line(error)}")


def _is_view(spark: SparkSession, name: str) -> bool:
    table = spark.catalog.getTable(name)
    return bool(table.isTemporary) or (table.tableType or "").upper() == "VIEW"


def _identity(spark: SparkSession, name: str) -> TableIdentity:
    if _is_view(spark, name):
        return TableIdentity(name, None, reason="a view: the data it shows is read from other tables")
    details = {
        str(row[0]).strip(): str(row[1]).strip()
        for row in spark.sql(f"DESCRIBE TABLE EXTENDED {quoted(name)}", args=NO_ARGS).collect()
        if row[0] is not None and row[1] is not None
    }
    provider = details.get("Provider", "").lower() or None
    location = details.get("Location") or None
    if provider == "delta":
        history = spark.sql(f"DESCRIBE HISTORY {quoted(name)} LIMIT 1", args=NO_ARGS).collect()
        if history:
            return TableIdentity(name, provider, version=str(history[0]["version"]), location=location)
    if provider == "iceberg":
        snapshots = spark.sql(
            f"SELECT snapshot_id FROM {quoted(name + '.snapshots')} ORDER BY committed_at DESC LIMIT 1"
        ).collect()
        if snapshots:
            return TableIdentity(name, provider, version=str(snapshots[0][0]), location=location)
    if location is None:
        return TableIdentity(name, provider, reason="the table has no location to fingerprint")
    listing, reason = listing_fingerprint(spark, location)
    return TableIdentity(name, provider, location=location, listing=listing, reason=reason)


def listing_fingerprint(spark: SparkSession, location: str) -> tuple[str | None, str | None]:
    """xxh3-128 of every file under ``location`` (relative path, size, modification
    time), listed through Hadoop's file system API so HDFS and object stores work too;
    or None and why it could not be listed."""
    jvm: Any = getattr(spark, "_jvm", None)
    jsc: Any = getattr(spark, "_jsc", None)
    if jvm is None or jsc is None:
        return None, "the session does not expose the file system (Spark Connect)"
    root = _path_class(jvm)(location)
    fs = root.getFileSystem(jsc.hadoopConfiguration())
    if not fs.exists(root):
        return None, f"the table's location {location} does not exist"
    prefix = str(fs.makeQualified(root).toString()).rstrip("/") + "/"
    entries: list[str] = []
    files = fs.listFiles(root, True)
    while files.hasNext():
        status = files.next()
        if len(entries) >= MAX_LISTED_FILES:
            return None, f"more than {MAX_LISTED_FILES:,} files under the table's location"
        path = str(status.getPath().toString())
        relative = path[len(prefix):] if path.startswith(prefix) else path
        entries.append(f"{relative}\t{status.getLen()}\t{status.getModificationTime()}")
    digest = xxhash.xxh3_128()
    for entry in sorted(entries):
        digest.update(entry.encode("utf-8"))
        digest.update(b"\n")
    return f"xxh3_128:{digest.hexdigest()}", None


@lru_cache(maxsize=4)
def _path_class(jvm: Any) -> Any:
    """Hadoop's ``Path`` class of the session's JVM, looked up once: each package step of
    ``jvm.org.apache.hadoop.fs.Path`` is a JVM round trip (five per table read)."""
    return jvm.org.apache.hadoop.fs.Path


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
