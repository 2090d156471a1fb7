"""The model catalog on Spark: the warehouse table ``nbgov_models``, same rules as DuckDB."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from nbgov.errors import ModelNotFoundError, SqlmlError
from nbgov.sqlml.catalog import ModelCatalog
from nbgov.sqlml.models_sql import run_model_statement
from nbgov.sqlml.spark.catalog_store import TABLE, SparkModelStore
from nbgov.sqlml.statements import model_statement, split


def drop_models_table(spark) -> None:
    """Drop ``nbgov_models`` and its files (an external table keeps them otherwise)."""
    spark.sql(f"DROP TABLE IF EXISTS {TABLE}")
    folder = Path(urlparse(str(spark.conf.get("spark.sql.warehouse.dir"))).path) / TABLE
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def spark_catalog(spark):
    drop_models_table(spark)
    yield ModelCatalog(SparkModelStore(spark))
    drop_models_table(spark)


def run(catalog: ModelCatalog, sql: str, **params):
    (statement,) = split(sql)
    parsed = model_statement(statement)
    assert parsed is not None
    return run_model_statement(catalog, parsed, statement.text, params)


def test_versions_pins_and_listing_live_in_the_warehouse_table(spark, spark_catalog, onnx_models):
    forest, tree = onnx_models.get("rf_reg"), onnx_models.get("tree_reg")
    _, summary, activity = run(spark_catalog, "CREATE MODEL m FROM $b", b=forest.onnx)
    assert "version 1 registered" in summary and activity["models"][0]["sha256"] == hashlib.sha256(forest.onnx).hexdigest()
    _, summary, _ = run(spark_catalog, "CREATE MODEL m FROM $b", b=forest.onnx)
    assert "unchanged (same bytes)" in summary
    run(spark_catalog, "CREATE OR REPLACE MODEL M FROM $b", b=tree.onnx)  # names match case-insensitively
    shown, _, _ = run(spark_catalog, "SHOW MODELS")
    assert shown.name.tolist() == ["m", "m"] and shown.version.tolist() == [1, 2]
    assert spark_catalog.resolve("m").onnx_bytes == tree.onnx
    assert spark_catalog.resolve("m@1").onnx_bytes == forest.onnx
    described, _, _ = run(spark_catalog, "DESCRIBE MODEL m@1")
    assert described.kind.tolist() == ["input", "output"] and described.type.tolist() == ["float", "float"]
    stored = spark.table(TABLE).where("event = 'registered'").select("name", "version", "sha256").collect()
    assert sorted((r.name, r.version) for r in stored) == [("m", 1), ("m", 2)]

    # another kernel on the same warehouse sees the models, bytes included
    other = ModelCatalog(SparkModelStore(spark))
    assert other.resolve("m@2").sha256 == hashlib.sha256(tree.onnx).hexdigest()
    assert other.resolve("m").onnx_bytes == tree.onnx


def test_drop_one_version_then_all_and_errors(spark_catalog, onnx_models):
    run(spark_catalog, "CREATE MODEL m FROM $b", b=onnx_models.get("rf_reg").onnx)
    run(spark_catalog, "CREATE MODEL m FROM $b", b=onnx_models.get("tree_reg").onnx)
    run(spark_catalog, "CREATE MODEL other FROM $b", b=onnx_models.get("linreg").onnx)
    _, summary, _ = run(spark_catalog, "DROP MODEL m@2")
    assert summary == "model m@2 dropped (1 version(s))"
    assert spark_catalog.resolve("m").version == 1
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'm@2'; known models: m, other"):
        spark_catalog.resolve("m@2")
    _, summary, _ = run(spark_catalog, "DROP MODEL m")
    assert summary == "model m dropped (1 version(s))"
    with pytest.raises(ModelNotFoundError, match="known models: other$"):
        run(spark_catalog, "DESCRIBE MODEL m")
    _, summary, _ = run(spark_catalog, "DROP MODEL IF EXISTS m")
    assert summary == "model m dropped (0 version(s))"
    with pytest.raises(ModelNotFoundError):
        run(spark_catalog, "DROP MODEL m")
    # a name dropped and registered again starts at version 1, as on DuckDB
    run(spark_catalog, "CREATE MODEL m FROM $b", b=onnx_models.get("gb_reg").onnx)
    assert spark_catalog.resolve("m").version == 1
    assert spark_catalog.refs() == ["m", "other"]


def test_bad_model_is_refused_and_nothing_is_stored(spark, spark_catalog):
    with pytest.raises(SqlmlError, match="not a valid ONNX model"):
        run(spark_catalog, "CREATE MODEL bad FROM $b", b=b"not onnx at all")
    assert spark.table(TABLE).count() == 0
