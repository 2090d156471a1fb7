"""OneHotEncoder and LabelEncoder columns as SQL: exact values, strings compared as DuckDB
text (the model's categories enter the SQL as string literals, escaped by sqlglot)."""

from __future__ import annotations

import math

import sqlglot.expressions as exp

from nbgov.sqlml.models.pipeline import LabelCode, OneHot


def encoded_sql(encoder: OneHot | LabelCode, value: exp.Expression, sql_type: str) -> exp.Expression:
    """The encoder's output for the argument ``value`` as ``sql_type``; NULL stays NULL."""
    text = exp.cast(value.copy(), "VARCHAR")
    if isinstance(encoder, OneHot):
        return exp.cast(exp.EQ(this=text, expression=exp.Literal.string(encoder.category)), sql_type)
    case = exp.Case(
        this=text,
        ifs=[exp.If(this=exp.Literal.string(k), true=number(v)) for k, v in encoder.mapping],
        default=number(encoder.default),
    )
    guarded = exp.Case(ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()), true=exp.Null())], default=case)
    return exp.cast(guarded, sql_type)


def number(value: float) -> exp.Expression:
    """A numeric literal (NaN and infinities as DOUBLE casts)."""
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        return exp.cast(exp.Literal.string(repr(v).replace("inf", "Infinity")), "DOUBLE")
    text = str(int(abs(v))) if v.is_integer() else repr(abs(v))
    literal = exp.Literal.number(text)
    return exp.Neg(this=literal) if v < 0 else literal
