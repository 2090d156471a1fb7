"""Ship scoring to Spark's executors: ``mapInArrow`` over a relation, or an Arrow UDF
for ``predict(...)`` anywhere in a query.

The model executors receive is the plan's (pruned, projected, or the original), its
bytes broadcast once per model and session; only the outputs a query reads are
computed (the job's picks).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from nbgov.sqlml.plan import OnnxPlan, TensorSpec
from nbgov.sqlml.spark.types import parse_ddl, pick_ddl, value_ddl
from nbgov.sqlml.spark.worker import ShippedJob, ShippedModel, score_partition, udf_function

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkScoring:
    """Broadcasts of model bytes, and the UDFs registered, for one Spark session."""

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark
        self._broadcasts: dict[str, Any] = {}
        self.udfs: list[str] = []

    def ship(
        self, plan: OnnxPlan, outputs: tuple[TensorSpec, ...], *, regions: bool = True
    ) -> ShippedModel:
        """The plan's model as executors will see it; the bytes are broadcast once."""
        payload = self._broadcasts.get(plan.cache_key)
        if payload is None:
            context = getattr(self._spark, "sparkContext", None)
            try:
                payload = context.broadcast(plan.model_bytes) if context is not None else plan.model_bytes
            except Exception:  # Spark Connect has no SparkContext: ship the bytes with the task
                payload = plan.model_bytes
            self._broadcasts[plan.cache_key] = payload
        inputs = tuple((bound.spec, len(bound.columns)) for bound in plan.inputs)
        return ShippedModel(plan.cache_key, payload, inputs, outputs, regions)

    def score(self, frame: DataFrame, jobs: Sequence[ShippedJob], drop: frozenset[str] = frozenset()) -> DataFrame:
        """``frame`` with each job's columns appended (helper columns in ``drop`` removed),
        scored by ``mapInArrow`` on the executors. Lazy: nothing runs until a query does."""
        from pyspark.sql.pandas.types import to_arrow_schema
        from pyspark.sql.types import StructField, StructType

        fields = [f for f in frame.schema.fields if f.name not in drop]
        for job in jobs:
            for pick in job.picks:
                fields = [f for f in fields if f.name != pick.column]
                fields.append(StructField(pick.column, parse_ddl(pick_ddl(pick, job.model.outputs)), True))
        schema = StructType(fields)
        arrow = to_arrow_schema(schema)
        return frame.mapInArrow(partial(score_partition, jobs=tuple(jobs), drop=drop, schema=arrow), schema)

    def register_udf(self, name: str, job: ShippedJob) -> None:
        """``name(args...)`` in SQL returns ``predict(...)``'s value for ``job``'s model."""
        from pyspark.sql.functions import ArrowUDFType, arrow_udf
        from pyspark.sql.pandas.types import to_arrow_type

        result = parse_ddl(value_ddl(job.model.outputs))
        function = udf_function(job, to_arrow_type(result))
        with warnings.catch_warnings():  # the UDF type is given, on purpose: the arity varies
            warnings.simplefilter("ignore", UserWarning)
            udf = arrow_udf(function, result, ArrowUDFType.SCALAR)
        self._spark.udf.register(name, udf)
        self.udfs.append(name)

    def close(self) -> None:
        """Forget the broadcasts (executors drop their copies); UDFs are dropped by the caller."""
        for payload in self._broadcasts.values():
            if not isinstance(payload, bytes):
                try:
                    payload.unpersist()
                except Exception:  # the session is gone already
                    pass
        self._broadcasts.clear()
        self.udfs.clear()
