"""OneHotEncoder and LabelEncoder columns as SQL, comparing strings byte for byte as
onnxruntime does.

A plain ``plan = 'gold'`` follows DuckDB's collation (a ``COLLATE NOCASE`` column, or
``PRAGMA default_collation``, makes ``'GOLD' = 'gold'`` true, even through a CAST to
VARCHAR); comparing ``encode(...)`` BLOBs does not.  The model's categories enter the
SQL as string literals, escaped by sqlglot.
"""

from __future__ import annotations

import math

import sqlglot.expressions as exp

from nbgov.sqlml.models.pipeline import LabelCode, OneHot


def encoded_sql(encoder: OneHot | LabelCode, value: exp.Expression, sql_type: str) -> exp.Expression:
    """The encoder's output for the argument ``value`` as ``sql_type``; NULL stays NULL."""
    text = as_bytes(value)
    if isinstance(encoder, OneHot):
        return exp.cast(exp.EQ(this=text, expression=bytes_literal(encoder.category)), sql_type)
    case = exp.Case(
        this=text,
        ifs=[exp.If(this=bytes_literal(k), true=number(v)) for k, v in encoder.mapping],
        default=number(encoder.default),
    )
    guarded = exp.Case(ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()), true=exp.Null())], default=case)
    return exp.cast(guarded, sql_type)


def as_bytes(value: exp.Expression) -> exp.Expression:
    """The argument's text as a BLOB: compared byte for byte, whatever the collation."""
    return exp.Anonymous(this="encode", expressions=[exp.cast(value.copy(), "VARCHAR")])


def bytes_literal(text: str) -> exp.Expression:
    return exp.Anonymous(this="encode", expressions=[exp.Literal.string(text)])


def exact_double(value: float) -> exp.Expression:
    """A DOUBLE literal that parses to exactly ``value`` (``1.5e0``: an exponent makes DuckDB
    and Spark read a double, where ``1.5`` would be a DECIMAL converted by the engine)."""
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        return number(v)
    text = repr(abs(v))
    literal = exp.Literal.number(text if "e" in text else f"{text}e0")
    return exp.Neg(this=literal) if math.copysign(1.0, v) < 0 else literal


def number(value: float) -> exp.Expression:
    """A numeric literal (NaN and infinities as DOUBLE casts)."""
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        return exp.cast(exp.Literal.string(repr(v).replace("inf", "Infinity")), "DOUBLE")
    text = str(int(abs(v))) if v.is_integer() else repr(abs(v))
    literal = exp.Literal.number(text)
    return exp.Neg(this=literal) if v < 0 else literal
