"""Rule 0: the models people deploy — a featurizer (ColumnTransformer: one-hot encoders,
scalers, imputers ...) in front of trees or a linear model, over several typed inputs.

``lower`` reads the featurizer (``models/pipeline.py``) and, for trees, lowers the call
(``lowering.py``): the state then holds a call of a tree model over one float input
whose columns are SQL expressions of the arguments, and constraints on those columns
carried through the featurizer (``plan = 'gold'`` fixes the one-hot columns of plan;
``age > 60`` bounds age, which the folded trees test directly).  Every later rule —
pruning, projection, output predicates, SQL translation, decision regions at run time —
then applies unchanged.  ``inline_linear`` translates a featurizer + linear model into
one SQL expression when the cost model prefers it.  The inputs no kept column reads are
still NULL-guarded, and what onnxruntime would refuse still fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import sqlglot.expressions as exp
import xxhash

from nbgov.sqlml.models.pipeline import NotAPipeline, Pipeline, Source, read_pipeline
from nbgov.sqlml.models.treegraph import analyze
from nbgov.sqlml.optimizer.categories import Categories
from nbgov.sqlml.optimizer.checks import Check, guarded_columns, refused_rows_of, refusals
from nbgov.sqlml.optimizer.cost import CostEstimate
from nbgov.sqlml.optimizer.domains import Domain
from nbgov.sqlml.optimizer.lowering import LoweredTrees, NotLowerable, lower_trees
from nbgov.sqlml.optimizer.pipeline_sql import SQL_FEATURE_US, LinearPipelineSql, NotTranslatable, featurizer_ort_us, linear_pipeline_sql
from nbgov.sqlml.optimizer.predicates import FeatureConstraints, call_constraints
from nbgov.sqlml.plan import BoundInput, ModelCall, SqlPlan, TensorSpec

if TYPE_CHECKING:
    from nbgov.sqlml.optimizer.state import PlanState, TensorInput

RawDomains = Mapping[Source, Domain | Categories]
_ROUTING = {
    "Identity", "Concat", "Gather", "ArrayFeatureExtractor", "Slice", "Reshape", "Flatten",
    "Squeeze", "Unsqueeze", "Cast", "FeatureVectorizer", "Constant",
}


@dataclass(frozen=True)
class Lowered:
    """What the later rules and notes need to know of a lowered pipeline."""

    names: tuple[str, ...]  # each lowered column, for notes: "plan = 'gold' (one-hot)", "age"
    sources: tuple[str, ...]  # the input each lowered column reads
    inputs: tuple[str, ...]  # every model input, in order


def lower(state: PlanState) -> PlanState:
    """Lower a featurizer + trees call (see the module docstring); other models pass."""
    if state.trees is not None:
        return state  # trees reading one 2-D input directly: the other rules' own case
    pipeline = _pipeline(state)
    if isinstance(pipeline, str):
        if state.tensor is not None:
            return state  # one numeric input (a linear model, ...): ``inline`` decides
        return replace(state, onnx_reason=f"model inputs are not one 2-D numeric tensor and not a pipeline nbgov reads ({pipeline})")
    if pipeline.is_bare or not pipeline.trees_only:
        return state  # a linear head: ``inline`` / ``inline_linear`` decide
    constraints = call_constraints(state.call, exact_strings=state.exact_strings, engine=state.engine)
    state = state.note(*constraints.refusals)
    sha = state.call.model.sha256
    lowered = state.memo.get("lowered", sha, lambda: _lowered(pipeline))
    if isinstance(lowered, str):
        return replace(state, onnx_reason=f"pipeline kept whole in ONNX: {lowered}")
    raw = raw_domains(state.call, constraints)
    values = bound_values(state.call)
    call = _lowered_call(state.call, lowered, values)
    domains = {}
    for k, column in enumerate(lowered.columns):
        proof = raw.get(column.source)
        # only where the query proves something: a domain also says "never NULL here"
        domain = column.query_domain(proof) if proof is not None else None
        if domain is not None:
            domains[(0, k)] = domain
    read = {c.source for c in lowered.columns}
    unread = [values[s] for s in lowered.sources if s not in read and s not in raw]
    checks = tuple(refused_rows(lowered.checks, raw, values, state.call.label))
    trees = state.memo.get("trees", call.model.sha256, lambda: analyze(lowered.model))
    names = tuple(c.name(display(values[c.source])) for c in lowered.columns)
    info = Lowered(names, tuple(c.source.input for c in lowered.columns), tuple(dict.fromkeys(s.input for s in lowered.sources)))
    state = replace(
        state,
        call=call,
        tensor=_tensor(len(lowered.columns)),
        trees=trees,
        constraints=FeatureConstraints(domains=domains, text=tuple(constraint_text(lowered, raw, values))),
        extra_guard=tuple(unread),
        checks=checks,
        pipeline=info,
    )
    return state.note(_lowering_note(pipeline, lowered))


def report(state: PlanState) -> PlanState:
    """After projection: the model inputs a lowered pipeline no longer reads at all."""
    if state.pipeline is None:
        return state
    kept = state.kept_features()
    read = {state.pipeline.sources[j] for j in kept}
    unread = [name for name in state.pipeline.inputs if name not in read]
    if not unread:
        return state
    inputs = state.pipeline.inputs
    return state.with_stats(model_inputs_read=len(inputs) - len(unread)).note(
        f"reads {len(inputs) - len(unread)} of {len(inputs)} model inputs (not {', '.join(unread)}: no kept test uses them)"
    )


def inline_linear(state: PlanState) -> PlanState:
    """A featurizer + linear model as one SQL expression, when cheaper than onnxruntime."""
    if state.decided is not None or state.tensor is not None:
        return state
    pipeline = _pipeline(state)
    if isinstance(pipeline, str) or pipeline.trees_only:
        return state
    sha = state.call.model.sha256
    translated = state.memo.get("pipeline-sql", sha, lambda: _translated(pipeline, state.call))
    if isinstance(translated, str):
        return replace(state, onnx_reason=f"pipeline + linear model kept in ONNX: {translated}")
    estimate = state.costs.linear(translated.terms, batched=state.batched)
    estimate = CostEstimate(
        ort_us=estimate.ort_us + featurizer_ort_us(pipeline),
        sql_us=estimate.sql_us + SQL_FEATURE_US * len(translated.features),
    )
    state = state.with_stats(cost_ort=round(estimate.ort_us, 4), cost_sql=round(estimate.sql_us, 4))
    transforms = _transforms(pipeline)
    if not estimate.prefer_sql:
        return replace(state, onnx_reason=f"pipeline ({transforms}) + linear model estimated cheaper in onnxruntime ({estimate.describe()})")
    constraints = call_constraints(state.call, exact_strings=state.exact_strings, engine=state.engine)
    raw = raw_domains(state.call, constraints)
    values = bound_values(state.call)
    checks = refused_rows(refusals(pipeline), raw, values, state.call.label)
    nullable = [values[s] for s in pipeline.sources() if s not in raw]
    expression = guarded_columns([translated.render(values)], nullable, checks)[0]
    state = state.with_stats(strategy="sql").note(
        f"inlined as SQL expression: pipeline ({transforms}) + linear model, "
        f"{len(translated.features)} features (cost {estimate.describe()})"
    )
    return replace(state, decided=SqlPlan(expression, refusals=refused_rows_of(nullable, checks)))


# -- helpers --------------------------------------------------------------------------------


def raw_domains(call: ModelCall, constraints: FeatureConstraints) -> dict[Source, Domain | Categories]:
    """What the query proves about each input column, keyed by the model's own sources."""
    out: dict[Source, Domain | Categories] = {}
    for i, bound in enumerate(call.inputs):
        for j in range(len(bound.columns)):
            found: Domain | Categories | None
            if bound.spec.elem_type == "string":
                found = constraints.categories.get((i, j))
            else:
                found = constraints.domains.get((i, j))
            if found is not None:
                out[Source(bound.spec.name, j, bound.spec.elem_type)] = found
    return out


def bound_values(call: ModelCall) -> dict[Source, exp.Expression]:
    """The SQL argument feeding each input column."""
    return {
        Source(bound.spec.name, j, bound.spec.elem_type): column
        for bound in call.inputs
        for j, column in enumerate(bound.columns)
    }


def constraint_text(lowered: LoweredTrees, raw: RawDomains, values: Mapping[Source, exp.Expression]) -> list[str]:
    """``plan = 'gold' (one-hot)``, ``age > 60 (through Imputer, Scaler)`` for EXPLAIN."""
    described: dict[Source, str] = {}
    for column in lowered.columns:
        found = raw.get(column.source)
        if found is None or found.unconstrained:
            continue
        described.setdefault(column.source, column.describe(found.describe(display(values[column.source]))))
    return list(described.values())


def display(value: exp.Expression) -> str:
    """SQL text for EXPLAIN notes: ``age``, not ``"age"``, when quoting is not needed."""

    def plain(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Identifier) and node.quoted and node.name.isidentifier() and node.name == node.name.lower():
            return exp.to_identifier(node.name, quoted=False)
        return node

    return value.copy().transform(plain).sql(dialect="duckdb")


def refused_rows(
    checks: tuple[Check, ...], raw: RawDomains, values: Mapping[Source, exp.Expression], label: str
) -> list[tuple[exp.Expression, str]]:
    """(condition, error message) for each check the query does not already rule out."""
    return [(c.failing(values[c.source]), c.message(label)) for c in checks if c.needed(raw.get(c.source))]


def _pipeline(state: PlanState) -> Pipeline | str:
    def read() -> Pipeline | str:
        try:
            return read_pipeline(state.model)
        except NotAPipeline as err:
            return str(err)

    return state.memo.get("pipeline", state.call.model.sha256, read)


def _lowered(pipeline: Pipeline) -> LoweredTrees | str:
    try:
        return lower_trees(pipeline)
    except NotLowerable as err:
        return str(err)


def _translated(pipeline: Pipeline, call: ModelCall) -> LinearPipelineSql | str:
    try:
        return linear_pipeline_sql(pipeline, call.model.outputs)
    except NotTranslatable as err:
        return str(err)


def _lowered_call(call: ModelCall, lowered: LoweredTrees, values: Mapping[Source, exp.Expression]) -> ModelCall:
    """The call of the lowered model: one float input, each column a SQL expression."""
    payload = lowered.model.SerializeToString()
    sha = xxhash.xxh3_128_hexdigest(payload)
    spec = TensorSpec(lowered.model.graph.input[0].name, "float", (None, len(lowered.columns)))
    model = replace(call.model, sha256=f"{call.model.sha256}:lowered:{sha}", onnx_bytes=payload, inputs=(spec,), feature_names=None)
    columns = tuple(c.sql(values[c.source]) for c in lowered.columns)
    return replace(call, model=model, inputs=(BoundInput(spec, columns),))


def _tensor(width: int) -> TensorInput:
    from nbgov.sqlml.optimizer.state import TensorInput

    return TensorInput("float", width)


def _transforms(pipeline: Pipeline) -> str:
    return ", ".join(dict.fromkeys(op for op in pipeline.transforms if op not in _ROUTING)) or "column routing"


def _lowering_note(pipeline: Pipeline, lowered: LoweredTrees) -> str:
    carried = f"; {lowered.folded:,} test(s) carried back through transforms" if lowered.folded else ""
    return (
        f"pipeline: {_transforms(pipeline)} in front of trees, lowered to trees over "
        f"{len(lowered.columns)} SQL column(s) of the inputs{carried}"
    )
