"""Scalar predict() in a CASE/IF branch, a later COALESCE argument or beside an OR, on
Spark: only the rows that reach it are scored, as DuckDB scores them.

Spark evaluates a Python UDF for every row of its input before the CASE around it picks
a branch, so a value the model refuses in a row the CASE sends elsewhere (``CASE WHEN plan
IN (...) THEN predict(m, *) END``) failed the statement on Spark while DuckDB returned
NULL for that row; likewise a row ``plan = 'platinum' OR predict(...)`` decides before the
call (DuckDB evaluates a UDF last). Each UDF call therefore receives, as its first
argument, whether the row reaches it (``worker.udf_function`` scores only those rows;
NULL elsewhere, which leaves the decided AND or OR as it was).
"""

from __future__ import annotations

from collections.abc import Collection

import sqlglot.expressions as exp

from nbgov.sqlml.planning.batching import decided_first, reach_conditions, undecided


def guarded_calls(tree: exp.Expression, functions: Collection[str]) -> exp.Expression:
    """A copy of ``tree`` with a reach condition (TRUE when every row reaches it) put first
    in each call of the UDFs named in ``functions``; ``tree`` itself when it calls none."""
    names = {name.lower() for name in functions}
    if not names or not any(_calls(node, names) for node in tree.find_all(exp.Anonymous)):
        return tree
    copied = tree.copy()
    calls = [node for node in copied.find_all(exp.Anonymous) if _calls(node, names)]
    guards = [_guard(call, names) for call in calls]  # all read before any call changes
    for call, guard in zip(calls, guards):
        call.set("expressions", [guard, *call.expressions])
    return copied


def _calls(node: exp.Anonymous, names: set[str]) -> bool:
    return str(node.this).lower() in names


def _guard(call: exp.Anonymous, names: set[str]) -> exp.Expr:
    branches = reach_conditions(call)
    if any(_calls(node, names) for condition in branches for node in condition.find_all(exp.Anonymous)):
        return exp.true()  # the condition itself scores a model: evaluated as before
    # a side that scores a model, or reads a window or an aggregate (not computable in a
    # UDF's argument), is left out: the call then scores a few more rows, as before; Spark
    # short-circuits an AND/OR left to right wherever it sits, below a NOT too
    beside = [
        undecided(operator, other) for operator, other in decided_first(call, whole_below=False)
        if not any(_calls(node, names) for node in other.find_all(exp.Anonymous))
        and other.find(exp.Window, exp.AggFunc) is None
    ]
    conditions = [*branches, *beside]
    return exp.and_(*conditions) if conditions else exp.true()  # TRUE: every row reaches it
