"""``%%sqlml --engine spark``: the same cells as on DuckDB, run by Spark.

The statement loop, the compile step, the optimizer and the catalog rules are the
DuckDB engine's (``BaseEngine``); what differs is where things are kept and run: the
model catalog in the warehouse table ``nbgov_models`` and every ``Prepared`` on the
``SparkExecutor``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbgov.sqlml.catalog.catalog import ModelCatalog
from nbgov.sqlml.engine import BaseEngine
from nbgov.sqlml.optimizer import Planner as Optimizer
from nbgov.sqlml.optimizer.cost import SPARK
from nbgov.sqlml.plan import Planner
from nbgov.sqlml.planning.compile import Planners
from nbgov.sqlml.spark.catalog_store import SparkModelStore
from nbgov.sqlml.spark.errors import spark_error
from nbgov.sqlml.spark.executor import SparkExecutor
from nbgov.sqlml.spark.session import DEFAULT_MASTER, SparkHandle, spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_BATCH_ROWS_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"


class SparkEngine(BaseEngine):
    """The SQLML engine on a SparkSession: ``session``, else the active one, else one
    started on ``master`` (then stopped by ``close``)."""

    executor: SparkExecutor

    def __init__(
        self, master: str = DEFAULT_MASTER, *, planner: Planner | None = None, session: SparkSession | None = None
    ) -> None:
        self.master = master
        self._handle = SparkHandle(session, started=False) if session is not None else spark_session(master)
        self.spark: SparkSession = self._handle.session
        try:
            catalog = ModelCatalog(SparkModelStore(self.spark))
            batch_rows = int(self.spark.conf.get(_BATCH_ROWS_CONF, "10000") or 10_000)
        except Exception as error:
            raise spark_error(error) from None
        threads = _parallelism(self.spark)
        super().__init__(catalog, SparkExecutor(self.spark), batch_rows=batch_rows, threads=threads, planner=planner)

    @property
    def compile_trees(self) -> bool:
        """Whether executors may score tree ensembles with a compiled kernel (``SqlML.compile_trees``)."""
        return self.executor.scoring.compile_trees

    @compile_trees.setter
    def compile_trees(self, enabled: bool) -> None:
        self.executor.scoring.compile_trees = enabled

    def close(self) -> None:
        super().close()
        if self._handle.started:
            try:
                self.spark.stop()
            except Exception:  # already stopped
                pass

    def _default_optimizers(self, exact_strings: bool) -> Planners:
        """Every ONNX plan is scored in Arrow batches on Spark (mapInArrow or an Arrow
        UDF), never 2,048 rows at a time: both planners cost ONNX as batched. Strings are
        never taken as compared byte for byte (Spark 4 columns may carry a collation). Trees
        are costed for Spark: ONNX pays a Python worker per row, inlined SQL does not."""
        optimizer = Optimizer(batched=True, exact_strings=exact_strings, costs=SPARK)
        return Planners(optimizer, optimizer)


def _parallelism(spark: SparkSession) -> int:
    """How many tasks Spark runs at once by default (for the notes)."""
    try:
        return int(spark.sparkContext.defaultParallelism)
    except Exception:  # Spark Connect: no SparkContext on the client
        return int(spark.conf.get("spark.default.parallelism", "1") or 1)
