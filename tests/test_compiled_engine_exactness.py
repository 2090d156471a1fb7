"""Compiled tree scoring through the whole engine -- real DuckDB, real onnxruntime, models
trained in fixtures -- against raw onnxruntime on the same float32 matrix: thresholds hit
exactly and one float step either side, NaN (the models' missing-value tracks), ±0 and
±inf all score the same, to a few float32 ulps (onnxruntime's own sum order varies with
its batch size), with labels identical. And without a C compiler on PATH the engine
keeps onnxruntime and says so."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.execution.compiled.build import build, examine
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from tests.fixtures.ensembles import FEATURES, TrainedEnsembles, float32_ulps, ort_session

COLUMNS = [f"f{i}" for i in range(FEATURES)]
SCORED = f"SELECT id, predict(m, {', '.join(COLUMNS)}) AS p FROM t ORDER BY id"
ULPS = 4  # onnxruntime's float32 sums differ by a few ulps with its batch size
ENGINE_MODELS = (
    "random_forest_binary",
    "random_forest_regressor",
    "extra_trees_3_classes",
    "gradient_boosting_regressor",
    "gradient_boosting_3_classes",
    "lightgbm_regressor",
    "lightgbm_binary",
)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of compiled kernels for the module: each model compiles once."""
    return tmp_path_factory.mktemp("engine-kernels")


def _engine_over(payload: bytes, X: np.ndarray, cache: Path, **options: object) -> Engine:
    """An engine holding model ``m`` and table ``t`` (``id`` + the float32 rows of ``X``,
    NaN kept as NaN: Arrow, unlike pandas, does not turn it into NULL)."""
    engine = Engine(progress_bar=False, tree_cache=cache, **options)  # type: ignore[arg-type]
    engine.execute("CREATE MODEL m FROM $payload", params={"payload": payload})
    table = pa.table({"id": pa.array(np.arange(len(X), dtype=np.int64)), **{c: pa.array(X[:, i]) for i, c in enumerate(COLUMNS)}})
    engine.execute("CREATE TABLE t AS SELECT * FROM rows", frames={"rows": table})
    return engine


def _scored(engine: Engine) -> tuple[list[np.ndarray], str]:
    """The engine's outputs as numpy (label and probabilities for a classifier), and its run notes."""
    (result,) = engine.execute(SCORED, optimize=False)
    assert result.df is not None and result.explain is not None
    column = result.df["p"]
    if column.dtype.kind == "f":
        return [column.to_numpy(dtype=np.float32)], result.explain
    values = pa.chunked_array(column.array.__arrow_array__()).combine_chunks()  # Arrow-backed STRUCT
    label = values.field("label").to_numpy(zero_copy_only=False)
    probabilities = np.stack(values.field("probabilities").to_numpy(zero_copy_only=False)).astype(np.float32)
    return [label, probabilities], result.explain


@pytest.mark.parametrize("name", ENGINE_MODELS)
def test_the_engine_scores_compiled_like_raw_onnxruntime(name: str, trained_ensembles: TrainedEnsembles, kernels: Path) -> None:
    trained = trained_ensembles.get(name)
    X = np.ascontiguousarray(trained.X, dtype=np.float32)
    assert np.isnan(X).any() and np.isinf(X).any() and (np.signbit(X) & (X == 0)).any()  # the probes are there
    build(examine(trained.payload), ArtifactCache(kernels))  # a kernel already cached: compiled from the first row
    engine = _engine_over(trained.payload, X, kernels)
    session = ort_session(trained.payload)
    expected = session.run(None, {session.get_inputs()[0].name: X})
    outputs, notes = _scored(engine)
    assert "predict(m@1): compiled tree scoring" in notes and "loaded from the cache" in notes
    if len(outputs) == 1:
        assert float32_ulps(outputs[0], expected[0].reshape(-1)) <= ULPS
    else:
        label, probabilities = outputs
        assert np.array_equal(label, expected[0])
        assert float32_ulps(probabilities, expected[1]) <= ULPS
    session_counts = [engine.executor.trees.get(key) for key in engine.sessions.keys()]
    assert any(s is not None and s.rows_compiled == len(X) and s.rows_onnxruntime == 0 for s in session_counts)
    engine.close()


def test_compiled_and_onnxruntime_engines_return_the_same_frame(trained_ensembles: TrainedEnsembles, kernels: Path) -> None:
    trained = trained_ensembles.get("gradient_boosting_3_classes")
    X = np.ascontiguousarray(trained.X, dtype=np.float32)
    build(examine(trained.payload), ArtifactCache(kernels))
    compiled, plain = (_engine_over(trained.payload, X, kernels, compile_trees=flag) for flag in (True, False))
    (on,) = compiled.execute(SCORED, optimize=False)
    (off,) = plain.execute(SCORED, optimize=False)
    assert on.explain is not None and "compiled tree scoring" in on.explain
    assert off.explain is not None and "compiled tree scoring is off (SqlML.compile_trees = False)" in off.explain
    assert on.df is not None and off.df is not None and len(on.df) == len(X)
    on_values, off_values = _arrow(on.df["p"]), _arrow(off.df["p"])
    assert on_values.field("label").equals(off_values.field("label"))
    got, want = (np.stack(v.field("probabilities").to_numpy(zero_copy_only=False)) for v in (on_values, off_values))
    assert float32_ulps(got, want) <= ULPS
    compiled.close()
    plain.close()


def _arrow(column: object) -> pa.StructArray:
    return pa.chunked_array(column.array.__arrow_array__()).combine_chunks()  # type: ignore[attr-defined]


def test_without_a_c_compiler_the_engine_keeps_onnxruntime_and_says_why(trained_ensembles: TrainedEnsembles, tmp_path: Path) -> None:
    """A real process whose PATH has no gcc, cc or clang (only the Python running it)."""
    trained = trained_ensembles.get("random_forest_regressor")
    model = tmp_path / "forest.onnx"
    model.write_bytes(trained.payload)
    rows = tmp_path / "rows.npy"
    np.save(rows, np.ascontiguousarray(trained.X, dtype=np.float32))
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    script = textwrap.dedent(
        f"""
        import shutil, sys
        import numpy as np, pyarrow as pa
        from nbgov.sqlml.engine import Engine
        assert all(shutil.which(c) is None for c in ("gcc", "cc", "clang")), "a compiler is on PATH"
        X = np.load(sys.argv[2])
        engine = Engine(progress_bar=False, tree_cache=sys.argv[3])
        engine.execute("CREATE MODEL m FROM $payload", params={{"payload": open(sys.argv[1], "rb").read()}})
        table = pa.table({{"id": np.arange(len(X)), **{{f"f{{i}}": X[:, i] for i in range({FEATURES})}}}})
        engine.execute("CREATE TABLE t AS SELECT * FROM rows", frames={{"rows": table}})
        print(engine.explain({SCORED!r}, optimize=False))
        (result,) = engine.execute({SCORED!r}, optimize=False)
        print(result.explain)
        np.save(sys.argv[4], result.df["p"].to_numpy(dtype=np.float32))
        """
    )
    out = tmp_path / "scores.npy"
    cache = tmp_path / "kernels"
    environment = {**os.environ, "PATH": str(bare)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(model), str(rows), str(cache), str(out)],
        env=environment, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    paths = [line for line in done.stdout.splitlines() if line.startswith("predict(m@1): ") and "optimizer" not in line]
    assert paths == ["predict(m@1): onnxruntime: no C compiler (gcc, cc or clang) on this machine"] * 2, done.stdout  # explain, then run
    session = ort_session(trained.payload)
    expected = session.run(None, {session.get_inputs()[0].name: np.load(rows)})[0].reshape(-1)
    assert float32_ulps(np.load(out), expected) <= ULPS
    assert not cache.exists() or not any(cache.glob("*.so"))  # nothing half-built left behind
