"""What runs in Spark's executor Python processes: score Arrow batches with onnxruntime.

Imported by the executors (PySpark pickles references to these functions), so it
keeps its imports to nbgov's scoring code. One onnxruntime session per model and
process, cached here by the plan's cache key (the model's sha256, or that of the
pruned/projected model the optimizer made): Spark reuses its Python workers, so a
model is loaded once per worker process, not once per task or batch. The bytes come
from a broadcast variable, read only when the session is not cached yet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from nbgov.sqlml.batching import ScoringJob, score_batch
from nbgov.sqlml.picks import Pick
from nbgov.sqlml.plan import TensorSpec
from nbgov.sqlml.regions import regions_of
from nbgov.sqlml.scoring import Scorer, open_session


@dataclass(frozen=True)
class ShippedModel:
    """A model as executors receive it: bytes by broadcast (or inline, on Spark Connect)."""

    cache_key: str
    payload: Any  # pyspark Broadcast[bytes], or bytes
    inputs: tuple[tuple[TensorSpec, int], ...]  # (spec, columns feeding it)
    outputs: tuple[TensorSpec, ...]
    regions: bool  # score each decision region of a tree-only model once

    def bytes(self) -> bytes:
        return self.payload if isinstance(self.payload, bytes) else self.payload.value


@dataclass(frozen=True)
class ShippedJob:
    """Feed the columns ``arguments`` to ``model``; append ``picks`` (see ScoringJob)."""

    model: ShippedModel
    arguments: tuple[str, ...]
    picks: tuple[Pick, ...]
    label: str
    expected: str


_SCORERS: dict[str, Scorer] = {}
_LOCK = threading.Lock()


def scorer(model: ShippedModel) -> Scorer:
    """This process's scorer for ``model``, opened on first use."""
    with _LOCK:
        found = _SCORERS.get(model.cache_key)
        if found is None:
            payload = model.bytes()
            found = Scorer(
                session=open_session(payload),
                inputs=model.inputs,
                outputs=model.outputs,
                regions=regions_of(payload) if model.regions else None,
            )
            _SCORERS[model.cache_key] = found
        return found


def cached_models() -> list[str]:
    """Cache keys of the sessions open in this process (for tests and diagnostics)."""
    with _LOCK:
        return list(_SCORERS)


def _job(shipped: ShippedJob) -> ScoringJob:
    return ScoringJob(
        scorer=scorer(shipped.model),
        arguments=shipped.arguments,
        picks=shipped.picks,
        label=shipped.label,
        expected=shipped.expected,
    )


def score_partition(
    batches: Iterator[pa.RecordBatch], jobs: Sequence[ShippedJob], drop: frozenset[str], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: each batch with the jobs' columns appended, helpers dropped,
    cast to the schema Spark was promised."""
    scoring = [_job(job) for job in jobs]
    for batch in batches:
        if not len(batch):
            continue
        table = score_batch(batch, scoring, drop)
        yield from table.select(schema.names).cast(schema).to_batches()


def udf_function(job: ShippedJob, result: pa.DataType) -> Callable[..., pa.Array]:
    """An Arrow UDF body: the predict value of one batch of argument arrays."""
    names = job.arguments

    def predict(*columns: pa.Array) -> pa.Array:
        batch = pa.RecordBatch.from_arrays(list(columns), names=list(names))
        value = score_batch(batch, [_job(job)], frozenset(names)).column(job.picks[0].column)
        return value.combine_chunks().cast(result) if isinstance(value, pa.ChunkedArray) else value.cast(result)

    return predict
