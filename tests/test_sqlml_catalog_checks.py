"""The signature a stored model version is checked against without a session: what the
graph declares is what onnxruntime reports."""

from __future__ import annotations

import onnx
import pytest

from nbgov.sqlml.catalog.modelfile import _spec, from_bytes, load_object
from nbgov.sqlml.models import runtime
from nbgov.sqlml.models.runtime import declared_signature

def _session_signature(payload: bytes):
    session = runtime.open_session(payload)
    return tuple(_spec(a) for a in session.get_inputs()), tuple(_spec(a) for a in session.get_outputs())


@pytest.mark.parametrize("kind", ["pipeline_mixed", "rf_clf", "gb_clf", "logreg", "gb_reg", "linreg", "mlp"])
def test_the_graph_declares_the_signature_a_session_reports(onnx_models, kind):
    """What the catalog checks a stored row against without a session is what onnxruntime
    reports: skl2onnx's mixed pipeline (string and float inputs, one-hot, scaler, ZipMap),
    classifiers with ZipMap, regressors; and what CREATE MODEL stores for them."""
    payload = onnx_models.get(kind).onnx
    proto = onnx.load_model_from_string(payload)
    if onnx_models.get(kind).is_classifier:
        assert any(node.op_type == "ZipMap" for node in proto.graph.node)  # the default conversion keeps it
    declared = declared_signature(proto)
    assert declared == _session_signature(payload)
    loaded = from_bytes(payload, label=kind)
    assert declared == (loaded.inputs, loaded.outputs)


@pytest.mark.parametrize("kind", ["pipeline_mixed", "rf_clf", "gb_reg"])
def test_the_graph_declares_the_signature_of_nbgovs_own_conversion(onnx_models, kind):
    """The same for a fitted estimator CREATE MODEL converts itself (ZipMap off, nbgov's
    converters)."""
    loaded = load_object(onnx_models.get(kind).estimator, label=kind)
    declared = declared_signature(onnx.load_model_from_string(loaded.onnx_bytes))
    assert declared == _session_signature(loaded.onnx_bytes) == (loaded.inputs, loaded.outputs)


