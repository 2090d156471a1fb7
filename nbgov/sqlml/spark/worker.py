"""What runs in Spark's executor Python processes: score Arrow batches with onnxruntime.

Imported by the executors (PySpark pickles references to these functions), so it keeps
its imports to nbgov's execution code. A ``ScoringJob`` travels without its model bytes:
they come from a broadcast variable, read once per executor process, and the
onnxruntime session is opened once per process and plan (``SESSIONS``, keyed by the
plan's cache key: the model's sha256, or that of the pruned/projected model the
optimizer made). Spark reuses its Python workers, so a model is loaded once per worker,
not once per task or batch.

Compiled tree kernels (``nbgov.sqlml.execution.compiled.worker``): the driver builds
a tree ensemble's kernel once (``bundle_for``, from the disk cache when it was compiled
before) and broadcasts it beside the model bytes; each executor scores with it when the
library loads there for those bytes (same platform, same model), else with onnxruntime.
Results are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nbgov.sqlml.execution.batching import Scoring, score_batch
from nbgov.sqlml.execution.compiled.worker import KernelBundle, executor_scorer
from nbgov.sqlml.execution.regions import ScoreStats
from nbgov.sqlml.execution.scoring import SessionCache
from nbgov.sqlml.planning.prepared import ScoringJob

SESSIONS = SessionCache()  # this process's onnxruntime sessions, by plan cache key


@dataclass(frozen=True)
class Counter:
    """Spark accumulators, summed on the driver: rows of the relation (``seen``), and of
    those without NULL inputs, rows given to the model and rows onnxruntime really scored
    (fewer when decision regions were shared). None on Spark Connect, which has none."""

    seen: Any
    rows: Any
    scored: Any

    def add(self, seen: int, stats: ScoreStats) -> None:
        self.seen.add(seen)
        self.rows.add(stats.rows)
        self.scored.add(stats.scored)


@dataclass(frozen=True)
class ShippedJob:
    """A ``ScoringJob`` as executors receive it: the plan without its model bytes, which
    travel once per executor in ``payload`` (a broadcast; the bytes themselves on Spark
    Connect) instead of inside every task."""

    job: ScoringJob  # its plan's model_bytes empty
    payload: Any
    counter: Counter | None = None
    kernel: Any = None  # a KernelBundle (or a broadcast of one) for compiled tree scoring

    @classmethod
    def of(cls, job: ScoringJob, payload: Any, counter: Counter | None, kernel: Any = None) -> ShippedJob:
        return cls(replace(job, plan=replace(job.plan, model_bytes=b"")), payload, counter, kernel)

    def scoring(self) -> Scoring:
        """The job with its bytes and this process's scorer (the compiled kernel when it
        loads here, else onnxruntime)."""
        payload = self.payload if isinstance(self.payload, bytes) else self.payload.value
        kernel = self.kernel if self.kernel is None or isinstance(self.kernel, KernelBundle) else self.kernel.value
        job = replace(self.job, plan=replace(self.job.plan, model_bytes=payload))
        return Scoring(job, executor_scorer(SESSIONS, job.plan, job.outputs, kernel, regions=job.regions, label=job.label))

    def count(self, seen: int, run: Scoring) -> None:
        if self.counter is not None:
            self.counter.add(seen, run.stats)


def score_partition(
    batches: Iterator[pa.RecordBatch], jobs: Sequence[ShippedJob], drop: frozenset[str], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: each batch with the jobs' columns appended, helpers dropped,
    cast to the schema Spark was promised."""
    runs = [job.scoring() for job in jobs]
    seen = 0
    for batch in batches:
        if len(batch):
            seen += len(batch)
            yield from score_batch(batch, runs, drop).select(schema.names).cast(schema).to_batches()
    for job, run in zip(jobs, runs):
        job.count(seen, run)


def udf_function(job: ShippedJob, result: pa.DataType) -> Callable[..., pa.Array]:
    """An Arrow UDF body: predict's value for one batch of argument arrays (NULL in any
    argument gives NULL for that row). The first argument says which rows reach the call
    (``guards.py``): the others are not scored, NULL as a row with a NULL argument."""
    names = list(job.job.arguments)
    (value,) = job.job.columns

    def predict(reached: pa.Array, *columns: pa.Array) -> pa.Array:
        run = job.scoring()
        if reached.null_count or not pc.all(reached).as_py():
            kept = pc.fill_null(reached, False)
            columns = tuple(pc.if_else(kept, column, pa.nulls(len(column), column.type)) for column in columns)
        batch = pa.RecordBatch.from_arrays(list(columns), names=names)
        scored = score_batch(batch, [run], frozenset(names))
        job.count(len(batch), run)
        return scored.column(value).combine_chunks().cast(result)

    return predict
