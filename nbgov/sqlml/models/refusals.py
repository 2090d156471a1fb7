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

from nbgov.sqlml.models.pipeline import Feature, NotAPipeline, read_pipeline
from nbgov.sqlml.models.steps import fails_on_nan


_UNKNOWN = "does not know (it refuses unknown categories)"
_NAN = "which the model's Binarizer refuses"


def unknown_category(label: str, name: str, encoder: str, categories: tuple[str, ...]) -> str:
    """``label``: the call, as ``predict(m@1)``; ``encoder``: as scikit-learn names it."""
    return f"{label}: input {name!r} holds a category the model's {encoder} {_UNKNOWN}; known: {', '.join(categories)}"


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
    for vocabulary in pipeline.vocabularies:
        if vocabulary.refuses(_column(feeds, vocabulary.source.input, vocabulary.source.column)):
            return unknown_category(label, vocabulary.source.input, vocabulary.encoder, vocabulary.described())
    for feature in pipeline.features:
        if not isinstance(feature, Feature) or feature.encoder is not None or not fails_on_nan(feature.steps):
            continue
        values = _column(feeds, feature.source.input, feature.source.column)
        if bool(np.isnan(values.astype(np.float64)).any()):
            return nan_refused(label, feature.source.input)
    return None


def _column(feeds: Mapping[str, np.ndarray], name: str, column: int) -> np.ndarray:
    """Column ``column`` of the feed of input ``name`` (empty when it was not fed)."""
    feed = feeds.get(name)
    if feed is None:
        return np.empty(0)
    return feed.reshape(len(feed), -1)[:, column]
