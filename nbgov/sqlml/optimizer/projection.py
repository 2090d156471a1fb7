"""Model projection pushdown: a model that reads only the features its trees still test.

After pruning, features no tree tests any more (including ones the query fixed
to a constant) need not be read, cast or passed.  The plan model's 2-D input
shrinks to the used columns, renumbered in their original order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import onnx

from nbgov.sqlml.models.forest import Forest, write_forest
from nbgov.sqlml.models.treegraph import TreeGraph

if TYPE_CHECKING:
    from nbgov.sqlml.optimizer.state import PlanState


@dataclass(frozen=True)
class Projected:
    """The rebuilt model and which original feature columns it reads, in order."""

    model: onnx.ModelProto
    kept: tuple[int, ...]


def rule(state: PlanState) -> PlanState:
    """Rule 3: read only the features the (pruned) trees still test (``state.kept``)."""
    if state.trees is None:
        return state
    forests = state.pruning.forests if state.pruning is not None else state.trees.forests
    kept = used_features(forests)
    state = replace(state, kept=kept)
    columns = state.bound.columns
    dropped = state.dropped()
    state = state.with_stats(inputs_before=len(columns), inputs_after=len(kept))
    if not dropped:
        return state
    if state.pipeline is not None:  # a lowered pipeline's columns, by what they compute
        names = ", ".join(state.pipeline.names[j] for j in dropped)
        return state.note(f"dropped {len(dropped)} of {len(columns)} lowered columns no kept test reads ({names})")
    names = ", ".join(columns[j].sql(dialect="duckdb") for j in dropped)
    return state.note(f"dropped {len(dropped)} of {len(columns)} unused inputs ({names})")


def used_features(forests: Sequence[Forest]) -> tuple[int, ...]:
    """Features some tree tests, in order; at least one, so onnxruntime still learns the
    batch size."""
    used: set[int] = set()
    for forest in forests:
        used |= forest.used_features()
    return tuple(sorted(used)) or (0,)


def rebuild(
    tree_graph: TreeGraph, forests: list[Forest], project: bool = True
) -> Projected:
    """A copy of the model with ``forests`` in place of its trees, reading only used features.

    At least one column is kept so onnxruntime still learns the batch size.
    """
    if project:
        kept = used_features(forests)
    else:
        kept = tuple(range(tree_graph.n_features))
    remap = {old: new for new, old in enumerate(kept)}
    model = onnx.ModelProto()
    model.CopyFrom(tree_graph.model)
    graph = model.graph
    for pos, forest in zip(tree_graph.tree_nodes, forests):
        graph.node[pos].CopyFrom(
            write_forest(tree_graph.model.graph.node[pos], forest, remap)
        )
    if len(kept) != tree_graph.n_features:
        for value_info in graph.input:
            if value_info.name == tree_graph.input_name:
                value_info.type.tensor_type.shape.dim[1].dim_value = len(kept)
    return Projected(model, kept)
