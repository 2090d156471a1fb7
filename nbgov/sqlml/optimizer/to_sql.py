"""Model → SQL: small models as DuckDB expressions with predict's value and type.

Linear models (LinearRegressor, LinearClassifier with the Scaler before and the
Normalizer / ZipMap / Cast after that skl2onnx emits for scikit-learn linear
and logistic regression) are interpreted symbolically, one SQL expression per
tensor column.  Tree regressors become a sum of nested CASEs in FLOAT, added in
onnxruntime's order, so their values match exactly; linear scores are computed
in DOUBLE from float32-rounded inputs and rounded once at the end (within float
tolerance of onnxruntime's float32 GEMM).  NULL in any input gives NULL, as
predict does.  Anything not understood returns None: the call stays in ONNX.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import sqlglot
import sqlglot.expressions as exp
from onnx import helper

from nbgov.sqlml.models.forest import Branch, Forest, Leaf, Tree
from nbgov.sqlml.models.onnxtypes import width
from nbgov.sqlml.models.runtime import open_session
from nbgov.sqlml.plan import TensorSpec

_SQL_TYPES = {
    "float": "FLOAT",
    "double": "DOUBLE",
    "int64": "BIGINT",
    "int32": "INTEGER",
}
_ONNX_TO_NAME: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float",
    onnx.TensorProto.DOUBLE: "double",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
}


@dataclass(frozen=True)
class SqlModel:
    """SQL text per output (with ``__f{i}__`` feature placeholders) plus its shape for costing."""

    outputs: dict[
        str, str | list[str]
    ]  # output name -> scalar text, or list text per column
    kind: str  # "linear" or "trees"
    terms: int  # multiply-adds (linear) or tree levels evaluated per row (trees)
    body: str | None = None  # the complete, typed value expression (tabulated trees)
    # builders of the trees parsing ``body`` (key None) or an output's text gives, without
    # writing and parsing every tree's text (seconds for a large ensemble)
    trees: Mapping[str | None, Callable[[], exp.Expr]] = field(default_factory=dict, repr=False, compare=False)


def _lit(value: float, elem: str = "double") -> str:
    v = float(np.float32(value)) if elem == "float" else float(value)
    if math.isnan(v):
        return "CAST('nan' AS DOUBLE)"
    if math.isinf(v):
        return "CAST('inf' AS DOUBLE)" if v > 0 else "CAST('-inf' AS DOUBLE)"
    return repr(v)


@dataclass(frozen=True)
class _Affine:
    """``weights · x + bias`` over the model's input features (composed in float64)."""

    weights: np.ndarray
    bias: float

    def text(self, feature: str = "CAST(__f{j}__ AS DOUBLE)") -> str:
        """The form's SQL; ``feature`` is the text of feature ``j`` (a format string)."""
        parts = [
            f"{feature.format(j=j)} * {_lit(w)}"
            for j, w in enumerate(self.weights)
            if w != 0.0
        ]
        return "(" + " + ".join(parts + [_lit(self.bias)]) + ")"


def linear_sql(
    model: onnx.ModelProto, in_elem: str, n_features: int, *, cast_inputs: bool = False
) -> SqlModel | None:
    """Interpret a linear graph symbolically; None if any node is not understood.

    Scalers and linear layers compose into one affine form per score (so the
    SQL has one multiply-add per feature); only the post transform is nonlinear.
    ``cast_inputs``: the features are the model's own inputs as the query gives them,
    so a float input is cast to FLOAT first, as --no-optimize casts it before
    onnxruntime: the same float32 value, and the same DuckDB error for a DOUBLE out of
    float32's range (the SQL in double had returned a score for 1e39).
    """
    feature = (
        "CAST(CAST(__f{j}__ AS FLOAT) AS DOUBLE)" if cast_inputs and in_elem == "float" else "CAST(__f{j}__ AS DOUBLE)"
    )
    graph = model.graph
    if len(graph.input) != 1:
        return None
    affine: dict[str, list[_Affine]] = {
        graph.input[0].name: [
            _Affine(np.eye(n_features)[i], 0.0) for i in range(n_features)
        ]
    }
    values: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    terms = 0
    for node in graph.node:
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        cols = affine.get(node.input[0]) if node.input else None
        if node.op_type == "Scaler":
            if cols is None:
                return None
            offset = [_f32(v) for v in (a.get("offset") or [0.0])]
            scale = [_f32(v) for v in (a.get("scale") or [1.0])]
            offset = offset * len(cols) if len(offset) == 1 else offset
            scale = scale * len(cols) if len(scale) == 1 else scale
            if len(offset) != len(cols) or len(scale) != len(cols):
                return None
            affine[node.output[0]] = [
                _Affine(c.weights * s, (c.bias - o) * s)
                for c, o, s in zip(cols, offset, scale)
            ]
        elif node.op_type == "LinearRegressor":
            if (
                cols is None
                or a.get("post_transform", b"NONE") != b"NONE"
                or int(a.get("targets", 1)) != 1
            ):
                return None
            coef = [_f32(v) for v in a["coefficients"]]
            intercept = _f32(next(iter(a.get("intercepts") or [0.0])))
            if len(coef) != len(cols):
                return None
            values[node.output[0]] = [_combine(cols, coef, intercept).text(feature)]
            terms += n_features
        elif node.op_type == "LinearClassifier":
            ints = list(a.get("classlabels_ints") or [])
            if cols is None or not ints or int(a.get("multi_class", 0)) != 0:
                return None
            coef = [_f32(v) for v in a["coefficients"]]
            intercepts = [_f32(v) for v in (a.get("intercepts") or [])]
            k = len(cols)
            rows = len(coef) // k
            if rows < 2 or rows != len(ints) or len(intercepts) != rows:
                return None  # single-row (binary) encodings are left to onnxruntime
            forms = [
                _combine(cols, coef[r * k : (r + 1) * k], intercepts[r])
                for r in range(rows)
            ]
            post = a.get("post_transform", b"NONE")
            if rows == 2 and _negated(coef, intercepts, k):
                # skl2onnx's binary LogisticRegression: class 0 scores exactly -score(class 1)
                s1 = forms[1].text(feature)
                scores = [f"(-{s1})", s1]
                label = _binary_label(s1, ints)
                terms += n_features
            else:
                scores = [f.text(feature) for f in forms]
                label = _argmax_label(scores, ints)
                terms += rows * n_features
            if post == b"NONE":
                probs = scores
            elif post == b"LOGISTIC":
                probs = [f"(1.0 / (1.0 + exp(-({sc}))))" for sc in scores]
            elif post == b"SOFTMAX":
                mx = f"greatest({', '.join(scores)})"
                exps = [f"exp(({sc}) - {mx})" for sc in scores]
                total = " + ".join(exps)
                probs = [f"({e} / ({total}))" for e in exps]
            else:
                return None
            labels[node.output[0]] = label
            values[node.output[1]] = probs
        elif node.op_type == "Normalizer":
            texts = values.get(node.input[0])
            norm = a.get("norm", b"MAX")
            if texts is None:
                return None
            if norm == b"L1":
                total = " + ".join(f"abs({c})" for c in texts)
            elif norm == b"L2":
                total = "sqrt(" + " + ".join(f"({c}) * ({c})" for c in texts) + ")"
            elif norm == b"MAX":
                total = f"greatest({', '.join(texts)})"
            else:
                return None
            values[node.output[0]] = [f"(({c}) / ({total}))" for c in texts]
        elif node.op_type in ("ZipMap", "Identity", "Cast"):
            to = int(a.get("to", 0))
            if node.input[0] in labels and (
                node.op_type != "Cast"
                or to in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
            ):
                labels[node.output[0]] = labels[node.input[0]]
            elif node.input[0] in values and (
                node.op_type != "Cast"
                or to in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
            ):
                values[node.output[0]] = values[node.input[0]]
            else:
                return None
        else:
            return None
    outputs: dict[str, str | list[str]] = {}
    for out in graph.output:
        if out.name in labels:
            outputs[out.name] = labels[out.name]
        elif out.name in values:
            outputs[out.name] = values[out.name]
        else:
            return None
    return SqlModel(outputs, "linear", terms)


def linear_refusal(model: onnx.ModelProto) -> str:
    """Why ``linear_sql`` gave no SQL, for EXPLAIN. A multinomial classifier (scikit-learn's
    LogisticRegression on 3+ classes) is refused on purpose: its softmax repeats every class
    score in each probability, so the SQL grows with the square of the classes (3 classes,
    12 features: seconds to compile a query, 10x onnxruntime's time to run it)."""
    for node in model.graph.node:
        if node.op_type != "LinearClassifier":
            continue
        multi_class = next((int(helper.get_attribute_value(a)) for a in node.attribute if a.name == "multi_class"), 0)
        if multi_class != 0:
            classes = next((len(helper.get_attribute_value(a)) for a in node.attribute if a.name.startswith("classlabels")), 0)
            return f"a multinomial classifier ({classes} classes) is not translated: its softmax would repeat every class score in each probability"
    return "no SQL translation for this model's operators"


def _f32(value: float) -> float:
    return float(np.float32(value))


def _combine(cols: list[_Affine], coef: list[float], intercept: float) -> _Affine:
    weights = np.zeros_like(cols[0].weights)
    bias = intercept
    for c, w in zip(cols, coef):
        weights = weights + c.weights * w
        bias += c.bias * w
    return _Affine(weights, float(bias))


def _negated(coef: list[float], intercepts: list[float], k: int) -> bool:
    return (
        all(coef[i] == -coef[k + i] for i in range(k))
        and intercepts[0] == -intercepts[1]
    )


def _binary_label(score: str, labels: list[int]) -> str:
    """onnxruntime's label for skl2onnx's binary form: class 1 only when its score beats
    class 0's, ``-score < score`` in IEEE terms, so a NaN score (a NaN input, or
    ``inf - inf``) is class 0. DuckDB orders NaN above every number, so a bare
    ``score > 0`` said class 1 for it."""
    return (
        f"CAST(CASE WHEN ({score}) > 0 AND NOT isnan({score}) "
        f"THEN {int(labels[1])} ELSE {int(labels[0])} END AS BIGINT)"
    )


def _argmax_label(scores: list[str], labels: list[int]) -> str:
    """The first class with the highest score, as onnxruntime picks it."""
    whens = []
    for c in range(len(scores) - 1):
        conds = [f"({scores[c]}) > ({scores[j]})" for j in range(c)]
        conds += [f"({scores[c]}) >= ({scores[j]})" for j in range(c + 1, len(scores))]
        whens.append(f"WHEN {' AND '.join(conds)} THEN {int(labels[c])}")
    return f"CAST(CASE {' '.join(whens)} ELSE {int(labels[-1])} END AS BIGINT)"


def tree_regressor_sql(
    node: onnx.NodeProto, forest: Forest, in_elem: str
) -> SqlModel | None:
    """A single-target tree regressor as a FLOAT sum of nested CASEs, or None."""
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    if (
        node.op_type != "TreeEnsembleRegressor"
        or in_elem != "float"
        or forest.threshold_dtype is not np.float32
    ):
        return None
    if int(a.get("n_targets", 1)) != 1 or a.get("post_transform", b"NONE") != b"NONE":
        return None
    aggregate = a.get("aggregate_function", b"SUM")
    if aggregate not in (b"SUM", b"AVERAGE"):
        return None
    base = list(a.get("base_values") or [])
    if len(base) > 1 or "base_values_as_tensor" in a:
        return None
    trees = []
    levels = 0
    for tree in forest.trees:
        text = _tree_case(tree, 0)
        if text is None:
            return None
        trees.append(text)
        levels += max(1, round(_mean_depth(tree)))

    def total(terms: list[str]) -> str:
        # one flat chain, added left to right as onnxruntime does: sqlglot parses it in a loop,
        # where nested parentheses recurse per tree (RecursionError at 50 deep trees)
        text = f"({' + '.join(terms)})"
        if aggregate == b"AVERAGE":
            text = f"({text} / CAST({len(terms)} AS FLOAT))"
        if base:
            text = f"({text} + CAST({_lit(base[0], 'float')} AS FLOAT))"
        return f"CAST({text} AS FLOAT)"

    def build() -> exp.Expr:
        names = {f"__nbgov_tree{i}__": tree for i, tree in enumerate(forest.trees)}
        return parse_with(total(list(names)), {name: functools.partial(_tree_case_expr, tree, 0) for name, tree in names.items()})

    built: dict[str | None, Callable[[], exp.Expr]] = {"__single__": build} if building_agrees(_sample_regressor_agrees) else {}
    return SqlModel({"__single__": total(trees)}, "trees", levels, trees=built)


def _sample_regressor_agrees() -> bool:
    """``tree_regressor_sql``'s trees built as parsing gives, with this sqlglot (both tests,
    NaN sent either way, odd thresholds and weights)."""
    tree = Tree([Branch(0, 0.5, "BRANCH_LEQ", True, 1, 2), Branch(1, float("inf"), "BRANCH_LT", False, 3, 4),
                 Leaf([(0, -0.0)]), Leaf([(0, 1e-30)]), Leaf([(0, float("nan"))])])
    text = _tree_case(tree, 0)
    return text is not None and repr(sqlglot.parse_one(text, dialect="duckdb")) == repr(_tree_case_expr(tree, 0))


try:  # where this sqlglot keeps it (older ones: its helper module)
    from sqlglot.expressions.builders import apply_index_offset
except ImportError:  # pragma: no cover - depends on the installed sqlglot
    try:
        from sqlglot.helper import apply_index_offset  # type: ignore[attr-defined, no-redef]
    except ImportError:
        apply_index_offset = None  # type: ignore[assignment]


@functools.cache
def building_agrees(sample: Callable[[], bool]) -> bool:
    """Whether trees built node by node (``SqlModel.trees``) equal what parsing their text gives
    with the installed sqlglot, told once per process on ``sample`` (a small model of each
    kind); when not, their text is parsed, as before (slower, never different)."""
    try:
        return apply_index_offset is not None and sample()
    except Exception:  # noqa: BLE001 - another sqlglot's internals: parse the text
        return False


def parse_with(text: str, parts: Mapping[str, Callable[[], exp.Expr]]) -> exp.Expr:
    """``text`` parsed, its columns named in ``parts`` replaced by what their builders give:
    the tree parsing the text with each part's own SQL in their place gives, when each
    builder gives what parsing that SQL does, the part is an operand (a CASE, a CAST), and
    no ``x[i]`` in the text indexes an expression holding a part (DuckDB's parser annotates
    types over what it indexes)."""
    tree = sqlglot.parse_one(text, dialect="duckdb")
    for column in [c for c in tree.find_all(exp.Column) if not c.table and c.name in parts]:
        built = parts[column.name]()
        if column is tree:
            tree = built
        else:
            column.replace(built)
    return tree


def _tree_case_expr(tree: Tree, pos: int) -> exp.Expr:
    """``_tree_case``'s CASE as parsing it gives (the tree was checked translatable)."""
    node = tree.nodes[pos]
    if isinstance(node, Leaf):
        return cast_expr(lit_expr(node.weights[0][1] if node.weights else 0.0, "float"), "FLOAT")
    assert isinstance(node, Branch)
    test = branch_test_expr(node)
    yes, no = _tree_case_expr(tree, node.true), _tree_case_expr(tree, node.false)
    return exp.Case(this=None, ifs=[exp.If(this=test, true=yes)], default=no)


def branch_test_expr(node: Branch) -> exp.Expr:
    """``branch_test(node)`` as parsing it gives."""
    node = ort_test(node)
    comparison = exp.LTE if node.mode == "BRANCH_LEQ" else exp.LT
    test = comparison(this=feature_expr(node.feature), expression=cast_expr(lit_expr(node.threshold, "float"), "FLOAT"))
    if node.nan_true:
        return exp.Paren(this=exp.Or(this=test, expression=exp.IsNan(this=feature_expr(node.feature))))
    return test


def feature_expr(index: int) -> exp.Expr:
    """``CAST(__f{index}__ AS FLOAT)`` as parsed."""
    return cast_expr(exp.Column(this=exp.Identifier(this=f"__f{index}__", quoted=False)), "FLOAT")


def cast_expr(value: exp.Expr, sql_type: str) -> exp.Expr:
    """``CAST(value AS sql_type)`` (a type without parameters) as DuckDB's parser builds it."""
    to = exp.DataType(this=exp.DataType.Type[sql_type], expressions=None, nested=False)
    cast = exp.Cast(this=value, to=to, format=None, safe=None, action=None, default=None)
    cast.comments = []
    return cast


def number_expr(text: str) -> exp.Expr:
    """A number written as ``repr`` writes a float, as parsed: a negative one is a negation."""
    literal: exp.Expr = exp.Literal(this=text.lstrip("-"), is_string=False)
    return exp.Neg(this=literal) if text.startswith("-") else literal


def lit_expr(value: float, elem: str = "double") -> exp.Expr:
    """``_lit(value, elem)`` as parsed."""
    v = float(np.float32(value)) if elem == "float" else float(value)
    if math.isnan(v) or math.isinf(v):
        word = "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
        return cast_expr(exp.Literal(this=word, is_string=True), "DOUBLE")
    return number_expr(repr(v))


def _tree_case(tree: Tree, pos: int) -> str | None:
    node = tree.nodes[pos]
    if isinstance(node, Leaf):
        if len(node.weights) > 1 or any(t != 0 for t, _ in node.weights):
            return None
        w = node.weights[0][1] if node.weights else 0.0
        return f"CAST({_lit(w, 'float')} AS FLOAT)"
    assert isinstance(node, Branch)
    if node.mode not in ("BRANCH_LEQ", "BRANCH_LT"):
        return None
    yes, no = _tree_case(tree, node.true), _tree_case(tree, node.false)
    if yes is None or no is None:
        return None
    return f"CASE WHEN {branch_test(node)} THEN {yes} ELSE {no} END"


def single_tree_sql(
    payload: bytes, forest: Forest, n_features: int, outputs: tuple[TensorSpec, ...]
) -> SqlModel | None:
    """One tree (any post-processing) as a CASE whose leaves are its exact outputs.

    Each leaf's output is computed by onnxruntime itself on a witness row that
    reaches that leaf, so labels, probabilities and post transforms are exactly
    the model's, whatever the encoding.
    """
    scored = leaf_outputs(payload, forest, n_features, outputs)
    if scored is None:
        return None
    tree = forest.trees[0]
    leaf_text: dict[int, str] = {}
    for pos, values in scored.items():
        parts = []
        for spec, value in zip(outputs, values):
            sql_type = _SQL_TYPES.get(spec.elem_type)
            if sql_type is None:
                return None
            flat = np.ravel(value)
            if width(spec) == 1 and flat.size == 1:
                parts.append(f"CAST({value_literal(flat[0])} AS {sql_type})")
            else:
                parts.append(
                    "["
                    + ", ".join(f"CAST({value_literal(v)} AS {sql_type})" for v in flat)
                    + "]"
                )
        leaf_text[pos] = _pack(parts)

    def case(pos: int) -> str:
        node = tree.nodes[pos]
        if isinstance(node, Leaf):
            return leaf_text[pos]
        return f"CASE WHEN {branch_test(node)} THEN {case(node.true)} ELSE {case(node.false)} END"

    return SqlModel({}, "trees", max(1, round(_mean_depth(tree))), body=case(0))


def branch_test(node: Branch) -> str:
    """The SQL test of a ``<=`` / ``<`` branch, on the ``__f{i}__`` feature placeholder.

    A NaN feature fails ``<=`` and ``<`` in DuckDB (it sorts above every number), as in
    onnxruntime; a branch that sends NaN the true way (``nodes_missing_value_tracks_true``)
    says so with ``isnan``. A NaN threshold is first replaced (``ort_test``)."""
    node = ort_test(node)
    op = "<=" if node.mode == "BRANCH_LEQ" else "<"
    x = f"CAST(__f{node.feature}__ AS FLOAT)"
    test = f"{x} {op} CAST({_lit(node.threshold, 'float')} AS FLOAT)"
    return f"({test} OR isnan({x}))" if node.nan_true else test


def leaf_outputs(
    payload: bytes, forest: Forest, n_features: int, outputs: tuple[TensorSpec, ...]
) -> dict[int, list[np.ndarray]] | None:
    """The model's exact outputs at each leaf of a single float tree (by node position),
    computed by onnxruntime on a witness row that reaches the leaf (NaN in a feature only
    where no number of it reaches the leaf); None when the tree has tests DuckDB would route
    differently (NaN goes above every number there)."""
    if len(forest.trees) != 1 or forest.threshold_dtype is not np.float32:
        return None
    tree = forest.trees[0]
    witnesses: dict[int, list[float]] = {}

    def walk(pos: int, lo: list[float], hi: list[float], nan: list[bool]) -> bool:
        node = tree.nodes[pos]
        if isinstance(node, Leaf):
            row = []
            for f in range(n_features):
                if lo[f] <= hi[f]:
                    row.append(
                        lo[f]
                        if lo[f] != -math.inf
                        else (hi[f] if hi[f] != math.inf else 0.0)
                    )
                else:
                    row.append(math.nan if nan[f] else 0.0)
            witnesses[pos] = row
            return True
        f, test = node.feature, ort_test(node)
        if test.mode not in ("BRANCH_LEQ", "BRANCH_LT"):
            return False  # DuckDB sorts NaN above all numbers: only <= and < route NaN like ORT
        (true_lo, true_hi), (false_lo, false_hi) = number_sides(test)
        ok = walk(
            node.true, _set(lo, f, max(lo[f], true_lo)), _set(hi, f, min(hi[f], true_hi)), _set(nan, f, nan[f] and test.nan_true)
        )
        return ok and walk(
            node.false, _set(lo, f, max(lo[f], false_lo)), _set(hi, f, min(hi[f], false_hi)), _set(nan, f, nan[f] and not test.nan_true)
        )

    inf = math.inf
    if not walk(0, [-inf] * n_features, [inf] * n_features, [True] * n_features):
        return None
    session = open_session(payload)
    order = sorted(witnesses)
    X = np.array([witnesses[p] for p in order], dtype=np.float32).reshape(
        len(order), n_features
    )
    results = session.run([o.name for o in outputs], {session.get_inputs()[0].name: X})
    return {pos: [np.asarray(result)[row] for result in results] for row, pos in enumerate(order)}


_NO_NUMBER = (math.inf, -math.inf)  # an empty range: max / min with it keep it empty


def ort_test(node: Branch) -> Branch:
    """``node`` with a NaN threshold replaced by one that routes every value as onnxruntime
    does, in DuckDB too. onnxruntime's comparison with a NaN threshold is false for every
    number (true for ``!=``), where DuckDB, sorting NaN above every number, holds
    ``x <= NaN`` and ``x < NaN``: so ``x < -inf`` (``x <= inf`` for ``!=``), NaN routed as before."""
    if not math.isnan(node.threshold) or node.mode == "BRANCH_MEMBER":
        return node
    if node.mode == "BRANCH_NEQ":
        return Branch(node.feature, math.inf, "BRANCH_LEQ", True, node.true, node.false)
    return Branch(node.feature, -math.inf, "BRANCH_LT", node.nan_true, node.true, node.false)


def number_sides(node: Branch) -> tuple[tuple[float, float], tuple[float, float]]:
    """The closed float32 ranges of the numbers a ``<=`` / ``<`` test (threshold not NaN) sends
    true and false. No number passes ``x < -inf`` nor fails ``x <= inf``: that side is only
    NaN's (the next float after inf is inf, which had made inf the witness of a leaf only NaN
    reaches, and inf goes the other way)."""
    t = float(np.float32(node.threshold))
    if node.mode == "BRANCH_LEQ":
        above = (float(np.nextafter(np.float32(t), np.float32(math.inf))), math.inf)
        return (-math.inf, t), (above if t < math.inf else _NO_NUMBER)
    below = (-math.inf, float(np.nextafter(np.float32(t), np.float32(-math.inf))))
    return (below if t > -math.inf else _NO_NUMBER), (t, math.inf)


def _set(values: list[Any], index: int, value: object) -> list[Any]:
    copy = list(values)
    copy[index] = value
    return copy


def value_literal(v: object) -> str:
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    return _lit(float(v))  # type: ignore[arg-type]


def _mean_depth(tree: Tree) -> float:
    depths: list[int] = []

    def walk(pos: int, d: int) -> None:
        node = tree.nodes[pos]
        if isinstance(node, Leaf):
            depths.append(d)
        else:
            walk(node.true, d + 1)
            walk(node.false, d + 1)

    walk(0, 0)
    return sum(depths) / len(depths) if depths else 0.0


def mean_depth(forest: Forest) -> float:
    """Average leaf depth over all trees (a proxy for comparisons per row)."""
    if not forest.trees:
        return 0.0
    return sum(_mean_depth(t) for t in forest.trees) / len(forest.trees)


def template(
    sql_model: SqlModel, outputs: tuple[TensorSpec, ...], guards: int
) -> exp.Expression | None:
    """The parsed expression with ``__f{i}__`` / ``__g{i}__`` placeholders (cacheable: parsing is slow)."""
    if sql_model.body is not None:
        build = sql_model.trees.get(None)
        return _finish(build() if build is not None else sql_model.body, outputs, guards)
    parts: list[str] = []
    for spec in outputs:
        text = sql_model.outputs.get(spec.name)
        if text is None and len(outputs) == 1:
            text = sql_model.outputs.get("__single__")
        if text is None:
            return None
        sql_type = _SQL_TYPES.get(spec.elem_type)
        if sql_type is None:
            return None
        cols = width(spec)
        if isinstance(text, list):
            if cols == 1 and len(text) == 1:
                value = f"CAST({text[0]} AS {sql_type})"
            elif cols == len(text) or cols is None:
                value = "[" + ", ".join(f"CAST({t} AS {sql_type})" for t in text) + "]"
            else:
                return None
        else:
            if cols != 1:
                return None
            value = f"CAST({text} AS {sql_type})"
            build = sql_model.trees.get(spec.name if spec.name in sql_model.outputs else "__single__")
            if build is not None and len(outputs) == 1:  # the value is this CAST alone
                return _finish(parse_with(f"CAST(__nbgov_value__ AS {sql_type})", {"__nbgov_value__": build}), outputs, guards)
        parts.append(value)
    return _finish(_pack(parts), outputs, guards)


def _pack(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return (
        "struct_pack("
        + ", ".join(f"__o{i}__ := {p}" for i, p in enumerate(parts))
        + ")"
    )


def _finish(body: str | exp.Expr, outputs: tuple[TensorSpec, ...], guards: int) -> exp.Expression:
    """The body (text, or the tree parsing it gives) NULL under the guards, with the output
    names; the tree is fresh, so renamed in place (a copy of a large ensemble took seconds)."""
    if isinstance(body, str):
        if guards:
            conds = " OR ".join(f"__g{i}__ IS NULL" for i in range(guards))
            body = f"CASE WHEN {conds} THEN NULL ELSE {body} END"
        tree = sqlglot.parse_one(body, dialect="duckdb")
    elif guards:
        conds = " OR ".join(f"__g{i}__ IS NULL" for i in range(guards))
        tree = sqlglot.parse_one(f"CASE WHEN {conds} THEN NULL ELSE __nbgov_body__ END", dialect="duckdb")
        default = tree.args["default"]
        assert isinstance(default, exp.Column) and default.name == "__nbgov_body__"
        default.replace(body)
    else:
        tree = body
    names = {f"__o{i}__": spec.name for i, spec in enumerate(outputs)}

    def rename(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Identifier) and node.this in names:
            return exp.to_identifier(names[node.this], quoted=True)
        return node

    return tree.transform(rename, copy=False)


def fill(
    shape: exp.Expression,
    feature_exprs: list[exp.Expression],
    null_guard: list[exp.Expression],
    *,
    copy: bool = True,
) -> exp.Expression:
    """Put the call's column expressions into a template's placeholders (in ``shape`` itself
    unless ``copy``: a template kept for other calls must be copied)."""

    def substitute(node: exp.Column) -> exp.Expression | None:
        if not node.table:
            name = node.name
            if name.startswith("__f") and name.endswith("__"):
                return feature_exprs[int(name[3:-2])].copy()
            if name.startswith("__g") and name.endswith("__"):
                return null_guard[int(name[3:-2])].copy()
        return None

    # what ``shape.transform(substitute)`` gives, visiting only the columns of the copy
    # (a large ensemble's template holds tens of thousands of other nodes)
    filled = shape.copy() if copy else shape
    for column in list(filled.find_all(exp.Column)):
        value = substitute(column)
        if value is None:
            continue
        if column is filled:
            return value
        column.replace(value)
    return filled


def elem_name(onnx_type: int) -> str | None:
    return _ONNX_TO_NAME.get(onnx_type)


def input_elem(model: onnx.ModelProto) -> tuple[str, int] | None:
    """(element type, feature count) of the single 2-D input, if that is what the model takes."""
    if len(model.graph.input) != 1:
        return None
    ttype = model.graph.input[0].type.tensor_type
    elem = elem_name(ttype.elem_type)
    dims = ttype.shape.dim
    if elem is None or len(dims) != 2 or not dims[1].HasField("dim_value"):
        return None
    return elem, int(dims[1].dim_value)
