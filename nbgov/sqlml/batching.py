"""Score whole relations in large Arrow batches on a thread pool (ML.PREDICT, and
the batching rewrite of scalar ``predict``), instead of DuckDB's 2048-row UDF calls.

onnxruntime releases the GIL, so batches run truly in parallel on every core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import sqlglot.expressions as exp

from nbgov.errors import ModelBindingError
from nbgov.sqlml.plan import CallPlan, ModelCall, OnnxPlan, TensorSpec
from nbgov.sqlml.scoring import Scorer, arrow_input
from nbgov.sqlml.statements import PREDICT_PLACEHOLDER

DEFAULT_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class ScoringJob:
    """Feed ``arguments`` (column names, in scorer order) to ``scorer``.

    ``columns`` names the result: one name (the predict value, a STRUCT when the
    model has several outputs) or one name per output (ML.PREDICT).
    """

    scorer: Scorer
    arguments: tuple[str, ...]
    columns: tuple[str, ...]
    label: str  # for error messages, e.g. "ML.PREDICT(churn@1)"
    expected: str  # the model signature, for error messages


def _specs(scorer: Scorer) -> list[TensorSpec]:
    return [spec for spec, count in scorer.inputs for _ in range(count)]


def score_batch(batch: pa.RecordBatch | pa.Table, jobs: Sequence[ScoringJob], drop: frozenset[str]) -> pa.Table:
    """Append each job's prediction columns to ``batch`` and drop helper columns."""
    names = [n for n in batch.schema.names if n not in drop]
    arrays: list[pa.Array | pa.ChunkedArray] = [batch.column(n) for n in names]
    for job in jobs:
        try:
            inputs = [arrow_input(spec, batch.column(name)) for spec, name in zip(_specs(job.scorer), job.arguments)]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
            message = str(error).splitlines()[0][:160]
            raise ModelBindingError(f"{job.label}: an input cannot be cast ({message}); expected {job.expected}") from None
        outputs = _score_valid_rows(job.scorer, inputs, len(batch), combine=len(job.columns) == 1)
        for name, values in zip(job.columns, outputs):
            if name in names:
                arrays[names.index(name)] = values
            else:
                names.append(name)
                arrays.append(values)
    return pa.Table.from_arrays(arrays, names=names)


def _score_valid_rows(
    scorer: Scorer, inputs: list[pa.Array | pa.ChunkedArray], rows: int, *, combine: bool
) -> list[pa.Array]:
    """NULL in any input gives NULL output for that row; the other rows are scored."""
    valid = None
    for column in inputs:
        if column.null_count:
            mask = np.asarray(column.is_valid())
            valid = mask if valid is None else valid & mask
    if valid is None:
        return _as_columns(scorer, scorer.run(inputs), combine)
    keep = pa.array(valid)
    scored = _as_columns(scorer, scorer.run([c.filter(keep) for c in inputs]), combine)
    positions = np.full(rows, -1, dtype=np.int64)
    positions[valid] = np.arange(int(valid.sum()))
    take = pa.array(positions, mask=positions < 0)
    return [values.take(take) for values in scored]


def _as_columns(scorer: Scorer, results: list[np.ndarray], combine: bool) -> list[pa.Array]:
    arrays = scorer.to_arrow(results)
    if combine and len(arrays) > 1:
        return [pa.StructArray.from_arrays(arrays, names=[o.name for o in scorer.outputs])]
    return arrays


def score_relation(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    jobs: Sequence[ScoringJob],
    pool: ThreadPoolExecutor,
    drop: frozenset[str] = frozenset(),
    progress: Callable[[int, int], None] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> pa.Table:
    """Score the relation on ``pool`` in equal slices (in order) and return one Arrow table.

    The relation is read first (DuckDB's scan is quick next to scoring) and cut into
    slices of at most ``batch_rows``, their count a multiple of the pool's threads, so
    every core gets the same amount of work even when a filter leaves few rows.
    ``progress(rows_done, rows_total)`` is called from this thread as slices finish.
    """
    table = pa.Table.from_batches([b for b in batches if len(b)], schema=schema)
    pending = [
        (len(piece), pool.submit(score_batch, piece, jobs, drop))
        for piece in even_slices(table, batch_rows, getattr(pool, "_max_workers", 1))
    ]
    total = sum(rows for rows, _ in pending)
    scored: list[pa.Table] = []
    done = 0
    for rows, future in pending:
        scored.append(future.result())
        done += rows
        if progress is not None:
            progress(done, total)
    if not scored:
        scored = [score_batch(pa.RecordBatch.from_pylist([], schema=schema), jobs, drop)]
    return pa.concat_tables(scored)


def even_slices(table: pa.Table, batch_rows: int, threads: int) -> list[pa.Table]:
    """``table`` as contiguous zero-copy slices of near-equal size: at most ``batch_rows``
    rows each, and a multiple of ``threads`` of them (when there are enough rows)."""
    rows = table.num_rows
    if rows == 0:
        return []
    count = -(-rows // max(batch_rows, 1))
    count = min(rows, -(-count // max(threads, 1)) * max(threads, 1))
    size = -(-rows // count)
    return [table.slice(start, size) for start in range(0, rows, size)]


# --- the batching rewrite of scalar predict -------------------------------------------

_FROM = "from_" if "from_" in exp.Select.arg_types else "from"


def target_select(tree: exp.Expression) -> exp.Select | None:
    """The SELECT whose rows the predictions belong to (also under CREATE TABLE AS / INSERT)."""
    if isinstance(tree, exp.Select):
        return tree
    if isinstance(tree, (exp.Create, exp.Insert)) and isinstance(tree.expression, exp.Select):
        return tree.expression
    return None


def refusal(tree: exp.Expression, calls: Sequence[ModelCall], plans: Sequence[CallPlan]) -> str | None:
    """Why the statement cannot be batched, or None when it can."""
    select = target_select(tree)
    if select is None:
        return "not a plain SELECT"
    source = select.args.get(_FROM)
    if source is None:
        return "no FROM clause"
    if select.args.get("joins") or select.args.get("laterals"):
        return "the query joins several relations"
    if select.args.get("limit") or select.args.get("offset"):
        return "LIMIT/OFFSET: row-at-a-time scoring stops early"
    if not isinstance(source.this, (exp.Table, exp.Subquery)):
        return "unsupported FROM source"
    alias = source.this.alias_or_name
    if any(isinstance(node, exp.Columns) for node in select.find_all(exp.Columns)):
        return "COLUMNS(...) would see the helper columns"
    if select.args.get("with_") is not None and any(
        inner is not select and inner.find_ancestor(exp.With) is None
        for inner in select.find_all(exp.Select)
    ):
        return "WITH plus subqueries: the CTEs must stay visible"
    onnx_calls = [c for c, p in zip(calls, plans) if isinstance(p.strategy, OnnxPlan)]
    if not onnx_calls:
        return "no ONNX calls left to batch"
    for call in onnx_calls:
        if call.node.find_ancestor(exp.Select) is not select:
            return "predict() inside a subquery"
        if call.node.find_ancestor(exp.Where, exp.Join, exp.From) is not None:
            return "predict() inside WHERE: rows must be scored before filtering"
    for call in onnx_calls:
        for bound in call.inputs:
            for column in bound.columns:
                if column.find(exp.AggFunc, exp.Window, exp.Subquery, exp.Select) is not None:
                    return "predict() arguments use aggregates, windows or subqueries"
                if any(
                    isinstance(n, exp.Anonymous) and str(n.this).lower() == PREDICT_PLACEHOLDER
                    for n in column.find_all(exp.Anonymous)
                ):
                    return "nested predict() calls"
                for ref in column.find_all(exp.Column):
                    if ref.table and ref.table.lower() != alias.lower():
                        return f"argument refers to another relation ({ref.table})"
    return None


def source_alias(select: exp.Select) -> str:
    return select.args[_FROM].this.alias_or_name or "nbgov_src"


def needed_columns(select: exp.Select, scored: Sequence[exp.Expression]) -> list[str] | None:
    """Source columns the outer query still reads once predict calls are columns;
    None when that cannot be told (a ``*``, a subquery), meaning all of them."""
    skip = {id(node) for node in scored}
    for key in ("where", _FROM, "with_"):
        if select.args.get(key) is not None:
            skip.add(id(select.args[key]))
    aliases = {e.alias.lower() for e in select.expressions if e.alias}
    alias = source_alias(select).lower()
    names: list[str] = []
    for node in select.walk(prune=lambda n: id(n) in skip):
        if id(node) in skip:
            continue
        if isinstance(node, (exp.Subquery, exp.Select)) and node is not select:
            return None
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            return None
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star) or (node.table and node.table.lower() != alias):
                return None
            if node.name.lower() in aliases and not node.table:
                continue
            if node.name and node.name not in names:
                names.append(node.name)
    return names


def inner_query(
    select: exp.Select, arguments: Sequence[tuple[str, exp.Expression]], columns: list[str] | None = None
) -> exp.Select:
    """``SELECT *, CAST(arg) AS helper, ... FROM source WHERE ...`` — the rows to score."""
    kept: list[exp.Expression] = (
        [exp.Star()] if columns is None else [exp.column(name, quoted=True) for name in columns]
    )
    inner = exp.select(*kept, *[exp.alias_(e, name, quoted=True) for name, e in arguments])
    inner.set(_FROM, select.args[_FROM].copy())
    where = select.args.get("where")
    if where is not None:
        inner.set("where", where.copy())
    with_ = select.args.get("with_")
    if with_ is not None:
        inner.set("with_", with_.copy())
    return inner


def rewrite_outer(select: exp.Select, table: str, alias: str, hidden: Sequence[str]) -> None:
    """Read from the scored table (aliased like the source); hide helper columns from ``*``."""
    select.set(_FROM, exp.From(this=exp.Table(this=exp.to_identifier(table, quoted=True), alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))))
    select.set("where", None)
    select.set("with_", None)
    hidden_ids = [exp.to_identifier(h, quoted=True) for h in hidden]
    for star in list(select.find_all(exp.Star)):
        if star.find_ancestor(exp.Select) is not select or isinstance(star.parent, (exp.Count, exp.AggFunc)):
            continue
        existing = list(star.args.get("except_") or [])
        star.set("except_", existing + [h.copy() for h in hidden_ids])
