"""Run ONNX models on Arrow columns with onnxruntime: no per-row Python.

``Scorer`` turns the Arrow arrays of one bound call into ORT feeds with numpy,
runs one cached session and turns the outputs back into Arrow (a scalar column,
a LIST column for ``[N, k]`` outputs, a STRUCT when there are several outputs).
Sessions come from ``models.runtime`` (ZipMap outputs there become float matrices).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnxruntime as ort
import pyarrow as pa

from nbgov.errors import ModelBindingError
from nbgov.sqlml.models.onnxtypes import numpy_dtype, width
from nbgov.sqlml.models.refusals import refused
from nbgov.sqlml.execution.compiled.policy import TreeCompiler
from nbgov.sqlml.models.runtime import RunsLikeOnnxruntime, open_session
from nbgov.sqlml.plan import TensorSpec
from nbgov.sqlml.execution.regions import Regions, ScoreStats, regions_of

# Sessions the catalog's checks opened that wait for their first query (CREATE MODEL's,
# a described version's): the most recent this many are kept, so registering a zoo of models
# never scored holds no session per model; an older one is opened again if ever scored.
MAX_WAITING_SESSIONS = 4
# Rows per onnxruntime run: a network's intermediate activations then stay in cache
# (measured about 5% faster for an MLP than one run over a 64k-row batch; neutral for trees).
RUN_ROWS = 16_384


class SessionCache:
    """Sessions keyed by plan cache key; owned by one Engine (no global state). With
    ``trees``, tree ensembles score with compiled code when that pays (see
    ``compiled/policy.py``); every other model, and trees until then, with onnxruntime."""

    def __init__(self, trees: TreeCompiler | None = None) -> None:
        self.trees = trees
        self._sessions: dict[str, ort.InferenceSession] = {}
        # Sessions opened elsewhere on a plan's bytes (the catalog's checks), not yet scored
        # with: taken by the first ``get`` of their key, the oldest dropped beyond
        # MAX_WAITING_SESSIONS, the rest with the cache.
        self._adopted: dict[str, ort.InferenceSession] = {}
        self._regions: dict[str, Regions | None] = {}
        self._lock = threading.Lock()

    def get(self, cache_key: str, payload: bytes) -> RunsLikeOnnxruntime:
        with self._lock:
            session = self._sessions.get(cache_key)
            if session is None:
                adopted = self._adopted.pop(cache_key, None)
                session = adopted if adopted is not None else open_session(payload)
                self._sessions[cache_key] = session
        if self.trees is None:
            return session
        return self.trees.session(cache_key, payload, session)

    def adopt(self, cache_key: str, session: ort.InferenceSession) -> None:
        """Keep ``session``, opened by ``runtime.open_session`` on the bytes the plan
        ``cache_key`` scores, for that plan's first ``get``; until then it is not one of
        the sessions scored with (``keys``)."""
        with self._lock:
            if cache_key not in self._sessions:
                self._adopted.pop(cache_key, None)
                self._adopted[cache_key] = session  # the newest last
                while len(self._adopted) > MAX_WAITING_SESSIONS:
                    del self._adopted[next(iter(self._adopted))]

    def regions(self, cache_key: str, payload: bytes) -> Regions | None:
        """The decision regions of a tree-only model (None for other models), read once."""
        with self._lock:
            if cache_key not in self._regions:
                self._regions[cache_key] = regions_of(payload)
            return self._regions[cache_key]

    def __len__(self) -> int:
        return len(self._sessions)

    def keys(self) -> list[str]:
        """Cache keys of the open sessions (which models, pruned or original, were run)."""
        with self._lock:
            return list(self._sessions)

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._adopted.clear()
            self._regions.clear()
        if self.trees is not None:
            self.trees.close()


@dataclass(frozen=True)
class Scorer:
    """A session plus how its inputs are laid out over a flat list of Arrow columns."""

    session: RunsLikeOnnxruntime
    inputs: tuple[tuple[TensorSpec, int], ...]  # (spec, number of columns feeding it)
    outputs: tuple[TensorSpec, ...]
    regions: Regions | None = None  # tree-only models: score each decision region once
    label: str = "predict()"  # the call, for errors: "predict(churn@1)"
    payload: bytes = field(default=b"", repr=False)  # the model's bytes, to say what it refused

    @property
    def arity(self) -> int:
        return sum(count for _, count in self.inputs)

    def shares_regions(self, columns: Sequence[pa.Array | pa.ChunkedArray]) -> bool:
        """Whether these rows fall into shared decision regions (see ``Regions.shared``)."""
        if self.regions is None:
            return False
        position = 0
        for spec, count in self.inputs:
            if spec.name == self.regions.input_name:
                return self.regions.shared(_feed(spec, columns[position : position + count]))
            position += count
        return False

    def run(
        self,
        columns: Sequence[pa.Array | pa.ChunkedArray],
        names: Sequence[str] | None = None,
        stats: ScoreStats | None = None,
    ) -> list[np.ndarray]:
        """Score rows that are all non-NULL; returns one numpy array per output (or per
        name in ``names``: onnxruntime then computes only what those outputs need).
        With ``regions``, one row per decision region is scored (see regions.py)."""
        # a model grouped by decision regions reads its matrix a feature at a time: built
        # column by column (contiguous writes, no transposed copy to cut it); the few rows
        # scored are then taken out row by row
        by_feature = self.regions is not None and [spec.name for spec, _ in self.inputs] == [self.regions.input_name]
        feeds: dict[str, np.ndarray] = {}
        position = 0
        for spec, count in self.inputs:
            feeds[spec.name] = _feed(spec, columns[position : position + count], "F" if by_feature else "C")
            position += count
        wanted = list(names) if names is not None else [o.name for o in self.outputs]
        rows = len(columns[0]) if columns else 0
        if rows == 0:
            return [_empty(o) for o in self.outputs if o.name in wanted]
        grouped = self.regions.group(feeds[self.regions.input_name]) if by_feature and self.regions else None
        if grouped is None:
            if stats is not None:
                stats.add(rows, rows)
            return self._run(wanted, {name: np.ascontiguousarray(feed) for name, feed in feeds.items()}, rows)
        codes, first = grouped
        if stats is not None:
            stats.add(rows, len(first))
        results = self._run(wanted, {name: np.ascontiguousarray(feed[first]) for name, feed in feeds.items()}, len(first))
        return [result[codes] for result in results]

    @property
    def fixed_rows(self) -> int | None:
        """The batch size an input fixes, if any: an export traced on one row takes
        ``[1, k]``, and fed more rows at once it failed "Got invalid dimensions"."""
        fixed = [spec.shape[0] for spec, _ in self.inputs if spec.shape and isinstance(spec.shape[0], int)]
        return fixed[0] if fixed and fixed[0] > 0 else None

    def _run(self, wanted: list[str], feeds: dict[str, np.ndarray], rows: int) -> list[np.ndarray]:
        fixed = self.fixed_rows
        step = fixed or RUN_ROWS
        try:
            parts = [
                self.session.run(wanted, {name: _rows(feed, start, step, fixed is not None) for name, feed in feeds.items()})
                for start in range(0, rows, step)
            ]
            if fixed and rows % fixed:  # the last run was padded to the fixed size
                parts[-1] = [np.asarray(result)[: rows % fixed] for result in parts[-1]]
        except Exception as error:  # onnxruntime's Fail/InvalidArgument: a model/input mismatch
            refusal = refused(self.payload, feeds, self.label) if self.payload else None
            if refusal is not None:  # a value the featurizer refuses: said as the optimizer says it
                raise ModelBindingError(refusal) from None
            message = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ModelBindingError(f"onnxruntime could not score the rows: {message}") from None
        if len(parts) == 1:
            return [np.asarray(r) for r in parts[0]]
        return [np.concatenate([np.asarray(part[i]) for part in parts]) for i in range(len(wanted))]

    def value(self, columns: Sequence[pa.Array | pa.ChunkedArray]) -> pa.Array:
        """The SQL value of predict(...): one output as is, several as a STRUCT."""
        return self.value_of(dict(zip((o.name for o in self.outputs), self.run(columns))))

    def value_of(self, results: dict[str, np.ndarray]) -> pa.Array:
        """``value`` from the outputs already computed, by name."""
        arrays = [_to_arrow(spec, results[spec.name]) for spec in self.outputs]
        if len(arrays) == 1:
            return arrays[0]
        return pa.StructArray.from_arrays(arrays, names=[o.name for o in self.outputs])

    def output_arrow(self, name: str, value: np.ndarray, element: int | None = None) -> pa.Array:
        """One output as Arrow, or only its 0-based ``element`` (``probabilities[2]``)."""
        spec = next(o for o in self.outputs if o.name == name)
        if element is None:
            return _to_arrow(spec, value)
        return _to_arrow(TensorSpec(spec.name, spec.elem_type, (None,)), np.ascontiguousarray(value[:, element]))


def _rows(feed: np.ndarray, start: int, step: int, padded: bool) -> np.ndarray:
    """``step`` rows of ``feed`` from ``start``; ``padded``: a short last run gets copies of
    its last row up to the model's fixed batch size (their results are dropped again)."""
    part = feed[start : start + step]
    if not padded or len(part) == step:
        return part
    return np.concatenate([part, np.repeat(part[-1:], step - len(part), axis=0)])


def _feed(spec: TensorSpec, columns: Sequence[pa.Array | pa.ChunkedArray], order: Literal["C", "F"] = "C") -> np.ndarray:
    """The input tensor of ``columns`` (a matrix in ``order``, "C" row-major as onnxruntime
    takes it, "F" column-major). A DOUBLE fed to a float input is rounded as a C cast
    rounds, ±inf beyond float32's range (onnxruntime's Cast; numpy's overflow warning for
    those values is not the user's business)."""
    with np.errstate(over="ignore"):
        return _fed(spec, columns, order)


def _fed(spec: TensorSpec, columns: Sequence[pa.Array | pa.ChunkedArray], order: Literal["C", "F"]) -> np.ndarray:
    dtype = numpy_dtype(spec.elem_type)
    if len(spec.shape) <= 1 or len(columns) == 1:
        values = _numpy(columns[0], dtype)
        return values if len(spec.shape) <= 1 else values.reshape(len(values), 1)
    # One pass per column straight into the [N, k] matrix: numpy casts while it copies
    # (double -> float once), reading Arrow buffers in place (no concatenation first).
    rows = len(columns[0])
    matrix: np.ndarray = np.empty((rows, len(columns)), dtype=dtype, order=order)
    for i, column in enumerate(columns):
        start = 0
        for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
            values = chunk.to_numpy(zero_copy_only=False)
            matrix[start : start + len(values), i] = values
            start += len(values)
    return matrix


def _numpy(column: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    if dtype is np.object_:
        values = column.to_numpy(zero_copy_only=False)
        return values if values.dtype == np.object_ else values.astype(object)
    values = column.to_numpy(zero_copy_only=False)
    return values if values.dtype == dtype else values.astype(dtype)


def _empty(spec: TensorSpec) -> np.ndarray:
    cols = width(spec) or 1
    dtype = numpy_dtype(spec.elem_type)
    return np.empty((0,) if cols == 1 else (0, cols), dtype=dtype)


def _to_arrow(spec: TensorSpec, value: np.ndarray) -> pa.Array:
    dtype = numpy_dtype(spec.elem_type)
    if value.dtype != dtype and dtype is not np.object_:
        value = value.astype(dtype)
    rows = value.shape[0] if value.ndim else 0
    if value.ndim == 1 or (value.ndim == 2 and value.shape[1] == 1 and width(spec) == 1):
        flat = value.reshape(rows)
        return pa.array(flat, type=pa.string()) if dtype is np.object_ else pa.array(flat)
    cols = value.shape[1] if value.ndim >= 2 else 1
    flat_values = value.reshape(rows * cols)
    inner = pa.array(flat_values, type=pa.string()) if dtype is np.object_ else pa.array(flat_values)
    offsets = pa.array(np.arange(0, rows * cols + 1, cols, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, inner)


def arrow_type(spec: TensorSpec) -> pa.DataType:
    """The Arrow type ``_to_arrow`` produces for an output."""
    dtype = numpy_dtype(spec.elem_type)
    scalar = pa.string() if dtype is np.object_ else pa.from_numpy_dtype(dtype)
    return scalar if width(spec) == 1 else pa.list_(scalar)


def value_type(outputs: Sequence[TensorSpec]) -> pa.DataType:
    """Arrow type of predict(...): the single output, or a STRUCT of all outputs."""
    if len(outputs) == 1:
        return arrow_type(outputs[0])
    return pa.struct([pa.field(o.name, arrow_type(o)) for o in outputs])


def arrow_input(spec: TensorSpec, column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Cast a column to what the model input wants (raises pyarrow errors on bad values)."""
    dtype = numpy_dtype(spec.elem_type)
    target = pa.string() if dtype is np.object_ else pa.from_numpy_dtype(dtype)
    if column.type == target:
        return column
    if target != pa.string() and any(
        check(column.type) for check in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
    ):
        return column  # numpy converts while building the feed matrix: one copy, not two
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.cast(target, safe=False) if target != pa.string() else column.cast(target)
