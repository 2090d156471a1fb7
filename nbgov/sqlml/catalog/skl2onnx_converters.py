"""Converters nbgov hands skl2onnx for one conversion (``custom_conversion_functions``;
nothing is registered globally), where skl2onnx's own would not give what scikit-learn
computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx


def faithful_trees() -> dict[type, Any]:
    """skl2onnx's tree converters, with the node attributes they get wrong fixed:

    * HistGradientBoosting: its NaN-routing flags come as numpy booleans, which onnx >= 1.19
      refuses in an INTS attribute, so no such model converts at all; one fitted with
      categorical features is refused (its category-set splits would become thresholds);
    * decision trees, random forests, extra trees: skl2onnx 1.20 sends NaN to the false
      branch everywhere, where scikit-learn sends it where each split learned to
      (``missing_go_to_left``: left is the true branch of ``x <= t``), so every row with a
      NaN could score differently.
    """
    from skl2onnx.common._registration import RegisteredConverter, get_converter
    from sklearn import ensemble, tree

    def wrap(alias: str, learned_nan_routing: bool) -> Any:
        converter = get_converter(alias)

        def convert(scope: Any, operator: Any, container: Any) -> None:
            _refuse_categorical_splits(operator.raw_operator)
            add_node = container.add_node
            trees = getattr(operator.raw_operator, "estimators_", [operator.raw_operator])

            def add_fixed(op_type: str, inputs: Any, outputs: Any, *args: Any, **attrs: Any) -> Any:
                attrs = {k: _ints_if_flags(v) for k, v in attrs.items()}
                if learned_nan_routing and op_type.startswith("TreeEnsemble"):
                    attrs = _with_learned_nan_routing(attrs, trees)
                return add_node(op_type, inputs, outputs, *args, **attrs)

            container.add_node = add_fixed
            try:
                converter(scope, operator, container)
            finally:
                del container.add_node  # the class's own method again

        return RegisteredConverter(convert, converter.get_allowed_options())

    learned = (
        tree.DecisionTreeClassifier, tree.DecisionTreeRegressor, tree.ExtraTreeClassifier, tree.ExtraTreeRegressor,
        ensemble.RandomForestClassifier, ensemble.RandomForestRegressor, ensemble.ExtraTreesClassifier, ensemble.ExtraTreesRegressor,
    )
    fixed = {kind: wrap(f"Sklearn{kind.__name__}", True) for kind in learned}
    for kind in (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor):
        fixed[kind] = wrap(f"Sklearn{kind.__name__}", False)
    return fixed


def _refuse_categorical_splits(model: Any) -> None:
    """A HistGradientBoosting model fitted with categorical features splits on sets of
    categories; skl2onnx 1.20 writes those splits as thresholds and the model scores
    differently (probabilities off by up to 0.64), so it is refused rather than converted."""
    flags = getattr(model, "is_categorical_", None)
    if flags is not None and bool(np.any(flags)):
        raise ValueError(
            f"{type(model).__name__} with categorical_features has no exact ONNX form (its category-set "
            "splits would become thresholds); set categorical_features=None"
        )


def _with_learned_nan_routing(attrs: dict[str, Any], trees: Any) -> dict[str, Any]:
    """``nodes_missing_value_tracks_true`` from each split's ``missing_go_to_left``."""
    needed = ("nodes_treeids", "nodes_nodeids", "nodes_modes")
    if any(name not in attrs for name in needed) or not all(hasattr(t, "tree_") for t in trees):
        return attrs
    if not all(hasattr(t.tree_, "missing_go_to_left") for t in trees):
        return attrs  # a scikit-learn without NaN support in trees
    routes = [t.tree_.missing_go_to_left for t in trees]
    tracks = [
        0 if _text(mode) == "LEAF" else int(routes[int(t)][int(n)])
        for t, n, mode in zip(attrs["nodes_treeids"], attrs["nodes_nodeids"], attrs["nodes_modes"])
    ]
    return {**attrs, "nodes_missing_value_tracks_true": tracks}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ints_if_flags(value: Any) -> Any:
    """A list of flags (numpy booleans among ints) as ints; any other value as it is."""
    if not isinstance(value, (list, tuple)) or not any(isinstance(v, (bool, np.bool_)) for v in value):
        return value
    if not all(isinstance(v, (bool, np.bool_, int, np.integer)) for v in value):
        return value
    return [int(v) for v in value]


def faithful_imputer(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer as scikit-learn computes it, where skl2onnx's differs or fails:

    * on doubles, ``Where(IsNaN(x), statistics, x)``: onnxruntime has no double Imputer
      kernel, and skl2onnx's writes the statistics as float32 where scikit-learn fills
      float64 (the pipeline reader reads this form back as an imputer);
    * on strings with a NaN/None marker (scikit-learn's ``most_frequent`` or ``constant``
      in front of a OneHotEncoder), an Identity: skl2onnx refuses it, and a missing string
      reaches a model as SQL NULL, whose row is NULL before any scoring, so no value the
      model sees is ever replaced.
    """
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    missing = operator.raw_operator.missing_values
    if isinstance(operator.inputs[0].type, StringTensorType) and not isinstance(missing, str):
        if missing is not None and not (isinstance(missing, float) and np.isnan(missing)):
            raise ValueError(f"a SimpleImputer on text with missing_values={missing!r} has no ONNX form")
        x = concatenate_variables(scope, operator.inputs, container)
        container.add_node("Identity", [x], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Identity"))
        return
    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        convert_sklearn_imputer(scope, operator, container)
        return
    imputer = operator.raw_operator
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    if getattr(imputer, "add_indicator", False) or not np.isfinite(statistics).all() or not isinstance(missing, float):
        raise ValueError("this SimpleImputer has no exact double form here (the float form is used)")
    x = concatenate_variables(scope, operator.inputs, container)
    values = scope.get_unique_variable_name("imputed")
    container.add_initializer(values, onnx.TensorProto.DOUBLE, [len(statistics)], statistics.tolist())
    mask = scope.get_unique_variable_name("missing")
    if np.isnan(missing):
        container.add_node("IsNaN", [x], [mask], name=scope.get_unique_operator_name("IsNaN"))
    else:
        marker = scope.get_unique_variable_name("marker")
        container.add_initializer(marker, onnx.TensorProto.DOUBLE, [1], [missing])
        container.add_node("Equal", [x, marker], [mask], name=scope.get_unique_operator_name("Equal"))
    container.add_node("Where", [mask, values, x], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Where"))


def double_binarizer(scope: Any, operator: Any, container: Any) -> None:
    """Binarizer on doubles as Cast to float, onnxruntime's Binarizer, Cast back: skl2onnx's
    double form (``Where(Less(x, t), 0, 1)``) gives 1 where x equals the threshold and for
    NaN, where scikit-learn gives 0 (``x > t``) and refuses NaN. onnxruntime has no double
    Binarizer; its float one is the form the float pipeline has always had."""
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.binariser import convert_sklearn_binarizer
    from skl2onnx.operator_converters.common import concatenate_variables

    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        convert_sklearn_binarizer(scope, operator, container)
        return
    x = concatenate_variables(scope, operator.inputs, container)
    narrow, binary = scope.get_unique_variable_name("binarizer_in"), scope.get_unique_variable_name("binarized")
    container.add_node("Cast", [x], [narrow], name=scope.get_unique_operator_name("Cast"), to=onnx.TensorProto.FLOAT)
    container.add_node(
        "Binarizer", [narrow], [binary], name=scope.get_unique_operator_name("Binarizer"), op_domain="ai.onnx.ml",
        threshold=float(operator.raw_operator.threshold),
    )
    container.add_node(
        "Cast", [binary], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Cast"), to=onnx.TensorProto.DOUBLE
    )
