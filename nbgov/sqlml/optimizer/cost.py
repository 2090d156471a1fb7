"""Cost model: run a model in onnxruntime, or as a SQL expression inside the engine?

Per-row costs in microseconds, calibrated on this project's machines (2 cores,
1M-row table, batched scoring; see ENVIRONMENT.md and benchmarks/): handing
rows to onnxruntime and back costs ≈ 0.15 µs/row before any model work, each
tree level ≈ 0.02 µs/row there but ≈ 0.045 µs/row as a nested SQL CASE (a
10-tree depth-5 forest: ORT 0.9 s, SQL 2.3 s), so only trees with a handful
of levels in total are cheaper in SQL; a linear term costs DuckDB ≈ 0.004 µs.
Decisions are reported relative to the ORT cost (ORT = 1.0). Spark also charges each
strategy per statement (the Python worker's round trip; the inlined SQL's generated code),
and since compile sees no row count, SQL is chosen only where it is cheaper on both.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbgov.sqlml.engine_name import EngineName

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
# A tree ensemble scored by its compiled kernel runs in about a quarter of onnxruntime's time
# per tree level (execution/compiled/policy.py's COMPILED_SHARE, measured on forests and
# boosted trees); the rows reach it through the same Arrow transfer.
COMPILED_SHARE = 0.25


@dataclass(frozen=True)
class CostEstimate:
    """Estimated cost of both strategies: per row, and fixed per statement (µs)."""

    ort_us: float
    sql_us: float
    ort_statement_us: float = 0.0
    sql_statement_us: float = 0.0

    @property
    def prefer_sql(self) -> bool:
        """SQL only where it wins at any row count: compile sees no data."""
        return self.sql_us < self.ort_us and self.sql_statement_us <= self.ort_statement_us

    def describe(self) -> str:
        if self.sql_us == float("inf"):
            return "SQL too large for Spark's generated code"
        text = f"SQL {self.sql_us / self.ort_us:.2f} vs ORT 1.0"
        if self.sql_statement_us or self.ort_statement_us:
            text += f" per row; SQL {self.sql_statement_us / 1000:.0f} vs ORT {self.ort_statement_us / 1000:.0f} ms per statement"
        return text


# DuckDB's lambda fold over an ensemble's tree scores costs about 0.015 µs per tree and
# row (measured: 10 FLOAT terms over 1M rows, 0.15 s vs 0.01 s for nested additions)
SQL_FOLD_US = 0.015

# Spark: ONNX means every row crosses to a Python worker and back through Arrow, while a
# model inlined as SQL runs in the JVM's generated code next to the scan. Measured on 1M
# cached rows x 10 floats (local[2], random forests of depth-5 trees, executors scoring with
# the compiled tree kernel; medians of 5 interleaved runs, full table vs the selective
# WHERE f0 > 0.9 AND f1 < 0.3 keeping 30k rows):
#   trees  inlined SQL: full / selective    ONNX (mapInArrow): full / selective
#     4        1.04 s / 0.12 s                  0.44 s / 0.19 s
#     8        1.86 s / 0.15 s                  0.51 s / 0.17 s
#    16        3.32 s / 0.13 s                  0.59 s / 0.20 s
#    32        1.94 s / 0.40 s (368 nodes)      0.47 s / 0.17 s
# So per row the worker costs ~0.3 µs whatever the forest (0.44 µs for bench_spark.py's 50
# depth-8 trees), and a CASE level ~0.045 µs, as on DuckDB: SQL is cheaper per row only below
# ~6 levels, and a 4-tree forest inlined on a full table ran 2.4x slower than --no-optimize.
# Per statement the worker's round trip costs ~70 ms (bench_spark.py: the selective rows
# through Python with no model, over the job without a model), and inlined SQL ~0.4 ms per
# tree node (parsing, optimizing, generating code: 40 pruned nodes +~10 ms, 88 +~30 ms,
# 368 +~250 ms; bench_spark.py's 50 pruned trees, 2,552 nodes: 2.6 s, its whole-stage code
# past 64 KB failing to compile every time).
# Batched scoring on Spark (a scored helper view, mapInArrow) against an Arrow UDF, both with
# bench_spark.py's pruned forest: 0.59 vs 0.72 s on the full table (the UDF's ArrowEvalPython
# zips each row back to its input), 0.20 vs 0.22 s on the selective query; per statement each
# costs about the same Spark calls (view: its query analyzed, mapInArrow, the view dropped,
# ~28 ms; UDF: registered, then DROP TEMPORARY FUNCTION, ~26 ms). So Spark batches as well.
SPARK_WORKER_ROW_US = 0.3  # per row: JVM -> Arrow -> Python worker -> Arrow -> JVM
SPARK_ORT_TREE_LEVEL_US = 0.0005  # one tree level in the executors' compiled kernel
SPARK_SQL_TREE_LEVEL_US = 0.045  # one CASE level in Spark's generated code
SPARK_WORKER_STATEMENT_US = 70_000.0  # per statement: the Python worker's round trip
SPARK_SQL_NODE_STATEMENT_US = 400.0  # per statement and inlined tree node: its code generated
# Above this, the expression outgrows Spark's generated-code limits: measured on a 50-tree
# forest pruned to 2,414 nodes (~240 levels), every query spent ~2 s failing to compile it
# and then interpreted it (5 s vs 0.56 s through onnxruntime on 20k rows).
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
    """Where inlined SQL would run: the engine (named in the notes of SQL it runs) and the
    costs that decide, on that engine, between onnxruntime and SQL. One per engine
    (``DUCKDB``, ``SPARK``), chosen by its planner."""

    engine: EngineName
    udf_transfer_us: float  # rows to onnxruntime and back, per UDF call
    batched_transfer_us: float  # the same when the relation is scored in large batches
    sql_tree_level_us: float
    sql_fold_us: float  # folding an ensemble's tree scores into one, per tree
    sql_max_levels: float = float("inf")  # beyond: the engine cannot compile the SQL
    ort_tree_level_us: float = ORT_TREE_LEVEL_US
    ort_statement_us: float = 0.0  # per statement an ONNX call runs in
    sql_node_statement_us: float = 0.0  # per statement and tree node inlined

    def _transfer(self, batched: bool) -> float:
        return self.batched_transfer_us if batched else self.udf_transfer_us

    def trees(self, levels: float, *, nodes: int = 0, batched: bool = False) -> CostEstimate:
        """``levels`` = sum over trees of the mean leaf depth (comparisons per row);
        ``nodes`` = tree nodes the SQL would hold; ``batched``: ONNX would score the
        relation in large batches, not as a UDF."""
        sql_us = SQL_BASE_US + self.sql_tree_level_us * levels
        return CostEstimate(
            ort_us=self._transfer(batched) + self.ort_tree_level_us * levels,
            sql_us=sql_us if levels <= self.sql_max_levels else float("inf"),
            ort_statement_us=self.ort_statement_us,
            sql_statement_us=self.sql_node_statement_us * nodes,
        )

    def compiled_trees(self, levels: float, *, batched: bool = False) -> float:
        """Per row, µs: trees of ``levels`` scored by a compiled kernel already built (loaded
        or in the disk cache: no compiling to pay)."""
        return self._transfer(batched) + self.ort_tree_level_us * COMPILED_SHARE * levels

    def linear(self, terms: int, *, batched: bool = False) -> CostEstimate:
        """``terms`` = multiply-adds per row over all scores."""
        return CostEstimate(
            ort_us=self._transfer(batched) + ORT_LINEAR_TERM_US * terms,
            sql_us=SQL_BASE_US + SQL_LINEAR_TERM_US * terms,
        )


DUCKDB = CostProfile(EngineName.DUCKDB, UDF_TRANSFER_US, BATCHED_TRANSFER_US, SQL_TREE_LEVEL_US, SQL_FOLD_US)
# on Spark every ONNX row pays the Python worker, and Spark's own fold is not measured apart
SPARK = CostProfile(
    EngineName.SPARK, SPARK_WORKER_ROW_US, SPARK_WORKER_ROW_US, SPARK_SQL_TREE_LEVEL_US, 0.0, SPARK_CODEGEN_MAX_LEVELS,
    ort_tree_level_us=SPARK_ORT_TREE_LEVEL_US, ort_statement_us=SPARK_WORKER_STATEMENT_US,
    sql_node_statement_us=SPARK_SQL_NODE_STATEMENT_US,
)
