"""Protocol-buffer messages, ONNX models above all: by bytes, and by meaning.

The byte fingerprint is the deterministic serialisation. An ONNX model also gets
a *semantic* fingerprint that ignores the graph's and nodes' names and every doc
string: skl2onnx called without ``name=`` puts a fresh uuid into ``graph.name``,
so the same weights would otherwise differ on every replay. Tensor names stay:
they are the model's interface. An onnxruntime session made from a model's bytes
gets the semantic fingerprint of that model (and of its providers).
"""

from __future__ import annotations

from typing import Any

import xxhash

from nbgov.lineage.fingerprint.encode import enc_str
from nbgov.lineage.fingerprint.static import dict_reader, kind_name, library_class
from nbgov.lineage.fingerprint.walk import Walk


def message(walk: Walk, msg: Any) -> None:
    data = msg.SerializeToString(deterministic=True)
    walk.emit(b"M" + enc_str(kind_name(type(msg))))
    walk.spend(len(data))
    walk.emit(b"%x;" % len(data) + data)


def semantic_digest(model: Any) -> str | None:
    """xxh3-128 of an ONNX ModelProto without names and doc strings; None if not a model."""
    model_proto = library_class("onnx", "ModelProto")
    if model_proto is None:
        return None
    if type(model) is not model_proto:
        return _session_semantic(model, model_proto)
    stripped = model_proto()
    stripped.CopyFrom(model)
    stripped.doc_string = ""
    _strip_graph(stripped.graph)
    for function in stripped.functions:
        function.doc_string = ""
        for node in function.node:
            _strip_node(node)
    return xxhash.xxh3_128_hexdigest(stripped.SerializeToString(deterministic=True))


def _session_semantic(session: Any, model_proto: Any) -> str | None:
    """An onnxruntime session made from bytes: its model's semantic digest and its providers."""
    session_class = library_class("onnxruntime", "InferenceSession")
    if session_class is None or type(session) is not session_class:
        return None
    read, _ = dict_reader(session_class)
    state = read(session) if read is not None else None
    if type(state) is not dict:
        return None
    data = state.get("_model_bytes")
    if type(data) is not bytes:
        return None
    try:
        model = model_proto.FromString(data)
    except Exception:  # noqa: BLE001 - an ORT-format model, not an ONNX protobuf
        return None
    digest = semantic_digest(model)
    providers = repr((state.get("_providers"), state.get("_provider_options")))
    return xxhash.xxh3_128_hexdigest(f"{digest}\0{providers}".encode())


def _strip_graph(graph: Any) -> None:
    graph.name = ""
    graph.doc_string = ""
    for group in (graph.input, graph.output, graph.value_info):
        for value in group:
            value.doc_string = ""
    for tensor in graph.initializer:
        tensor.doc_string = ""
    for node in graph.node:
        _strip_node(node)


def _strip_node(node: Any) -> None:
    node.name = ""
    node.doc_string = ""
    for attribute in node.attribute:
        attribute.doc_string = ""
        if attribute.HasField("g"):
            _strip_graph(attribute.g)
        for subgraph in attribute.graphs:
            _strip_graph(subgraph)
