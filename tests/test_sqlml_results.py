"""Query results as DataFrames: nested values (predict's STRUCT of several outputs, LIST
outputs) stay Arrow-backed instead of one Python dict per row; every other column has the
dtype DuckDB's own ``df()`` gives."""

from __future__ import annotations

import duckdb
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.execution.results import ResultFetcher, result_frame, unique_names
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.sqlml import register

MIXED = (
    "SELECT 1::HUGEINT AS h, 2.5::DECIMAL(9,2) AS d, 'x' AS s, 'a'::ENUM('a', 'b') AS e, DATE '2020-01-01' AS dt, "
    "TIMESTAMPTZ '2020-01-01 10:00:00+02' AS tz, NULL::INTEGER AS ni, 3::INTEGER AS i, true AS b, INTERVAL 1 DAY AS iv, "
    "'x'::BLOB AS bl, uuid() AS u, 1.5::FLOAT AS f, {'a': 1, 'b': [1.5::FLOAT]} AS st, [1, 2] AS li, "
    "[1, 2]::INTEGER[2] AS ar, 7 AS i FROM range(3)"
)


def test_scalar_columns_keep_duckdbs_dtypes_beside_nested_ones():
    con = duckdb.connect()
    plain = con.sql(MIXED).df()
    frame = result_frame(con, MIXED, None)
    assert list(frame.columns) == list(plain.columns) == unique_names([c for c in con.sql(MIXED).columns])
    for name in plain.columns:
        if name in ("st", "li", "ar"):
            assert isinstance(frame[name].dtype, pd.ArrowDtype), name
            assert frame[name].tolist() == plain[name].map(lambda v: v if not isinstance(v, np.ndarray) else v.tolist()).tolist()
        else:
            assert frame[name].dtype == plain[name].dtype, name
            if name != "u":  # uuid() differs per call
                pd.testing.assert_series_equal(frame[name], plain[name], check_names=True)
    assert frame.st[0] == {"a": 1, "b": [1.5]} and frame.li.list[1].tolist() == [2, 2, 2]


def test_a_result_without_nested_columns_is_duckdbs_own_frame():
    con = duckdb.connect()
    sql = "SELECT range AS id, range * 1.5 AS x, 'v' || range AS s FROM range(5)"
    pd.testing.assert_frame_equal(result_frame(con, sql, None), con.sql(sql).df())


def test_a_query_seen_flat_that_turns_nested_still_reads_its_nested_columns_as_arrow():
    """The fetcher runs a SQL text known to give no nested column at once; the same text over a
    view whose columns became nested (the notebook replaced its frame) is still read right."""
    con = duckdb.connect()
    fetch = ResultFetcher()
    sql = "SELECT id, v FROM t ORDER BY id"
    con.execute("CREATE VIEW t AS SELECT range AS id, range * 2 AS v FROM range(3)")
    first, again = fetch.frame(con, sql, None), fetch.frame(con, sql, None)
    pd.testing.assert_frame_equal(first, again)
    assert again.v.tolist() == [0, 2, 4] and again.v.dtype == np.int64
    con.execute("CREATE OR REPLACE VIEW t AS SELECT range AS id, {'a': range, 'b': [range]} AS v FROM range(3)")
    nested = fetch.frame(con, sql, None)
    assert isinstance(nested.v.dtype, pd.ArrowDtype) and nested.id.dtype == np.int64
    assert nested.v.tolist() == [{"a": 0, "b": [0]}, {"a": 1, "b": [1]}, {"a": 2, "b": [2]}]
    assert fetch.frame(con, sql, None).v.tolist() == nested.v.tolist()


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("kind", ["rf_clf", "gb_clf", "mlp"])
def test_the_whole_result_of_a_classifier_equals_onnxruntime(engine: Engine, onnx_models, customers_frame, kind, optimize):
    """``SELECT id, predict(m, *)``: a STRUCT of label and probabilities per row, as onnxruntime
    computes them, read without a Python object per row."""
    model = onnx_models.get(kind)
    register(engine, "m", model.estimator)  # converted without ZipMap: label and probabilities
    frame = engine.execute("SELECT id, predict(m, *) AS p FROM c ORDER BY id", frames={"c": customers_frame}, optimize=optimize)[0].df
    assert isinstance(frame.p.dtype, pd.ArrowDtype) and frame.id.dtype == np.int64
    session = ort.InferenceSession(engine.catalog.resolve("m").onnx_bytes, providers=["CPUExecutionProvider"])
    label, probabilities = session.run(None, {"input": customers_frame[list(NUMERIC_FEATURES)].to_numpy(np.float32)})
    assert np.array_equal(frame.p.struct.field("label").to_numpy(), label)
    got = np.array(frame.p.struct.field("probabilities").tolist(), dtype=np.float32)
    np.testing.assert_allclose(got, probabilities, rtol=1e-5, atol=1e-6)
    assert frame.p[0]["label"] == label[0]  # one value still reads as a dict


def test_several_result_columns_of_one_name_are_told_apart(engine: Engine, onnx_models, customers_frame):
    register(engine, "m", onnx_models.get("rf_clf").estimator)
    frame = engine.execute("SELECT id, predict(m, *) AS p, id, predict(m, *) AS p FROM c", frames={"c": customers_frame})[0].df
    assert list(frame.columns) == ["id", "p", "id_1", "p_1"]
    assert frame.p.tolist() == frame.p_1.tolist()
