"""The contract between the SQLML engine and a planner (the optimizer).

The engine finds every ``predict(model, ...)`` call in a parsed statement, binds
its arguments to the model's inputs (a ``ModelCall``) and asks a planner how to
run it (a ``CallPlan``).  Keeping this a handful of frozen dataclasses lets the
optimizer, the DuckDB executor and a later distributed engine share one shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import sqlglot.expressions as exp


@dataclass(frozen=True)
class TensorSpec:
    """One ONNX input or output: its name, ONNX element type name and shape."""

    name: str
    elem_type: str  # ONNX type name: "float", "double", "int64", "string", ...
    shape: tuple[int | str | None, ...]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, exactly as stored in the catalog."""

    name: str
    version: int
    sha256: str
    onnx_bytes: bytes = field(repr=False)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    producer: str | None
    opset: int | None
    feature_names: tuple[str, ...] | None  # for a single 2-D input: per-column names if known
    created: str

    @property
    def ref(self) -> str:
        """``name@version``, the form lineage records and pins use."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class BoundInput:
    """SQL expressions feeding one model input.

    A 2-D ``[N, k]`` numeric input has k columns (feature i ← columns[i]);
    every other input has exactly one.
    """

    spec: TensorSpec
    columns: tuple[exp.Expression, ...]


@dataclass(frozen=True)
class ModelCall:
    """One ``predict(...)`` call site, bound to a model version."""

    model: ModelVersion
    inputs: tuple[BoundInput, ...]
    node: exp.Expression  # the predict(...) node inside ``statement``
    statement: exp.Expression
    written_as: str | None = None  # how errors name the call, when not ``predict(m@1)``

    @property
    def label(self) -> str:
        """The call as errors name it: ``predict(m@1)`` or ``ML.PREDICT(MODEL m@1)``."""
        return self.written_as or f"predict({self.model.ref})"


@dataclass(frozen=True)
class OnnxPlan:
    """Run an ONNX model (maybe pruned or with fewer features) with onnxruntime.

    ``inputs`` lists exactly what ``model_bytes`` needs, in its input order;
    ``cache_key`` identifies the inference-session cache entry.
    """

    model_bytes: bytes = field(repr=False)
    cache_key: str
    inputs: tuple[BoundInput, ...]


@dataclass(frozen=True)
class SqlPlan:
    """Replace the predict(...) node by a plain SQL expression of the same value and type;
    with ``comparison``, replace the comparison around it (``predict(...) > 0.9``) by a
    boolean expression of the same truth value (an output predicate turned into a filter).
    With ``fallback``, the boolean expression decides only some rows: elsewhere it reads
    the column ``__fallback__``, which stands for the comparison itself computed by
    ``fallback`` (the model, as ONNX); ``open_share`` is the share of the input cells left
    to it (the rows it may score, as far as compile can tell without data).

    ``refusals``: (condition, message) for values onnxruntime refuses (an unknown category):
    ``expression`` already fails on the rows it computes; ML.PREDICT, which scores every row
    of its relation, checks them on every row.
    """

    expression: exp.Expression
    comparison: bool = False
    fallback: OnnxPlan | None = None
    open_share: float = 0.0
    refusals: tuple[tuple[exp.Expression, str], ...] = ()


@dataclass(frozen=True)
class CallPlan:
    """How one call site runs, with EXPLAIN notes saying what was done and why."""

    strategy: OnnxPlan | SqlPlan
    notes: tuple[str, ...] = ()
    stats: Mapping[str, object] = field(default_factory=dict)


class Planner(Protocol):
    """Anything that turns a bound model call into a plan (the optimizer, or NaivePlanner)."""

    def plan_call(self, call: ModelCall) -> CallPlan: ...


class CompiledKernels(Protocol):
    """What the executor tells a planner about compiled tree scoring (the DuckDB executor's
    ``TreeCompiler``): whether a model would be scored by a compiled kernel at once, with no
    compiling to pay -- one loaded in this engine, or an artifact in the disk cache."""

    def ready(self, cache_key: str, payload: bytes) -> bool: ...


def original_cache_key(model: ModelVersion) -> str:
    """Session-cache key of an unmodified model version (its content hash)."""
    return original_key(model.sha256)


def original_key(sha256: str) -> str:
    """``original_cache_key`` of the version whose bytes hash to ``sha256``."""
    return f"{sha256}:original"


class NaivePlanner:
    """Run every call as the original ONNX model: the ``--no-optimize`` baseline."""

    def plan_call(self, call: ModelCall) -> CallPlan:
        plan = OnnxPlan(
            model_bytes=call.model.onnx_bytes,
            cache_key=original_cache_key(call.model),
            inputs=call.inputs,
        )
        return CallPlan(strategy=plan, notes=("optimizer off",), stats={})
