"""Predicates on a model's own output (``WHERE predict(m, *) > 0.9``).

Such a predicate says nothing about the model's *inputs*, so it never feeds
pruning (doing so would be unsound: the output is what is being computed).
For a single regression tree it does decide which leaves pass: the comparison
then becomes a boolean tree — each leaf replaced by whether its exact output
passes, subtrees whose leaves agree collapsed — and runs in the engine (DuckDB or
Spark, as the notes say) as a plain filter, with no model scoring at all.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import numpy as np
import sqlglot.expressions as exp

from nbgov.sqlml.models.forest import Branch, Forest, Leaf
from nbgov.sqlml.models.onnxtypes import width
from nbgov.sqlml.optimizer.predicates import COMPARISONS, FLIP, number, output_comparison
from nbgov.sqlml.optimizer.to_sql import SqlModel, branch_test, leaf_outputs, value_literal
from nbgov.sqlml.plan import TensorSpec

if TYPE_CHECKING:
    from nbgov.sqlml.optimizer.state import PlanState

__all__ = ["BooleanTree", "boolean_tree_sql", "comparison_node", "output_comparison", "rule"]

MAX_BRANCHES = 256  # a bigger boolean CASE costs DuckDB more to plan than it saves
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "=": operator.eq}

def rule(state: PlanState) -> PlanState:
    """Rule 4: ``predict(...) op c`` on a single float tree with one scalar output becomes a
    boolean tree the engine runs as a filter (each leaf's exact output is compared)."""
    compared = comparison_node(state.call.node)
    outputs = state.call.model.outputs
    if state.decided is not None or state.trees is None or state.trees.elem_type != "float" or compared is None:
        return state
    if len(outputs) != 1 or width(outputs[0]) != 1:
        return state
    rebuilt = state.rebuilt()
    if rebuilt.graph is None or len(rebuilt.graph.forests) != 1:
        return state
    _, op, constant = compared
    built = boolean_tree_sql(rebuilt.payload, rebuilt.graph.forests[0], len(rebuilt.kept), outputs[0], op, constant)
    if built is None:
        return state
    sql_model, kept = built
    literal = constant.sql(dialect="duckdb")
    features = [state.bound.columns[j] for j in rebuilt.kept]
    guard = state.null_guard([*state.dropped(), *rebuilt.kept])
    expression = state.render(f"{rebuilt.cache_key}:{op}:{literal}", sql_model, features, guard)
    if expression is None:
        return state
    engine = state.engine.label
    boundary = f" ({kept.boundary} at the boundary, compared by {engine})" if kept.boundary else ""
    state = state.with_stats(
        strategy="sql-filter", leaves=kept.leaves, leaves_passing=kept.passing, branches_kept=kept.branches
    ).note(
        f"output predicate {op} {literal}: boolean tree: {kept.passing} of {kept.leaves} leaves pass{boundary}, "
        f"{kept.branches} branches kept; runs in {engine} as a filter (no model scoring)"
    )
    return replace(state, decided=state.sql_plan(expression, comparison=True))


@dataclass(frozen=True)
class BooleanTree:
    """What the boolean tree kept: leaves that pass, leaves left to the engine (their output
    equals the constant as one type but not another), all leaves, branches kept."""

    passing: int
    boundary: int
    leaves: int
    branches: int


def comparison_node(node: exp.Expr) -> tuple[exp.Expr, str, exp.Expr] | None:
    """``(comparison, op, constant)`` when the call's value itself is compared with a
    number (``predict(...) > 0.9``, ``0.9 < (predict(...))``); ``op`` reads as
    ``value op constant``."""
    child: exp.Expr = node
    parent = node.parent
    while isinstance(parent, exp.Paren):
        child, parent = parent, parent.parent
    op = COMPARISONS.get(type(parent)) if parent is not None else None
    if op is None or parent is None:
        return None
    if parent.this is child and number(parent.expression) is not None:
        return parent, op, parent.expression
    if parent.expression is child and number(parent.this) is not None:
        return parent, FLIP[op], parent.this
    return None


def boolean_tree_sql(
    payload: bytes,
    forest: Forest,
    n_features: int,
    output: TensorSpec,
    op: str,
    constant: exp.Expr,
) -> tuple[SqlModel, BooleanTree] | None:
    """``value op constant`` for a single-output single-tree regressor as a boolean CASE
    over the features, or None.

    A leaf is decided only where comparing as FLOAT, as DOUBLE and as exact decimals
    all agree (however the engine types the literal); a leaf at the boundary keeps the
    comparison ``CAST(leaf AS FLOAT) op constant`` for the engine to evaluate.
    """
    scored = leaf_outputs(payload, forest, n_features, (output,))
    value = number(constant)
    if scored is None or value is None or output.elem_type != "float":
        return None
    literal = constant.sql(dialect="duckdb")
    tree = forest.trees[0]
    kept = 0

    def leaf(pos: int) -> bool | str:
        flat = np.ravel(scored[pos][0])
        if flat.size != 1:
            raise ValueError("not a scalar output")
        decided = _decide(float(flat[0]), op, value, literal)
        return decided if decided is not None else f"(CAST({value_literal(flat[0])} AS FLOAT) {op} {literal})"

    def collapse(pos: int) -> bool | str:
        nonlocal kept
        node = tree.nodes[pos]
        if isinstance(node, Leaf):
            return leaf(pos)
        assert isinstance(node, Branch)
        yes, no = collapse(node.true), collapse(node.false)
        if isinstance(yes, bool) and isinstance(no, bool) and yes == no:
            return yes
        kept += 1
        return f"CASE WHEN {branch_test(node)} THEN {_text(yes)} ELSE {_text(no)} END"

    try:
        body = collapse(0)
    except ValueError:
        return None
    if kept > MAX_BRANCHES:
        return None
    outcomes = [leaf(pos) for pos, node in enumerate(tree.nodes) if isinstance(node, Leaf)]
    passing = sum(o is True for o in outcomes)
    boundary = sum(isinstance(o, str) for o in outcomes)
    return SqlModel({}, "trees", kept, body=_text(body)), BooleanTree(passing, boundary, len(outcomes), kept)


def _text(value: bool | str) -> str:
    return ("TRUE" if value else "FALSE") if isinstance(value, bool) else value


def _decide(leaf: float, op: str, value: float, literal: str) -> bool | None:
    """Whether the leaf passes, if that does not depend on how the literal is typed."""
    compare = _OPS[op]
    answers = {
        bool(compare(np.float32(leaf), np.float32(value))),  # literal cast to FLOAT
        bool(compare(leaf, value)),  # leaf widened to DOUBLE
    }
    try:
        answers.add(bool(compare(Decimal(leaf), Decimal(literal.lstrip("(").rstrip(")")))))  # exact
    except (InvalidOperation, ValueError):
        return None
    return answers.pop() if len(answers) == 1 else None
