"""The cross SQL–model optimizer: turns each bound predict(...) call into a plan.

Rules run in order, each a small module: ``predicates`` proves what the query
guarantees about the call's inputs; ``prune`` removes tree branches no allowed
row reaches; ``projection`` stops reading features the pruned model ignores;
``to_sql`` + ``cost`` inline small models as DuckDB expressions when that is
estimated cheaper.  Every rule applied or refused leaves an EXPLAIN note.  A
failure inside the optimizer never breaks a query: the call then runs as the
original model, with a note saying why.
"""

from __future__ import annotations

import onnx
import sqlglot.expressions as exp
import xxhash

from nbgov.sqlml.models.onnxtypes import width
from nbgov.sqlml.optimizer.cost import linear_costs, tree_costs
from nbgov.sqlml.optimizer.domains import ModelDomain
from nbgov.sqlml.optimizer.output_predicates import boolean_tree_sql, comparison_node, output_comparison
from nbgov.sqlml.optimizer.predicates import FeatureConstraints, call_constraints
from nbgov.sqlml.optimizer.projection import rebuild
from nbgov.sqlml.optimizer.prune import prune_forest
from nbgov.sqlml.optimizer.to_sql import (
    SqlModel,
    fill,
    input_elem,
    linear_sql,
    mean_depth,
    single_tree_sql,
    template,
    tree_regressor_sql,
)
from nbgov.sqlml.models.treegraph import TreeGraph, analyze
from nbgov.sqlml.plan import (
    BoundInput,
    CallPlan,
    ModelCall,
    OnnxPlan,
    SqlPlan,
    TensorSpec,
    original_cache_key,
)

__all__ = ["Planner"]


class Planner:
    """Plans calls; keeps a per-engine cache of pruned models keyed by (sha256, predicate)."""

    def __init__(self, *, inline_sql: bool = True, batched: bool = False, max_cache: int = 64) -> None:
        """``batched``: an ONNX plan will score the relation in large batches (ML.PREDICT),
        which makes onnxruntime cheaper than through the per-call UDF."""
        self.inline_sql = inline_sql
        self.batched = batched
        self._max_cache = max_cache
        self._pruned: dict[
            str, tuple[TreeGraph | None, bytes, tuple[int, ...], dict[str, object]]
        ] = {}
        self._parsed: dict[str, onnx.ModelProto] = {}
        self._graphs: dict[str, TreeGraph | None] = {}
        self._linear: dict[str, SqlModel | None] = {}
        self._templates: dict[tuple[str, int], exp.Expression | None] = {}

    def plan_call(self, call: ModelCall) -> CallPlan:
        try:
            return self._plan(call)
        except Exception as err:  # noqa: BLE001 - the optimizer must never break a query
            plan = OnnxPlan(
                call.model.onnx_bytes, original_cache_key(call.model), call.inputs
            )
            return CallPlan(
                plan, (f"optimizer skipped: {type(err).__name__}: {err}",), {}
            )

    # -- rules -------------------------------------------------------------------------

    def _plan(self, call: ModelCall) -> CallPlan:
        model = self._model(call)
        notes: list[str] = []
        stats: dict[str, object] = {}
        shape = input_elem(model)
        if (
            shape is None
            or len(call.inputs) != 1
            or len(call.inputs[0].columns) != shape[1]
        ):
            notes.append(
                "kept as ONNX: model inputs are not one 2-D numeric tensor (no rule applies)"
            )
            return self._original(call, notes, stats)
        elem, n_features = shape
        bound = call.inputs[0]
        constraints = call_constraints(call)
        notes.extend(constraints.refusals)
        compared = output_comparison(call.node)
        if compared is not None:
            notes.append(
                f"not used for pruning: predict(...) {compared[0]} {compared[1]:g} restricts the model's output, not its inputs"
            )

        if call.model.sha256 not in self._graphs:
            self._graphs[call.model.sha256] = analyze(model)
        tree_graph = self._graphs[call.model.sha256]
        if tree_graph is not None:
            return self._plan_trees(call, tree_graph, constraints, notes, stats)
        if call.model.sha256 not in self._linear:
            self._linear[call.model.sha256] = linear_sql(model, elem, n_features)
        linear = self._linear[call.model.sha256] if self.inline_sql else None
        if linear is not None:
            estimate = linear_costs(linear.terms, batched=self.batched)
            stats.update(
                cost_ort=round(estimate.ort_us, 4), cost_sql=round(estimate.sql_us, 4)
            )
            if estimate.prefer_sql:
                guard = [
                    c
                    for j, c in enumerate(bound.columns)
                    if (0, j) not in constraints.domains
                ]
                expression = self._render(
                    call.model.sha256, linear, call, list(bound.columns), guard
                )
                if expression is not None:
                    stats["strategy"] = "sql"
                    notes.append(
                        f"inlined as SQL expression: linear model, {linear.terms} terms "
                        f"(cost {estimate.describe()})"
                    )
                    return CallPlan(SqlPlan(expression), tuple(notes), stats)
            notes.append(
                f"kept as ONNX: linear model estimated cheaper in onnxruntime ({estimate.describe()})"
            )
        else:
            notes.append("kept as ONNX: no SQL translation for this model's operators")
        return self._original(call, notes, stats)

    def _plan_trees(
        self,
        call: ModelCall,
        tree_graph: TreeGraph,
        constraints: FeatureConstraints,
        notes: list[str],
        stats: dict[str, object],
    ) -> CallPlan:
        bound = call.inputs[0]
        elem = tree_graph.elem_type
        domains: dict[int, ModelDomain] = {}
        for (i, j), dom in constraints.domains.items():
            if i == 0 and not dom.unconstrained:
                domains[j] = dom.in_model_space(elem)
        if any(
            d.values == () or (d.values is None and d.lo > d.hi and not d.nan)
            for d in domains.values()
        ):
            notes.append("no pruning: the predicate admits no rows")
            domains = {}
        normalized = ";".join(f"{j}:{domains[j].key()}" for j in sorted(domains))
        key = f"{call.model.sha256}:pruned:{xxhash.xxh3_128_hexdigest(normalized.encode())}"
        cached = self._pruned.get(key)
        if cached is None:
            forests = []
            before = after = 0
            for forest in tree_graph.forests:
                result = prune_forest(forest, domains)
                forests.append(result.forest)
                before += result.nodes_before
                after += result.nodes_after
            projected = rebuild(tree_graph, forests)
            pruned_graph = analyze(projected.model)
            info: dict[str, object] = {"nodes_before": before, "nodes_after": after}
            if pruned_graph is not None and len(pruned_graph.forests) == 1:
                only = pruned_graph.forests[0]
                info["levels"] = max(1, round(mean_depth(only) * len(only.trees)))
            cached = (
                pruned_graph,
                projected.model.SerializeToString(),
                projected.kept,
                info,
            )
            if len(self._pruned) >= self._max_cache:
                self._pruned.pop(next(iter(self._pruned)))
            self._pruned[key] = cached
            reused = False
        else:
            reused = True
        pruned_graph, payload, kept, info = cached
        before, after = int(info["nodes_before"]), int(info["nodes_after"])  # type: ignore[call-overload]
        stats.update(
            nodes_before=before, nodes_after=after, trees=tree_graph.tree_count
        )
        using = " AND ".join(constraints.text)
        if after < before:
            notes.append(
                f"pruned {before - after:,} of {before:,} tree nodes"
                + (f" using {using}" if using else "")
            )
            if reused:
                notes.append("pruned model reused from cache")
        elif domains:
            notes.append(f"no tree nodes pruned: no test is decided by {using}")
        else:
            notes.append(
                f"no pruning: no usable predicate on the model's inputs ({before:,} tree nodes)"
            )
        n = len(bound.columns)
        dropped = [j for j in range(n) if j not in kept]
        stats.update(inputs_before=n, inputs_after=len(kept))
        if dropped:
            names = ", ".join(bound.columns[j].sql(dialect="duckdb") for j in dropped)
            notes.append(f"dropped {len(dropped)} of {n} unused inputs ({names})")
        # A dropped column that may be NULL must still make the result NULL.
        guard = [bound.columns[j] for j in dropped if (0, j) not in constraints.domains]
        all_guard = guard + [
            c for j, c in enumerate(bound.columns) if j in kept and (0, j) not in constraints.domains
        ]
        kept_exprs = [bound.columns[j] for j in kept]
        if self.inline_sql and pruned_graph is not None and elem == "float":
            filtered = self._boolean_tree(call, key, pruned_graph, payload, kept_exprs, all_guard, notes, stats)
            if filtered is not None:
                return filtered

        if (
            self.inline_sql
            and pruned_graph is not None
            and len(pruned_graph.forests) == 1
        ):
            forest = pruned_graph.forests[0]
            node = pruned_graph.model.graph.node[pruned_graph.tree_nodes[0]]
            levels = int(info["levels"])  # type: ignore[call-overload]
            estimate = tree_costs(levels, batched=self.batched)
            stats.update(
                cost_ort=round(estimate.ort_us, 4), cost_sql=round(estimate.sql_us, 4)
            )
            sql_model = None
            if estimate.prefer_sql and len(forest.trees) == 1 and elem == "float":
                sql_model = single_tree_sql(
                    payload, forest, len(kept), call.model.outputs
                )
            elif estimate.prefer_sql:
                sql_model = tree_regressor_sql(node, forest, elem)
            if sql_model is not None:
                expression = self._render(key, sql_model, call, kept_exprs, all_guard)
                if expression is not None:
                    stats["strategy"] = "sql"
                    notes.append(
                        f"inlined as SQL CASE: {_trees(len(forest.trees))} (cost {estimate.describe()})"
                    )
                    return CallPlan(SqlPlan(expression), tuple(notes), stats)
            reason = (
                "estimated cheaper"
                if not estimate.prefer_sql
                else "no SQL translation for this ensemble"
            )
            notes.append(
                f"kept as ONNX: {_trees(tree_graph.tree_count)}, {reason} ({estimate.describe()})"
            )
        else:
            notes.append(f"kept as ONNX: {_trees(tree_graph.tree_count)}")
        if after == before and not dropped:
            return self._original(call, notes, stats)
        columns = [bound.columns[j] for j in kept]
        if guard:
            conds: exp.Expr = exp.Is(this=guard[0].copy(), expression=exp.Null())
            for g in guard[1:]:
                conds = exp.or_(conds, exp.Is(this=g.copy(), expression=exp.Null()))
            columns[0] = exp.Case(
                ifs=[exp.If(this=conds, true=exp.Null())], default=columns[0].copy()
            )
        spec = TensorSpec(
            bound.spec.name,
            bound.spec.elem_type,
            (bound.spec.shape[0] if bound.spec.shape else None, len(kept)),
        )
        stats["strategy"] = "onnx"
        plan = OnnxPlan(payload, key, (BoundInput(spec, tuple(columns)),))
        return CallPlan(plan, tuple(notes), stats)

    def _boolean_tree(
        self,
        call: ModelCall,
        key: str,
        graph: TreeGraph,
        payload: bytes,
        features: list[exp.Expression],
        guard: list[exp.Expression],
        notes: list[str],
        stats: dict[str, object],
    ) -> CallPlan | None:
        """``predict(...) > c`` on a single-tree regressor: the comparison becomes a boolean
        tree run by DuckDB as a filter (sound: each leaf's exact output is compared)."""
        compared = comparison_node(call.node)
        outputs = call.model.outputs
        if compared is None or len(graph.forests) != 1 or len(outputs) != 1 or width(outputs[0]) != 1:
            return None
        _, op, constant = compared
        built = boolean_tree_sql(payload, graph.forests[0], len(features), outputs[0], op, constant)
        if built is None:
            return None
        sql_model, kept = built
        literal = constant.sql(dialect="duckdb")
        expression = self._render(f"{key}:{op}:{literal}", sql_model, call, features, guard)
        if expression is None:
            return None
        stats.update(strategy="sql-filter", leaves=kept.leaves, leaves_passing=kept.passing, branches_kept=kept.branches)
        boundary = f" ({kept.boundary} at the boundary, compared by DuckDB)" if kept.boundary else ""
        notes.append(
            f"output predicate {op} {literal}: boolean tree: {kept.passing} of {kept.leaves} leaves pass{boundary}, "
            f"{kept.branches} branches kept; runs in DuckDB as a filter (no model scoring)"
        )
        return CallPlan(SqlPlan(expression, comparison=True), tuple(notes), stats)

    # -- helpers -----------------------------------------------------------------------

    def _render(
        self,
        key: str,
        sql_model: SqlModel,
        call: ModelCall,
        features: list[exp.Expression],
        guard: list[exp.Expression],
    ) -> exp.Expression | None:
        slot = (key, len(guard))
        if slot not in self._templates:
            self._templates[slot] = template(sql_model, call.model.outputs, len(guard))
        shape = self._templates[slot]
        return None if shape is None else fill(shape, features, guard)

    def _model(self, call: ModelCall) -> onnx.ModelProto:
        sha = call.model.sha256
        if sha not in self._parsed:
            self._parsed[sha] = onnx.load_model_from_string(call.model.onnx_bytes)
        return self._parsed[sha]

    def _original(
        self, call: ModelCall, notes: list[str], stats: dict[str, object]
    ) -> CallPlan:
        stats.setdefault("strategy", "onnx")
        plan = OnnxPlan(
            call.model.onnx_bytes, original_cache_key(call.model), call.inputs
        )
        return CallPlan(plan, tuple(notes), stats)


def _trees(count: int) -> str:
    return f"{count} tree" if count == 1 else f"{count:,} trees"
