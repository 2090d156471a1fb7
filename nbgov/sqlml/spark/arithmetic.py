"""DuckDB's arithmetic where Spark's differs in value or type, as Spark SQL trees.

- ``x / 0`` is DuckDB's IEEE quotient (``inf``, ``-inf``, ``NaN``; NULL for NULL): ``/`` is a
  DOUBLE on DuckDB, and Spark's ANSI mode fails the query (DIVIDE_BY_ZERO);
- ``x % 0`` of a DOUBLE or FLOAT is NaN on DuckDB (of integers and DECIMALs both fail);
- ``ceil`` / ``floor`` of a number are DOUBLEs (a FLOAT's a FLOAT) on DuckDB, Spark's
  BIGINTs, which overflow past 2^63 (``ceil(1e300)``);
- ``x // y`` of integers is their truncated quotient in the wider operand's type (Spark's
  ``div``: a BIGINT); of a DOUBLE, FLOAT or DECIMAL it is ``/`` (a DOUBLE, a FLOAT's FLOAT)
  but fails at zero, where Spark's ``div`` refuses the types;
- ``'2.5'::INTEGER`` reads the text as a number and rounds it half away from zero (3) on
  DuckDB; Spark's cast refuses text with a fraction.
"""

from __future__ import annotations

import sqlglot.expressions as exp

_DOUBLE = exp.DataType.build("double")
# meta key: a quotient written as Spark's own ``/`` (failing at zero), not as DuckDB's ``/``
PLAIN_QUOTIENT = "nbgov_plain_quotient"
# DuckDB's integer types by width: ``x // y`` of two is the wider one
_INTEGER_WIDTHS = (exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT)
# every DOUBLE at least this large is a whole number: its ceil and floor are itself
_WHOLE_DOUBLES = 2.0**52
# text read as a number before it is rounded to an integer: BIGINT's 19 digits, 18 places
_TEXT_NUMBER = exp.DataType.build("decimal(38, 18)")


def _double(text: str) -> exp.Expr:
    return exp.cast(exp.Literal.string(text), _DOUBLE)


def _operand(value: exp.Expr) -> exp.Expr:
    """A copy of ``value`` to write as an operand: parenthesized unless it is one already."""
    if isinstance(value, (exp.Paren, exp.Column, exp.Literal, exp.Placeholder, exp.Parameter)):
        return value.copy()
    return exp.paren(value.copy(), copy=False)


def _is_zero(value: exp.Expr) -> exp.Expr:
    return exp.EQ(this=_operand(value), expression=exp.Literal.number(0))


def _random(node: exp.Expr) -> bool:
    """Whether ``node`` holds a nondeterministic call (it must not be written twice)."""
    return node.find(exp.Rand, exp.Randn, exp.Uuid) is not None


def ieee_quotient(div: exp.Div) -> exp.Expr | None:
    """``x / y`` as DuckDB's DOUBLE quotient where ``y`` is zero: ``x`` times an infinity of
    the zero's sign (Spark keeps -0.0 in its text), which is NaN for 0 and NULL for NULL.
    None where nothing changes: a nonzero literal divisor, or one drawn at random."""
    divisor = div.expression.unnest()
    if isinstance(divisor, exp.Literal) and divisor.is_number and float(divisor.name) != 0:
        return None
    if _random(div.expression):
        return None
    negative = exp.Like(
        this=exp.cast(_operand(div.expression), exp.DataType.build("string")),
        expression=exp.Literal.string("-%"),
    )
    infinity = exp.Case(ifs=[exp.If(this=negative, true=_double("-Infinity"))], default=_double("Infinity"))
    at_zero = exp.Mul(this=_operand(div.this), expression=infinity)
    return exp.Case(ifs=[exp.If(this=_is_zero(div.expression), true=at_zero)], default=div)


def nan_remainder(mod: exp.Mod) -> exp.Expr | None:
    """``x % y`` of a DOUBLE or FLOAT where ``y`` is zero: NaN (NULL for NULL), as DuckDB."""
    if _random(mod.expression) or _random(mod.this):
        return None
    at_zero = exp.Mul(this=_operand(mod.this), expression=_double("NaN"))
    return exp.Case(ifs=[exp.If(this=_is_zero(mod.expression), true=at_zero)], default=mod)


def whole_number(node: exp.Ceil | exp.Floor, single: bool, integer: bool) -> exp.Expr:
    """DuckDB's ``ceil(x)`` / ``floor(x)`` of a DOUBLE (or an integer, made one): a DOUBLE,
    ``x`` itself where it is already whole (NaN, infinities, past 2^52), in FLOAT for a FLOAT."""
    value = _operand(node.this)
    if integer:
        return exp.cast(value, _DOUBLE)
    if single:
        value = exp.cast(value, _DOUBLE)
    whole = exp.Or(
        this=exp.Anonymous(this="ISNAN", expressions=[value.copy()]),
        expression=exp.GTE(this=exp.Abs(this=value.copy()), expression=exp.Literal.number(_WHOLE_DOUBLES)),
    )
    rounded = node.__class__(this=value.copy())
    result: exp.Expr = exp.Case(ifs=[exp.If(this=whole, true=value.copy())], default=exp.cast(rounded, _DOUBLE))
    return exp.cast(result, exp.DataType.build("float")) if single else result


def integer_quotient(node: exp.IntDiv, left: exp.DataType, right: exp.DataType) -> exp.Expr | None:
    """DuckDB's ``x // y`` of numbers typed ``left`` and ``right``, for Spark (None: unknown
    types, Spark's ``div`` kept)."""
    widths = [_width(kind) for kind in (left, right)]
    if all(width is not None for width in widths):
        return exp.cast(node.copy(), exp.DataType.build(_INTEGER_WIDTHS[max(w for w in widths if w is not None)]))
    numbers = [kind.is_type(*exp.DataType.REAL_TYPES) or width is not None for kind, width in zip((left, right), widths)]
    if not all(numbers):
        return None
    single = all(kind.is_type(exp.DType.FLOAT) or width is not None for kind, width in zip((left, right), widths))
    quotient = exp.Div(this=exp.cast(_operand(node.this), _DOUBLE), expression=_operand(node.expression))
    quotient.meta[PLAIN_QUOTIENT] = True
    return exp.cast(quotient, exp.DataType.build("float")) if single else quotient


def _width(kind: exp.DataType) -> int | None:
    for position, width in enumerate(_INTEGER_WIDTHS):
        if kind.is_type(width):
            return position
    return None


def text_as_number(cast: exp.Cast) -> exp.Expr:
    """The text a cast to an integer reads, as DuckDB reads it: a number rounded half away
    from zero (``'2.5'`` is 3, ``'-2.5'`` -3); a TRY_CAST's text that is no number is NULL."""
    number = exp.cast(cast.this.copy(), _TEXT_NUMBER.copy())
    if isinstance(cast, exp.TryCast):
        number = exp.TryCast(this=number.this, to=number.to, safe=True)
    return exp.Anonymous(this="ROUND", expressions=[number])
