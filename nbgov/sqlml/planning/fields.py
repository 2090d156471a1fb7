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
            index = constant_index(parent)
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


def constant_index(bracket: exp.Bracket) -> int | None:
    """The 0-based constant index of ``x[k]`` (sqlglot stores DuckDB's 1-based k as k-1)."""
    if bracket.args.get("offset") or bracket.args.get("safe") or len(bracket.expressions) != 1:
        return None
    key = bracket.expressions[0]
    if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
        return int(key.this)
    return None


def fold_through_cte(node: exp.Expression) -> bool:
    """``WITH s AS (SELECT predict(...) AS p ...) SELECT avg(p.f[k]) FROM s``: give the CTE
    one column per value read (``p.f[k]``) and drop the STRUCT column ``p``.

    Only in the plain shape where every use is provably that CTE's column: the outer
    query is one SELECT reading only the CTE (no joins, subqueries or ``*``), and each
    use of ``p`` there is a field access. Returns True when rewritten.
    """
    alias = node.parent
    body = alias.parent if isinstance(alias, exp.Alias) else None
    cte = body.parent if isinstance(body, exp.Select) else None
    outer = cte.parent.parent if isinstance(cte, exp.CTE) and isinstance(cte.parent, exp.With) else None
    if not isinstance(alias, exp.Alias) or not isinstance(body, exp.Select) or not isinstance(cte, exp.CTE):
        return False
    if not isinstance(outer, exp.Select):
        return False
    if cte.args.get("columns") or (cte.args.get("alias") and cte.args["alias"].columns):
        return False
    name, source = alias.alias.lower(), cte.alias_or_name.lower()
    if [e for e in body.expressions if e.alias_or_name.lower() == name] != [alias]:
        return False
    from_ = outer.args.get("from_") or outer.args.get("from")
    if (
        from_ is None
        or not isinstance(from_.this, exp.Table)
        or from_.this.name.lower() != source
        or outer.args.get("joins")
        or outer.args.get("laterals")
        or len(outer.args["with_"].expressions) != 1
    ):
        return False
    outer_nodes = [n for n in outer.walk(prune=lambda n: n is outer.args["with_"]) if n is not outer.args["with_"]]
    if any(isinstance(n, (exp.Star, exp.Subquery)) or (isinstance(n, exp.Select) and n is not outer) for n in outer_nodes):
        return False
    sources = {source, from_.this.alias_or_name.lower()}
    if name in sources:
        return False
    paths: list[tuple[exp.Expression, exp.Expression]] = []  # (access node in the outer query, folded value)
    for use in outer_nodes:
        if not isinstance(use, exp.Column):
            continue
        probe = node.copy()
        holder = exp.Paren(this=probe)  # a detached stand-in, so the access is folded on a copy
        if use.table.lower() == name and (not use.args.get("db") or use.args["db"].name.lower() in sources):
            rebuilt: exp.Expression = exp.Dot(this=probe, expression=exp.to_identifier(use.name))  # p.field
        elif use.name.lower() == name and (not use.table or use.table.lower() in sources):
            rebuilt = probe  # p, then .field / [k] around it
        else:
            continue
        access: exp.Expression = use
        chain: list[exp.Expression] = []
        while isinstance(access.parent, (exp.Dot, exp.Bracket)) and access.parent.this is access:
            access = access.parent
            chain.append(access)
        if rebuilt is probe and not chain:
            return False  # the whole STRUCT is used
        for step in chain:
            copy = step.copy()
            copy.set("this", rebuilt)
            rebuilt = copy
        holder.set("this", rebuilt)
        folded = fold_access(probe)
        if folded.parent is not holder:  # some access could not be folded into the value
            return False
        paths.append((access, folded))
    if not paths:
        return False
    columns: dict[str, str] = {}
    for access, folded in paths:
        key = folded.sql(dialect="duckdb")
        if key not in columns:
            columns[key] = f"{alias.alias}__v{len(columns)}"
            body.append("expressions", exp.alias_(folded.copy(), columns[key], quoted=True))
        access.replace(exp.column(columns[key], quoted=True))
    alias.pop()
    return True
