"""DuckDB's meaning of functions whose Spark namesakes (as sqlglot translates them)
count otherwise, as sqlglot trees of Spark functions: the day of the week, date_diff's
boundaries, exact quantiles, ordered lists that keep NULLs, ``isinf`` and ``format``'s
``{}``. Used by ``dialect.NbgovSpark``."""

from __future__ import annotations

import sqlglot.expressions as exp

from nbgov.errors import SqlError

# DuckDB's names of the day of the week as a date part: 0 = Sunday (``dow``), or ISO's
# 1 = Monday ... 7 = Sunday (``isodow``). Spark's DAYOFWEEK counts 1 = Sunday.
_DOW_PARTS = {"DOW", "DAYOFWEEK", "WEEKDAY"}
_ISODOW_PARTS = {"ISODOW"}
# DuckDB's date_diff counts the boundaries of these parts crossed: calendar fields (months
# in one), days, and clock units (seconds in one); its weeks are days // 7.
_CALENDAR_MONTHS = {"YEAR": 12, "QUARTER": 3, "MONTH": 1}
_CLOCK_SECONDS = {"HOUR": 3600, "MINUTE": 60, "SECOND": 1}
DATE_DIFF_UNITS = frozenset({*_CALENDAR_MONTHS, *_CLOCK_SECONDS, "DAY", "WEEK"})  # date_diff units counted as DuckDB does


def _bigint(value: exp.Expression) -> exp.Expression:
    """DuckDB's date parts are BIGINT; Spark's INT."""
    return exp.cast(value, exp.DataType.build("bigint"))


def day_of_week(value: exp.Expression) -> exp.Expression:
    """DuckDB's ``dayofweek``: 0 = Sunday ... 6 = Saturday (Spark's DAYOFWEEK minus one)."""
    return _bigint(exp.Sub(this=exp.Anonymous(this="DAYOFWEEK", expressions=[value]), expression=exp.Literal.number(1)))


def iso_day_of_week(value: exp.Expression) -> exp.Expression:
    """DuckDB's ``isodow``: 1 = Monday ... 7 = Sunday, ``(DAYOFWEEK + 5) % 7 + 1`` on Spark."""
    shifted = exp.Paren(this=exp.Add(this=exp.Anonymous(this="DAYOFWEEK", expressions=[value]), expression=exp.Literal.number(5)))
    return _bigint(exp.Add(this=exp.Mod(this=shifted, expression=exp.Literal.number(7)), expression=exp.Literal.number(1)))


def day_part(part: str, value: exp.Expression) -> exp.Expression | None:
    """A day-of-the-week date part as DuckDB counts it, or None for the other parts."""
    if part.upper() in _DOW_PARTS:
        return day_of_week(value)
    if part.upper() in _ISODOW_PARTS:
        return iso_day_of_week(value)
    return None


def boundaries(unit: str, start: exp.Expression, end: exp.Expression) -> exp.Expression:
    """How many ``unit`` boundaries lie between ``start`` and ``end`` (negative when end is
    earlier), as DuckDB's ``date_diff`` counts them."""
    if unit in _CALENDAR_MONTHS:
        def months(value: exp.Expression) -> exp.Expression:
            year = exp.Mul(this=exp.Anonymous(this="YEAR", expressions=[value]), expression=exp.Literal.number(12))
            month = exp.Anonymous(this="MONTH", expressions=[value.copy()])
            return exp.Paren(this=exp.Sub(this=exp.Add(this=year, expression=month), expression=exp.Literal.number(1)))

        step = exp.Literal.number(_CALENDAR_MONTHS[unit])  # months counted from year 0's January
        ends = [exp.Anonymous(this="FLOOR", expressions=[exp.Div(this=months(v), expression=step.copy())]) for v in (end, start)]
        return _bigint(exp.Sub(this=ends[0], expression=ends[1]))
    if unit in _CLOCK_SECONDS:
        def seconds(value: exp.Expression) -> exp.Expression:
            truncated = exp.Anonymous(this="DATE_TRUNC", expressions=[exp.Literal.string(unit), value])
            return exp.Anonymous(this="UNIX_SECONDS", expressions=[exp.cast(truncated, exp.DataType.build("timestamp"))])

        elapsed = exp.Paren(this=exp.Sub(this=seconds(end), expression=seconds(start)))
        return _bigint(exp.IntDiv(this=elapsed, expression=exp.Literal.number(_CLOCK_SECONDS[unit])))  # whole units: DIV truncates
    days = exp.Anonymous(
        this="DATEDIFF", expressions=[exp.cast(end, exp.DataType.build("date")), exp.cast(start, exp.DataType.build("date"))]
    )
    if unit == "WEEK":  # whole weeks of days, truncated toward zero (DIV truncates)
        return _bigint(exp.IntDiv(this=days, expression=exp.Literal.number(7)))
    return _bigint(days)


def percentile(expression: exp.Expression, name: str) -> exp.Expression:
    """DuckDB's exact ``quantile_cont(x, q)`` / ``quantile_disc(x, q)`` as Spark's exact
    ``PERCENTILE(x, q)`` / ``PERCENTILE_DISC(q) WITHIN GROUP (ORDER BY x)`` (sqlglot keeps
    DuckDB's two arguments, which Spark refuses); inside ``WITHIN GROUP`` as written."""
    value, quantile = expression.this, expression.args.get("expression")
    if quantile is None or isinstance(expression.parent, exp.WithinGroup):
        return exp.Anonymous(this=name, expressions=[value] + ([quantile] if quantile is not None else []))
    if name == "PERCENTILE_CONT":
        return exp.Anonymous(this="PERCENTILE", expressions=[value, quantile])
    ordered = exp.Order(expressions=[exp.Ordered(this=value, nulls_first=False)])
    return exp.WithinGroup(this=exp.Anonymous(this=name, expressions=[quantile]), expression=ordered)


def list_size(expression: exp.ArraySize) -> exp.Expression | None:
    """DuckDB's ``array_length(list)``: a BIGINT, NULL for NULL (Spark's SIZE is an INT, -1
    for NULL without ANSI mode); None (sqlglot's translation) with a dimension."""
    if expression.expression is not None:
        return None
    return _bigint(exp.Anonymous(this="ARRAY_SIZE", expressions=[expression.this]))


def list_in_order(expression: exp.ArrayAgg) -> exp.Expression | None:
    """DuckDB's ``list(x [ORDER BY k...])``: every value, NULLs too, in the order asked.
    Spark's COLLECT_LIST (sqlglot's translation) drops NULLs and takes no ORDER BY: each
    value is collected in a struct with its sort keys (a struct of a NULL is not NULL),
    sorted by those keys, and unwrapped. None (sqlglot's translation) when windowed,
    filtered or DISTINCT."""
    argument = expression.this
    if isinstance(expression.parent, (exp.Window, exp.Filter)) or isinstance(argument, exp.Distinct):
        return None
    ordered = list(argument.expressions) if isinstance(argument, exp.Order) else []
    value = argument.this if isinstance(argument, exp.Order) else argument
    fields: list[exp.Expression] = [exp.Literal.string("v"), value]
    for i, key in enumerate(ordered):
        fields += [exp.Literal.string(f"k{i}"), key.this]
    collected: exp.Expression = exp.Anonymous(
        this="COLLECT_LIST", expressions=[exp.Anonymous(this="NAMED_STRUCT", expressions=fields)]
    )
    if ordered:
        a, b = exp.to_identifier("nbgov_a"), exp.to_identifier("nbgov_b")
        compare: exp.Expression = exp.Literal.number(0)
        for i, key in reversed(list(enumerate(ordered))):
            compare = _compare_key(f"k{i}", bool(key.args.get("desc")), bool(key.args.get("nulls_first")), compare)
        comparator = exp.Lambda(this=compare, expressions=[a, b])
        collected = exp.Anonymous(this="ARRAY_SORT", expressions=[collected, comparator])
    item = exp.to_identifier("nbgov_s")
    unwrap = exp.Lambda(this=exp.column("v", table=item), expressions=[item])
    return exp.Anonymous(this="TRANSFORM", expressions=[collected, unwrap])


def _compare_key(field: str, desc: bool, nulls_first: bool, tie: exp.Expression) -> exp.Expression:
    """A sort comparator's CASE for one key of ``nbgov_a`` and ``nbgov_b`` (``tie`` when equal)."""
    left, right = exp.column(field, table="nbgov_a"), exp.column(field, table="nbgov_b")
    one, minus_one = exp.Literal.number(1), exp.Literal.number(-1)
    before, after = (minus_one, one) if not desc else (one, minus_one)  # left < right
    null_left, null_right = (minus_one, one) if nulls_first else (one, minus_one)
    return (
        exp.Case()
        .when(exp.and_(left.is_(exp.null()), right.is_(exp.null())), tie)
        .when(left.is_(exp.null()), null_left)
        .when(right.is_(exp.null()), null_right)
        .when(exp.LT(this=left.copy(), expression=right.copy()), before)
        .when(exp.GT(this=left.copy(), expression=right.copy()), after)
        .else_(tie.copy())
    )


def infinite(value: exp.Expression) -> exp.Expression:
    """DuckDB's ``isinf(x)`` (Spark has none): ``abs(x)`` is infinity; NULL for NULL."""
    return exp.EQ(this=exp.Abs(this=value), expression=exp.cast(exp.Literal.string("Infinity"), exp.DataType.build("double")))


def formatted(node: exp.Format) -> exp.Expression:
    """DuckDB's ``format('{} of {}', a, b)`` (its ``{}`` placeholders; NULL if an argument is
    NULL) as Spark's ``format_string('%s of %s', a, b)``. Other placeholders (``{:.2f}``,
    ``{0}``) or a format that is not a text literal are refused in one line: Spark's
    ``format_string`` would print them as written."""
    template, arguments = node.this, list(node.expressions)
    text = template.name if isinstance(template, exp.Literal) and template.is_string else None
    converted = _printf(text) if text is not None else None
    if converted is None or converted[1] != len(arguments):
        raise SqlError(
            "format() on the spark engine takes a text literal with one {} per argument; "
            "write other placeholders with printf('%.2f', x) or concat()"
        )
    call = exp.Anonymous(this="FORMAT_STRING", expressions=[exp.Literal.string(converted[0]), *arguments])
    if not arguments:
        return call
    missing = [exp.Is(this=argument.copy(), expression=exp.Null()) for argument in arguments]
    return exp.Case(ifs=[exp.If(this=exp.or_(*missing), true=exp.Null())], default=call)


def _printf(template: str) -> tuple[str, int] | None:
    """A ``{}`` format as printf's (``{{``/``}}`` are braces, ``%`` is ``%%``), and how many
    placeholders it has; None for any other placeholder."""
    out: list[str] = []
    count, i = 0, 0
    while i < len(template):
        pair = template[i : i + 2]
        if pair in ("{{", "}}"):
            out.append(pair[0])
            i += 2
        elif pair == "{}":
            out.append("%s")
            count += 1
            i += 2
        elif template[i] in "{}":
            return None
        else:
            out.append("%%" if template[i] == "%" else template[i])
            i += 1
    return "".join(out), count


def epoch_seconds(value: exp.Expression) -> exp.Expression:
    """DuckDB's ``epoch(t)`` / ``EXTRACT(epoch FROM t)``: seconds since 1970 as a DOUBLE,
    fractions kept (Spark's ``unix_timestamp`` drops them); a date at its midnight."""
    instant = exp.cast(value, exp.DataType.build("timestamp"))
    return exp.Div(this=exp.Anonymous(this="UNIX_MICROS", expressions=[instant]), expression=exp.Literal.number(1_000_000))


def number_series(series: exp.GenerateSeries, alias: exp.TableAlias | None) -> exp.Table | None:
    """DuckDB's ``FROM range(a, b[, step])`` (``b`` excluded) or ``generate_series(a, b[, step])``
    of numbers as Spark's exploded SEQUENCE, named as DuckDB names it (``range`` or
    ``generate_series``, or the alias's column), empty when the bounds are (Spark's
    SEQUENCE(0, -1) counts down) and BIGINT; a series of times (an INTERVAL step) only
    named. None for a ``range`` of times, left to sqlglot."""
    start, end, step = (series.args.get(k) for k in ("start", "end", "step"))
    exclusive = bool(series.args.get("is_end_exclusive"))
    if start is None or end is None or (isinstance(step, exp.Interval) and exclusive):
        return None
    if isinstance(step, exp.Interval):
        times = exp.Anonymous(this="SEQUENCE", expressions=[start.copy(), end.copy(), step.copy()])
        return _named_series(times, alias, exclusive)
    bigint = exp.DataType.build("bigint")
    first, step = exp.cast(start.copy(), bigint), exp.cast((step or exp.Literal.number(1)).copy(), bigint)
    last: exp.Expression = exp.cast(end.copy(), bigint)
    if exclusive:  # the last number before the end, in the step's direction
        last = exp.Sub(this=last, expression=exp.cast(exp.Anonymous(this="SIGN", expressions=[step.copy()]), bigint))
    ascending = exp.GT(this=step.copy(), expression=exp.Literal.number(0))
    empty = exp.or_(
        exp.and_(ascending, exp.LT(this=last.copy(), expression=first.copy())),
        exp.and_(exp.Not(this=ascending.copy()), exp.GT(this=last.copy(), expression=first.copy())),
    )
    numbers = exp.Case(
        ifs=[exp.If(this=empty, true=exp.cast(exp.Array(expressions=[]), exp.DataType.build("array<bigint>")))],
        default=exp.Anonymous(this="SEQUENCE", expressions=[first, last, step]),
    )
    return _named_series(numbers, alias, exclusive)


def _named_series(values: exp.Expression, alias: exp.TableAlias | None, exclusive: bool) -> exp.Table:
    """``values`` exploded, its column named as DuckDB names a series (or as the alias does)."""
    columns = alias.columns if alias is not None else []
    name = columns[0].copy() if columns else exp.to_identifier("range" if exclusive else "generate_series")
    table = alias.this.copy() if alias is not None and alias.this else exp.to_identifier("nbgov_series")
    return exp.Table(this=exp.Explode(this=values), alias=exp.TableAlias(this=table, columns=[name]))
