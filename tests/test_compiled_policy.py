"""The cost decision: a cached kernel is used at once; otherwise onnxruntime scores until
the rows seen (or announced) repay compiling, the kernel is built in the background and
takes over; refusals, failures and the off switch keep onnxruntime and say why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nbgov.sqlml.execution.compiled import policy
from nbgov.sqlml.execution.compiled import toolchain
from nbgov.sqlml.execution.compiled.build import build, examine
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from nbgov.sqlml.execution.compiled.policy import AdaptiveSession, TreeCompiler
from nbgov.sqlml.models.forest import Leaf
from tests.fixtures.ensembles import TrainedEnsembles, ensemble_model, ort_session, stump

MODEL = "gradient_boosting_regressor"


@pytest.fixture
def cheap_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make onnxruntime look slow, so that a few thousand rows repay compiling."""
    monkeypatch.setattr(policy, "ORT_SECONDS_PER_STEP", 1e-6)


def _batches(X: np.ndarray, size: int) -> list[np.ndarray]:
    return [np.ascontiguousarray(X[i : i + size]) for i in range(0, len(X), size)]


def test_a_cached_kernel_is_used_at_once(tmp_path: Path, trained_ensembles: TrainedEnsembles) -> None:
    model = trained_ensembles.get(MODEL)
    cache = ArtifactCache(tmp_path / "trees")
    build(examine(model.payload), cache)  # an earlier session compiled it
    compiler = TreeCompiler(cache)
    session = compiler.session("m@1", model.payload, ort_session(model.payload))
    assert isinstance(session, AdaptiveSession) and session.compiled
    assert "compiled tree scoring (40 trees" in compiler.note("m@1")
    assert "loaded from the cache" in compiler.note("m@1")
    np.testing.assert_array_equal(session.run(None, {"X": model.X})[0], ort_session(model.payload).run(None, {"X": model.X})[0])
    assert session.rows_compiled == len(model.X) and session.rows_onnxruntime == 0


def test_a_small_first_use_keeps_onnxruntime_and_says_when_it_would_compile(
    tmp_path: Path, trained_ensembles: TrainedEnsembles
) -> None:
    model = trained_ensembles.get(MODEL)
    compiler = TreeCompiler(ArtifactCache(tmp_path / "trees"))
    session = compiler.session("m@1", model.payload, ort_session(model.payload))
    assert isinstance(session, AdaptiveSession)
    session.run(None, {"X": model.X[:100]})
    assert not session.compiled and not session.compiling
    estimate = session.estimate
    assert estimate is not None and estimate.start_rows > 100
    note = compiler.note("m@1")
    assert note.startswith("onnxruntime; compiles once") and f"{estimate.start_rows:,} rows" in note
    assert list((tmp_path / "trees").glob("*.so")) == []  # nothing compiled


def test_enough_rows_compile_in_the_background_and_switch_over(
    tmp_path: Path, trained_ensembles: TrainedEnsembles, cheap_threshold: None
) -> None:
    model = trained_ensembles.get(MODEL)
    expected = ort_session(model.payload).run(None, {"X": model.X})[0]
    compiler = TreeCompiler(ArtifactCache(tmp_path / "trees"))
    session = compiler.session("m@1", model.payload, ort_session(model.payload))
    assert isinstance(session, AdaptiveSession) and session.estimate is not None
    rows = session.estimate.start_rows
    X = np.repeat(model.X, rows // len(model.X) + 2, axis=0)
    results = [session.run(None, {"X": batch})[0] for batch in _batches(X, 512)]
    assert session.compiling or session.compiled  # started once the rows were seen
    assert session.wait(timeout=300)
    results += [session.run(None, {"X": batch})[0] for batch in _batches(model.X, 512)]
    reference = ort_session(model.payload)
    np.testing.assert_array_equal(np.concatenate(results), np.concatenate([reference.run(None, {"X": X})[0], expected]))
    assert session.rows_onnxruntime >= rows and session.rows_compiled >= len(model.X)
    assert "compiled in" in compiler.note("m@1")
    assert len(list((tmp_path / "trees").glob("*.so"))) == 1  # published for the next session


def test_announced_rows_start_the_compile_before_any_row(
    tmp_path: Path, trained_ensembles: TrainedEnsembles, cheap_threshold: None
) -> None:
    model = trained_ensembles.get(MODEL)
    compiler = TreeCompiler(ArtifactCache(tmp_path / "trees"))
    session = compiler.session("m@1", model.payload, ort_session(model.payload))
    assert isinstance(session, AdaptiveSession) and session.estimate is not None
    session.expect(10)
    assert not session.compiling and not session.compiled
    session.expect(session.estimate.start_rows)
    assert session.wait(timeout=300)


def test_ready_tells_the_planner_which_models_score_compiled_without_compiling(
    tmp_path: Path, trained_ensembles: TrainedEnsembles, cheap_threshold: None
) -> None:
    """The optimizer asks ``ready`` before choosing between the full model and a pruned one:
    a kernel loaded in this engine or cached on disk counts, and asking compiles nothing."""
    model = trained_ensembles.get(MODEL)
    compiler = TreeCompiler(ArtifactCache(tmp_path / "trees"))
    assert not compiler.ready("m@1", model.payload)
    assert list((tmp_path / "trees").glob("*.so")) == []  # the question compiled nothing
    session = compiler.session("m@1", model.payload, ort_session(model.payload))
    assert isinstance(session, AdaptiveSession) and not compiler.ready("m@1", model.payload)
    version = compiler.version
    session.expect(10**9)
    assert session.wait(timeout=300)
    assert compiler.ready("m@1", model.payload) and compiler.version > version  # plans are costed again
    # a new engine: the artifact on disk, under any plan key (a pruned model's key too)
    again = TreeCompiler(ArtifactCache(tmp_path / "trees"))
    assert again.ready("another plan", model.payload) and again.get("another plan") is None  # nothing opened
    assert not TreeCompiler(ArtifactCache(tmp_path / "trees"), enabled=False).ready("m@1", model.payload)
    other = trained_ensembles.get("random_forest_regressor").payload
    assert not again.ready("m@2", other)


def test_a_model_without_trees_is_handed_back_untouched(tmp_path: Path, onnx_models: object) -> None:
    logistic = onnx_models.get("logreg")  # type: ignore[attr-defined]
    fallback = ort_session(logistic.onnx)
    compiler = TreeCompiler(ArtifactCache(tmp_path / "trees"))
    assert compiler.session("lr@1", logistic.onnx, fallback) is fallback
    assert compiler.note("lr@1") is None  # nothing to say about a model without trees


def test_trees_that_cannot_be_reproduced_keep_onnxruntime_and_say_why(tmp_path: Path) -> None:
    payload = ensemble_model([stump(0, 0.0, "BRANCH_LEQ", False, Leaf([]), Leaf([(0, 1.0)]))])
    compiler = TreeCompiler(ArtifactCache(tmp_path / "trees"))
    session = compiler.session("odd@1", payload, ort_session(payload))
    assert isinstance(session, AdaptiveSession) and session.candidate is None
    assert compiler.note("odd@1") == "onnxruntime: leaf 1 of tree 0 has no weight"
    session.expect(10**9)
    assert not session.compiling


def test_the_off_switch_hands_back_onnxruntime_itself(tmp_path: Path, trained_ensembles: TrainedEnsembles) -> None:
    model = trained_ensembles.get(MODEL)
    fallback = ort_session(model.payload)
    compiler = TreeCompiler(ArtifactCache(tmp_path / "trees"), enabled=False)
    assert compiler.session("m@1", model.payload, fallback) is fallback
    assert compiler.note("m@1") == "onnxruntime: compiled tree scoring is off (SqlML.compile_trees = False)"


def test_a_failing_compiler_keeps_onnxruntime_and_never_raises(
    tmp_path: Path, trained_ensembles: TrainedEnsembles, cheap_threshold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = trained_ensembles.get("random_forest_binary")
    failing = toolchain.Compiler("/bin/false", "a compiler that always fails")
    monkeypatch.setattr(policy, "find_compiler", lambda: failing)
    monkeypatch.setattr("nbgov.sqlml.execution.compiled.build.find_compiler", lambda: failing)
    compiler = TreeCompiler(ArtifactCache(tmp_path / "trees"))
    session = compiler.session("rf@1", model.payload, ort_session(model.payload))
    assert isinstance(session, AdaptiveSession)
    session.expect(10**9)
    assert not session.wait(timeout=300)
    got = session.run(None, {"X": model.X})
    np.testing.assert_array_equal(got[1], ort_session(model.payload).run(None, {"X": model.X})[1])
    assert compiler.note("rf@1").startswith("onnxruntime: compiling failed (false failed")
