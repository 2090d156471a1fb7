"""What only the Spark catalog store does: models kept as append-only events in the
warehouse table ``nbgov_models``, visible to every session on that warehouse. The
statements themselves are tested on both engines in test_sqlml_catalog.py."""

from __future__ import annotations

import hashlib

import pytest

from nbgov.sqlml.catalog.catalog import ModelCatalog
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


def _loaded(payload: bytes):
    from nbgov.sqlml.catalog.modelfile import from_bytes

    return from_bytes(payload, label="test")
