"""DuckDB's slices on Spark: ``l[a:b]``, ``s[a:b]``, ``list_slice`` / ``array_slice``.

DuckDB's slice of a list (or of a text: its characters) takes the elements at positions
``a`` to ``b``, both included, 1-based: a negative position counts from the end (``-1`` the
last), a missing one is the first or the last, ``0`` is the first, positions past either
end are clamped, ``b`` before ``a`` is empty, and a NULL bound gives NULL. Spark has no
slice syntax (a syntax error), and its ``slice(l, start, length)`` (which sqlglot writes for
``array_slice``) takes a length, fails for a start of 0 or a negative length, and returns
nothing for a negative start past the beginning. The bounds are therefore turned into
Spark's start and length from the value's size. A step (``l[a:b:c]``) fails in one line.
"""

from __future__ import annotations

import sqlglot.expressions as exp

from nbgov.errors import SqlError

_INT = exp.DataType.build("int")
SLICED = "nbgov_sliced"  # meta key: a slice's value is a list ("list") or a text ("text"), as typed


def written(node: exp.Expr) -> exp.Expr:
    """The Spark form of a slice ``typed.py`` typed (``node`` itself if it is none); a slice
    of a value whose type is unknown fails in one line (a list and a text slice alike on DuckDB)."""
    bounds = slice_bounds(node)
    if bounds is None:
        return node
    kind = node.meta.get(SLICED)
    if kind is None:
        raise SqlError(
            "a slice (l[a:b], list_slice) of a value nbgov cannot tell is a list or a text is DuckDB-only on the "
            "spark engine; cast it first: CAST(x AS INTEGER[])[a:b]"
        )
    return sliced(*bounds, text=kind == "text")


def sliced(value: exp.Expr, begin: exp.Expr | None, end: exp.Expr | None, text: bool) -> exp.Expr:
    """DuckDB's ``value[begin:end]`` as Spark's SLICE of a list or SUBSTRING of a text."""
    size: exp.Expr = exp.Anonymous(this="CHAR_LENGTH" if text else "SIZE", expressions=[value.copy()])
    first = _first(begin, size)
    last = _last(end, size)
    count = exp.paren(exp.Add(this=exp.Sub(this=last, expression=first.copy()), expression=exp.Literal.number(1)), copy=False)
    zero = exp.Literal.number(0)
    # NULL stays NULL (Spark's GREATEST would skip it)
    length = exp.Case(ifs=[exp.If(this=exp.GTE(this=count.copy(), expression=zero.copy()), true=count.copy()),
                           exp.If(this=exp.LT(this=count, expression=zero.copy()), true=zero)])
    return exp.Anonymous(this="SUBSTRING" if text else "SLICE", expressions=[value.copy(), exp.cast(first, _INT), exp.cast(length, _INT)])


def slice_bounds(node: exp.Expr) -> tuple[exp.Expr, exp.Expr | None, exp.Expr | None] | None:
    """(value, begin, end) of DuckDB's ``value[begin:end]``, ``list_slice(value, begin, end)``
    or ``array_slice(...)``, None for anything else; a step fails in one line."""
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Slice):
        bounds = node.expressions[0]
        if bounds.args.get("step") is not None:
            raise SqlError("a slice with a step (l[a:b:c]) is DuckDB-only on the spark engine; expected l[a:b]")
        return node.this, bounds.this, bounds.expression
    if isinstance(node, exp.ArraySlice) and not node.args.get("is_length") and node.args.get("step") is None:
        return node.this, node.args.get("start"), node.args.get("end")
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in {"list_slice", "array_slice"} and len(node.expressions) == 3:
        value, begin, end = node.expressions
        return value, begin, end
    return None


def _first(begin: exp.Expr | None, size: exp.Expr) -> exp.Expr:
    """The 1-based position a slice starts at, 1 or more."""
    one = exp.Literal.number(1)
    if begin is None:
        return one
    fixed = _literal(begin)
    if fixed is not None and fixed >= 0:
        return exp.Literal.number(max(fixed, 1))
    from_end = exp.Add(this=exp.Add(this=size.copy(), expression=exp.paren(begin.copy(), copy=False)), expression=one.copy())
    return exp.Case(ifs=[
        exp.If(this=exp.LT(this=begin.copy(), expression=exp.Literal.number(0)), true=exp.Greatest(this=from_end, expressions=[one.copy()])),
        exp.If(this=exp.GTE(this=begin.copy(), expression=exp.Literal.number(0)), true=exp.Greatest(this=begin.copy(), expressions=[one.copy()])),
    ])


def _last(end: exp.Expr | None, size: exp.Expr) -> exp.Expr:
    """The 1-based position a slice ends at (at most the size; below the start: nothing)."""
    if end is None:
        return size.copy()
    fixed = _literal(end)
    if fixed is not None and fixed >= 0:
        return exp.Least(this=exp.Literal.number(fixed), expressions=[size.copy()])
    from_end = exp.Add(this=exp.Add(this=size.copy(), expression=exp.paren(end.copy(), copy=False)), expression=exp.Literal.number(1))
    return exp.Case(ifs=[
        exp.If(this=exp.LT(this=end.copy(), expression=exp.Literal.number(0)), true=from_end),
        exp.If(this=exp.GTE(this=end.copy(), expression=exp.Literal.number(0)), true=exp.Least(this=end.copy(), expressions=[size.copy()])),
    ])


def _literal(node: exp.Expr) -> int | None:
    """The value of an integer literal (``-1`` too), else None."""
    if isinstance(node, exp.Neg):
        inner = _literal(node.this)
        return -inner if inner is not None else None
    return int(node.name) if isinstance(node, exp.Literal) and node.is_int else None
