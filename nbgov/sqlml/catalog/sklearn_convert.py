"""Convert a fitted scikit-learn estimator or pipeline to ONNX with skl2onnx.

Numeric models get one 2-D float input named ``input`` and their
``feature_names_in_`` stored in metadata (so ``predict(m, *)`` can bind by name);
pipelines starting with a ColumnTransformer get one ``[N, 1]`` input per column it
reads (string for columns that feed an encoder with string categories; a column it
drops is no input). Classifiers are
converted without ZipMap so probabilities come back as a plain float matrix.

A pipeline ending in trees has its featurizers converted in double precision and the
trees in float, joined by a Cast: that is what scikit-learn computes (transformers in
float64, trees on float32 features), so a row near a split scores as it does in
scikit-learn. Converted whole in float, a StandardScaler rounds in float32 and about one
row in a thousand crosses a split it does not cross in scikit-learn (its probability off
by up to 0.2). A linear head is continuous: float32 moves its score by about 1e-7
relative, so it keeps skl2onnx's float form.

Trees route NaN where scikit-learn learned to (skl2onnx 1.20 sends it to the false branch
of every split), HistGradientBoosting converts at all, and OrdinalEncoder and OneHotEncoder
refuse (``handle_unknown='error'``) and encode the values scikit-learn does, numbers
compared as numbers (``skl2onnx_converters.py``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import compose, helper

from nbgov.errors import InvalidModelError
from nbgov.sqlml.catalog.modelfile import FEATURE_NAMES_KEY
from nbgov.sqlml.catalog.skl2onnx_converters import (
    double_binarizer,
    exact_encoders,
    faithful_imputer,
    flat_votes,
    faithful_trees,
    later_ml_opsets,
)
from nbgov.sqlml.models.pipeline import NotAPipeline, read_pipeline
from nbgov.sqlml.models.runtime import open_session
from nbgov.sqlml.optimizer.lowering import NotLowerable, lower_trees


def convert(estimator: Any, *, label: str) -> onnx.ModelProto:
    try:
        import skl2onnx  # noqa: F401
    except ImportError:
        raise InvalidModelError(
            f"{label} is a scikit-learn model; converting it needs the 'skl2onnx' package "
            "(pip install skl2onnx), or pass ONNX bytes instead"
        ) from None
    _require_fitted(estimator, label)
    _refuse_text_vectorizers(estimator, label)
    names = _feature_names(estimator)
    # A fixed graph name: skl2onnx otherwise puts a random uuid in it, so the same
    # estimator would give new bytes (a new model version) on every run or replay.
    graph_name = f"ONNX({type(estimator).__name__})"
    exact = _featurizers_in_double(estimator, names, graph_name)
    if exact is not None and _lowerable(exact):
        proto = exact
    else:
        try:
            proto = _convert(estimator, _initial_types(estimator, names, label, "float"), graph_name)
        except Exception as exc:
            if exact is None:
                message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                raise InvalidModelError(f"skl2onnx cannot convert {label}: {message}") from None
            proto = exact
        if exact is not None and not _lowerable(proto):
            proto = exact  # the float form buys the optimizer nothing and scores off scikit-learn
    if names is not None:
        _restore_input_names(proto, names)
    _drop_unread_inputs(proto)
    if names is not None and len(proto.graph.input) == 1:
        entry = proto.metadata_props.add()
        entry.key = FEATURE_NAMES_KEY
        entry.value = json.dumps(list(names))
    return proto


def _initial_types(estimator: Any, names: tuple[str, ...] | None, label: str, numeric: str) -> list[tuple[str, Any]]:
    """One ``[N, 1]`` input per column in front of a ColumnTransformer, else one 2-D ``input``."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    number = DoubleTensorType if numeric == "double" else FloatTensorType
    transformer = _column_transformer(estimator)
    if transformer is not None and names is not None:
        strings = _string_columns(transformer, names)
        return [(name, StringTensorType([None, 1]) if name in strings else number([None, 1])) for name in names]
    count = getattr(estimator, "n_features_in_", None)
    if count is None:
        raise InvalidModelError(f"{label}: cannot tell how many features the estimator takes")
    return [("input", number([None, int(count)]))]


def _convert(estimator: Any, initial: list[tuple[str, Any]], graph_name: str, custom: dict[type, Any] | None = None) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from sklearn.impute import SimpleImputer

    custom = {**faithful_trees(), SimpleImputer: faithful_imputer, **exact_encoders(), **flat_votes(), **(custom or {})}
    try:
        model = convert_sklearn(
            estimator, name=graph_name, initial_types=initial, options=_zipmap_off(estimator),
            custom_conversion_functions=custom,
        )
    except Exception:  # regressors and transformers reject the zipmap option
        model = convert_sklearn(estimator, name=graph_name, initial_types=initial, custom_conversion_functions=custom)
    later_ml_opsets(model)
    return model


def _zipmap_off(estimator: Any) -> dict[int, dict[str, Any]]:
    """skl2onnx options: probabilities as a tensor (no ZipMap) for the estimator and every
    classifier step of its Pipelines, by identity. skl2onnx's Pipeline parser gives each classifier step
    not named here ``zipmap=True``, which LinearSVC's converter does not take (a Pipeline
    ending in LinearSVC failed to convert): LinearSVC, which has no ZipMap, is named with
    no option, as skl2onnx parses it on its own."""
    from sklearn.base import is_classifier
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    options: dict[int, dict[str, Any]] = {}

    def visit(step: Any) -> None:
        if isinstance(step, Pipeline):  # (a Pipeline's own options go to its last step)
            for _, inner in step.steps:
                visit(inner)
        elif isinstance(step, LinearSVC):
            options[id(step)] = {}
        elif is_classifier(step):
            options[id(step)] = {"zipmap": False}

    visit(estimator)
    return options


def _featurizers_in_double(estimator: Any, names: tuple[str, ...] | None, graph_name: str) -> onnx.ModelProto | None:
    """A Pipeline as featurizers in double, Cast to float, trees in float; None when it is
    not featurizers in front of trees or skl2onnx or onnxruntime cannot take it that way."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
        return None
    final = estimator.steps[-1][1]
    if isinstance(final, str) or final is None or not hasattr(final, "n_features_in_"):
        return None
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import Binarizer

    try:
        head = _convert(final, _initial_types(final, None, "", "float"), "estimator")
        if not any(node.op_type.startswith("TreeEnsemble") for node in head.graph.node):
            return None  # before converting the featurizers: a linear head keeps the float form
        featurizers = _convert(
            estimator[:-1], _initial_types(estimator, names, "", "double"), "featurizers",
            {SimpleImputer: faithful_imputer, Binarizer: double_binarizer},
        )
    except Exception:
        return None
    outputs = featurizers.graph.output
    if len(outputs) != 1 or outputs[0].type.tensor_type.elem_type != onnx.TensorProto.DOUBLE:
        return None
    model = _joined(featurizers, head, graph_name)
    try:  # onnxruntime may lack a double kernel for a featurizer
        open_session(model.SerializeToString())
    except Exception:
        return None
    return model


def _lowerable(model: onnx.ModelProto) -> bool:
    """Whether the optimizer lowers the model's featurizers to SQL in front of its trees. The
    float form is kept only when it alone is lowered (it rounds a scaler as float32); a
    pipeline the optimizer keeps whole in ONNX either way (infrequent categories, a
    Normalizer) keeps its double form, which scores as scikit-learn does."""
    try:
        lower_trees(read_pipeline(model))
    except (NotAPipeline, NotLowerable):
        return False
    return True


def _joined(featurizers: onnx.ModelProto, head: onnx.ModelProto, graph_name: str) -> onnx.ModelProto:
    """One model: the featurizers' double output cast to float into the head's input."""
    featurizers = compose.add_prefix(featurizers, "featurizers_", rename_inputs=False)
    head = compose.add_prefix(head, "estimator_", rename_outputs=False)
    cast = helper.make_node(
        "Cast", [featurizers.graph.output[0].name], [head.graph.input[0].name], name="featurizers_to_float", to=onnx.TensorProto.FLOAT
    )
    graph = helper.make_graph(
        [*featurizers.graph.node, cast, *head.graph.node],
        graph_name,
        list(featurizers.graph.input),
        list(head.graph.output),
        initializer=[*featurizers.graph.initializer, *head.graph.initializer],
    )
    opsets: dict[str, int] = {}
    for part in (featurizers, head):
        for entry in part.opset_import:
            opsets[entry.domain] = max(opsets.get(entry.domain, 0), entry.version)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in sorted(opsets.items())],
        producer_name=head.producer_name,
        producer_version=head.producer_version,
    )
    model.ir_version = max(featurizers.ir_version, head.ir_version)
    return model


def _restore_input_names(model: onnx.ModelProto, names: tuple[str, ...]) -> None:
    """Give each per-column input its DataFrame column's name. skl2onnx makes names valid
    identifiers ("capital-gain" becomes capital_gain, and a real capital_gain column then
    capital_gain1), so ``predict(m, *)`` could not bind such a column, or bound the wrong
    one. Inputs are in the order of the columns."""
    graph = model.graph
    if len(graph.input) != len(names) or len(names) < 2:
        return
    renames = {value.name: name for value, name in zip(graph.input, names) if value.name != name}
    if not renames:
        return
    taken = {out for node in graph.node for out in node.output} | {init.name for init in graph.initializer}
    if taken & set(renames.values()):
        return  # a column named like a value inside the graph: keep skl2onnx's names
    for value in graph.input:
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in renames:
                node.input[k] = renames[name]
    for output in graph.output:
        output.name = renames.get(output.name, output.name)


def _drop_unread_inputs(model: onnx.ModelProto) -> None:
    """Remove the graph inputs no node reads: skl2onnx declares every column a
    ColumnTransformer was fitted on, also those it drops (remainder='drop'), typed as
    numbers, so a dropped text column could not be bound at all and NULL in a dropped
    column made the row's prediction NULL, where scikit-learn ignores both."""
    graph = model.graph
    if len(graph.input) < 2:
        return
    read = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
    kept = [value for value in graph.input if value.name in read]
    if kept and len(kept) < len(graph.input):
        del graph.input[:]
        graph.input.extend(kept)


def _require_fitted(estimator: Any, label: str) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise InvalidModelError(f"{label} is an unfitted {type(estimator).__name__}; fit it first") from None
    except TypeError:
        raise InvalidModelError(f"{label} is not a scikit-learn estimator") from None


def _refuse_text_vectorizers(estimator: Any, label: str) -> None:
    """Text vectorizers are refused: skl2onnx's tokenizer does not split text as scikit-learn's
    does (punctuation, apostrophes, accents: 943 of 2,005 reviews scored differently in a
    trial) and its lower-casing needs a locale a machine may lack, so the scores could not
    be trusted."""
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer

    found = next((part for part in _parts(estimator)
                  if isinstance(part, (CountVectorizer, HashingVectorizer, TfidfVectorizer))), None)
    if found is not None:
        raise InvalidModelError(
            f"{label} holds a {type(found).__name__}: converted to ONNX it does not tokenize text as "
            "scikit-learn does, so nbgov cannot score it faithfully; score text models in Python"
        )


def _parts(estimator: Any) -> list[Any]:
    """The estimator and every step inside it: Pipeline steps, ColumnTransformer and
    FeatureUnion transformers, ensembles' estimators, recursively."""
    found = [estimator]
    inner = [*(getattr(estimator, "steps", None) or []), *(getattr(estimator, "transformers_", None) or []),
             *(getattr(estimator, "transformer_list", None) or []), *(getattr(estimator, "estimators", None) or [])]
    for entry in inner:
        part = entry[1] if isinstance(entry, tuple) else entry
        if not isinstance(part, str) and part is not None:
            found.extend(_parts(part))
    return found


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
    if isinstance(estimator, Pipeline):  # the columns go to its first step, maybe a Pipeline too
        return _column_transformer(estimator.steps[0][1])
    return None


def _string_columns(transformer: Any, names: tuple[str, ...]) -> set[str]:
    """Columns routed to a transformer (or a pipeline of them) whose fitted categories are strings."""
    strings: set[str] = set()
    for _name, step, columns in transformer.transformers_:
        if isinstance(step, str):
            continue
        # the first step with categories: an encoder, maybe behind an imputer of its text
        chain = [part for _, part in step.steps] if hasattr(step, "steps") else [step]
        categories = next((c for c in (getattr(part, "categories_", None) for part in chain) if c is not None), None)
        if categories is None:
            continue
        cols = [columns] if isinstance(columns, (str, int)) else list(columns)
        if cols and all(isinstance(c, (bool, np.bool_)) for c in cols):  # a boolean mask
            cols = [name for name, keep in zip(names, cols) if keep]
        for col, cats in zip(cols, categories):
            if np.asarray(cats).dtype.kind in ("O", "U", "S"):
                strings.add(names[col] if isinstance(col, (int, np.integer)) else str(col))
    return strings
