"""The plan state the optimizer's rules pass along, like sqlglot's ``optimize()``: each
rule takes the state and returns a new one (with its own EXPLAIN notes), and
``finish`` turns the last state into a ``CallPlan``.

What rules learn is typed here, so the order of the rules is the only control flow:
``predicates`` fills ``constraints``; ``prune`` fills ``pruning``; ``projection`` fills
``kept``; a rule that decides the call (a SQL translation) sets ``decided``; a rule
that keeps it in ONNX may say why in ``onnx_reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import onnx
import sqlglot.expressions as exp

from nbgov.sqlml.engine_name import EngineName
from nbgov.sqlml.models.treegraph import TreeGraph, analyze
from nbgov.sqlml.optimizer.checks import guarded_columns, refused_rows_of
from nbgov.sqlml.optimizer.cost import DUCKDB, CostProfile
from nbgov.sqlml.optimizer.pipelines import Lowered
from nbgov.sqlml.optimizer.predicates import FeatureConstraints
from nbgov.sqlml.optimizer.projection import rebuild
from nbgov.sqlml.optimizer.prune import Pruning
from nbgov.sqlml.optimizer.to_sql import SqlModel, fill, input_elem, mean_depth, template
from nbgov.sqlml.models.forest import Forest
from nbgov.sqlml.plan import (
    BoundInput, CallPlan, CompiledKernels, ModelCall, OnnxPlan, SqlPlan, TensorSpec, original_cache_key,
)

T = TypeVar("T")


class Memo:
    """What rules compute once per model (and predicate) and reuse across calls: parsed
    models, tree graphs, pruned forests, rebuilt models, SQL templates. One per planner,
    at most ``limit`` entries per kind, the oldest dropped first."""

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._entries: dict[str, dict[Hashable, Any]] = {}

    def has(self, kind: str, key: Hashable) -> bool:
        return key in self._entries.get(kind, {})

    def get(self, kind: str, key: Hashable, build: Callable[[], T]) -> T:
        entries = self._entries.setdefault(kind, {})
        if key in entries:
            value: T = entries[key]
            return value
        value = build()
        if len(entries) >= self._limit:
            entries.pop(next(iter(entries)))
        entries[key] = value
        return value


@dataclass(frozen=True)
class TensorInput:
    """The one 2-D numeric input most rules understand: element type and feature count."""

    elem: str
    features: int


@dataclass(frozen=True)
class Rebuilt:
    """The model after pruning and projection: its tree graph (None if unreadable), bytes,
    session cache key, the original feature positions it reads, and tree levels per row
    (for costing; None unless it holds one ensemble)."""

    graph: TreeGraph | None
    payload: bytes
    cache_key: str
    kept: tuple[int, ...]
    levels: int | None


@dataclass(frozen=True)
class PlanState:
    """One call being planned: what the model is and what the rules found so far."""

    call: ModelCall
    memo: Memo
    batched: bool  # ONNX would score the relation in large batches (ML.PREDICT)
    tensor: TensorInput | None  # None: the rules that need one 2-D input do not apply
    trees: TreeGraph | None  # the model's tree ensembles, when it is made of them
    notes: tuple[str, ...] = ()
    stats: Mapping[str, object] = field(default_factory=dict)
    constraints: FeatureConstraints | None = None
    pruning: Pruning | None = None
    kept: tuple[int, ...] | None = None  # projection: original features still read
    decided: SqlPlan | None = None
    onnx_reason: str | None = None
    exact_strings: bool = False  # the engine compares strings byte for byte (no collation in effect)
    # a lowered pipeline: model inputs no lowered column reads (their NULL must still give
    # NULL), and values onnxruntime would refuse (condition, error message)
    extra_guard: tuple[exp.Expression, ...] = ()
    checks: tuple[tuple[exp.Expression, str], ...] = ()
    pipeline: Lowered | None = None  # set when the call is a lowered pipeline (for notes)
    costs: CostProfile = DUCKDB  # where inlined SQL would run, and what it costs there
    # the executor's compiled tree scoring: which models score compiled at once (None: not asked)
    kernels: CompiledKernels | None = None

    @classmethod
    def start(
        cls, call: ModelCall, memo: Memo, *, batched: bool, exact_strings: bool = False, costs: CostProfile = DUCKDB,
        kernels: CompiledKernels | None = None,
    ) -> PlanState:
        model = memo.get("model", call.model.sha256, lambda: onnx.load_model_from_string(call.model.onnx_bytes))
        shape = input_elem(model)
        tensor = None
        if shape is not None and len(call.inputs) == 1 and len(call.inputs[0].columns) == shape[1]:
            tensor = TensorInput(*shape)
        trees = memo.get("trees", call.model.sha256, lambda: analyze(model)) if tensor is not None else None
        return cls(call, memo, batched, tensor, trees, exact_strings=exact_strings, costs=costs, kernels=kernels)

    @property
    def model(self) -> onnx.ModelProto:
        sha = self.call.model.sha256
        return self.memo.get("model", sha, lambda: onnx.load_model_from_string(self.call.model.onnx_bytes))

    @property
    def engine(self) -> EngineName:
        """The engine that runs the SQL the rules decide on (the cost profile's): notes name it."""
        return self.costs.engine

    @property
    def bound(self) -> BoundInput:
        """The call's one bound input (only meaningful when ``tensor`` is set)."""
        return self.call.inputs[0]

    def note(self, *texts: str) -> PlanState:
        return replace(self, notes=(*self.notes, *texts))

    def with_stats(self, **values: object) -> PlanState:
        return replace(self, stats={**self.stats, **values})

    def constrained(self, feature: int) -> bool:
        """Whether the query fixes a domain for this feature (its NULLs are filtered out)."""
        return self.constraints is not None and (0, feature) in self.constraints.domains

    def null_guard(self, features: tuple[int, ...] | list[int]) -> list[exp.Expression]:
        """Columns among ``features`` that may be NULL: the result must be NULL then (and
        the inputs of a lowered pipeline that no column reads)."""
        return [self.bound.columns[j] for j in features if not self.constrained(j)] + list(self.extra_guard)

    def sql_plan(
        self, expression: exp.Expression, *, comparison: bool = False, fallback: OnnxPlan | None = None,
        open_share: float = 0.0,
    ) -> SqlPlan:
        """The decided SQL: ``expression`` failing, as onnxruntime would, on the rows a check
        refuses — only rows that would be scored (no NULL argument) — and the checks kept apart."""
        if not self.checks:
            return SqlPlan(expression, comparison, fallback, open_share)
        nullable = self.null_guard(list(range(len(self.bound.columns))))
        checks = list(self.checks)
        checked = guarded_columns([expression], nullable, checks)[0]
        return SqlPlan(checked, comparison, fallback, open_share, refusals=refused_rows_of(nullable, checks))

    def dropped(self) -> list[int]:
        kept = self.kept_features()
        return [j for j in range(len(self.bound.columns)) if j not in kept]

    def kept_features(self) -> tuple[int, ...]:
        return self.kept if self.kept is not None else tuple(range(len(self.bound.columns)))

    def render(
        self, key: str, sql_model: SqlModel, features: list[exp.Expression], guard: list[exp.Expression]
    ) -> exp.Expression | None:
        """``sql_model`` as predict's value over ``features``, NULL when a ``guard`` column is
        NULL; the parsed template is kept per ``key`` (parsing costs more than filling), a
        built one (``sql_model.trees``) is built afresh and filled in place (building a large
        ensemble's tree costs less than copying it)."""
        outputs = self.call.model.outputs
        if sql_model.trees:
            built = template(sql_model, outputs, len(guard))
            return None if built is None else fill(built, features, guard, copy=False)
        shape = self.memo.get("template", (key, len(guard)), lambda: template(sql_model, outputs, len(guard)))
        return None if shape is None else fill(shape, features, guard)

    def rebuilt(self) -> Rebuilt:
        """The tree model with the pruned forests, reading only the kept features (built once
        per model, predicates and kept features)."""
        assert self.trees is not None
        trees, pruning, project = self.trees, self.pruning, self.kept is not None
        forests = list(pruning.forests if pruning is not None else trees.forests)
        name = pruning.key if pruning is not None else f"{self.call.model.sha256}:pruned:none"
        key = f"{name}:{'projected' if project else 'all'}"

        def build() -> Rebuilt:
            projected = rebuild(trees, forests, project)
            graph = analyze(projected.model)
            levels = None
            if graph is not None and len(graph.forests) == 1:
                only = graph.forests[0]
                levels = max(1, round(mean_depth(only) * len(only.trees)))
            return Rebuilt(graph, projected.model.SerializeToString(), key, projected.kept, levels)

        return self.memo.get("rebuilt", key, build)

    def changed(self) -> bool:
        """Whether pruning or projection changed the model the call runs."""
        if self.trees is None:
            return False
        pruned = self.pruning is not None and self.pruning.nodes_after < self.pruning.nodes_before
        return pruned or bool(self.dropped())

    def finish(self) -> CallPlan:
        """The plan: the decided SQL, else ONNX (pruned and projected when that changed it)."""
        if self.decided is not None:
            decided = self.decided
            if decided.fallback is None and not decided.comparison and self.stats.get("strategy") == "sql":
                cost_sql = self.stats.get("cost_sql")
                if isinstance(cost_sql, float) and self._full_ready():
                    full = self._full_compiled(cost_sql, "inlining the pruned model as SQL", "SQL {:.2f} vs compiled full model 1.0")
                    if full is not None:
                        return full
            return CallPlan(self.decided, self.notes, dict(self.stats))
        state = self.note(f"kept as ONNX: {self.onnx_reason or self._default_reason()}")
        if not self.changed() and not self.extra_guard and not self.checks:
            return CallPlan(original_plan(self.call), state.notes, {**state.stats, "strategy": "onnx"})
        rebuilt = self.rebuilt()
        if self.kernels is not None and rebuilt.graph is not None and self.changed() and self._full_ready():
            # the full model scores compiled at once; the pruned one does too only when its
            # own kernel is loaded or cached (then it is never dearer: fewer levels), else
            # onnxruntime scores it until enough rows repay compiling it: kept only where the
            # pruned model wins at any row count, as for SQL (compile sees no row count)
            if self.kernels.ready(rebuilt.cache_key, rebuilt.payload):
                state = state.with_stats(pruned_path="compiled")
            else:
                pruned_us = self.costs.trees(forest_levels(rebuilt.graph.forests), batched=self.batched).ort_us
                state = state.with_stats(pruned_path="onnxruntime", cost_pruned=round(pruned_us, 4))
                full = state._full_compiled(
                    pruned_us, "pruning to an uncompiled model", "pruned model in onnxruntime {:.2f} vs compiled full model 1.0"
                )
                if full is not None:
                    return full
        columns = [self.bound.columns[j] for j in rebuilt.kept]
        # a dropped column that may be NULL must still make the result NULL; a check must
        # see every argument's NULL first
        guard = self.null_guard(list(range(len(self.bound.columns))) if self.checks else self.dropped())
        columns = guarded_columns(columns, guard, list(self.checks))
        spec = self.bound.spec
        narrowed = TensorSpec(spec.name, spec.elem_type, (spec.shape[0] if spec.shape else None, len(rebuilt.kept)))
        plan = OnnxPlan(rebuilt.payload, rebuilt.cache_key, (BoundInput(narrowed, tuple(columns)),))
        return CallPlan(plan, state.notes, {**state.stats, "strategy": "onnx"})

    def _full_compiled(self, alternative_us: float, instead: str, ratio: str) -> CallPlan | None:
        """The unoptimized plan, when the full model (``_full_ready``) is estimated cheaper
        per row than ``alternative_us``, the rewrite's own estimate: the optimizer never
        picks a plan it estimates slower than none."""
        assert self.trees is not None
        full_us = self.costs.compiled_trees(forest_levels(self.trees.forests), batched=self.batched)
        stats = {**self.stats, "cost_full_compiled": round(full_us, 4)}
        if full_us >= alternative_us:
            return None
        note = (
            f"kept the full model: compiled and cached, estimated cheaper than {instead} "
            f"({ratio.format(alternative_us / full_us)} per row)"
        )
        stats.update(strategy="onnx", kept_full=True)
        return CallPlan(original_plan(self.call), (*self.notes, note), stats)

    def _full_ready(self) -> bool:
        """Whether the call's full model scores compiled at once (a kernel loaded or cached)."""
        if self.kernels is None or self.trees is None or self.pipeline is not None:
            return False  # a lowered pipeline's full model also runs its featurizer: not costed here
        return self.kernels.ready(original_cache_key(self.call.model), self.call.model.onnx_bytes)

    def _default_reason(self) -> str:
        if self.tensor is None:
            return "model inputs are not one 2-D numeric tensor (no rule applies)"
        if self.trees is not None:
            return trees_text(self.trees.tree_count)
        return "no rule rewrote this model"


def original_plan(call: ModelCall) -> OnnxPlan:
    """The call's model as registered, on the arguments as bound."""
    return OnnxPlan(call.model.onnx_bytes, original_cache_key(call.model), call.inputs)


def forest_levels(forests: tuple[Forest, ...] | list[Forest]) -> float:
    """Tree levels a row passes, summed over the trees (``mean_depth`` each): the cost
    model's measure of per-row work."""
    return sum(mean_depth(forest) * len(forest.trees) for forest in forests)


def trees_text(count: int) -> str:
    return f"{count} tree" if count == 1 else f"{count:,} trees"
