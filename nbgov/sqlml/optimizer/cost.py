"""Cost model: run a model in onnxruntime, or as a SQL expression inside the engine?

Per-row costs in microseconds, calibrated on this project's machines (2 cores,
1M-row table, batched scoring; see ENVIRONMENT.md and benchmarks/): handing
rows to onnxruntime and back costs ≈ 0.15 µs/row before any model work, each
tree level ≈ 0.02 µs/row there but ≈ 0.045 µs/row as a nested SQL CASE (a
10-tree depth-5 forest: ORT 0.9 s, SQL 2.3 s), so only trees with a handful
of levels in total are cheaper in SQL; a linear term costs DuckDB ≈ 0.004 µs.
Decisions are reported relative to the ORT cost (ORT = 1.0).
"""

from __future__ import annotations

from dataclasses import dataclass

UDF_TRANSFER_US = 0.15  # per row per call: Arrow batches in/out of onnxruntime
# per row when the relation is scored in large batches (ML.PREDICT): no 2,048-row UDF
# calls; measured on 1M rows, a depth-3 tree is faster as SQL (54 vs 67 ms) but a
# depth-4 tree faster in batched ONNX (42 vs 86 ms as SQL)
BATCHED_TRANSFER_US = 0.10
ORT_TREE_LEVEL_US = 0.02  # one tree level (comparison + pointer chase) in ORT
ORT_LINEAR_TERM_US = 0.001
SQL_TREE_LEVEL_US = (
    0.045  # one CASE level in DuckDB (vectorised, but per-branch selection)
)
SQL_LINEAR_TERM_US = 0.004
SQL_BASE_US = 0.01


@dataclass(frozen=True)
class CostEstimate:
    """Estimated per-row cost of both strategies, in microseconds."""

    ort_us: float
    sql_us: float

    @property
    def prefer_sql(self) -> bool:
        return self.sql_us < self.ort_us

    def describe(self) -> str:
        if self.sql_us == float("inf"):
            return "SQL too large for Spark's generated code"
        return f"SQL {self.sql_us / self.ort_us:.2f} vs ORT 1.0"


# DuckDB's lambda fold over an ensemble's tree scores costs about 0.015 µs per tree and
# row (measured: 10 FLOAT terms over 1M rows, 0.15 s vs 0.01 s for nested additions)
SQL_FOLD_US = 0.015

# Spark: ONNX means every row crosses to a Python worker and back through Arrow, while a
# model inlined as SQL runs in the JVM's generated code next to the scan.
SPARK_WORKER_ROW_US = 1.0  # per row: JVM -> Arrow -> Python worker -> Arrow -> JVM
SPARK_SQL_TREE_LEVEL_US = 0.01  # one CASE level in Spark's whole-stage generated code
# Above this, the expression outgrows Spark's generated-code limits: measured on a 50-tree
# forest pruned to 2,414 nodes (~240 levels), every query spent ~2 s failing to compile it
# and then interpreted it (5 s vs 0.56 s through onnxruntime on 20k rows).
# Inlined SQL also costs Spark per statement, whatever the rows: measured on 1M cached rows
# filtered to 30k (local[2]), each pruned tree of ~50 nodes (~5 levels) added ~20 ms to a
# fresh statement (parsing, optimizing and generating code for it: 1 tree +0.03 s, 8 trees
# +0.14 s, 16 trees +0.3 s over the query without a model), against ~0.1 s for the Python
# worker's round trip with no model at all (bench_spark.py's "Python, no model" line). So
# near this limit a selective query gains nothing either way, and far past it (50 pruned
# trees, 2,552 nodes: 2.6 s; whole-stage code past 64 KB fails to compile every time, and
# the statement falls back) onnxruntime is cheaper even though its worker is the whole cost.
SPARK_CODEGEN_MAX_LEVELS = 40


# An output predicate decided by bounds leaves its open cells to a UDF; batched relation
# scoring runs the same model about four times as fast per row (measured on the pipeline
# benchmark's 12k rows, 100 pruned trees: 8.5 ms batched against 39.7 ms through the UDF on
# 63 of 64 cells; two threads and one model call, against one thread and a call per vector
# of rows). Cells stand in for rows: compile sees no data.
BATCHED_SPEEDUP = 4.0


def bounds_beat_batches(open_share: float) -> bool:
    """Whether scoring only the open cells' rows through a UDF beats scoring every row in
    batches."""
    return open_share * BATCHED_SPEEDUP < 1.0


@dataclass(frozen=True)
class CostProfile:
    """Where inlined SQL would run: the per-row costs that decide, on that engine, between
    onnxruntime and SQL. One per engine (``DUCKDB``, ``SPARK``), chosen by its planner."""

    name: str
    udf_transfer_us: float  # rows to onnxruntime and back, per UDF call
    batched_transfer_us: float  # the same when the relation is scored in large batches
    sql_tree_level_us: float
    sql_fold_us: float  # folding an ensemble's tree scores into one, per tree
    sql_max_levels: float = float("inf")  # beyond: the engine cannot compile the SQL

    def _transfer(self, batched: bool) -> float:
        return self.batched_transfer_us if batched else self.udf_transfer_us

    def trees(self, levels: float, *, batched: bool = False) -> CostEstimate:
        """``levels`` = sum over trees of the mean leaf depth (comparisons per row);
        ``batched``: ONNX would score the relation in large batches, not as a UDF."""
        sql_us = SQL_BASE_US + self.sql_tree_level_us * levels
        return CostEstimate(
            ort_us=self._transfer(batched) + ORT_TREE_LEVEL_US * levels,
            sql_us=sql_us if levels <= self.sql_max_levels else float("inf"),
        )

    def linear(self, terms: int, *, batched: bool = False) -> CostEstimate:
        """``terms`` = multiply-adds per row over all scores."""
        return CostEstimate(
            ort_us=self._transfer(batched) + ORT_LINEAR_TERM_US * terms,
            sql_us=SQL_BASE_US + SQL_LINEAR_TERM_US * terms,
        )


DUCKDB = CostProfile("duckdb", UDF_TRANSFER_US, BATCHED_TRANSFER_US, SQL_TREE_LEVEL_US, SQL_FOLD_US)
# on Spark every ONNX row pays the Python worker, and Spark's own fold is not measured apart
SPARK = CostProfile("spark", SPARK_WORKER_ROW_US, SPARK_WORKER_ROW_US, SPARK_SQL_TREE_LEVEL_US, 0.0,
                    SPARK_CODEGEN_MAX_LEVELS)
