"""A compiled model that runs like an onnxruntime session: ``run(output_names, feeds)``.

The execution layer can hold either kind: the kernel computes the tree node's
outputs (scores, and labels for classifiers) and what follows the node in the graph
runs in a small onnxruntime session. Rows are split over ``threads`` (the kernel
releases the GIL); callers that already run batches on a pool use one thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from nbgov.sqlml.execution.compiled.ensemble import Ensemble
from nbgov.sqlml.execution.compiled.native import NativeKernel
from nbgov.sqlml.execution.compiled.split import GraphSplit
from nbgov.sqlml.models.runtime import open_session

MIN_SLICE_ROWS = 8_192  # fewer rows per thread cost more in hand-offs than they save
PROFILE_ROWS = 4_096  # rows whose depths decide how far lanes walk together
STRAGGLER_STEP = 5.0  # a row walking alone pays about this many lock steps per step (no overlap)
STRAGGLER_EXIT = 8.0  # plus a mispredicted loop exit, in lock steps


class CompiledSession:
    """Compiled trees plus onnxruntime for the rest of the graph."""

    def __init__(self, kernel: NativeKernel, ensemble: Ensemble, split: GraphSplit, threads: int = 1) -> None:
        self.kernel = kernel
        self.split = split
        self.threads = max(1, threads)
        self._classifier = ensemble.classifier
        outputs = [o for o in split.node.output]
        self._label_name = outputs[0] if ensemble.classifier is not None else None
        self._scores_name = outputs[1] if ensemble.classifier is not None else outputs[0]
        self._suffix = open_session(split.suffix) if split.suffix is not None else None
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="nbgov-trees") if self.threads > 1 else None
        self._steps: np.ndarray | None = None
        self._profiled = threading.Lock()

    @property
    def input_name(self) -> str:
        return self.split.input_name

    def run(
        self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray], run_options: object = None
    ) -> list[np.ndarray]:
        """The requested graph outputs (all when ``output_names`` is None), as onnxruntime returns them."""
        matrix = feeds[self.split.input_name]
        if matrix.dtype != self.kernel.value_dtype or matrix.ndim != 2 or matrix.shape[1] != self.kernel.n_features:
            raise ValueError(
                f"input {self.split.input_name!r} must be [N, {self.kernel.n_features}] {self.kernel.value_dtype}, "
                f"got {list(matrix.shape)} {matrix.dtype}"
            )
        scores, labels = self.score(np.ascontiguousarray(matrix))
        return self._outputs(output_names, scores, labels, feeds)

    def run_columns(self, output_names: Sequence[str] | None, columns: Sequence[np.ndarray]) -> list[np.ndarray]:
        """As ``run``, from one contiguous array per feature (read in place, no matrix built)."""
        rows = len(columns[0]) if columns else 0
        scores, labels = self._allocate(rows)
        steps = self._lock_steps(lambda: np.ascontiguousarray(np.column_stack([c[:PROFILE_ROWS] for c in columns])), rows)
        self._parallel(
            rows, lambda a, b: self.kernel.score_columns([c[a:b] for c in columns], scores[a:b], _cut(labels, a, b), steps)
        )
        return self._outputs(output_names, scores, labels, {})

    def score(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The tree node's outputs for a contiguous matrix: scores [N, k] and int64 label codes."""
        scores, labels = self._allocate(len(matrix))
        steps = self._lock_steps(lambda: matrix[:PROFILE_ROWS], len(matrix))
        self._parallel(len(matrix), lambda a, b: self.kernel.score_rows(matrix[a:b], scores[a:b], _cut(labels, a, b), steps))
        return scores, labels

    def _lock_steps(self, sample: Callable[[], np.ndarray], rows: int) -> np.ndarray | None:
        """Per tree, how far lanes walk together: chosen once, from the first batch big
        enough to tell (until then, every lane walks to the deepest leaf)."""
        if self._steps is None and rows >= PROFILE_ROWS // 4:
            with self._profiled:
                if self._steps is None:
                    self._steps = lock_steps(self.kernel.profile(sample()))
        return self._steps

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _allocate(self, rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        scores = np.empty((rows, self.kernel.n_outputs), dtype=self.kernel.output_dtype)
        labels = np.empty(rows, dtype=np.int64) if self._classifier is not None else None
        return scores, labels

    def _parallel(self, rows: int, work: Callable[[int, int], None]) -> None:
        slices = min(self.threads, max(1, rows // MIN_SLICE_ROWS))
        if slices <= 1 or self._pool is None:
            work(0, rows)
            return
        bounds = np.linspace(0, rows, slices + 1).astype(int)
        futures = [self._pool.submit(work, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        for future in futures:
            future.result()

    def _outputs(
        self,
        names: Sequence[str] | None,
        scores: np.ndarray,
        labels: np.ndarray | None,
        feeds: dict[str, np.ndarray],
    ) -> list[np.ndarray]:
        produced: dict[str, np.ndarray] = {self._scores_name: scores}
        if self._label_name and labels is not None:
            produced[self._label_name] = self._label_values(labels)
        wanted = list(names) if names is not None else list(self.split.outputs)
        values = {name: produced[self.split.aliases[name]] for name in wanted if name in self.split.aliases}
        rest = [name for name in wanted if name not in values]
        if rest:
            assert self._suffix is not None
            inputs = {name: produced[name] if name in produced else feeds[name] for name in self.split.suffix_inputs}
            values.update(zip(rest, self._suffix.run(rest, inputs)))
        return [values[name] for name in wanted]

    def _label_values(self, codes: np.ndarray) -> np.ndarray:
        spec = self._classifier
        if spec is not None and spec.string_labels is not None:
            return np.array(spec.string_labels, dtype=object)[codes]
        return codes


def lock_steps(histogram: np.ndarray) -> np.ndarray:
    """For each tree (a row of ``histogram``: rows reaching a leaf after d steps), the
    lock-step depth with the least expected cost: ``d`` steps for every lane, plus, for
    the rows deeper than ``d``, the rest of their walk alone and a mispredicted exit."""
    depths = np.arange(histogram.shape[1], dtype=np.float64)
    share = histogram / np.maximum(histogram.sum(axis=1, keepdims=True), 1)
    costs = np.stack(
        [d + (share * np.where(depths > d, (depths - d) * STRAGGLER_STEP + STRAGGLER_EXIT, 0.0)).sum(axis=1) for d in depths],
        axis=1,
    )
    return np.ascontiguousarray(costs.argmin(axis=1).astype(np.int32))


def _cut(labels: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    return None if labels is None else labels[start:stop]
