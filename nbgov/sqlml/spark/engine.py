"""``%%sqlml --engine spark``: the same cells as on DuckDB, run by Spark.

Statements are split, model statements handled and ``predict``/``ML.PREDICT`` bound
and planned by the same code as on DuckDB (statements, binding, the optimizer's
``CallPlan``s, the batching rewrite, the catalog rules); what differs is where
things run. A plan inlined as SQL becomes Spark SQL (sqlglot, duckdb -> spark); an
ONNX plan is scored on the executors: a relation scored once by ``mapInArrow``
(ML.PREDICT, and predict() in a plain SELECT), or an Arrow UDF where predict() sits
anywhere else. Helper views and functions live for one statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import logging
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING, Any

import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import ParseError, TokenError

from nbgov.errors import ModelBindingError, NbgovError, SqlError, SqlmlError
from nbgov.sqlml import activity as act
from nbgov.sqlml.batching import inner_query, needed_columns, refusal, rewrite_outer, source_alias, split_where, target_select
from nbgov.sqlml.binding import bind, predict_calls, signature
from nbgov.sqlml.catalog import ModelCatalog
from nbgov.sqlml.engine import StatementResult
from nbgov.sqlml.mlpredict import fold_outputs, inlined_relation, relation_arguments, relation_call
from nbgov.sqlml.models_sql import explain_model_statement, run_model_statement
from nbgov.sqlml.optimizer.output_predicates import comparison_node
from nbgov.sqlml.picks import Pick, output_access, relation_picks
from nbgov.sqlml.plan import CallPlan, ModelCall, NaivePlanner, OnnxPlan, Planner, SqlPlan, original_cache_key
from nbgov.sqlml.spark.catalog_store import SparkModelStore
from nbgov.sqlml.spark.dialect import bind_parameters, parameter_names, to_spark
from nbgov.sqlml.spark.errors import condition, spark_error
from nbgov.sqlml.spark.frames import SparkFrames
from nbgov.sqlml.spark.scoring import SparkScoring
from nbgov.sqlml.spark.session import DEFAULT_MASTER, SparkHandle, spark_session
from nbgov.sqlml.spark.tables import table_identity
from nbgov.sqlml.spark.worker import ShippedJob
from nbgov.sqlml.statements import Statement, model_statement, rewrite_extensions, split, tokenize
from nbgov.sqlml.udf import cast_argument

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ENGINE = "spark"
_QUERIES = (exp.Query, exp.Describe, exp.Show)


@dataclass
class _Statement:
    """Per-statement state: what was touched, notes, helper names, model signatures."""

    params: Mapping[str, Any]
    frames: Mapping[str, Any]
    optimize: bool
    activity: dict[str, Any]
    stack: ExitStack
    notes: list[str] = field(default_factory=list)
    hidden: set[str] = field(default_factory=set)
    signatures: list[str] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=count)


class SparkEngine:
    """The SQLML engine on a SparkSession: the active one, or one on ``master``."""

    database = ENGINE  # what the magic compares to know it still has the right engine

    def __init__(self, master: str = DEFAULT_MASTER, *, planner: Planner | None = None, session: SparkSession | None = None) -> None:
        self.master = master
        self._handle = SparkHandle(session, started=False) if session is not None else spark_session(master)
        self.spark: SparkSession = self._handle.session
        try:
            self.catalog = ModelCatalog(SparkModelStore(self.spark))
        except Exception as error:
            raise spark_error(error) from None
        self.scoring = SparkScoring(self.spark)
        self._planner = planner
        self.progress: Any = None  # the magic sets a progress callback; Spark shows its own

    # --- public API (as Engine's) -------------------------------------------------------

    @staticmethod
    def split(sql: str) -> list[str]:
        return [s.text for s in split(sql)]

    def execute(
        self, sql: str, *, params: Mapping[str, Any] | None = None, frames: Mapping[str, Any] | None = None, optimize: bool = True
    ) -> list[StatementResult]:
        """Run every statement of ``sql`` on Spark; results as pandas DataFrames."""
        return [self._statement(s, params or {}, frames or {}, optimize, dry=False) for s in split(sql)]

    def explain(
        self, sql: str, *, params: Mapping[str, Any] | None = None, frames: Mapping[str, Any] | None = None, optimize: bool = True
    ) -> str:
        """Spark's formatted physical plan of each statement plus nbgov's notes; runs nothing."""
        with self.catalog.previewing():
            parts = [self._statement(s, params or {}, frames or {}, optimize, dry=True).explain or "" for s in split(sql)]
        return "\n\n".join(p for p in parts if p)

    def close(self) -> None:
        self.scoring.close()
        if self._handle.started:
            try:
                self.spark.stop()
            except Exception:  # already stopped
                pass

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one statement -------------------------------------------------------------------

    def _statement(
        self, statement: Statement, params: Mapping[str, Any], frames: Mapping[str, Any], optimize: bool, *, dry: bool
    ) -> StatementResult:
        parsed = model_statement(statement)
        if parsed is not None:
            try:
                if dry:
                    text, activity = explain_model_statement(self.catalog, parsed, statement.text, params)
                    activity["engine"] = ENGINE
                    return StatementResult(statement.text, activity["kind"], None, "", activity, text)
                frame, summary, activity = run_model_statement(self.catalog, parsed, statement.text, params)
            except NbgovError:
                raise
            except Exception as error:
                raise spark_error(error) from None
            activity["engine"] = ENGINE
            return StatementResult(statement.text, activity["kind"], frame, summary, activity)
        with ExitStack() as stack:
            stack.enter_context(_quiet_query_logger())
            state = _Statement(params, frames, optimize, act.new_activity(statement.text, "other"), stack)
            state.activity["engine"] = ENGINE
            try:
                return self._query(statement, state, dry)
            except NbgovError:
                raise
            except Exception as error:
                raise self._error(error, state) from None

    def _query(self, statement: Statement, state: _Statement, dry: bool) -> StatementResult:
        scope = state.stack.enter_context(SparkFrames(self.spark, state.frames, _table_names(statement)))
        state.activity["frames"] = list(scope.registered)
        state.hidden.update(scope.registered)
        tree = self._prepare(statement, state, top=True)
        for name in scope.registered:
            if name in state.activity["tables_read"]:
                state.activity["tables_read"].remove(name)
        state.activity["kind"] = _kind(tree)
        text = to_spark(tree)
        args = bind_parameters(parameter_names(tree), state.params)
        state.activity["params"].extend(n for n in args if n not in state.activity["params"])
        if dry:
            plan = self.spark.sql(f"EXPLAIN FORMATTED {text}", args=args or None).collect()[0][0]
            return StatementResult(statement.text, state.activity["kind"], None, "", state.activity, "\n".join([plan, *state.notes]))
        state.activity["table_identities"] = [table_identity(self.spark, t).to_json() for t in state.activity["tables_read"]]
        result = self.spark.sql(text, args=args or None)
        explain = "\n".join(state.notes) or None
        if isinstance(tree, _QUERIES):
            frame = result.toArrow().to_pandas()
            return StatementResult(statement.text, state.activity["kind"], frame, f"{len(frame):,} row(s)", state.activity, explain)
        return StatementResult(statement.text, state.activity["kind"], None, f"{state.activity['kind'].upper()}: ok", state.activity, explain)

    def _prepare(self, statement: Statement, state: _Statement, *, top: bool) -> exp.Expression:
        """The statement as a DuckDB-dialect tree with every model call replaced by what
        Spark runs (inlined SQL, a scored helper view, or an Arrow UDF call)."""
        rewritten = rewrite_extensions(statement, f"nbgov_mlp_{next(state.ids)}_")
        tree = _parse(rewritten.text)
        for ml_call in rewritten.ml_predicts:
            self._ml_predict(ml_call.model_ref, ml_call.query, ml_call.placeholder, tree, state)
        act.collect(tree, state.activity, state.hidden)
        if not rewritten.has_predict:
            return tree
        nodes = predict_calls(tree)
        if any(node.find_ancestor(exp.Anonymous) in nodes for node in nodes):
            raise SqlmlError("predict() calls cannot be nested; compute the inner one in a CTE or subquery first")
        calls = [bind(node, tree, self.catalog.resolve) for node in nodes]
        plans = [self._plan(call, state) for call in calls]
        for call in calls:
            act.add_model(state.activity, call.model)
            if signature(call.model) not in state.signatures:
                state.signatures.append(signature(call.model))
        for call, plan in zip(calls, plans):
            if isinstance(plan.strategy, SqlPlan):
                compared = comparison_node(call.node) if plan.strategy.comparison else None
                (compared[0] if compared is not None else call.node).replace(plan.strategy.expression.copy())
        onnx = [i for i, p in enumerate(plans) if isinstance(p.strategy, OnnxPlan)]
        if not onnx:
            return tree
        reason = refusal(tree, calls, plans) if top and state.optimize else "--no-optimize" if top else "inside ML.PREDICT's relation"
        if reason is None:
            self._score_relation(tree, [calls[i] for i in onnx], [plans[i] for i in onnx], state)
            return tree
        state.notes.append(f"scoring: an Arrow UDF on the executors ({reason}: no mapInArrow over the relation)")
        shared: dict[str, str] = {}  # identical calls share one UDF, so GROUP BY matches its SELECT
        for index in onnx:
            strategy = plans[index].strategy
            assert isinstance(strategy, OnnxPlan)
            name = shared.get(_call_key(strategy))
            if name is None:
                name = shared[_call_key(strategy)] = f"nbgov_udf_{next(state.ids)}"
                names = tuple(f"arg{i}" for i in range(sum(len(b.columns) for b in strategy.inputs)))
                job = ShippedJob(
                    self.scoring.ship(strategy, calls[index].model.outputs, regions=state.optimize),
                    names, (Pick("value"),), f"predict({calls[index].model.ref})", signature(calls[index].model),
                )
                self.scoring.register_udf(name, job)
                state.stack.callback(self._drop_function, name)
            arguments = [cast_argument(b.spec, c) for b in strategy.inputs for c in b.columns]
            calls[index].node.replace(exp.Anonymous(this=name, expressions=arguments))
        return tree

    def _plan(self, call: ModelCall, state: _Statement) -> CallPlan:
        planner: Planner = NaivePlanner()
        if state.optimize:
            if self._planner is None:
                from nbgov.sqlml.optimizer import Planner as Optimizer

                # every ONNX plan here is scored in Arrow batches: cost it as batched
                self._planner = Optimizer(batched=True)
            planner = self._planner
        try:
            plan = planner.plan_call(call)
        except NbgovError:
            raise
        except Exception as error:  # an optimizer bug must not break the query
            plan = CallPlan(NaivePlanner().plan_call(call).strategy, (f"optimizer failed ({type(error).__name__}); kept as ONNX",))
        state.notes.append(f"predict({call.model.ref}): " + ("; ".join(plan.notes) or "no notes"))
        return plan

    def _score_relation(self, tree: exp.Expression, calls: list[ModelCall], plans: list[CallPlan], state: _Statement) -> None:
        """predict() in a plain SELECT: the FROM relation is scored once by mapInArrow and
        each call becomes a column of the scored view (the DuckDB engine's batching rewrite)."""
        select = target_select(tree)
        assert select is not None
        alias, tag = source_alias(select), next(state.ids)
        arguments: list[tuple[str, exp.Expression]] = []
        jobs: list[ShippedJob] = []
        groups: dict[str, list[int]] = {}  # identical calls share one scoring
        for index, plan in enumerate(plans):
            assert isinstance(plan.strategy, OnnxPlan)
            groups.setdefault(_call_key(plan.strategy), []).append(index)
        reads: dict[int, tuple[exp.Expression, str]] = {}
        for group in groups.values():
            first = group[0]
            strategy = plans[first].strategy
            assert isinstance(strategy, OnnxPlan)
            names: list[str] = []
            for bound in strategy.inputs:
                for column in bound.columns:
                    names.append(f"nbgov_a{tag}_{first}_{len(names)}")
                    arguments.append((names[-1], cast_argument(bound.spec, column)))
            model = calls[first].model
            jobs.append(ShippedJob(
                self.scoring.ship(strategy, model.outputs), tuple(names),
                _picks([calls[i] for i in group], group, f"nbgov_p{tag}_{first}", reads),
                f"predict({model.ref})", signature(model),
            ))
        scored_nodes = [calls[i].node for i in reads]
        pushed, kept = split_where(select, scored_nodes)
        inner = inner_query(select, arguments, needed_columns(select, scored_nodes, pushed), pushed)
        view = f"nbgov_batch_{tag}"
        self._view(view, self.scoring.score(self._frame(inner, state), jobs, frozenset(n for n, _ in arguments)), state)
        for read, helper in reads.values():
            read.replace(exp.column(helper, table=alias, quoted=True))
        columns = sorted({pick.column for job in jobs for pick in job.picks})
        rewrite_outer(select, view, alias, columns, kept)
        state.notes.append("scoring: the relation is scored once by mapInArrow on the executors (onnxruntime in Arrow batches)")

    def _ml_predict(self, ref: str, query: str, placeholder: str, outer: exp.Expression, state: _Statement) -> None:
        """``ML.PREDICT(MODEL m, relation)``: the relation scored by mapInArrow into the view
        ``placeholder``, or, for a model inlined as SQL, a subquery Spark computes."""
        model = self.catalog.resolve(ref)
        act.add_model(state.activity, model)
        if signature(model) not in state.signatures:
            state.signatures.append(signature(model))
        relation = self._prepare(Statement(query, tokenize(query)), state, top=False)
        frame = self._frame(relation, state)
        columns = {name.lower(): name for name in frame.columns}
        arguments = relation_arguments(model, columns)
        label = f"ML.PREDICT(MODEL {model.ref})"
        strategy: OnnxPlan | SqlPlan | None = None
        if state.optimize:
            strategy = self._plan(relation_call(model, arguments, relation.copy()), state).strategy
        if isinstance(strategy, SqlPlan):
            inlined = inlined_relation(model, relation, strategy.expression)
            fold_outputs(inlined)
            for table in list(outer.find_all(exp.Table)):
                if table.name == placeholder:
                    table.replace(exp.Subquery(this=inlined.copy(), alias=exp.TableAlias(this=exp.to_identifier(table.alias_or_name))))
            state.notes.append(f"{label}: inlined as SQL: Spark computes the predicted columns natively (no ONNX scoring)")
            return
        if strategy is None:
            strategy = OnnxPlan(model.onnx_bytes, original_cache_key(model), relation_call(model, arguments, relation.copy()).inputs)
        helpers = [(f"nbgov_x{next(state.ids)}", c) for b in strategy.inputs for c in b.columns]
        projected = exp.select(exp.Star(), *[exp.alias_(c.copy(), n, quoted=True) for n, c in helpers])
        source = self._frame(projected.from_(exp.Subquery(this=relation, alias=exp.TableAlias(this=exp.to_identifier("nbgov_in")))), state)
        found = relation_picks(outer, placeholder, model.outputs, f"nbgov_po{next(state.ids)}_") if state.optimize else None
        picks, reads = found or ([Pick(f"predicted_{o.name}", o.name) for o in model.outputs], [])
        job = ShippedJob(self.scoring.ship(strategy, model.outputs, regions=state.optimize), tuple(n for n, _ in helpers), tuple(picks), label, signature(model))
        self._view(placeholder, self.scoring.score(source, [job], frozenset(n for n, _ in helpers)), state)
        for node, column in reads:
            qualifier = node.this.table if isinstance(node.this, exp.Column) else ""
            node.replace(exp.column(column, table=qualifier or None, quoted=True))
        state.notes.append(f"{label}: ONNX: the relation is scored by mapInArrow on the executors")
        if found is not None:
            state.notes.append(f"{label}: output projection: only {', '.join(p.describe() for p in picks)} computed and returned")

    # --- helpers ----------------------------------------------------------------------------

    def _frame(self, tree: exp.Expression, state: _Statement) -> DataFrame:
        """A lazy Spark DataFrame of a DuckDB-dialect query (parameters bound)."""
        args = bind_parameters(parameter_names(tree), state.params)
        state.activity["params"].extend(n for n in args if n not in state.activity["params"])
        return self.spark.sql(to_spark(tree), args=args or None)

    def _view(self, name: str, frame: DataFrame, state: _Statement) -> None:
        frame.createOrReplaceTempView(name)
        state.hidden.add(name)
        state.stack.callback(self._drop_view, name)

    def _drop_view(self, name: str) -> None:
        try:
            self.spark.catalog.dropTempView(name)
        except Exception:  # the session is gone
            pass

    def _drop_function(self, name: str) -> None:
        try:
            self.spark.sql(f"DROP TEMPORARY FUNCTION IF EXISTS {exp.to_identifier(name).sql(dialect='spark')}")
        except Exception:  # the session is gone
            pass

    def _error(self, error: Exception, state: _Statement) -> SqlmlError:
        """Spark's error in one line; a cast or column error of a model call names the
        model's expected inputs, as on DuckDB."""
        mapped = spark_error(error)
        if state.signatures and isinstance(mapped, SqlError):
            found = condition(error) or ""
            if "CAST" in found:
                return ModelBindingError(f"{mapped}; expected {'; '.join(state.signatures)}")
            if "UNRESOLVED" in found:
                return SqlmlError(f"{mapped}; model inputs: {'; '.join(state.signatures)}")
        return mapped


@contextmanager
def _quiet_query_logger() -> Iterator[None]:
    """PySpark logs every failed query (with its Java stack) before raising; nbgov
    reports the error itself, in one line."""
    logger = logging.getLogger("SQLQueryContextLogger")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _call_key(plan: OnnxPlan) -> str:
    """Calls of the same model plan on the same arguments compute the same value."""
    return plan.cache_key + "|" + "|".join(c.sql() for bound in plan.inputs for c in bound.columns)


def _picks(calls: list[ModelCall], group: list[int], column: str, reads: dict[int, tuple[exp.Expression, str]]) -> tuple[Pick, ...]:
    """The scored columns for identical calls: only the outputs (or elements) they read
    when each reads a part, else the whole value for all of them."""
    accesses = [output_access(call.node, call.model.outputs) for call in calls]
    if any(pick.output is None for _, pick in accesses):
        reads.update({index: (call.node, column) for index, call in zip(group, calls)})
        return (Pick(column),)
    picks: dict[tuple[str | None, int | None], Pick] = {}
    for index, (node, pick) in zip(group, accesses):
        key = (pick.output, pick.element)
        if key not in picks:
            picks[key] = Pick(f"{column}_{len(picks)}", pick.output, pick.element)
        reads[index] = (node, picks[key].column)
    return tuple(picks.values())


def _table_names(statement: Statement) -> list[str]:
    """Unqualified table names a statement (and its ML.PREDICT relations) refers to."""
    try:
        rewritten = rewrite_extensions(statement, "nbgov_probe_")
        tree = sqlglot.parse_one(rewritten.text, read="duckdb")
    except (NbgovError, ParseError, TokenError):
        return [t.text for t in statement.tokens or () if t.text.isidentifier()]
    names = [t.name for t in tree.find_all(exp.Table) if isinstance(t.this, exp.Identifier) and not t.db]
    for call in rewritten.ml_predicts:
        names.extend(_table_names(Statement(call.query, tokenize(call.query))))
    return names


def _parse(text: str) -> exp.Expression:
    try:
        tree: exp.Expr | None = sqlglot.parse_one(text, read="duckdb")
    except (ParseError, TokenError) as error:
        raise SqlError(f"cannot parse the statement: {str(error).splitlines()[0][:300]}") from None
    if tree is None:
        raise SqlError("empty statement")
    assert isinstance(tree, exp.Expression)
    return tree


def _kind(tree: exp.Expression) -> str:
    if isinstance(tree, exp.Query):
        return "select"
    if isinstance(tree, (exp.Create, exp.Drop, exp.Alter)):
        return "ddl"
    return tree.key.lower()

