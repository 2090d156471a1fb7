"""Score each distinct input row once: a tree ensemble gives equal outputs for equal
inputs, so when a (pruned) model reads a few low-cardinality columns, the rows are
deduplicated in DuckDB, only the distinct rows are scored, and the scores are joined
back in the original row order.

Only for models whose graph inputs feed tree-ensemble nodes alone: there +0.0 and
-0.0 (which DuckDB treats as one key) take the same branches, and NaN keys (one group
in DuckDB too) are scored as NaN, so the results are identical to scoring every row.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc

from nbgov.sqlml.batching import ScoringJob, score_relation
from nbgov.sqlml.quoting import quote_ident

_TREE_OPS = {"TreeEnsembleRegressor", "TreeEnsembleClassifier", "TreeEnsemble"}
_MIN_ROWS = 4_096  # below this, scoring every row is as quick as deduplicating
_MAX_SHARE = 0.25  # deduplicate only when it removes at least 3 rows in 4
_SAMPLE_ROWS = 2_048


def inputs_feed_trees_only(model_bytes: bytes) -> bool:
    """True when every consumer of a graph input is a tree-ensemble node (maybe via Cast)."""
    graph = onnx.load_model_from_string(model_bytes).graph
    names = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    frontier = set(names)
    seen_tree = False
    while frontier:
        consumers = [n for n in graph.node if set(n.input) & frontier]
        frontier = set()
        for node in consumers:
            if node.op_type in _TREE_OPS and node.domain == "ai.onnx.ml":
                seen_tree = True
            elif node.op_type == "Cast":
                frontier.update(node.output)
            else:
                return False
    return seen_tree


def score_distinct(
    con: duckdb.DuckDBPyConnection,
    rows: pa.Table,
    job: ScoringJob,
    pool: ThreadPoolExecutor,
    drop: frozenset[str],
    tag: str,
    batch_rows: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pa.Table, int] | None:
    """``rows`` with ``job``'s prediction columns (``drop`` columns removed), scoring
    distinct argument rows only; None when deduplicating would not pay off."""
    if rows.num_rows < _MIN_ROWS:
        return None
    arguments = list(job.arguments)
    # A quick estimate with Arrow decides; the distinct rows themselves come from DuckDB,
    # whose key equality (NaN = NaN, -0.0 = 0.0) is the one the join below uses.
    keyed = rows.select(arguments)
    sample = keyed.slice(0, _SAMPLE_ROWS)
    if _distinct_count(sample) > 0.9 * sample.num_rows:
        return None  # the first rows are nearly all distinct: no need to look further
    if _distinct_count(keyed) > _MAX_SHARE * rows.num_rows:
        return None  # mostly distinct rows: scoring them all is cheaper
    table, scores = f"nbgov_rows_{tag}", f"nbgov_distinct_{tag}"
    order = f"nbgov_row_{tag}"
    keys = [quote_ident(k) for k in job.arguments]
    con.register(table, rows.append_column(order, pa.array(np.arange(rows.num_rows, dtype=np.int64))))
    try:
        not_null = " AND ".join(f"{k} IS NOT NULL" for k in keys)
        distinct = _arrow(con, f"SELECT DISTINCT {', '.join(keys)} FROM {table} WHERE {not_null}")
        scored = score_relation(distinct.to_batches(), distinct.schema, [job], pool, frozenset(), progress, batch_rows)
        con.register(scores, scored)
        try:
            kept = [f"r.{quote_ident(n)}" for n in rows.schema.names if n not in drop and n not in job.columns]
            outputs = [f"d.{quote_ident(n)}" for n in job.columns]
            match = " AND ".join(f"r.{k} = d.{k}" for k in keys)
            sql = (
                f"SELECT {', '.join(kept + outputs)} FROM {table} AS r LEFT JOIN {scores} AS d ON {match} "
                f"ORDER BY r.{quote_ident(order)}"
            )
            return _arrow(con, sql), distinct.num_rows
        finally:
            con.unregister(scores)
    finally:
        con.unregister(table)


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    table = con.sql(sql).to_arrow_table()
    assert table is not None
    return table


def _distinct_count(table: pa.Table) -> int:
    return int(pc.drop_null(table).group_by(table.schema.names, use_threads=True).aggregate([]).num_rows)
