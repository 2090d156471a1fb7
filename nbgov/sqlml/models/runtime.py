"""onnxruntime sessions on model bytes, for scoring and for the optimizer's model analysis.

ZipMap outputs (scikit-learn classifiers converted with default options return a list
of dicts per row) are rewired at session creation to return the underlying float
probability matrix, i.e. a ``LIST<FLOAT>`` in class order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper


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
    zipmaps = [n for n in graph.node if n.op_type == "ZipMap" and n.output[0] in outputs]
    if not zipmaps:
        return payload
    for node in zipmaps:
        classes = 0
        for attr in node.attribute:
            if attr.name in ("classlabels_int64s", "classlabels_strings"):
                classes = len(attr.ints) or len(attr.strings)
        name = node.output[0]
        position = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(position, helper.make_node("Identity", [node.input[0]], [name]))
        replacement = helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, [None, classes or None]
        )
        index = [o.name for o in graph.output].index(name)
        graph.output.remove(outputs[name])
        graph.output.insert(index, replacement)
    return proto.SerializeToString()


def open_session(payload: bytes) -> ort.InferenceSession:
    """One single-threaded session; parallelism comes from running batches on a pool."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # a failed run is raised as nbgov's one line; onnxruntime's own log would repeat it on stderr
    return ort.InferenceSession(
        strip_zipmap(payload), sess_options=options, providers=["CPUExecutionProvider"]
    )
