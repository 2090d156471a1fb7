"""Scalar predict() in a CASE/IF branch, a later COALESCE argument or beside an OR, on
Spark: only the rows that reach it are scored, as DuckDB scores them.

Spark evaluates a Python UDF for every row of its input before the CASE around it picks
a branch, so a value the model refuses in a row the CASE sends elsewhere (``CASE WHEN plan
IN (...) THEN predict(m, *) END``) failed the statement on Spark while DuckDB returned
NULL for that row; likewise a row ``plan = 'platinum' OR predict(...)`` decides before the
call (DuckDB evaluates a UDF last). Each UDF call therefore receives, as its first
argument, whether the row reaches it (``worker.udf_function`` scores only those rows;
NULL elsewhere, which leaves the decided AND or OR as it was).

Spark also computes a Python UDF's arguments for every row, in a projection below the CASE
(DuckDB computes a branch's arguments, as the branch, only for the rows that take it). An
argument the optimizer computes in SQL can raise: a OneHotEncoder lowered in front of the
trees kept as ONNX refuses an unknown category with ``raise_error`` (``checks.py``), a cast
refuses text. Each computed argument is therefore read under the same reach condition
(``CASE WHEN reached THEN argument END``): a row the CASE sends elsewhere passes NULL, never
computing it, and a row that reaches the call fails as on DuckDB and with --no-optimize.

Guards nest as DuckDB evaluates them: a condition inside a branch (an inner CASE's WHEN,
an AND beside the call) is read only where the conditions outside it let the row through
(``CASE WHEN outer THEN inner END``), since it may raise where DuckDB never evaluates it.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlglot.expressions as exp

from nbgov.sqlml.planning.batching import decided_first, reach_steps, undecided


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
        arguments = [_reached_only(argument, guard) for argument in call.expressions]
        call.set("expressions", [guard, *arguments])
    return copied


def _reached_only(argument: exp.Expr, guard: exp.Expr) -> exp.Expr:
    """``argument`` computed only on the rows ``guard`` lets reach the call (NULL on the
    others, which the UDF does not score): anything but a column or a constant may raise
    (``raise_error``, a cast, ANSI arithmetic), and Spark computes a UDF's arguments on
    every row. ``argument`` itself when every row reaches the call or it cannot raise."""
    if _always(guard) or isinstance(argument.unnest(), _PLAIN):
        return argument
    return exp.Case(ifs=[exp.If(this=guard.copy(), true=argument)])


_PLAIN = (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Parameter, exp.Placeholder)


def _always(guard: exp.Expr) -> bool:
    return isinstance(guard, exp.Boolean) and bool(guard.this)


def _calls(node: exp.Anonymous, names: set[str]) -> bool:
    return str(node.this).lower() in names


def _guard(call: exp.Anonymous, names: set[str]) -> exp.Expr:
    """TRUE (or NULL) exactly on the rows that reach ``call``, each condition evaluated only
    on the rows the conditions around it let through, as DuckDB evaluates them: an inner
    CASE's WHEN only where the outer CASE took its branch, a condition beside an AND/OR
    only where the logic outside left the row undecided. Spark computes a UDF's arguments,
    this guard among them, on every row, so ``outer AND inner`` failed where ``inner``
    raises (a cast of text, an encoder's ``raise_error``) on a row ``outer`` keeps away."""
    # a side that reads a window or an aggregate (not computable in a UDF's argument) is
    # left out, and so is any condition that scores a model: the call then scores a few
    # more rows, as before; Spark short-circuits an AND/OR left to right wherever it sits
    beside = {
        id(operator): [undecided(operator, other)] if other.find(exp.Window, exp.AggFunc) is None else []
        for operator, other in decided_first(call, whole_below=False)
    }
    branches = {id(step): conditions for step, conditions in reach_steps(call)}
    conditions: list[exp.Expr] = []  # innermost first
    for step in _ancestors(call):
        conditions[:0] = beside.get(id(step)) or branches.get(id(step), [])
    kept = [condition for condition in conditions if not any(_calls(node, names) for node in condition.find_all(exp.Anonymous))]
    return _nested(kept)


def _ancestors(node: exp.Expr) -> list[exp.Expr]:
    """The nodes above ``node`` up to its SELECT, innermost first."""
    found: list[exp.Expr] = []
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Select):
        found.append(parent)
        parent = parent.parent
    return found


def _nested(conditions: list[exp.Expr]) -> exp.Expr:
    """TRUE where every condition (outermost first) is: ``CASE WHEN c1 THEN CASE WHEN c2
    THEN c3 END END``, so each is evaluated only where those before it hold (NULL, not
    reached, elsewhere); TRUE for none (every row reaches the call)."""
    if not conditions:
        return exp.true()
    guard = conditions[-1]
    for condition in reversed(conditions[:-1]):
        guard = exp.Case(ifs=[exp.If(this=condition, true=guard)])
    return guard
