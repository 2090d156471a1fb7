"""Lower a pipeline in front of tree ensembles to trees over SQL-computed columns.

After lowering, the model is what every tree rule already handles — one
``[N, k]`` float input read by tree ensembles only — and its k columns are SQL
expressions over the call's own arguments:

* a numeric input column, as is: its scaler, imputer or binarizer is folded
  into the thresholds of the tests that read it (``fold.py``), so the trees
  test the raw value and the query's ranges on it prune them directly;
* a one-hot column, ``CAST(CAST(plan AS VARCHAR) = 'gold' AS FLOAT)``, and a
  label-encoded column, a ``CASE`` over the known strings: exact 0/1 or codes,
  and strings never travel to onnxruntime;
* a double input imputed and scaled in double and cast to float (how nbgov converts
  a scikit-learn pipeline, as scikit-learn computes it): the steps computed in SQL,
  ``CAST((CAST(income AS DOUBLE) - 52000.0e0) / 16000.0e0 AS FLOAT)``, IEEE double
  arithmetic as onnxruntime's; a test on that float cannot be carried back to one
  threshold on a double, so the query's ranges reach it carried forward instead.

Every branch of every tree goes the same way as in the original model, for every
row, so outputs are identical.  What onnxruntime would refuse is refused too: a
category a strict OneHotEncoder or OrdinalEncoder does not know, or NaN reaching a Binarizer, make
the lowered call fail (``Check``), unless the query proves they cannot occur.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
import sqlglot.expressions as exp

from nbgov.sqlml.models.pipeline import (
    Feature,
    LabelCode,
    Mixed,
    OneHot,
    Pipeline,
    Source,
)
from nbgov.sqlml.models.steps import Arith, Binarize, CastTo, Impute, Step, apply_steps, direction, origin
from nbgov.sqlml.optimizer.categories import Categories
from nbgov.sqlml.optimizer.checks import Check, Unrefusable, refusals
from nbgov.sqlml.optimizer.domains import Domain
from nbgov.sqlml.optimizer.encoders_sql import encoded_sql, exact_double
from nbgov.sqlml.optimizer.fold import Decided, NotFoldable, TreeTest, fold_tests
from nbgov.sqlml.models.forest import Branch, Forest, Leaf, Tree, write_forest
from nbgov.sqlml.optimizer.label_rule import keep_label_rule
from nbgov.sqlml.models.treegraph import analyze


class NotLowerable(ValueError):
    """The pipeline cannot be lowered exactly (the message says why, for EXPLAIN)."""


@dataclass(frozen=True)
class LoweredColumn:
    """One column of the lowered model: a source column, maybe encoded."""

    source: Source
    encoder: OneHot | LabelCode | None = None
    through: tuple[str, ...] = ()  # transforms folded into the trees' tests on it
    computed: tuple[Step, ...] = ()  # monotone steps computed in SQL (a double input)

    def sql(self, value: exp.Expression) -> exp.Expression:
        """The column's value from the call's argument ``value`` (NULL stays NULL)."""
        if self.computed:
            return computed_sql(self.computed, exp.cast(value.copy(), "DOUBLE"))
        if self.encoder is None:
            return value.copy()
        return encoded_sql(self.encoder, value, "FLOAT")

    def query_domain(self, raw: Domain | Categories | None) -> Domain | None:
        """The values this column takes given what the query proves about its source."""
        if self.computed:
            return carried_forward(self.computed, raw) if isinstance(raw, Domain) else None
        if self.encoder is None:
            return raw if isinstance(raw, Domain) else None
        strings = raw if isinstance(raw, Categories) else Categories()
        values: set[float] = set()
        if isinstance(self.encoder, OneHot):
            if strings.admits(self.encoder.category):
                values.add(1.0)
            if strings.allowed is None or strings.allowed - {self.encoder.category}:
                values.add(0.0)
        else:
            values = {v for k, v in self.encoder.mapping if strings.admits(k)}
            unknown = not strings.only_within(tuple(k for k, _ in self.encoder.mapping))
            if unknown and not self.encoder.strict:  # a strict encoder's unknown rows fail (checks.py)
                values.add(self.encoder.default)
        numbers = {v for v in values if not math.isnan(v)}  # an unknown_value may be NaN
        nan = len(numbers) < len(values)
        if not numbers:  # NaN alone, or the query admits no row here
            return Domain.nan_only() if nan else Domain(lo=1.0, hi=0.0, values=frozenset(), nan=False)
        return Domain(lo=min(numbers), hi=max(numbers), values=frozenset(numbers), nan=nan)

    def name(self, column: str) -> str:
        """What this column computes, for notes: ``plan = 'gold'``, ``plan (label-encoded)``, ``age``."""
        if isinstance(self.encoder, OneHot):
            return f"{column} = {exp.Literal.string(self.encoder.category).sql(dialect='duckdb')}"
        if isinstance(self.encoder, LabelCode):
            return f"{column} (label-encoded)"
        return column

    def describe(self, column: str) -> str:
        if isinstance(self.encoder, OneHot):
            return f"{column} (one-hot)"
        if isinstance(self.encoder, LabelCode):
            return f"{column} (label-encoded)"
        if self.computed and self.through:
            return f"{column} (computed in SQL: {', '.join(self.through)})"
        return f"{column} (through {', '.join(self.through)})" if self.through else column


@dataclass(frozen=True)
class LoweredTrees:
    """The lowered model (tree ensembles over ``columns``) and what keeps it honest."""

    model: onnx.ModelProto = field(repr=False)
    columns: tuple[LoweredColumn, ...]
    checks: tuple[Check, ...]
    sources: tuple[Source, ...]  # every column of every model input
    folded: int  # tests carried back through a transform
    decided: int  # tests a transform made constant (removed)


def lower_trees(pipeline: Pipeline) -> LoweredTrees:
    """Lower ``pipeline`` (a featurizer in front of tree ensembles), or raise NotLowerable."""
    graph = analyze(pipeline.head)
    if graph is None or not pipeline.trees_only:
        raise NotLowerable("the model proper is not tree ensembles alone")
    if graph.elem_type != "float" or any(f.threshold_dtype is not np.float32 for f in graph.forests):
        raise NotLowerable("the trees compare doubles (only float trees are lowered)")
    try:
        checks = refusals(pipeline)
    except Unrefusable as err:
        raise NotLowerable(str(err)) from None
    used = sorted(graph.used_features())
    columns: list[LoweredColumn] = []
    index: dict[tuple[Source, object, tuple[Step, ...]], int] = {}
    tests: dict[int, list[TreeTest]] = {}
    for forest in graph.forests:
        for tree in forest.trees:
            for node in tree.nodes:
                if isinstance(node, Branch):
                    tests.setdefault(node.feature, []).append(TreeTest(node.mode, node.threshold, node.nan_true))
    folded: dict[tuple[int, TreeTest], Decided | tuple[int, TreeTest]] = {}
    count_folded = count_decided = 0
    for f in used:
        column = pipeline.features[f]
        target, steps = _lowered(column, f)
        key = (target.source, target.encoder, target.computed)
        if key not in index:
            index[key] = len(columns)
            columns.append(target)
        elif steps:
            merged = tuple(dict.fromkeys(columns[index[key]].through + target.through))
            columns[index[key]] = LoweredColumn(target.source, target.encoder, merged)
        unique = list(dict.fromkeys(tests[f]))
        if any(t.mode == "BRANCH_MEMBER" for t in unique) and steps:
            raise NotLowerable(f"feature {f} has set-membership tests behind a transform")
        try:
            results = fold_tests(steps, unique) if steps else list(unique)
        except NotFoldable as err:
            raise NotLowerable(f"feature {f}: {err}") from None
        for test, result in zip(unique, results):
            if isinstance(result, Decided):
                folded[(f, test)] = result
                count_decided += 1
            else:
                folded[(f, test)] = (index[key], result)
                count_folded += bool(steps)
    model = onnx.ModelProto()
    model.CopyFrom(pipeline.head)
    for position, forest in zip(graph.tree_nodes, graph.forests):
        lowered = Forest(forest.op_type, [_lower_tree(t, folded) for t in forest.trees], forest.threshold_dtype, forest.weight_tensor)
        lowered = keep_label_rule(forest, lowered)  # a transform may have decided the negative leaves away
        model.graph.node[position].CopyFrom(write_forest(pipeline.head.graph.node[position], lowered))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value = max(len(columns), 1)
    if not columns:  # a forest of single leaves: still read one column for the batch size
        columns.append(LoweredColumn(pipeline.sources()[0]))
    return LoweredTrees(model, tuple(columns), checks, tuple(pipeline.sources()), count_folded, count_decided)


def _lowered(column: Feature | Mixed, position: int) -> tuple[LoweredColumn, tuple[Step, ...]]:
    """The lowered column feature ``position`` reads, and the steps to fold into its tests."""
    if isinstance(column, Mixed):
        raise NotLowerable(f"feature {position} is computed by {column.described()}")
    source = column.source
    through = tuple(dict.fromkeys(origin(s) for s in column.steps if origin(s) != "Cast"))
    if column.encoder is None and source.elem_type == "double":
        if not _computable(column.steps):
            raise NotLowerable(f"input {source.input!r} is double and its steps are not a monotone scaling cast to float")
        return LoweredColumn(source, None, through, column.steps), ()
    if column.encoder is None and source.elem_type != "float":
        raise NotLowerable(f"input {source.input!r} is {source.elem_type}; only float and double inputs are lowered")
    return LoweredColumn(source, column.encoder, through), column.steps


def _computable(steps: tuple[Step, ...]) -> bool:
    """Imputation of NaN, arithmetic, casts and thresholds (a Binarizer), monotone, ending in
    float: SQL computes them bit for bit."""
    return (
        bool(steps)
        and all(isinstance(s, (Arith, CastTo, Impute, Binarize)) for s in steps)
        and steps[-1] == CastTo("float")
        and direction(steps) is not None
    )


def computed_sql(steps: tuple[Step, ...], value: exp.Expression) -> exp.Expression:
    """``steps`` on the DOUBLE ``value`` in SQL: IEEE arithmetic in each step's type, as
    onnxruntime's. A cast is written only where the type changes: a DOUBLE constant is
    already a DOUBLE literal (``exact_double``), and DOUBLE arithmetic stays DOUBLE."""
    current, kind = value, "double"

    def typed(expression: exp.Expression, dtype: str, of: str) -> exp.Expression:
        if dtype == "float" and of == "double":
            return float_of_double(expression)
        return expression if dtype == of else exp.cast(expression, dtype.upper())

    def constant(number: float, dtype: str) -> exp.Expression:
        literal = exact_double(number)
        return literal if dtype == "double" and not isinstance(literal, exp.Cast) else exp.cast(literal, dtype.upper())

    for step in steps:
        if isinstance(step, CastTo):
            current, kind = typed(current, step.elem_type, kind), step.elem_type
            continue
        if isinstance(step, Binarize):  # NaN is refused before (checks.py), as onnxruntime does
            above = exp.GT(this=typed(current, step.dtype, kind), expression=constant(float(np.float32(step.threshold)), step.dtype))
            # a cast of the comparison, not a CASE with ELSE 0: NULL stays NULL, so the call's
            # NULL guard over its features still sees a missing input
            current, kind = exp.cast(exp.Paren(this=above), step.dtype.upper()), step.dtype
            continue
        if isinstance(step, Impute):  # NaN only: _computable refuses a number (not monotone)
            current = typed(current, step.dtype, kind)
            hit = exp.Anonymous(this="isnan", expressions=[current.copy()])
            current, kind = exp.Case(ifs=[exp.If(this=hit, true=constant(step.value, step.dtype))], default=current), step.dtype
            continue
        assert isinstance(step, Arith)
        operand = typed(current, step.dtype, kind)
        fixed = constant(step.constant, step.dtype)
        left, right = (fixed, operand) if step.constant_first else (operand, fixed)
        node = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul, "/": exp.Div}[step.op]
        result = exp.Paren(this=node(this=left, expression=right))
        current, kind = (result if step.dtype == "double" else exp.cast(result, step.dtype.upper())), step.dtype
    return current


_FLOAT_OF_DOUBLE = "nbgov_float_of_double"  # meta key of a float_of_double node


def float_of_double(value: exp.Expression) -> exp.Expression:
    """``value`` (DOUBLE) as FLOAT the way onnxruntime's Cast makes it: rounded, and ±inf
    beyond float32's range. DuckDB's CAST fails there ("out of range for the destination
    type FLOAT"), so a pipeline scaling a double input in double failed on 1e39 once
    lowered to SQL where --no-optimize scored it. TRY_CAST gives NULL exactly there (from
    FLT_MAX + half an ulp, as a C cast rounds), and only those rows compute the infinity of
    the value's sign: a CASE testing every value cost a third of a selective query."""
    infinity = exp.Mul(
        this=exp.cast(exp.Anonymous(this="sign", expressions=[value.copy()]), "FLOAT"),
        expression=exp.cast(exp.Literal.string("inf"), "FLOAT"),
    )
    node = exp.Coalesce(this=exp.TryCast(this=value, to=exp.DataType.build("FLOAT")), expressions=[infinity])
    node.meta[_FLOAT_OF_DOUBLE] = True
    return node


def double_behind(expression: exp.Expression) -> exp.Expression | None:
    """The DOUBLE that ``expression`` only rounds to FLOAT last (``float_of_double``), else
    None. A batch scored from Arrow can read that DOUBLE instead: its feed rounds it into
    the float32 matrix as a C cast does (±inf beyond float32's range), as onnxruntime's
    Cast does, without the TRY_CAST that cost a selective pipeline query an eighth of
    its time."""
    if isinstance(expression, exp.Coalesce) and expression.meta.get(_FLOAT_OF_DOUBLE):
        return expression.this.this
    return None


def carried_forward(steps: tuple[Step, ...], raw: Domain) -> Domain:
    """The values ``steps`` give on ``raw``: monotone, so the ends map to the ends (closed:
    rounding may bring an open end's neighbours onto it)."""
    ends = apply_steps(steps, np.array([raw.lo, raw.hi], dtype=np.float64)).astype(np.float64)
    lo, hi = (float(ends[0]), float(ends[1])) if direction(steps) == 1 else (float(ends[1]), float(ends[0]))
    values = None
    if raw.values is not None:
        values = frozenset(float(v) for v in apply_steps(steps, np.array(sorted(raw.values), dtype=np.float64)))
    nan = raw.nan
    if nan:  # an imputer turns NaN into a number
        image = float(apply_steps(steps, np.array([np.nan]))[0])
        if not math.isnan(image):
            lo, hi, nan = min(lo, image), max(hi, image), False
            values = None if values is None else values | {image}
    return Domain(lo=lo, hi=hi, values=values, nan=nan)


def _lower_tree(tree: Tree, folded: dict[tuple[int, TreeTest], Decided | tuple[int, TreeTest]]) -> Tree:
    out = Tree()

    def visit(pos: int) -> int:
        node = tree.nodes[pos]
        if isinstance(node, Leaf):
            out.nodes.append(Leaf(list(node.weights)))
            return len(out.nodes) - 1
        result = folded[(node.feature, TreeTest(node.mode, node.threshold, node.nan_true))]
        if isinstance(result, Decided):
            return visit(node.true if result.outcome else node.false)
        column, test = result
        me = len(out.nodes)
        branch = Branch(column, test.threshold, test.mode, test.nan_true, -1, -1, node.members)
        out.nodes.append(branch)
        branch.true = visit(node.true)
        branch.false = visit(node.false)
        return me

    visit(0)
    return out
