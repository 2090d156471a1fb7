"""Compiled tree scoring inside the engine: ML.PREDICT and batched or scalar predict()
give the same rows with and without it, --explain says which path runs and why, a new
engine picks up the kernel an earlier one compiled, and %config SqlML.compile_trees
turns it off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.execution.compiled import policy
from nbgov.sqlml.execution.compiled.policy import AdaptiveSession
from tests.fixtures.models import NUMERIC_FEATURES, customers
from tests.fixtures.sqlml import register, unwrapped

FEATURES = ", ".join(NUMERIC_FEATURES)
ML_PREDICT = "SELECT id, predicted_variable FROM ML.PREDICT(MODEL m, TABLE t) ORDER BY id"
BATCHED = f"SELECT id, predict(m, {FEATURES}) AS p FROM t ORDER BY id"
SCALAR = f"SELECT id, predict(m, {FEATURES}) AS p FROM t ORDER BY id LIMIT 5000"  # LIMIT: scored by a UDF


@pytest.fixture
def cheap_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make onnxruntime look slow: a few thousand rows then repay compiling."""
    monkeypatch.setattr(policy, "ORT_SECONDS_PER_STEP", 1e-6)


@pytest.fixture
def table() -> pd.DataFrame:
    frame = customers(20_000, seed=3)
    frame.loc[::97, "income"] = np.nan  # NULL inputs stay NULL outputs
    return frame


def _engine(tmp_path: Path, onnx_models: object, table: pd.DataFrame, **options: object) -> Engine:
    engine = Engine(progress_bar=False, tree_cache=tmp_path / "trees", **options)  # type: ignore[arg-type]
    register(engine, "m", onnx_models.get("gb_reg_100x8").estimator)  # type: ignore[attr-defined]
    engine.execute("CREATE TABLE t AS SELECT * FROM frame", frames={"frame": table})
    return engine


def _rows(engine: Engine, sql: str) -> pd.DataFrame:
    (result,) = engine.execute(sql)
    assert result.df is not None
    return result.df


def test_the_first_large_statement_compiles_and_switches_over(
    tmp_path: Path, onnx_models: object, table: pd.DataFrame, cheap_compiles: None
) -> None:
    reference = _engine(tmp_path / "off", onnx_models, table, compile_trees=False)
    expected = {sql: _rows(reference, sql) for sql in (ML_PREDICT, BATCHED, SCALAR)}
    engine = _engine(tmp_path, onnx_models, table)
    before = unwrapped(engine.explain(ML_PREDICT))
    assert "ML.PREDICT(MODEL m@1): onnxruntime; compiles once" in before
    (first,) = engine.execute(ML_PREDICT)
    pd.testing.assert_frame_equal(first.df, expected[ML_PREDICT])
    assert first.explain is not None and "ML.PREDICT(MODEL m@1): " in first.explain
    engine.executor.trees.wait(timeout=300)
    after = unwrapped(engine.explain(ML_PREDICT))
    assert "ML.PREDICT(MODEL m@1): compiled tree scoring (100 trees" in after and "compiled in" in after
    for sql in (ML_PREDICT, BATCHED, SCALAR):
        (result,) = engine.execute(sql)
        pd.testing.assert_frame_equal(result.df, expected[sql])
        assert result.explain is not None and "compiled tree scoring" in result.explain
    sessions = [engine.executor.trees.get(key) for key in engine.sessions.keys()]
    assert all(isinstance(s, AdaptiveSession) and s.compiled and s.rows_compiled > 0 for s in sessions)
    assert sum(s.rows_onnxruntime for s in sessions if s is not None) > 0  # the first run started on onnxruntime
    engine.close()
    reference.close()


def test_a_new_engine_loads_the_kernel_an_earlier_one_compiled(
    tmp_path: Path, onnx_models: object, table: pd.DataFrame, cheap_compiles: None
) -> None:
    first = _engine(tmp_path, onnx_models, table)
    first.execute(ML_PREDICT)
    first.executor.trees.wait(timeout=300)
    first.close()
    second = _engine(tmp_path, onnx_models, table)
    note = unwrapped(second.explain(ML_PREDICT))
    assert "compiled tree scoring (100 trees" in note and "loaded from the cache" in note
    (result,) = second.execute(ML_PREDICT)
    assert result.explain is not None and "loaded from the cache" in result.explain
    second.close()


def test_small_tables_keep_onnxruntime_and_the_note_says_when_it_would_pay(
    tmp_path: Path, onnx_models: object, table: pd.DataFrame
) -> None:
    engine = _engine(tmp_path, onnx_models, table.head(300))
    (result,) = engine.execute(ML_PREDICT)
    assert result.explain is not None
    line = next(n for n in result.explain.splitlines() if n.startswith("ML.PREDICT(MODEL m@1): onnxruntime"))
    assert "compiles once" in line and "repays itself after" in line
    engine.executor.trees.wait(timeout=60)
    assert list((tmp_path / "trees").glob("*.so")) == []  # nothing compiled for 300 rows
    engine.close()


def test_models_without_trees_get_no_note(tmp_path: Path, onnx_models: object, table: pd.DataFrame) -> None:
    engine = Engine(progress_bar=False, tree_cache=tmp_path / "trees")
    register(engine, "lr", onnx_models.get("logreg").estimator)  # type: ignore[attr-defined]
    engine.execute("CREATE TABLE t AS SELECT * FROM frame", frames={"frame": table.head(50)})
    explained = engine.explain("SELECT * FROM ML.PREDICT(MODEL lr, TABLE t)", optimize=False)
    assert "tree" not in explained.lower()
    engine.close()


def test_the_setting_turns_compiled_scoring_off(sql_shell: object, onnx_models: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell = sql_shell
    shell.user_ns["payload"] = onnx_models.get("rf_reg").estimator  # type: ignore[attr-defined,union-attr]
    shell.user_ns["frame"] = customers(200)  # type: ignore[union-attr]
    for code in ("%%sqlml\nCREATE MODEL forest FROM $payload", "%%sqlml\nCREATE TABLE c AS SELECT * FROM frame"):
        shell.run_cell(code).raise_error()  # type: ignore[union-attr]
    capsys.readouterr()
    shell.run_cell("%%sqlml --explain\nSELECT * FROM ML.PREDICT(MODEL forest, TABLE c)").raise_error()  # type: ignore[union-attr]
    assert "ML.PREDICT(MODEL forest@1): onnxruntime; compiles once" in capsys.readouterr().out
    shell.run_cell("%config SqlML.compile_trees = False").raise_error()  # type: ignore[union-attr]
    shell.run_cell("%%sqlml --explain\nSELECT * FROM ML.PREDICT(MODEL forest, TABLE c)").raise_error()  # type: ignore[union-attr]
    out = capsys.readouterr().out
    assert "ML.PREDICT(MODEL forest@1): onnxruntime: compiled tree scoring is off (SqlML.compile_trees = False)" in out
