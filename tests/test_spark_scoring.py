"""Scoring on Spark's executors equals onnxruntime on the same rows."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pytest
import sqlglot.expressions as exp

from nbgov.sqlml.catalog.modelfile import from_bytes
from nbgov.sqlml.plan import BoundInput, OnnxPlan
from nbgov.sqlml.planning.mlpredict import slot_counts
from nbgov.sqlml.planning.prepared import Pick, RegisterUdf, ScoringJob
from nbgov.sqlml.spark.scoring import SparkScoring
from tests.fixtures.models import NUMERIC_FEATURES

pytestmark = pytest.mark.spark


def _plan(payload: bytes, columns: list[str]) -> tuple[OnnxPlan, tuple]:
    loaded = from_bytes(payload, label="test")
    version = loaded.as_version("m", 1, "now")
    names = iter(exp.column(n) for n in columns)
    inputs = tuple(
        BoundInput(spec, tuple(next(names) for _ in range(count)))
        for spec, count in zip(version.inputs, slot_counts(version))
    )
    return OnnxPlan(payload, f"{loaded.sha256}:original", inputs), version.outputs


def _reference(payload: bytes, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    matrix = frame[list(NUMERIC_FEATURES)].to_numpy(np.float32)
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": matrix})))


@pytest.fixture
def customers_view(spark, customers_frame):
    frame = customers_frame.copy()
    frame.loc[3, "age"] = np.nan  # a NULL input gives a NULL prediction, the other rows score
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(1, "age", pa.array(frame.age, from_pandas=True))
    spark.createDataFrame(table).createOrReplaceTempView("customers")
    yield frame
    spark.catalog.dropTempView("customers")


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-kernel", "onnxruntime"])
def test_map_in_arrow_scores_on_executors_and_reads_only_picked_outputs(spark, onnx_models, customers_view, compiled):
    """A forest scores on the executors with the kernel the driver compiled and
    broadcast (SqlML.compile_trees), or with onnxruntime: the same values either way."""
    model = onnx_models.get("rf_clf")
    arguments = tuple(f"a{i}" for i in range(len(NUMERIC_FEATURES)))
    plan, outputs = _plan(model.onnx, list(arguments))
    scoring = SparkScoring(spark)
    scoring.compile_trees = compiled
    casts = [f"CAST({n} AS FLOAT) AS a{i}" for i, n in enumerate(NUMERIC_FEATURES)]
    relation = spark.sql(f"SELECT id, {', '.join(casts)} FROM customers")
    job = ScoringJob(
        plan, outputs, arguments, (Pick("label", "output_label"), Pick("p1", "output_probability", 1)),
        "predict(m@1)", "m@1(input float[N,5])",
    )
    scored, shipped = scoring.score(relation, [job], drop=frozenset(arguments))
    assert scored.columns == ["id", "label", "p1"]
    assert "MapInArrow" in scored._jdf.queryExecution().executedPlan().toString()
    result = scored.toArrow().to_pandas().sort_values("id").reset_index(drop=True)
    ((label, stats),) = shipped.stats()  # counted on the executors
    assert shipped.rows() == len(customers_view)
    assert label == "predict(m@1)" and stats.rows == customers_view.age.notna().sum()  # a NULL is not scored
    assert scoring.keys() == [plan.cache_key]  # the bytes were broadcast once
    assert (shipped.jobs[0].kernel is not None) == compiled
    reference = _reference(model.onnx, customers_view.fillna(0.0))
    valid = customers_view.age.notna().to_numpy()
    assert result.label.isna().tolist() == (~valid).tolist()
    np.testing.assert_array_equal(result.label[valid].astype(np.int64), reference["output_label"][valid])
    probabilities = np.array([row[1] for row in reference["output_probability"]], dtype=np.float32)
    np.testing.assert_allclose(result.p1[valid].to_numpy(np.float32), probabilities[valid], atol=1e-6)
    scoring.close()


def test_arrow_udf_gives_predict_value_anywhere_in_sql(spark, onnx_models, customers_view):
    model = onnx_models.get("pipeline_mixed")
    loaded = from_bytes(model.onnx, label="test")
    version = loaded.as_version("churn", 1, "now")
    inputs = tuple(BoundInput(spec, (exp.column(spec.name),)) for spec in version.inputs)
    plan = OnnxPlan(model.onnx, f"{loaded.sha256}:original", inputs)
    scoring = SparkScoring(spark)
    scoring.register_udf(RegisterUdf("nbgov_test_udf", plan, version.outputs, label="predict(churn@1)"), "churn@1(...)")
    names = [spec.name for spec in version.inputs]
    casts = ", ".join(f"CAST({n} AS {'STRING' if n == 'plan' else 'FLOAT'})" for n in names)
    try:
        # the first argument: whether the row reaches the call (guards.py)
        result = spark.sql(
            f"SELECT id, nbgov_test_udf(TRUE, {casts}).output_probability[1] AS p, "
            f"nbgov_test_udf(id % 2 = 0, {casts}).output_label AS even FROM customers "
            f"WHERE nbgov_test_udf(TRUE, {casts}).output_label = 1 ORDER BY id"
        ).toArrow().to_pandas()
    finally:
        spark.sql("DROP TEMPORARY FUNCTION IF EXISTS nbgov_test_udf")
        scoring.close()
    frame = customers_view.dropna()
    expected = frame.assign(p=model.estimator.predict_proba(frame[list(model.X.columns)])[:, 1])
    expected = expected[model.estimator.predict(frame[list(model.X.columns)]) == 1]
    assert result.id.tolist() == expected.id.tolist()
    np.testing.assert_allclose(result.p.to_numpy(), expected.p.to_numpy(), atol=1e-5)
    even = (result.id % 2 == 0).to_numpy()
    assert result.even[even].tolist() == [1] * int(even.sum()) and result.even[~even].isna().all()
