"""Users write DuckDB SQL; Spark runs Spark SQL. sqlglot generates the compiled tree in
``DIALECT`` (Spark's, plus DuckDB's ``FROM 'file.parquet'`` as Spark's
``parquet.`file.parquet```), and ``$name`` parameters become Spark's named parameter
markers (``:name``), bound by ``spark.sql(query, args=...)``: values never enter the SQL
text."""

from __future__ import annotations

import datetime
import decimal
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import sqlglot.expressions as exp
from sqlglot import transforms
import xxhash
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator
from sqlglot.parsers.duckdb import DuckDBParser

from nbgov.errors import SqlError, SqlmlError
from nbgov.sqlml.planning.prepared import INLINED_MODEL
from nbgov.sqlml.spark.arithmetic import PLAIN_QUOTIENT, ieee_quotient
from nbgov.sqlml.spark.membership import quantified_as_in, three_valued
from nbgov.sqlml.spark.functions import (
    DATE_DIFF_UNITS,
    boundaries,
    day_of_week,
    day_part,
    epoch_seconds,
    formatted,
    infinite,
    iso_day_of_week,
    list_in_order,
    list_size,
    number_series,
    percentile,
)
from nbgov.sqlml.spark.patterns import empty_escape, escaped_ordinary, given_escape, glob_regex, ordinary_backslash
from nbgov.sqlml.spark.regex import full_match, regexp_replace
from nbgov.sqlml.spark.slices import slice_bounds, written as sliced_as_typed
from nbgov.sqlml.spark.timeformat import formatted_time, parsing_pattern
from nbgov.sqlml.sql.parse import SliceReadingParser
from nbgov.sqlml.sql.frames import refuse_table_parameter

# DuckDB reads ``FROM 'file.parquet'``; Spark's form is ``parquet.`file.parquet```.
_FILE_FORMATS = {".parquet": "parquet", ".orc": "orc", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
_CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
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


def _qualify_without_helpers(select: exp.Expr) -> exp.Expr:
    """sqlglot's QUALIFY (which Spark lacks) as a filter over a subquery, then the ORDER BY,
    LIMIT and OFFSET, which DuckDB applies after QUALIFY (sqlglot left them inside, so a
    LIMIT cut rows before the filter), reading columns the query does not show through
    helper columns; ``SELECT *`` without the columns the subquery adds (``_w``), which it
    showed."""
    qualified = isinstance(select, exp.Select) and bool(select.args.get("qualify"))
    before = set(select.named_selects) if isinstance(select, exp.Select) else set()
    filtered = transforms.eliminate_qualify(select)
    if not qualified or not isinstance(filtered, exp.Select):
        return filtered
    inner = filtered.args["from_"].this.this
    for clause in ("order", "limit", "offset"):
        moved = inner.args.get(clause)
        if moved is not None:
            inner.set(clause, None)
            filtered.set(clause, moved)
    order = filtered.args.get("order")
    for position, column in enumerate(list(order.find_all(exp.Column)) if order is not None else []):
        if column.name in before and not column.table:
            continue  # an output of the query, by its name
        helper = f"nbgov_order_{position}"  # a column the ORDER BY reads but the query does not show
        inner.select(exp.alias_(column.copy(), helper), copy=False)
        column.replace(exp.column(helper))
    helpers = [name for name in inner.named_selects if name not in before and name != "*"]
    star = filtered.expressions[0]
    if helpers and isinstance(star, exp.Star):
        star.set("except_", [exp.column(name) for name in helpers])
    return filtered


def _integer(node: exp.Expression | None) -> int | None:
    """The value of an integer literal (``-1`` too), else None."""
    if isinstance(node, exp.Neg):
        inner = _integer(node.this)
        return -inner if inner is not None else None
    return int(node.name) if isinstance(node, exp.Literal) and node.is_int else None


def _unless_null(value: exp.Expression, key: exp.Expression) -> exp.Expression:
    """``key`` where ``value`` is not NULL, else NULL (a row max_by / min_by then skip)."""
    return exp.Case(ifs=[exp.If(this=exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())), true=key.copy())])


# DuckDB's date parts (functions and EXTRACT / date_part names) as Spark's functions of the
# same value; DuckDB's are BIGINTs, whole seconds for ``second``, ISO's week for ``week``
_PART_FUNCTIONS = {
    **{part: "YEAR" for part in ("YEAR", "YEARS", "Y", "YR", "YRS")},
    **{part: "QUARTER" for part in ("QUARTER", "QUARTERS")},
    **{part: "MONTH" for part in ("MONTH", "MONTHS", "MON", "MONS")},
    **{part: "WEEKOFYEAR" for part in ("WEEK", "WEEKS", "W")},
    **{part: "DAY" for part in ("DAY", "DAYS", "D")},
    **{part: "DAYOFYEAR" for part in ("DOY", "DAYOFYEAR")},
    **{part: "HOUR" for part in ("HOUR", "HOURS", "H", "HR", "HRS")},
    **{part: "MINUTE" for part in ("MINUTE", "MINUTES", "M", "MIN", "MINS")},
    **{part: "SECOND" for part in ("SECOND", "SECONDS", "S", "SEC", "SECS")},
}
_PART_CLASSES: dict[type[exp.Expr], str] = {
    exp.Year: "YEAR", exp.Quarter: "QUARTER", exp.Month: "MONTH", exp.Week: "WEEKOFYEAR", exp.WeekOfYear: "WEEKOFYEAR",
    exp.Day: "DAY", exp.DayOfMonth: "DAY", exp.DayOfYear: "DAYOFYEAR", exp.Hour: "HOUR", exp.Minute: "MINUTE",
    exp.Second: "SECOND",
}
_RANKS = (exp.Rank, exp.DenseRank, exp.RowNumber, exp.Ntile)
_WIDENED = "nbgov_bigint"  # meta key: a window already cast to DuckDB's BIGINT


def _bigint_call(name: str, value: exp.Expr) -> exp.Expr:
    """Spark's ``name(value)`` as DuckDB's BIGINT."""
    return exp.cast(exp.Anonymous(this=name, expressions=[value]), exp.DataType.build("bigint"))


def _position(args: list[exp.Expr]) -> exp.Expr:
    """DuckDB's ``list_position(list, x)``: 1-based as Spark's ARRAY_POSITION, but NULL where
    ``x`` is not in the list (Spark: 0), an INTEGER (Spark: a BIGINT)."""
    found = exp.Nullif(this=exp.Anonymous(this="ARRAY_POSITION", expressions=args), expression=exp.Literal.number(0))
    return exp.cast(found, exp.DataType.build("int"))


_LIKE_ESCAPE = frozenset({"like_escape", "not_like_escape", "ilike_escape", "not_ilike_escape"})


def _like_escape(name: str, args: list[exp.Expr]) -> exp.Expr:
    """DuckDB's ``like_escape(text, pattern, escape)`` (and its NOT / ILIKE siblings) as
    the LIKE ... ESCAPE it means (Spark has no such function); Spark takes one literal
    character (``''``: none, as on DuckDB)."""
    text, pattern, escape = args
    if not (isinstance(escape, exp.Literal) and escape.is_string and len(escape.this) <= 1):
        raise SqlError(f"{name} needs a text literal of at most one character as its escape on the spark engine")
    like: exp.Expr = (exp.ILike if "ilike" in name else exp.Like)(this=text, expression=pattern)
    escaped: exp.Expr = exp.Escape(this=like, expression=escape)
    return exp.Not(this=exp.paren(escaped, copy=False)) if name.startswith("not_") else escaped


def _sign(value: exp.Expr) -> exp.Expr:
    """DuckDB's ``sign(x)`` is a TINYINT whatever ``x`` is, 0 for NaN; Spark's SIGN (signum)
    a DOUBLE, NaN for NaN."""
    signum = exp.Anonymous(this="NANVL", expressions=[exp.Anonymous(this="SIGN", expressions=[value]), exp.cast(exp.Literal.number(0), _DOUBLE_TYPE)])
    return exp.cast(signum, exp.DataType.build("tinyint"))


_DOUBLE_TYPE = exp.DataType.build("double")
_SERIES_AS_UNNEST = transforms.preprocess([transforms.unnest_generate_series])  # sqlglot's (dates and times)


class NbgovSpark(Spark):
    """Spark SQL, reading DuckDB's quoted file paths as Spark's file tables, with DuckDB's
    meaning of the functions whose Spark namesakes count otherwise (``functions.py``: day
    of the week, day and month names, date_diff's boundaries, quantiles, lists). sqlglot
    registers the dialect under its lower-cased class name."""

    class Generator(SparkGenerator):
        TRANSFORMS = {
            **SparkGenerator.TRANSFORMS,
            exp.DayOfWeek: lambda self, e: self.sql(day_of_week(e.this)),
            exp.DayOfWeekIso: lambda self, e: self.sql(iso_day_of_week(e.this)),
            exp.Dayname: lambda self, e: self.func("DATE_FORMAT", e.this, exp.Literal.string("EEE" if e.args.get("abbreviated") else "EEEE")),
            exp.Monthname: lambda self, e: self.func("DATE_FORMAT", e.this, exp.Literal.string("MMM" if e.args.get("abbreviated") else "MMMM")),
            exp.PercentileCont: lambda self, e: self.sql(percentile(e, "PERCENTILE_CONT")),
            exp.PercentileDisc: lambda self, e: self.sql(percentile(e, "PERCENTILE_DISC")),
            # DuckDB's quantile(x, q) is quantile_disc (sqlglot's Spark: the continuous PERCENTILE)
            exp.Quantile: lambda self, e: self.sql(
                percentile(exp.PercentileDisc(this=e.this, expression=e.args.get("quantile")), "PERCENTILE_DISC")
            ),
            exp.RegexpReplace: lambda self, e: self.sql(regexp_replace(e)),
            exp.Format: lambda self, e: self.sql(formatted(e)),
            exp.IsInf: lambda self, e: self.sql(infinite(e.this)),
            # DuckDB's array_slice(l, a, b) ends at b (sqlglot's Spark SLICE read b as a length)
            exp.ArraySlice: lambda self, e: self.sql(sliced_as_typed(e)) if slice_bounds(e) else SparkGenerator.TRANSFORMS[exp.ArraySlice](self, e),
            exp.Sign: lambda self, e: self.sql(_sign(e.this)),
            # DuckDB's strptime, epoch_ms(n) and make_timestamp are TIMESTAMPs (wall-clock
            # times); Spark's to_timestamp, timestamp_millis and make_timestamp instants
            exp.StrToTime: lambda self, e: _wall_clock(self.func("TO_TIMESTAMP", e.this, exp.Literal.string(parsing_pattern(e)))),
            exp.UnixToTime: lambda self, e: (
                _wall_clock(SparkGenerator.TRANSFORMS[exp.UnixToTime](self, e))
                if e.args.get("scale") is not None else SparkGenerator.TRANSFORMS[exp.UnixToTime](self, e)
            ),
            exp.TimestampFromParts: lambda self, e: self.func(
                "MAKE_TIMESTAMP_NTZ", *(e.args.get(part) for part in ("year", "month", "day", "hour", "min", "sec"))
            ),
            exp.TimeToUnix: lambda self, e: self.sql(epoch_seconds(e.this)),
            exp.TimeToStr: lambda self, e: self.sql(formatted_time(e)),  # DuckDB's strftime codes
            # DuckDB's date parts are BIGINTs (Spark's INTs came back as int32); its week is ISO's
            **{kind: (lambda name: lambda self, e: self.sql(_bigint_call(name, e.this)))(name) for kind, name in _PART_CLASSES.items()},
            exp.Select: transforms.preprocess(
                [_qualify_without_helpers, transforms.eliminate_distinct_on, transforms.unnest_to_explode, quantified_as_in, transforms.any_to_exists]
            ),
            exp.Table: lambda self, e: self.source_sql(e),
            # DuckDB's arg_max / arg_min skip the rows whose value is NULL: Spark's max_by / min_by return it
            exp.ArgMax: lambda self, e: self.func("MAX_BY", e.this, _unless_null(e.this, e.expression)),
            exp.ArgMin: lambda self, e: self.func("MIN_BY", e.this, _unless_null(e.this, e.expression)),
        }
        # Spark's own ``percentile_cont(q) WITHIN GROUP (ORDER BY x)`` is exact; sqlglot's
        # Spark makes it percentile_approx
        TRANSFORMS.pop(exp.WithinGroup, None)

        def cast_sql(self, expression: exp.Cast, safe_prefix: str | None = None) -> str:
            """A quotient cast to an integer: DuckDB's ``/`` is a DOUBLE, which its cast rounds
            half to even (``(age / 10)::INTEGER`` is 3 for age 27); Spark's cast truncates (2).
            ``bround`` (half to even) first gives DuckDB's number. Any other operand is rounded
            by its type before SQL is generated (``typed.py``); a quotient is rounded here also
            where the statement could not be typed."""
            if expression.to.is_type(*_INTEGER_TYPES) and isinstance(expression.this.unnest(), exp.Div):
                expression = expression.copy()
                expression.set("this", exp.Anonymous(this="BROUND", expressions=[expression.this]))
            return super().cast_sql(expression, safe_prefix)

        def set_operations(self, expression: exp.SetOperation) -> str:
            """A ``UNION BY NAME`` left (``typed.py`` could not tell its sides' columns) has no
            Spark form: one line that says so, not Spark's syntax error."""
            if any(node.args.get("by_name") for node in expression.find_all(exp.SetOperation)):
                raise SqlError(
                    "UNION BY NAME is DuckDB-only on the spark engine where nbgov cannot tell the columns of its sides; "
                    "list the columns in the same order on each side instead"
                )
            return super().set_operations(expression)

        def columns_sql(self, expression: exp.Columns) -> str:
            """DuckDB's ``COLUMNS(...)`` (columns chosen by a pattern or a lambda, an expression
            repeated over them) has no Spark form sqlglot can write: one line that says so."""
            raise SqlError("COLUMNS(...) is DuckDB-only on the spark engine; name the columns instead")

        def like_sql(self, expression: exp.Like) -> str:
            """DuckDB's LIKE: a backslash is an ordinary character unless ESCAPE says, and the ESCAPE
            character makes any character after it ordinary (``patterns.py``)."""
            _refuse_star_pattern(expression, "LIKE")
            written = escaped_ordinary(expression) if given_escape(expression) else ordinary_backslash(expression)
            return super().like_sql(expression) if written is None else self.sql(written)

        def ilike_sql(self, expression: exp.ILike) -> str:
            """DuckDB's ILIKE: a backslash is an ordinary character unless ESCAPE says (``patterns.py``)."""
            written = escaped_ordinary(expression) if given_escape(expression) else ordinary_backslash(expression)
            return super().ilike_sql(expression) if written is None else self.sql(written)

        def escape_sql(self, expression: exp.Escape) -> str:
            """DuckDB's ``ESCAPE ''`` is no escape character (Spark refuses an empty one)."""
            if empty_escape(expression) and isinstance(expression.this, (exp.Like, exp.ILike)):
                return self.sql(expression.this)
            return super().escape_sql(expression)

        def similarto_sql(self, expression: exp.SimilarTo) -> str:
            """DuckDB's ``SIMILAR TO`` is a regular expression matching the whole text (Spark has
            no SIMILAR TO): ``regex.full_match``."""
            _refuse_star_pattern(expression, "SIMILAR TO")
            if isinstance(expression.parent, exp.Escape):
                raise SqlError("SIMILAR TO ... ESCAPE is DuckDB-only on the spark engine; escape the pattern's characters with \\ instead")
            return self.sql(full_match(expression.this, expression.expression))

        def glob_sql(self, expression: exp.Glob) -> str:
            """DuckDB's ``GLOB`` (Spark has none) as RLIKE of the regular expression that matches
            the same whole texts (``patterns.glob_regex``); only a literal pattern can be read."""
            pattern = expression.expression
            if not (isinstance(pattern, exp.Literal) and pattern.is_string):
                raise SqlError("GLOB needs a text literal pattern on the spark engine; expected s GLOB 'a*'")
            anchored = exp.Literal.string(f"(?s)\\A(?:{glob_regex(pattern.this)})\\z")
            return self.sql(exp.RegexpLike(this=expression.this, expression=anchored))

        def regexpfullmatch_sql(self, expression: exp.RegexpFullMatch) -> str:
            """DuckDB's ``regexp_full_match(text, pattern)``: SIMILAR TO's match."""
            if expression.args.get("options") is not None:
                raise SqlError("regexp_full_match options are DuckDB-only on the spark engine; write the flags in the pattern: '(?i)...'")
            return self.sql(full_match(expression.this, expression.expression))

        def arraysize_sql(self, expression: exp.ArraySize) -> str:
            sized = list_size(expression)
            return self.sql(sized) if sized is not None else super().arraysize_sql(expression)

        def arrayagg_sql(self, expression: exp.ArrayAgg) -> str:
            listed = list_in_order(expression)
            return self.sql(listed) if listed is not None else super().arrayagg_sql(expression)

        def extract_sql(self, expression: exp.Extract) -> str:
            """``EXTRACT(dow FROM d)`` / ``(isodow FROM d)`` counted as DuckDB does,
            ``EXTRACT(epoch FROM t)``: seconds as a DOUBLE (Spark has no such field), and the
            calendar and clock parts as DuckDB's BIGINTs."""
            if expression.name.upper() == "EPOCH":
                return self.sql(epoch_seconds(expression.expression))
            part = _PART_FUNCTIONS.get(expression.name.upper())
            if part is not None:  # a BIGINT, whole seconds (Spark's EXTRACT(SECOND ...): a DECIMAL with fractions)
                return self.sql(_bigint_call(part, expression.expression))
            day = day_part(expression.name, expression.expression)
            return self.sql(day) if day is not None else super().extract_sql(expression)

        def datediff_sql(self, expression: exp.DateDiff) -> str:
            """DuckDB's ``date_diff(part, start, end)`` counts the part's boundaries crossed
            (2023-12-31 to 2024-01-01 is one year); Spark's counts whole parts elapsed. Year,
            quarter and month from the calendar fields, days and weeks from the dates, clock
            units from the truncated times."""
            unit = expression.unit.name.upper() if isinstance(expression.unit, (exp.Var, exp.Literal)) else ""
            if unit in DATE_DIFF_UNITS:
                return self.sql(boundaries(unit, expression.expression, expression.this))
            return super().datediff_sql(expression)

        def source_sql(self, expression: exp.Table) -> str:
            """A relation read: DuckDB's ``range`` / ``generate_series`` as ``functions.number_series``
            writes them, other series as sqlglot does."""
            if isinstance(expression.this, exp.GenerateSeries):
                series = number_series(expression.this, expression.args.get("alias"))
                return self.table_sql(series) if series is not None else _SERIES_AS_UNNEST(self, expression)
            return self.table_sql(expression)

        def table_sql(self, expression: exp.Table, sep: str = " AS ") -> str:
            path = csv_path(expression)
            if path is not None:  # registered by the executor under this name (csv_view)
                expression = expression.copy()
                expression.set("this", exp.to_identifier(csv_view(path)))
                return super().table_sql(expression, sep)
            fmt = _file_format(expression)
            if fmt is not None:
                expression = expression.copy()
                expression.set("db", exp.to_identifier(fmt))
            return super().table_sql(expression, sep)

        def anonymous_sql(self, expression: exp.Anonymous) -> str:
            """DuckDB's one-argument ``encode(text)`` (UTF-8 bytes, compared byte for byte
            whatever the collation) is Spark's ``encode(text, 'UTF-8')``, its ``error(msg)``
            Spark's ``raise_error(msg)``, its ``round_even(x, n)`` Spark's ``bround`` (a DOUBLE's
            is written out in ``typed.py``); the list functions of models inlined as SQL
            (``forest_sql.py``) are Spark's array ones."""
            name, args = str(expression.this).lower(), list(expression.expressions)
            day: exp.Expr | None = None
            if name == "weekday" and len(args) == 1:  # DuckDB: dayofweek; Spark: 0 = Monday
                day = day_of_week(args[0])
            elif name in {"date_part", "datepart"} and len(args) == 2 and isinstance(args[0], exp.Literal):
                part = _PART_FUNCTIONS.get(args[0].name.upper())
                day = day_part(args[0].name, args[1]) if part is None else _bigint_call(part, args[1])
            if day is not None:
                return self.sql(day)
            if name == "encode" and len(args) == 1:
                expression = exp.Anonymous(this="encode", expressions=[*args, exp.Literal.string("UTF-8")])
            elif name == "error" and len(args) == 1:  # the optimizer's checks of refused values
                expression = exp.Anonymous(this="RAISE_ERROR", expressions=args)
            elif name == "list_reduce" and len(args) == 2:
                expression = _sum_from_zero(args[0], "float", args[1])  # the FLOAT tree scores
            elif name in {"prefix", "suffix"} and len(args) == 2:  # DuckDB's names of starts_with / ends_with
                expression = exp.Anonymous(this="STARTSWITH" if name == "prefix" else "ENDSWITH", expressions=args)
            elif name == "isfinite" and len(args) == 1:
                return self.sql(exp.Not(this=exp.paren(exp.Or(
                    this=exp.Anonymous(this="ISNAN", expressions=args), expression=infinite(args[0].copy())), copy=False)))
            elif name in {"round_even", "roundbankers"} and len(args) == 2:  # exact for DECIMALs and integers
                expression = exp.Anonymous(this="BROUND", expressions=args)
            elif name in {"list_slice", "array_slice"} and len(args) == 3:
                return self.sql(sliced_as_typed(expression))
            elif name in _LIKE_ESCAPE and len(args) == 3:
                return self.sql(_like_escape(name, args))
            elif name in {"list_position", "list_indexof", "array_indexof"} and len(args) == 2:
                return self.sql(_position(args))
            elif name == "list_sum" and len(args) == 1:
                a, b = exp.to_identifier("nbgov_a"), exp.to_identifier("nbgov_b")
                add = exp.Lambda(this=exp.Add(this=exp.column(a), expression=exp.column(b)), expressions=[a, b])
                expression = _sum_from_zero(args[0], "double", add)  # a softmax's DOUBLE exponentials
            return super().anonymous_sql(expression)

        def window_sql(self, expression: exp.Window) -> str:
            """DuckDB's ranks and row numbers are BIGINTs (Spark's INTs came back as int32)."""
            if isinstance(expression.this, _RANKS) and not expression.meta.get(_WIDENED):
                widened = expression.copy()
                widened.meta[_WIDENED] = True
                return self.sql(exp.cast(widened, exp.DataType.build("bigint")))
            return super().window_sql(expression)

        def arrayposition_sql(self, expression: exp.ArrayPosition) -> str:
            return self.sql(_position([expression.this, expression.expression]))

        def in_sql(self, expression: exp.In) -> str:
            """DuckDB's ``x IN $list`` (a list bound as a parameter): Spark's IN takes a
            parenthesized list only, so it is ``array_contains(:list, x)``. ``x IN (SELECT
            ...)`` read as a value keeps DuckDB's NULLs (``membership.py``)."""
            field = expression.args.get("field")
            if isinstance(field, (exp.Placeholder, exp.Parameter)):
                return self.func("ARRAY_CONTAINS", field, expression.this)
            written = three_valued(expression)  # x IN (SELECT ...) read as a value: DuckDB's NULLs
            return super().in_sql(expression) if written is None else self.sql(written)

        def substring_sql(self, expression: exp.Substring) -> str:
            """DuckDB's ``substring(s, start, length)`` of literal bounds takes the characters at
            positions ``[start, start + length)`` that exist: from 0, one fewer than Spark
            (which reads 0 as 1); a negative length, those before ``start`` (Spark: none)."""
            start, length = expression.args.get("start"), expression.args.get("length")
            bounds = [_integer(start), _integer(length)]
            if bounds[0] is not None and bounds[1] is not None:
                first, count = bounds[0], bounds[1]
                if count < 0 and first > 0:
                    before = max(first + count, 1)
                    first, count = before, first - before
                elif first == 0:
                    first, count = 1, max(count - 1, 0)
                if (first, count) != tuple(bounds):
                    return self.func("SUBSTRING", expression.this, exp.Literal.number(first), exp.Literal.number(count))
            return self.func("SUBSTRING", expression.this, start, length)

        def log_sql(self, expression: exp.Log) -> str:
            """DuckDB's one-argument ``log(x)`` is the base-10 logarithm (Spark's ``log(x)``
            the natural one), and ``log10(x)`` Spark's exact ``log10``, not ``ln(x) / ln(10)``
            (``log10(1000)`` 2.9999999999999996)."""
            base, value = expression.this, expression.expression
            if value is None:
                return self.func("LOG10", base)
            if isinstance(base, exp.Literal) and base.is_int and int(base.name) == 10:
                return self.func("LOG10", value)
            return super().log_sql(expression)

        def div_sql(self, expression: exp.Div) -> str:
            """DuckDB's ``x / 0`` is a DOUBLE (``inf``, ``-inf``, ``NaN``); Spark's ANSI ``/``
            fails the query: a zero divisor gives DuckDB's value (``arithmetic.py``). An
            inlined model's own divisions are left as they are (never by zero, and hot)."""
            if expression.meta.get(PLAIN_QUOTIENT) or expression.args.get("typed") or _in_model(expression):
                return super().div_sql(expression)
            plain = expression.copy()
            plain.meta[PLAIN_QUOTIENT] = True
            quotient = ieee_quotient(plain)
            return super().div_sql(expression) if quotient is None else self.sql(quotient)

        def bracket_sql(self, expression: exp.Bracket) -> str:
            """``list[list_position(...)]`` (DuckDB, 1-based) as ``element_at`` (1-based):
            sqlglot shifts only literal subscripts to Spark's 0-based ``[]``; a negative one
            counts from the end (``[-1]`` the last; NULL past the start), as ``try_element_at`` does.
            A slice ``x[a:b]`` as ``slices.py`` writes it."""
            if slice_bounds(expression) is not None:
                return self.sql(sliced_as_typed(expression))
            index = expression.expressions
            if len(index) == 1 and isinstance(index[0], exp.Neg) and isinstance(index[0].this, exp.Literal):
                written = 1 - int(index[0].this.name)  # sqlglot holds DuckDB's [-1] as [-2]
                if written < 0:
                    return self.func("TRY_ELEMENT_AT", expression.this, exp.Literal.number(written))
            if len(index) == 1 and isinstance(index[0], exp.Anonymous) and str(index[0].this).lower() == "list_position":
                position = exp.cast(index[0], exp.DataType.build("int"))  # element_at takes an INT
                return self.func("ELEMENT_AT", expression.this, position)
            if len(index) == 1 and isinstance(index[0], exp.Literal) and index[0].is_int and int(index[0].name) >= 0 and _model_output(expression.this):
                # an inlined model's list (``.probabilities[3]`` of two classes): NULL past its
                # end, as DuckDB's and the UDF's (typed.py leaves a model's value to this)
                return self.func("TRY_ELEMENT_AT", expression.this, exp.Literal.number(int(index[0].name) + 1))
            return super().bracket_sql(expression)


def _model_output(node: exp.Expr) -> bool:
    """Whether ``node`` is a model inlined as SQL, or a field of it (``.probabilities``)."""
    while isinstance(node, (exp.Paren, exp.Dot)):
        node = node.this
    return bool(node.meta.get(INLINED_MODEL))


def _in_model(node: exp.Expr) -> bool:
    """Whether ``node`` is part of a model inlined as SQL."""
    current: exp.Expr | None = node
    while current is not None:
        if current.meta.get(INLINED_MODEL):
            return True
        current = current.parent
    return False


def _wall_clock(instant: str) -> str:
    """A Spark timestamp expression (an instant, read in the session's zone: UTC) as the
    wall-clock TIMESTAMP_NTZ DuckDB's TIMESTAMP is."""
    return f"CAST({instant} AS TIMESTAMP_NTZ)"


def _refuse_star_pattern(expression: exp.Expression, operator: str) -> None:
    """DuckDB's ``SELECT * LIKE 'p%'`` (the columns whose names match) has no Spark form."""
    if isinstance(expression.this, exp.Star):
        raise SqlError(f"SELECT * {operator} '...' is DuckDB-only on the spark engine; name the columns instead")


_INTEGER_TYPES = (exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT, exp.DataType.Type.BIGINT)


def _sum_from_zero(array: exp.Expression, sql_type: str, add: exp.Expression) -> exp.Anonymous:
    """Spark's ``AGGREGATE(array, CAST(0 AS type), add)``: the elements added left to right
    from a typed 0 (0 + x is x exactly), as DuckDB's list fold adds them."""
    zero = exp.cast(exp.Literal.number(0), exp.DataType.build(sql_type))
    return exp.Anonymous(this="AGGREGATE", expressions=[array, zero, add])


DIALECT = NbgovSpark.__name__.lower()


class NbgovDuckDB(DuckDB):
    """DuckDB's dialect where ``predict(...)`` is nbgov's model call, any arity (sqlglot
    knows a three-argument SQL ``PREDICT`` function), so a cell reads as written: the
    positions in a syntax error are the user's; ``l[:n]`` a slice (``parse.py``)."""

    class Parser(SliceReadingParser):
        FUNCTIONS = {name: build for name, build in DuckDBParser.FUNCTIONS.items() if name != "PREDICT"}


READER = NbgovDuckDB.__name__.lower()


def csv_path(table: exp.Table) -> str | None:
    """The CSV file a table reference reads, DuckDB's way: ``FROM 'x.csv'`` or
    ``read_csv('x.csv', ...)`` / ``read_csv_auto(...)`` (Spark SQL has neither form)."""
    source = table.this
    if isinstance(source, exp.Identifier):
        name = source.name
        return name if source.quoted and not table.db and name.lower().endswith(_CSV_SUFFIXES) else None
    if isinstance(source, exp.ReadCSV):
        first = source.this
    elif isinstance(source, exp.Anonymous) and str(source.this).lower() in {"read_csv", "read_csv_auto"} and source.expressions:
        first = source.expressions[0]
    else:
        return None
    return first.name if isinstance(first, exp.Literal) and first.is_string else None


def csv_view(path: str) -> str:
    """The temporary view a statement reads the CSV file ``path`` through."""
    return f"nbgov_csv_{xxhash.xxh3_64_hexdigest(path.encode('utf-8'))}"


def csv_paths(tree: exp.Expression) -> tuple[str, ...]:
    """Every CSV file the statement reads, once each."""
    return tuple(dict.fromkeys(path for table in tree.find_all(exp.Table) if (path := csv_path(table)) is not None))


def reads_file(table: exp.Table) -> bool:
    """Whether a table reference reads a file by its path (``FROM 'x.csv'``, ``FROM 'y.parquet'``)."""
    return csv_path(table) is not None or _file_format(table) is not None


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
    """A value Spark binds as a literal: Python scalars as they are (a naive datetime as a
    TIMESTAMP_NTZ), numpy scalars as Python ones, lists, 1-D arrays and pandas Series or
    Index (``top = df.nlargest(5, "income").id``) as ARRAY literals, as the DuckDB engine
    binds them; a table is refused in the DuckDB engine's words."""
    if isinstance(value, np.generic):  # first: np.float64 and np.str_ are also float and str, which Spark refuses
        return spark_value(name, value.item())
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return _timestamp_ntz(value)
    if value is None or isinstance(value, _SCALARS):
        return value
    items = listed(value)
    if items is not None:
        from pyspark.sql import functions as F

        if None in items and any(item is not None for item in items):
            raise SqlmlError(  # Spark takes only literals as parameters, and array(1, NULL) casts its NULL
                f"parameter ${name} holds None among other values, which Spark cannot bind; expected a list without None"
            )
        return F.array(*[F.lit(spark_value(name, item)) for item in items])
    refuse_table_parameter(name, value)
    raise SqlmlError(
        f"parameter ${name} is a {type(value).__name__}; expected a number, string, date, bytes or a list of them"
    )


def listed(value: Any) -> list[Any] | None:
    """The items of a value bound as a list (a list, tuple, 1-D array, pandas Series or
    Index), as both engines bind it; None for any other value."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, (pandas.Series, pandas.Index)):
        return list(value.tolist())
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return list(value.tolist())
    return list(value) if isinstance(value, (list, tuple)) else None


def _timestamp_ntz(value: datetime.datetime) -> Any:
    """A naive datetime as a TIMESTAMP_NTZ literal: DuckDB binds it as a TIMESTAMP, the same
    wall-clock time. PySpark binds one as a TIMESTAMP (an instant, read in Python's local time
    zone), which came back tz-aware and, where Python's zone is not the session's, compared
    with naive columns hours apart."""
    from pyspark import SparkContext
    from pyspark.sql import functions as F

    jvm = SparkContext._jvm
    if jvm is None:  # Spark Connect: the client's own typed literal
        from pyspark.sql.connect.column import Column
        from pyspark.sql.connect.expressions import LiteralExpression
        from pyspark.sql.types import TimestampNTZType

        return Column(LiteralExpression(value, TimestampNTZType()))
    wall_clock = jvm.java.time.LocalDateTime.of(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond * 1000
    )
    return F.lit(wall_clock)  # Spark's literal of a LocalDateTime is a TIMESTAMP_NTZ
