"""The batching rewrite of scalar ``predict``: instead of DuckDB's 2,048-row UDF calls,
the statement's FROM relation is scored once, in large Arrow batches, as a step before
the final SQL, which then reads the predictions as columns of that scored table.

Only the tree is rewritten here; the scoring is the executor's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlglot.expressions as exp

from nbgov.sqlml.plan import CallPlan, ModelCall, OnnxPlan
from nbgov.sqlml.sql.statements import PREDICT_PLACEHOLDER

_FROM = "from_" if "from_" in exp.Select.arg_types else "from"


def target_select(tree: exp.Expression) -> exp.Select | None:
    """The SELECT whose rows the predictions belong to (also under CREATE TABLE AS / INSERT)."""
    if isinstance(tree, exp.Select):
        return tree
    if isinstance(tree, (exp.Create, exp.Insert)) and isinstance(tree.expression, exp.Select):
        return tree.expression
    return None


def refusal(tree: exp.Expression, calls: Sequence[ModelCall], plans: Sequence[CallPlan]) -> str | None:
    """Why the statement cannot be batched, or None when it can."""
    select = target_select(tree)
    if select is None:
        return "not a plain SELECT"
    source = select.args.get(_FROM)
    if source is None:
        return "no FROM clause"
    if select.args.get("joins") or select.args.get("laterals"):
        return "the query joins several relations"
    if (select.args.get("limit") or select.args.get("offset")) and not _sorted_by_prediction(select, calls):
        return "LIMIT/OFFSET: row-at-a-time scoring stops early"
    if not isinstance(source.this, (exp.Table, exp.Subquery)):
        return "unsupported FROM source"
    alias = source.this.alias_or_name
    if any(isinstance(node, exp.Columns) for node in select.find_all(exp.Columns)):
        return "COLUMNS(...) would see the helper columns"
    if select.args.get("with_") is not None and any(
        inner is not select and inner.find_ancestor(exp.With) is None
        for inner in select.find_all(exp.Select)
    ):
        return "WITH plus subqueries: the CTEs must stay visible"
    aliases = {e.alias.lower() for e in select.expressions if e.alias}
    onnx_calls = [c for c, p in zip(calls, plans) if isinstance(p.strategy, OnnxPlan)]
    if not onnx_calls:
        return "no ONNX calls left to batch"
    for call in onnx_calls:
        if call.node.find_ancestor(exp.Select) is not select:
            return "predict() inside a subquery"
        if call.node.find_ancestor(exp.Join, exp.From) is not None:
            return "predict() inside a JOIN condition"
        if short_circuited(call.node):
            return "predict() beside an OR, or other QUALIFY conditions: only the rows they leave undecided are scored"
        if conditional(call.node):
            return "predict() in a branch of CASE/COALESCE: only the rows that reach it are scored"
    _, kept = split_where(select, [c.node for c in onnx_calls])
    if kept and any(computed(column) for call in onnx_calls for bound in call.inputs for column in bound.columns):
        return "an argument the query computes would be computed on rows a WHERE on a prediction drops"
    if kept and _scored_beyond_the_where(onnx_calls, kept, select):
        return "a call outside the WHERE would be scored on rows a WHERE on a prediction drops"
    for call in onnx_calls:
        for bound in call.inputs:
            for column in bound.columns:
                if column.find(exp.AggFunc, exp.Window, exp.Subquery, exp.Select) is not None:
                    return "predict() arguments use aggregates, windows or subqueries"
                if any(
                    isinstance(n, exp.Anonymous) and str(n.this).lower() == PREDICT_PLACEHOLDER
                    for n in column.find_all(exp.Anonymous)
                ):
                    return "nested predict() calls"
                for ref in column.find_all(exp.Column):
                    if ref.table and ref.table.lower() != alias.lower():
                        return f"argument refers to another relation ({ref.table})"
                    if not ref.table and ref.name.lower() in aliases:
                        return f"argument reads the select-list alias {ref.name}"
    return None


_PLAIN = (exp.Column, exp.Identifier, exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Neg, exp.Placeholder, exp.Parameter)


def computed(argument: exp.Expression) -> bool:
    """Whether a predict() argument is computed by the query (``CAST(a AS INTEGER)``, a
    function), which can fail on some rows. A batched relation computes the arguments of
    every row the pushed filters keep, before a WHERE on a prediction drops rows; DuckDB
    computes a UDF's arguments after it, so ``CAST(a AS INTEGER)`` failed on a NaN in a row
    --no-optimize never reached."""
    return any(not isinstance(node, _PLAIN) for node in argument.walk())


def _scored_beyond_the_where(calls: Sequence[ModelCall], kept: Sequence[exp.Expr], select: exp.Select) -> bool:
    """Whether a call outside the WHERE differs from every call its ``kept`` conjuncts read
    (another model, or other arguments). A batched relation scores it on every row the
    pushed filters keep; --no-optimize scores it only on rows the WHERE keeps, so a value it
    refuses in a dropped row (``SELECT predict(m, region) ... WHERE predict(n, ...) > c``)
    failed only with the optimizer. The same call in both places is scored on the same rows,
    as is a call the WHERE reads through its select-list alias (``... AS p ... WHERE p > c``)."""
    aliased = {e.alias.lower(): e for e in select.expressions if e.alias}
    read = [aliased[n.name.lower()] for conjunct in kept for n in conjunct.find_all(exp.Column)
            if not n.table and n.name.lower() in aliased]
    inside = {id(node) for part in [*kept, *read] for node in part.walk()}
    key = {id(c.node): (c.model.ref, tuple(col.sql() for b in c.inputs for col in b.columns)) for c in calls}
    filtering = {key[id(c.node)] for c in calls if id(c.node) in inside}
    return any(key[id(c.node)] not in filtering for c in calls if id(c.node) not in inside)


def short_circuited(node: exp.Expression) -> bool:
    """Whether ``node`` sits beside other conditions in a WHERE or QUALIFY that DuckDB
    may evaluate first, scoring only the rows they leave undecided: under an OR, or an AND
    nested below one (a QUALIFY's AND too: nothing of it is pushed below the scoring). The
    WHERE's top-level AND is split by ``split_where``: its other conjuncts filter the rows
    before they are scored. ``WHERE a >= 3 OR predict(m, ...) = 1`` with --no-optimize
    never scored a row with a >= 3; a batched relation scored it and failed on a category
    the model refuses there. Such a call is never batched, whichever side it is on: its
    UDF is then evaluated where --no-optimize's is."""
    child: exp.Expr = node
    parent = node.parent
    logic: list[exp.Expr] = []
    while parent is not None and not isinstance(parent, (exp.Where, exp.Qualify)):
        if isinstance(parent, exp.Select):
            return False
        if isinstance(parent, (exp.And, exp.Or)):
            logic.append(parent)
        child, parent = parent, parent.parent
    if isinstance(parent, exp.Where):
        logic = [op for op in logic if not _top_level_conjunction(op)]
    return parent is not None and bool(logic)


def decided_first(node: exp.Expr, *, whole_below: bool = True) -> list[tuple[exp.Expr, exp.Expr]]:
    """The ANDs and ORs around ``node`` whose other side DuckDB decides first, scoring
    ``node`` only on the rows it leaves undecided, as ``(operator, other side)``, innermost
    first. DuckDB filters through an AND/OR left to right, the right side only on the rows
    the left leaves undecided; the left side sees every row (``predict(...) = 1 OR a > 5``
    scores them all). Below any other node (a NOT, a comparison, a CASE) an AND/OR is
    computed whole, both sides on every row that reaches it (``whole_below``; Spark
    short-circuits there too). A WHERE's top-level AND is not among them: its conjuncts are
    pushed below, on both engines. A QUALIFY's top-level AND DuckDB reorders
    (``whole_below`` only: Spark keeps its written order): the conjuncts that are not
    comparisons (``IN``/``NOT IN``, rewritten to ORs of equalities, ``IS [NOT] NULL``, an
    OR, a boolean function) go first, in written order, then the comparisons in written
    order, so ``row_number() <= 2 AND predict(...) IN (-3, 1)`` scores every row; for it
    the pair is ``(the conjunct holding node, AND of the conjuncts DuckDB evaluates before
    it)`` (``_before_in_qualify``)."""
    logic: list[tuple[exp.Expr, exp.Expr]] = []
    child: exp.Expr = node
    parent = node.parent
    while parent is not None and not isinstance(parent, (exp.Where, exp.Qualify)):
        if isinstance(parent, exp.Select):
            return []
        if isinstance(parent, (exp.And, exp.Or)):
            if child is parent.expression:
                logic.append((parent, parent.this))
        elif whole_below and not isinstance(parent, exp.Paren):
            logic = []  # computed whole from here down: only the logic above decides first
        child, parent = parent, parent.parent
    if parent is None:
        return []
    if isinstance(parent, exp.Where):
        logic = [(op, other) for op, other in logic if not _top_level_conjunction(op)]
    elif whole_below and isinstance(parent, exp.Qualify):
        logic = [(op, other) for op, other in logic if not _top_level_conjunction(op, exp.Qualify)]
        logic += _before_in_qualify(parent, node)
    return logic


def _top_level_conjunction(operator: exp.Expr, clause: type[exp.Expr] = exp.Where) -> bool:
    """An AND with only ANDs (and parentheses) between it and its WHERE (or ``clause``):
    DuckDB splits it into separate filters, which it orders itself (a function call last)."""
    node: exp.Expr | None = operator
    while isinstance(node, (exp.And, exp.Paren)):
        node = node.parent
    return isinstance(operator, exp.And) and isinstance(node, clause)


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between)


def _comparison(conjunct: exp.Expr) -> bool:
    """Whether DuckDB keeps a QUALIFY conjunct in its written place among the comparisons:
    ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``, ``BETWEEN``, a NOT of one (folded to its
    negation) or one ``IS TRUE``. Measured on DuckDB 2.0 with a counting Python UDF:
    ``IN`` (even of one value), ``NOT IN``, ``IS [NOT] NULL``, ``IS [NOT] DISTINCT FROM``,
    ``LIKE``, an OR, a NOT of an AND, a CASE, a COALESCE or a bare boolean function are
    moved before them."""
    node = conjunct.unnest()
    if isinstance(node, exp.Not) or (
        isinstance(node, exp.Is) and isinstance(node.expression, exp.Boolean) and node.expression.this
    ):
        node = node.this.unnest()
    return isinstance(node, _COMPARISONS) or bool(node.meta.get(REPLACED_COMPARISON))


# meta key on a model's SQL put in place of a comparison of its output (an output predicate
# inlined as a boolean filter): DuckDB --no-optimize saw the comparison there
REPLACED_COMPARISON = "nbgov_replaced_a_comparison"


def _before_in_qualify(qualify: exp.Qualify, node: exp.Expr) -> list[tuple[exp.Expr, exp.Expr]]:
    """``(the QUALIFY conjunct holding node, AND of the conjuncts DuckDB evaluates before
    it)``, or nothing when it is evaluated on every row: DuckDB runs the conjuncts that are
    not comparisons first, in written order, then the comparisons in written order."""
    conjuncts = _conjuncts(qualify.this)
    index = next((i for i, c in enumerate(conjuncts) if any(n is node for n in c.walk())), None)
    if index is None:
        return []
    conjunct = conjuncts[index]
    if _comparison(conjunct):
        before = conjuncts[:index] + [c for c in conjuncts[index + 1:] if not _comparison(c)]
    else:
        before = [c for c in conjuncts[:index] if not _comparison(c)]
    if not before:
        return []
    other = exp.and_(*(c.copy() for c in before))
    other.meta[_QUALIFY_CONJUNCT] = True
    return [(conjunct, other)]


_QUALIFY_CONJUNCT = "nbgov_decided_before_a_qualify_conjunct"


def _conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    """The conjuncts of ``condition`` as DuckDB splits them: through every AND, parenthesized
    ones too, in written order."""
    node = condition.unnest()
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [condition]


def top_conjunct(node: exp.Expr) -> tuple[exp.Where, exp.Expr] | None:
    """The WHERE and its top-level conjunct holding ``node`` (the WHERE's top-level AND
    split into its conjuncts), or None when ``node`` is not in a WHERE of its SELECT."""
    where = node.parent
    while where is not None and not isinstance(where, exp.Where):
        if isinstance(where, (exp.Select, exp.Qualify)):
            return None
        where = where.parent
    if not isinstance(where, exp.Where):
        return None
    conjunct = next((c for c in where_conjuncts(where) if any(n is node for n in c.walk())), None)
    return (where, conjunct) if conjunct is not None else None


def where_conjuncts(where: exp.Where) -> list[exp.Expr]:
    """The WHERE's top-level conjuncts, in written order."""
    return list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]


def after_earlier_conjuncts(node: exp.Expr, reads_model: Callable[[exp.Expr], bool]) -> None:
    """Make the WHERE conjunct holding ``node`` wait for the earlier conjuncts that read a
    model: DuckDB evaluates the conjuncts that call a function last, in written order, each
    on the rows the earlier ones keep, so --no-optimize's ``predict(m, ...) > c AND
    predict(n, ...) > d`` never scored ``n`` on a row ``m`` dropped; a model inlined as SQL
    is cheap and went first, and its ``error()`` refused a value on such a row. The
    conjunct becomes ``CASE WHEN <earlier> THEN <conjunct> ELSE FALSE END``: the same rows."""
    _wait_for(node, lambda conjuncts, index: [c for c in conjuncts[:index] if reads_model(c)])


def after_plain_conjuncts(node: exp.Expr, reads_model: Callable[[exp.Expr], bool]) -> None:
    """Spark's ``after_earlier_conjuncts``: Spark pushes the WHERE conjuncts that call no
    Python UDF below the UDFs' evaluation, so --no-optimize scores a model only on the rows
    they keep (in any order); a model inlined as SQL sits in their filter, which Spark
    evaluates left to right, and its ``raise_error`` refused a value on a row a later
    ``isnan(a)`` drops. The conjunct waits for every other conjunct that reads no model and
    is a filter Spark pushes: not one reading an outer query's column (a correlated
    subquery's ``y.id = x.id`` becomes a join condition, met after the UDF) nor holding a
    subquery (a join too)."""
    found = top_conjunct(node)
    select = found[0].parent if found is not None else None
    if not isinstance(select, exp.Select):
        return
    sources, nested = _own_sources(select), select.find_ancestor(exp.Select, exp.SetOperation) is not None
    _wait_for(node, lambda conjuncts, index: [
        c for i, c in enumerate(conjuncts) if i != index and not reads_model(c) and _pushed_filter(c, sources, nested)
    ])


def _own_sources(select: exp.Select) -> set[str]:
    """The names the select's own FROM and JOINs go by."""
    sources = [select.args[_FROM].this] if select.args.get(_FROM) else []
    sources += [join.this for join in select.args.get("joins") or []]
    return {source.alias_or_name.lower() for source in sources}


def _pushed_filter(conjunct: exp.Expr, sources: set[str], nested: bool) -> bool:
    """A conjunct Spark evaluates as a filter of the select's own rows: its columns are the
    select's own (an unqualified one may be an outer query's when the select is nested)."""
    if conjunct.find(exp.Select) is not None:
        return False
    return all(column.table.lower() in sources if column.table else not nested for column in conjunct.find_all(exp.Column))


def _wait_for(node: exp.Expr, first: Callable[[list[exp.Expr], int], list[exp.Expr]]) -> None:
    """Put the WHERE conjunct holding ``node`` behind the conjuncts ``first`` picks (of the
    conjuncts and that one's index): ``CASE WHEN <them> THEN <conjunct> ELSE FALSE END``."""
    found = top_conjunct(node)
    if found is None:
        return
    where, conjunct = found
    conjuncts = where_conjuncts(where)
    index = next((i for i, c in enumerate(conjuncts) if c is conjunct), None)
    if index is None:
        return
    earlier = [c.copy() for c in first(conjuncts, index)]
    if not earlier or conjunct.meta.get(_WAITS):
        return
    branch = exp.If(this=exp.and_(*earlier), true=exp.null())
    case = exp.Case(ifs=[branch], default=exp.false())
    case.meta[_WAITS] = True
    conjunct.replace(case)
    branch.set("true", conjunct)


_WAITS = "nbgov_waits_for_earlier_conjuncts"


def conjuncts_apart(select: exp.Select, calls: Sequence[ModelCall]) -> bool:
    """Whether different predict() calls sit in different top-level conjuncts of the WHERE:
    DuckDB scores each later one only on the rows the earlier ones keep, which a batched
    relation, scoring every row, does not."""
    where = select.args.get("where")
    if where is None:
        return False
    held: list[set[tuple[str, ...]]] = []
    for conjunct in where_conjuncts(where):
        inside = {id(n) for n in conjunct.walk()}
        keys = {_key(call) for call in calls if id(call.node) in inside}
        if keys:
            held.append(keys)
    return len(held) > 1 and len(set().union(*held)) > 1


def _key(call: ModelCall) -> tuple[str, ...]:
    return (call.model.ref, *(column.sql() for bound in call.inputs for column in bound.columns))


def undecided(operator: exp.Expr, other: exp.Expr) -> exp.Expression:
    """True on the rows ``other`` leaves to the rest of ``operator`` (not FALSE beside an
    AND, not TRUE beside an OR)."""
    if isinstance(operator, exp.And) or other.meta.get(_QUALIFY_CONJUNCT):
        return exp.Coalesce(this=other.copy(), expressions=[exp.true()])
    return exp.not_(exp.Coalesce(this=other.copy(), expressions=[exp.false()]))


def siblings_first(node: exp.Expr) -> None:
    """Make DuckDB decide the conditions ``decided_first`` names before ``node``: each such
    AND or OR becomes a CASE that evaluates it only on the rows its other side leaves
    undecided (a QUALIFY conjunct: that conjunct, on the rows the conjuncts DuckDB runs
    before it do not make FALSE). A UDF is what DuckDB evaluates last, so --no-optimize
    scores only those rows; a model inlined as SQL with an ``error()`` for values the model
    refuses is cheap, may go first, and failed on a row ``row_number() <= 2`` in a QUALIFY
    would have dropped.
    The same logic, written so, gives the same values."""
    for operator, other in decided_first(node):
        if any(isinstance(n, exp.Anonymous) and str(n.this).lower() == "error" for n in other.walk()):
            continue  # both sides may refuse: --no-optimize's order between them is DuckDB's
        conjunction = isinstance(operator, exp.And) or other.meta.get(_QUALIFY_CONJUNCT)
        decided = exp.false() if conjunction else exp.true()  # FALSE decides an AND
        branch = exp.If(this=undecided(operator, other), true=exp.null())
        operator.replace(exp.Case(ifs=[branch], default=decided))
        branch.set("true", operator)  # moved, not copied: the calls inside stay in the tree


def conditional(node: exp.Expression) -> bool:
    """Whether ``node`` is evaluated only for some rows: in a THEN/ELSE of a CASE (or IF), a
    later WHEN's condition, or a COALESCE argument after the first. DuckDB then scores only
    the rows that reach it, so a value the model refuses in a row the CASE sends elsewhere
    (``CASE WHEN plan IN (...) THEN predict(m, *) END``) is never scored; a batched relation
    scores every row and would fail where --no-optimize does not."""
    return bool(reach_conditions(node))


def reach_conditions(node: exp.Expression) -> list[exp.Expression]:
    """The conditions, all true exactly on the rows for which ``node`` is evaluated (none:
    every row of its SELECT): a CASE branch's WHEN taken and the earlier ones not, an IF's
    branch, COALESCE's earlier arguments NULL. Copies: the tree is left as it is."""
    return [condition for _, conditions in reach_steps(node) for condition in conditions]


def reach_steps(node: exp.Expression) -> list[tuple[exp.Expr, list[exp.Expression]]]:
    """``reach_conditions`` by the node above ``node`` that sets them, innermost first, each
    node's in the order DuckDB evaluates them (a CASE's earlier WHENs first): a condition
    is evaluated only on the rows that pass those before it at its node and all those of
    the nodes above."""
    steps: list[tuple[exp.Expr, list[exp.Expression]]] = []
    child: exp.Expr = node
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Select):
        conditions: list[exp.Expression] = []
        steps.append((parent, conditions))
        if isinstance(parent, exp.If) and isinstance(parent.parent, exp.Case):
            case = parent.parent
            whens = list(case.args.get("ifs") or [])
            conditions += [exp.not_(_taken(case, when)) for when in whens[: whens.index(parent)]]
            if child is parent.args.get("true"):
                conditions.append(_taken(case, parent))
        elif isinstance(parent, exp.If):
            taken = _taken(None, parent)
            if child is parent.args.get("true"):
                conditions.append(taken)
            elif child is parent.args.get("false"):
                conditions.append(exp.not_(taken))
        elif isinstance(parent, exp.Case) and child is parent.args.get("default"):
            conditions += [exp.not_(_taken(parent, when)) for when in parent.args.get("ifs") or []]
        elif isinstance(parent, exp.Coalesce) and child is not parent.this:
            arguments = [parent.this, *parent.expressions]
            earlier = arguments[: next(i for i, a in enumerate(arguments) if a is child)]
            conditions += [exp.Is(this=value.copy(), expression=exp.Null()) for value in earlier]
        child, parent = parent, parent.parent
    return [(step, conditions) for step, conditions in steps if conditions]


def _taken(case: exp.Case | None, when: exp.If) -> exp.Expression:
    """Whether a row takes ``when`` (NULL: it does not): its condition, or for a simple
    ``CASE x WHEN v`` the comparison ``x = v``."""
    operand = case.this if case is not None else None
    condition = when.this.copy() if operand is None else exp.EQ(this=operand.copy(), expression=when.this.copy())
    return exp.Coalesce(this=condition, expressions=[exp.false()])


def _sorted_by_prediction(select: exp.Select, calls: Sequence[ModelCall]) -> bool:
    """Whether the ORDER BY reads a prediction (a call, or a select-list alias of one): then
    every row is scored before LIMIT applies, and scoring them in batches loses nothing."""
    order = select.args.get("order")
    if order is None:
        return False
    nodes = {id(call.node) for call in calls}
    predicted = {e.alias.lower() for e in select.expressions if e.alias and any(id(n) in nodes for n in e.walk())}
    return any(
        id(node) in nodes or (isinstance(node, exp.Column) and not node.table and node.name.lower() in predicted)
        for node in order.walk()
    )


def source_alias(select: exp.Select) -> str:
    return select.args[_FROM].this.alias_or_name or "nbgov_src"


def split_where(select: exp.Select, scored: Sequence[exp.Expression]) -> tuple[list[exp.Expr], list[exp.Expr]]:
    """The WHERE's conjuncts as (pushed, kept): pushed ones filter the rows before they
    are scored; kept ones read a prediction (or a select-list alias, which DuckDB allows
    in WHERE) and stay in the outer query, over the scored rows."""
    where = select.args.get("where")
    if where is None:
        return [], []
    conjuncts = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
    aliases = {e.alias.lower() for e in select.expressions if e.alias}
    scored_ids = {id(node) for node in scored}
    pushed: list[exp.Expr] = []
    kept: list[exp.Expr] = []
    for conjunct in conjuncts:
        reads_outer = any(
            id(node) in scored_ids or (isinstance(node, exp.Column) and not node.table and node.name.lower() in aliases)
            for node in conjunct.walk()
        )
        (kept if reads_outer else pushed).append(conjunct)
    return pushed, kept


def needed_columns(
    select: exp.Select, scored: Sequence[exp.Expression], pushed: Sequence[exp.Expr] = ()
) -> list[str] | None:
    """Source columns the outer query still reads once predict calls are columns and the
    ``pushed`` conjuncts of its WHERE have moved into the scored relation's query;
    None when that cannot be told (a ``*``, a subquery), meaning all of them."""
    skip = {id(node) for node in [*scored, *pushed]}
    for key in (_FROM, "with_"):
        if select.args.get(key) is not None:
            skip.add(id(select.args[key]))
    aliases = {e.alias.lower() for e in select.expressions if e.alias}
    alias = source_alias(select).lower()
    names: list[str] = []
    for node in select.walk(prune=lambda n: id(n) in skip):
        if id(node) in skip:
            continue
        if isinstance(node, (exp.Subquery, exp.Select)) and node is not select:
            return None
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            return None
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star) or (node.table and node.table.lower() != alias):
                return None
            if node.name.lower() in aliases and not node.table:
                continue
            if node.name and node.name not in names:
                names.append(node.name)
    return names


def inner_query(
    select: exp.Select,
    arguments: Sequence[tuple[str, exp.Expression]],
    columns: list[str] | None = None,
    pushed: Sequence[exp.Expr] = (),
) -> exp.Select:
    """``SELECT *, CAST(arg) AS helper, ... FROM source WHERE <pushed>`` — the rows to score."""
    kept: list[exp.Expression] = (
        [exp.Star()] if columns is None else [exp.column(name, quoted=True) for name in columns]
    )
    inner = exp.select(*kept, *[exp.alias_(e, name, quoted=True) for name, e in arguments])
    inner.set(_FROM, select.args[_FROM].copy())
    if pushed:
        inner.set("where", exp.Where(this=exp.and_(*pushed)))  # and_ copies them
    with_ = select.args.get("with_")
    if with_ is not None:
        inner.set("with_", with_.copy())
    return inner


def rewrite_outer(
    select: exp.Select, table: str, alias: str, hidden: Sequence[str], kept: Sequence[exp.Expr] = ()
) -> None:
    """Read from the scored table (aliased like the source), filtered by the ``kept``
    conjuncts of the WHERE (those reading predictions); hide helper columns from ``*``."""
    select.set(_FROM, exp.From(this=exp.Table(this=exp.to_identifier(table, quoted=True), alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))))
    select.set("where", exp.Where(this=exp.and_(*kept, copy=False)) if kept else None)
    select.set("with_", None)
    hidden_ids = [exp.to_identifier(h, quoted=True) for h in hidden]
    for star in list(select.find_all(exp.Star)):
        if star.find_ancestor(exp.Select) is not select or isinstance(star.parent, (exp.Count, exp.AggFunc)):
            continue
        existing = list(star.args.get("except_") or [])
        star.set("except_", existing + [h.copy() for h in hidden_ids])
