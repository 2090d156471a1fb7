"""onnxruntime sessions on model bytes, for scoring and for the optimizer's model analysis.

ZipMap outputs (scikit-learn classifiers converted with default options return a list
of dicts per row) are rewired at session creation to return the underlying float
probability matrix, i.e. a ``LIST<FLOAT>`` in class order.

``declared_signature`` reads the inputs and outputs such a session declares from the
graph itself, with no session: what the catalog checks a stored row against when it
loads a version nobody has scored yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from nbgov.sqlml.models.onnxtypes import ort_type_name
from nbgov.sqlml.plan import TensorSpec


class RunsLikeOnnxruntime(Protocol):
    """What scoring needs of a session: an onnxruntime session, or nbgov's compiled trees."""

    def run(
        self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray], run_options: object = None
    ) -> list[np.ndarray]: ...


def strip_zipmap(payload: bytes) -> bytes:
    """Replace each ZipMap graph output by the float matrix that feeds it."""
    proto = onnx.load_model_from_string(payload)
    graph = proto.graph
    outputs = {o.name: o for o in graph.output}
    zipmaps = _zipmaps(graph)
    if not zipmaps:
        return payload
    for node in zipmaps:
        name = node.output[0]
        position = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(position, helper.make_node("Identity", [node.input[0]], [name]))
        replacement = helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, [None, _classes(node) or None]
        )
        index = [o.name for o in graph.output].index(name)
        graph.output.remove(outputs[name])
        graph.output.insert(index, replacement)
    return proto.SerializeToString()


def _zipmaps(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The ZipMap nodes that produce a graph output (what ``strip_zipmap`` replaces)."""
    outputs = {o.name for o in graph.output}
    return [n for n in graph.node if n.op_type == "ZipMap" and n.output[0] in outputs]


def _classes(zipmap: onnx.NodeProto) -> int:
    """How many classes a ZipMap names (0: none named)."""
    for attr in zipmap.attribute:
        if attr.name in ("classlabels_int64s", "classlabels_strings"):
            return len(attr.ints) or len(attr.strings)
    return 0


def declared_signature(proto: onnx.ModelProto) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The (inputs, outputs) a session from ``open_session`` declares for this model, read
    from the graph with no session: the graph inputs that are not initializers, the graph
    outputs with each ZipMap's as the float matrix ``strip_zipmap`` gives. Types are named
    as onnxruntime names them (``float``, ``int64``; ``seq(...)``, ``map(...)`` otherwise);
    a dimension without a fixed size is None. Shapes are the declared ones: onnxruntime may
    know an output's size the graph leaves open, and returns another width than declared
    for some skl2onnx models (``modelfile._widths_as_run``), so the outputs it reports can
    be more specific than these, never different where these are fixed."""
    graph = proto.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = tuple(_declared(value) for value in graph.input if value.name not in initializers)
    zipmaps = {node.output[0]: node for node in _zipmaps(graph)}
    outputs = tuple(
        TensorSpec(value.name, "float", (None, _classes(zipmaps[value.name]) or None))
        if value.name in zipmaps
        else _declared(value)
        for value in graph.output
    )
    return inputs, outputs


def _declared(value: onnx.ValueInfoProto) -> TensorSpec:
    kind = value.type
    shape: tuple[int | None, ...] = ()
    if kind.HasField("tensor_type") and kind.tensor_type.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in kind.tensor_type.shape.dim)
    return TensorSpec(name=value.name, elem_type=ort_type_name(_type_name(kind)), shape=shape)


def _type_name(kind: onnx.TypeProto) -> str:
    """A type as onnxruntime's ``NodeArg.type`` writes it: ``tensor(float)``, ``seq(tensor(int64))``,
    ``map(string,tensor(float))``."""
    which = kind.WhichOneof("value")
    if which == "tensor_type":
        return f"tensor({_elem_name(kind.tensor_type.elem_type)})"
    if which == "sequence_type":
        return f"seq({_type_name(kind.sequence_type.elem_type)})"
    if which == "map_type":
        return f"map({_elem_name(kind.map_type.key_type)},{_type_name(kind.map_type.value_type)})"
    if which == "optional_type":
        return f"optional({_type_name(kind.optional_type.elem_type)})"
    return str(which)


def _elem_name(elem_type: int) -> str:
    return str(onnx.TensorProto.DataType.Name(elem_type)).lower()


def open_session(payload: bytes) -> ort.InferenceSession:
    """One single-threaded session; parallelism comes from running batches on a pool."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # a failed run is raised as nbgov's one line; onnxruntime's own log would repeat it on stderr
    return ort.InferenceSession(
        strip_zipmap(payload), sess_options=options, providers=["CPUExecutionProvider"]
    )
