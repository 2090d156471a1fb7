"""What only the Spark engine shows: Spark's plan in EXPLAIN, the same ``Prepared`` run by
either executor, warehouse tables by name with their identity in lineage, scores
computed once however often Spark reads them. Every SQL position of predict, ML.PREDICT,
the model statements and the errors run on both engines in the test_sqlml_* files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nbgov.lineage.sqlreport import read_activity
from nbgov.sqlml.execution.duckdb_executor import DuckDbExecutor
from nbgov.sqlml.planning.prepared import Settings
from nbgov.sqlml.sql.frames import FrameNames
from nbgov.sqlml.sql.statements import split
from tests.fixtures.spark import QUICK_JVM_CONF
from tests.fixtures.sqlml import register, unwrapped

pytestmark = pytest.mark.spark

RF = "predict(rf, age, income, tenure, visits, balance)"


@pytest.fixture
def forest(spark_engine, onnx_models):
    register(spark_engine, "rf", onnx_models.get("rf_clf").onnx)
    return spark_engine


def test_explain_shows_sparks_plan_and_nbgovs_notes(forest, customers_frame):
    frames = {"customers": customers_frame}
    text = unwrapped(forest.explain(f"SELECT id, {RF}.output_label AS l FROM customers WHERE age > 60", frames=frames))
    # the pruned 10-tree forest (~40 levels, 288 nodes) costs Spark more as SQL than its
    # Python worker, per row and per statement (cost.SPARK): scored by mapInArrow
    assert "== Physical Plan ==" in text and "MapInArrow" in text and "ArrowEvalPython" not in text
    assert "pruned" in text and "using age > 60" in text and "kept as ONNX" in text and "ms per statement" in text
    naive = unwrapped(forest.explain(f"SELECT id, {RF}.output_label AS l FROM customers", frames=frames, optimize=False))
    assert "ArrowEvalPython" in naive and "optimizer off" in naive
    assert not [t.name for t in forest.spark.catalog.listTables() if t.isTemporary]  # nothing left registered


def test_one_prepared_runs_on_either_executor(forest, customers_frame, engine):
    """compile -> Prepared once; the Spark and the DuckDB executors run the same object."""
    (statement,) = split(f"SELECT id, {RF}.output_probability[2] AS p FROM customers WHERE tenure < 5 ORDER BY id")
    frames = {"customers": customers_frame}
    results = []
    duckdb_executor = DuckDbExecutor(engine.con, threads=2)
    with forest.executor.exposing(frames, FrameNames(("customers",), exact=True)) as visible:
        prepared = forest.compiler.compile(statement, settings=Settings(), params={}, frames=visible)
        results.append(forest.executor.run(prepared, {}).frame)
    with duckdb_executor.exposing(frames, FrameNames(("customers",), exact=True)):
        results.append(duckdb_executor.run(prepared, {}).frame)
    duckdb_executor.close()
    on_spark, on_duckdb = results
    assert on_spark is not None and on_duckdb is not None and len(on_spark) == (customers_frame.tenure < 5).sum()
    assert on_spark.id.tolist() == on_duckdb.id.tolist()
    np.testing.assert_allclose(on_spark.p.to_numpy(), on_duckdb.p.to_numpy(), atol=1e-6)


def test_warehouse_tables_by_name_and_their_identity_in_lineage(forest, spark, customers_frame, onnx_models):
    spark.createDataFrame(customers_frame).write.saveAsTable("warehouse_customers")
    read = forest.execute(f"CREATE TABLE scored AS SELECT id, {RF}.output_label AS l FROM warehouse_customers")[0]
    activity = read.activity
    assert activity.engine == "spark" and activity.tables_read == ("warehouse_customers",)
    (identity,) = activity.read
    assert identity.table == "warehouse_customers" and identity.provider == "parquet"
    assert identity.location and identity.listing and identity.listing.startswith("xxh3_128:")
    (written,) = activity.written
    assert written.table == "scored" and written.rows == len(customers_frame) and written.hash
    assert activity.to_json()["read"][0]["listing"] == identity.listing
    # in the lineage record: a file listing is weak (the same files, not their content)
    fingerprints = read_activity(activity).table_fingerprints
    assert fingerprints["warehouse_customers"].weak and fingerprints["warehouse_customers"].hash is None
    assert identity.listing in (fingerprints["warehouse_customers"].reason or "")
    assert fingerprints["scored"].hash == written.hash and not fingerprints["scored"].weak
    again = forest.execute("SELECT count(*) AS n FROM scored WHERE l = 1")[0]
    assert again.activity.read[0].listing != identity.listing  # another table, its own files
    model = onnx_models.get("rf_clf")
    assert again.df.n[0] == int(model.estimator.predict(customers_frame[list(model.feature_names)]).sum())


def test_a_sorted_query_scores_each_row_once(forest, customers_frame):
    """Spark samples a sort's input in a job of its own: the scored relation is kept, not recomputed."""
    result = forest.execute(f"SELECT id, {RF}.output_label AS l FROM customers ORDER BY l, id", frames={"customers": customers_frame})[0]
    assert f"scoring: predict(rf@1): {len(customers_frame):,} rows scored" in (result.explain or "")
    assert result.df.l.tolist() == sorted(result.df.l.tolist())


def test_results_reach_python_over_a_unix_socket_not_a_tcp_port(forest, customers_frame, monkeypatch):
    """A session nbgov starts hands results to Python over a private Unix socket: a stray
    local client on a recycled TCP port (a stopped kernel's ZMQ socket reconnecting) once
    took a result's connection and failed the query ("cannot access local variable
    'sockfile'")."""
    import pyspark.util

    opened: list[object] = []
    connect = pyspark.util.local_connect_and_auth

    def spy(conn_info, auth_secret):
        opened.append(conn_info)
        return connect(conn_info, auth_secret)

    monkeypatch.setattr(pyspark.util, "local_connect_and_auth", spy)
    [result] = forest.execute(f"SELECT id, {RF} AS label FROM customers ORDER BY id",
                              frames={"customers": customers_frame})
    assert result.df is not None and len(result.df) == len(customers_frame)
    assert opened, "no result crossed from the JVM to Python"
    assert all(isinstance(each, str) and each.endswith(".sock") for each in opened), opened


def test_a_session_nbgov_starts_runs_its_workers_on_the_kernels_python(tmp_path: Path):
    """A kernel run from a virtualenv that is not first on PATH (a kernelspec naming the
    venv's python): PySpark took its workers' Python from PYSPARK_PYTHON or else ``python3``
    on PATH, never from ``spark.pyspark.python``, so every worker failed to import pyarrow
    and nothing could be scored. Run in a fresh process, with the venv off PATH (its JVM as
    quick to start as the shared session's: the JIT flags leave the workers' Python alone)."""
    script = tmp_path / "start.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        from nbgov.sqlml.spark.session import spark_session
        handle = spark_session("local[1]", {"spark.sql.warehouse.dir": sys.argv[1], **json.loads(sys.argv[2])})
        frame = handle.session.range(10)
        def on_a_worker(batches):
            import nbgov, pyarrow  # what scoring needs there
            yield from batches
        print(frame.mapInArrow(on_a_worker, frame.schema).count())
        handle.session.stop()
    """))
    env = {key: value for key, value in os.environ.items() if key != "PYSPARK_PYTHON"}
    env["PATH"] = os.pathsep.join(entry for entry in env.get("PATH", "").split(os.pathsep)
                                  if entry and not entry.startswith(sys.prefix))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "warehouse"), json.dumps(QUICK_JVM_CONF)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-1] == "10"


def test_a_small_query_over_a_frame_makes_few_jvm_round_trips(spark_engine, monkeypatch):
    """Each py4j call is a round trip to the JVM. A small query over a notebook frame made
    39 once its columns were named as DuckDB's (the frame's view described by a SQL probe,
    ``spark.sql`` given ``args=None``, which PySpark turns into a Java array by reflection);
    now 29: the frame's schema is known in Python and ``args`` is a dict. Garbage-collection
    notices (``m d``), which Python's collector times, are not counted."""
    import pandas as pd
    import py4j.clientserver
    import py4j.java_gateway

    frame = pd.DataFrame({"id": np.arange(20), "Age": np.linspace(18, 90, 20), "income": np.linspace(1, 2, 20)})
    sql = "SELECT id, age, income * 2 AS twice FROM people WHERE age > 40 ORDER BY id"
    for _ in range(2):  # PySpark's first calls look classes up once
        spark_engine.execute(sql, frames={"people": frame})
    sent: list[str] = []
    for connection in (py4j.clientserver.ClientServerConnection, py4j.java_gateway.GatewayConnection):
        original = connection.send_command

        def counted(self, command, *args, _original=original, **kwargs):
            sent.append(command)
            return _original(self, command, *args, **kwargs)

        monkeypatch.setattr(connection, "send_command", counted)
    result = spark_engine.execute(sql, frames={"people": frame})[-1]
    calls = [command for command in sent if not command.startswith("m\nd")]
    assert result.df is not None and list(result.df.columns) == ["id", "Age", "twice"] and len(result.df) > 5
    assert len(calls) <= 32, len(calls)
