"""``predict(ensemble, ...) > c`` decided without scoring where bounds prove it.

An ensemble's score is a sum of one leaf per tree, so on any set of rows it lies
between the sums of each tree's smallest and largest reachable leaf.  The
boolean ensemble splits the rows on the trees' own tests (the root of the tree
whose leaves spread most, again and again, a few levels deep); in each cell the
trees are walked with the cell's domains, and when the bounds put the compared
value on one side of ``c`` the cell is TRUE or FALSE outright.  Other cells fall
back to the comparison itself — the model is scored only there.

The bounds are sound under onnxruntime's float32 arithmetic: the exact sums are
widened by the worst rounding error of summing n float32 terms
(``(n + 1) * 2**-24 * sum |leaf|``) and the compared value by 1e-5 for the
LOGISTIC kernel.  A cell is decided only strictly beyond those margins.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import onnx
import sqlglot
import sqlglot.expressions as exp
import xxhash
from onnx import helper

from nbgov.sqlml.optimizer.domains import ModelDomain
from nbgov.sqlml.models.forest import Branch, Forest, Leaf, Tree
from nbgov.sqlml.optimizer.forest_sql import branch_sql
from nbgov.sqlml.optimizer.label_rule import has_negative_weight
from nbgov.sqlml.optimizer.predicates import COMPARISONS, FLIP, number
from nbgov.sqlml.optimizer.to_sql import ort_test
from nbgov.sqlml.plan import OnnxPlan

if TYPE_CHECKING:
    from nbgov.sqlml.optimizer.state import PlanState

FALLBACK = "nbgov_fallback__"  # stands for the comparison itself, in undecided cells
MAX_DEPTH = 6  # cells at most 2**6: a shallow CASE DuckDB runs at scan speed
_UNIT = 2.0**-24
_KERNEL_MARGIN = 1e-5  # onnxruntime's float LOGISTIC vs the exact one

Domains = dict[int, ModelDomain]


@dataclass(frozen=True)
class Compared:
    """The compared value as a monotone function of the ensemble's summed score."""

    op: str  # ">", ">=", "<", "<=", "="
    constant: float
    value: Callable[[float], float]
    increasing: bool
    margin: float


@dataclass(frozen=True)
class BooleanEnsemble:
    """SQL text over ``__f{i}__`` placeholders and ``__fallback__``, and what it decided."""

    body: str
    decided_true: int
    decided_false: int
    undecided: int


@dataclass(frozen=True)
class OutputComparison:
    """``predict(...)[.output][[k]] op constant`` around a call."""

    node: exp.Expr  # the comparison
    op: str  # as ``value op constant``
    constant: float
    output: str | None  # the output read (None: predict's whole value)
    element: int | None  # 0-based element of that output, if indexed


def output_comparison_node(call: exp.Expression) -> tuple[exp.Expr, str, float] | None:
    """(comparison, op, constant) around ``call`` (compile's view of ``read_comparison``)."""
    found = read_comparison(call)
    return None if found is None else (found.node, found.op, found.constant)


def read_comparison(call: exp.Expression) -> OutputComparison | None:
    """The comparison of the call's value, one of its outputs or one element of it with a
    numeric constant, e.g. ``predict(m, *).probabilities[2] > 0.8``; None otherwise."""
    child: exp.Expression = call
    output: str | None = None
    element: int | None = None
    parent = call.parent
    while isinstance(parent, (exp.Paren, exp.Dot, exp.Bracket)):
        if isinstance(parent, exp.Dot):
            if parent.this is not child or output is not None or element is not None:
                return None
            output = parent.expression.name
        elif isinstance(parent, exp.Bracket):
            index = _constant_index(parent)
            if parent.this is not child or index is None or element is not None:
                return None
            element = index
        child, parent = parent, parent.parent
    op = COMPARISONS.get(type(parent)) if parent is not None else None
    if op is None or parent is None:
        return None
    if parent.this is child and (value := number(parent.expression)) is not None:
        return OutputComparison(parent, op, value, output, element)
    if parent.expression is child and (value := number(parent.this)) is not None:
        return OutputComparison(parent, FLIP[op], value, output, element)
    return None


def _constant_index(bracket: exp.Bracket) -> int | None:
    """The 0-based constant index of ``x[k]`` (sqlglot stores DuckDB's 1-based k as k-1)."""
    if bracket.args.get("offset") or bracket.args.get("safe") or len(bracket.expressions) != 1:
        return None
    key = bracket.expressions[0]
    if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
        return int(key.this)
    return None


def rule(state: PlanState) -> PlanState:
    """Rule 4b: ``predict(ensemble, ...) op c`` becomes a boolean CASE over the trees'
    tests where bounds decide it, the model scoring only the other rows."""
    if state.decided is not None or state.trees is None or len(state.trees.forests) != 1:
        return state
    compared = read_comparison(state.call.node)
    if compared is None:
        return state
    rebuilt = state.rebuilt()
    graph = rebuilt.graph
    if graph is None or len(graph.forests) != 1 or len(graph.forests[0].trees) < 2:
        return state  # one tree: output_predicates decides it leaf by leaf
    forest = graph.forests[0]
    node = graph.model.graph.node[graph.tree_nodes[0]]
    outputs = state.call.model.outputs
    element = compared.element
    if compared.output is None and len(outputs) == 1 and element is None:
        pass  # a regressor's scalar
    elif compared.output is not None and len(outputs) == 2 and compared.output.lower() == outputs[1].name.lower():
        pass  # a classifier's probabilities[k]
    else:
        return state
    value = compared_value(node, forest, element, compared.op, compared.constant)
    if value is None:
        return state
    cells = _cell_domains(state, rebuilt.kept)
    key = f"{rebuilt.cache_key}:bounds:{compared.op}:{compared.constant!r}:{element}:{_cells_key(cells)}"
    built = state.memo.get("bounds", key, lambda: boolean_ensemble(forest, cells, value))
    if built.decided_true + built.decided_false == 0:
        return state.note(f"output predicate {compared.op} {compared.constant:g}: the trees' bounds decide no rows")
    shape = state.memo.get("bounds-sql", key, lambda: sqlglot.parse_one(built.body, dialect="duckdb"))
    features = [state.bound.columns[j] for j in rebuilt.kept]
    guard = state.null_guard([*state.dropped(), *rebuilt.kept])
    expression = _fill(shape, features, guard, built.undecided > 0)
    fallback = replace(state, decided=None).finish().strategy
    assert isinstance(fallback, OnnxPlan)
    cells_total = built.decided_true + built.decided_false + built.undecided
    state = state.with_stats(strategy="sql-filter+onnx", cells=cells_total, cells_decided=cells_total - built.undecided).note(
        f"output predicate {compared.op} {compared.constant:g}: bounds of the trees' leaf sums decide "
        f"{cells_total - built.undecided} of {cells_total} cells of the inputs ({built.decided_true} true, "
        f"{built.decided_false} false); the model scores only rows in the other {built.undecided}"
    )
    plan = state.sql_plan(expression, comparison=True, fallback=fallback, open_share=built.undecided / cells_total)
    return replace(state, decided=plan)


def _cell_domains(state: PlanState, kept: tuple[int, ...]) -> Domains:
    """The query's domains on the kept features, renumbered as the rebuilt model reads them."""
    if state.constraints is None or state.trees is None:
        return {}
    elem = state.trees.elem_type
    out: Domains = {}
    for new, old in enumerate(kept):
        domain = state.constraints.domains.get((0, old))
        if domain is not None and not domain.unconstrained:
            out[new] = domain.in_model_space(elem)
    return out


def _cells_key(cells: Domains) -> str:
    """The domains the bounds were decided over, for the memo key: the rebuilt model's key
    does not hold them all (a predicate admitting no rows prunes nothing, so its model is
    the unconstrained one, but its bounds decide every cell)."""
    normalized = ";".join(f"{j}:{cells[j].key()}" for j in sorted(cells))
    return xxhash.xxh3_128_hexdigest(normalized.encode())


def _fill(shape: exp.Expr, features: list[exp.Expression], guard: list[exp.Expression], open_cells: bool) -> exp.Expression:
    """The boolean CASE over the call's columns; NULL (like the comparison) when an input is.

    With ``open_cells``, the CASE gives NULL in undecided cells and one ``COALESCE`` reads
    the fallback there: DuckDB evaluates it on those rows only, in one call per vector of
    rows (a fallback at every undecided leaf would cost one model call per leaf)."""

    def put(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name == FALLBACK:
            return exp.cast(exp.Null(), exp.DataType.build("boolean"))
        if isinstance(node, exp.Column) and not node.table and node.name.startswith("__f") and node.name.endswith("__"):
            return features[int(node.name[3:-2])].copy()
        return node

    body = shape.transform(put)
    assert isinstance(body, exp.Expression)
    if open_cells:
        body = exp.Coalesce(this=body, expressions=[exp.column(FALLBACK)])
    if not guard:
        return body
    any_null: exp.Expr = exp.Is(this=guard[0].copy(), expression=exp.Null())
    for value in guard[1:]:
        any_null = exp.or_(any_null, exp.Is(this=value.copy(), expression=exp.Null()))
    return exp.Case(ifs=[exp.If(this=any_null, true=exp.Null())], default=body)


def compared_value(node: onnx.NodeProto, forest: Forest, element: int | None, op: str, constant: float) -> Compared | None:
    """How ``output[element] op constant`` reads the summed score, or None if not monotone
    in it (``element``: None for a regressor's scalar, the class index of probabilities)."""
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    post = _text(a.get("post_transform", b"NONE"))
    base = [float(v) for v in a.get("base_values") or []]
    if "base_values_as_tensor" in a or len(base) > 1:
        return None
    offset = base[0] if base else 0.0
    if node.op_type == "TreeEnsembleRegressor" and element is None:
        if post != "NONE" or _text(a.get("aggregate_function", b"SUM")) != "SUM":
            return None
        return Compared(op, constant, lambda s: s + offset, True, _UNIT * (abs(offset) + 1.0))
    ids = {t for tree in forest.trees for n in tree.nodes if isinstance(n, Leaf) for t, _ in n.weights}
    labels = list(a.get("classlabels_int64s") or a.get("classlabels_strings") or [])
    if node.op_type != "TreeEnsembleClassifier" or ids != {0} or len(labels) != 2 or element not in (0, 1):
        return None
    positive = not has_negative_weight(forest)
    if post == "LOGISTIC":
        p1: Callable[[float], float] = lambda s: 1.0 / (1.0 + math.exp(-(s + offset)))  # noqa: E731
        margin = _KERNEL_MARGIN
    elif post == "NONE":
        p1 = lambda s: s + offset  # noqa: E731
        margin = _UNIT * (abs(offset) + 1.0)
    else:
        return None
    if element == 1:
        return Compared(op, constant, p1, True, margin)
    if post == "NONE" and not positive:
        return Compared(op, constant, lambda s: -p1(s), False, margin)
    return Compared(op, constant, lambda s: 1.0 - p1(s), False, margin)


def boolean_ensemble(forest: Forest, domains: Domains, compared: Compared, max_depth: int = MAX_DEPTH) -> BooleanEnsemble:
    """The comparison as a CASE over the trees' tests, TRUE / FALSE where bounds decide."""
    walker = _Walker(forest, domains)
    counts = {"true": 0, "false": 0, "undecided": 0}

    def build(depth: int) -> str:
        lo, hi, spreads = walker.bounds()
        decided = _decide(compared, lo, hi)
        if decided is not None:
            counts["true" if decided else "false"] += 1
            return "TRUE" if decided else "FALSE"
        split = walker.split(spreads) if depth < max_depth else None
        if split is None:
            counts["undecided"] += 1
            return FALLBACK
        sides = []
        for went_true in (True, False):
            saved = walker.narrow(split, went_true)
            sides.append(build(depth + 1))
            walker.restore(split.feature, saved)
        yes, no = sides
        if yes == no:
            return yes
        return f"CASE WHEN {branch_sql(split)} THEN {yes} ELSE {no} END"

    body = build(0)
    return BooleanEnsemble(body, counts["true"], counts["false"], counts["undecided"])


class _Walker:
    """Walks the trees under one cell of feature domains, kept as mutable per-feature
    bounds (closed, in the model's float type) narrowed and restored as cells nest:
    the bound of a tree is the range of the leaves a row of the cell can reach."""

    def __init__(self, forest: Forest, domains: Domains) -> None:
        self.forest = forest
        self.dtype = forest.threshold_dtype
        features = max([f for f in domains] + [n.feature for t in forest.trees for n in t.nodes if isinstance(n, Branch)] + [0]) + 1
        self.lo = [-math.inf] * features
        self.hi = [math.inf] * features
        self.nan = [True] * features
        for f, dom in domains.items():
            values = dom.values
            self.lo[f] = min(values) if values else dom.lo
            self.hi[f] = max(values) if values else dom.hi
            if values == ():
                self.lo[f], self.hi[f] = math.inf, -math.inf
            self.nan[f] = dom.nan
        self._up: dict[float, float] = {}
        self._down: dict[float, float] = {}

    def bounds(self) -> tuple[float, float, list[float]]:
        """Sound bounds of the float32 sum over the cell's rows, and each tree's leaf spread."""
        lows, highs = [], []
        for tree in self.forest.trees:
            lo, hi = self._range(tree, 0)
            lows.append(lo)
            highs.append(hi)
        if any(lo > hi for lo, hi in zip(lows, highs)):  # a tree no row reaches: an empty cell
            return math.inf, -math.inf, [0.0] * len(lows)
        lo, hi = math.fsum(lows), math.fsum(highs)
        worst = math.fsum(max(abs(a), abs(b)) for a, b in zip(lows, highs))
        error = (len(lows) + 1) * _UNIT * worst
        return lo - error, hi + error, [b - a for a, b in zip(lows, highs)]

    def _range(self, tree: Tree, pos: int) -> tuple[float, float]:
        node = tree.nodes[pos]
        if isinstance(node, Leaf):
            value = math.fsum(w for _, w in node.weights)
            return value, value
        can_true, can_false = self.sides(node)
        lo, hi = math.inf, -math.inf
        for went_true, possible in ((True, can_true), (False, can_false)):
            if possible:
                saved = self.narrow(node, went_true)
                a, b = self._range(tree, node.true if went_true else node.false)
                self.restore(node.feature, saved)
                lo, hi = min(lo, a), max(hi, b)
        return lo, hi

    def sides(self, node: Branch) -> tuple[bool, bool]:
        """Whether a row of the cell can take the true branch, and the false one (a NaN
        threshold sends every number one way: ``ort_test``)."""
        node = ort_test(node)
        f, t = node.feature, float(node.threshold)
        lo, hi, nan = self.lo[f], self.hi[f], self.nan[f]
        nan_true = node.nan_true or node.mode == "BRANCH_NEQ"
        numbers = lo <= hi
        true_side, false_side = {
            "BRANCH_LEQ": (lo <= t, hi > t),
            "BRANCH_LT": (lo < t, hi >= t),
            "BRANCH_GTE": (hi >= t, lo < t),
            "BRANCH_GT": (hi > t, lo <= t),
            "BRANCH_EQ": (lo <= t <= hi, not lo == hi == t),
            "BRANCH_NEQ": (not lo == hi == t, lo <= t <= hi),
        }.get(node.mode, (True, True))
        return (numbers and true_side) or (nan and nan_true), (numbers and false_side) or (nan and not nan_true)

    def narrow(self, node: Branch, went_true: bool) -> tuple[float, float, bool]:
        """Restrict the node's feature to the rows taking that branch; returns what to restore."""
        node = ort_test(node)
        f, t = node.feature, float(node.threshold)
        saved = (self.lo[f], self.hi[f], self.nan[f])
        lower, upper = {
            ("BRANCH_LEQ", True): (-math.inf, t),
            ("BRANCH_LEQ", False): (self._next(t, True), math.inf),
            ("BRANCH_LT", True): (-math.inf, self._next(t, False)),
            ("BRANCH_LT", False): (t, math.inf),
            ("BRANCH_GTE", True): (t, math.inf),
            ("BRANCH_GTE", False): (-math.inf, self._next(t, False)),
            ("BRANCH_GT", True): (self._next(t, True), math.inf),
            ("BRANCH_GT", False): (-math.inf, t),
            ("BRANCH_EQ", True): (t, t),
            ("BRANCH_NEQ", False): (t, t),
        }.get((node.mode, went_true), (-math.inf, math.inf))
        self.lo[f], self.hi[f] = max(self.lo[f], lower), min(self.hi[f], upper)
        self.nan[f] = self.nan[f] and ((node.nan_true or node.mode == "BRANCH_NEQ") == went_true)
        return saved

    def restore(self, feature: int, saved: tuple[float, float, bool]) -> None:
        self.lo[feature], self.hi[feature], self.nan[feature] = saved

    def _next(self, t: float, up: bool) -> float:
        cache = self._up if up else self._down
        if t not in cache:
            cache[t] = float(np.nextafter(self.dtype(t), self.dtype(math.inf if up else -math.inf)))
        return cache[t]

    def split(self, spreads: list[float]) -> Branch | None:
        """The first test the cell leaves open in the tree whose reachable leaves spread most."""
        for index in np.argsort(spreads)[::-1]:
            if spreads[index] <= 0:
                return None
            tree = self.forest.trees[int(index)]
            pos, changed = 0, []
            found = None
            while isinstance(tree.nodes[pos], Branch):
                node = tree.nodes[pos]
                assert isinstance(node, Branch)
                can_true, can_false = self.sides(node)
                if can_true and can_false:
                    found = node if node.mode != "BRANCH_MEMBER" else None
                    break
                changed.append((node.feature, self.narrow(node, can_true)))
                pos = node.true if can_true else node.false
            for feature, saved in reversed(changed):
                self.restore(feature, saved)
            if found is not None:
                return found
        return None


def _decide(compared: Compared, lo: float, hi: float) -> bool | None:
    if lo > hi:  # the cell holds no row
        return False
    a, b = compared.value(lo), compared.value(hi)
    low, high = (a, b) if compared.increasing else (b, a)
    low, high = low - compared.margin, high + compared.margin
    c, op = compared.constant, compared.op
    if op in (">", ">="):
        if low > c:
            return True
        if high < c:
            return False
    elif op in ("<", "<="):
        if high < c:
            return True
        if low > c:
            return False
    elif op == "=" and (high < c or low > c):
        return False
    return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
