"""Bind ``predict(model, ...)`` arguments to a model's inputs (a ``ModelCall``).

Each model input is split into *slots*: a 2-D numeric ``[N, k]`` input has k slots
(one per feature, named by the model's feature names when known), every other
input has one slot named after the input. Positional arguments fill slots in
order, ``name := expr`` fills the slot of that name, ``*`` fills every remaining
slot with the column of the same name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlglot.expressions as exp

from nbgov.errors import ModelBindingError, SqlmlError
from nbgov.sqlml.models.onnxtypes import NUMERIC, describe, width
from nbgov.sqlml.plan import BoundInput, ModelCall, ModelVersion
from nbgov.sqlml.sql.statements import PREDICT_PLACEHOLDER


@dataclass(frozen=True)
class Slot:
    input_index: int
    name: str | None  # None: a feature whose name is unknown


def signature(model: ModelVersion) -> str:
    """``churn@1(plan string[N,1], age float[N,1])`` for error messages."""
    parts = []
    for spec in model.inputs:
        text = describe(spec)
        if model.feature_names and len(model.inputs) == 1 and (width(spec) or 0) > 1:
            text += " (" + ", ".join(model.feature_names) + ")"
        parts.append(text)
    return f"{model.ref}({', '.join(parts)})"


def slots(model: ModelVersion, positional: int | None = None) -> list[Slot]:
    """The flat list of values a model takes, in positional order. A 2-D input of unknown
    width (``[N, N]``) with no feature names takes the ``positional`` values the other
    inputs leave (one nameless slot when not given: it cannot be bound by name)."""
    open_input = _open_input(model)
    result: list[Slot] = []
    for index, spec in enumerate(model.inputs):
        cols = width(spec)
        multi = spec.elem_type in NUMERIC and len(spec.shape) == 2 and cols != 1
        if not multi:
            result.append(Slot(index, spec.name))
            continue
        names = model.feature_names if len(model.inputs) == 1 else None
        if cols is None:
            cols = len(names) if names else 0
        if index == open_input:
            others = sum(width(s) or 1 for i, s in enumerate(model.inputs) if i != index)
            cols = 1 if positional is None else max(positional - others, 0)
        for i in range(cols):
            result.append(Slot(index, names[i] if names and i < len(names) else None))
    return result


def _open_input(model: ModelVersion) -> int | None:
    """The one 2-D numeric input whose width neither its shape nor feature names tell."""
    found = [
        index for index, spec in enumerate(model.inputs)
        if spec.elem_type in NUMERIC and len(spec.shape) == 2 and width(spec) is None
        and not (model.feature_names and len(model.inputs) == 1)
    ]
    return found[0] if len(found) == 1 else None


def predict_calls(tree: exp.Expression) -> list[exp.Anonymous]:
    """Every predict(...) node (renamed by the pre-pass), outermost first."""
    return [node for node in tree.find_all(exp.Anonymous) if _is_predict(node)]


def name_prediction_columns(select: exp.Select) -> None:
    """Give each unnamed select-list expression that reads predict(...) the name it has as
    written (``avg(predict(m, a, b))``, as DuckDB names a column after its expression),
    so the result's columns are the same with and without the optimizer and never show
    the helper columns or functions predict(...) becomes."""
    for expression in list(select.expressions):
        if isinstance(expression, (exp.Alias, exp.Star)) or not predict_calls(expression):
            continue
        shown = expression.copy().transform(
            lambda n: exp.Anonymous(this="predict", expressions=n.expressions) if _is_predict(n) else n
        )
        name = shown.sql(dialect="duckdb", normalize_functions="lower")
        expression.replace(exp.alias_(expression.copy(), name, quoted=True))


def _is_predict(node: exp.Expression) -> bool:
    return isinstance(node, exp.Anonymous) and isinstance(node.this, str) and node.this.lower() == PREDICT_PLACEHOLDER


def model_ref(node: exp.Expression) -> str:
    """The first argument: an identifier, or a string such as 'churn@2'."""
    if not node.expressions:
        raise ModelBindingError("predict() needs a model as its first argument: predict(model, ...)")
    first = node.expressions[0]
    if isinstance(first, exp.Literal) and first.is_string:
        return str(first.this)
    if isinstance(first, exp.Column) and not first.table and isinstance(first.this, exp.Identifier):
        return str(first.this.this)
    raise ModelBindingError(
        f"predict() expects a model name first, got {first.sql(dialect='duckdb')!r}; "
        "write predict(model, ...) or predict('model@2', ...)"
    )


def bind(node: exp.Anonymous, statement: exp.Expression, resolve: Callable[[str], ModelVersion]) -> ModelCall:
    model = resolve(model_ref(node))
    return ModelCall(model=model, inputs=bind_arguments(model, node.expressions[1:]), node=node, statement=statement)


def refuse_missing_field(call: ModelCall) -> None:
    """``predict(m, ...).field`` where ``m`` has no output ``field``: one line naming the
    outputs it has. DuckDB's own error named an internal helper ("nbgov_p1_0_0") or said
    only that the key is missing, followed by the model's inputs."""
    parent = call.node.parent
    if not (isinstance(parent, exp.Dot) and parent.this is call.node and isinstance(parent.expression, exp.Identifier)):
        return
    field, outputs = parent.expression.name, call.model.outputs
    if len(outputs) > 1 and any(output.name.lower() == field.lower() for output in outputs):
        return
    listing = ", ".join(describe(output) for output in outputs)
    if len(outputs) == 1:
        raise ModelBindingError(
            f"{call.label} has no output field {field!r}: the model has one output ({listing}), which "
            f"predict() returns as it is, not as a STRUCT; drop .{field}"
        )
    raise ModelBindingError(
        f"{call.label} has no output field {field!r}; the model's outputs are {listing} "
        f"(read one as predict(...).{outputs[0].name})"
    )


def bind_arguments(model: ModelVersion, args: Sequence[exp.Expression]) -> tuple[BoundInput, ...]:
    open_input = _open_input(model)
    wanted = slots(model, _count_positional(args))
    if open_input is not None and not any(slot.input_index == open_input for slot in wanted):
        raise ModelBindingError(
            f"predict({model.ref}): input {describe(model.inputs[open_input])} has no fixed width, so it "
            f"takes the values given positionally, one per feature, and none was given; expected {signature(model)}"
        )
    filled: list[exp.Expression | None] = [None] * len(wanted)
    position = 0
    star = False
    table: exp.Identifier | None = None  # t in ``t.*``: each input binds t's column
    for arg in args:
        if isinstance(arg, exp.Star) or (isinstance(arg, exp.Column) and isinstance(arg.this, exp.Star)):
            star = True
            table = arg.args.get("table") if isinstance(arg, exp.Column) else None
            continue
        if isinstance(arg, (exp.PropertyEQ, exp.Kwarg)) and isinstance(arg.this, (exp.Identifier, exp.Column)):
            name = arg.this.name
            index = _slot_named(wanted, name)
            if index is None:
                raise ModelBindingError(f"predict({model.ref}): no input named {name!r}; expected {signature(model)}")
            if filled[index] is not None:
                raise ModelBindingError(f"predict({model.ref}): input {name!r} is bound twice; expected {signature(model)}")
            filled[index] = arg.expression
            continue
        if star or any(f is not None for f in filled[position:]):
            raise SqlmlError(
                f"predict({model.ref}): positional arguments must come before '*' and 'name := value'"
            )
        if position >= len(wanted):
            raise ModelBindingError(
                f"predict({model.ref}) takes {len(wanted)} value(s), got {_count_positional(args)}; "
                f"expected {signature(model)}"
            )
        filled[position] = arg
        position += 1
    for index, slot in enumerate(wanted):
        if filled[index] is not None:
            continue
        if not star:
            raise ModelBindingError(
                f"predict({model.ref}) takes {len(wanted)} value(s), got {sum(f is not None for f in filled)}; "
                f"expected {signature(model)}"
            )
        if slot.name is None:
            raise ModelBindingError(
                f"predict({model.ref}, *): the model's feature names are unknown, so '*' cannot bind "
                f"input {model.inputs[slot.input_index].name!r}; pass the columns positionally; "
                f"expected {signature(model)}"
            )
        filled[index] = exp.column(slot.name, table=table.copy() if table is not None else None, quoted=True)
    if not wanted:
        raise ModelBindingError(f"predict({model.ref}): cannot tell how many values the model takes")
    grouped: dict[int, list[exp.Expression]] = {}
    for slot, value in zip(wanted, filled):
        assert value is not None
        grouped.setdefault(slot.input_index, []).append(value)
    return tuple(
        BoundInput(spec=spec, columns=tuple(grouped.get(i, []))) for i, spec in enumerate(model.inputs)
    )


def _slot_named(wanted: list[Slot], name: str) -> int | None:
    for index, slot in enumerate(wanted):
        if slot.name is not None and slot.name.lower() == name.lower():
            return index
    return None


def _count_positional(args: Sequence[exp.Expression]) -> int:
    return sum(1 for a in args if not isinstance(a, (exp.Star, exp.PropertyEQ, exp.Kwarg)))
