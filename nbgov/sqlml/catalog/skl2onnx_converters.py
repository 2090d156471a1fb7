"""Converters nbgov hands skl2onnx for one conversion (``custom_conversion_functions``;
nothing is registered globally), where skl2onnx's own would not give what scikit-learn
computes.
"""

from __future__ import annotations

import copy
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


def flat_votes() -> dict[type, Any]:
    """skl2onnx's VotingClassifier converter, reading a copy with ``flatten_transform`` off:
    skl2onnx refuses scikit-learn's default ``flatten_transform=True`` (so no VotingClassifier
    converted), which shapes only ``transform()``'s output, never ``predict``'s or
    ``predict_proba``'s. The user's model is not touched."""
    import copy

    from skl2onnx.common._registration import RegisteredConverter, get_converter
    from sklearn.ensemble import VotingClassifier

    converter = get_converter("SklearnVotingClassifier")

    def convert(scope: Any, operator: Any, container: Any) -> None:
        votes = copy.copy(operator.raw_operator)
        votes.flatten_transform = False
        operator.raw_operator = votes
        converter(scope, operator, container)

    return {VotingClassifier: RegisteredConverter(convert, converter.get_allowed_options())}


def exact_encoders() -> dict[type, Any]:
    """OrdinalEncoder and OneHotEncoder encoding as scikit-learn encodes
    (``exact_ordinal_encoder``, ``exact_one_hot_encoder``)."""
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    return {OrdinalEncoder: exact_ordinal_encoder, OneHotEncoder: exact_one_hot_encoder}


def exact_ordinal_encoder(scope: Any, operator: Any, container: Any) -> None:
    """OrdinalEncoder as scikit-learn encodes, where skl2onnx's LabelEncoder does not:

    * a category not seen at fit time: with ``handle_unknown='error'`` (scikit-learn's
      default) scikit-learn refuses the row, skl2onnx gave it the code -1 and the model
      scored it. Each column is looked up as a position (an unknown value: one past the
      last) and its code Gathered from the table of codes, whose last entry is
      ``unknown_value`` only when the encoder has one: onnxruntime fails (Gather out of
      bounds) on exactly the rows scikit-learn refuses;
    * numbers are compared in the column's own type (skl2onnx cast a double to float32
      first, so 2.0000001 was category 2) and NaN is a category of its own (a missing
      value seen at fit time, coded ``encoded_missing_value``);
    * a missing value among text categories is no key: a missing text reaches a model as
      SQL NULL, whose row is NULL before any scoring, and the text 'nan' is no missing value.
    """
    from skl2onnx.common.data_types import StringTensorType

    encoder = operator.raw_operator
    columns = _input_columns(scope, operator, container)
    tables = [_ordinal_codes(encoder, k) for k in range(len(encoder.categories_))]
    floats = any(np.isnan(codes).any() for _, codes in tables)
    coded = []
    for (name, kind), categories, (keys, codes) in zip(columns, encoder.categories_, tables):
        positions = scope.get_unique_variable_name("position")
        if isinstance(kind, StringTensorType):
            container.add_node(
                "LabelEncoder", [name], [positions], op_domain="ai.onnx.ml", op_version=2,
                name=scope.get_unique_operator_name("LabelEncoder"),
                keys_strings=[str(key).encode("utf-8") for key in keys], values_int64s=list(range(len(keys))),
                default_int64=len(keys),
            )
        else:
            _number_lookup(scope, container, name, kind, positions, np.asarray(keys, dtype=np.float64), np.arange(len(keys)), len(keys))
        table = scope.get_unique_variable_name("codes")
        container.add_initializer(
            table, onnx.TensorProto.FLOAT if floats else onnx.TensorProto.INT64, [len(codes)],
            codes.astype(np.float32 if floats else np.int64).tolist(),
        )
        coded.append(scope.get_unique_variable_name("ordinal"))
        container.add_node("Gather", [table, positions], [coded[-1]], name=scope.get_unique_operator_name("Gather"))
    joined = scope.get_unique_variable_name("ordinals")
    container.add_node("Concat", coded, [joined], axis=1, name=scope.get_unique_operator_name("Concat"))
    to = onnx.TensorProto.FLOAT if np.issubdtype(encoder.dtype, np.floating) else onnx.TensorProto.INT64
    container.add_node("Cast", [joined], [operator.outputs[0].full_name], to=to, name=scope.get_unique_operator_name("Cast"))


def _ordinal_codes(encoder: Any, column: int) -> tuple[list[Any], np.ndarray]:
    """The keys of column ``column`` and its table of codes: one per key, then
    ``unknown_value`` unless the encoder refuses unknown categories."""
    categories = list(encoder.categories_[column])
    mapping = None
    if getattr(encoder, "_infrequent_enabled", False):
        mapping = encoder._default_to_infrequent_mappings[column]
    codes = [float(mapping[k]) if mapping is not None else float(k) for k in range(len(categories))]
    text = np.asarray(encoder.categories_[column]).dtype.kind in ("O", "U", "S")
    if categories and _is_nan(categories[-1]):  # scikit-learn keeps a missing value last
        codes[-1] = float(encoder.encoded_missing_value)
        if text:
            categories, codes = categories[:-1], codes[:-1]
    if encoder.handle_unknown != "error":
        codes.append(float(encoder.unknown_value))
    return categories, np.asarray(codes, dtype=np.float64)


def exact_one_hot_encoder(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx's OneHotEncoder, with numbers looked up exactly: skl2onnx casts a number
    to int64 in front of onnxruntime's encoder, so 2.5 counted as category 2 where
    scikit-learn refuses it (``handle_unknown='error'``) or sets no column ('ignore'). The
    cast becomes a lookup of the known numbers, any other value (NaN too) one that no
    category has, which the encoder then refuses or encodes as no category.

    A number column fitted with NaN or a fraction among its values (NaN is a category
    of its own in scikit-learn) failed in skl2onnx, which casts each category to int: such
    a column is handed to skl2onnx with its categories' positions as categories
    (``_positional``), and the lookup maps each original number to its position."""
    from skl2onnx.common._registration import get_converter
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    encoder = operator.raw_operator
    originals = [_positional(categories) for categories in encoder.categories_]
    # the original numbers of each number column skl2onnx writes, in its order (None: as they are)
    queued = [keys for positions, keys in originals if np.asarray(positions).dtype.kind == "f" and len(positions)]
    if any(keys is not None for keys in queued):
        operator.raw_operator = copy.copy(encoder)
        operator.raw_operator.categories_ = [positions for positions, _ in originals]
    kinds = {variable.full_name: variable.type for variable in operator.inputs}
    casts: dict[str, str] = {}  # a cast to int64 not yet written: its output -> its input
    add_node = container.add_node

    def add(op_type: str, inputs: Any, outputs: Any, *args: Any, **attrs: Any) -> Any:
        names = [inputs] if isinstance(inputs, str) else list(inputs)
        if op_type == "Gather" and names[0] in kinds:  # one column of a wider input
            kinds[outputs if isinstance(outputs, str) else outputs[0]] = kinds[names[0]]
        numeric = isinstance(kinds.get(names[0]), (DoubleTensorType, FloatTensorType))
        if op_type == "Cast" and attrs.get("to") == onnx.TensorProto.INT64 and numeric:
            casts[outputs if isinstance(outputs, str) else outputs[0]] = names[0]
            return None
        if op_type == "OneHotEncoder" and names[0] in casts and "cats_int64s" in attrs:
            source = casts.pop(names[0])
            categories = np.asarray(attrs["cats_int64s"], dtype=np.int64)
            outside = int(categories.min()) - 1 if len(categories) else 0
            original = queued.pop(0) if queued else None
            if original is not None and not np.all((categories >= 0) & (categories < len(original))):
                raise ValueError("a OneHotEncoder's number categories could not be matched to its columns")
            keys = categories.astype(np.float64) if original is None else original[categories]
            _number_lookup(scope, container, source, kinds[source], names[0], keys, categories, outside)
        return add_node(op_type, inputs, outputs, *args, **attrs)

    container.add_node = add
    try:
        get_converter("SklearnOneHotEncoder")(scope, operator, container)
    finally:
        del container.add_node  # the class's own method again
        operator.raw_operator = encoder
    for output, source in casts.items():  # read by no encoder: the cast as skl2onnx wrote it
        container.add_node("Cast", [source], [output], to=onnx.TensorProto.INT64, name=scope.get_unique_operator_name("Cast"))


def _positional(categories: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A number column's categories as skl2onnx can write them, and the numbers they stand
    for: as they are when all are whole numbers; else (NaN or a fraction among them) their
    positions 0, 1, ... (as floats, the column's type) and the original numbers."""
    if np.asarray(categories).dtype.kind != "f":
        return categories, None
    numbers = np.asarray(categories, dtype=np.float64)
    if np.all(np.isfinite(numbers) & (numbers == np.round(numbers))):
        return categories, None
    return np.arange(len(numbers), dtype=np.float64), numbers


# skl2onnx 1.20 writes ai.onnx.ml up to opset 3; a node of a later opset (LabelEncoder 4,
# whose keys may be doubles) is written in this domain, then moved by ``later_ml_opsets``.
_LATER_ML_DOMAIN = "nbgov.ai.onnx.ml"
_LATER_ML_OPSET = 4


def later_ml_opsets(model: onnx.ModelProto) -> None:
    """The nodes converters wrote in ``_LATER_ML_DOMAIN`` moved to ai.onnx.ml, whose opset
    becomes 4 (the operators of the lower opsets nbgov's converters use are the same there)."""
    moved = False
    for node in model.graph.node:
        if node.domain == _LATER_ML_DOMAIN:
            node.domain, moved = "ai.onnx.ml", True
    if not moved:
        return
    opsets = {entry.domain: entry.version for entry in model.opset_import if entry.domain != _LATER_ML_DOMAIN}
    opsets["ai.onnx.ml"] = max(opsets.get("ai.onnx.ml", 0), _LATER_ML_OPSET)
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in sorted(opsets.items()))


def _number_lookup(
    scope: Any, container: Any, name: str, kind: Any, output: str, keys: np.ndarray, values: np.ndarray, default: int
) -> None:
    """``output`` = the int64 value of the key equal to ``name``'s number, else ``default``:
    onnxruntime's LabelEncoder (opset 4) comparing in the input's own type, NaN equal to NaN."""
    from onnx import numpy_helper
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    if isinstance(kind, DoubleTensorType):
        typed = keys
    elif isinstance(kind, FloatTensorType):
        typed = keys.astype(np.float32)
        if not np.array_equal(typed.astype(np.float64), keys, equal_nan=True):
            raise ValueError("an encoder's categories do not fit a float input exactly")
    else:
        raise TypeError(f"an encoder of numbers on {type(kind).__name__} input has no exact form here")
    container.add_node(
        "LabelEncoder", [name], [output], op_domain=_LATER_ML_DOMAIN, op_version=1,
        name=scope.get_unique_operator_name("LabelEncoder"),
        keys_tensor=numpy_helper.from_array(typed, "keys_tensor"),
        values_tensor=numpy_helper.from_array(np.asarray(values, dtype=np.int64), "values_tensor"),
        default_tensor=numpy_helper.from_array(np.asarray([default], dtype=np.int64), "default_tensor"),
    )


def _input_columns(scope: Any, operator: Any, container: Any) -> list[tuple[str, Any]]:
    """Each column of the operator's inputs as an ``[N, 1]`` tensor, with its skl2onnx type."""
    columns = []
    for variable in operator.inputs:
        width = variable.get_second_dimension()
        if width == 1:
            columns.append((variable.full_name, variable.type))
            continue
        if not isinstance(width, int):
            raise TypeError("an encoder's input has an unknown number of columns")
        for j in range(width):
            index = scope.get_unique_variable_name("column_index")
            container.add_initializer(index, onnx.TensorProto.INT64, [1], [j])
            column = scope.get_unique_variable_name("column")
            container.add_node("Gather", [variable.full_name, index], [column], axis=1, name=scope.get_unique_operator_name("Gather"))
            columns.append((column, variable.type))
    return columns


def _is_nan(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))
