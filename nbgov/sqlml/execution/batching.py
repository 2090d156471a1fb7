"""Score whole relations in large Arrow batches on a thread pool (the ``ScoreRelation``
steps of ML.PREDICT and of batched scalar ``predict``), instead of DuckDB's 2048-row
UDF calls.

onnxruntime releases the GIL, so batches run truly in parallel on every core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from nbgov.errors import ModelBindingError
from nbgov.sqlml.execution.regions import ScoreStats
from nbgov.sqlml.execution.scoring import Scorer, arrow_input
from nbgov.sqlml.plan import TensorSpec
from nbgov.sqlml.planning.prepared import ScoringJob

_SPLIT_ROWS = 4_096  # fewer rows than this are scored on one thread
_PROBE_ROWS = 512  # the first rows whose decision regions tell whether grouping pays


@dataclass(frozen=True)
class Scoring:
    """One run of a ``ScoringJob``: its scorer, and the rows seen and really scored."""

    job: ScoringJob
    scorer: Scorer
    stats: ScoreStats = field(default_factory=ScoreStats)


def _specs(scorer: Scorer) -> list[TensorSpec]:
    return [spec for spec, count in scorer.inputs for _ in range(count)]


def score_batch(batch: pa.RecordBatch | pa.Table, jobs: Sequence[Scoring], drop: frozenset[str]) -> pa.Table:
    """Append each job's prediction columns to ``batch`` and drop helper columns."""
    names = [n for n in batch.schema.names if n not in drop]
    arrays: list[pa.Array | pa.ChunkedArray] = [batch.column(n) for n in names]
    for job in jobs:
        inputs = _inputs(job, batch)
        for name, values in zip(job.job.columns, _score_valid_rows(job, inputs, len(batch))):
            if name in names:
                arrays[names.index(name)] = values
            else:
                names.append(name)
                arrays.append(values)
    return pa.Table.from_arrays(arrays, names=names)


def _inputs(job: Scoring, batch: pa.RecordBatch | pa.Table) -> list[pa.Array | pa.ChunkedArray]:
    """The job's argument columns, cast to what the model's inputs want."""
    try:
        return [arrow_input(spec, batch.column(name)) for spec, name in zip(_specs(job.scorer), job.job.arguments)]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        message = str(error).splitlines()[0][:160]
        raise ModelBindingError(
            f"{job.job.label}: an input cannot be cast ({message}); expected {job.job.expected}"
        ) from None


def _score_valid_rows(job: Scoring, inputs: list[pa.Array | pa.ChunkedArray], rows: int) -> list[pa.Array]:
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


def _picked(job: Scoring, inputs: list[pa.Array | pa.ChunkedArray]) -> list[pa.Array]:
    scorer = job.scorer
    names = job.job.wanted
    results = dict(zip(names or [o.name for o in scorer.outputs], scorer.run(inputs, names, job.stats)))
    arrays: list[pa.Array] = []
    for pick in job.job.picks:
        if pick.output is None:
            arrays.append(scorer.value_of(results))
        else:
            arrays.append(scorer.output_arrow(pick.output, results[pick.output], pick.element))
    return arrays


def score_relation(
    table: pa.Table,
    jobs: Sequence[Scoring],
    pool: ThreadPoolExecutor,
    threads: int,
    drop: frozenset[str],
    progress: Callable[[int, int], None] | None,
    batch_rows: int,
    decisions: RegionDecisions | None = None,
    relation: str = "",
) -> pa.Table:
    """Score the relation's rows on ``pool`` (results in order) and return one Arrow table.

    The rows are cut into contiguous near-equal slices of at most ``batch_rows`` rows, a
    multiple of ``threads`` of them, so that every core gets work even when a filter
    leaves few rows; this thread scores the last slice instead of waiting idle.
    ``progress(rows_done, rows_total)`` is called from this thread as slices finish.
    ``decisions`` remembers, per ``relation`` (its SQL) and model, whether its rows shared
    decision regions.
    (DuckDB materializes a relation as Arrow faster than it streams it: a stream's first
    batch comes about when the whole table would have, so nothing is lost by waiting.)
    """
    jobs = _probed(table, jobs, decisions, relation)
    split = table.num_rows >= _SPLIT_ROWS and any(job.scorer.regions is None for job in jobs)
    parts = even_slices(table, batch_rows, threads if split else 1)
    if not parts:
        return score_batch(table, jobs, drop)
    pending: list[tuple[int, Future[pa.Table]]] = [
        (len(part), pool.submit(score_batch, part, jobs, drop)) for part in parts[:-1]
    ]
    last = score_batch(parts[-1], jobs, drop)
    scored: list[pa.Table] = []
    done = 0
    for rows, future in pending:
        scored.append(future.result())
        done += rows
        if progress is not None:
            progress(done, table.num_rows)
    scored.append(last)
    if progress is not None:
        progress(table.num_rows, table.num_rows)
    return scored[0] if len(scored) == 1 else pa.concat_tables(scored)


class RegionDecisions:
    """Whether a relation's rows shared decision regions, per (relation SQL, model plan), as
    probed the last time it was scored: the next run of the same query skips the probe. A
    decision only chooses how rows are scored (never what they score), and grouping still
    checks its batch before it groups."""

    LIMIT = 256

    def __init__(self) -> None:
        self._shared: dict[tuple[str, str], bool] = {}

    def get(self, relation: str, job: Scoring) -> bool | None:
        return self._shared.get((relation, job.job.plan.cache_key))

    def put(self, relation: str, job: Scoring, shared: bool) -> None:
        if len(self._shared) >= self.LIMIT:
            self._shared.clear()
        self._shared[(relation, job.job.plan.cache_key)] = shared


def _probed(table: pa.Table, jobs: Sequence[Scoring], decisions: RegionDecisions | None = None,
            relation: str = "") -> list[Scoring]:
    """The jobs with decision regions only where the relation's first rows share them.

    Probed once per relation, not once per slice: a job whose first rows are nearly all
    regions of their own (a finely cut feature) scores every row. Jobs that do share
    regions are not split over threads: their scoring is then numpy work under the GIL,
    and thread handoffs would cost more than they save."""
    if table.num_rows < _SPLIT_ROWS:
        return list(jobs)
    probe = table.slice(0, _PROBE_ROWS)
    kept: list[Scoring] = []
    for job in jobs:
        if job.scorer.regions is None:
            kept.append(job)
            continue
        shared = decisions.get(relation, job) if decisions is not None else None
        if shared is None:
            shared = job.scorer.shares_regions(_inputs(job, probe))
            if decisions is not None:
                decisions.put(relation, job, shared)
        kept.append(job if shared else replace(job, scorer=replace(job.scorer, regions=None)))
    return kept


def regions_note(job: Scoring) -> str | None:
    """How many rows onnxruntime really scored, when decision regions were shared."""
    return stats_note(job.job.label, job.stats)


def stats_note(label: str, stats: ScoreStats) -> str | None:
    """``regions_note`` from the rows a job saw and scored (also summed over executors)."""
    if stats.scored >= stats.rows:
        return None
    return (
        f"{label}: decision regions: {stats.scored:,} rows scored for {stats.rows:,} "
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
