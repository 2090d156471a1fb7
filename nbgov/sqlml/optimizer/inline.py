"""Rule 5: run a small model as a SQL expression inside DuckDB when the cost model says
that is cheaper than onnxruntime: linear models (with their scaler and post-processing)
and pruned tree ensembles. The translation is ``to_sql``'s, the estimate ``cost``'s;
a model kept in ONNX says why.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import onnx

from nbgov.sqlml.models.forest import Forest
from nbgov.sqlml.optimizer.cost import CostEstimate
from nbgov.sqlml.optimizer.forest_sql import NotTranslatable, ensemble_sql
from nbgov.sqlml.optimizer.state import trees_text
from nbgov.sqlml.optimizer.to_sql import SqlModel, linear_refusal, linear_sql, single_tree_sql, tree_regressor_sql

if TYPE_CHECKING:
    from nbgov.sqlml.optimizer.state import PlanState


def rule(state: PlanState) -> PlanState:
    if state.decided is not None or state.tensor is None:
        return state
    return _trees(state) if state.trees is not None else _linear(state)


def _linear(state: PlanState) -> PlanState:
    assert state.tensor is not None
    elem, features = state.tensor.elem, state.tensor.features
    sha = state.call.model.sha256
    linear = state.memo.get("linear", sha, lambda: linear_sql(state.model, elem, features, cast_inputs=True))
    if linear is None:
        return replace(state, onnx_reason=linear_refusal(state.model))
    estimate = state.costs.linear(linear.terms, batched=state.batched)
    state = state.with_stats(cost_ort=round(estimate.ort_us, 4), cost_sql=round(estimate.sql_us, 4))
    if not estimate.prefer_sql:
        return replace(state, onnx_reason=f"linear model estimated cheaper in onnxruntime ({estimate.describe()})")
    columns = list(state.bound.columns)
    expression = state.render(sha, linear, columns, state.null_guard(list(range(len(columns)))))
    if expression is None:
        return replace(state, onnx_reason="no SQL form for this linear model's outputs")
    state = state.with_stats(strategy="sql").note(
        f"inlined as SQL expression: linear model, {linear.terms} terms (cost {estimate.describe()})"
    )
    return replace(state, decided=state.sql_plan(expression))


def _trees(state: PlanState) -> PlanState:
    trees = state.trees
    assert trees is not None
    rebuilt = state.rebuilt()
    graph = rebuilt.graph
    if graph is None or len(graph.forests) != 1 or rebuilt.levels is None:
        return state  # several ensembles (or an unreadable rebuild): stays in ONNX
    forest = graph.forests[0]
    estimate = state.costs.trees(rebuilt.levels, nodes=forest.node_count, batched=state.batched)
    state = state.with_stats(cost_ort=round(estimate.ort_us, 4), cost_sql=round(estimate.sql_us, 4))
    elem = trees.elem_type
    sql_model = None
    if estimate.prefer_sql and len(forest.trees) == 1 and elem == "float":
        sql_model = single_tree_sql(rebuilt.payload, forest, len(rebuilt.kept), state.call.model.outputs)
    elif estimate.prefer_sql:
        node = graph.model.graph.node[graph.tree_nodes[0]]
        sql_model = tree_regressor_sql(node, forest, elem) or _ensemble(node, forest, state, estimate)
    if sql_model is not None:
        features = [state.bound.columns[j] for j in rebuilt.kept]
        guard = state.null_guard([*state.dropped(), *rebuilt.kept])
        expression = state.render(rebuilt.cache_key, sql_model, features, guard)
        if expression is not None:
            state = state.with_stats(strategy="sql").note(
                f"inlined as SQL CASE: {trees_text(len(forest.trees))} (cost {estimate.describe()})"
            )
            return replace(state, decided=state.sql_plan(expression))
    reason = "estimated cheaper" if not estimate.prefer_sql else "no SQL translation for this ensemble"
    return replace(state, onnx_reason=f"{trees_text(trees.tree_count)}, {reason} ({estimate.describe()})")


def _ensemble(node: onnx.NodeProto, forest: Forest, state: PlanState, estimate: CostEstimate) -> SqlModel | None:
    """Any float ensemble ``forest_sql`` reproduces: classifiers too, one CASE per tree
    (still cheaper once DuckDB's fold over the trees is paid for)."""
    fold = state.costs.sql_fold_us * len(forest.trees) if len(forest.trees) > 1 else 0.0
    if estimate.sql_us + fold >= estimate.ort_us:
        return None
    try:
        return ensemble_sql(node, forest, state.call.model.outputs)
    except NotTranslatable:
        return None
