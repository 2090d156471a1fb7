"""The SQLML engine: DuckDB + a model catalog + ONNX scoring, with no IPython in sight.

``Engine.execute(sql)`` splits a cell into statements. Model statements go to the
catalog; every other statement is compiled (``planning.compile``: a ``Prepared``, no
data touched; reused from the plan cache when nothing it depends on changed) and run by
the DuckDB executor. ``Engine.explain`` renders the ``Prepared`` with DuckDB's plans.
``BaseEngine`` is that statement loop over any catalog and executor: the Spark engine
(``nbgov.sqlml.spark``) is the same loop over its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

import duckdb
import pandas as pd

from nbgov.errors import NbgovError, SqlmlError
from nbgov.sqlml.activity import Activity
from nbgov.sqlml.catalog.catalog import ModelCatalog
from nbgov.sqlml.catalog.models_sql import explain_model_statement, run_model_statement
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from nbgov.sqlml.execution.duckdb_executor import DuckDbExecutor
from nbgov.sqlml.execution.executor import Executor, Progress
from nbgov.sqlml.execution.scoring import SessionCache
from nbgov.sqlml.optimizer import Planner as Optimizer
from nbgov.sqlml.plan import Planner
from nbgov.sqlml.planning.compile import NAIVE, Compiler, Planners
from nbgov.sqlml.planning.explain import render
from nbgov.sqlml.planning.plantext import MIN_WIDTH, WIDTH, fit
from nbgov.sqlml.planning.plancache import PlanCache
from nbgov.sqlml.planning.prepared import DEFAULT_BATCH_ROWS, Prepared, Settings
from nbgov.sqlml.sql.dberrors import one_line
from nbgov.sqlml.sql.frames import FrameNames, frame_candidates
from nbgov.sqlml.sql.statements import Statement, model_statement, split


_COLLATION_QUERY = (
    "SELECT current_setting('default_collation') = '' "
    "AND NOT EXISTS (SELECT 1 FROM duckdb_tables() WHERE upper(sql) LIKE '%COLLATE%') "
    "AND NOT EXISTS (SELECT 1 FROM duckdb_views() WHERE NOT internal AND upper(sql) LIKE '%COLLATE%')"
)


@dataclass
class StatementResult:
    """One executed statement: its result frame (or None), a summary line, its activity,
    and the notes of what planning did and running found."""

    statement: str
    kind: str
    df: pd.DataFrame | None
    summary: str
    activity: Activity
    explain: str | None = None


class BaseEngine:
    """The statement loop over one model catalog and one executor: model statements go to
    the catalog, the rest are compiled (plan cache) and run by the executor."""

    def __init__(
        self, catalog: ModelCatalog, executor: Executor, *, batch_rows: int, threads: int, planner: Planner | None
    ) -> None:
        """``planner``: the one used when optimizing (default: nbgov's optimizer), e.g. a
        second engine's or one with some rewrites off."""
        self.batch_rows = batch_rows
        self.threads = threads
        self.catalog = catalog
        self.executor: Executor = executor
        catalog.hand_sessions_to(executor.adopt_session)  # scored with, not opened twice
        self.compiler = Compiler(self.catalog, self.executor, self._planners)
        self._planner = planner
        self._optimizers: dict[bool, Planners] = {}  # by settings.exact_strings
        self._collation_free: bool | None = None  # see _no_collation
        self._plans = PlanCache()
        # Called as progress(label, rows_done, rows_total) while relations are scored in batches;
        # rows_total is None while the engine is still producing rows.
        self.progress: Progress | None = None

    # --- public API ---------------------------------------------------------------

    @staticmethod
    def split(sql: str) -> list[str]:
        """The statements of a cell, as written (comments inside kept)."""
        return [s.text for s in split(sql)]

    def execute(
        self,
        sql: str,
        *,
        params: Mapping[str, Any] | None = None,
        frames: Mapping[str, Any] | None = None,
        optimize: bool = True,
    ) -> list[StatementResult]:
        """Run every statement of ``sql``; ``$name`` values come from ``params``,
        tables named like an entry of ``frames`` (DataFrames, Arrow tables...) read it."""
        return [self._run(statement, params or {}, frames or {}, self._settings(optimize)) for statement in split(sql)]

    def explain(
        self,
        sql: str,
        *,
        params: Mapping[str, Any] | None = None,
        frames: Mapping[str, Any] | None = None,
        optimize: bool = True,
        width: int = WIDTH,
    ) -> str:
        """DuckDB's plan of each statement plus, per model call, what was done and why, in
        lines at most ``width`` wide (where the text is shown: ``SqlML.explain_width``)."""
        if width < MIN_WIDTH:
            raise SqlmlError(f"explain width {width} is too narrow; expected at least {MIN_WIDTH} characters")
        settings = self._settings(optimize)
        with self.catalog.previewing():  # models created earlier in the cell resolve, unstored
            parts = [self._explain(statement, params or {}, frames or {}, settings, width) for statement in split(sql)]
        return "\n\n".join(fit(p, width) for p in parts if p)

    def close(self) -> None:
        self.executor.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one statement -------------------------------------------------------------

    def _run(
        self, statement: Statement, params: Mapping[str, Any], frames: Mapping[str, Any], settings: Settings
    ) -> StatementResult:
        parsed = model_statement(statement)
        if parsed is not None:
            frame, summary, activity = run_model_statement(self.catalog, parsed, statement.text, params)
            activity = replace(activity, engine=self.executor.engine.value)
            return StatementResult(statement.text, activity.kind, frame, summary, activity)
        executor = self.executor
        names = frame_candidates(statement) if frames else FrameNames((), exact=True)
        with executor.exposing(frames, names) as visible:
            prepared = self._compiled(statement, params, visible, settings)
            if prepared.statement_type != "SELECT":  # DDL or a setting may add a collation
                self._collation_free = None
            outcome = executor.run(prepared, params, self.progress)
        activity = replace(prepared.activity, read=outcome.read, written=outcome.written)
        notes = "\n".join([*prepared.notes, *outcome.notes]) or None
        return StatementResult(statement.text, activity.kind, outcome.frame, outcome.summary, activity, notes)

    def _explain(
        self, statement: Statement, params: Mapping[str, Any], frames: Mapping[str, Any], settings: Settings, width: int
    ) -> str:
        parsed = model_statement(statement)
        if parsed is not None:
            return explain_model_statement(self.catalog, parsed, statement.text, params)[0]
        executor = self.executor
        names = frame_candidates(statement) if frames else FrameNames((), exact=True)
        with executor.exposing(frames, names) as visible:
            # compiled afresh: a model previewed by CREATE MODEL may stand in for a stored one
            prepared = self.compiler.compile(statement, settings=settings, params=params, frames=visible)
            return render(prepared, executor.plans(prepared, params, width))

    def _compiled(
        self, statement: Statement, params: Mapping[str, Any], frames: tuple[str, ...], settings: Settings
    ) -> Prepared:
        """The statement compiled, or its earlier compilation while nothing it read changed."""
        # a plan also depends on which models score compiled at once (the optimizer costs them)
        key = (statement.text, settings, frames, self.catalog.changes, self._kernels_version())
        version = self.executor.catalog_version()
        cached = self._plans.get(key, version, lambda prepared: self._still_valid(prepared, params))
        if cached is not None:
            return cached
        prepared = self.compiler.compile(statement, settings=settings, params=params, frames=frames)
        settled = version is not None and not frames and all(
            probe.columns is not None and self.executor.catalog_bound(probe.query) for probe in prepared.probes
        )
        self._plans.put(key, prepared, version if settled else None)
        return prepared

    def _still_valid(self, prepared: Prepared, params: Mapping[str, Any]) -> bool:
        """Whether every relation compile described still has the same columns."""
        for probe in prepared.probes:
            try:
                columns = self.executor.columns(probe.query, params)
            except NbgovError:
                columns = None
            if columns != probe.columns:
                return False
        return True

    def _settings(self, optimize: bool) -> Settings:
        exact = optimize and self._no_collation()
        return Settings(optimize=optimize, batch_rows=self.batch_rows, threads=self.threads, exact_strings=exact)

    def _no_collation(self) -> bool:
        """Whether the engine compares strings byte for byte everywhere (lets the optimizer
        reason about string categories). Asked once, again after any statement that is not
        a query (DDL, SET, PRAGMA)."""
        if self._collation_free is None:
            self._collation_free = self._compares_bytes()
        return self._collation_free

    def _compares_bytes(self) -> bool:
        """Unknown engines: assume a collation may be in effect (the safe answer)."""
        return False

    def _planners(self, settings: Settings) -> Planners:
        if not settings.optimize:
            return NAIVE
        exact = settings.exact_strings
        if exact not in self._optimizers:
            if self._planner is not None:
                self._optimizers[exact] = Planners(self._planner, self._planner)
            else:
                self._optimizers[exact] = self._default_optimizers(exact)
        return self._optimizers[exact]

    def _default_optimizers(self, exact_strings: bool) -> Planners:
        """ML.PREDICT's ONNX plans score in large batches: their own cost estimate."""
        return Planners(Optimizer(exact_strings=exact_strings), Optimizer(batched=True, exact_strings=exact_strings))

    def _kernels_version(self) -> int:
        """Moves when a model starts scoring compiled (engines without compiled scoring: 0)."""
        return 0


class Engine(BaseEngine):
    """One DuckDB connection with its model catalog, compiler, executor and plan cache."""

    executor: DuckDbExecutor

    def __init__(
        self,
        database: str = ":memory:",
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        threads: int | None = None,
        progress_bar: bool = True,
        planner: Planner | None = None,
        compile_trees: bool = True,
        tree_cache: Path | None = None,
    ) -> None:
        """``compile_trees``: score tree ensembles with compiled code when the rows repay
        compiling (``tree_cache``: where compiled kernels are kept, default the user's cache,
        ``~/.cache/nbgov/trees``)."""
        self.database = database
        try:
            self.con = duckdb.connect(database)
        except duckdb.Error as error:
            raise SqlmlError(f"cannot open database {database!r}: {one_line(error)}") from None
        if progress_bar:
            self.con.execute("SET enable_progress_bar = true").fetchall()
        threads = threads or max(os.cpu_count() or 1, 1)
        super().__init__(
            ModelCatalog(self.con),
            DuckDbExecutor(
                self.con,
                threads=threads,
                compile_trees=compile_trees,
                tree_cache=ArtifactCache(tree_cache) if tree_cache is not None else None,
            ),
            batch_rows=batch_rows, threads=threads, planner=planner,
        )

    @property
    def compile_trees(self) -> bool:
        """Whether tree ensembles may score with compiled code (``SqlML.compile_trees``)."""
        return self.executor.trees.enabled

    @compile_trees.setter
    def compile_trees(self, enabled: bool) -> None:
        self.executor.trees.enabled = enabled
        self.executor.trees.changed()  # plans costed with compiled kernels are costed again

    def _default_optimizers(self, exact_strings: bool) -> Planners:
        """The optimizer asks the executor which tree models score compiled at once: a
        cached kernel of the full model can beat a pruned model left to onnxruntime."""
        kernels = self.executor.trees
        return Planners(
            Optimizer(exact_strings=exact_strings, kernels=kernels),
            Optimizer(batched=True, exact_strings=exact_strings, kernels=kernels),
        )

    def _kernels_version(self) -> int:
        return self.executor.trees.version

    @property
    def sessions(self) -> SessionCache:
        """The onnxruntime sessions open for this engine (one per model plan)."""
        return self.executor.sessions

    def close(self) -> None:
        super().close()
        try:
            self.con.close()
        except duckdb.Error:
            pass

    def _compares_bytes(self) -> bool:
        """No default collation and no COLLATE in any table or view definition (a
        conservative test of their DDL)."""
        try:
            found = self.con.execute(_COLLATION_QUERY).fetchall()
        except duckdb.Error:
            return False
        return bool(found) and bool(found[0][0])

    def _threadpool(self) -> ThreadPoolExecutor:
        """The scoring pool (for benchmarks comparing hand-written scoring on the same pool)."""
        return self.executor.threadpool()
