"""ML.PREDICT: model inputs ← relation columns by name, the planner's view of
``ML.PREDICT(MODEL m, relation)`` as ``SELECT predict(m, cols) FROM relation``, and its
compile step: the relation becomes a table scored in batches before the final SQL (a
``ScoreRelation`` step, computing only the predicted values the statement reads), or,
when the planner inlines the model as SQL, a subquery (a CTE when that lets the
statement compute only what it reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlglot.expressions as exp

from nbgov.errors import ModelBindingError, NbgovError, SqlmlError
from nbgov.sqlml.models.onnxtypes import data_type, output_duckdb_type
from nbgov.sqlml.plan import BoundInput, ModelCall, ModelVersion, OnnxPlan, SqlPlan, original_cache_key
from nbgov.sqlml.planning.arguments import check, feeds, is_predict, visible_ctes
from nbgov.sqlml.planning.binding import signature, slots
from nbgov.sqlml.planning.fields import fold_access, fold_through_cte
from nbgov.sqlml.planning.picks import relation_picks
from nbgov.sqlml.planning.prepared import (
    CheckRelation, Column, Pick, Query, ScoreRelation, ScoringJob, marked_inlined,
)
from nbgov.sqlml.planning.relations import StandIns, select_all
from nbgov.sqlml.sql.parse import parse
from nbgov.sqlml.sql.statements import PREDICT_PLACEHOLDER, MlPredict, Statement, tokenize

if TYPE_CHECKING:
    from nbgov.sqlml.planning.compile import Compilation, Outer


ML_PREDICT_PREFIX = "nbgov_mlp_"  # the placeholder tables compile names ML.PREDICT calls by


@dataclass(frozen=True)
class Inlined:
    """An ML.PREDICT the planner inlined as SQL: the relation with its predicted columns
    computed by the engine (``body``), and a typed stand-in with the same columns."""

    body: exp.Select
    stand_in: exp.Select


def compile_ml_predict(work: Compilation, call: MlPredict, outer: Outer) -> Inlined | None:
    """Compile one ML.PREDICT of the statement ``outer``: a ``ScoreRelation`` step named
    like its placeholder (None returned), or the relation inlined as SQL."""
    tree = outer.tree
    if tree is not None and any(column.name == call.placeholder for column in tree.find_all(exp.Column)):
        # SELECT ML.PREDICT(...): DuckDB named the placeholder ("Referenced column nbgov_mlp_0_0 ...")
        raise SqlmlError(
            f"ML.PREDICT(MODEL {call.model_ref}, ...) is a table, not a value: read it in FROM or JOIN "
            "(SELECT * FROM ML.PREDICT(MODEL m, TABLE t)), or call predict(m, ...) for a value per row"
        )
    model = work.catalog.resolve(call.model_ref)
    work.use(model, signature_too=False)
    call, copied = with_outer_ctes(call, outer)
    _, query = work.query(Statement(call.query, tokenize(call.query)), top=False)
    relation = query.tree if query.tree is not None else parse(query.text or "")
    if relation is None:
        raise SqlmlError(f"cannot parse the relation of ML.PREDICT(MODEL {model.ref}); check its syntax")
    columns = work.describe(select_all(relation.copy(), "nbgov_in"))
    refuse_predicted_names(model, [c.name for c in columns])
    names = {c.name.lower(): c.name for c in columns}
    arguments = relation_arguments(model, names)
    label = f"ML.PREDICT(MODEL {model.ref})"
    types = {c.name: c.type for c in columns}
    fed = feeds(relation_call(model, arguments, relation.copy()))
    check(model, label, fed, [types[a] for a in arguments], work.relations.dialect)
    strategy = (
        work.plan(relation_call(model, arguments, relation.copy()), relation=True).strategy
        if work.settings.optimize
        else None
    )
    if isinstance(strategy, SqlPlan) and outer.tree is not None:
        # No signature for error messages: an error of the query around ML.PREDICT (a
        # predicted column compared with text) is the same as when ONNX scores the relation.
        work.notes.append(
            f"{label}: inlined as SQL: {work.relations.engine.label} computes "
            + ", ".join(f"predicted_{o.name}" for o in model.outputs)
            + " natively (no ONNX scoring, no batching)"
        )
        body = inlined_relation(model, _without_ctes(relation.copy(), copied), strategy.expression)
        if strategy.refusals:
            # ONNX scores every row of the relation, whatever the statement reads of it
            every_row = refused_anywhere(relation.copy(), strategy.refusals)  # run alone: with the CTEs it reads
            work.steps.append(CheckRelation(Query(every_row), label))
            work.notes.append(f"{label}: every row of the relation is checked first for values the model refuses, "
                              "as onnxruntime checks them")
        return Inlined(body, typed_stand_in(model, relation))
    if isinstance(strategy, SqlPlan):
        work.notes.append(f"{label}: kept as ONNX: the statement around it could not be parsed to inline it")
    plan = strategy if isinstance(strategy, OnnxPlan) else _original(model, arguments, relation)
    _score(work, call, outer, model, plan, relation, columns, label)
    return None


def refuse_predicted_names(model: ModelVersion, columns: Sequence[str]) -> None:
    """A relation column named like a predicted column (``predicted_label``): one line
    asking to rename it. ML.PREDICT returns every input column, and the prediction had
    silently taken that column's place (its values were lost)."""
    predicted = {f"predicted_{output.name}".lower() for output in model.outputs}
    clashes = [name for name in columns if name.lower() in predicted]
    if clashes:
        listed = ", ".join(repr(name) for name in clashes)
        which, it = (f"column {listed} is", "it") if len(clashes) == 1 else (f"columns {listed} are", "them")
        raise SqlmlError(
            f"ML.PREDICT(MODEL {model.ref}): the relation's {which} named like the column(s) ML.PREDICT adds "
            f"for the model's outputs; rename {it} in the relation (SELECT ..., {clashes[0]} AS "
            f"{clashes[0]}_input ...) or leave {it} out"
        )


def with_outer_ctes(call: MlPredict, outer: Outer) -> tuple[MlPredict, frozenset[str]]:
    """``call`` with the statement's CTEs its relation reads put in front of its query.

    The relation is described and scored on its own, before the statement runs, so
    ``WITH recent AS (...) SELECT * FROM ML.PREDICT(MODEL m, TABLE recent)`` failed with
    "Table with name recent does not exist!" (BigQuery ML reads the CTE). The CTEs it reads,
    directly or through another, are copied into its own WITH, outermost first; a predict()
    in one is written back as predict() for the relation's own compile. A CTE reading
    another ML.PREDICT is refused in one line: that relation is not scored yet. Also returns
    the (lower-cased) names of the CTEs copied."""
    tree = outer.tree
    table = next((t for t in tree.find_all(exp.Table) if t.name == call.placeholder), None) if tree else None
    ctes = {cte.alias_or_name.lower(): cte for cte in visible_ctes(table)} if table is not None else {}
    relation = parse(call.query) if ctes else None
    if relation is None:
        return call, frozenset()
    own = {cte.alias_or_name.lower() for cte in relation.find_all(exp.CTE)}
    needed: set[str] = set()
    pending: list[exp.Expression] = [relation]
    while pending:
        for read in pending.pop().find_all(exp.Table):
            name = read.name.lower()
            if not read.db and name in ctes and name not in own and name not in needed:
                needed.add(name)
                pending.append(ctes[name].this)
    if not needed:
        return call, frozenset()
    kept = [cte for name, cte in ctes.items() if name in needed]
    for cte in kept:
        if any(read.name.startswith(ML_PREDICT_PREFIX) for read in cte.find_all(exp.Table)):
            raise SqlmlError(
                f"ML.PREDICT(MODEL {call.model_ref}) reads the CTE {cte.alias_or_name!r}, which itself reads "
                "ML.PREDICT; create a table from the inner ML.PREDICT first"
            )
        for node in cte.find_all(exp.Anonymous):
            if is_predict(node):
                node.set("this", "predict")
    with_ = relation.args.get("with_")
    inner = list(with_.expressions) if isinstance(with_, exp.With) else []
    around = _withs_around(table) if table is not None else []
    recursive = any(bool(w.args.get("recursive")) for w in [*around, *([with_] if isinstance(with_, exp.With) else [])])
    relation.set("with_", exp.With(expressions=[*kept, *inner], recursive=recursive))
    return MlPredict(call.model_ref, relation.sql(dialect="duckdb"), call.placeholder), frozenset(needed)


def _withs_around(node: exp.Expression) -> list[exp.With]:
    """Every WITH of the statements around ``node`` (a WITH RECURSIVE among them makes its
    CTEs recursive ones, copied as such)."""
    found: list[exp.With] = []
    parent = node.parent
    while parent is not None:
        with_ = parent.args.get("with_") if isinstance(parent, exp.Expression) else None
        if isinstance(with_, exp.With):
            found.append(with_)
        parent = parent.parent
    return found


def _without_ctes(relation: exp.Expression, names: frozenset[str]) -> exp.Expression:
    """``relation`` without the statement's CTEs ``with_outer_ctes`` copied into it: inlined
    in the statement it sees them there (Spark's SQL, which hoists every CTE to the top,
    refused the copies as duplicates)."""
    with_ = relation.args.get("with_")
    if not names or not isinstance(with_, exp.With):
        return relation
    kept = [cte for cte in with_.expressions if cte.alias_or_name.lower() not in names]
    relation.set("with_", exp.With(expressions=kept, recursive=with_.args.get("recursive")) if kept else None)
    return relation


def _score(
    work: Compilation,
    call: MlPredict,
    outer: Outer,
    model: ModelVersion,
    plan: OnnxPlan,
    relation: exp.Expression,
    columns: tuple[Column, ...],
    label: str,
) -> None:
    """The relation scored with ``plan`` as a step; plan inputs that are expressions (a
    NULL guard) become helper columns DuckDB computes."""
    names = {c.name.lower(): c.name for c in columns}
    feeds: list[str | exp.Expression] = []
    for bound in plan.inputs:
        for column in bound.columns:
            plain = isinstance(column, exp.Column) and not column.table and column.name.lower() in names
            feeds.append(names[column.name.lower()] if plain else column)
    helpers = [(f"nbgov_x{next(work.ids)}", e) for e in feeds if not isinstance(e, str)]
    scored = relation
    if helpers:
        source = exp.Subquery(this=relation.copy(), alias=exp.TableAlias(this=exp.to_identifier("nbgov_in")))
        scored = exp.select(exp.Star(), *[exp.alias_(e, n, quoted=True) for n, e in helpers]).from_(source, copy=False)
    named = iter(n for n, _ in helpers)
    tree = outer.tree if work.settings.optimize else None
    found = relation_picks(tree, call.placeholder, model.outputs, f"nbgov_po{next(work.ids)}_") if tree else None
    picks, reads = found or ([Pick(f"predicted_{o.name}", o.name) for o in model.outputs], [])
    job = ScoringJob(
        plan, model.outputs, tuple(f if isinstance(f, str) else next(named) for f in feeds), tuple(picks),
        label, signature(model), regions=work.settings.optimize,
    )
    stand_in = _scored_stand_in(relation, columns, job)
    work.add_relation(
        ScoreRelation(call.placeholder, Query(scored), (job,), frozenset(n for n, _ in helpers), label, Query(stand_in), whole=True)
    )
    work.notes.append(
        f"{label}: ONNX: the relation is scored in Arrow batches of "
        f"{work.settings.batch_rows:,} rows on {work.settings.threads} threads"
    )
    if found is not None:
        for node, helper in reads:
            qualifier = node.this.table if isinstance(node.this, exp.Column) else ""
            node.replace(exp.column(helper, table=qualifier or None, quoted=True))
        outer.changed = True
        work.notes.append(f"{label}: output projection: only {', '.join(p.describe() for p in picks)} computed and returned")


def _original(model: ModelVersion, arguments: list[str], relation: exp.Expression) -> OnnxPlan:
    """The registered model on the relation's columns (--no-optimize)."""
    inputs = relation_call(model, arguments, relation.copy()).inputs
    return OnnxPlan(model.onnx_bytes, original_cache_key(model), inputs)


def _scored_stand_in(relation: exp.Expression, columns: tuple[Column, ...], job: ScoringJob) -> exp.Select:
    """The scored table's columns with no rows: the relation's, then the predicted ones."""

    def typed(pick: Pick) -> exp.Alias:
        value = exp.Cast(this=exp.Null(), to=data_type(pick.duckdb_type(job.outputs)))
        return exp.Alias(this=value, alias=exp.to_identifier(pick.column, quoted=True))

    items: list[exp.Expression] = [exp.column(c.name, table="nbgov_in", quoted=True) for c in columns]
    items += [typed(pick) for pick in job.picks]
    source = exp.Subquery(this=relation.copy(), alias=exp.TableAlias(this=exp.to_identifier("nbgov_in")))
    return exp.select(*items).from_(source, copy=False).limit(0, copy=False)


def inline_relations(work: Compilation, tree: exp.Expression, inlined: dict[str, Inlined]) -> exp.Expression:
    """Put each ML.PREDICT inlined as SQL in place of its placeholder: as a CTE when the
    statement is one plain SELECT from it, so that the output projection computes only
    the predicted values read (``predicted_probabilities[2]``); else as a subquery."""
    if len(inlined) == 1 and work.settings.optimize:
        ((placeholder, relation),) = inlined.items()
        with_cte = _as_cte(work, tree, placeholder, relation)
        if with_cte is not None:
            return with_cte
    for relation in inlined.values():
        fold_outputs(relation.body)

    def nested(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.db and node.name in inlined:
            alias = node.args.get("alias")
            return exp.Subquery(this=inlined[node.name].body.copy(), alias=alias.copy() if alias else None)
        return node

    return tree.transform(nested, copy=False)


def _as_cte(work: Compilation, tree: exp.Expression, placeholder: str, relation: Inlined) -> exp.Expression | None:
    """``WITH placeholder AS (body) SELECT ...`` with the result's column names as written,
    when the output projection folds what the statement reads into the CTE; else None."""
    from_ = (tree.args.get("from_") or tree.args.get("from")) if isinstance(tree, exp.Select) else None
    if (
        not isinstance(tree, exp.Select)
        or from_ is None
        or not isinstance(from_.this, exp.Table)
        or from_.this.name != placeholder
        or tree.args.get("with_")
        or tree.args.get("joins")
    ):
        return None
    named = StandIns({placeholder: relation.stand_in}, {}).apply(tree.copy())
    try:
        names = [c.name for c in work.describe(select_all(named, "nbgov_names"))]  # as written
    except NbgovError:  # let the query itself report what is wrong
        return None
    body = relation.body.copy()
    fold_outputs(body)
    candidate = tree.copy().with_(placeholder, as_=body, copy=False)
    values = [e.this for e in body.expressions if isinstance(e, exp.Alias) and e.alias.startswith("predicted_")]
    if not [value for value in values if fold_through_cte(value)] or len(names) != len(candidate.expressions):
        return None
    for item, name in zip(list(candidate.expressions), names):  # keep the result's column names as written
        if not (isinstance(item, exp.Alias) and item.alias == name):
            item.replace(exp.alias_(item.this if isinstance(item, exp.Alias) else item, name, quoted=True))
    work.hidden.add(placeholder)
    work.notes.append("ML.PREDICT: output projection: only the predicted values the query reads are computed")
    return candidate


def relation_arguments(model: ModelVersion, columns: dict[str, str]) -> list[str]:
    """Column names (as in the relation) feeding the model's slots, in positional order.

    ``columns`` maps lower-cased names to the relation's own spelling.
    """
    arguments: list[str] = []
    for slot in slots(model):
        spec = model.inputs[slot.input_index]
        if slot.name is None:
            raise ModelBindingError(
                f"ML.PREDICT(MODEL {model.ref}): the model's feature names are unknown, so input "
                f"{spec.name!r} cannot be bound by column name; expected {signature(model)}"
            )
        if slot.name.lower() not in columns:
            raise ModelBindingError(
                f"ML.PREDICT(MODEL {model.ref}): the relation has no column {slot.name!r}; "
                f"expected {signature(model)}"
            )
        arguments.append(columns[slot.name.lower()])
    return arguments


def slot_counts(model: ModelVersion) -> list[int]:
    """How many columns feed each model input."""
    wanted = slots(model)
    return [sum(1 for s in wanted if s.input_index == i) for i in range(len(model.inputs))]


def relation_call(model: ModelVersion, arguments: list[str], relation: exp.Expression) -> ModelCall:
    """A ModelCall a planner can optimize, e.g. prune with the relation's WHERE."""
    node = exp.Anonymous(
        this=PREDICT_PLACEHOLDER,
        expressions=[exp.Literal.string(model.ref), *[exp.column(a, quoted=True) for a in arguments]],
    )
    statement = scoring_statement(relation, node)
    values = iter(node.expressions[1:])
    inputs = tuple(
        BoundInput(spec, tuple(next(values) for _ in range(count)))
        for spec, count in zip(model.inputs, slot_counts(model))
    )
    return ModelCall(model=model, inputs=inputs, node=node, statement=statement, written_as=f"ML.PREDICT(MODEL {model.ref})")


def scoring_statement(relation: exp.Expression, node: exp.Expression) -> exp.Expression:
    """``SELECT predict(...) FROM relation`` in the form a planner reads best: for a plain
    ``SELECT * FROM t WHERE p`` the call goes into that SELECT list (rows filtered by p)."""
    simple = (
        isinstance(relation, exp.Select)
        and len(relation.expressions) == 1
        and isinstance(relation.expressions[0], exp.Star)
        and not relation.expressions[0].args.get("except_")
        and not any(
            relation.args.get(k) for k in ("group", "having", "limit", "offset", "distinct", "qualify", "windows")
        )
    )
    if simple:
        statement = relation.copy()
        statement.set("expressions", [node])
        return statement
    alias = exp.TableAlias(this=exp.to_identifier("nbgov_in"))
    # copy=False: ``node`` must stay the very node inside the statement (ModelCall identity).
    return exp.select(node, copy=False).from_(exp.Subquery(this=relation, alias=alias), copy=False)


def inlined_relation(model: ModelVersion, relation: exp.Expression, expression: exp.Expression) -> exp.Select:
    """``SELECT relation.*, <value per output> AS predicted_<output> FROM (relation)``: the
    planner's SQL form of the model, so DuckDB scores the relation natively (no ONNX).

    ``expression`` is a SqlPlan's replacement of the predict() node over the relation's
    columns: a scalar for one output, else a STRUCT whose fields are read one per output
    (``fold_outputs`` then folds each into that field's own expression where it can, so
    nothing is computed twice; left to the caller, which may first fold what a query reads).
    """
    expression = marked_inlined(expression.copy())
    if len(model.outputs) == 1:
        values: dict[str, exp.Expression] = {f"predicted_{model.outputs[0].name}": expression.copy()}
    else:
        values = {
            f"predicted_{output.name}": exp.Dot(
                this=exp.Paren(this=expression.copy()), expression=exp.to_identifier(output.name, quoted=True)
            )
            for output in model.outputs
        }
    source = exp.Subquery(this=relation, alias=exp.TableAlias(this=exp.to_identifier("nbgov_in")))
    return exp.select(*_relation_items(values)).from_(source, copy=False)


def refused_anywhere(relation: exp.Expression, refusals: tuple[tuple[exp.Expression, str], ...]) -> exp.Select:
    """One row: TRUE, or the engine's ``error()`` with the first refusal's message when any
    row of ``relation`` holds a value the model refuses (a step of its own, so neither the
    statement's filters, its LIMIT, a count(*) that reads no prediction nor a join skip a
    row: onnxruntime scores the whole relation of an ML.PREDICT)."""
    case = exp.Case(
        ifs=[
            exp.If(
                this=exp.LogicalOr(this=condition.copy()),
                true=exp.Anonymous(this="error", expressions=[exp.Literal.string(message)]),
            )
            for condition, message in refusals
        ],
        default=exp.true(),
    )
    source = exp.Subquery(this=relation, alias=exp.TableAlias(this=exp.to_identifier("nbgov_in")))
    return marked_inlined(exp.select(exp.alias_(case, "nbgov_ok")).from_(source, copy=False))


def _relation_items(values: dict[str, exp.Expression]) -> list[exp.Expr]:
    """``nbgov_in.*`` then each predicted value under its name (no relation column has such
    a name: ``refuse_predicted_names``)."""
    return [exp.column(exp.Star(), table="nbgov_in"), *(exp.alias_(value, name, quoted=True, copy=False) for name, value in values.items())]


def fold_outputs(select: exp.Select) -> None:
    """Fold the per-output STRUCT field reads of an ``inlined_relation`` still unfolded."""
    for item in select.expressions:
        access = item.this if isinstance(item, exp.Alias) else None
        if isinstance(access, exp.Dot) and isinstance(access.this, exp.Paren):
            fold_access(access.this)


def typed_stand_in(model: ModelVersion, relation: exp.Expression) -> exp.Select:
    """The relation with NULL predicted columns of the output types: cheap to bind, to learn
    the column names DuckDB gives a query over ``ML.PREDICT``."""
    typed: dict[str, exp.Expression] = {
        f"predicted_{o.name}": exp.Cast(this=exp.Null(), to=data_type(output_duckdb_type(o))) for o in model.outputs
    }
    source = exp.Subquery(this=relation.copy(), alias=exp.TableAlias(this=exp.to_identifier("nbgov_in")))
    return exp.select(*_relation_items(typed)).from_(source, copy=False)
