"""When to compile a tree ensemble, and the session that switches over when it is ready.

Compiling costs about half a second to a few seconds (measured: 0.4 s + ~20 µs per
node with gcc here); it pays back ``0.75 x`` onnxruntime's time on every row scored
afterwards (the kernel runs in about a quarter of it). So per model:

- a library already in the disk cache is loaded and used at once (milliseconds);
- otherwise onnxruntime scores, and the rows it scores are counted; once the rows
  seen -- or the rows a caller says are coming -- reach a quarter of the break-even
  count (the rows whose savings equal the compile time), the kernel is compiled on a
  background thread while onnxruntime keeps scoring (on one core fewer, so the
  compiler is not starved), and every slice of rows after it is ready runs compiled. A first use on a large table therefore switches mid-statement;
  one on a small table keeps onnxruntime and, if it is big enough to matter, leaves
  a compiled kernel for the next statement (and, through the cache, the next session);
- a model the kernel cannot reproduce exactly, a failed compile, or
  ``SqlML.compile_trees = False`` keeps onnxruntime, and the note says why.

Everything here is owned by one engine; nothing is global.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from nbgov.sqlml.execution.compiled.build import (
    Artifact, Candidate, build, examine, generator_version, has_tree_ensemble, load,
)
from nbgov.sqlml.execution.compiled.cache import ArtifactCache, cache_key
from nbgov.sqlml.execution.compiled.ensemble import NoTreeEnsemble, NotCompilable
from nbgov.sqlml.execution.compiled.layout import tree_depth
from nbgov.sqlml.execution.compiled.native import KernelMismatch
from nbgov.sqlml.execution.compiled.session import CompiledSession
from nbgov.sqlml.execution.compiled.toolchain import find_compiler
from nbgov.sqlml.models.runtime import RunsLikeOnnxruntime
from nbgov.unrecorded import unrecorded

COMPILE_SECONDS_FIXED = 0.4
COMPILE_SECONDS_PER_NODE = 20e-6
ORT_SECONDS_PER_STEP = 5e-9  # one row through one tree level, single-threaded onnxruntime
COMPILED_SHARE = 0.25  # compiled time / onnxruntime time, measured on forests and boosted trees
START_SHARE = 0.25  # compile once this share of the break-even rows has been seen
SWITCH_ROWS = 16_384  # onnxruntime slices while a kernel is on its way


@dataclass(frozen=True)
class Estimate:
    """The cost decision's numbers for one model."""

    compile_seconds: float
    ort_seconds_per_row: float

    @property
    def break_even_rows(self) -> int:
        saving = self.ort_seconds_per_row * (1 - COMPILED_SHARE)
        return int(self.compile_seconds / saving) + 1

    @property
    def start_rows(self) -> int:
        return max(1, int(self.break_even_rows * START_SHARE))


def estimate(candidate: Candidate) -> Estimate:
    ensemble = candidate.ensemble
    steps = sum(tree_depth(tree) for tree in ensemble.forest.trees)
    return Estimate(
        compile_seconds=COMPILE_SECONDS_FIXED + COMPILE_SECONDS_PER_NODE * ensemble.node_count,
        ort_seconds_per_row=ORT_SECONDS_PER_STEP * max(steps, 1),
    )


class AdaptiveSession:
    """onnxruntime until the compiled kernel is ready, then the kernel; counts rows by path.

    Shared by every statement that scores the same model bytes in one engine."""

    def __init__(self, fallback: RunsLikeOnnxruntime, candidate: Candidate | None, reason: str, owner: TreeCompiler) -> None:
        self._fallback = fallback
        self.candidate = candidate
        self.reason = reason  # why onnxruntime runs (until compiled)
        self._owner = owner
        self._lock = threading.Lock()
        self._while_compiling = threading.BoundedSemaphore(max(1, (os.cpu_count() or 2) - 1))
        self._compiled: CompiledSession | None = None
        self._pending: Future[CompiledSession] | None = None
        self.artifact: Artifact | None = None
        self.rows_onnxruntime = 0
        self.rows_compiled = 0
        self.estimate = estimate(candidate) if candidate is not None else None

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    @property
    def compiling(self) -> bool:
        return self._pending is not None and not self._pending.done()

    def expect(self, rows: int | None) -> None:
        """A caller knows how many rows are coming: compile now if they are worth it."""
        if rows is not None and self.estimate is not None and rows >= self.estimate.start_rows:
            self._start()

    def run(self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray], run_options: object = None) -> list[np.ndarray]:
        rows = len(next(iter(feeds.values()))) if feeds else 0
        if self._ready() is not None or self.candidate is None or rows <= SWITCH_ROWS:
            return self._run(output_names, feeds, rows, run_options)
        # While a kernel may become ready, score in slices so a large batch switches over
        # within the call instead of after it.
        parts = [
            self._run(output_names, {name: feed[start : start + SWITCH_ROWS] for name, feed in feeds.items()}, min(SWITCH_ROWS, rows - start), run_options)
            for start in range(0, rows, SWITCH_ROWS)
        ]
        return [np.concatenate([part[i] for part in parts]) for i in range(len(parts[0]))]

    def _run(self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray], rows: int, run_options: object) -> list[np.ndarray]:
        compiled = self._ready()
        if compiled is not None:
            result = compiled.run(output_names, feeds)
            with self._lock:
                self.rows_compiled += rows
            return result
        if self.compiling:
            # One core compiles: onnxruntime gets the others, one slice per core, so the
            # compiler is not starved and the kernel takes over as early as it can.
            with self._while_compiling:
                compiled = self._ready()
                if compiled is not None:
                    return self._run(output_names, feeds, rows, run_options)
                result = self._fallback.run(output_names, feeds, run_options)
        else:
            result = self._fallback.run(output_names, feeds, run_options)
        with self._lock:
            self.rows_onnxruntime += rows
            seen = self.rows_onnxruntime
        if self.estimate is not None and seen >= self.estimate.start_rows:
            self._start()
        return result

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a compile under way has finished; True when the kernel is in use."""
        pending = self._pending
        if pending is not None:
            try:
                pending.result(timeout=timeout)
            except Exception:  # noqa: BLE001 - recorded as the reason by _finished
                pass
        return self._ready() is not None

    def _ready(self) -> CompiledSession | None:
        if self._compiled is None and self._pending is not None and self._pending.done():
            self._finished(self._pending)
        return self._compiled

    def _start(self) -> None:
        with self._lock:
            if self.candidate is None or self._compiled is not None or self._pending is not None:
                return
            self._pending = self._owner.submit(self)

    def _finished(self, future: Future[CompiledSession]) -> None:
        with self._lock:
            if self._compiled is not None or self.candidate is None:
                return
            try:
                self._compiled = future.result()
                self._owner.changed()
            except Exception as error:  # noqa: BLE001 - a background failure never reaches the query
                self.candidate = None  # do not try again in this engine
                self.reason = f"compiling failed ({str(error).splitlines()[0][:160] if str(error) else type(error).__name__})"

    def use(self, session: CompiledSession, artifact: Artifact) -> None:
        with self._lock:
            self._compiled = session
            self.artifact = artifact
        self._owner.changed()

    def counts(self) -> tuple[int, int]:
        """Rows scored so far by onnxruntime and by the compiled kernel."""
        with self._lock:
            return self.rows_onnxruntime, self.rows_compiled

    def run_note(self, before: tuple[int, int]) -> str:
        """What scored the rows since ``counts()`` was ``before``, and why."""
        onnxruntime, compiled = (now - then for now, then in zip(self.counts(), before))
        if onnxruntime and compiled:
            return f"{self.note()}; onnxruntime scored the first {onnxruntime:,} rows while it compiled, the kernel {compiled:,}"
        if onnxruntime and (self.compiling or self.compiled):
            state = "is ready" if self.compiled else "is being built"
            return f"onnxruntime scored these {onnxruntime:,} rows; they repay compiling: a compiled kernel {state} for the next statements"
        return self.note()

    def note(self) -> str:
        """What runs and why, for --explain."""
        if self._ready() is not None:
            artifact = self.artifact
            assert self.candidate is not None and artifact is not None
            origin = "loaded from the cache" if artifact.cached else f"compiled in {artifact.info.compile_seconds:.2f} s"
            return f"compiled tree scoring ({self.candidate.summary}; kernel {artifact.info.key[:8]}, {origin})"
        if self.candidate is None or self.estimate is None:
            return f"onnxruntime: {self.reason}"
        if self.compiling:
            return "onnxruntime while the compiled kernel is being built; compiled scoring takes over when it is ready"
        e = self.estimate
        return (
            f"onnxruntime; compiles once {e.start_rows:,} rows are scored "
            f"(~{e.compile_seconds:.1f} s of compiling repays itself after ~{e.break_even_rows:,} rows)"
        )


class TreeCompiler:
    """Per engine: one AdaptiveSession per tree model, one compile at a time in the background."""

    def __init__(self, cache: ArtifactCache | None = None, enabled: bool = True) -> None:
        self.cache = cache or ArtifactCache()
        self.enabled = enabled
        self._sessions: dict[str, AdaptiveSession | None] = {}  # None: a model without trees
        self._trees_off: dict[str, bool] = {}  # while off: whether each model has trees (for notes)
        self._lock = threading.Lock()
        self._worker: ThreadPoolExecutor | None = None
        # moves whenever a model starts scoring compiled: plans costed before may now choose
        # otherwise (the engine keys its plan cache by it)
        self.version = 0

    def changed(self) -> None:
        """A model started scoring compiled (or the switch moved). A plain counter, never
        under ``_lock``: sessions call it while ``session()`` holds that lock."""
        self.version += 1

    def ready(self, key: str, payload: bytes) -> bool:
        """Whether ``payload`` (the plan of ``key``) would score compiled at once, with no
        compiling to pay: its kernel loaded in this engine, or its artifact in the disk cache
        (the planner's question: a cached full model can beat a pruned one left to
        onnxruntime). Opens nothing and compiles nothing."""
        if not self.enabled:
            return False
        adaptive = self.get(key)
        if adaptive is not None and adaptive._ready() is not None:  # noqa: SLF001 - same module
            return True
        with self._lock:
            opened = key in self._sessions
        if opened:
            return False  # not a tree model, not compilable, or a cached kernel already failed to load
        compiler = find_compiler()
        identity = compiler.identity if compiler is not None else "no-compiler"
        artifact = cache_key(hashlib.sha256(payload).hexdigest(), generator_version(), identity)
        try:
            with unrecorded():  # the cache is nbgov's, not the notebook's data
                return self.cache.lookup(artifact) is not None
        except Exception:  # noqa: BLE001 - a question about an optional speed-up never fails a query
            return False

    def session(self, key: str, payload: bytes, fallback: RunsLikeOnnxruntime) -> RunsLikeOnnxruntime:
        """What to score ``payload`` with: an AdaptiveSession for a tree model, else (and
        when compiled scoring is off) ``fallback`` itself. ``key`` names the model bytes
        (the plan's cache key)."""
        if not self.enabled:
            with self._lock:
                if key not in self._trees_off:
                    self._trees_off[key] = has_tree_ensemble(payload)
            return fallback
        with self._lock:
            if key not in self._sessions:
                try:
                    self._sessions[key] = self._open(payload, fallback)
                except Exception as error:  # noqa: BLE001 - an optional speed-up never fails a query
                    self._sessions[key] = AdaptiveSession(fallback, None, f"compiled scoring failed ({type(error).__name__})", self)
            adaptive = self._sessions[key]
        return fallback if adaptive is None else adaptive

    def note(self, key: str) -> str | None:
        """What scores the model of ``key`` and why (None: not a tree model, or not seen)."""
        if not self.enabled:
            return _OFF if self._trees_off.get(key) else None
        adaptive = self.get(key)
        return adaptive.note() if adaptive is not None else None

    def expect(self, session: RunsLikeOnnxruntime, rows: int) -> None:
        """``rows`` are about to be scored with ``session`` (one this compiler handed out)."""
        if isinstance(session, AdaptiveSession):
            session.expect(rows)

    def counts(self, key: str) -> tuple[int, int]:
        adaptive = self.get(key)
        return adaptive.counts() if adaptive is not None else (0, 0)

    def run_note(self, key: str, before: tuple[int, int]) -> str | None:
        """``note`` for a statement that ran, with the rows each path scored since ``before``."""
        if not self.enabled:
            return self.note(key)
        adaptive = self.get(key)
        return adaptive.run_note(before) if adaptive is not None else None

    def get(self, key: str) -> AdaptiveSession | None:
        with self._lock:
            return self._sessions.get(key)

    def submit(self, adaptive: AdaptiveSession) -> Future[CompiledSession]:
        with self._lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="nbgov-compile")
            worker = self._worker
        return worker.submit(self._compile, adaptive)

    def wait(self, timeout: float | None = None) -> None:
        """Let compiles under way finish (tests, and close)."""
        with self._lock:
            sessions = [s for s in self._sessions.values() if s is not None]
        for adaptive in sessions:
            adaptive.wait(timeout)

    def close(self) -> None:
        with self._lock:
            worker, self._worker = self._worker, None
            self._sessions.clear()
            self._trees_off.clear()
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)

    def _open(self, payload: bytes, fallback: RunsLikeOnnxruntime) -> AdaptiveSession | None:
        try:
            candidate = examine(payload)
        except NoTreeEnsemble:
            return None
        except NotCompilable as refused:
            return AdaptiveSession(fallback, None, str(refused), self)
        with unrecorded():  # the cache is nbgov's, not the notebook's data
            found = self.cache.lookup(candidate.key)
        adaptive = AdaptiveSession(fallback, candidate, "", self)
        if found is not None:
            artifact = Artifact(found[0], found[1], cached=True)
            try:
                adaptive.use(load(candidate, artifact), artifact)
            except (KernelMismatch, OSError) as error:
                adaptive.reason = f"the cached kernel could not be loaded ({error})"
        elif find_compiler() is None:
            return AdaptiveSession(fallback, None, "no C compiler (gcc, cc or clang) on this machine", self)
        return adaptive

    def _compile(self, adaptive: AdaptiveSession) -> CompiledSession:
        candidate = adaptive.candidate
        assert candidate is not None
        with unrecorded():  # a temporary build folder and the cache: nbgov's files
            artifact = build(candidate, self.cache)
            session = load(candidate, artifact)
        adaptive.artifact = artifact
        return session


_OFF = "onnxruntime: compiled tree scoring is off (SqlML.compile_trees = False)"
