"""Where tree ensembles sit in an ONNX graph, and whether their features are raw columns.

Pruning and projection are only valid when each tree reads feature i of one
2-D graph input straight from column i (no scaler or encoder in between): then
a constraint on the SQL column is a constraint on the tree's feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from nbgov.sqlml.models.forest import TREE_OPS, Forest, read_forest

_ELEM = {onnx.TensorProto.FLOAT: "float", onnx.TensorProto.DOUBLE: "double"}


@dataclass
class TreeGraph:
    """A model whose only use of its single 2-D input is by tree-ensemble nodes."""

    model: onnx.ModelProto
    input_name: str
    elem_type: str
    n_features: int
    tree_nodes: list[int]  # positions in graph.node
    forests: list[Forest]

    @property
    def node_count(self) -> int:
        return sum(f.node_count for f in self.forests)

    @property
    def tree_count(self) -> int:
        return sum(len(f.trees) for f in self.forests)

    def used_features(self) -> set[int]:
        used: set[int] = set()
        for forest in self.forests:
            used |= forest.used_features()
        return used


def analyze(model: onnx.ModelProto) -> TreeGraph | None:
    """The tree-ensemble view of ``model``, or None when pruning does not apply."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        return None
    the_input = inputs[0]
    ttype = the_input.type.tensor_type
    elem = _ELEM.get(ttype.elem_type)
    dims = ttype.shape.dim
    if elem is None or len(dims) != 2 or not dims[1].HasField("dim_value"):
        return None
    consumers = [i for i, n in enumerate(graph.node) if the_input.name in n.input]
    if not consumers:
        return None
    if any(
        graph.node[i].op_type not in TREE_OPS or graph.node[i].domain != "ai.onnx.ml"
        for i in consumers
    ):
        return None
    if any(list(graph.node[i].input) != [the_input.name] for i in consumers):
        return None
    if any(
        n.op_type in TREE_OPS for j, n in enumerate(graph.node) if j not in consumers
    ):
        return None
    forests = [read_forest(graph.node[i]) for i in consumers]
    return TreeGraph(model, the_input.name, elem, dims[1].dim_value, consumers, forests)
