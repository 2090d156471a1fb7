"""Score whole relations in large Arrow batches on a thread pool (ML.PREDICT, and
the batching rewrite of scalar ``predict``), instead of DuckDB's 2048-row UDF calls.

onnxruntime releases the GIL, so batches run truly in parallel on every core.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import sqlglot.expressions as exp

from nbgov.errors import ModelBindingError
from nbgov.sqlml.plan import CallPlan, ModelCall, OnnxPlan, TensorSpec
from nbgov.sqlml.planning.picks import Pick
from nbgov.sqlml.execution.regions import ScoreStats
from nbgov.sqlml.execution.scoring import Scorer, arrow_input
from nbgov.sqlml.sql.statements import PREDICT_PLACEHOLDER

DEFAULT_BATCH_ROWS = 65_536
_SPLIT_ROWS = 4_096  # fewer rows than this are scored on one thread


@dataclass(frozen=True)
class ScoringJob:
    """Feed ``arguments`` (column names, in scorer order) to ``scorer``; ``picks`` say
    which result columns to append (ML.PREDICT: one per output)."""

    scorer: Scorer
    arguments: tuple[str, ...]
    picks: tuple[Pick, ...]
    label: str  # for error messages, e.g. "ML.PREDICT(churn@1)"
    expected: str  # the model signature, for error messages
    stats: ScoreStats = field(default_factory=ScoreStats, compare=False)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(pick.column for pick in self.picks)

    @property
    def outputs(self) -> tuple[str, ...] | None:
        """The model outputs to compute (None: all)."""
        if any(pick.output is None for pick in self.picks):
            return None
        wanted = {pick.output for pick in self.picks}
        return tuple(o.name for o in self.scorer.outputs if o.name in wanted)


def _specs(scorer: Scorer) -> list[TensorSpec]:
    return [spec for spec, count in scorer.inputs for _ in range(count)]


def score_batch(batch: pa.RecordBatch | pa.Table, jobs: Sequence[ScoringJob], drop: frozenset[str]) -> pa.Table:
    """Append each job's prediction columns to ``batch`` and drop helper columns."""
    names = [n for n in batch.schema.names if n not in drop]
    arrays: list[pa.Array | pa.ChunkedArray] = [batch.column(n) for n in names]
    for job in jobs:
        inputs = _inputs(job, batch)
        for name, values in zip(job.columns, _score_valid_rows(job, inputs, len(batch))):
            if name in names:
                arrays[names.index(name)] = values
            else:
                names.append(name)
                arrays.append(values)
    return pa.Table.from_arrays(arrays, names=names)


def _inputs(job: ScoringJob, batch: pa.RecordBatch | pa.Table) -> list[pa.Array | pa.ChunkedArray]:
    """The job's argument columns, cast to what the model's inputs want."""
    try:
        return [arrow_input(spec, batch.column(name)) for spec, name in zip(_specs(job.scorer), job.arguments)]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        message = str(error).splitlines()[0][:160]
        raise ModelBindingError(f"{job.label}: an input cannot be cast ({message}); expected {job.expected}") from None


def _score_valid_rows(job: ScoringJob, inputs: list[pa.Array | pa.ChunkedArray], rows: int) -> list[pa.Array]:
    """NULL in any input gives NULL output for that row; the other rows are scored."""
    valid = _valid_rows(inputs)
    if valid is None:
        return _picked(job, inputs)
    keep = pa.array(valid)
    scored = _picked(job, [c.filter(keep) for c in inputs])
    positions = np.full(rows, -1, dtype=np.int64)
    positions[valid] = np.arange(int(valid.sum()))
    take = pa.array(positions, mask=positions < 0)
    return [values.take(take) for values in scored]


def _valid_rows(columns: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray | None:
    """Rows with no NULL in any column (a boolean mask); None when there is no NULL."""
    valid = None
    for column in columns:
        if column.null_count:
            mask = np.asarray(column.is_valid())
            valid = mask if valid is None else valid & mask
    return valid


def _picked(job: ScoringJob, inputs: list[pa.Array | pa.ChunkedArray]) -> list[pa.Array]:
    scorer = job.scorer
    names = job.outputs
    results = dict(zip(names or [o.name for o in scorer.outputs], scorer.run(inputs, names, job.stats)))
    arrays: list[pa.Array] = []
    for pick in job.picks:
        if pick.output is None:
            arrays.append(scorer.value_of(results))
        else:
            arrays.append(scorer.output_arrow(pick.output, results[pick.output], pick.element))
    return arrays


def score_relation(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    jobs: Sequence[ScoringJob],
    pool: ThreadPoolExecutor,
    drop: frozenset[str] = frozenset(),
    progress: Callable[[int, int | None], None] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> pa.Table:
    """Score the relation on ``pool`` (results in order) and return one Arrow table.

    Batches are scored while DuckDB still produces the next ones: each run of at least
    half ``batch_rows`` rows goes to the pool as it arrives. What is left at the end (all
    of a small relation) is cut into near-equal slices, a multiple of the pool's threads,
    so that every core gets work even when a filter leaves few rows.
    ``progress(rows_done, rows_total)`` is called from this thread as slices finish;
    the total is None until the relation has been read.
    """
    threads = getattr(pool, "_max_workers", 1)
    pending: deque[tuple[int, Future[pa.Table]]] = deque()
    scored: list[pa.Table] = []
    buffered: list[pa.RecordBatch] = []
    done = 0

    def collect(wait: bool, total: int | None) -> None:
        nonlocal done
        while pending and (wait or pending[0][1].done()):
            rows, future = pending.popleft()
            scored.append(future.result())
            done += rows
            if progress is not None:
                progress(done, total)

    submitted = 0
    for batch in batches:
        if not len(batch):
            continue
        buffered.append(batch)
        rows = sum(len(b) for b in buffered)
        if rows >= batch_rows // 2:
            piece = pa.Table.from_batches(buffered, schema=schema)
            for part in even_slices(piece, batch_rows, 1):
                pending.append((len(part), pool.submit(score_batch, part, jobs, drop)))
            submitted += rows
            buffered = []
            collect(False, None)
    rest = pa.Table.from_batches(buffered, schema=schema)
    parts = even_slices(rest, batch_rows, threads if _worth_splitting(rest, jobs) else 1)
    for part in parts[:-1]:
        pending.append((len(part), pool.submit(score_batch, part, jobs, drop)))
    if parts:  # this thread scores the last slice instead of waiting idle
        here: Future[pa.Table] = Future()
        here.set_result(score_batch(parts[-1], jobs, drop))
        pending.append((len(parts[-1]), here))
    collect(True, submitted + rest.num_rows)
    if not scored:
        scored = [score_batch(pa.RecordBatch.from_pylist([], schema=schema), jobs, drop)]
    return pa.concat_tables(scored)


def _worth_splitting(table: pa.Table, jobs: Sequence[ScoringJob]) -> bool:
    """Whether to spread the last rows over the pool's threads: not for a few rows, nor
    for models with decision regions (pruned trees), whose rows mostly share a few
    regions: their scoring is then numpy work under the GIL, and thread handoffs would
    cost more than they save (at worst, such a remainder runs on one thread)."""
    return table.num_rows >= _SPLIT_ROWS and any(job.scorer.regions is None for job in jobs)


def note_regions(job: ScoringJob, notes: list[str]) -> None:
    """Say how many rows onnxruntime really scored when decision regions were shared."""
    stats = job.stats
    if stats.scored < stats.rows:
        notes.append(
            f"{job.label}: decision regions: {stats.scored:,} rows scored for {stats.rows:,} "
            "(rows that take the same path through every tree share one score)"
        )


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
        if call.node.find_ancestor(exp.Join, exp.From) is not None:
            return "predict() inside a JOIN condition"
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


def split_where(select: exp.Select, scored: Sequence[exp.Expression]) -> tuple[list[exp.Expr], list[exp.Expr]]:
    """The WHERE's conjuncts as (pushed, kept): pushed ones filter the rows before they
    are scored; kept ones read a prediction (or a select-list alias, which DuckDB allows
    in WHERE) and stay in the outer query, over the scored rows."""
    where = select.args.get("where")
    if where is None:
        return [], []
    conjuncts = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
    aliases = {e.alias.lower() for e in select.expressions if e.alias}
    scored_ids = {id(node) for node in scored}
    pushed: list[exp.Expr] = []
    kept: list[exp.Expr] = []
    for conjunct in conjuncts:
        reads_outer = any(
            id(node) in scored_ids or (isinstance(node, exp.Column) and not node.table and node.name.lower() in aliases)
            for node in conjunct.walk()
        )
        (kept if reads_outer else pushed).append(conjunct)
    return pushed, kept


def needed_columns(
    select: exp.Select, scored: Sequence[exp.Expression], pushed: Sequence[exp.Expr] = ()
) -> list[str] | None:
    """Source columns the outer query still reads once predict calls are columns and the
    ``pushed`` conjuncts of its WHERE have moved into the scored relation's query;
    None when that cannot be told (a ``*``, a subquery), meaning all of them."""
    skip = {id(node) for node in [*scored, *pushed]}
    for key in (_FROM, "with_"):
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
    select: exp.Select,
    arguments: Sequence[tuple[str, exp.Expression]],
    columns: list[str] | None = None,
    pushed: Sequence[exp.Expr] = (),
) -> exp.Select:
    """``SELECT *, CAST(arg) AS helper, ... FROM source WHERE <pushed>`` — the rows to score."""
    kept: list[exp.Expression] = (
        [exp.Star()] if columns is None else [exp.column(name, quoted=True) for name in columns]
    )
    inner = exp.select(*kept, *[exp.alias_(e, name, quoted=True) for name, e in arguments])
    inner.set(_FROM, select.args[_FROM].copy())
    if pushed:
        inner.set("where", exp.Where(this=exp.and_(*pushed)))  # and_ copies them
    with_ = select.args.get("with_")
    if with_ is not None:
        inner.set("with_", with_.copy())
    return inner


def rewrite_outer(
    select: exp.Select, table: str, alias: str, hidden: Sequence[str], kept: Sequence[exp.Expr] = ()
) -> None:
    """Read from the scored table (aliased like the source), filtered by the ``kept``
    conjuncts of the WHERE (those reading predictions); hide helper columns from ``*``."""
    select.set(_FROM, exp.From(this=exp.Table(this=exp.to_identifier(table, quoted=True), alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))))
    select.set("where", exp.Where(this=exp.and_(*kept, copy=False)) if kept else None)
    select.set("with_", None)
    hidden_ids = [exp.to_identifier(h, quoted=True) for h in hidden]
    for star in list(select.find_all(exp.Star)):
        if star.find_ancestor(exp.Select) is not select or isinstance(star.parent, (exp.Count, exp.AggFunc)):
            continue
        existing = list(star.args.get("except_") or [])
        star.set("except_", existing + [h.copy() for h in hidden_ids])
