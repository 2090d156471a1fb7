"""A tree-ensemble node read as onnxruntime evaluates it: the one description the
compiled scorer is generated from.

onnxruntime's CPU kernel (``tree_ensemble_common.h`` / ``tree_ensemble_aggregator.h``)
fixes details the ONNX specification leaves open, and exact results depend on them:

- trees run in the order their ids first appear; a leaf's weights in attribute order;
- sums are accumulated in the input's precision (float, or double for double input),
  one tree after the other, starting from 0, and the base value is added last;
- a single-target ensemble uses the *first* weight of each leaf and ignores every
  post transform except PROBIT;
- NaN goes to the false side unless the node's missing-value track says true, except
  for BRANCH_NEQ (NaN != t holds); BRANCH_MEMBER compares ``int(x)`` with integer
  members;
- classifiers with two classes follow the "binary case" rules (one score column
  completed by ``1 - p`` or ``-s``; label by ``p > 0.5`` or ``s > 0``).

What the kernel cannot reproduce (a leaf without weight, output memory onnxruntime
leaves unwritten) is refused with a reason: the caller keeps onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nbgov.sqlml.models.forest import Branch, Forest, Leaf, read_forest


class Aggregate(Enum):
    SUM = "SUM"
    AVERAGE = "AVERAGE"
    MIN = "MIN"
    MAX = "MAX"


class PostTransform(Enum):
    NONE = "NONE"
    LOGISTIC = "LOGISTIC"
    SOFTMAX = "SOFTMAX"
    SOFTMAX_ZERO = "SOFTMAX_ZERO"
    PROBIT = "PROBIT"


# TreeEnsemble (ai.onnx.ml opset 5) encodes both as integers, which onnxruntime reads
# in the order of its own enums (measured: 2 is SOFTMAX there, though the ONNX text
# lists SOFTMAX as 1): the runtime's reading is the one results must match.
_V5_AGGREGATE = (Aggregate.AVERAGE, Aggregate.SUM, Aggregate.MIN, Aggregate.MAX)
_V5_TRANSFORM = (
    PostTransform.NONE,
    PostTransform.LOGISTIC,
    PostTransform.SOFTMAX,
    PostTransform.SOFTMAX_ZERO,
    PostTransform.PROBIT,
)


class NotCompilable(Exception):
    """The ensemble cannot be reproduced exactly by compiled code; the message says why."""


class NoTreeEnsemble(NotCompilable):
    """The model has no tree ensemble at all: compiled scoring does not concern it."""


@dataclass(frozen=True)
class ClassifierSpec:
    """What TreeEnsembleClassifier adds: labels and the binary-case flags."""

    int_labels: tuple[int, ...] | None
    string_labels: tuple[str, ...] | None
    binary_case: bool  # two classes and every weight is for one class id
    weights_all_positive: bool

    @property
    def n_classes(self) -> int:
        return len(self.string_labels if self.string_labels is not None else self.int_labels or ())


@dataclass(frozen=True)
class Ensemble:
    """One tree-ensemble node, with everything that decides its output values."""

    op_type: str
    value_type: str  # "float" or "double": input, thresholds and sums (onnxruntime's ThresholdType)
    output_type: str  # "float" or "double"
    n_features: int
    n_outputs: int  # targets of a regressor, classes of a classifier
    aggregate: Aggregate
    post_transform: PostTransform
    base_values: tuple[float, ...]
    forest: Forest
    classifier: ClassifierSpec | None

    @property
    def tree_count(self) -> int:
        return len(self.forest.trees)

    @property
    def node_count(self) -> int:
        return self.forest.node_count

    @property
    def single_output(self) -> bool:
        """onnxruntime's one-output path (FinalizeScores1): first leaf weight, PROBIT only."""
        return self.n_outputs == 1


def read_ensemble(node: onnx.NodeProto, value_type: str, n_features: int) -> Ensemble:
    """The ensemble of ``node`` evaluated on ``value_type`` input with ``n_features`` columns."""
    if value_type not in ("float", "double"):
        raise NotCompilable(f"input type {value_type} (compiled scoring reads float or double)")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    _check_tree_order(node, attrs)
    forest = read_forest(node)
    if node.op_type == "TreeEnsemble":
        aggregate = _V5_AGGREGATE[int(_int(attrs, "aggregate_function", 1))]
        transform = _V5_TRANSFORM[int(_int(attrs, "post_transform", 0))]
        n_outputs = int(_int(attrs, "n_targets", 1))
        output_type = value_type
        base: tuple[float, ...] = ()
        classifier = None
    else:
        aggregate = Aggregate(_text(attrs, "aggregate_function", "SUM"))
        transform = PostTransform(_text(attrs, "post_transform", "NONE"))
        base = _floats(attrs, "base_values")
        output_type = "float"
        if node.op_type == "TreeEnsembleClassifier":
            classifier = _classifier(attrs, forest)
            n_outputs = classifier.n_classes
            aggregate = Aggregate.SUM  # onnxruntime's classifier always sums (aggregate_function is ignored)
        else:
            classifier = None
            n_outputs = int(_int(attrs, "n_targets", 1))
    if n_outputs < 1:
        raise NotCompilable("the ensemble declares no target or class")
    ensemble = Ensemble(
        node.op_type,
        value_type,
        output_type,
        n_features,
        n_outputs,
        aggregate,
        transform,
        base,
        forest,
        classifier,
    )
    _check(ensemble)
    return ensemble


def _check_tree_order(node: onnx.NodeProto, attrs: dict[str, object]) -> None:
    """onnxruntime starts a new tree whenever the tree id changes along the node list:
    interleaved trees would be split there, which the plain forest does not model."""
    if node.op_type == "TreeEnsemble":
        return
    tree_ids = list(attrs.get("nodes_treeids") or [])  # type: ignore[call-overload]
    seen: set[int] = set()
    previous = None
    for tree in tree_ids:
        if tree != previous:
            if tree in seen:
                raise NotCompilable(f"the nodes of tree {tree} are not listed together")
            seen.add(tree)
            previous = tree


def _check(ensemble: Ensemble) -> None:
    for number, tree in enumerate(ensemble.forest.trees):
        for position, node in enumerate(tree.nodes):
            if isinstance(node, Branch):
                if not 0 <= node.feature < ensemble.n_features:
                    raise NotCompilable(f"tree {number} reads feature {node.feature} of {ensemble.n_features}")
                if node.mode == "BRANCH_MEMBER" and not all(_int32(v) for v in node.members):
                    raise NotCompilable("BRANCH_MEMBER with values that are not 32-bit integers")
            elif not node.weights:
                raise NotCompilable(f"leaf {position} of tree {number} has no weight")
            elif any(not 0 <= target < ensemble.n_outputs for target, _ in node.weights):
                raise NotCompilable(f"a leaf of tree {number} names a target outside 0..{ensemble.n_outputs - 1}")
    if ensemble.tree_count == 0:
        raise NotCompilable("the ensemble has no tree")
    if ensemble.classifier is not None:
        if ensemble.n_outputs == 1:
            raise NotCompilable("a classifier with a single class")
        if len(ensemble.base_values) > ensemble.n_outputs:
            raise NotCompilable("more base values than classes")
        if ensemble.n_outputs == 2:
            _check_binary(ensemble)


def _check_binary(ensemble: Ensemble) -> None:
    """onnxruntime writes one probability of a two-class row and leaves the other column
    as it was when it applies PROBIT, or when the classifier is not in the binary case,
    has one base value, and the row's leaves give class 1 no score: not reproducible."""
    spec = ensemble.classifier
    assert spec is not None
    if ensemble.post_transform is PostTransform.PROBIT:
        raise NotCompilable("PROBIT on a two-class classifier writes one column only")
    if spec.binary_case or len(ensemble.base_values) != 1:
        return
    if all(
        any(isinstance(n, Leaf) and all(target != 1 for target, _ in n.weights) for n in tree.nodes)
        for tree in ensemble.forest.trees
    ):
        raise NotCompilable("a two-class classifier whose rows may get no class-1 score")


def _classifier(attrs: dict[str, object], forest: Forest) -> ClassifierSpec:
    strings = attrs.get("classlabels_strings")
    ints = attrs.get("classlabels_int64s")
    string_labels = tuple(s.decode() if isinstance(s, bytes) else str(s) for s in strings) if strings else None  # type: ignore[attr-defined]
    int_labels = tuple(int(v) for v in ints) if ints and not string_labels else None  # type: ignore[attr-defined]
    if not string_labels and not int_labels:
        raise NotCompilable("a classifier without class labels")
    weights = [w for tree in forest.trees for n in tree.nodes if isinstance(n, Leaf) for w in n.weights]
    classes = {target for target, _ in weights}
    n_classes = len(string_labels or int_labels or ())
    return ClassifierSpec(
        int_labels=int_labels,
        string_labels=string_labels,
        binary_case=n_classes == 2 and len(classes) == 1,
        weights_all_positive=all(w >= 0 for _, w in weights),
    )


def _int32(value: float) -> bool:
    return float(value).is_integer() and -(2**31) <= value < 2**31


def _text(attrs: dict[str, object], name: str, default: str) -> str:
    value = attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(attrs: dict[str, object], name: str, default: int) -> int:
    value = attrs.get(name, default)
    assert isinstance(value, int)
    return value


def _floats(attrs: dict[str, object], name: str) -> tuple[float, ...]:
    tensor = attrs.get(f"{name}_as_tensor")
    if isinstance(tensor, onnx.TensorProto):
        return tuple(float(v) for v in numpy_helper.to_array(tensor).ravel())
    values = attrs.get(name) or []
    assert isinstance(values, list)
    return tuple(float(np.float32(v)) for v in values)
