"""Shipping a compiled kernel to another process (a Spark executor): it loads when the
machine and the model bytes match, otherwise the executor keeps onnxruntime."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.execution.batching import Scoring, score_batch
from nbgov.sqlml.execution.compiled import worker
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from nbgov.sqlml.execution.compiled.session import CompiledSession
from nbgov.sqlml.execution.compiled.worker import bundle_for, worker_session
from nbgov.sqlml.execution.scoring import SessionCache
from nbgov.sqlml.execution.udf import make_scorer
from nbgov.sqlml.planning.prepared import ScoreRelation, Settings
from nbgov.sqlml.sql.statements import split
from tests.fixtures.ensembles import TrainedEnsembles, float32_ulps, ort_session

EXECUTOR = """
import pickle, sys
import numpy as np
from pathlib import Path
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from nbgov.sqlml.execution.compiled.session import CompiledSession
from nbgov.sqlml.execution.compiled.worker import worker_session
from nbgov.sqlml.models.runtime import open_session
payload, bundle, X = pickle.loads(Path(sys.argv[1]).read_bytes())
session = worker_session(payload, bundle, lambda: open_session(payload), ArtifactCache(Path(sys.argv[2])))
outputs = session.run(None, {"X": X})
Path(sys.argv[3]).write_bytes(pickle.dumps((isinstance(session, CompiledSession), outputs)))
"""


def test_an_executor_without_a_compiler_loads_the_shipped_kernel(tmp_path: Path, trained_ensembles: TrainedEnsembles) -> None:
    model = trained_ensembles.get("random_forest_3_classes")
    bundle = bundle_for(model.payload, ArtifactCache(tmp_path / "driver"))
    assert bundle is not None and bundle.library.startswith(b"\x7fELF")
    job = tmp_path / "job.pkl"
    job.write_bytes(pickle.dumps((model.payload, bundle, model.X)))
    env = {**os.environ, "PATH": str(tmp_path / "no-tools")}  # no gcc/cc/clang on this "executor"
    done = subprocess.run(
        [sys.executable, "-c", EXECUTOR, str(job), str(tmp_path / "executor"), str(tmp_path / "out.pkl")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    compiled, outputs = pickle.loads((tmp_path / "out.pkl").read_bytes())
    assert compiled
    for got, expected in zip(outputs, ort_session(model.payload).run(None, {"X": model.X})):
        np.testing.assert_array_equal(got, expected)


def test_another_machine_or_other_model_bytes_keep_onnxruntime(tmp_path: Path, trained_ensembles: TrainedEnsembles) -> None:
    model = trained_ensembles.get("gradient_boosting_binary")
    other = trained_ensembles.get("random_forest_binary")
    bundle = bundle_for(model.payload, ArtifactCache(tmp_path / "driver"))
    assert bundle is not None
    fallback = ort_session(model.payload)
    cache = ArtifactCache(tmp_path / "executor")
    elsewhere = replace(bundle, platform="plan9-pdp11")
    assert worker_session(model.payload, elsewhere, lambda: fallback, cache) is fallback
    wrong = ort_session(other.payload)
    assert worker_session(other.payload, bundle, lambda: wrong, cache) is wrong
    assert not cache.directory.exists() or list(cache.directory.glob("*.so")) == []


def test_sessions_are_loaded_once_per_process(tmp_path: Path, trained_ensembles: TrainedEnsembles) -> None:
    model = trained_ensembles.get("gradient_boosting_3_classes")
    bundle = bundle_for(model.payload, ArtifactCache(tmp_path / "driver"))
    assert bundle is not None
    worker._LOADED.pop(bundle.key, None)
    first = worker_session(model.payload, bundle, lambda: ort_session(model.payload), ArtifactCache(tmp_path / "executor"))
    again = worker_session(model.payload, bundle, lambda: ort_session(model.payload), ArtifactCache(tmp_path / "executor"))
    assert isinstance(first, CompiledSession) and again is first


def test_a_model_without_trees_has_no_bundle(tmp_path: Path, onnx_models: object) -> None:
    assert bundle_for(onnx_models.get("mlp").onnx, ArtifactCache(tmp_path / "driver")) is None  # type: ignore[attr-defined]


SCORE_JOB = """
import pickle, sys
from pathlib import Path
from nbgov.sqlml.execution.batching import Scoring, score_batch
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from nbgov.sqlml.execution.compiled.session import CompiledSession
from nbgov.sqlml.execution.compiled.worker import executor_scorer
from nbgov.sqlml.execution.scoring import SessionCache
job, kernel, batch, drop = pickle.loads(Path(sys.argv[1]).read_bytes())
sessions = SessionCache()
run = Scoring(job, executor_scorer(sessions, job.plan, job.outputs, kernel, regions=job.regions, cache=ArtifactCache(Path(sys.argv[2]))))
scored = score_batch(batch, [run], drop)
Path(sys.argv[3]).write_bytes(pickle.dumps((isinstance(run.scorer.session, CompiledSession), len(sessions), scored)))
"""


@pytest.mark.parametrize("shipped", [True, False], ids=["kernel shipped", "no kernel"])
def test_an_executor_scores_a_job_batch_like_onnxruntime(shipped: bool, tmp_path: Path, trained_ensembles: TrainedEnsembles) -> None:
    """What a Spark executor does with a ``ScoringJob`` the engine planned: score an Arrow
    batch with the shipped kernel (no compiler on the executor), or with onnxruntime
    when none was shipped -- the same columns either way."""
    model = trained_ensembles.get("random_forest_3_classes")
    X = np.ascontiguousarray(model.X, dtype=np.float32)
    columns = [f"f{i}" for i in range(X.shape[1])]
    engine = Engine(progress_bar=False, tree_cache=tmp_path / "engine")
    engine.execute("CREATE MODEL m FROM $payload", params={"payload": model.payload})
    rows = pa.table({"id": np.arange(len(X)), **{c: X[:, i] for i, c in enumerate(columns)}})
    engine.execute("CREATE TABLE t AS SELECT * FROM rows", frames={"rows": rows})
    (statement,) = split(f"SELECT id, predict(m, {', '.join(columns)}) AS p FROM t")
    prepared = engine.compiler.compile(statement, settings=Settings(optimize=True, batch_rows=engine.batch_rows, threads=1), params={}, frames=())
    (step,) = [s for s in prepared.steps if isinstance(s, ScoreRelation)]
    (job,) = step.jobs
    batch = engine.con.sql(step.query.sql("duckdb")).to_arrow_table()
    kernel = bundle_for(job.plan.model_bytes, ArtifactCache(tmp_path / "driver")) if shipped else None
    assert (kernel is not None) == shipped
    (tmp_path / "job.pkl").write_bytes(pickle.dumps((job, kernel, batch, step.drop)))
    done = subprocess.run(
        [sys.executable, "-c", SCORE_JOB, str(tmp_path / "job.pkl"), str(tmp_path / "executor"), str(tmp_path / "out.pkl")],
        env={**os.environ, "PATH": str(tmp_path / "no-tools")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    compiled, onnxruntime_sessions, scored = pickle.loads((tmp_path / "out.pkl").read_bytes())
    assert compiled == shipped and onnxruntime_sessions == (0 if shipped else 1)  # onnxruntime opened only when needed
    expected = score_batch(batch, [Scoring(job, make_scorer(SessionCache(), job.plan, job.outputs, regions=job.regions))], step.drop)
    assert scored.schema == expected.schema and scored.num_rows == len(X)
    for name in job.columns:
        got, want = (t.column(name).combine_chunks() for t in (scored, expected))
        assert got.field("label").equals(want.field("label"))
        probabilities = [np.stack(v.field("probabilities").to_numpy(zero_copy_only=False)) for v in (got, want)]
        assert float32_ulps(*probabilities) <= 4
    engine.close()
