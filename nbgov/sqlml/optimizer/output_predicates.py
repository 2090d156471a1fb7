"""Predicates on a model's own output (``WHERE predict(m, *) > 0.9``).

Such a predicate says nothing about the model's *inputs*, so it never feeds
pruning (doing so would be unsound: the output is what is being computed).
For a single regression tree, the threshold does decide which leaves can
pass; that is reported so EXPLAIN shows how selective it is.
"""

from __future__ import annotations

import sqlglot.expressions as exp

from nbgov.sqlml.optimizer.forest import Forest, Leaf
from nbgov.sqlml.optimizer.predicates import COMPARISONS, FLIP, number

def output_comparison(node: exp.Expression) -> tuple[str, float] | None:
    """``(op, constant)`` when the call's value is compared with a number, e.g. ``('>', 0.9)``."""
    child: exp.Expr = node
    parent = node.parent
    while isinstance(parent, (exp.Dot, exp.Bracket, exp.Paren, exp.Cast)):
        child, parent = parent, parent.parent
    op = COMPARISONS.get(type(parent)) if parent is not None else None
    if op is None or parent is None:
        return None
    if parent.this is child and (value := number(parent.expression)) is not None:
        return op, value
    if parent.expression is child and (value := number(parent.this)) is not None:
        return FLIP[op], value
    return None


def passing_leaves(forest: Forest, op: str, value: float) -> tuple[int, int] | None:
    """(leaves whose value passes, all leaves) for a single-tree regressor, else None."""
    if len(forest.trees) != 1:
        return None
    leaves = [n for n in forest.trees[0].nodes if isinstance(n, Leaf)]
    passing = 0
    for leaf in leaves:
        total = sum(w for _, w in leaf.weights)
        ok = {
            ">": total > value,
            ">=": total >= value,
            "<": total < value,
            "<=": total <= value,
            "=": total == value,
        }[op]
        passing += ok
    return passing, len(leaves)
