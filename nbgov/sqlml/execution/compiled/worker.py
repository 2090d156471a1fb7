"""Compiled kernels on Spark executors (or any other process that did not compile them).

The driver ships the library it built, as bytes, with the model; an executor loads it
when it can -- same operating system and architecture, the library's own key
matching the model -- and otherwise scores with onnxruntime. Two calls::

    # on the driver, once per model (None: keep onnxruntime everywhere)
    bundle = bundle_for(model_bytes)

    # on an executor, inside mapInArrow / a pandas UDF, per batch (memoised per process)
    session = worker_session(model_bytes, bundle, lambda: open_session(model_bytes))
    outputs = session.run(None, {input_name: matrix})

Both never raise for a model or a machine that cannot use compiled code: the driver
gets None, the executor gets ``fallback()``.

An executor that scores ``ScoringJob``s with ``batching.score_batch`` takes its scorer
from ``executor_scorer`` instead of ``udf.make_scorer`` -- one call, same ``Scorer``::

    # driver: ship the kernel beside the job when SqlML.compile_trees is on
    kernel = bundle_for(job.plan.model_bytes) if compile_trees else None
    # executor, per batch (sessions memoised per process)
    run = Scoring(job, executor_scorer(SESSIONS, job.plan, job.outputs, kernel, regions=job.regions))
"""

from __future__ import annotations

import platform
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from nbgov.sqlml.execution.compiled.build import Artifact, build, examine, load
from nbgov.sqlml.execution.compiled.cache import ArtifactCache, ArtifactInfo, CacheError
from nbgov.sqlml.execution.compiled.ensemble import NotCompilable
from nbgov.sqlml.execution.compiled.native import KernelMismatch
from nbgov.sqlml.execution.compiled.toolchain import ToolchainError
from nbgov.sqlml.execution.scoring import Scorer, SessionCache
from nbgov.sqlml.execution.udf import make_scorer
from nbgov.sqlml.models.runtime import RunsLikeOnnxruntime
from nbgov.sqlml.plan import OnnxPlan, TensorSpec


@dataclass(frozen=True)
class KernelBundle:
    """A compiled kernel as bytes (picklable, for Spark's closures or broadcasts)."""

    key: str
    platform: str  # where it runs: operating system and machine
    info: ArtifactInfo
    library: bytes = field(repr=False)


def host_platform() -> str:
    return f"{sys.platform}-{platform.machine()}"


def bundle_for(payload: bytes, cache: ArtifactCache | None = None) -> KernelBundle | None:
    """The kernel for ``payload`` (from the cache, compiled now if needed), or None when
    its trees cannot be compiled here."""
    try:
        candidate = examine(payload)
        artifact = build(candidate, cache or ArtifactCache())
        return KernelBundle(candidate.key, host_platform(), artifact.info, artifact.path.read_bytes())
    except (NotCompilable, ToolchainError, CacheError, OSError):
        return None


_LOADED: dict[str, tuple[bytes, RunsLikeOnnxruntime]] = {}  # key -> (model bytes, compiled session)
_LOCK = threading.Lock()


def worker_session(
    payload: bytes,
    bundle: KernelBundle | None,
    fallback: Callable[[], RunsLikeOnnxruntime],
    cache: ArtifactCache | None = None,
) -> RunsLikeOnnxruntime:
    """The compiled session when ``bundle`` loads in this process for ``payload``, else
    ``fallback()``. Compiled sessions are kept per process, so calling this for every
    batch is cheap."""
    if bundle is None or bundle.platform != host_platform():
        return fallback()
    with _LOCK:
        known = _LOADED.get(bundle.key)
        if known is not None and (known[0] is payload or known[0] == payload):
            return known[1]
        session = _load(payload, bundle, cache)
        if session is None:
            return fallback()
        _LOADED[bundle.key] = (payload, session)
        return session


def executor_scorer(
    sessions: SessionCache,
    plan: OnnxPlan,
    outputs: tuple[TensorSpec, ...],
    kernel: KernelBundle | None,
    *,
    regions: bool = True,
    cache: ArtifactCache | None = None,
    label: str = "predict()",
) -> Scorer:
    """The scorer a Spark executor uses for ``plan``: the shipped ``kernel`` when it loads in
    this process for the plan's model bytes, else ``sessions``' onnxruntime session (opened
    only then). Results are the same either way; only the time differs."""
    session = worker_session(plan.model_bytes, kernel, lambda: sessions.get(plan.cache_key, plan.model_bytes), cache)
    return make_scorer(sessions, plan, outputs, regions=regions, session=session, label=label)


def _load(payload: bytes, bundle: KernelBundle, cache: ArtifactCache | None) -> RunsLikeOnnxruntime | None:
    try:
        candidate = examine(payload)
        if candidate.model_sha256 != bundle.info.model_sha256:
            return None  # a bundle built for other model bytes
        # The executor's compiler (if any) may differ from the driver's: the shipped
        # library's key is the one it answers to.
        candidate = replace(candidate, key=bundle.key)
        path = _place(bundle, cache or ArtifactCache())
        return load(candidate, Artifact(path, bundle.info, cached=True))
    except (NotCompilable, KernelMismatch, OSError):
        return None


def _place(bundle: KernelBundle, cache: ArtifactCache) -> Path:
    """The library on this machine's disk: in its cache, or a private folder when the
    cache cannot be used."""
    found = cache.lookup(bundle.key)
    if found is not None:
        return found[0]
    folder = Path(tempfile.mkdtemp(prefix="nbgov-trees-worker-"))
    shipped = folder / "kernel.so"
    shipped.write_bytes(bundle.library)
    try:
        cache.store(bundle.key, shipped, bundle.info)
    except (CacheError, OSError):
        return shipped
    found = cache.lookup(bundle.key)
    return found[0] if found is not None else shipped
