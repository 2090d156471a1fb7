"""The SQLML engine: DuckDB + a model catalog + ONNX scoring, with no IPython in sight.

``Engine.execute(sql)`` splits a cell into statements and runs each one:
model statements go to the catalog, ``ML.PREDICT`` relations are scored in large
batches, ``predict(...)`` calls are bound, planned (optimizer or naive) and run as
batched scoring or vectorized Arrow UDFs; everything else reaches DuckDB untouched.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from itertools import count
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import ParseError

from nbgov.errors import ModelBindingError, NbgovError, SqlmlError
from nbgov.sqlml import activity as act
from nbgov.sqlml.execution.batching import (
    DEFAULT_BATCH_ROWS,
    ScoringJob,
    inner_query,
    needed_columns,
    note_regions,
    refusal,
    rewrite_outer,
    score_relation,
    source_alias,
    split_where,
    target_select,
)
from nbgov.sqlml.planning.binding import bind, predict_calls, signature
from nbgov.sqlml.catalog.catalog import ModelCatalog
from nbgov.sqlml.sql.dberrors import one_line, sql_error
from nbgov.sqlml.sql.frames import FrameScope
from nbgov.sqlml.planning.mlpredict import fold_outputs, inlined_relation, typed_stand_in, relation_arguments, relation_call, slot_counts
from nbgov.sqlml.catalog.models_sql import explain_model_statement, run_model_statement
from nbgov.sqlml.planning.fields import fold_access, fold_through_cte
from nbgov.sqlml.optimizer.output_predicates import comparison_node
from nbgov.sqlml.planning.picks import Pick, output_access, relation_picks
from nbgov.sqlml.plan import (
    CallPlan,
    ModelCall,
    ModelVersion,
    NaivePlanner,
    OnnxPlan,
    Planner,
    SqlPlan,
    original_cache_key,
)
from nbgov.sqlml.planning.plancache import BatchStep, PlanCache, Prepared, Step, UdfStep
from nbgov.sqlml.execution.regions import ScoreStats
from nbgov.sqlml.execution.scoring import Scorer, SessionCache
from nbgov.sqlml.sql.statements import (
    MlPredict,
    Statement,
    model_statement,
    rewrite_extensions,
    split,
    tokenize,
)
from nbgov.sqlml.execution.udf import UdfSet, cast_argument, make_scorer

_QUERY_TYPES = {"SELECT", "PRAGMA", "EXPLAIN", "CALL", "EXECUTE", "RELATION"}
_DDL_TYPES = {"CREATE", "DROP", "ALTER"}


@dataclass
class StatementResult:
    """One executed statement: its result frame (or None), a summary line and its activity."""

    statement: str
    kind: str
    df: pd.DataFrame | None
    summary: str
    activity: dict[str, Any]
    explain: str | None = None


@dataclass
class _Context:
    """Per-statement state: bound values, what was touched, explain notes."""

    params: Mapping[str, Any]
    frames: Mapping[str, Any]
    optimize: bool
    dry: bool
    activity: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what planning did and why
    run_notes: list[str] = field(default_factory=list)  # what running found (rows scored)
    hidden: set[str] = field(default_factory=set)
    signatures: list[str] = field(default_factory=list)
    # Helper names (registered tables, UDFs, columns) are numbered per statement: all are
    # removed when it ends, and the same statement then gives the same SQL each time.
    ids: Iterator[int] = field(default_factory=count)
    steps: list[Step] = field(default_factory=list)  # what runs before the final SQL
    cacheable: bool = True  # False once planning read something a later run may not see alike


class Engine:
    """One DuckDB connection with its model catalog, session cache and scoring pool."""

    def __init__(
        self,
        database: str = ":memory:",
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        threads: int | None = None,
        progress_bar: bool = True,
        planner: Planner | None = None,
    ) -> None:
        """``planner``: the one used when optimizing (default: nbgov's optimizer), e.g. a
        second engine's or one with some rewrites off."""
        self.database = database
        self.batch_rows = batch_rows
        self.threads = threads or max(os.cpu_count() or 1, 1)
        try:
            self.con = duckdb.connect(database)
        except duckdb.Error as error:
            raise SqlmlError(f"cannot open database {database!r}: {one_line(error)}") from None
        if progress_bar:
            self.con.execute("SET enable_progress_bar = true").fetchall()
        self.catalog = ModelCatalog(self.con)
        self.sessions = SessionCache()
        self._pool: ThreadPoolExecutor | None = None
        self._optimizer: Planner | None = planner
        self._batched_optimizer: Planner | None = planner
        self._duckdb_parsed: dict[str, list[Any]] = {}  # SQL text -> DuckDB's extract_statements
        self._plans = PlanCache()
        # Called as progress(label, rows_done, rows_total) while relations are scored in batches;
        # rows_total is None while DuckDB is still producing rows.
        self.progress: Callable[[str, int, int | None], None] | None = None

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
        return [
            self._run(statement, params or {}, frames or {}, optimize, dry=False)
            for statement in split(sql)
        ]

    def explain(
        self,
        sql: str,
        *,
        params: Mapping[str, Any] | None = None,
        frames: Mapping[str, Any] | None = None,
        optimize: bool = True,
    ) -> str:
        """DuckDB's plan of each statement plus, per model call, what was done and why."""
        with self.catalog.previewing():  # models created earlier in the cell resolve, unstored
            parts = [
                self._run(statement, params or {}, frames or {}, optimize, dry=True).explain or ""
                for statement in split(sql)
            ]
        return "\n\n".join(p for p in parts if p)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.sessions.clear()
        try:
            self.con.close()
        except duckdb.Error:
            pass

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one statement -------------------------------------------------------------

    def _run(
        self,
        statement: Statement,
        params: Mapping[str, Any],
        frames: Mapping[str, Any],
        optimize: bool,
        *,
        dry: bool,
    ) -> StatementResult:
        parsed = model_statement(statement)
        if parsed is not None:
            if dry:
                text, activity = explain_model_statement(self.catalog, parsed, statement.text, params)
                return StatementResult(statement.text, activity["kind"], None, "", activity, text)
            frame, summary, activity = run_model_statement(self.catalog, parsed, statement.text, params)
            return StatementResult(statement.text, activity["kind"], frame, summary, activity)
        ctx = _Context(params, frames, optimize, dry, act.new_activity(statement.text, "other"))
        names = self._frame_candidates(statement) if frames else []
        with ExitStack() as stack:
            scope = stack.enter_context(FrameScope(self.con, frames, names))
            ctx.activity["frames"] = list(scope.registered)
            ctx.hidden.update(scope.registered)
            try:
                final_sql = self._prepared(statement, ctx, stack, tuple(scope.registered))
                kind = self._statement_type(final_sql)
                bound = self._bind_params(final_sql, ctx)
                for name in scope.registered:
                    if name in ctx.activity["tables_read"]:
                        ctx.activity["tables_read"].remove(name)
                ctx.activity["kind"] = _kind_name(kind)
                if dry:
                    plan = self._explain_plan(final_sql, bound)
                    text = "\n".join([plan, *ctx.notes, *ctx.run_notes])
                    return StatementResult(statement.text, ctx.activity["kind"], None, "", ctx.activity, text)
                frame, summary = self._fetch(final_sql, bound, kind)
            except duckdb.Error as error:
                if ctx.signatures and isinstance(error, duckdb.ConversionException):
                    raise ModelBindingError(
                        f"{one_line(error)}; expected {'; '.join(ctx.signatures)}"
                    ) from None
                if ctx.signatures and isinstance(error, duckdb.BinderException):
                    raise SqlmlError(f"{one_line(error)}; model inputs: {'; '.join(ctx.signatures)}") from None
                raise sql_error(error) from None
        explain = "\n".join([*ctx.notes, *ctx.run_notes]) or None
        return StatementResult(statement.text, ctx.activity["kind"], frame, summary, ctx.activity, explain)

    def _prepared(self, statement: Statement, ctx: _Context, stack: ExitStack, frames: tuple[str, ...]) -> str:
        """The final SQL, planned, or replayed from the plan of an earlier run of the same
        text: parsing, binding and optimizing cost a few milliseconds, which is what a
        selective query or a re-run cell otherwise pays for most. A plan is reused only
        while the model catalog is unchanged, with the same frames and settings, and never
        for what planning had to ask DuckDB about (``*`` arguments, ML.PREDICT)."""
        key = (statement.text, ctx.optimize, frames, self.catalog.changes, self.batch_rows)
        cached = None if ctx.dry else self._plans.get(key)
        if cached is None:
            final_sql = self._prepare(statement, ctx, stack, top=True)
            if not ctx.dry and ctx.cacheable:
                self._plans.put(key, Prepared(
                    final_sql, tuple(ctx.steps), tuple(ctx.notes), copy.deepcopy(ctx.activity),
                    frozenset(ctx.hidden), tuple(ctx.signatures),
                ))
            return final_sql
        ctx.notes.extend(cached.notes)
        ctx.activity.update(copy.deepcopy(cached.activity))
        ctx.hidden.update(cached.hidden)
        ctx.signatures.extend(cached.signatures)
        udfs = UdfSet(self.con, self.sessions, ctx.ids, regions=ctx.optimize)
        stack.callback(udfs.close)
        for step in cached.steps:
            if isinstance(step, UdfStep):
                udfs.add(step.plan, step.outputs, step.name)
            else:
                self._run_batch(step, ctx, stack)
        return cached.sql

    def _prepare(
        self, statement: Statement, ctx: _Context, stack: ExitStack, *, top: bool
    ) -> str:
        """The statement's final SQL for DuckDB, model extensions rewritten."""
        rewritten = rewrite_extensions(statement, f"nbgov_mlp_{next(ctx.ids)}_")
        self._check_syntax(statement.text if not rewritten.ml_predicts else rewritten.text)
        if rewritten.ml_predicts:
            ctx.cacheable = False  # the relations' columns come from DuckDB
        as_sql: dict[str, tuple[exp.Select, str]] = {}
        outer = _Outer(rewritten.text) if rewritten.ml_predicts and ctx.optimize else None
        projected = False
        for ml_call in rewritten.ml_predicts:
            scored = self._ml_predict(ml_call, ctx, stack, outer)
            if isinstance(scored, tuple):  # the model runs as SQL: the relation becomes a subquery
                as_sql[ml_call.placeholder] = scored
                continue
            self.con.register(ml_call.placeholder, scored.table)
            stack.callback(self._unregister, ml_call.placeholder)
            ctx.hidden.add(ml_call.placeholder)
            projected = projected or scored.projected
        if projected and outer is not None and outer.tree is not None:  # predicted_x[k] now reads a helper column
            rewritten.text = outer.tree.sql(dialect="duckdb")
        inlined: exp.Expression | None = None
        if as_sql:
            rewritten.text, inlined = self._inline_relations(rewritten.text, as_sql, ctx)
        reuse = projected and not as_sql
        tree = inlined if inlined is not None else (outer.tree if reuse and outer else _parse(rewritten.text))
        if tree is not None:  # before any rewrite moves the FROM into a scored relation
            act.collect(tree, ctx.activity, ctx.hidden)
        if not rewritten.has_predict:
            if not rewritten.ml_predicts:
                return statement.text
            return rewritten.text
        if tree is None:
            raise SqlmlError("cannot parse the statement around predict(); check its syntax")
        nodes = predict_calls(tree)
        if any(_inside_another(node, nodes) for node in nodes):
            raise SqlmlError("predict() calls cannot be nested; compute the inner one in a CTE or subquery first")
        if any(isinstance(arg, (exp.Star, exp.Columns)) or arg.find(exp.Star) for node in nodes for arg in node.expressions):
            ctx.cacheable = False  # '*' binds by the relation's columns, which may change
        calls = [bind(node, tree, self.catalog.resolve) for node in nodes]
        plans = [self._plan(call, ctx) for call in calls]
        for call in calls:
            act.add_model(ctx.activity, call.model)
            if signature(call.model) not in ctx.signatures:
                ctx.signatures.append(signature(call.model))
        for call, plan in zip(calls, plans):
            if isinstance(plan.strategy, SqlPlan):
                inlined = plan.strategy.expression.copy()
                compared = comparison_node(call.node) if plan.strategy.comparison else None
                if compared is not None:  # an output predicate, now a boolean filter
                    compared[0].replace(inlined)
                    continue
                call.node.replace(inlined)
                if ctx.optimize and (fold_access(inlined) is not inlined or fold_through_cte(inlined)):
                    ctx.notes.append(
                        f"predict({call.model.ref}): output projection: only the output values the query reads are computed"
                    )
        batched: set[int] = set()
        if top and not any(isinstance(p.strategy, OnnxPlan) for p in plans):
            ctx.notes.append("batching: not needed (no ONNX call left: every predict() runs as SQL)")
        elif top and ctx.optimize:
            reason = refusal(tree, calls, plans)
            if reason is None:
                batched = self._batch(tree, calls, plans, ctx, stack)
            else:
                ctx.notes.append(f"batching: not applied ({reason}); scoring through an Arrow UDF")
        elif top:
            ctx.notes.append("batching: off (--no-optimize); scoring through an Arrow UDF")
        udfs = UdfSet(self.con, self.sessions, ctx.ids, regions=ctx.optimize)
        stack.callback(udfs.close)
        shared: dict[tuple[str, ...], exp.Expression] = {}
        for index, (call, plan) in enumerate(zip(calls, plans)):
            if index in batched or not isinstance(plan.strategy, OnnxPlan):
                continue
            key = _call_key(plan.strategy)
            if key not in shared:  # identical calls share one UDF, so GROUP BY can match them
                shared[key] = udfs.add(plan.strategy, call.model.outputs)
                ctx.steps.append(UdfStep(plan.strategy, call.model.outputs, str(shared[key].this)))
            call.node.replace(shared[key].copy())
        return tree.sql(dialect="duckdb", copy=False)  # the tree is not used again

    def _inline_relations(
        self, text: str, as_sql: dict[str, tuple[exp.Select, str]], ctx: _Context
    ) -> tuple[str, exp.Expression | None]:
        """Put each ML.PREDICT inlined as SQL in place of its placeholder: as a CTE when the
        statement is one plain SELECT from it, so that the optimizer's output projection
        computes only the predicted values read (``predicted_probabilities[2]``); else as a
        subquery, text otherwise untouched. Returns the SQL and, for the CTE, its tree."""

        def nested() -> str:
            for select, _ in as_sql.values():
                fold_outputs(select)
            return re.sub(
                r"\b(" + "|".join(re.escape(p) for p in as_sql) + r")\b",
                lambda match: f"({as_sql[match.group(1)][0].sql(dialect='duckdb')})",
                text,
            )

        if len(as_sql) != 1 or not ctx.optimize:
            return nested(), None
        ((placeholder, (body, stand_in)),) = as_sql.items()
        outer = _parse(text)
        from_ = (outer.args.get("from_") or outer.args.get("from")) if isinstance(outer, exp.Select) else None
        if (
            not isinstance(outer, exp.Select)
            or from_ is None
            or not isinstance(from_.this, exp.Table)
            or from_.this.name != placeholder
            or outer.args.get("with_")
            or outer.args.get("joins")
        ):
            return nested(), None
        named = re.sub(rf"\b{re.escape(placeholder)}\b", lambda _: f"({stand_in})", text)
        probe = f"SELECT * FROM ({named}) AS nbgov_names LIMIT 0"  # the column names as written
        try:
            names = [d[0] for d in self.con.execute(probe, self._bind_params(probe, ctx) or None).description or ()]
        except duckdb.Error:  # let the query itself report what is wrong
            return nested(), None
        fold_outputs(body)
        tree = outer.with_(placeholder, as_=body, copy=False)
        values = [e.this for e in body.expressions if isinstance(e, exp.Alias) and e.alias.startswith("predicted_")]
        if not [value for value in values if fold_through_cte(value)] or len(names) != len(tree.expressions):
            return nested(), None
        for item, name in zip(list(tree.expressions), names):  # keep the result's column names as written
            if not (isinstance(item, exp.Alias) and item.alias == name):
                item.replace(exp.alias_(item.this if isinstance(item, exp.Alias) else item, name, quoted=True))
        ctx.hidden.add(placeholder)
        ctx.notes.append("ML.PREDICT: output projection: only the predicted values the query reads are computed")
        return tree.sql(dialect="duckdb"), tree

    def _plan(self, call: ModelCall, ctx: _Context, *, batched: bool = False) -> CallPlan:
        planner = self._batched_planner(ctx.optimize) if batched else self._planner(ctx.optimize)
        try:
            plan = planner.plan_call(call)
        except NbgovError:
            raise
        except Exception as error:  # an optimizer bug must not break the user's query
            plan = NaivePlanner().plan_call(call)
            plan = CallPlan(plan.strategy, (f"optimizer failed ({type(error).__name__}: {error}); kept as ONNX",), {})
        header = f"predict({call.model.ref}):"
        ctx.notes.append(" ".join([header, "; ".join(plan.notes) or "no notes"]))
        if plan.stats:
            ctx.notes.append("  stats: " + ", ".join(f"{k}={v}" for k, v in plan.stats.items()))
        return plan

    def _planner(self, optimize: bool) -> Planner:
        if not optimize:
            return NaivePlanner()
        if self._optimizer is None:
            try:
                from nbgov.sqlml.optimizer import Planner as OptimizerPlanner

                self._optimizer = OptimizerPlanner()
            except Exception:  # not shipped yet, or broken: run unoptimized
                self._optimizer = NaivePlanner()
        return self._optimizer

    def _batched_planner(self, optimize: bool) -> Planner:
        """For ML.PREDICT, whose ONNX plans score the relation in large batches: the cost
        estimate compares SQL with batched onnxruntime, not with the per-call UDF."""
        if not optimize:
            return NaivePlanner()
        if self._batched_optimizer is None:
            try:
                from nbgov.sqlml.optimizer import Planner as OptimizerPlanner

                self._batched_optimizer = OptimizerPlanner(batched=True)
            except Exception:  # not shipped, or another signature: the general planner
                self._batched_optimizer = self._planner(optimize)
        return self._batched_optimizer

    # --- batched scoring -----------------------------------------------------------------

    def _batch(
        self,
        tree: exp.Expression,
        calls: list[ModelCall],
        plans: list[CallPlan],
        ctx: _Context,
        stack: ExitStack,
    ) -> set[int]:
        """Score the FROM relation once in big batches; predict(...) becomes a column."""
        select = target_select(tree)
        assert select is not None
        alias = source_alias(select)
        arguments: list[tuple[str, exp.Expression]] = []
        jobs: list[ScoringJob] = []
        tag = next(ctx.ids)
        groups: dict[tuple[str, ...], list[int]] = {}  # identical calls share one scoring
        for index, (call, plan) in enumerate(zip(calls, plans)):
            if isinstance(plan.strategy, OnnxPlan):
                groups.setdefault(_call_key(plan.strategy), []).append(index)
        reads: dict[int, tuple[exp.Expression, str]] = {}  # call -> (node read, its column)
        for group in groups.values():
            first = group[0]
            strategy = plans[first].strategy
            assert isinstance(strategy, OnnxPlan)
            names: list[str] = []
            for bound in strategy.inputs:
                for column in bound.columns:
                    name = f"nbgov_a{tag}_{first}_{len(names)}"
                    arguments.append((name, cast_argument(bound.spec, column)))
                    names.append(name)
            picks = self._picks(group, calls, f"nbgov_p{tag}_{first}", ctx, reads)
            jobs.append(
                ScoringJob(
                    scorer=make_scorer(self.sessions, strategy, calls[first].model.outputs),
                    arguments=tuple(names),
                    picks=tuple(picks),
                    label=f"predict({calls[first].model.ref})",
                    expected=signature(calls[first].model),
                )
            )
        outputs = {index: column for index, (_, column) in reads.items()}
        batched_nodes = [calls[index].node for index in outputs]
        pushed, kept = split_where(select, batched_nodes)
        columns = needed_columns(select, batched_nodes, pushed)
        inner_sql = inner_query(select, arguments, columns, pushed).sql(dialect="duckdb", copy=False)
        step = BatchStep(inner_sql, tuple(jobs), frozenset(n for n, _ in arguments), f"nbgov_batch_{tag}")
        ctx.notes.append(
            f"batching: the relation is scored once, in Arrow batches of {self.batch_rows:,} rows "
            f"on {self.threads} threads (instead of 2,048-row UDF calls)"
        )
        if ctx.dry:
            ctx.notes.append("batched relation (scored before the query above):")
            ctx.notes.append(self._explain_plan(inner_sql, self._bind_params(inner_sql, ctx)))
        self._run_batch(step, ctx, stack)
        ctx.steps.append(step)
        ctx.hidden.add(step.name)
        for node, helper in reads.values():
            node.replace(exp.column(helper, table=alias, quoted=True))
        rewrite_outer(select, step.name, alias, sorted(set(outputs.values())), kept)
        return set(outputs)

    def _run_batch(self, step: BatchStep, ctx: _Context, stack: ExitStack) -> None:
        """Score the step's relation (fresh row counts for the notes) and register it."""
        jobs = [replace(job, stats=ScoreStats()) for job in step.jobs]
        table = self._score(step.sql, jobs, ctx, step.drop)
        self.con.register(step.name, table)
        stack.callback(self._unregister, step.name)
        if not ctx.dry:
            ctx.run_notes.append(f"batching: {table.num_rows:,} rows scored")

    def _picks(
        self,
        group: list[int],
        calls: list[ModelCall],
        column: str,
        ctx: _Context,
        reads: dict[int, tuple[exp.Expression, str]],
    ) -> list[Pick]:
        """The result columns for identical calls: only the outputs (or elements) they
        read when every call reads a part (``predict(...).probabilities[2]``), else the
        whole value for all of them (GROUP BY predict(...) must match its SELECT)."""
        accesses = [output_access(calls[i].node, calls[i].model.outputs) for i in group]
        if any(pick.output is None for _, pick in accesses):
            reads.update({i: (calls[i].node, column) for i in group})
            return [Pick(column)]
        picks: dict[tuple[str | None, int | None], Pick] = {}
        for index, (node, pick) in zip(group, accesses):
            key = (pick.output, pick.element)
            if key not in picks:
                picks[key] = Pick(f"{column}_{len(picks)}", pick.output, pick.element)
            reads[index] = (node, picks[key].column)
        outputs = calls[group[0]].model.outputs
        if len(outputs) > 1 or any(p.element is not None for p in picks.values()):
            read = ", ".join(p.describe() for p in picks.values())
            ctx.notes.append(f"predict({calls[group[0]].model.ref}): output projection: only {read} computed and returned")
        return list(picks.values())

    def _score(self, sql: str, jobs: list[ScoringJob], ctx: _Context, drop: frozenset[str]) -> pa.Table:
        if ctx.dry:
            sql = f"SELECT * FROM ({sql}) LIMIT 0"
        bound = self._bind_params(sql, ctx)
        reader = self.con.sql(sql, params=bound or None).to_arrow_reader(self.batch_rows)
        scored = score_relation(
            reader, reader.schema, jobs, self._threadpool(), drop, self._reporter("scoring"), self.batch_rows
        )
        for job in jobs:
            note_regions(job, ctx.run_notes)
        return scored

    def _ml_predict(
        self, call: MlPredict, ctx: _Context, stack: ExitStack, outer: _Outer | None
    ) -> _Scored | tuple[exp.Select, str]:
        """``ML.PREDICT(MODEL m, relation)``: input columns + predicted_<output>.

        Returns the scored table (ONNX, in Arrow batches), or, when the planner inlines the
        model as SQL, the SQL of the relation with the predicted columns computed by DuckDB.
        With ``outer`` (the statement, when optimizing), only the predicted values it reads
        are computed, and its reads of them are rewritten to the helper columns.
        """
        model = self.catalog.resolve(call.model_ref)
        act.add_model(ctx.activity, model)
        inner = Statement(call.query, tokenize(call.query))
        relation_sql = self._prepare(inner, ctx, stack, top=False)
        probe = f"SELECT * FROM ({relation_sql}) AS nbgov_in LIMIT 0"
        names = [d[0] for d in self.con.execute(probe, self._bind_params(probe, ctx) or None).description or ()]
        columns = {n.lower(): n for n in names}
        arguments = relation_arguments(model, columns)
        label = f"ML.PREDICT(MODEL {model.ref})"
        strategy = self._ml_predict_strategy(model, arguments, relation_sql, ctx)
        relation = _parse(relation_sql) if isinstance(strategy, SqlPlan) else None
        if isinstance(strategy, SqlPlan) and relation is not None:
            if signature(model) not in ctx.signatures:
                ctx.signatures.append(signature(model))
            ctx.notes.append(
                f"{label}: inlined as SQL: DuckDB computes "
                + ", ".join(f"predicted_{o.name}" for o in model.outputs)
                + " natively (no ONNX scoring, no batching)"
            )
            return inlined_relation(model, relation, strategy.expression), typed_stand_in(model, relation_sql)
        onnx = strategy if isinstance(strategy, OnnxPlan) else None
        scorer, feeds = self._ml_predict_scorer(model, arguments, columns, onnx)
        helpers = [(f"nbgov_x{next(ctx.ids)}", e) for e in feeds if not isinstance(e, str)]
        sql = relation_sql
        if helpers:  # plan inputs that are expressions (e.g. a NULL guard) are computed by DuckDB
            projected = exp.select(exp.Star(), *[exp.alias_(e, n, quoted=True) for n, e in helpers])
            sql = projected.from_(f"({relation_sql}) AS nbgov_in").sql(dialect="duckdb")
        if ctx.dry:
            sql = f"SELECT * FROM ({sql}) LIMIT 0"
        bound = self._bind_params(sql, ctx)
        reader = self.con.sql(sql, params=bound or None).to_arrow_reader(self.batch_rows)
        named = iter(n for n, _ in helpers)
        statement = outer.tree if outer is not None else None
        found = relation_picks(statement, call.placeholder, model.outputs, f"nbgov_po{next(ctx.ids)}_") if statement else None
        picks, reads = found or ([Pick(f"predicted_{o.name}", o.name) for o in model.outputs], [])
        job = ScoringJob(
            scorer=scorer,
            arguments=tuple(f if isinstance(f, str) else next(named) for f in feeds),
            picks=tuple(picks),
            label=label,
            expected=signature(model),
        )
        scored = score_relation(
            reader, reader.schema, [job], self._threadpool(),
            drop=frozenset(n for n, _ in helpers),
            progress=self._reporter(label),
            batch_rows=self.batch_rows,
        )
        note_regions(job, ctx.run_notes)
        ctx.notes.append(
            f"{label}: ONNX: the relation is scored in Arrow batches of "
            f"{self.batch_rows:,} rows on {self.threads} threads"
            + ("" if ctx.dry else f"; {scored.num_rows:,} rows scored")
        )
        if found is not None:
            for node, column in reads:
                table = node.this.table if isinstance(node.this, exp.Column) else ""
                node.replace(exp.column(column, table=table or None, quoted=True))
            ctx.notes.append(f"{label}: output projection: only {', '.join(p.describe() for p in picks)} computed and returned")
        return _Scored(scored, found is not None)

    def _ml_predict_strategy(
        self, model: ModelVersion, arguments: list[str], relation_sql: str, ctx: _Context
    ) -> OnnxPlan | SqlPlan | None:
        """The planner's full decision for ML.PREDICT seen as ``SELECT predict(m, cols) FROM
        (relation)``: the relation's filters can prune the model, and a model cheaper as SQL
        is inlined. None: the original model (--no-optimize, or an unparsable relation)."""
        relation = _parse(relation_sql)
        if relation is None or not ctx.optimize:
            return None
        return self._plan(relation_call(model, arguments, relation), ctx, batched=True).strategy

    def _ml_predict_scorer(
        self,
        model: ModelVersion,
        arguments: list[str],
        columns: dict[str, str],
        strategy: OnnxPlan | None,
    ) -> tuple[Scorer, list[str | exp.Expression]]:
        """The ONNX scorer and what feeds it: a relation column name, or an expression over
        the relation's columns (which the caller projects in SQL)."""
        if strategy is None:
            session = self.sessions.get(original_cache_key(model), model.onnx_bytes)
            return Scorer(session, tuple(zip(model.inputs, slot_counts(model))), model.outputs), list(arguments)
        feeds: list[str | exp.Expression] = []
        for bound in strategy.inputs:
            for column in bound.columns:
                plain = isinstance(column, exp.Column) and not column.table and column.name.lower() in columns
                feeds.append(columns[column.name.lower()] if plain else column)
        return make_scorer(self.sessions, strategy, model.outputs), feeds

    # --- helpers -----------------------------------------------------------------------

    def _reporter(self, label: str) -> Callable[[int, int | None], None] | None:
        callback = self.progress
        if callback is None:
            return None

        def report(done: int, total: int | None) -> None:
            try:
                callback(label, done, total)
            except Exception:  # a progress display must never break scoring
                pass

        return report

    def _threadpool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="nbgov-score")
        return self._pool

    def _unregister(self, name: str) -> None:
        try:
            self.con.unregister(name)
        except duckdb.Error:
            pass

    def _statements(self, sql: str) -> list[Any]:
        """DuckDB's parse of ``sql`` (its statement types and ``$names``), kept for reuse:
        the same text is asked about several times per statement and per re-run."""
        statements = self._duckdb_parsed.get(sql)
        if statements is None:
            try:
                statements = self.con.extract_statements(sql)
            except duckdb.Error as error:
                raise sql_error(error) from None
            if len(self._duckdb_parsed) >= 256:
                self._duckdb_parsed.pop(next(iter(self._duckdb_parsed)))
            self._duckdb_parsed[sql] = statements
        return statements

    def _check_syntax(self, sql: str) -> None:
        self._statements(sql)

    def _statement_type(self, sql: str) -> str:
        statements = self._statements(sql)
        if len(statements) != 1:
            return "SELECT"
        return str(statements[0].type.name)

    def _bind_params(self, sql: str, ctx: _Context) -> dict[str, Any]:
        statements = self._statements(sql)
        names: set[str] = set()
        for statement in statements:
            names.update(statement.named_parameters)
        bound: dict[str, Any] = {}
        for name in sorted(names):
            if name.isdigit():
                raise SqlmlError(f"positional parameter ${name} is not supported; use $name for a notebook variable")
            if name not in ctx.params:
                raise SqlmlError(f"unknown parameter ${name}: no notebook variable of that name")
            bound[name] = ctx.params[name]
            if name not in ctx.activity["params"]:
                ctx.activity["params"].append(name)
        return bound

    def _fetch(self, sql: str, params: dict[str, Any], kind: str) -> tuple[pd.DataFrame | None, str]:
        result = self.con.execute(sql, params or None)
        if kind in _QUERY_TYPES:
            frame = result.df()
            return frame, f"{len(frame):,} row(s)"
        rows = result.fetchall()
        if kind in ("INSERT", "UPDATE", "DELETE", "COPY") and rows and len(rows[0]) == 1:
            return None, f"{kind}: {int(rows[0][0]):,} row(s)"
        return None, f"{kind}: ok"

    def _explain_plan(self, sql: str, params: dict[str, Any]) -> str:
        rows = self.con.execute(f"EXPLAIN {sql}", params or None).fetchall()
        return "\n".join(str(r[1]) for r in rows)

    def _frame_candidates(self, statement: Statement) -> list[str]:
        """Table names the statement (and its ML.PREDICT relations) refers to."""
        try:
            rewritten = rewrite_extensions(statement, "nbgov_probe_")
        except NbgovError:
            rewritten = None
        tree = _parse(rewritten.text) if rewritten is not None else None
        if rewritten is None or tree is None:  # DuckDB will report the error; over-approximate
            return [t.text for t in statement.tokens or () if t.text.isidentifier()]
        names = [
            table.name
            for table in tree.find_all(exp.Table)
            if isinstance(table.this, exp.Identifier) and not table.db
        ]
        for call in rewritten.ml_predicts:
            names.extend(self._frame_candidates(Statement(call.query, tokenize(call.query))))
        return names


class _Outer:
    """The statement around ML.PREDICT calls, parsed only if an ONNX-scored one needs it."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def tree(self) -> exp.Expression | None:
        return _parse(self.text)


@dataclass(frozen=True)
class _Scored:
    """An ML.PREDICT relation scored with ONNX; ``projected``: the statement's reads of
    its predicted values were rewritten (only those were computed)."""

    table: pa.Table
    projected: bool


def _inside_another(node: exp.Expression, nodes: list[exp.Anonymous]) -> bool:
    ids = {id(n) for n in nodes}
    parent = node.parent
    while parent is not None:
        if id(parent) in ids:
            return True
        parent = parent.parent
    return False


def _call_key(plan: OnnxPlan) -> tuple[str, ...]:
    columns = (c.sql(dialect="duckdb") for bound in plan.inputs for c in bound.columns)
    return (plan.cache_key, *columns)


def _parse(text: str) -> exp.Expression | None:
    """The statement as a sqlglot tree of its own (callers rewrite it in place)."""
    tree = _parsed(text)
    return tree.copy() if tree is not None else None


@lru_cache(maxsize=256)
def _parsed(text: str) -> exp.Expression | None:
    """Parsed once per text: a re-run cell costs a copy (a quarter of a parse)."""
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
        return tree if isinstance(tree, exp.Expression) else None
    except (ParseError, sqlglot.errors.TokenError, ValueError):
        return None


def _kind_name(statement_type: str) -> str:
    if statement_type in _DDL_TYPES:
        return "ddl"
    return statement_type.lower()
