"""The on-disk cache of compiled kernels: reused across sessions, keyed by the exact model
bytes, never loading what it did not write (symlinks, shared directories, corrupted or
foreign libraries), safe with concurrent writers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbgov.sqlml.execution.compiled import cache as cache_module
from nbgov.sqlml.execution.compiled.build import build, examine, load
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from nbgov.sqlml.execution.compiled.native import KernelMismatch
from nbgov.sqlml.execution.compiled.toolchain import Compiler
from nbgov.sqlml.models.forest import Leaf
from tests.fixtures.ensembles import TrainedEnsembles, ensemble_model, ort_session, stump
from tests.fixtures.sqlml import unwrapped

NO_COMPILER = Compiler("/nonexistent/cc", "unused")


def _model(weight: float = 1.0) -> bytes:
    return ensemble_model([stump(0, 0.5, "BRANCH_LEQ", False, Leaf([(0, weight)]), Leaf([(0, 2.0)]))])


def _scores(payload: bytes, cache: ArtifactCache) -> np.ndarray:
    candidate = examine(payload)
    session = load(candidate, build(candidate, cache))
    return session.run(None, {"X": np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32)})[0]


def test_a_second_session_loads_the_artifact_without_compiling(tmp_path: Path, trained_ensembles: TrainedEnsembles) -> None:
    model = trained_ensembles.get("gradient_boosting_binary")
    first = build(examine(model.payload), ArtifactCache(tmp_path / "trees"))
    assert not first.cached and first.info.trees == 30
    # A new cache object on the same folder (what a new kernel does); a compiler that
    # cannot run proves nothing is compiled again.
    candidate = examine(model.payload)
    again = build(candidate, ArtifactCache(tmp_path / "trees"), compiler=NO_COMPILER)
    assert again.cached and again.path == first.path
    got = load(candidate, again).run(None, {"X": model.X})
    expected = ort_session(model.payload).run(None, {"X": model.X})
    np.testing.assert_array_equal(got[1], expected[1])


def test_the_key_follows_the_exact_model_bytes() -> None:
    assert examine(_model(1.0)).key == examine(_model(1.0)).key
    assert examine(_model(1.0)).key != examine(_model(1.5)).key  # a pruned or changed model: its own artifact


def test_the_default_folder_is_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NBGOV_CACHE_DIR", str(tmp_path / "own"))
    assert cache_module.default_directory() == tmp_path / "own" / "trees"
    monkeypatch.delenv("NBGOV_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_module.default_directory() == tmp_path / "xdg" / "nbgov" / "trees"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_module.default_directory() == Path.home() / ".cache" / "nbgov" / "trees"


def test_a_symlinked_cache_folder_is_never_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "trees"
    link.symlink_to(target, target_is_directory=True)
    cache = ArtifactCache(link)
    artifact = build(examine(_model()), cache)
    assert not artifact.cached
    assert list(target.iterdir()) == []  # nothing published through the link
    assert not str(artifact.path).startswith(str(link))
    np.testing.assert_array_equal(_scores(_model(), cache)[:, 0], [1.0, 2.0])  # still scores (private copy)


def test_a_folder_others_can_write_is_not_loaded_from(tmp_path: Path) -> None:
    folder = tmp_path / "trees"
    cache = ArtifactCache(folder)
    candidate = examine(_model())
    build(candidate, cache)
    folder.chmod(0o777)
    assert cache.lookup(candidate.key) is None
    folder.chmod(0o700)
    assert cache.lookup(candidate.key) is not None


def test_a_planted_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "trees")
    cache.prepare()
    candidate = examine(_model())
    victim = tmp_path / "victim.so"
    victim.write_bytes(b"precious")
    cache.library_path(candidate.key).symlink_to(victim)
    artifact = build(candidate, cache)
    assert not artifact.cached
    assert victim.read_bytes() == b"precious"
    assert not cache.library_path(candidate.key).is_symlink()
    np.testing.assert_array_equal(_scores(_model(), cache)[:, 0], [1.0, 2.0])


def test_a_corrupted_library_is_rebuilt_not_loaded(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "trees")
    candidate = examine(_model())
    path = build(candidate, cache).path
    path.write_bytes(path.read_bytes()[:1000])  # truncated: loading it could crash the kernel
    assert cache.lookup(candidate.key) is None
    rebuilt = build(candidate, cache)
    assert not rebuilt.cached and rebuilt.path.stat().st_size > 1000
    np.testing.assert_array_equal(_scores(_model(), cache)[:, 0], [1.0, 2.0])


def test_a_library_of_another_model_under_this_key_is_refused(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "trees")
    mine, other = examine(_model(1.0)), examine(_model(1.5))
    build(mine, cache)
    foreign = build(other, cache)
    # Swap the other model's library in, with metadata that matches its bytes.
    cache.library_path(mine.key).write_bytes(foreign.path.read_bytes())
    meta_path = cache.directory / f"{mine.key}.json"
    meta = json.loads(meta_path.read_text())
    meta["library_xxh3"] = json.loads((cache.directory / f"{other.key}.json").read_text())["library_xxh3"]
    meta_path.write_text(json.dumps(meta))
    artifact = cache.lookup(mine.key)
    assert artifact is not None  # the file checks out on disk ...
    with pytest.raises(KernelMismatch):  # ... but the library itself says which model it is
        load(mine, build(mine, cache))


def test_concurrent_writers_publish_one_complete_artifact(tmp_path: Path) -> None:
    payload_path = tmp_path / "model.onnx"
    payload_path.write_bytes(_model(0.75))
    script = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from nbgov.sqlml.execution.compiled.build import compile_session\n"
        "from nbgov.sqlml.execution.compiled.cache import ArtifactCache\n"
        "session, _ = compile_session(Path(sys.argv[1]).read_bytes(), ArtifactCache(Path(sys.argv[2])))\n"
        "print(session.run(None, {'X': np.zeros((1, 2), dtype=np.float32)})[0][0, 0])\n"
    )
    folder = tmp_path / "trees"
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(payload_path), str(folder)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [w.communicate(timeout=300)[0].strip() for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0]
    assert outputs == ["0.75"] * 3
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and not any(n.startswith(".tmp-") for n in names)  # one .so, one .json, no leftovers
    assert ArtifactCache(folder).lookup(examine(payload_path.read_bytes()).key) is not None


def test_least_recently_used_artifacts_are_evicted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "MAX_ARTIFACTS", 2)
    cache = ArtifactCache(tmp_path / "trees")
    keys = []
    for weight in (1.0, 1.25, 1.5):
        candidate = examine(_model(weight))
        build(candidate, cache)
        keys.append(candidate.key)
        os.utime(cache.directory / f"{candidate.key}.json", (len(keys), len(keys)))
    assert cache.lookup(keys[0]) is None
    assert cache.lookup(keys[2]) is not None


def test_a_pruned_models_own_cached_kernel_keeps_the_pruned_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pruned models have artifacts of their own: when the query's pruned model is cached
    too, it scores compiled at once and (fewer levels) beats the full model's kernel."""
    from nbgov.sqlml.execution.compiled import policy
    from tests.fixtures.ensembles import SELECTIVE_QUERY, selective_engine, selective_forest

    forest, frame = selective_forest()
    cache = tmp_path / "trees"
    monkeypatch.setattr(policy, "ORT_SECONDS_PER_STEP", 1e-4)  # a few hundred rows repay compiling
    first = selective_engine(cache, forest, frame)
    first.execute(SELECTIVE_QUERY)  # compiles the pruned model (the full one is not compiled yet)
    first.executor.trees.wait(timeout=300)
    expected = first.execute(SELECTIVE_QUERY, optimize=False)[-1].df  # ... then the full model
    first.executor.trees.wait(timeout=300)
    first.close()
    assert len(list(cache.glob("*.so"))) == 2
    second = selective_engine(cache, forest, frame)
    try:
        text = unwrapped(second.explain(SELECTIVE_QUERY))
        assert "kept the full model" not in text and "pruned_path=compiled" in text
        pruned = next(line for line in text.splitlines() if line.startswith("predict(m@1): compiled tree scoring"))
        nodes = int(re.search(r"nodes_after=(\d+)", text).group(1))  # type: ignore[union-attr]
        assert "loaded from the cache" in pruned and f"{nodes:,} nodes" in pruned
        result = second.execute(SELECTIVE_QUERY)[-1]
        pd.testing.assert_frame_equal(result.df, expected)
    finally:
        second.close()
