"""compile: one statement in, a ``Prepared`` out — no data read, nothing scored or registered.

The model extensions are rewritten on the statement's sqlglot tree: each ``predict(...)``
is bound to its model and planned (optimizer or naive), then becomes a SQL expression
(a model inlined as SQL), a column of a relation scored in batches before the final SQL
(a ``ScoreRelation`` step), or a call of a scalar function (a ``RegisterUdf`` step).
``ML.PREDICT`` relations become scored tables or, inlined, subqueries (see ``mlpredict``).
What compile asks the engine (how it parses a statement, a relation's columns) is
recorded, so a cached ``Prepared`` is reused only while the answers are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import count
from typing import Any, Protocol

import sqlglot.expressions as exp

from nbgov.errors import NbgovError, SqlmlError
from nbgov.sqlml.activity import Activity, ModelRef, unique
from nbgov.sqlml.engine_name import EngineName
from nbgov.sqlml.models.onnxtypes import cast_to_input, data_type, value_duckdb_type
from nbgov.sqlml.plan import CallPlan, ModelCall, ModelVersion, NaivePlanner, OnnxPlan, Planner, SqlPlan
from nbgov.sqlml.planning.batching import (
    REPLACED_COMPARISON,
    after_earlier_conjuncts,
    after_plain_conjuncts,
    conjuncts_apart,
    inner_query,
    needed_columns,
    refusal,
    rewrite_outer,
    siblings_first,
    source_alias,
    split_where,
    target_select,
)
from nbgov.sqlml.planning.arguments import check, feeds, probe, reading_stand_in, with_stand_ins
from nbgov.sqlml.planning.binding import (
    bind,
    bind_arguments,
    model_ref,
    name_prediction_columns,
    predict_calls,
    refuse_missing_field,
    signature,
)
from nbgov.sqlml.planning.fields import fold_access, fold_through_cte
from nbgov.sqlml.planning.mlpredict import ML_PREDICT_PREFIX, Inlined, compile_ml_predict, inline_relations
from nbgov.sqlml.planning.picks import output_access
from nbgov.sqlml.planning.prepared import (
    INLINED_MODEL,
    Column,
    Pick,
    Prepared,
    Probe,
    Query,
    RegisterUdf,
    ScoreRelation,
    ScoringJob,
    Settings,
    Step,
    marked_inlined,
)
from nbgov.sqlml.planning.relations import Relations, StandIns, select_all
from nbgov.sqlml.optimizer.cost import bounds_beat_batches
from nbgov.sqlml.optimizer.lowering import double_behind
from nbgov.sqlml.optimizer.ensemble_bounds import FALLBACK, output_comparison_node
from nbgov.sqlml.optimizer.output_predicates import comparison_node
from nbgov.sqlml.sql.parse import parse
from nbgov.sqlml.sql.references import References, references
from nbgov.sqlml.sql.statements import Statement, rewrite_extensions, tokenize

_DDL_TYPES = {"CREATE", "DROP", "ALTER"}


class ModelResolver(Protocol):
    def resolve(self, ref: str) -> ModelVersion: ...


@dataclass(frozen=True)
class Planners:
    """Who plans each model call: ``calls`` for scalar predict(), ``relations`` for
    ML.PREDICT, whose ONNX plans always score the relation in large batches."""

    calls: Planner
    relations: Planner


NAIVE = Planners(NaivePlanner(), NaivePlanner())


class Compiler:
    """Compiles statements against one model catalog and one engine's relations."""

    def __init__(self, catalog: ModelResolver, relations: Relations, planners: Callable[[Settings], Planners]) -> None:
        """``planners(settings)``: the planners for these settings (optimizer on or off)."""
        self.catalog = catalog
        self.relations = relations
        self.planners = planners

    def compile(
        self, statement: Statement, *, settings: Settings, params: Mapping[str, Any], frames: Sequence[str]
    ) -> Prepared:
        """``params``: the notebook's values (only to describe relations that use them);
        ``frames``: the notebook frames visible to the engine by name."""
        return Compilation(self, settings, params, frames).prepared(statement)


class Compilation:
    """One statement being compiled: what it found so far."""

    def __init__(self, compiler: Compiler, settings: Settings, params: Mapping[str, Any], frames: Sequence[str]) -> None:
        self.catalog = compiler.catalog
        self.relations = compiler.relations
        self.planners = compiler.planners(settings)
        self.settings = settings
        self.params = params
        self.frames = tuple(frames)
        # Helper names (scored tables, functions, columns) are numbered per statement, so the
        # same statement always compiles to the same SQL.
        self.ids = count()
        self.hidden: set[str] = set(frames)  # names that are not lineage tables
        self.notes: list[str] = []
        self.steps: list[Step] = []
        self.models: dict[str, ModelVersion] = {}
        self.signatures: list[str] = []
        self.references = References()
        self.parameters: list[str] = []
        self.probes: list[Probe] = []
        self.stand_ins: dict[str, exp.Expression] = {}
        self.functions: dict[str, str] = {}

    def prepared(self, statement: Statement) -> Prepared:
        statement_type, query = self.query(statement, top=True)
        found = self.references
        activity = Activity(
            statement=statement.text,
            kind=kind_name(statement_type),
            engine=self.relations.engine.value,
            tables_read=found.tables_read,
            tables_written=found.tables_written,
            files_read=found.files_read,
            files_written=found.files_written,
            frames=self.frames,
            params=unique(self.parameters),
            models_used=tuple(ModelRef.of(m) for m in self.models.values()),
        )
        return Prepared(
            statement.text, statement_type, query, tuple(self.steps), tuple(self.notes), activity,
            tuple(self.signatures), tuple(self.probes), self.settings,
        )

    # --- one statement (the top one, or an ML.PREDICT relation) ---------------------------

    def query(self, statement: Statement, *, top: bool) -> tuple[str, Query]:
        """The statement's type and its final SQL, model extensions rewritten."""
        rewritten = rewrite_extensions(statement, f"{ML_PREDICT_PREFIX}{next(self.ids)}_")
        outer = Outer(rewritten.text)
        if top and (rewritten.has_predict or rewritten.ml_predicts):
            _refuse_stored_call(outer.tree)
        if top and not rewritten.has_predict and not rewritten.ml_predicts:
            _refuse_explained_call(outer.tree)  # before DuckDB's parse, which fails on ML.PREDICT
        parsed = self.relations.parse(rewritten.text if rewritten.ml_predicts else statement.text)
        self.parameters.extend(parsed.parameters)
        inlined: dict[str, Inlined] = {}
        for call in rewritten.ml_predicts:
            relation = compile_ml_predict(self, call, outer)
            if relation is not None:
                inlined[call.placeholder] = relation
        tree = outer.tree
        if inlined:
            assert tree is not None  # only a parsed statement gets ML.PREDICT inlined
            tree = inline_relations(self, tree, inlined)
            outer.changed = True
        if tree is not None:  # before any rewrite moves the FROM into a scored relation
            self.references += references(tree, self.hidden)
        if not rewritten.has_predict:
            if tree is None or not outer.changed:
                return parsed.statement_type, Query(text=statement.text if not rewritten.ml_predicts else rewritten.text)
            return parsed.statement_type, Query(tree=tree)
        if tree is None:
            raise SqlmlError("cannot parse the statement around predict(); check its syntax")
        self.predict_calls(tree, top=top)
        return parsed.statement_type, Query(tree=tree)

    def predict_calls(self, tree: exp.Expression, *, top: bool) -> None:
        """Bind, plan and rewrite every predict(...) of ``tree`` in place."""
        select = target_select(tree) if top else None
        if select is not None:
            name_prediction_columns(select)
        nodes = predict_calls(tree)
        if any(_inside_another(node, nodes) for node in nodes):
            raise SqlmlError("predict() calls cannot be nested; compute the inner one in a CTE or subquery first")
        calls = [bind(node, tree, self.catalog.resolve) for node in nodes]
        for call in calls:
            refuse_missing_field(call)
            self.use(call.model, signature_too=True)
        typed = self.check_arguments(tree, calls)
        folded = {index for index, call in enumerate(calls) if self.settings.optimize and null_argument(call)}
        plans = [
            self.folded_to_null(call) if index in folded else self.plan(call) if known else self.plan_unchecked(call)
            for index, (call, known) in enumerate(zip(calls, typed))
        ]
        plans = [self.onnx_in_window_keys(call, plan) for call, plan in zip(calls, plans)]
        if top and self.settings.optimize:
            plans = self.batches_over_bounds(tree, calls, plans)
        scope = target_select(tree)
        apart = scope is not None and conjuncts_apart(scope, calls)  # read before calls are replaced
        for index in folded:  # before batching, which rebuilds the query around the other calls
            strategy = plans[index].strategy
            assert isinstance(strategy, OnnxPlan)
            calls[index].node.replace(self.function(strategy, calls[index].model))
        waiting = [
            placed for call, plan in zip(calls, plans)
            if isinstance(plan.strategy, SqlPlan) and (placed := self.inline_call(call, plan.strategy)) is not None
        ]
        batched: set[int] = set()
        bounded = any(_fallback(p) is not None for p in plans)
        if top and not bounded and not any(isinstance(p.strategy, OnnxPlan) for p in plans):
            self.notes.append("batching: not needed (no ONNX call left: every predict() runs as SQL)")
        elif top and self.settings.optimize:
            rest = [index for index in range(len(calls)) if index not in folded]
            some_calls, some_plans = [calls[i] for i in rest], [plans[i] for i in rest]
            reason = "an output predicate scores only the rows its bounds leave open" if bounded else refusal(tree, some_calls, some_plans)
            if reason is None:
                reason = self.alias_shadowed(tree)
            if reason is None and apart:
                reason = "different predict() calls in separate WHERE conjuncts: each later one scores only the rows the earlier keep"
            if reason is None:
                batched = {rest[i] for i in self.batch(tree, some_calls, some_plans)}
            else:
                self.notes.append(f"batching: not applied ({reason}); scoring through an Arrow UDF")
        elif top:
            self.notes.append("batching: off (--no-optimize); scoring through an Arrow UDF")
        functions: dict[tuple[str, ...], exp.Expression] = {}
        for index, (call, plan) in enumerate(zip(calls, plans)):
            if index in batched or index in folded or not isinstance(plan.strategy, OnnxPlan):
                continue
            key = _call_key(plan.strategy)
            if key not in functions:  # identical calls share one function, so GROUP BY can match them
                functions[key] = self.function(plan.strategy, call.model)
            call.node.replace(functions[key].copy())
        for placed in waiting:  # last: its CASE repeats a sibling, which must hold its final SQL
            siblings_first(placed)
            if self.relations.dialect == "duckdb":
                after_earlier_conjuncts(placed, self.reads_model)
            else:  # Spark scores a UDF conjunct on every row the plain conjuncts keep
                after_plain_conjuncts(placed, self.reads_model)

    def reads_model(self, node: exp.Expr) -> bool:
        """Whether ``node`` holds a model's SQL or a call of a scoring function."""
        return any(
            n.meta.get(INLINED_MODEL) or (isinstance(n, exp.Anonymous) and str(n.this).lower() in self.functions)
            for n in node.walk()
        )

    def batches_over_bounds(self, tree: exp.Expression, calls: list[ModelCall], plans: list[CallPlan]) -> list[CallPlan]:
        """Output predicates whose bounds leave too many cells open to pay for losing batched
        scoring (their fallback is a UDF, called per vector of rows, on one thread) go back to
        their ONNX plan, when the statement can then be batched (no other output predicate
        left on bounds, which would keep the statement from batching)."""
        swapped = [
            CallPlan(fallback, plan.notes, plan.stats)
            if (fallback := _fallback(plan)) is not None and not bounds_beat_batches(_open_share(plan)) else plan
            for plan in plans
        ]
        unchanged = all(new is old for new, old in zip(swapped, plans))
        if unchanged or any(_fallback(p) is not None for p in swapped) or refusal(tree, calls, swapped) is not None:
            return plans
        for call, plan, kept in zip(calls, plans, swapped):
            if kept is not plan:
                self.notes.append(
                    f"predict({call.model.ref}): output predicate left to batched scoring (strategy onnx): its "
                    f"bounds leave {_open_share(plan):.0%} of the input cells open, which score cheaper in batches"
                )
        return swapped

    def check_arguments(self, tree: exp.Expression, calls: list[ModelCall]) -> list[bool]:
        """Check every call's arguments against its model's inputs before any rewrite (one
        engine question per scope of calls); False for a call whose argument types could
        not be described apart from the statement (it then runs unoptimized)."""
        scopes: dict[int, list[int]] = {}
        for index, call in enumerate(calls):
            scopes.setdefault(id(call.node.find_ancestor(exp.Select, exp.Update, exp.Delete)), []).append(index)
        typed = [True] * len(calls)
        for group in scopes.values():
            fed = [feeds(calls[i]) for i in group]
            values = [column for i in group for bound in calls[i].inputs for column in bound.columns]
            nodes = [calls[i].node for i in group]
            try:
                columns = self.describe(probe(nodes, values, self.stand_in))
            except NbgovError:
                try:
                    columns = self.describe(probe(nodes, values, self.stand_in, aliases=True))
                except NbgovError:
                    self.statement_binds(tree)
                    for i in group:
                        typed[i] = False
                    continue
            types = iter(column.type for column in columns)
            for i, arguments in zip(group, fed):
                model = calls[i].model
                check(model, f"predict({model.ref})", arguments, [next(types) for _ in arguments], self.relations.dialect)
        return typed

    def statement_binds(self, tree: exp.Expression) -> None:
        """Raise the engine's error, naming the models' inputs, when the statement's query
        does not bind with each predict(...) read as a typed value of its arguments."""
        select = target_select(tree)
        if select is None:
            return
        try:
            self.describe(select_all(with_stand_ins(select, self.stand_in), "nbgov_statement"))
        except NbgovError as error:
            raise SqlmlError(f"{error}; model inputs: {'; '.join(self.signatures)}") from None

    def stand_in(self, node: exp.Expression) -> exp.Expression:
        """A predict(...) node as a value of its type that reads its arguments."""
        model = self.catalog.resolve(model_ref(node))
        columns = [column for bound in bind_arguments(model, node.expressions[1:]) for column in bound.columns]
        return reading_stand_in(data_type(value_duckdb_type(model.outputs)), columns)

    def onnx_in_window_keys(self, call: ModelCall, plan: CallPlan) -> CallPlan:
        """A call in a window's PARTITION BY or ORDER BY stays ONNX on DuckDB when its SQL
        can raise (the ``error()`` checks for values the model refuses): DuckDB calls
        ``error()`` volatile and refuses the statement ("ORDER BY window expressions cannot
        be volatile"), where --no-optimize's function call runs. Spark takes the
        ``raise_error()`` it is written as there, so its SQL stays."""
        engine = self.relations.engine
        if engine not in _RAISING_WINDOW_KEYS_REFUSED or not isinstance(plan.strategy, SqlPlan):
            return plan
        if not _in_window_keys(call.node):
            return plan
        if not any(f.name.lower() == "error" for f in plan.strategy.expression.find_all(exp.Anonymous)):
            return plan
        note = (
            f"kept as ONNX: in a window's PARTITION BY/ORDER BY, where {engine.label} refuses the error() "
            "its SQL would raise for values the model refuses"
        )
        self.notes.append(f"predict({call.model.ref}): {note}")
        return CallPlan(NaivePlanner().plan_call(call).strategy, (note,), {})

    def alias_shadowed(self, tree: exp.Expression) -> str | None:
        """Why batching would change what a WHERE reads: a name there that is both a
        select-list alias and a column of the FROM relation is the column to DuckDB, but
        batching took it for the alias and left it out of the scored relation, so
        ``SELECT count(*) AS n ... WHERE n = 4`` failed with 'WHERE clause cannot contain
        aggregates!'. The relation is described only when such a name appears."""
        select = target_select(tree)
        where = select.args.get("where") if select is not None else None
        if select is None or where is None:
            return None
        aliases = {e.alias.lower() for e in select.expressions if e.alias}
        names = {c.name.lower() for c in where.find_all(exp.Column) if not c.table and c.name.lower() in aliases}
        if not names:
            return None
        relation = exp.select(exp.Star()).from_(select.args[_FROM_KEY].copy(), copy=False)
        if select.args.get("with_") is not None:
            relation.set("with_", select.args["with_"].copy())
        shadowed = sorted(c.name for c in self.describe(relation) if c.name.lower() in names)
        return f"the WHERE reads {shadowed[0]!r}, a column and a select-list alias" if shadowed else None

    def folded_to_null(self, call: ModelCall) -> CallPlan:
        """The original model as a UDF, never batched nor inlined: DuckDB folds a UDF call
        with a constant NULL argument into a constant NULL of its type while binding, which
        its operators then take as an untyped literal (``COALESCE(label, -1)`` is -1), where
        a column or the model's SQL keeps its type and fails to bind."""
        note = "kept as the ONNX function, not batched: a NULL argument makes the engine fold the call to NULL"
        self.notes.append(f"predict({call.model.ref}): {note}")
        return CallPlan(NaivePlanner().plan_call(call).strategy, (note,), {})

    def plan_unchecked(self, call: ModelCall) -> CallPlan:
        """The original model, no rewrite: its argument types are unknown, so the optimizer
        must not skip an argument that --no-optimize would fail on."""
        plan = CallPlan(
            NaivePlanner().plan_call(call).strategy,
            ("kept as ONNX, no rewrite: the argument types could not be described apart from the query",),
        )
        self.notes.append(f"predict({call.model.ref}): " + "; ".join(plan.notes))
        return plan

    def inline_call(self, call: ModelCall, plan: SqlPlan) -> exp.Expr | None:
        """Put a model inlined as SQL where its call was (or its comparison, for a filter);
        the node placed when its ``error()`` must wait for its siblings (``siblings_first``,
        applied once every call of the scope holds its final SQL)."""
        inlined = marked_inlined(plan.expression.copy())
        if plan.fallback is not None:
            return self.filter_with_fallback(call, plan, plan.fallback)
        compared = comparison_node(call.node) if plan.comparison else None
        placed = inlined
        if compared is not None:  # an output predicate, now a boolean filter
            self.replace_comparison(compared[0], inlined)
        else:
            call.node.replace(inlined)
            if self.settings.optimize:
                placed = fold_access(inlined)
                if placed is not inlined or fold_through_cte(inlined):
                    self.notes.append(
                        f"predict({call.model.ref}): output projection: only the output values the query reads are computed"
                    )
        return placed if plan.refusals else None  # its error() must not reach rows --no-optimize never scored

    def filter_with_fallback(self, call: ModelCall, plan: SqlPlan, fallback: OnnxPlan) -> exp.Expr | None:
        """An output predicate decided by bounds on some rows: elsewhere the comparison
        itself, its predict() scored by a UDF that DuckDB calls on those rows only."""
        compared = output_comparison_node(call.node)
        assert compared is not None
        scored = compared[0].copy()
        inner = next(n for n in scored.find_all(exp.Anonymous) if n == call.node)
        inner.replace(self.function(fallback, call.model))

        def fill(node: exp.Expr) -> exp.Expr:
            return scored.copy() if isinstance(node, exp.Column) and node.name == FALLBACK else node

        filtered = marked_inlined(plan.expression.copy().transform(fill))
        self.replace_comparison(compared[0], filtered)
        return filtered if plan.refusals else None

    def replace_comparison(self, compared: exp.Expr, condition: exp.Expr) -> None:
        """Put the boolean ``condition`` where an output's comparison was. In a QUALIFY on
        DuckDB it stays a comparison, ``CAST(condition AS INTEGER) = 1``: DuckDB runs a
        QUALIFY's other conditions (a CASE among them) before its comparisons, so it computed
        the condition, with its casts of computed arguments (``CAST(a AS INTEGER)`` of an
        ``-inf``), on rows ``row_number() <= 2`` drops, which --no-optimize never scored."""
        condition.meta[REPLACED_COMPARISON] = True  # still a comparison to DuckDB's QUALIFY order
        if self.relations.dialect == "duckdb" and compared.find_ancestor(exp.Qualify) is not None:
            compared.replace(exp.EQ(this=exp.cast(condition, exp.DataType.build("INTEGER"), copy=False), expression=exp.Literal.number(1)))
        else:
            compared.replace(condition)

    def function(self, plan: OnnxPlan, model: ModelVersion) -> exp.Expression:
        """A ``RegisterUdf`` step for ``plan``, and the call of it that replaces predict()."""
        name = f"nbgov_udf_{next(self.ids)}"
        self.steps.append(RegisterUdf(name, plan, model.outputs, regions=self.settings.optimize, label=f"predict({model.ref})"))
        self.functions[name] = value_duckdb_type(model.outputs)
        arguments = [cast_to_input(bound.spec, column) for bound in plan.inputs for column in bound.columns]
        return exp.Anonymous(this=name, expressions=arguments)

    # --- batched scalar predict ------------------------------------------------------------

    def batch(self, tree: exp.Expression, calls: list[ModelCall], plans: list[CallPlan]) -> set[int]:
        """Score the FROM relation once in big batches (a step); predict(...) becomes a column."""
        select = target_select(tree)
        assert select is not None
        alias = source_alias(select)
        arguments: list[tuple[str, exp.Expression]] = []
        jobs: list[ScoringJob] = []
        tag = next(self.ids)
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
                    double = double_behind(column) if bound.spec.elem_type == "float" else None
                    arguments.append((name, double.copy() if double is not None else cast_to_input(bound.spec, column)))
                    names.append(name)
            model = calls[first].model
            picks = self.picks(group, calls, f"nbgov_p{tag}_{first}", reads)
            jobs.append(ScoringJob(strategy, model.outputs, tuple(names), tuple(picks), f"predict({model.ref})", signature(model)))
        outputs = {index: column for index, (_, column) in reads.items()}
        batched_nodes = [calls[index].node for index in outputs]
        pushed, kept = split_where(select, batched_nodes)
        columns = needed_columns(select, batched_nodes, pushed)
        inner = inner_query(select, arguments, columns, pushed)
        drop = frozenset(n for n, _ in arguments)
        name = f"nbgov_batch_{tag}"
        label = "scoring: " + ", ".join(job.label for job in jobs)  # run notes and the progress bar
        self.add_relation(ScoreRelation(name, Query(inner), tuple(jobs), drop, label, Query(stand_in(inner, drop, jobs))))
        self.notes.append(
            f"batching: the relation is scored once, in Arrow batches of {self.settings.batch_rows:,} rows "
            f"on {self.settings.threads} threads (instead of small batches through a UDF)"
        )
        for node, helper in reads.values():
            node.replace(exp.column(helper, table=alias, quoted=True))
        rewrite_outer(select, name, alias, sorted(set(outputs.values())), kept)
        return set(outputs)

    def picks(
        self, group: list[int], calls: list[ModelCall], column: str, reads: dict[int, tuple[exp.Expression, str]]
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
            self.notes.append(
                f"predict({calls[group[0]].model.ref}): output projection: only {read} computed and returned"
            )
        return list(picks.values())

    # --- what the parts above share --------------------------------------------------------

    def plan(self, call: ModelCall, *, relation: bool = False) -> CallPlan:
        """The planner's plan for ``call``, its notes added; an optimizer bug keeps ONNX."""
        planner = self.planners.relations if relation else self.planners.calls
        try:
            plan = planner.plan_call(call)
        except NbgovError:
            raise
        except Exception as error:  # an optimizer bug must not break the user's query
            naive = NaivePlanner().plan_call(call)
            plan = CallPlan(naive.strategy, (f"optimizer failed ({type(error).__name__}: {error}); kept as ONNX",), {})
        self.notes.append(f"predict({call.model.ref}): " + ("; ".join(plan.notes) or "no notes"))
        if plan.stats:
            self.notes.append("  stats: " + ", ".join(f"{k}={v}" for k, v in plan.stats.items()))
        return plan

    def use(self, model: ModelVersion, *, signature_too: bool) -> None:
        """Note a model the statement uses (lineage), and its signature for error messages."""
        self.models.setdefault(model.ref, model)
        if signature_too and signature(model) not in self.signatures:
            self.signatures.append(signature(model))

    def add_relation(self, step: ScoreRelation) -> None:
        """A table the executor scores before the final SQL; described by its stand-in."""
        assert step.stand_in.tree is not None
        self.steps.append(step)
        self.stand_ins[step.name] = step.stand_in.tree
        self.hidden.add(step.name)

    def describe(self, tree: exp.Expression) -> tuple[Column, ...]:
        """The columns of ``tree`` as the engine sees them (helper tables and functions of
        earlier steps by their stand-ins); the answer is recorded for plan reuse."""
        query = Query(StandIns(dict(self.stand_ins), dict(self.functions)).apply(tree))
        try:
            columns = self.relations.columns(query, self.params)
        except NbgovError:
            self.probes.append(Probe(query, None))
            raise
        self.probes.append(Probe(query, columns))
        return columns


class Outer:
    """The statement around ML.PREDICT calls and predict(), parsed once when first needed;
    ``changed`` once a rewrite edited the tree (then its SQL is generated from it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.changed = False

    @cached_property
    def tree(self) -> exp.Expression | None:
        return parse(self.text)


def stand_in(query: exp.Expression, drop: frozenset[str], jobs: Sequence[ScoringJob]) -> exp.Select:
    """The scored relation's columns and types with no rows: the query's columns except the
    helper ones, then each job's picks (typed NULLs)."""
    star = exp.Star(except_=[exp.to_identifier(name, quoted=True) for name in sorted(drop)]) if drop else exp.Star()
    typed = [
        exp.alias_(exp.Cast(this=exp.Null(), to=exp.DataType.build(pick.duckdb_type(job.outputs), dialect="duckdb")), pick.column, quoted=True)
        for job in jobs
        for pick in job.picks
    ]
    source = exp.Subquery(this=query.copy(), alias=exp.TableAlias(this=exp.to_identifier("nbgov_in")))
    return exp.select(star, *typed).from_(source, copy=False).limit(0, copy=False)


_STORED_QUERIES = ("VIEW", "MACRO", "FUNCTION")


def _refuse_stored_call(tree: exp.Expression | None) -> None:
    """A view (or macro) is stored as the SQL nbgov runs, which reads the statement's own
    scoring helpers (a scored table, a UDF, both dropped when it ends): ``CREATE VIEW v AS
    SELECT predict(...)`` said "CREATE: ok" and every read of ``v`` then failed ("Table with
    name nbgov_batch_1 does not exist!"), except where the optimizer had inlined the model
    as SQL, frozen at that version. Refused before anything runs, with or without it."""
    if isinstance(tree, exp.Create) and str(tree.kind or "").upper() in _STORED_QUERIES:
        kind = str(tree.kind).upper()
        raise SqlmlError(
            f"CREATE {kind} cannot call predict() or ML.PREDICT: models are scored when a statement runs; "
            "use CREATE TABLE ... AS SELECT to keep the predictions, or call predict() in the query that reads it"
        )


def _refuse_explained_call(tree: exp.Expression | None) -> None:
    """DuckDB's own ``EXPLAIN SELECT predict(...)``: sqlglot keeps the explained statement as
    one string, so its model calls were never rewritten and DuckDB said "Scalar Function with
    name predict does not exist!" (ML.PREDICT: a syntax error). ``--explain`` is the way to
    see the plan of a statement calling a model."""
    if not (isinstance(tree, exp.Command) and str(tree.this).upper() == "EXPLAIN"):
        return
    explained = tree.expression.name if isinstance(tree.expression, exp.Literal) else ""
    calls = rewrite_extensions(Statement(explained, tokenize(explained)), "nbgov_probe_")
    if calls.has_predict or calls.ml_predicts:
        raise SqlmlError(
            "EXPLAIN cannot plan predict() or ML.PREDICT: run the statement with %%sqlml --explain to see "
            "DuckDB's plan and what the optimizer did with each model call"
        )


def kind_name(statement_type: str) -> str:
    """The lineage kind of a statement type: ``ddl`` for CREATE/DROP/ALTER, else lower-case."""
    return "ddl" if statement_type in _DDL_TYPES else statement_type.lower()


_FROM_KEY = "from_" if "from_" in exp.Select.arg_types else "from"


# Engines that refuse a window's PARTITION BY/ORDER BY holding error(): DuckDB calls it
# volatile; Spark 4 runs raise_error() there (checked on local[2]).
_RAISING_WINDOW_KEYS_REFUSED = frozenset({EngineName.DUCKDB})


def _in_window_keys(node: exp.Expr) -> bool:
    """Whether ``node`` sits in a window's PARTITION BY or ORDER BY (not its argument)."""
    child: exp.Expr = node
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Window):
            return child.arg_key in ("partition_by", "order")
        child, parent = parent, parent.parent
    return False


def _inside_another(node: exp.Expression, nodes: list[exp.Anonymous]) -> bool:
    ids = {id(n) for n in nodes}
    parent = node.parent
    while parent is not None:
        if id(parent) in ids:
            return True
        parent = parent.parent
    return False


def null_argument(call: ModelCall) -> bool:
    """Whether an argument of ``call`` is a constant NULL (``NULL``, ``CAST(NULL AS t)``)."""
    return any(_constant_null(column) for bound in call.inputs for column in bound.columns)


def _constant_null(node: exp.Expr) -> bool:
    """``NULL``, or a cast, parenthesis or sign change of one: what the engine folds to NULL."""
    if isinstance(node, (exp.Cast, exp.Paren, exp.Neg)):
        return _constant_null(node.this)
    return isinstance(node, exp.Null)


def _call_key(plan: OnnxPlan) -> tuple[str, ...]:
    columns = (c.sql(dialect="duckdb") for bound in plan.inputs for c in bound.columns)
    return (plan.cache_key, *columns)


def _fallback(plan: CallPlan) -> OnnxPlan | None:
    """The ONNX plan an output predicate falls back to where its bounds decide nothing."""
    return plan.strategy.fallback if isinstance(plan.strategy, SqlPlan) else None


def _open_share(plan: CallPlan) -> float:
    return plan.strategy.open_share if isinstance(plan.strategy, SqlPlan) else 1.0
