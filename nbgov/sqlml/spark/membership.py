"""DuckDB's ``x IN (SELECT ...)`` as a value, for Spark.

Where its value is read (a SELECT list, a CASE, a NOT under an OR), ``x IN (subquery)`` is
NULL on DuckDB when ``x`` is NULL and the subquery has rows, or when nothing matches and the
subquery has a NULL: SQL's three-valued logic. Spark 4 gives false in both cases (the IN
becomes an existence join). Written out, the NULL cases are asked with EXISTS. A filter (a
WHERE, HAVING or ON conjunct, or the NOT of one) is left to Spark: there NULL and false
both drop the row, and Spark's semi and null-aware anti joins read it alike.
"""

from __future__ import annotations

import sqlglot.expressions as exp

from nbgov.errors import SqlError

_WRITTEN = "nbgov_in_written"  # meta key: an IN already written out (read as Spark's)
_VALUE = "nbgov_in_value"
# a subquery whose rows are its FROM's filtered rows: its NULLs asked by one more filter
_ROW_SHAPES = ("group", "having", "limit", "offset", "distinct", "qualify", "windows", "order")


def three_valued(node: exp.In) -> exp.Expr | None:
    """``node`` (an ``x IN (subquery)`` whose value is read) written with DuckDB's NULLs, or
    None when Spark's IN is the same (a filter's, or not a subquery)."""
    query = node.args.get("query")
    if query is None or node.meta.get(_WRITTEN) or _filtering(node):
        return None
    subquery = query.this if isinstance(query, exp.Subquery) else query
    if isinstance(node.this, exp.Tuple) or not isinstance(subquery, exp.Query) or len(subquery.selects) != 1:
        raise SqlError(
            "a row value IN (SELECT ...) read as a value is DuckDB-only on the spark engine (Spark gives false "
            "where DuckDB gives NULL); compare one column, or write EXISTS (SELECT ... WHERE ...)"
        )
    plain = node.copy()
    plain.meta[_WRITTEN] = True
    value = node.this
    has_rows = exp.Exists(this=subquery.copy())
    unknown = exp.Or(
        this=exp.paren(exp.And(this=exp.Is(this=value.copy(), expression=exp.Null()), expression=has_rows), copy=False),
        expression=exp.Exists(this=_nulls(subquery)),
    )
    return exp.Case(
        ifs=[exp.If(this=plain, true=exp.true()), exp.If(this=unknown, true=exp.null())],
        default=exp.false(),
    )


def quantified_as_in(select: exp.Expr) -> exp.Expr:
    """DuckDB's ``x = ANY (SELECT ...)`` is ``x IN (SELECT ...)`` and ``x <> ALL (SELECT ...)``
    its NOT, NULLs alike; Spark cannot parse either. Another comparison with ANY / ALL of a
    subquery is refused in one line."""
    if not isinstance(select, exp.Select):
        return select
    for quantified in list(select.find_all(exp.Any, exp.All)):
        query, comparison = quantified.this, quantified.parent
        if not isinstance(query, exp.Query) or not isinstance(comparison, exp.Binary) or comparison.expression is not quantified:
            continue
        rows = query.copy() if isinstance(query, exp.Subquery) else exp.Subquery(this=query.copy())
        member = exp.In(this=comparison.this.copy(), query=rows)
        if isinstance(comparison, exp.EQ) and isinstance(quantified, exp.Any):
            comparison.replace(member)
        elif isinstance(comparison, exp.NEQ) and isinstance(quantified, exp.All):
            comparison.replace(exp.Not(this=member))
        else:
            raise SqlError(
                "a comparison with ANY / ALL (SELECT ...) other than = ANY and <> ALL is DuckDB-only on the spark "
                "engine; compare with the subquery's min() or max() instead"
            )
    return select


def _filtering(node: exp.Expr) -> bool:
    """Whether ``node`` is (the NOT of) a conjunct of a WHERE, HAVING, QUALIFY, JOIN's ON or CASE WHEN
    (where NULL and false both mean no)."""
    child, parent = node, node.parent
    if isinstance(parent, exp.Not):
        child, parent = parent, parent.parent
    while isinstance(parent, (exp.And, exp.Paren)):
        child, parent = parent, parent.parent
    if isinstance(parent, (exp.Where, exp.Having, exp.Qualify)) or (isinstance(parent, exp.If) and parent.this is child):
        return True
    return isinstance(parent, exp.Join) and parent.args.get("on") is child


def _nulls(subquery: exp.Query) -> exp.Query:
    """The rows of ``subquery`` whose value is NULL: its own filter with one more condition
    (so a correlated subquery stays one), or, for a grouped, limited or combined one, its
    rows read as a derived table."""
    if isinstance(subquery, exp.Select) and not any(subquery.args.get(arg) for arg in _ROW_SHAPES) and not _aggregates(subquery):
        copied = subquery.copy()
        selected = copied.selects[0]
        value = selected.this if isinstance(selected, exp.Alias) else selected
        return copied.where(exp.Is(this=value.copy(), expression=exp.Null()), copy=False)
    alias = exp.TableAlias(this=exp.to_identifier("nbgov_in"), columns=[exp.to_identifier(_VALUE)])
    rows = exp.Subquery(this=subquery.copy(), alias=alias)
    return exp.select(exp.Literal.number(1)).from_(rows).where(exp.Is(this=exp.column(_VALUE), expression=exp.Null()))


def _aggregates(select: exp.Select) -> bool:
    """Whether a SELECT's output aggregates its rows (then its filter is not its rows')."""
    return any(projection.find(exp.AggFunc) is not None for projection in select.selects)
