"""Values onnxruntime refuses, refused the same way when the featurizer runs as SQL.

onnxruntime computes every featurizer node, so a category a strict OneHotEncoder or
OrdinalEncoder (``handle_unknown='error'``) does not know, or NaN reaching a Binarizer, fails the
whole call even when the trees would never look at that column.  A rewritten
call must fail on the same rows: each ``Check`` is a SQL condition true exactly
there, turned into DuckDB's ``error()`` (only on rows that would be scored).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot.expressions as exp

from nbgov.sqlml.models.pipeline import Mixed, Pipeline, Source
from nbgov.sqlml.models.refusals import nan_refused, unknown_category
from nbgov.sqlml.models.steps import fails_on_nan
from nbgov.sqlml.optimizer.categories import Categories
from nbgov.sqlml.optimizer.domains import Domain
from nbgov.sqlml.optimizer.encoders_sql import as_bytes, bytes_literal


class Unrefusable(ValueError):
    """Something may fail in onnxruntime that no SQL check reproduces."""


@dataclass(frozen=True)
class Check:
    """A value onnxruntime would refuse: an unknown category, or NaN into a Binarizer."""

    source: Source
    encoder: str = ""  # the strict encoder, as scikit-learn names it; "": NaN into a Binarizer
    categories: tuple[str, ...] = ()  # the strict encoder's known categories

    @property
    def unknown_category(self) -> bool:
        return bool(self.encoder)

    def needed(self, raw: Domain | Categories | None) -> bool:
        """Whether the query leaves room for the refused value."""
        if self.unknown_category:
            return not (isinstance(raw, Categories) and raw.only_within(self.categories))
        return not (isinstance(raw, Domain) and not raw.nan)

    def failing(self, value: exp.Expression) -> exp.Expression:
        """True on the rows onnxruntime would refuse (NULL on NULL rows)."""
        if self.unknown_category and not self.categories:  # it knows none: every value fails
            return exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null()))
        if self.unknown_category:
            return exp.Not(
                this=exp.In(
                    this=as_bytes(value),
                    expressions=[bytes_literal(c) for c in self.categories],
                )
            )
        return exp.Anonymous(this="isnan", expressions=[exp.cast(value.copy(), "DOUBLE")])

    def message(self, label: str) -> str:
        """What onnxruntime's refusal is reported as without the optimizer (``models/refusals.py``);
        ``label``: the call, as ``predict(m@1)``."""
        if self.unknown_category:
            return unknown_category(label, self.source.input, self.encoder, self.categories)
        return nan_refused(label, self.source.input)


def refusals(pipeline: Pipeline) -> tuple[Check, ...]:
    """What onnxruntime may refuse anywhere in the featurizer (it computes every feature):
    each strict encoder's unknown categories (``Pipeline.vocabularies``, what the scorer's
    diagnosis reads too), and NaN into a Binarizer."""
    nan: dict[Source, Check] = {}
    for column in pipeline.features:
        if isinstance(column, Mixed):
            if column.fallible:
                raise Unrefusable(f"{column.op} may fail on some values; kept for onnxruntime to decide")
            continue
        if column.encoder is None and fails_on_nan(column.steps):
            nan.setdefault(column.source, Check(column.source))
    unknown = [Check(known.source, known.encoder, known.described()) for known in pipeline.vocabularies]
    return (*unknown, *nan.values())


def _any_null(values: list[exp.Expression]) -> exp.Expr:
    found: exp.Expr = exp.Is(this=values[0].copy(), expression=exp.Null())
    for value in values[1:]:
        found = exp.or_(found, exp.Is(this=value.copy(), expression=exp.Null()))
    return found


def guarded_columns(
    columns: list[exp.Expression],
    nullable: list[exp.Expression],
    checks: list[tuple[exp.Expression, str]],
) -> list[exp.Expression]:
    """``columns`` with the first one NULL when any of ``nullable`` is NULL, and failing
    (DuckDB's ``error()``) on rows a check refuses — only rows that would be scored."""
    if not nullable and not checks:
        return columns
    ifs: list[exp.If] = []
    if nullable:
        ifs.append(exp.If(this=_any_null(nullable), true=exp.Null()))
    for condition, message in checks:
        ifs.append(exp.If(this=condition, true=exp.Anonymous(this="error", expressions=[exp.Literal.string(message)])))
    return [exp.Case(ifs=ifs, default=columns[0].copy()), *columns[1:]]


def refused_rows_of(
    nullable: list[exp.Expression], checks: list[tuple[exp.Expression, str]]
) -> tuple[tuple[exp.Expression, str], ...]:
    """Each check as (condition, message), the condition true exactly on the rows onnxruntime
    would score (none of ``nullable`` NULL) and refuse: what ``guarded_columns`` fails on,
    kept apart for a caller that must check every row of a relation (ML.PREDICT)."""
    if not nullable:
        return tuple((condition.copy(), message) for condition, message in checks)
    scored = exp.Not(this=exp.Paren(this=_any_null(nullable)))
    return tuple(
        (exp.And(this=scored.copy(), expression=exp.Paren(this=condition.copy())), message) for condition, message in checks
    )
