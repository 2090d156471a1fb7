"""Convert a fitted scikit-learn estimator or pipeline to ONNX with skl2onnx.

Numeric models get one 2-D float input named ``input`` and their
``feature_names_in_`` stored in metadata (so ``predict(m, *)`` can bind by name);
pipelines starting with a ColumnTransformer get one ``[N, 1]`` input per column
(string for columns that feed an encoder with string categories). Classifiers are
converted without ZipMap so probabilities come back as a plain float matrix.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx

from nbgov.errors import InvalidModelError
from nbgov.sqlml.catalog.modelfile import FEATURE_NAMES_KEY


def convert(estimator: Any, *, label: str) -> onnx.ModelProto:
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    except ImportError:
        raise InvalidModelError(
            f"{label} is a scikit-learn model; converting it needs the 'skl2onnx' package "
            "(pip install skl2onnx), or pass ONNX bytes instead"
        ) from None
    _require_fitted(estimator, label)
    names = _feature_names(estimator)
    transformer = _column_transformer(estimator)
    if transformer is not None and names is not None:
        strings = _string_columns(transformer, names)
        initial: list[tuple[str, Any]] = [
            (name, StringTensorType([None, 1]) if name in strings else FloatTensorType([None, 1]))
            for name in names
        ]
    else:
        count = getattr(estimator, "n_features_in_", None)
        if count is None:
            raise InvalidModelError(f"{label}: cannot tell how many features the estimator takes")
        initial = [("input", FloatTensorType([None, int(count)]))]
    # A fixed graph name: skl2onnx otherwise puts a random uuid in it, so the same
    # estimator would give new bytes (a new model version) on every run or replay.
    graph_name = f"ONNX({type(estimator).__name__})"
    try:
        proto = convert_sklearn(estimator, name=graph_name, initial_types=initial, options={"zipmap": False})
    except Exception as exc:
        try:  # regressors and transformers reject the zipmap option
            proto = convert_sklearn(estimator, name=graph_name, initial_types=initial)
        except Exception:
            message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise InvalidModelError(f"skl2onnx cannot convert {label}: {message}") from None
    if names is not None and len(initial) == 1:
        entry = proto.metadata_props.add()
        entry.key = FEATURE_NAMES_KEY
        entry.value = json.dumps(list(names))
    return proto


def _require_fitted(estimator: Any, label: str) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise InvalidModelError(f"{label} is an unfitted {type(estimator).__name__}; fit it first") from None
    except TypeError:
        raise InvalidModelError(f"{label} is not a scikit-learn estimator") from None


def _feature_names(estimator: Any) -> tuple[str, ...] | None:
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return None
    return tuple(str(n) for n in names)


def _column_transformer(estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, ColumnTransformer):
        return estimator
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[0][1], ColumnTransformer):
        return estimator.steps[0][1]
    return None


def _string_columns(transformer: Any, names: tuple[str, ...]) -> set[str]:
    """Columns routed to a transformer whose fitted categories are strings."""
    strings: set[str] = set()
    for _name, step, columns in transformer.transformers_:
        if isinstance(step, str):
            continue
        first = step.steps[0][1] if hasattr(step, "steps") else step
        categories = getattr(first, "categories_", None)
        if categories is None:
            continue
        cols = [columns] if isinstance(columns, (str, int)) else list(columns)
        if cols and all(isinstance(c, (bool, np.bool_)) for c in cols):  # a boolean mask
            cols = [name for name, keep in zip(names, cols) if keep]
        for col, cats in zip(cols, categories):
            if np.asarray(cats).dtype.kind in ("O", "U", "S"):
                strings.add(names[col] if isinstance(col, (int, np.integer)) else str(col))
    return strings
