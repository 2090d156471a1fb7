"""Users write DuckDB SQL; Spark runs Spark SQL. sqlglot generates the compiled tree in
``DIALECT`` (Spark's, plus DuckDB's ``FROM 'file.parquet'`` as Spark's
``parquet.`file.parquet```), and ``$name`` parameters become Spark's named parameter
markers (``:name``), bound by ``spark.sql(query, args=...)``: values never enter the SQL
text."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from typing import Any

import numpy as np
import sqlglot.expressions as exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator
from sqlglot.parsers.duckdb import DuckDBParser

from nbgov.errors import SqlmlError

# DuckDB reads ``FROM 'file.parquet'``; Spark's form is ``parquet.`file.parquet```.
_FILE_FORMATS = {".parquet": "parquet", ".orc": "orc", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
_SCALARS = (str, int, float, bool, bytes, decimal.Decimal, datetime.date, datetime.datetime)

# Statement types as the DuckDB executor names them (its parser's), for sqlglot's trees.
_STATEMENT_TYPES: tuple[tuple[type[exp.Expr], str], ...] = (
    (exp.Query, "SELECT"),
    (exp.Create, "CREATE"),
    (exp.Insert, "INSERT"),
    (exp.Update, "UPDATE"),
    (exp.Delete, "DELETE"),
    (exp.Drop, "DROP"),
    (exp.Alter, "ALTER"),
    (exp.Describe, "DESCRIBE"),
    (exp.Show, "SHOW"),
    (exp.Use, "USE"),
    (exp.Set, "SET"),
)


# DuckDB's names of the day of the week as a date part: 0 = Sunday (``dow``), or ISO's
# 1 = Monday ... 7 = Sunday (``isodow``). Spark's DAYOFWEEK counts 1 = Sunday.
_DOW_PARTS = {"DOW", "DAYOFWEEK", "WEEKDAY"}
_ISODOW_PARTS = {"ISODOW"}
# DuckDB's date_diff counts the boundaries of these parts crossed: calendar fields (months
# in one), days, and clock units (seconds in one); its weeks are days // 7.
_CALENDAR_MONTHS = {"YEAR": 12, "QUARTER": 3, "MONTH": 1}
_CLOCK_SECONDS = {"HOUR": 3600, "MINUTE": 60, "SECOND": 1}


class NbgovSpark(Spark):
    """Spark SQL, reading DuckDB's quoted file paths as Spark's file tables, with DuckDB's
    meaning of the date functions whose Spark namesakes count otherwise (day of the week,
    day and month names, date_diff's boundaries). sqlglot registers the dialect under its
    lower-cased class name."""

    class Generator(SparkGenerator):
        TRANSFORMS = {
            **SparkGenerator.TRANSFORMS,
            exp.DayOfWeek: lambda self, e: self.sql(_day_of_week(e.this)),
            exp.DayOfWeekIso: lambda self, e: self.sql(_iso_day_of_week(e.this)),
            exp.Dayname: lambda self, e: self.func("DATE_FORMAT", e.this, exp.Literal.string("EEE" if e.args.get("abbreviated") else "EEEE")),
            exp.Monthname: lambda self, e: self.func("DATE_FORMAT", e.this, exp.Literal.string("MMM" if e.args.get("abbreviated") else "MMMM")),
            exp.PercentileCont: lambda self, e: self.sql(_percentile(e, "PERCENTILE_CONT")),
            exp.PercentileDisc: lambda self, e: self.sql(_percentile(e, "PERCENTILE_DISC")),
            # DuckDB's quantile(x, q) is quantile_disc (sqlglot's Spark: the continuous PERCENTILE)
            exp.Quantile: lambda self, e: self.sql(
                _percentile(exp.PercentileDisc(this=e.this, expression=e.args.get("quantile")), "PERCENTILE_DISC")
            ),
        }
        # Spark's own ``percentile_cont(q) WITHIN GROUP (ORDER BY x)`` is exact; sqlglot's
        # Spark makes it percentile_approx
        TRANSFORMS.pop(exp.WithinGroup, None)

        def arrayagg_sql(self, expression: exp.ArrayAgg) -> str:
            listed = _list_in_order(expression)
            return self.sql(listed) if listed is not None else super().arrayagg_sql(expression)

        def extract_sql(self, expression: exp.Extract) -> str:
            """``EXTRACT(dow FROM d)`` / ``(isodow FROM d)`` counted as DuckDB does."""
            day = _day_part(expression.name, expression.expression)
            return self.sql(day) if day is not None else super().extract_sql(expression)

        def datediff_sql(self, expression: exp.DateDiff) -> str:
            """DuckDB's ``date_diff(part, start, end)`` counts the part's boundaries crossed
            (2023-12-31 to 2024-01-01 is one year); Spark's counts whole parts elapsed. Year,
            quarter and month from the calendar fields, days and weeks from the dates, clock
            units from the truncated times."""
            unit = expression.unit.name.upper() if isinstance(expression.unit, (exp.Var, exp.Literal)) else ""
            if unit in {*_CALENDAR_MONTHS, *_CLOCK_SECONDS, "DAY", "WEEK"}:
                return self.sql(_boundaries(unit, expression.expression, expression.this))
            return super().datediff_sql(expression)

        def table_sql(self, expression: exp.Table, sep: str = " AS ") -> str:
            fmt = _file_format(expression)
            if fmt is not None:
                expression = expression.copy()
                expression.set("db", exp.to_identifier(fmt))
            return super().table_sql(expression, sep)

        def anonymous_sql(self, expression: exp.Anonymous) -> str:
            """DuckDB's one-argument ``encode(text)`` (UTF-8 bytes, compared byte for byte
            whatever the collation) is Spark's ``encode(text, 'UTF-8')``; the list
            functions of models inlined as SQL (``forest_sql.py``) are Spark's array ones."""
            name, args = str(expression.this).lower(), list(expression.expressions)
            day = None
            if name == "weekday" and len(args) == 1:  # DuckDB: dayofweek; Spark: 0 = Monday
                day = _day_of_week(args[0])
            elif name in {"date_part", "datepart"} and len(args) == 2 and isinstance(args[0], exp.Literal):
                day = _day_part(args[0].name, args[1])
            if day is not None:
                return self.sql(day)
            if name == "encode" and len(args) == 1:
                expression = exp.Anonymous(this="encode", expressions=[*args, exp.Literal.string("UTF-8")])
            elif name == "list_reduce" and len(args) == 2:
                expression = _sum_from_zero(args[0], "float", args[1])  # the FLOAT tree scores
            elif name == "list_position" and len(args) == 2:
                expression = exp.Anonymous(this="ARRAY_POSITION", expressions=args)  # both 1-based
            elif name == "list_sum" and len(args) == 1:
                a, b = exp.to_identifier("nbgov_a"), exp.to_identifier("nbgov_b")
                add = exp.Lambda(this=exp.Add(this=exp.column(a), expression=exp.column(b)), expressions=[a, b])
                expression = _sum_from_zero(args[0], "double", add)  # a softmax's DOUBLE exponentials
            return super().anonymous_sql(expression)

        def bracket_sql(self, expression: exp.Bracket) -> str:
            """``list[list_position(...)]`` (DuckDB, 1-based) as ``element_at`` (1-based):
            sqlglot shifts only literal subscripts to Spark's 0-based ``[]``."""
            index = expression.expressions
            if len(index) == 1 and isinstance(index[0], exp.Anonymous) and str(index[0].this).lower() == "list_position":
                position = exp.cast(index[0], exp.DataType.build("int"))  # element_at takes an INT
                return self.func("ELEMENT_AT", expression.this, position)
            return super().bracket_sql(expression)


def _bigint(value: exp.Expression) -> exp.Expression:
    """DuckDB's date parts are BIGINT; Spark's INT."""
    return exp.cast(value, exp.DataType.build("bigint"))


def _day_of_week(value: exp.Expression) -> exp.Expression:
    """DuckDB's ``dayofweek``: 0 = Sunday ... 6 = Saturday (Spark's DAYOFWEEK minus one)."""
    return _bigint(exp.Sub(this=exp.Anonymous(this="DAYOFWEEK", expressions=[value]), expression=exp.Literal.number(1)))


def _iso_day_of_week(value: exp.Expression) -> exp.Expression:
    """DuckDB's ``isodow``: 1 = Monday ... 7 = Sunday, ``(DAYOFWEEK + 5) % 7 + 1`` on Spark."""
    shifted = exp.Paren(this=exp.Add(this=exp.Anonymous(this="DAYOFWEEK", expressions=[value]), expression=exp.Literal.number(5)))
    return _bigint(exp.Add(this=exp.Mod(this=shifted, expression=exp.Literal.number(7)), expression=exp.Literal.number(1)))


def _day_part(part: str, value: exp.Expression) -> exp.Expression | None:
    """A day-of-the-week date part as DuckDB counts it, or None for the other parts."""
    if part.upper() in _DOW_PARTS:
        return _day_of_week(value)
    if part.upper() in _ISODOW_PARTS:
        return _iso_day_of_week(value)
    return None


def _boundaries(unit: str, start: exp.Expression, end: exp.Expression) -> exp.Expression:
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
        return _bigint(exp.Div(this=elapsed, expression=exp.Literal.number(_CLOCK_SECONDS[unit])))
    days = exp.Anonymous(
        this="DATEDIFF", expressions=[exp.cast(end, exp.DataType.build("date")), exp.cast(start, exp.DataType.build("date"))]
    )
    if unit == "WEEK":  # whole weeks of days, truncated toward zero (the cast truncates)
        return _bigint(exp.Div(this=days, expression=exp.Literal.number(7)))
    return _bigint(days)


def _percentile(expression: exp.Expression, name: str) -> exp.Expression:
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


def _list_in_order(expression: exp.ArrayAgg) -> exp.Expression | None:
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


def _sum_from_zero(array: exp.Expression, sql_type: str, add: exp.Expression) -> exp.Anonymous:
    """Spark's ``AGGREGATE(array, CAST(0 AS type), add)``: the elements added left to right
    from a typed 0 (0 + x is x exactly), as DuckDB's list fold adds them."""
    zero = exp.cast(exp.Literal.number(0), exp.DataType.build(sql_type))
    return exp.Anonymous(this="AGGREGATE", expressions=[array, zero, add])


DIALECT = NbgovSpark.__name__.lower()


class NbgovDuckDB(DuckDB):
    """DuckDB's dialect where ``predict(...)`` is nbgov's model call, any arity (sqlglot
    knows a three-argument SQL ``PREDICT`` function), so a cell reads as written: the
    positions in a syntax error are the user's."""

    class Parser(DuckDBParser):
        FUNCTIONS = {name: build for name, build in DuckDBParser.FUNCTIONS.items() if name != "PREDICT"}


READER = NbgovDuckDB.__name__.lower()


def _file_format(table: exp.Table) -> str | None:
    identifier = table.this
    if table.db or not isinstance(identifier, exp.Identifier) or not identifier.quoted:
        return None
    name = identifier.name.lower()
    return next((fmt for ext, fmt in _FILE_FORMATS.items() if name.endswith(ext)), None)


def statement_type(tree: exp.Expression) -> str:
    """The statement's type name (``SELECT``, ``CREATE``...) as the DuckDB executor gives it."""
    for kind, name in _STATEMENT_TYPES:
        if isinstance(tree, kind):
            return name
    if isinstance(tree, exp.Command):
        return str(tree.this).upper()
    return tree.key.upper()


def parameter_names(tree: exp.Expression) -> tuple[str, ...]:
    """The ``$name`` parameters of a statement, in order of first use; ``$1`` or ``?`` are
    refused (Spark binds notebook variables by name only)."""
    names: list[str] = []
    for node in tree.find_all(exp.Placeholder, exp.Parameter):
        name = node.name
        if not name or name.isdigit():
            shown = f"${name}" if name else "?"
            raise SqlmlError(f"positional parameter {shown} is not supported; use $name for a notebook variable")
        if name not in names:
            names.append(name)
    return tuple(names)


def bind_parameters(names: tuple[str, ...], params: Mapping[str, Any]) -> dict[str, Any]:
    """Spark ``args`` for the statement's parameters, from notebook variables."""
    bound: dict[str, Any] = {}
    for name in names:
        if name not in params:
            raise SqlmlError(f"unknown parameter ${name}: no notebook variable of that name")
        bound[name] = spark_value(name, params[name])
    return bound


def spark_value(name: str, value: Any) -> Any:
    """A value Spark binds as a literal: Python scalars as they are, numpy scalars as
    Python ones, lists and 1-D arrays as ARRAY literals."""
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        from pyspark.sql import functions as F

        items = value.tolist() if isinstance(value, np.ndarray) else list(value)
        return F.array(*[F.lit(spark_value(name, item)) for item in items])
    raise SqlmlError(
        f"parameter ${name} is a {type(value).__name__}; expected a number, string, date, bytes or a list of them"
    )
