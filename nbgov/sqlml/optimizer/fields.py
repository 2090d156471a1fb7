"""Output projection for inlined models: ``predict(...).probabilities[2]`` computes only
that one value, not the whole STRUCT (label, both probabilities) it was taken from.

A model inlined as SQL is a STRUCT literal (maybe under a NULL-guard CASE); DuckDB
evaluates every field of it even when the query reads one. Folding the field access
and the constant list index into the literal keeps exactly the expression that
produced that value, so results stay identical.
"""

from __future__ import annotations

import sqlglot.expressions as exp


def fold_access(node: exp.Expression) -> exp.Expression:
    """Fold ``.field`` / ``[k]`` applied to ``node`` (already in its tree) into it;
    returns the expression now standing where the access was."""
    while True:
        parent = node.parent
        picked: exp.Expression | None = None
        if isinstance(parent, exp.Dot) and parent.this is node and isinstance(parent.expression, exp.Identifier):
            picked = _pick(node, lambda e: _field(e, parent.expression.name))
        elif isinstance(parent, exp.Bracket) and parent.this is node:
            index = _index(parent)
            if index is not None:
                picked = _pick(node, lambda e: _element(e, index))
        if picked is None or parent is None:
            return node
        parent.replace(picked)
        node = picked


def _pick(value: exp.Expression, take: object) -> exp.Expression | None:
    """``take`` applied to the value, looking through parentheses and NULL-guard CASEs."""
    assert callable(take)
    if isinstance(value, exp.Paren):
        return _pick(value.this, take)
    if isinstance(value, exp.Case):
        branches = [branch.args.get("true") for branch in value.args.get("ifs") or []]
        default = value.args.get("default")
        if default is None or any(b is None for b in branches):
            return None
        picked = [b if isinstance(b, exp.Null) else _pick(b, take) for b in [*branches, default]]
        if any(p is None for p in picked):
            return None
        case = value.copy()
        for branch, new in zip(case.args.get("ifs") or [], picked):
            branch.set("true", new.copy() if new is not None else None)
        case.set("default", picked[-1].copy() if picked[-1] is not None else None)
        return case
    result = take(value)
    return result.copy() if isinstance(result, exp.Expression) else None


def _field(value: exp.Expression, name: str) -> exp.Expression | None:
    if not isinstance(value, exp.Struct):
        return None
    for item in value.expressions:
        if isinstance(item, exp.PropertyEQ) and item.this.name.lower() == name.lower():
            return item.expression
    return None


def _element(value: exp.Expression, index: int) -> exp.Expression | None:
    if isinstance(value, exp.Array) and 0 <= index < len(value.expressions):
        return value.expressions[index]
    return None


def _index(bracket: exp.Bracket) -> int | None:
    """The 0-based constant index of ``x[k]`` (sqlglot stores DuckDB's 1-based k as k-1)."""
    if bracket.args.get("offset") or bracket.args.get("safe") or len(bracket.expressions) != 1:
        return None
    key = bracket.expressions[0]
    if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
        return int(key.this)
    return None
