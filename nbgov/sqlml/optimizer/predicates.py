"""What a statement proves about the inputs of one predict(...) call.

Pruning is only sound for constraints that hold on every row the call is
evaluated for.  That is the case for the SELECT list, ORDER BY, GROUP BY and
HAVING of a scope (its WHERE and inner-join ON filters ran first), for columns
of derived tables (CTEs, subqueries) whose own filters ran first, and for the
THEN branch of ``CASE WHEN cond`` (DuckDB evaluates it only on rows where cond
holds).  A call inside a WHERE may use that WHERE's other top-level conjuncts:
whatever it returns on a row failing one of them, the row is discarded (FALSE or
NULL AND anything is not TRUE), so a pruned model's value there is never seen.  A
conjunct holding the call itself (under OR, NOT, ...) proves nothing, and a call in
a join's ON is refused (an outer join keeps the rows its ON rejects, NULL-extended).
Anything not understood gives no constraint, never a wrong one.

String comparisons (``plan = 'gold'``, ``IN``, ``<>``, ``NOT IN``) prove a set of
categories, but only where the engine compares bytes: under a collation ``'GOLD' = 'gold'``
holds, so they are used only when the caller says no collation is in effect and the
statement itself uses none.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import sqlglot.expressions as exp

from nbgov.sqlml.engine_name import EngineName
from nbgov.sqlml.optimizer.categories import Categories
from nbgov.sqlml.optimizer.domains import Domain
from nbgov.sqlml.plan import ModelCall

if TYPE_CHECKING:
    from nbgov.sqlml.optimizer.state import PlanState

ColumnKey = tuple[
    str | None, str
]  # (table qualifier or None, column name), lower-cased
Proof = Domain | Categories  # what a conjunct proves about a numeric or a string column

_FILTERED_POSITIONS = {"expressions", "order", "group", "having", "qualify", "distinct"}
_JOIN_POSITION = "joins"
_WHERE_POSITION = "where"
_MAX_DEPTH = 8
FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}
COMPARISONS: dict[type[exp.Expr], str] = {
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.EQ: "=",
}


@dataclass(frozen=True)
class FeatureConstraints:
    """Domains proven for model features, keyed by (input index, column index)."""

    domains: dict[tuple[int, int], Domain] = field(default_factory=dict)
    text: tuple[str, ...] = ()  # e.g. ("age > 60",) for EXPLAIN notes
    refusals: tuple[str, ...] = ()  # why some constraints were not used
    categories: dict[tuple[int, int], Categories] = field(default_factory=dict)  # string columns


@dataclass
class _Scope:
    """Constraints of one SELECT scope, on its own column keys."""

    select: exp.Select
    sources: set[str]
    domains: dict[ColumnKey, Proof]


def rule(state: PlanState) -> PlanState:
    """Rule 1: what the query proves about the call's features (``state.constraints``),
    with a note for every filter that could not be used."""
    if state.tensor is None or state.constraints is not None:
        return state  # nothing to prove for, or proven already (a lowered pipeline)
    constraints = call_constraints(state.call, exact_strings=state.exact_strings, engine=state.engine)
    state = replace(state, constraints=constraints).note(*constraints.refusals)
    compared = output_comparison(state.call.node)
    if compared is not None:
        op, value = compared
        state = state.note(
            f"not used for pruning: predict(...) {op} {value:g} restricts the model's output, not its inputs"
        )
    return state


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


def call_constraints(
    call: ModelCall, *, exact_strings: bool = False, engine: EngineName = EngineName.DUCKDB
) -> FeatureConstraints:
    """Constraints on each bound feature of ``call`` that hold wherever the call is evaluated;
    ``exact_strings``: ``engine`` compares strings byte for byte here (no collation anywhere)."""
    located = _locate(call.node)
    if located is None:
        return FeatureConstraints(
            refusals=("no pruning: call is inside a lambda or outside a SELECT",)
        )
    select, position, guards = located
    in_where = position == _WHERE_POSITION
    use_filters = position in _FILTERED_POSITIONS or in_where
    scope = _scope_domains(select, use_filters=use_filters, depth=0, skip=call.node if in_where else None)
    if guards:
        extra: dict[ColumnKey, Proof] = {}
        for guard in guards:
            _collect(_conjuncts(guard), scope.sources, extra, [])
        for key, dom in extra.items():
            scope.domains[key] = meet(scope.domains[key], dom) if key in scope.domains else dom
    refusals: list[str] = []
    if position == _JOIN_POSITION:
        unsafe = list(_feature_domains(
            call, _scope_domains(select, use_filters=True, depth=0)
        )[1].values())
        if unsafe:
            refusals.append(
                f"refused pruning: {' AND '.join(unsafe)} is in the same join condition as the call"
            )
    domains, text = _feature_domains(call, scope)
    numeric = {key: d for key, d in domains.items() if isinstance(d, Domain)}
    strings = {key: d for key, d in domains.items() if isinstance(d, Categories)}
    if strings and (not exact_strings or call.statement.find(exp.Collate) is not None):
        refusals.append(f"string predicates not used: a collation may make {engine.label}'s = differ from the model's")
        strings = {}
    kept = [t for key, t in text.items() if key in numeric or key in strings]
    return FeatureConstraints(
        domains=numeric, text=tuple(kept), refusals=tuple(refusals), categories=strings
    )


def _feature_domains(
    call: ModelCall, scope: _Scope
) -> tuple[dict[tuple[int, int], Proof], dict[tuple[int, int], str]]:
    """Proofs for the call's plain-column arguments, and the text of those that constrain."""
    domains: dict[tuple[int, int], Proof] = {}
    text: dict[tuple[int, int], str] = {}
    for i, bound in enumerate(call.inputs):
        for j, column in enumerate(bound.columns):
            if not isinstance(column, exp.Column) or not column.name:
                continue
            dom = _lookup(_key(column), scope)
            if dom is None:
                continue
            domains[(i, j)] = dom
            if not dom.unconstrained:
                text[(i, j)] = dom.describe(column.sql(dialect="duckdb"))
    return domains, text


def _locate(node: exp.Expr) -> tuple[exp.Select, str, list[exp.Expr]] | None:
    """The SELECT whose rows the call sees, the clause it sits in, and CASE guards around it."""
    guards: list[exp.Expr] = []
    child: exp.Expr = node
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Lambda):
            return None
        if isinstance(parent, exp.If) and child.arg_key == "true":
            case = parent.parent
            if not (isinstance(case, exp.Case) and case.this is not None):
                guards.append(parent.this)
        if isinstance(parent, exp.Select):
            return parent, child.arg_key or "", guards
        child, parent = parent, parent.parent
    return None


def _scope_domains(select: exp.Select, use_filters: bool, depth: int, skip: exp.Expr | None = None) -> _Scope:
    """Constraints holding on rows of ``select`` (after its filters when ``use_filters``);
    a WHERE conjunct holding ``skip`` (the call being planned) is not used."""
    sources: dict[str, exp.Expression] = {}
    from_ = select.args.get("from_")
    inner_joins: list[exp.Join] = []
    if from_ is not None:
        sources[from_.this.alias_or_name.lower()] = from_.this
    preserved = True  # FROM rows are never NULL-extended by a RIGHT/FULL join
    for join in select.args.get("joins") or []:
        name = join.this.alias_or_name.lower()
        sources[name] = join.this
        side = (join.args.get("side") or "").upper()
        kind = (join.args.get("kind") or "").upper()
        if not side and kind in ("", "INNER"):
            inner_joins.append(join)
        elif side in ("RIGHT", "FULL"):
            preserved = False
    scope = _Scope(select=select, sources=set(sources), domains={})
    if depth > _MAX_DEPTH:
        return scope

    if use_filters:
        conjuncts: list[exp.Expr] = []
        where = select.args.get("where")
        if where is not None:
            conjuncts += [c for c in _conjuncts(where.this) if skip is None or not _holds(c, skip)]
        for join in inner_joins:
            if join.args.get("on") is not None:
                conjuncts += _conjuncts(join.args["on"])
        equalities: list[tuple[ColumnKey, ColumnKey]] = []
        _collect(conjuncts, scope.sources, scope.domains, equalities)
        _propagate_equalities(scope.domains, equalities)

    # Derived tables in FROM / inner joins: their filters ran before this scope saw the rows.
    derived_sources = [from_.this] if from_ is not None and preserved else []
    derived_sources += [j.this for j in inner_joins]
    for source in derived_sources:
        inner = _derived_select(source, select)
        if inner is None:
            continue
        alias = source.alias_or_name.lower()
        for name, dom in _exported(inner, depth + 1).items():
            key = (alias, name)
            scope.domains[key] = (
                meet(scope.domains[key], dom) if key in scope.domains else dom
            )
    if len(scope.sources) == 1:
        only = next(iter(scope.sources))
        scope.domains = _qualify_all(scope.domains, only)
    return scope


def _exported(inner: exp.Select, depth: int) -> dict[str, Proof]:
    """Constraints on the output columns of a derived table, by output name."""
    scope = _scope_domains(inner, use_filters=True, depth=depth)
    out: dict[str, Proof] = {}
    for proj in inner.expressions:
        if isinstance(proj, exp.Star):
            if len(scope.sources) != 1:
                continue
            for (_, name), dom in scope.domains.items():
                out[name] = meet(out[name], dom) if name in out else dom
        else:
            target = proj.this if isinstance(proj, exp.Alias) else proj
            if isinstance(target, exp.Column) and target.name:
                found = _lookup(_key(target), scope)
                if found is not None:
                    out[proj.alias_or_name.lower()] = found
    return out


def _derived_select(
    source: exp.Expression, scope_select: exp.Select
) -> exp.Select | None:
    """The SELECT behind a subquery or CTE reference, if it is a plain SELECT."""
    if isinstance(source, exp.Subquery):
        inner = source.this
        return inner if isinstance(inner, exp.Select) else None
    if isinstance(source, exp.Table) and not source.args.get("db"):
        name = source.name.lower()
        node: exp.Expr | None = scope_select
        while node is not None:
            with_ = node.args.get("with_") if isinstance(node, exp.Query) else None
            if with_ is not None and not with_.args.get("recursive"):
                for cte in with_.expressions:
                    if cte.alias_or_name.lower() == name:
                        inner = cte.this
                        return inner if isinstance(inner, exp.Select) else None
            node = node.parent
    return None


def _holds(cond: exp.Expr, node: exp.Expr) -> bool:
    """Whether ``node`` sits inside ``cond`` (or is it)."""
    current: exp.Expr | None = node
    while current is not None:
        if current is cond:
            return True
        current = current.parent
    return False


def _conjuncts(cond: exp.Expr) -> list[exp.Expr]:
    while isinstance(cond, exp.Paren):
        cond = cond.this
    if isinstance(cond, exp.And):
        return _conjuncts(cond.this) + _conjuncts(cond.expression)
    return [cond]


def _collect(
    conjuncts: list[exp.Expr],
    sources: set[str],
    domains: dict[ColumnKey, Proof],
    equalities: list[tuple[ColumnKey, ColumnKey]],
) -> None:
    """Add the domain proven by each understood conjunct; ignore the rest."""
    for cond in conjuncts:
        found = _leaf_domain(cond)
        if found is None:
            pair = _column_equality(cond)
            if pair is not None:
                equalities.append(pair)
            continue
        key, dom = found
        domains[key] = meet(domains[key], dom) if key in domains else dom


def meet(a: Proof, b: Proof) -> Proof:
    """Both proofs hold. A column compared with numbers and with strings keeps the first
    proof (either one alone is still true)."""
    if isinstance(a, Domain) and isinstance(b, Domain):
        return a.intersect(b)
    if isinstance(a, Categories) and isinstance(b, Categories):
        return a.intersect(b)
    if isinstance(a, Domain) and a.unconstrained:  # IS NOT NULL: says nothing more
        return b
    return a


def _leaf_domain(cond: exp.Expr) -> tuple[ColumnKey, Proof] | None:
    strings = _string_proof(cond)
    if strings is not None:
        return strings
    op = COMPARISONS.get(type(cond))
    if op is not None:
        left, right = cond.this, cond.expression
        if isinstance(left, exp.Column) and (value := number(right)) is not None:
            return _key(left), Domain.compare(op, value)
        if isinstance(right, exp.Column) and (value := number(left)) is not None:
            return _key(right), Domain.compare(FLIP[op], value)
        return None
    if isinstance(cond, exp.Between) and isinstance(cond.this, exp.Column):
        low, high = number(cond.args.get("low")), number(cond.args.get("high"))
        if low is None or high is None:
            return None
        return _key(cond.this), Domain.compare(">=", low).intersect(
            Domain.compare("<=", high)
        )
    if (
        isinstance(cond, exp.In)
        and isinstance(cond.this, exp.Column)
        and not cond.args.get("query")
    ):
        values = [number(v) for v in cond.expressions]
        if not values or any(v is None for v in values):
            return None
        return _key(cond.this), Domain.one_of([v for v in values if v is not None])
    if isinstance(cond, exp.Not) and isinstance(cond.this, exp.Is):
        target = cond.this
        if isinstance(target.this, exp.Column) and isinstance(
            target.expression, exp.Null
        ):
            return _key(target.this), Domain()
    if isinstance(cond, exp.Not) and isinstance(cond.this, exp.IsNan) and isinstance(cond.this.this, exp.Column):
        return _key(cond.this.this), Domain(nan=False)  # a number, not NULL (NOT NULL is NULL)
    if isinstance(cond, exp.IsNan) and isinstance(cond.this, exp.Column):
        return _key(cond.this), Domain.nan_only()  # NaN: the value an imputer replaces
    return None


def _string_proof(cond: exp.Expr) -> tuple[ColumnKey, Categories] | None:
    """``col = 'a'``, ``col <> 'a'``, ``col IN ('a', 'b')``, ``col NOT IN (...)``."""
    negated = isinstance(cond, exp.Not)
    inner = cond.this if negated else cond
    if isinstance(inner, (exp.EQ, exp.NEQ)) and not negated:
        left, right = inner.this, inner.expression
        column, literal = (left, right) if isinstance(left, exp.Column) else (right, left)
        if isinstance(column, exp.Column) and _is_text(literal):
            value = str(literal.this)
            return _key(column), Categories.equal(value) if isinstance(inner, exp.EQ) else Categories.none_of([value])
        return None
    if isinstance(inner, exp.In) and isinstance(inner.this, exp.Column) and not inner.args.get("query"):
        if inner.expressions and all(_is_text(v) for v in inner.expressions):
            values = [str(v.this) for v in inner.expressions]
            return _key(inner.this), Categories.none_of(values) if negated else Categories.one_of(values)
    return None


def _is_text(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Literal) and node.is_string


def _column_equality(cond: exp.Expr) -> tuple[ColumnKey, ColumnKey] | None:
    if (
        isinstance(cond, exp.EQ)
        and isinstance(cond.this, exp.Column)
        and isinstance(cond.expression, exp.Column)
    ):
        return _key(cond.this), _key(cond.expression)
    return None


def _propagate_equalities(
    domains: dict[ColumnKey, Proof], pairs: list[tuple[ColumnKey, ColumnKey]]
) -> None:
    """``a.x = b.x``: both columns get the intersection of their constraints."""
    parent: dict[ColumnKey, ColumnKey] = {}

    def find(k: ColumnKey) -> ColumnKey:
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    for a, b in pairs:
        parent[find(a)] = find(b)
    groups: dict[ColumnKey, list[ColumnKey]] = {}
    for k in set(parent) | {b for _, b in pairs}:
        groups.setdefault(find(k), []).append(k)
    for members in groups.values():
        combined: Proof = Domain()
        for m in members:
            if m in domains:
                combined = meet(combined, domains[m])
        for m in members:
            domains[m] = combined


def _qualify_all(
    domains: dict[ColumnKey, Proof], only: str
) -> dict[ColumnKey, Proof]:
    out: dict[ColumnKey, Proof] = {}
    for (qual, name), dom in domains.items():
        key = (qual or only, name)
        out[key] = meet(out[key], dom) if key in out else dom
    return out


def _lookup(key: ColumnKey, scope: _Scope) -> Proof | None:
    """The constraint on ``key`` in ``scope``: same name, and compatible qualifiers."""
    qual, name = key
    if qual is None and len(scope.sources) == 1:
        qual = next(iter(scope.sources))
    found: Proof | None = None
    for (cq, cname), dom in scope.domains.items():
        if cname != name:
            continue
        same = (
            cq == qual
            or (qual is None and cq in scope.sources)
            or (cq is None and qual in scope.sources)
        )
        if same:
            found = dom if found is None else meet(found, dom)
    return found


def _key(column: exp.Column) -> ColumnKey:
    table = column.table
    return (table.lower() if table else None, column.name.lower())


def number(node: exp.Expr | None) -> float | None:
    """A numeric literal (possibly negated), else None (parameters, strings, expressions)."""
    if isinstance(node, exp.Paren):
        return number(node.this)
    if isinstance(node, exp.Neg):
        inner = number(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Boolean):
        return (
            1.0 if node.this else 0.0
        )  # a boolean input reaches the model as 1.0 / 0.0
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    return None
