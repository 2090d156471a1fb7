"""The pipeline rule: plan a predict() call on a featurizer + trees model.

Order, as for a bare tree model, once the pipeline is lowered (``lowering.py``):
what the query proves about each *input column* becomes a domain of each
lowered column (a range through the folded scaler, ``{1}`` / ``{0}`` for one-hot
columns of ``plan = 'gold'``); trees are pruned on those domains; lowered
columns no kept test reads are not computed, and inputs no kept column reads
are not read (but their NULL still makes the result NULL); the result runs as
ONNX over the lowered columns — a model with one float input read by trees
alone, so each decision region is scored once.  Each step leaves an EXPLAIN note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlglot.expressions as exp
import xxhash

from nbgov.sqlml.models.pipeline import Pipeline, Source
from nbgov.sqlml.optimizer.categories import Categories
from nbgov.sqlml.optimizer.checks import Check, refusals
from nbgov.sqlml.optimizer.cost import CostEstimate, linear_costs, tree_costs
from nbgov.sqlml.models.forest import Forest, Leaf
from nbgov.sqlml.optimizer.forest_sql import SQL_FOLD_US, NotTranslatable, ensemble_sql
from nbgov.sqlml.optimizer.domains import Domain, ModelDomain
from nbgov.sqlml.optimizer.label_rule import keep_label_rule
from nbgov.sqlml.optimizer.lowering import LoweredTrees
from nbgov.sqlml.optimizer.pipeline_sql import SQL_FEATURE_US, LinearPipelineSql, featurizer_ort_us
from nbgov.sqlml.optimizer.projection import rebuild
from nbgov.sqlml.optimizer.prune import prune_forest
from nbgov.sqlml.optimizer.to_sql import fill, mean_depth, template
from nbgov.sqlml.models.treegraph import TreeGraph, analyze
from nbgov.sqlml.plan import BoundInput, CallPlan, ModelCall, OnnxPlan, SqlPlan, TensorSpec

RawDomains = Mapping[Source, Domain | Categories]


def raw_domains(
    call: ModelCall,
    numeric: Mapping[tuple[int, int], Domain],
    strings: Mapping[tuple[int, int], Categories],
) -> dict[Source, Domain | Categories]:
    """What the query proves about each input column, keyed by the model's own sources."""
    out: dict[Source, Domain | Categories] = {}
    for i, bound in enumerate(call.inputs):
        for j in range(len(bound.columns)):
            found: Domain | Categories | None = strings.get((i, j)) if bound.spec.elem_type == "string" else numeric.get((i, j))
            if found is not None:
                out[Source(bound.spec.name, j, bound.spec.elem_type)] = found
    return out


@dataclass(frozen=True)
class PrunedPipeline:
    """A lowered model pruned for one set of domains (cached by the rule)."""

    graph: TreeGraph | None = field(repr=False)
    payload: bytes = field(repr=False)
    kept: tuple[int, ...]  # lowered columns the pruned model reads, in order
    nodes_before: int
    nodes_after: int


def prune_lowered(lowered: LoweredTrees, domains: Mapping[int, ModelDomain]) -> PrunedPipeline:
    """Prune the lowered trees for ``domains`` and stop reading unused lowered columns."""
    graph = analyze(lowered.model)
    assert graph is not None, "a lowered model is tree ensembles over one float input"
    forests = []
    before = after = 0
    for forest in graph.forests:
        result = prune_forest(forest, dict(domains))
        forests.append(keep_label_rule(forest, result.forest))
        before += result.nodes_before
        after += result.nodes_after
    projected = rebuild(graph, forests)
    return PrunedPipeline(
        analyze(projected.model), projected.model.SerializeToString(), projected.kept, before, after
    )


def lowered_domains(lowered: LoweredTrees, raw: RawDomains) -> dict[int, ModelDomain]:
    out: dict[int, ModelDomain] = {}
    for k, column in enumerate(lowered.columns):
        domain = column.domain(raw.get(column.source))
        if domain is not None:
            out[k] = domain
    return out


def domains_key(domains: Mapping[int, ModelDomain]) -> str:
    text = ";".join(f"{k}:{domains[k].key()}" for k in sorted(domains))
    return xxhash.xxh3_128_hexdigest(text.encode())


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
        if found is None or (isinstance(found, Domain) and found.unconstrained):
            continue
        text = column.describe(found.describe(display(values[column.source])))
        described.setdefault(column.source, text)
    return list(described.values())


def display(value: exp.Expression) -> str:
    """SQL text for EXPLAIN notes: ``age``, not ``"age"``, when quoting is not needed."""

    def plain(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Identifier) and node.quoted and node.name.isidentifier() and node.name == node.name.lower():
            return exp.to_identifier(node.name, quoted=False)
        return node

    return value.copy().transform(plain).sql(dialect="duckdb")


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
        any_null: exp.Expr = exp.Is(this=nullable[0].copy(), expression=exp.Null())
        for value in nullable[1:]:
            any_null = exp.or_(any_null, exp.Is(this=value.copy(), expression=exp.Null()))
        ifs.append(exp.If(this=any_null, true=exp.Null()))
    for condition, message in checks:
        ifs.append(
            exp.If(this=condition, true=exp.Anonymous(this="error", expressions=[exp.Literal.string(message)]))
        )
    first = exp.Case(ifs=ifs, default=columns[0].copy())
    return [first, *columns[1:]]


class PipelineRule:
    """Plans calls on lowered pipelines; caches pruned models per (model, domains)."""

    def __init__(self, max_cache: int = 64) -> None:
        self._max_cache = max_cache
        self._pruned: dict[str, PrunedPipeline] = {}
        self._templates: dict[str, exp.Expression] = {}

    def plan_trees(
        self,
        call: ModelCall,
        pipeline: Pipeline,
        lowered: LoweredTrees,
        raw: RawDomains,
        notes: list[str],
        stats: dict[str, object],
        *,
        inline_sql: bool = True,
        batched: bool = False,
    ) -> CallPlan:
        """The call over the lowered, pruned columns: as SQL when cheaper, else as ONNX."""
        values = bound_values(call)
        domains = lowered_domains(lowered, raw)
        contradiction = any(d.values == () or (d.values is None and d.lo > d.hi and not d.nan) for d in domains.values())
        if contradiction:
            notes.append("no pruning: the predicate admits no rows")
            domains = {}
        key = f"{call.model.sha256}:lowered:{domains_key(domains)}"
        pruned = self._pruned.get(key)
        if pruned is None:
            pruned = prune_lowered(lowered, domains)
            if len(self._pruned) >= self._max_cache:
                self._pruned.pop(next(iter(self._pruned)))
            self._pruned[key] = pruned
        forests = pruned.graph.forests if pruned.graph else []
        trees = sum(len(f.trees) for f in forests)
        notes.append(_lowering_note(pipeline, lowered, trees))
        using = " AND ".join(constraint_text(lowered, raw, values))
        if pruned.nodes_after < pruned.nodes_before:
            notes.append(
                f"pruned {pruned.nodes_before - pruned.nodes_after:,} of {pruned.nodes_before:,} tree nodes"
                + (f" using {using}" if using else "")
            )
        elif using:
            notes.append(f"no tree nodes pruned: no test is decided by {using}")
        read = {lowered.columns[k].source for k in pruned.kept}
        unread = [s for s in lowered.sources if s not in read]
        if unread:
            names = ", ".join(display(values[s]) for s in unread)
            notes.append(f"dropped {len(unread)} of {len(lowered.sources)} inputs no kept test reads ({names})")
        stats.update(
            nodes_before=pruned.nodes_before,
            nodes_after=pruned.nodes_after,
            inputs_before=len(lowered.sources),
            inputs_after=len(lowered.sources) - len(unread),
            lowered_columns=len(pruned.kept),
        )
        checks = refused_rows(lowered.checks, raw, values, call.model.ref)
        features = [lowered.columns[k].sql(values[lowered.columns[k].source]) for k in pruned.kept]
        if inline_sql and pruned.graph is not None and len(forests) == 1:
            sql = self._as_sql(call, pruned, key, features, raw, values, checks, notes, stats, batched=batched)
            if sql is not None:
                return sql
        nullable = [values[s] for s in lowered.sources if (s not in read or checks) and s not in raw]
        columns = guarded_columns(features, nullable, checks)
        spec = TensorSpec(lowered.model.graph.input[0].name, "float", (None, len(pruned.kept)))
        plan = OnnxPlan(pruned.payload, key, (BoundInput(spec, tuple(columns)),))
        stats["strategy"] = "onnx"
        notes.append(f"runs as ONNX over {len(pruned.kept)} lowered column(s): {trees:,} tree(s) on one float input")
        return CallPlan(plan, tuple(notes), stats)

    def _as_sql(
        self,
        call: ModelCall,
        pruned: PrunedPipeline,
        key: str,
        features: list[exp.Expression],
        raw: RawDomains,
        values: Mapping[Source, exp.Expression],
        checks: list[tuple[exp.Expression, str]],
        notes: list[str],
        stats: dict[str, object],
        *,
        batched: bool,
    ) -> CallPlan | None:
        """The pruned ensemble as one CASE per tree, when the cost model prefers DuckDB."""
        assert pruned.graph is not None
        forest = pruned.graph.forests[0]
        estimate = ensemble_costs(forest, batched=batched)
        stats.update(cost_ort=round(estimate.ort_us, 4), cost_sql=round(estimate.sql_us, 4))
        if not estimate.prefer_sql:
            notes.append(f"not inlined as SQL: {len(forest.trees):,} tree(s) estimated cheaper in onnxruntime ({estimate.describe()})")
            return None
        node = pruned.graph.model.graph.node[pruned.graph.tree_nodes[0]]
        try:
            sql_model = ensemble_sql(node, forest, call.model.outputs)
        except NotTranslatable as err:
            notes.append(f"not inlined as SQL: {err}")
            return None
        shape = self._templates.get(key)
        if shape is None:
            shape = template(sql_model, call.model.outputs, 0)
            if shape is None:
                return None
            self._templates[key] = shape
        # every input's NULL must show: a NULL compared in a CASE would pick a branch
        nullable = [value for source, value in values.items() if source not in raw]
        expression = guarded_columns([fill(shape, features, [])], nullable, checks)[0]
        stats["strategy"] = "sql"
        notes.append(f"inlined as SQL: {len(forest.trees):,} tree(s), one CASE per tree (cost {estimate.describe()})")
        return CallPlan(SqlPlan(expression), tuple(notes), stats)

    def plan_linear(
        self,
        call: ModelCall,
        pipeline: Pipeline,
        translated: LinearPipelineSql,
        raw: RawDomains,
        notes: list[str],
        stats: dict[str, object],
        *,
        batched: bool,
    ) -> CallPlan | None:
        """The whole pipeline as one SQL expression, when the cost model prefers it."""
        estimate = linear_costs(translated.terms, batched=batched)
        estimate = CostEstimate(
            ort_us=estimate.ort_us + featurizer_ort_us(pipeline),
            sql_us=estimate.sql_us + SQL_FEATURE_US * len(translated.features),
        )
        stats.update(cost_ort=round(estimate.ort_us, 4), cost_sql=round(estimate.sql_us, 4))
        transforms = ", ".join(dict.fromkeys(op for op in pipeline.transforms if op not in _ROUTING))
        if not estimate.prefer_sql:
            notes.append(f"kept as ONNX: pipeline ({transforms}) + linear model estimated cheaper in onnxruntime ({estimate.describe()})")
            return None
        values = bound_values(call)
        sources = pipeline.sources()
        checks = refused_rows(refusals(pipeline), raw, values, call.model.ref)
        nullable = [values[s] for s in sources if s not in raw]
        expression = guarded_columns([translated.render(values)], nullable, checks)[0]
        stats["strategy"] = "sql"
        notes.append(
            f"inlined as SQL expression: pipeline ({transforms or 'column routing'}) + linear model, "
            f"{len(translated.features)} features (cost {estimate.describe()})"
        )
        return CallPlan(SqlPlan(expression), tuple(notes), stats)


def ensemble_costs(forest: Forest, *, batched: bool) -> CostEstimate:
    """ORT vs one CASE per tree (per class scored) plus DuckDB's fold over the trees."""
    scored = max(1, len({t for tree in forest.trees for n in tree.nodes if isinstance(n, Leaf) for t, _ in n.weights}))
    per_class = 1 if all(len(n.weights) <= 1 for tree in forest.trees for n in tree.nodes if isinstance(n, Leaf)) else scored
    levels = max(1, round(mean_depth(forest) * len(forest.trees)))
    base = tree_costs(levels * per_class, batched=batched)
    return CostEstimate(
        ort_us=tree_costs(levels, batched=batched).ort_us,
        sql_us=base.sql_us + (SQL_FOLD_US * len(forest.trees) * per_class if len(forest.trees) > 1 else 0.0),
    )


def refused_rows(
    checks: tuple[Check, ...], raw: RawDomains, values: Mapping[Source, exp.Expression], model_ref: str
) -> list[tuple[exp.Expression, str]]:
    """(condition, error message) for each check the query does not already rule out."""
    return [(c.failing(values[c.source]), c.message(model_ref)) for c in checks if c.needed(raw.get(c.source))]


def _lowering_note(pipeline: Pipeline, lowered: LoweredTrees, trees: int) -> str:
    transforms = ", ".join(dict.fromkeys(op for op in pipeline.transforms if op not in _ROUTING))
    carried = f"; {lowered.folded:,} test(s) carried back through transforms" if lowered.folded else ""
    return (
        f"pipeline: {transforms or 'column routing'} in front of {trees:,} tree(s), lowered to trees over "
        f"{len(lowered.columns)} SQL column(s){carried}"
    )


_ROUTING = {
    "Identity", "Concat", "Gather", "ArrayFeatureExtractor", "Slice", "Reshape", "Flatten",
    "Squeeze", "Unsqueeze", "Cast", "FeatureVectorizer", "Constant",
}


