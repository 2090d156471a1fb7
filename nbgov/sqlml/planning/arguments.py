"""Every ``predict`` argument checked against the model input it feeds, before any rewrite.

The optimizer may drop an input no kept tree reads, or compute a model in SQL with its
own casts: an argument the model cannot take (a text column feeding a float input)
would then fail only with ``--no-optimize``. So compile asks the engine the type of each
argument first — a query with the call's FROM and the arguments as its columns, no row
read — and refuses a wrong one with the same message whatever the optimizer does next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlglot.expressions as exp

from nbgov.errors import ModelBindingError
from nbgov.sqlml.models.onnxtypes import accepts, describe, value_kind, wanted_kinds, width
from nbgov.sqlml.plan import ModelCall, ModelVersion, TensorSpec
from nbgov.sqlml.planning.binding import signature
from nbgov.sqlml.planning.relations import select_all
from nbgov.sqlml.sql.statements import PREDICT_PLACEHOLDER

_FROM = "from_" if "from_" in exp.Select.arg_types else "from"
_SCOPES = (exp.Select, exp.Update, exp.Delete)

# A predict(...) node -> an expression of its value's type that still reads its arguments.
StandIn = Callable[[exp.Expression], exp.Expression]


@dataclass(frozen=True)
class Feed:
    """One argument and the model input (or feature of a 2-D input) it feeds."""

    text: str  # the argument as written
    spec: TensorSpec
    feature: int | None  # position in a 2-D input, None for a one-value input


def feeds(call: ModelCall) -> list[Feed]:
    """The call's arguments in bound order, each with what it feeds."""
    found: list[Feed] = []
    for bound in call.inputs:
        several = len(bound.columns) > 1 or (width(bound.spec) or 1) > 1
        for index, column in enumerate(bound.columns):
            found.append(Feed(column.sql(dialect="duckdb"), bound.spec, index if several else None))
    return found


def check(model: ModelVersion, label: str, fed: Sequence[Feed], types: Sequence[str], dialect: str = "duckdb") -> None:
    """Raise ``ModelBindingError`` for the first argument whose engine type the input it
    feeds cannot take (text for a float input, a float for an integer one, a LIST...)."""
    for feed, type_name in zip(fed, types):
        if accepts(feed.spec.elem_type, value_kind(type_name, dialect)):
            continue
        target = f"input {describe(feed.spec)}"
        if feed.feature is not None:
            names = model.feature_names if len(model.inputs) == 1 else None
            name = f" ({names[feed.feature]})" if names and feed.feature < len(names) else ""
            target = f"feature {feed.feature + 1}{name} of {target}"
        raise ModelBindingError(
            f"{label}: {feed.text} is {type_name}, which cannot be cast to {target} (it takes "
            f"{wanted_kinds(feed.spec.elem_type)}; write a CAST if the conversion is meant); "
            f"expected {signature(model)}"
        )


def probe(
    nodes: Sequence[exp.Expression], values: Sequence[exp.Expression], stand_in: StandIn, *, aliases: bool = False
) -> exp.Select:
    """``SELECT <values> FROM <the calls' FROM> LIMIT 0``: what the engine describes to type
    the arguments ``values`` of the predict ``nodes`` (which share one scope). CTEs the scope
    can see come along; other predict calls in it read as ``stand_in``. ``aliases``: a name
    of the scope's select list read by an argument is replaced by its expression (DuckDB
    lets a query read its own aliases; a column of that name, if any, would have won)."""
    scope = nodes[0].find_ancestor(*_SCOPES)
    if aliases and isinstance(scope, exp.Select):
        values = [expand_aliases(value, scope) for value in values]
    items = [exp.alias_(value.copy(), f"nbgov_arg_{i}", quoted=True) for i, value in enumerate(values)]
    select = exp.select(*items)
    if isinstance(scope, exp.Select):
        for key in (_FROM, "joins", "laterals"):
            if scope.args.get(key):
                select.set(key, _copy(scope.args[key]))
        if any(value.find(exp.AggFunc) is not None for value in values) and scope.args.get("group"):
            select.set("group", scope.args["group"].copy())
    elif scope is not None:  # UPDATE / DELETE: the table they change
        select.set(_FROM, exp.From(this=scope.this.copy()))
    ctes = visible_ctes(scope) if scope is not None else []
    if ctes:
        select.set("with_", exp.With(expressions=ctes))
    return select_all(with_stand_ins(select, stand_in), "nbgov_args")


def expand_aliases(value: exp.Expression, scope: exp.Select) -> exp.Expression:
    """A copy of ``value`` with the scope's select-list aliases it reads replaced by their
    expressions (those without a predict call)."""
    named = {
        item.alias.lower(): item.this
        for item in scope.expressions
        if isinstance(item, exp.Alias) and not any(is_predict(n) for n in item.this.walk())
    }

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in named:
            return exp.Paren(this=named[node.name.lower()].copy())
        return node

    return value.transform(replace)


def with_stand_ins(tree: exp.Expression, stand_in: StandIn) -> exp.Expression:
    """``tree`` with every predict(...) read as ``stand_in`` (innermost first)."""

    def replace(node: exp.Expression) -> exp.Expression:
        return stand_in(node) if is_predict(node) else node

    return tree.transform(replace)


def reading_stand_in(value_type: exp.DataType, arguments: Sequence[exp.Expression]) -> exp.Expression:
    """``CASE WHEN a IS NULL OR ... THEN CAST(NULL AS <type>) END``: typed like predict's
    value and still reading every argument, so the engine binds (and refuses) them."""
    tests = [exp.Is(this=argument.copy(), expression=exp.Null()) for argument in arguments]
    condition = exp.or_(*tests, copy=False) if tests else exp.true()
    return exp.Case(ifs=[exp.If(this=condition, true=exp.Cast(this=exp.Null(), to=value_type.copy()))])


def visible_ctes(scope: exp.Expression) -> list[exp.CTE]:
    """Copies of the CTEs of every WITH around ``scope`` (outermost first, an inner name
    shadowing an outer one), except a CTE that contains the scope itself."""
    found: dict[str, exp.CTE] = {}
    ancestors: list[exp.Expr] = []
    node: exp.Expr | None = scope
    while node is not None:
        ancestors.append(node)
        node = node.parent
    inside = {id(a) for a in ancestors}
    for ancestor in reversed(ancestors):
        with_ = ancestor.args.get("with_") if isinstance(ancestor, exp.Expression) else None
        if not isinstance(with_, exp.With):
            continue
        for cte in with_.expressions:
            if id(cte) in inside:
                break  # later CTEs of this WITH are not visible from inside this one
            found.pop(cte.alias_or_name.lower(), None)
            found[cte.alias_or_name.lower()] = cte.copy()
    return list(found.values())


def is_predict(node: exp.Expression) -> bool:
    return isinstance(node, exp.Anonymous) and isinstance(node.this, str) and node.this.lower() == PREDICT_PLACEHOLDER


def _copy(value: exp.Expression | list[exp.Expression]) -> exp.Expression | list[exp.Expression]:
    return [v.copy() for v in value] if isinstance(value, list) else value.copy()
