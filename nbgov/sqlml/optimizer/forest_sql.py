"""Tree ensembles as SQL, one CASE per tree, added in onnxruntime's order.

Each tree becomes its own ``CASE`` (one expression per tree, as posit-dev's
orbital emits them) and a class's score is the left fold
``list_reduce([tree_1, ..., tree_n], lambda a, b: a + b)`` in FLOAT: the same
float32 additions in the same order onnxruntime makes, and an expression whose
depth is one tree's, not the ensemble's (DuckDB refuses expressions deeper than
1,000).  Regressors (SUM or AVERAGE, plus the base value) and classifier scores
are therefore bit-identical, and so are labels, which onnxruntime derives from
those scores (``label_rule.py`` explains the binary rule).  Probabilities
through a LOGISTIC or SOFTMAX are computed in DOUBLE (within 1e-6 of
onnxruntime's float kernels).  Anything else is not translated.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import sqlglot
import sqlglot.expressions as exp
from onnx import helper

from nbgov.sqlml.models.onnxtypes import width
from nbgov.sqlml.models.forest import Branch, Forest, Leaf, Tree
from nbgov.sqlml.optimizer.label_rule import has_negative_weight
from nbgov.sqlml.optimizer.to_sql import (
    SqlModel, apply_index_offset, building_agrees, cast_expr, feature_expr, mean_depth, number_expr, ort_test, parse_with,
)
from nbgov.sqlml.plan import TensorSpec

class NotTranslatable(ValueError):
    """No exact SQL for this ensemble (the message says why)."""


@dataclass(frozen=True)
class _Ensemble:
    """What the node's attributes say beside the trees."""

    op_type: str
    post: str
    base: tuple[float, ...]
    aggregate: str
    labels: tuple[int | str, ...]


def ensemble_sql(node: onnx.NodeProto, forest: Forest, outputs: tuple[TensorSpec, ...]) -> SqlModel:
    """The ensemble's outputs as one SQL value over ``__f{i}__`` feature placeholders."""
    if forest.threshold_dtype is not np.float32:
        raise NotTranslatable("the trees compare doubles")
    spec = _ensemble(node)
    levels = max(1, round(mean_depth(forest) * len(forest.trees)))
    indexed = spec.op_type == "TreeEnsembleClassifier"  # its value is ``list_transform(...)[1]``
    write: Callable[[_Term], str]
    if spec.op_type == "TreeEnsembleRegressor":
        write = functools.partial(_regressor, spec, forest, outputs)
    elif indexed:
        write = functools.partial(_classifier, spec, forest, outputs)
    else:
        raise NotTranslatable(f"{spec.op_type} is not translated")
    body = write(_tree_text) + ("[1]" if indexed else "")
    trees: dict[str | None, Callable[[], exp.Expr]] = {}
    if building_agrees(_sample_agrees):
        trees[None] = lambda: _parsed(write, indexed)
    return SqlModel({}, "trees", levels, body=body, trees=trees)


_Term = Callable[[Tree, int], str]  # one tree's score for a target, as SQL text


def _tree_text(tree: Tree, target: int) -> str:
    return _tree(tree, 0, lambda leaf: _leaf_weight(leaf, target))


def _parsed(write: Callable[[_Term], str], indexed: bool) -> exp.Expr:
    """What parsing the ensemble's text gives, without writing and parsing each tree: only
    the text around the trees is parsed (each tree a placeholder column), the trees are
    built from their node arrays, and the final ``[1]`` is applied as DuckDB's parser does
    (its index offset decided on, and types annotated over, the complete expression)."""
    parts: dict[str, Callable[[], exp.Expr]] = {}

    def placeholder(tree: Tree, target: int) -> str:
        name = f"__nbgov_tree{len(parts)}__"
        parts[name] = functools.partial(_tree_expr, tree, 0, target)
        return name

    shape = parse_with(write(placeholder), parts)
    if not indexed:
        return shape
    index = apply_index_offset(shape, [exp.Literal(this="1", is_string=False)], -1, dialect="duckdb")
    comments = shape.pop_comments()
    bracket = exp.Bracket(this=shape, expressions=index)
    if comments:
        bracket.add_comments(comments)
    return bracket


def _ensemble(node: onnx.NodeProto) -> _Ensemble:
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    if "base_values_as_tensor" in a:
        raise NotTranslatable("double base values")
    labels: tuple[int | str, ...] = tuple(int(v) for v in a.get("classlabels_int64s") or [])
    if not labels and a.get("classlabels_strings"):
        labels = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in a["classlabels_strings"])
    if int(a.get("n_targets", 1)) != 1:
        raise NotTranslatable("several regression targets")
    return _Ensemble(
        node.op_type,
        _text(a.get("post_transform", b"NONE")),
        tuple(float(v) for v in a.get("base_values") or []),
        _text(a.get("aggregate_function", b"SUM")),
        labels,
    )


def _regressor(spec: _Ensemble, forest: Forest, outputs: tuple[TensorSpec, ...], term: _Term) -> str:
    if spec.post != "NONE" or spec.aggregate not in ("SUM", "AVERAGE") or len(spec.base) > 1:
        raise NotTranslatable(f"post transform {spec.post} / aggregate {spec.aggregate}")
    if len(outputs) != 1 or width(outputs[0]) != 1 or outputs[0].elem_type != "float":
        raise NotTranslatable("not one float output")
    total = _fold(forest, 0, term)
    if spec.aggregate == "AVERAGE":
        total = f"({total} / CAST({len(forest.trees)} AS FLOAT))"
    return f"CAST({total} + {_float(spec.base[0] if spec.base else 0.0)} AS FLOAT)"


def _classifier(spec: _Ensemble, forest: Forest, outputs: tuple[TensorSpec, ...], term: _Term) -> str:
    """``(label, probabilities)`` from the class scores, computed once: they are bound to
    the lambda parameter ``nbgov_s`` (``list_transform([[scores]], lambda nbgov_s: ...)``,
    whose first element is the value) and every output reads them from there."""
    if len(outputs) != 2 or outputs[0].elem_type not in ("int64", "string") or outputs[1].elem_type != "float":
        raise NotTranslatable("outputs are not (label, probabilities)")
    if any(len({t for t, _ in n.weights}) != len(n.weights) for t in forest.trees for n in t.nodes if isinstance(n, Leaf)):
        raise NotTranslatable("a leaf scores one class twice")
    ids = {t for tree in forest.trees for n in tree.nodes if isinstance(n, Leaf) for t, _ in n.weights}
    classes = len(spec.labels)
    if ids == {0} and classes == 2:
        scores, label, probabilities = _binary(spec, forest, term)
    elif classes > 2 and ids == set(range(classes)):
        scores, label, probabilities = _multiclass(spec, forest, classes, term)
    else:
        raise NotTranslatable(f"{classes} classes scored through class ids {sorted(ids)}")
    value = f"struct_pack(__o0__ := {label}, __o1__ := [{', '.join(probabilities)}])"
    return f"list_transform([[{', '.join(scores)}]], lambda {_S}: {value})"


_S = "nbgov_s"  # the lambda parameter holding the class scores


def _binary(spec: _Ensemble, forest: Forest, term: _Term) -> tuple[list[str], str, list[str]]:
    """One score for the positive class (skl2onnx's binary boosting and forests)."""
    if len(spec.base) > 1 or spec.post not in ("NONE", "LOGISTIC"):
        raise NotTranslatable(f"binary classifier with post transform {spec.post}")
    score = _fold(forest, 0, term)
    if spec.base:
        score = f"CAST({score} + {_float(spec.base[0])} AS FLOAT)"
    s = f"{_S}[1]"
    positive = not has_negative_weight(forest)
    cut = "0.5" if positive else "0"
    label = f"CASE WHEN {s} > CAST({cut} AS FLOAT) THEN {_label(spec.labels[1])} ELSE {_label(spec.labels[0])} END"
    if spec.post == "LOGISTIC":
        p = f"(1.0 / (1.0 + exp(-CAST({s} AS DOUBLE))))"
        if positive:
            return [score], label, [f"CAST(1.0 - {p} AS FLOAT)", f"CAST({p} AS FLOAT)"]
        q = f"(1.0 / (1.0 + exp(CAST({s} AS DOUBLE))))"
        return [score], label, [f"CAST({q} AS FLOAT)", f"CAST({p} AS FLOAT)"]
    if positive:
        return [score], label, [f"CAST(CAST(1 AS FLOAT) - {s} AS FLOAT)", s]
    return [score], label, [f"CAST(-{s} AS FLOAT)", s]


def _multiclass(spec: _Ensemble, forest: Forest, classes: int, term: _Term) -> tuple[list[str], str, list[str]]:
    if spec.post not in ("NONE", "SOFTMAX") or len(spec.base) not in (0, classes):
        raise NotTranslatable(f"multiclass with post transform {spec.post}")
    for k in range(classes):  # every row must score every class (else onnxruntime skips it)
        if not any(all(isinstance(n, Branch) or any(t == k for t, _ in n.weights) for n in tree.nodes) for tree in forest.trees):
            raise NotTranslatable(f"class {k} is not scored on every path")
    scores = []
    for k in range(classes):
        score = _fold(forest, k, term)
        if spec.base:
            score = f"CAST({score} + {_float(spec.base[k])} AS FLOAT)"
        scores.append(score)
    # onnxruntime's argmax keeps the first of equal scores, as list_position does
    labels = ", ".join(_label(v) for v in spec.labels)
    label = f"[{labels}][list_position({_S}, list_max({_S}))]"
    each = [f"{_S}[{k + 1}]" for k in range(classes)]
    if spec.post == "NONE":
        return scores, label, each
    top = f"CAST(list_max({_S}) AS DOUBLE)"
    total = f"list_sum(list_transform({_S}, lambda nbgov_v: exp(CAST(nbgov_v AS DOUBLE) - {top})))"
    return scores, label, [f"CAST(exp(CAST({v} AS DOUBLE) - {top}) / {total} AS FLOAT)" for v in each]


def _fold(forest: Forest, target: int, term: _Term) -> str:
    """Class (or target) ``target``'s summed score: one CASE per tree (``term``), left to right."""
    terms = [term(tree, target) for tree in forest.trees if _scores(tree, target)]
    if not terms:
        return _float(0.0)
    if len(terms) == 1:
        return terms[0]
    return f"list_reduce([{', '.join(terms)}], lambda a, b: a + b)"


def _scores(tree: Tree, target: int) -> bool:
    return any(isinstance(n, Leaf) and any(t == target for t, _ in n.weights) for n in tree.nodes)


def _leaf_weight(leaf: Leaf, target: int) -> str:
    return _float(next((w for t, w in leaf.weights if t == target), 0.0))


def _tree(tree: Tree, pos: int, leaf_text: Callable[[Leaf], str]) -> str:
    """The tree as nested CASEs: each row evaluates one test per level (a flat CASE with
    one WHEN per leaf would test every path in turn: several times slower in DuckDB)."""
    node = tree.nodes[pos]
    if isinstance(node, Leaf):
        return leaf_text(node)
    return f"CASE WHEN {branch_sql(node)} THEN {_tree(tree, node.true, leaf_text)} ELSE {_tree(tree, node.false, leaf_text)} END"


_TESTS: dict[str, tuple[str, type[exp.Expr]]] = {
    "BRANCH_LEQ": ("<=", exp.LTE), "BRANCH_LT": ("<", exp.LT), "BRANCH_GTE": (">=", exp.GTE),
    "BRANCH_GT": (">", exp.GT), "BRANCH_EQ": ("=", exp.EQ), "BRANCH_NEQ": ("<>", exp.NEQ),
}


def _nan_routing(node: Branch) -> str:
    """How the test is mended for onnxruntime's NaN routing (DuckDB sorts NaN above every
    number, onnxruntime's comparisons with NaN are false): "OR" isnan, "AND NOT" isnan, or ""."""
    if node.mode not in _TESTS:
        raise NotTranslatable(f"{node.mode} tests")
    nan_goes_true = node.nan_true or node.mode == "BRANCH_NEQ"
    nan_passes_in_duckdb = node.mode in ("BRANCH_GTE", "BRANCH_GT", "BRANCH_NEQ")
    if nan_goes_true and not nan_passes_in_duckdb:
        return "OR"
    if nan_passes_in_duckdb and not nan_goes_true:
        return "AND NOT"
    return ""


def branch_sql(node: Branch) -> str:
    """``node``'s test on its FLOAT feature with onnxruntime's NaN routing (of a NaN feature,
    and of every value past a NaN threshold: ``ort_test``)."""
    node = ort_test(node)
    routing = _nan_routing(node)
    x = f"CAST(__f{node.feature}__ AS FLOAT)"
    test = f"{x} {_TESTS[node.mode][0]} {_float(node.threshold)}"
    return f"({test} {routing} isnan({x}))" if routing else test


def _tree_expr(tree: Tree, pos: int, target: int) -> exp.Expr:
    """``_tree``'s CASE for ``target``'s weights as the tree parsing its text gives."""
    node = tree.nodes[pos]
    if isinstance(node, Leaf):
        return _float_expr(next((w for t, w in node.weights if t == target), 0.0))
    yes, no = _tree_expr(tree, node.true, target), _tree_expr(tree, node.false, target)
    return exp.Case(this=None, ifs=[exp.If(this=branch_expr(node), true=yes)], default=no)


def branch_expr(node: Branch) -> exp.Expr:
    """``branch_sql(node)`` as parsing it gives (built, not parsed: parsing every test of a
    large ensemble cost seconds)."""
    node = ort_test(node)
    routing = _nan_routing(node)
    test = _TESTS[node.mode][1](this=feature_expr(node.feature), expression=_float_expr(node.threshold))
    if routing == "OR":
        return exp.Paren(this=exp.Or(this=test, expression=exp.IsNan(this=feature_expr(node.feature))))
    if routing == "AND NOT":
        return exp.Paren(this=exp.And(this=test, expression=exp.Not(this=exp.IsNan(this=feature_expr(node.feature)))))
    return test


def _float_expr(value: float) -> exp.Expr:
    """``_float(value)`` as parsed."""
    v = float(np.float32(value))
    if math.isnan(v) or math.isinf(v):
        word = "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
        return cast_expr(exp.Literal(this=word, is_string=True), "FLOAT")
    return cast_expr(number_expr(repr(v)), "FLOAT")


def _sample_agrees() -> bool:
    """Building a classifier's trees gives what parsing their text does, with this sqlglot: a
    small tree with each NaN routing (OR, AND NOT, none), odd thresholds and weights, and the
    final ``[1]``."""
    tree = Tree([Branch(0, 0.5, "BRANCH_LEQ", True, 1, 2), Branch(1, -float("inf"), "BRANCH_GT", False, 3, 4), Branch(2, 1e-30, "BRANCH_NEQ", True, 5, 6),
                 Leaf([(0, -0.0)]), Leaf([(0, float("nan"))]), Leaf([(0, 3.25)]), Leaf([(1, 1e30)])])
    for target in (0, 1):
        if repr(sqlglot.parse_one(_tree_text(tree, target), dialect="duckdb")) != repr(_tree_expr(tree, 0, target)):
            return False

    def write(term: _Term) -> str:
        return f"list_transform([[{term(tree, 0)}]], lambda {_S}: {_S}[1])"

    parsed = sqlglot.parse_one(write(_tree_text) + "[1]", dialect="duckdb")
    return repr(parsed) == repr(_parsed(write, True))


def _float(value: float) -> str:
    v = float(np.float32(value))
    if math.isnan(v):
        return "CAST('nan' AS FLOAT)"
    if math.isinf(v):
        return f"CAST('{'inf' if v > 0 else '-inf'}' AS FLOAT)"
    return f"CAST({v!r} AS FLOAT)"


def _label(value: int | str) -> str:
    if isinstance(value, str):
        return exp.Literal.string(value).sql(dialect="duckdb")
    return f"CAST({int(value)} AS BIGINT)"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
