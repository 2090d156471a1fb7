"""ML.PREDICT binding: model inputs ← relation columns by name, and the planner's view
of ``ML.PREDICT(MODEL m, relation)`` as ``SELECT predict(m, cols) FROM relation``."""

from __future__ import annotations

import sqlglot.expressions as exp

from nbgov.errors import ModelBindingError
from nbgov.sqlml.planning.binding import signature, slots
from nbgov.sqlml.models.onnxtypes import output_duckdb_type
from nbgov.sqlml.planning.fields import fold_access
from nbgov.sqlml.plan import BoundInput, ModelCall, ModelVersion
from nbgov.sqlml.sql.quoting import quote_ident
from nbgov.sqlml.sql.statements import PREDICT_PLACEHOLDER


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
    return ModelCall(model=model, inputs=inputs, node=node, statement=statement)


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
    select = exp.select(exp.column(exp.Star(), table="nbgov_in"))
    if len(model.outputs) == 1:
        value = exp.alias_(expression.copy(), f"predicted_{model.outputs[0].name}", quoted=True, copy=False)
        select = select.select(value, copy=False)
    else:
        for output in model.outputs:
            held = exp.Paren(this=expression.copy())
            access = exp.Dot(this=held, expression=exp.to_identifier(output.name, quoted=True))
            select = select.select(exp.alias_(access, f"predicted_{output.name}", quoted=True, copy=False), copy=False)
    source = exp.Subquery(this=relation, alias=exp.TableAlias(this=exp.to_identifier("nbgov_in")))
    return select.from_(source, copy=False)


def fold_outputs(select: exp.Select) -> None:
    """Fold the per-output STRUCT field reads of an ``inlined_relation`` still unfolded."""
    for item in select.expressions:
        access = item.this if isinstance(item, exp.Alias) else None
        if isinstance(access, exp.Dot) and isinstance(access.this, exp.Paren):
            fold_access(access.this)


def typed_stand_in(model: ModelVersion, relation_sql: str) -> str:
    """The relation with NULL predicted columns of the output types: cheap to bind, to learn
    the column names DuckDB gives a query over ``ML.PREDICT``."""
    columns = ", ".join(
        f"CAST(NULL AS {output_duckdb_type(o)}) AS {quote_ident(f'predicted_{o.name}')}" for o in model.outputs
    )
    return f"SELECT nbgov_in.*, {columns} FROM ({relation_sql}) AS nbgov_in"
