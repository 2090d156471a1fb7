"""Where the tree ensemble sits in a model graph, and what runs after it.

The compiled kernel replaces exactly one tree-ensemble node that reads a graph input
directly. Converters put a little after it -- a Cast of the label, an Identity
(ZipMap, once stripped), a Mul by 1 -- which keeps running in onnxruntime as a small
"suffix" model fed with the kernel's outputs; Identity-only tails are resolved here
without onnxruntime at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import helper

from nbgov.sqlml.execution.compiled.ensemble import NoTreeEnsemble, NotCompilable
from nbgov.sqlml.models.forest import TREE_OPS

_VALUE_TYPES = {onnx.TensorProto.FLOAT: "float", onnx.TensorProto.DOUBLE: "double"}


@dataclass(frozen=True)
class GraphSplit:
    """The ensemble node and how the graph's outputs are obtained from its outputs."""

    model: onnx.ModelProto
    node: onnx.NodeProto
    input_name: str
    value_type: str
    n_features: int
    aliases: dict[str, str]  # graph output -> ensemble output it equals
    suffix: bytes | None = field(default=None, repr=False)  # model computing the other graph outputs
    suffix_inputs: tuple[str, ...] = ()  # its inputs: ensemble outputs and graph inputs
    suffix_outputs: tuple[str, ...] = ()

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.model.graph.output)


def split_graph(model: onnx.ModelProto) -> GraphSplit:
    """Find the one tree ensemble reading a float/double graph input; raise NotCompilable."""
    graph = model.graph
    trees = [n for n in graph.node if n.op_type in TREE_OPS and n.domain == "ai.onnx.ml"]
    if not trees:
        raise NoTreeEnsemble("no tree ensemble")
    if len(trees) != 1:
        raise NotCompilable(f"{len(trees)} tree-ensemble nodes")
    node = trees[0]
    initializers = {t.name for t in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in initializers}
    source = inputs.get(node.input[0])
    if source is None:
        raise NotCompilable("the trees read a computed tensor, not a model input")
    tensor = source.type.tensor_type
    value_type = _VALUE_TYPES.get(tensor.elem_type)
    dims = tensor.shape.dim
    if value_type is None:
        raise NotCompilable(f"the trees read {onnx.TensorProto.DataType.Name(tensor.elem_type).lower()} input")
    if len(dims) != 2 or not dims[1].HasField("dim_value"):
        raise NotCompilable("the trees' input is not a [N, k] matrix of known width")
    others = [n for n in graph.node if n is not node]
    if any(node.input[0] == out for n in others for out in n.output):
        raise NotCompilable("the trees' input is also computed in the graph")
    produced = [o for o in node.output if o]
    aliases = _aliases(others, produced)
    outputs = [o.name for o in graph.output]
    if all(name in aliases for name in outputs):
        return GraphSplit(model, node, source.name, value_type, dims[1].dim_value, {o: aliases[o] for o in outputs})
    direct = {o: o for o in outputs if o in produced}
    suffix, suffix_inputs, suffix_outputs = _suffix(model, node, others, [o for o in outputs if o not in direct])
    return GraphSplit(
        model, node, source.name, value_type, dims[1].dim_value, direct, suffix, suffix_inputs, suffix_outputs
    )


def _aliases(others: list[onnx.NodeProto], produced: list[str]) -> dict[str, str]:
    """Tensors equal to an ensemble output through Identity nodes (every other node must
    be one of those for the tail to be resolved without onnxruntime)."""
    aliases = {name: name for name in produced}
    for node in others:
        if node.op_type != "Identity" or node.domain not in ("", "ai.onnx") or node.input[0] not in aliases:
            return {name: name for name in produced}
        aliases[node.output[0]] = aliases[node.input[0]]
    return aliases


def _suffix(
    model: onnx.ModelProto, node: onnx.NodeProto, others: list[onnx.NodeProto], outputs: list[str]
) -> tuple[bytes, tuple[str, ...], tuple[str, ...]]:
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    produced = {out for n in others for out in n.output}
    needed = [name for n in others for name in n.input if name and name not in produced and name not in initializers]
    value_infos = {v.name: v for v in [*graph.input, *graph.value_info, *graph.output]}
    inputs = []
    for name in dict.fromkeys(needed):
        if name in node.output:
            inputs.append(_ensemble_output_info(model, node, name))
        elif name in value_infos:
            inputs.append(value_infos[name])
        else:
            raise NotCompilable(f"cannot type the tensor {name!r} the rest of the graph reads")
    used = {name for n in others for name in n.input}
    suffix_graph = helper.make_graph(
        others,
        f"{graph.name}_after_trees",
        inputs,
        [o for o in graph.output if o.name in outputs],
        initializer=[t for name, t in initializers.items() if name in used],
    )
    suffix = helper.make_model(suffix_graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return suffix.SerializeToString(), tuple(i.name for i in inputs), tuple(outputs)


def _ensemble_output_info(model: onnx.ModelProto, node: onnx.NodeProto, name: str) -> onnx.ValueInfoProto:
    """The type of a tree node's output: scores [N, k] float, or labels [N]."""
    position = list(node.output).index(name)
    if node.op_type == "TreeEnsembleClassifier" and position == 0:
        strings = any(a.name == "classlabels_strings" and a.strings for a in node.attribute)
        return helper.make_tensor_value_info(name, onnx.TensorProto.STRING if strings else onnx.TensorProto.INT64, [None])
    elem = onnx.TensorProto.FLOAT
    if node.op_type == "TreeEnsemble":
        source = next(i for i in model.graph.input if i.name == node.input[0])
        elem = source.type.tensor_type.elem_type
    return helper.make_tensor_value_info(name, elem, [None, None])
