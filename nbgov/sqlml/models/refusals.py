"""Values a model's featurizer refuses, said in the same words wherever they are found: by
the optimizer's SQL checks before scoring (``optimizer/checks.py``), or in the rows
onnxruntime failed on (``execution/scoring.py``). So a statement fails with the same
message with and without the optimizer, naming the input and what it holds, instead of
onnxruntime's node status.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from nbgov.sqlml.models.pipeline import Feature, NotAPipeline, OneHot, read_pipeline
from nbgov.sqlml.models.steps import fails_on_nan


_UNKNOWN = "holds a category the model's OneHotEncoder does not know"
_NAN = "which the model's Binarizer refuses"


def unknown_category(label: str, name: str, categories: tuple[str, ...]) -> str:
    """``label``: the call, as ``predict(m@1)``."""
    return f"{label}: input {name!r} {_UNKNOWN} (it refuses unknown categories); known: {', '.join(categories)}"


def nan_refused(label: str, name: str) -> str:
    return f"{label}: input {name!r} is NaN, {_NAN}"


def refusal_in(text: str) -> str | None:
    """The refusal an engine's error carries in ``text`` (the optimizer's SQL checks raise it
    with the engine's ``error()``), without the engine's prefix; None when there is none."""
    if _UNKNOWN not in text and _NAN not in text:
        return None
    starts = [at for at in (text.find("predict("), text.find("ML.PREDICT(")) if at >= 0]
    return text[min(starts):] if starts else None


def refused(payload: bytes, feeds: Mapping[str, np.ndarray], label: str) -> str | None:
    """The first value in ``feeds`` the model's featurizer refuses, said as above; None when
    the model is no featurizer nbgov reads, or no such value is there."""
    try:
        pipeline = read_pipeline(onnx.load_model_from_string(payload))
    except NotAPipeline:
        return None
    except Exception:  # a diagnosis after a failure must not fail itself
        return None
    for feature in pipeline.features:
        if not isinstance(feature, Feature):
            continue
        feed = feeds.get(feature.source.input)
        if feed is None:
            continue
        values = feed.reshape(len(feed), -1)[:, feature.source.column]
        encoder = feature.encoder
        if isinstance(encoder, OneHot) and encoder.strict:
            known = set(encoder.categories)
            if any(value not in known for value in values.tolist()):
                return unknown_category(label, feature.source.input, encoder.categories)
        elif encoder is None and fails_on_nan(feature.steps) and bool(np.isnan(values.astype(np.float64)).any()):
            return nan_refused(label, feature.source.input)
    return None
