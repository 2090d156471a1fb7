"""What only the Spark catalog store does: models kept as append-only events in the
warehouse table ``nbgov_models``, visible to every session on that warehouse. The
statements themselves are tested on both engines in test_sqlml_catalog.py."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from nbgov.sqlml.catalog.catalog import ModelCatalog, StoredModel
from nbgov.sqlml.spark.catalog_store import TABLE, SparkModelStore

pytestmark = pytest.mark.spark


def test_registrations_and_drops_are_events_in_the_warehouse_table(spark, spark_database, onnx_models):
    catalog = ModelCatalog(SparkModelStore(spark))
    forest, tree = onnx_models.get("rf_reg"), onnx_models.get("tree_reg")
    catalog.register("m", _loaded(forest.onnx))
    catalog.register("M", _loaded(tree.onnx))  # names match case-insensitively: m@2
    catalog.drop("m@1")
    events = spark.table(TABLE).orderBy("seq").select("name", "version", "event", "sha256").collect()
    assert [(e.name, e.version, e.event) for e in events] == [("m", 1, "registered"), ("m", 2, "registered"), ("m", 1, "dropped")]
    assert events[1].sha256 == hashlib.sha256(tree.onnx).hexdigest()
    assert [v.ref for v in catalog.versions()] == ["m@2"]

    # another session's catalog on the same warehouse sees the models, bytes included
    session = spark.newSession()
    session.catalog.setCurrentDatabase(spark_database)
    other = ModelCatalog(SparkModelStore(session))
    assert other.resolve("m").onnx_bytes == tree.onnx and other.resolve("m").version == 2
    catalog.drop("m")
    catalog.register("m", _loaded(forest.onnx))  # a dropped name starts again at version 1
    assert catalog.resolve("m").version == 1 and spark.table(TABLE).count() == 5


def test_a_lookup_on_an_unchanged_table_runs_no_spark_job(spark, spark_database, onnx_models):
    store = SparkModelStore(spark)
    catalog = ModelCatalog(store)
    catalog.register("m", _loaded(onnx_models.get("rf_reg").onnx))
    catalog.register("n", _loaded(onnx_models.get("tree_reg").onnx))
    _settle(spark, spark_database)
    with _jobs(spark) as first:
        assert store.latest("M").version == 1  # lists, reads the events once
    with _jobs(spark) as again:
        assert store.latest("m").version == 1 and store.get("n", 1) is not None and store.get("n", 2) is None
        assert [row.name for row in store.rows()] == ["m", "n"] and store.latest("x") is None
    assert first and again == []


def test_another_kernel_registering_or_dropping_is_seen_by_the_next_lookup(spark, spark_database, onnx_models):
    forest, tree = onnx_models.get("rf_reg").onnx, onnx_models.get("tree_reg").onnx
    store = SparkModelStore(spark)
    ModelCatalog(store).register("m", _loaded(forest))
    session = spark.newSession()  # another kernel on the same warehouse and database
    session.catalog.setCurrentDatabase(spark_database)
    other = ModelCatalog(SparkModelStore(session))
    _settle(spark, spark_database)
    assert store.latest("m").version == 1  # read and kept

    other.register("m", _loaded(tree))
    assert store.latest("m").version == 2 and store.get("m", 2).sha256 == hashlib.sha256(tree).hexdigest()
    assert store.payload("m", 2) == tree
    _settle(spark, spark_database)
    assert [row.version for row in store.rows()] == [1, 2]
    other.drop("m@2")
    assert store.latest("m").version == 1 and store.get("m", 2) is None
    other.drop("m")
    assert store.latest("m") is None and store.rows() == []


def test_the_cache_keeps_no_onnx_bytes_and_payload_reads_the_table(spark, spark_database, onnx_models):
    forest = onnx_models.get("rf_reg").onnx
    store = SparkModelStore(spark)
    ModelCatalog(store).register("m", _loaded(forest))
    _settle(spark, spark_database)
    store.rows()
    listing, events = store._cached
    kept = [value for row, event, seq in events for value in (*dataclasses.astuple(row), event, seq)]
    assert kept and all(isinstance(value, (str, int, type(None))) for value in kept)
    assert all(isinstance(row, StoredModel) for row, _, _ in events)
    assert sum(len(str(value)) for value in kept) < len(forest)
    with _jobs(spark) as read:
        assert store.payload("m", 1) == forest
    assert read  # the bytes come from the table, every time


def test_a_file_put_in_the_table_folder_by_hand_is_seen(spark, spark_database, onnx_models):
    import pyarrow as pa
    import pyarrow.parquet as pq

    tree = onnx_models.get("tree_reg").onnx
    store = SparkModelStore(spark)
    ModelCatalog(store).register("m", _loaded(onnx_models.get("rf_reg").onnx))
    _settle(spark, spark_database)
    row = store.latest("m")
    assert store.latest("h") is None
    # another engine appends an event with the table's schema, under a name of its own
    fields = dataclasses.asdict(dataclasses.replace(row, name="h", sha256=hashlib.sha256(tree).hexdigest()))
    event = {**fields, "onnx": tree, "event": "registered", "seq": time.time_ns()}
    schema = pa.schema([
        ("name", pa.string()), ("version", pa.int32()), ("sha256", pa.string()), ("onnx", pa.binary()),
        ("inputs", pa.string()), ("outputs", pa.string()), ("producer", pa.string()), ("opset", pa.int32()),
        ("feature_names", pa.string()), ("created", pa.string()), ("event", pa.string()), ("seq", pa.int64()),
    ])
    pq.write_table(pa.Table.from_pylist([event], schema=schema), _folder(spark, spark_database) / "by-hand.parquet")
    assert store.latest("h") == dataclasses.replace(row, name="h", sha256=fields["sha256"])
    assert store.payload("h", 1) == tree and [r.name for r in store.rows()] == ["h", "m"]


def test_a_signature_stored_wrong_is_corrected_as_the_same_version_registered_again(spark, spark_database, customers_frame):
    """A two-target forest an older nbgov registered with skl2onnx's declared ``[N, 1]``:
    loading it reads ``[N, 2]`` from the bytes; registering the same bytes appends the
    version again with that signature (no new version), which every session then reads."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestRegressor

    X = customers_frame[["age", "income"]]
    forest = RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(X, np.c_[X.age, X.income / 1000])
    loaded = _loaded(to_onnx(forest, X.to_numpy(np.float32)[:1]).SerializeToString())
    store = SparkModelStore(spark)
    declared = json.dumps([{"name": "variable", "type": "float", "shape": [None, 1]}])
    inputs = json.dumps([{"name": "X", "type": "float", "shape": [None, 2]}])
    store.add(StoredModel("m", 1, loaded.sha256, inputs, declared, "skl2onnx", 17, None, "2026-01-01T00:00:00+00:00"), loaded.onnx_bytes)
    catalog = ModelCatalog(store)
    assert catalog.resolve("m").outputs[0].shape == (None, 2)
    assert store.latest("m").outputs == declared  # a lookup writes nothing

    version, done = catalog.register("m", loaded)
    assert (version.version, version.sha256, done) == (1, loaded.sha256, "corrected")
    events = spark.table(TABLE).orderBy("seq").select("version", "event", "outputs").collect()
    assert [(e.version, e.event) for e in events] == [(1, "registered"), (1, "registered")]
    assert json.loads(events[1].outputs)[0]["shape"] == [None, 2]
    session = spark.newSession()
    session.catalog.setCurrentDatabase(spark_database)
    other = SparkModelStore(session)
    assert [(r.version, json.loads(r.outputs)[0]["shape"]) for r in other.rows()] == [(1, [None, 2])]
    assert other.payload("m", 1) == loaded.onnx_bytes
    assert catalog.register("m", loaded)[1] == "unchanged" and spark.table(TABLE).count() == 2


def test_hadoops_listing_and_the_local_one_agree(spark, spark_database, onnx_models):
    from nbgov.sqlml.spark import catalog_store

    ModelCatalog(SparkModelStore(spark)).register("m", _loaded(onnx_models.get("rf_reg").onnx))
    folder = _folder(spark, spark_database)
    (folder / "_SUCCESS").touch()
    (folder / ".hidden.parquet").touch()
    (folder / "part-x.parquet._COPYING_").touch()
    (folder / "_metadata").touch()
    local: list[tuple[str, int, int]] = []
    catalog_store._list_local(str(folder), local)
    path = spark._jvm.org.apache.hadoop.fs.Path(folder.as_uri())
    hadoop: list[tuple[str, int, int]] = []
    catalog_store._list_files(path.getFileSystem(spark._jsc.hadoopConfiguration()), path, hadoop)
    names = sorted(name.rsplit("/", 1)[-1] for name, _, _ in local)
    assert names == sorted(name.rsplit("/", 1)[-1] for name, _, _ in hadoop) and "_metadata" in names
    assert not any(name.startswith((".", "_S")) or name.endswith("_COPYING_") for name in names)
    assert sorted((n.rsplit("/", 1)[-1], size, ns // 1_000_000) for n, size, ns in local) == sorted(
        (n.rsplit("/", 1)[-1], size, ns // 1_000_000) for n, size, ns in hadoop
    )


def test_a_table_nbgov_cannot_list_is_read_every_time(spark, spark_database, onnx_models):
    spark.sql(f"CREATE TABLE {TABLE} ({_DDL}) USING json")  # not parquet: no listing of ours
    store = SparkModelStore(spark)
    ModelCatalog(store).register("m", _loaded(onnx_models.get("rf_reg").onnx))
    _settle(spark, spark_database)
    store.latest("m")
    with _jobs(spark) as read:
        assert store.latest("m").version == 1
    assert read and store._cached is None


_DDL = (
    "name STRING, version INT, sha256 STRING, onnx BINARY, inputs STRING, outputs STRING, "
    "producer STRING, opset INT, feature_names STRING, created STRING, event STRING, seq BIGINT"
)


@contextmanager
def _jobs(spark) -> Iterator[list[int]]:
    """The ids of the Spark jobs this thread ran inside the block (its own job group;
    the listener bus drained so every job started is counted)."""
    context = spark.sparkContext
    group = f"nbgov-test-{uuid.uuid4().hex}"
    context.setJobGroup(group, "counting jobs")
    ids: list[int] = []
    try:
        yield ids
    finally:
        context._jsc.clearJobGroup()
        context._jsc.sc().listenerBus().waitUntilEmpty(10_000)
        ids.extend(context.statusTracker().getJobIdsForGroup(group))


def _folder(spark, database: str) -> Path:
    warehouse = str(spark.conf.get("spark.sql.warehouse.dir")).removeprefix("file:")
    folder = Path(warehouse) / f"{database}.db" / TABLE
    assert folder.is_dir()
    return folder


def _settle(spark, database: str) -> None:
    """Date the table's files a minute back, as if written a while ago (a file written
    in the last seconds could still change unseen, so the store does not cache it)."""
    past = time.time() - 60
    for path in _folder(spark, database).rglob("*"):
        os.utime(path, (past, past))


def _loaded(payload: bytes):
    from nbgov.sqlml.catalog.modelfile import from_bytes

    return from_bytes(payload, label="test")
