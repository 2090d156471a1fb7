"""A featurizer + linear model as one DuckDB expression.

Each feature of the head becomes a DOUBLE expression over the call's argument
(``(CAST(age AS FLOAT) - 54.4) * 0.0485``, ``CAST(CAST(plan AS VARCHAR) = 'gold'
AS DOUBLE)``, an imputer's ``CASE WHEN isnan(x) ...``) and is put into the
head's linear SQL (``to_sql.linear_sql``: scores, post transform, label).  The
inputs are rounded to float32 as the model would see them and the arithmetic is
in DOUBLE, so results agree with onnxruntime's float32 kernels to float
tolerance (1e-6 relative on scores), as the bare linear rule does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlglot.expressions as exp

from nbgov.sqlml.models.pipeline import Feature, Mixed, Pipeline, Source
from nbgov.sqlml.models.steps import Arith, Binarize, CastTo, Impute, Step
from nbgov.sqlml.optimizer.encoders_sql import encoded_sql, number
from nbgov.sqlml.optimizer.to_sql import fill, linear_refusal, linear_sql, template
from nbgov.sqlml.plan import TensorSpec

# Per row, what onnxruntime pays for a featurizer beyond the bare model: a string input
# crosses into ORT as Python str objects (≈ 0.06 µs/row measured on 1M rows) and each
# encoder or scaler node is one more pass over the batch (≈ 0.01 µs/row).
ORT_STRING_INPUT_US = 0.06
ORT_TRANSFORM_US = 0.01
SQL_FEATURE_US = 0.004  # one featurizer expression in DuckDB (a comparison or an affine term)


class NotTranslatable(ValueError):
    """No exact-enough SQL for this pipeline (the message says why)."""


@dataclass(frozen=True)
class LinearPipelineSql:
    """The pipeline's value as a template over ``__f{i}__`` = feature i, plus those features."""

    shape: exp.Expression = field(repr=False)
    features: tuple[Feature, ...]
    terms: int

    def render(self, values: Mapping[Source, exp.Expression]) -> exp.Expression:
        """The expression for one call, from the SQL argument feeding each input column."""
        return fill(self.shape, [feature_sql(f, values[f.source]) for f in self.features], [])


def linear_pipeline_sql(pipeline: Pipeline, outputs: tuple[TensorSpec, ...]) -> LinearPipelineSql:
    """Translate a featurizer + LinearRegressor/LinearClassifier pipeline, or raise NotTranslatable."""
    if pipeline.trees_only:
        raise NotTranslatable("the model proper is not linear")
    features = []
    for k, column in enumerate(pipeline.features):
        if isinstance(column, Mixed):
            raise NotTranslatable(f"feature {k} is computed by {column.described()}")
        if column.encoder is None and column.source.elem_type not in ("float", "double"):
            raise NotTranslatable(f"input {column.source.input!r} is {column.source.elem_type}")
        features.append(column)
    head_elem = pipeline.head.graph.input[0].type.tensor_type.elem_type
    sql_model = linear_sql(pipeline.head, "float" if head_elem == 1 else "double", len(features))
    if sql_model is None:
        raise NotTranslatable(linear_refusal(pipeline.head))
    shape = template(sql_model, outputs, 0)
    if shape is None:
        raise NotTranslatable("the model's outputs have no SQL type")
    featurizer = sum(len(f.steps) + (f.encoder is not None) for f in features)
    return LinearPipelineSql(shape, tuple(features), sql_model.terms + featurizer)


def featurizer_ort_us(pipeline: Pipeline) -> float:
    """Per-row cost onnxruntime adds for the featurizer (string feeds, transform passes)."""
    strings = sum(1 for _, elem, _ in pipeline.inputs if elem == "string")
    transforms = sum(1 for op in pipeline.transforms if op in ("Scaler", "OneHotEncoder", "LabelEncoder", "Imputer", "Binarizer", "Normalizer", "Mul", "Add", "Sub", "Div"))
    return ORT_STRING_INPUT_US * strings + ORT_TRANSFORM_US * transforms


def feature_sql(feature: Feature, value: exp.Expression) -> exp.Expression:
    """Feature ``feature`` as a DOUBLE expression over its input's SQL argument ``value``."""
    current: exp.Expression
    if feature.encoder is not None:
        current = encoded_sql(feature.encoder, value, "DOUBLE")
    else:
        # the value the model sees: the engine casts the argument to the input's type
        current = exp.cast(exp.cast(value.copy(), feature.source.elem_type.upper()), "DOUBLE")
    for step in feature.steps:
        current = _step_sql(step, current)
    return current


def _step_sql(step: Step, value: exp.Expression) -> exp.Expression:
    if isinstance(step, Arith):
        constant = number(step.constant)
        left, right = (constant, value) if step.constant_first else (value, constant)
        node = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul, "/": exp.Div}[step.op]
        return exp.Paren(this=node(this=left, expression=right))
    if isinstance(step, Impute):
        hit: exp.Expression = (
            exp.Anonymous(this="isnan", expressions=[value.copy()])
            if math.isnan(step.missing)
            else exp.EQ(this=value.copy(), expression=number(step.missing))
        )
        return exp.Case(ifs=[exp.If(this=hit, true=number(step.value))], default=value)
    if isinstance(step, Binarize):
        return exp.cast(exp.GT(this=value, expression=number(step.threshold)), "DOUBLE")
    assert isinstance(step, CastTo)
    return value  # float32 <-> float64 rounding is within the tolerance this translation claims
