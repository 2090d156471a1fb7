"""Ship a ``Prepared``'s scoring to Spark's executors: a ``ScoreRelation`` step becomes
``mapInArrow`` over its relation, a ``RegisterUdf`` step an Arrow UDF.

The model executors receive is the plan's (pruned, projected, or the original), its
bytes broadcast once per plan and session; only the outputs a query reads are computed
(the job's picks). Rows scored are counted back through accumulators for the notes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from nbgov.sqlml.execution.regions import ScoreStats
from nbgov.sqlml.planning.prepared import Pick, RegisterUdf, ScoringJob
from nbgov.sqlml.spark.types import parse_ddl, pick_ddl, value_ddl
from nbgov.sqlml.execution.compiled.worker import bundle_for
from nbgov.sqlml.spark.worker import Counter, ShippedJob, score_partition, udf_function

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class Shipped:
    """Jobs handed to the executors, and how many rows they scored so far."""

    jobs: tuple[ShippedJob, ...]

    def stats(self) -> list[tuple[str, ScoreStats]]:
        """(label, rows given to the model and really scored) per job, as counted on the executors."""
        found: list[tuple[str, ScoreStats]] = []
        for job in self.jobs:
            if job.counter is not None:
                stats = ScoreStats()
                stats.add(int(job.counter.rows.value), int(job.counter.scored.value))
                found.append((job.job.label, stats))
        return found

    def rows(self) -> int | None:
        """Rows of the relation the jobs read (None when not counted)."""
        counter = self.jobs[0].counter if self.jobs else None
        return int(counter.seen.value) if counter is not None else None


class SparkScoring:
    """Broadcasts of model bytes, and the UDFs registered, for one Spark session."""

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark
        self._context: Any = _context(spark)
        self._broadcasts: dict[str, Any] = {}
        self._kernels: dict[str, Any] = {}  # plan cache key -> broadcast kernel (or None)
        self.compile_trees = True  # SqlML.compile_trees

    def ship(self, job: ScoringJob) -> ShippedJob:
        """The job as executors will see it; the plan's bytes (and its compiled kernel,
        for a tree ensemble) are broadcast once."""
        key = job.plan.cache_key
        payload = self._broadcasts.get(key)
        if payload is None:
            payload = self._broadcast(job.plan.model_bytes)
            self._broadcasts[key] = payload
        context = self._context
        counter = Counter(*(context.accumulator(0) for _ in range(3))) if context is not None else None
        return ShippedJob.of(job, payload, counter, self._kernel(job) if self.compile_trees else None)

    def _kernel(self, job: ScoringJob) -> Any:
        key = job.plan.cache_key
        if key not in self._kernels:
            bundle = bundle_for(job.plan.model_bytes)
            self._kernels[key] = self._broadcast(bundle) if bundle is not None else None
        return self._kernels[key]

    def _broadcast(self, value: Any) -> Any:
        return self._context.broadcast(value) if self._context is not None else value

    def score(self, frame: DataFrame, jobs: Sequence[ScoringJob], drop: frozenset[str]) -> tuple[DataFrame, Shipped]:
        """``frame`` with each job's columns appended (helper columns in ``drop`` removed),
        scored by ``mapInArrow`` on the executors. Lazy: nothing runs until a query does."""
        from pyspark.sql.pandas.types import to_arrow_schema
        from pyspark.sql.types import StructField, StructType

        fields = [f for f in frame.schema.fields if f.name not in drop]
        for job in jobs:
            for pick in job.picks:
                fields = [f for f in fields if f.name != pick.column]
                fields.append(StructField(pick.column, parse_ddl(pick_ddl(pick, job.outputs)), True))
        schema = StructType(fields)
        shipped = tuple(self.ship(job) for job in jobs)
        body = partial(score_partition, jobs=shipped, drop=drop, schema=to_arrow_schema(schema))
        return frame.mapInArrow(body, schema), Shipped(shipped)

    def register_udf(self, step: RegisterUdf, expected: str) -> Shipped:
        """``step.name(args...)`` in SQL returns predict's value for the step's plan."""
        from pyspark.sql.functions import ArrowUDFType, arrow_udf
        from pyspark.sql.pandas.types import to_arrow_type

        arguments = tuple(f"arg{i}" for i in range(sum(len(bound.columns) for bound in step.plan.inputs)))
        job = ScoringJob(step.plan, step.outputs, arguments, (Pick("value"),), step.label, expected, step.regions)
        shipped = self.ship(job)
        result = parse_ddl(value_ddl(step.outputs))
        with warnings.catch_warnings():  # the UDF type is given, on purpose: the arity varies
            warnings.simplefilter("ignore", UserWarning)
            udf = arrow_udf(udf_function(shipped, to_arrow_type(result)), result, ArrowUDFType.SCALAR)
        self._spark.udf.register(step.name, udf)
        return Shipped((shipped,))

    def keys(self) -> list[str]:
        """Cache keys of the model plans shipped so far (which models, pruned or original)."""
        return list(self._broadcasts)

    def close(self) -> None:
        """Forget the broadcasts (executors drop their copies)."""
        for payload in self._broadcasts.values():
            if not isinstance(payload, bytes):
                try:
                    payload.unpersist()
                except Exception:  # the session is gone already
                    pass
        self._broadcasts.clear()


def _context(spark: SparkSession) -> Any:
    """The SparkContext (broadcasts, accumulators), or None on Spark Connect."""
    try:
        return spark.sparkContext
    except Exception:  # Spark Connect: no JVM-side context
        return None
