"""DuckDB meanings that depend on an expression's type, written for Spark.

Users write DuckDB SQL. Some of it means, on DuckDB, something that depends on the type of
what it applies to, which the text alone does not say:

- a cast to an integer type rounds a DOUBLE or FLOAT half to even and a DECIMAL half away
  from zero; Spark's cast truncates (``(income * 1.5)::INTEGER`` of 2.5 is 2 and of 3.5 is 4
  on DuckDB, 2 and 3 on Spark): ``BROUND`` / ``ROUND`` first gives DuckDB's number;
- a cast of a DOUBLE to a DECIMAL rounds ``x * 10^scale`` as a double (1.005 is 1.00 at
  two places), Spark's the shortest decimal text of x (1.01);
- ``round(x, n)`` / ``round_even(x, n)`` of a DOUBLE or FLOAT rounds the exact value of x
  (2.675 is 2.67499999999999982..., so 2.67), Spark's ``ROUND`` / ``BROUND`` its shortest
  decimal text (2.68);
- ``/`` and ``avg`` of a DECIMAL are DOUBLEs (Spark's DECIMALs; a quotient of six places);
- ``date - date`` is a BIGINT of days (Spark's an interval), ``date_trunc`` of a DATE or
  TIMESTAMP a wall-clock TIMESTAMP (Spark's an instant);
- ``list[k]`` past the end of a list is NULL (Spark: an error), and a slice ``x[a:b]`` /
  ``list_slice`` is a list's or a text's (``slices.py``; Spark has no slice syntax);
- ``len(x)`` / ``length(x)`` of a list is its size (Spark's LENGTH takes text only), and
  both are BIGINTs (Spark's INT came back as int32);
- ``ceil`` / ``floor`` of a number are DOUBLEs, a DOUBLE's ``x % 0`` NaN, ``x // y`` of
  integers in their type and of DOUBLEs a quotient, and text cast to an integer a number
  rounded (``arithmetic.py``);
- ``trunc(x)`` of a DOUBLE is a DOUBLE, of an integer the integer (sqlglot's Spark: a
  cast to BIGINT);
- ``sum`` of integers is a HUGEINT, which the DuckDB engine's result holds as float64, and
  so is what is computed from one: a result column of that type is made a DOUBLE (Spark's
  BIGINT: int64);
- ``* EXCLUDE / REPLACE / RENAME (...)`` stand for the columns they keep: Spark has only
  ``* EXCEPT``, ambiguous where joined relations share a name; the star is expanded;
- ``UNION [ALL] BY NAME`` matches its sides' columns by name (Spark has none): each side
  is a SELECT of the merged columns over it.

The types are sqlglot's (``annotate_types``) over a second copy of the statement, qualified
with the columns of the relations it reads as the engine describes them, the ``$name``
values and nbgov's helper functions, with DuckDB's rules where sqlglot's differ (a decimal
literal is a DECIMAL, ``/`` a DOUBLE). The copy translated keeps the user's text everywhere
else. An operand whose type stays unknown keeps Spark's meaning (its cast truncates; the
dialect still rounds a quotient, DuckDB's ``/`` being a DOUBLE whatever its operands): a
rounding function on a value that is not a number would fail (BOOLEAN) or round text
Spark's cast refuses.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlglot.expressions as exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.optimizer.annotate_types import TypeAnnotator
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.schema import MappingSchema

from nbgov.errors import SqlError
from nbgov.sqlml.planning.prepared import INLINED_MODEL
from nbgov.sqlml.spark.arithmetic import integer_quotient, nan_remainder, text_as_number, whole_number
from nbgov.sqlml.spark.dialect import listed
from nbgov.sqlml.spark.slices import SLICED, slice_bounds

_DUCKDB = "duckdb"  # the trees are DuckDB SQL, typed as DuckDB types them
_TWIN = "nbgov_twin"  # meta key: a typed node's index among the translated copy's nodes
_GIVEN = "nbgov_type"  # meta key: the type of a ``$name`` value or a helper function's call

_INTEGERS = exp.DataType.INTEGER_TYPES - {exp.DType.BIT}
_BINARY_FLOATS = exp.DataType.FLOAT_TYPES  # FLOAT, DOUBLE
_DECIMALS = frozenset(
    {exp.DType.DECIMAL, exp.DType.DECIMAL32, exp.DType.DECIMAL64, exp.DType.DECIMAL128, exp.DType.DECIMAL256, exp.DType.BIGDECIMAL}
)
# The Spark function that rounds a number as DuckDB's cast of its type to an integer does.
_CAST_ROUNDING = {"binary": "BROUND", "decimal": "ROUND"}
# DuckDB's rounding to n places, half to even: Spark's BROUND (the dialect renames it)
_ROUND_EVEN = frozenset({"round_even", "roundbankers"})
# 10^n is a double exactly up to here: written as a literal, larger ones as POWER(10, n)
_EXACT_POWERS = 22
# Spark's nondeterministic functions: an argument holding one is not written twice
_RANDOM = (exp.Rand, exp.Randn, exp.Uuid)
_DOUBLE = exp.DataType.build("double")

TableTypes = Callable[[exp.Table], Mapping[str, str] | None]
# (relation, column), both lower-cased as sqlglot's DuckDB typing writes them -> the column's name
_Spellings = Mapping[tuple[str, str], str]


@dataclass(frozen=True)
class Inputs:
    """What a statement's text does not say about its types: the columns of a table it reads
    (DuckDB type names, None when the engine cannot describe it), the notebook values its
    ``$name`` parameters bind (only those are looked at), and the value types of nbgov's
    helper functions in it."""

    tables: TableTypes
    parameters: Mapping[str, Any] = field(default_factory=dict)
    functions: Mapping[str, str] = field(default_factory=dict)


def for_spark(tree: exp.Expr, inputs: Inputs) -> exp.Expr:
    """``tree`` with DuckDB's type-dependent meanings written as Spark needs them: a copy when
    any applies, else ``tree`` itself (nothing typed, nothing asked of the engine)."""
    if not any(_depends_on_types(node) for node in _written_by_user(tree)):
        return tree
    out, typed = tree.copy(), tree.copy()
    twins = list(out.walk())
    for position, node in enumerate(typed.walk()):
        node.meta[_TWIN] = position
    for model in [node for node in typed.walk() if node.meta.get(INLINED_MODEL) and not _inside_model(node)]:
        stand_in = exp.Anonymous(this="nbgov_inlined_model")  # typed as unknown: never rewritten, never slow to type
        stand_in.meta[_GIVEN] = exp.DataType.build("unknown")
        model.replace(stand_in)
    described = _Described()
    annotated = _annotate(typed, inputs, described)
    if annotated is not None:
        _rewrite(annotated, twins, described)
        _unions_by_name(annotated, twins, described)
        _hugeint_outputs(annotated, twins, described)
    _refuse_unexpanded(out)
    return out


def _written_by_user(tree: exp.Expr) -> Iterator[exp.Expr]:
    """The nodes of ``tree`` but those of models inlined as SQL (their own SQL needs no
    retyping, and typing thousands of tree nodes costs a query tens of milliseconds)."""
    return (node for node in tree.walk(prune=lambda node: bool(node.meta.get(INLINED_MODEL))) if not node.meta.get(INLINED_MODEL))


def _model_value(node: exp.Expr) -> bool:
    """Whether ``node`` is a model's SQL, a field or element of it, a NULL-guard CASE or
    cast around it, or arithmetic on one (a FLOAT or DOUBLE, whatever the other operand)."""
    if node.meta.get(INLINED_MODEL):
        return True
    if isinstance(node, (exp.Paren, exp.Cast, exp.Dot, exp.Bracket, exp.Neg)):
        return _model_value(node.this)
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
        return _model_value(node.this) or _model_value(node.expression)
    if isinstance(node, exp.Case):
        results = [when.args.get("true") for when in node.args.get("ifs") or []] + [node.args.get("default")]
        return all(result is None or isinstance(result, exp.Null) or _model_value(result) for result in results)
    return False


def _inside_model(node: exp.Expr) -> bool:
    parent = node.parent
    return parent is not None and bool(parent.meta.get(INLINED_MODEL))


@dataclass
class _Described:
    """The columns the engine described (DuckDB types, names as the engine spells them): per
    table as written, and per name the typed copy gives a table (``nbgov_typed_<i>``)."""

    by_text: dict[str, Mapping[str, str] | None] = field(default_factory=dict)
    by_name: dict[str, Mapping[str, str]] = field(default_factory=dict)


def _rewrite(typed: exp.Expr, twins: list[exp.Expr], described: _Described) -> None:
    """Rewrite each node of the translated copy (``twins``) by its typed twin in ``typed``
    (once each: sqlglot may copy a typed node where an alias is referred to)."""
    done: set[int] = set()
    for node in list(typed.walk()):
        index: int | None = node.meta.get(_TWIN)
        if index is None or index in done:
            continue
        done.add(index)
        if slice_bounds(node) is not None:
            _slice_kind(twins[index], node)
        elif isinstance(node, exp.Cast):
            _round_before_cast(twins[index], node)
        elif isinstance(node, exp.Length):
            _length(twins[index], node)
        elif _to_places(node) is not None:
            _round_in_binary(twins[index], node)
        elif isinstance(node, exp.Sub):
            _days_between(twins[index], node)
        elif isinstance(node, exp.Div):
            _double_quotient(twins[index], node)
        elif isinstance(node, exp.Avg):
            _double_average(twins[index], node)
        elif isinstance(node, exp.TimestampTrunc):
            _truncated_wall_clock(twins[index], node)
        elif isinstance(node, exp.Bracket):
            _element_or_null(twins[index], node)
        elif isinstance(node, exp.Mod):
            _remainder(twins[index], node)
        elif isinstance(node, exp.IntDiv):
            _integer_quotient(twins[index], node)
        elif isinstance(node, (exp.Ceil, exp.Floor)):
            _whole(twins[index], node)
        elif isinstance(node, exp.Trunc):
            _truncated(twins[index], node)
        elif isinstance(node, exp.Select) and _modified_stars(twins[index]):
            _expand_stars(twins[index], node, twins, _spellings(node, twins, described))


def _refuse_unexpanded(tree: exp.Expr) -> None:
    """A ``* REPLACE / RENAME / ILIKE`` left (its columns unknown) has no Spark form: one line
    that says so, not Spark's syntax error. ``* EXCLUDE`` left is Spark's ``* EXCEPT``."""
    for select in tree.find_all(exp.Select):
        if any(star.args.get(arg) for star in _modified_stars(select) for arg in ("replace", "rename", "ilike")):
            raise SqlError(
                "SELECT * REPLACE / RENAME / ILIKE is DuckDB-only on the spark engine where nbgov cannot tell the "
                "columns the star stands for; name the columns instead"
            )


def duckdb_type(spark_type: str) -> str:
    """A Spark type name (``simpleString``) as DuckDB's, ``UNKNOWN`` when sqlglot cannot read it."""
    try:
        return exp.DataType.build(spark_type, dialect="spark").sql(_DUCKDB)
    except Exception:  # a type sqlglot does not know: typed as unknown, kept as written
        return "UNKNOWN"


def _value_type(value: Any) -> str | None:
    """The DuckDB type a notebook value is bound as (numbers, text, times, lists of them);
    None for others."""
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, decimal.Decimal):
        return "DECIMAL(38, 10)"
    if isinstance(value, str):
        return "VARCHAR"
    if isinstance(value, datetime.datetime):
        return "TIMESTAMP" if value.tzinfo is None else "TIMESTAMPTZ"
    if isinstance(value, datetime.date):
        return "DATE"
    if isinstance(value, np.generic):
        return _value_type(value.item())
    items = listed(value)
    if items is None:
        return None
    kinds = {_value_type(item) for item in items if item is not None}  # a list: ``len($ids)`` is its size
    element = next(iter(kinds)) if len(kinds) == 1 else None
    return f"{element or 'UNKNOWN'}[]"


def _depends_on_types(node: exp.Expr) -> bool:
    """Whether DuckDB's meaning of ``node`` on Spark depends on types sqlglot must infer."""
    if isinstance(node, exp.Cast):
        return node.to.is_type(*_INTEGERS, *_DECIMALS) and not _integral(node.this)
    if isinstance(node, (exp.Sub, exp.Div, exp.Avg)):  # of dates or DECIMALs: not of a model's FLOAT scores
        return not any(_model_value(operand) for operand in (node.this, node.expression) if operand is not None)
    if slice_bounds(node) is not None or (isinstance(node, exp.SetOperation) and node.args.get("by_name")):
        return True  # a slice of a list or of a text; a UNION BY NAME's columns
    if isinstance(node, (exp.Length, exp.TimestampTrunc, exp.Mod, exp.IntDiv, exp.Trunc)) or _to_places(node) is not None:
        return True
    if isinstance(node, exp.Sum):  # of integers, shown: a HUGEINT
        return not _model_value(node.this)
    if isinstance(node, (exp.CountIf, exp.Factorial)):  # DuckDB's HUGEINTs (Spark: BIGINT)
        return True
    if isinstance(node, (exp.Ceil, exp.Floor)):  # to places, or of a model's FLOAT: Spark's as written
        return node.args.get("decimals") is None and not _model_value(node.this)
    if isinstance(node, exp.Bracket):  # of a list, past its end
        return _list_position(node) is not None and not _model_value(node.this)
    return isinstance(node, exp.Star) and _modified(node)


def _to_places(node: exp.Expr) -> tuple[exp.Expr, exp.Expr, bool] | None:
    """(value, places, half to even) of ``round(x, n)`` or ``round_even(x, n)``, else None."""
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        return node.this, node.args["decimals"], False
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in _ROUND_EVEN and len(node.expressions) == 2:
        return node.expressions[0], node.expressions[1], True
    return None


def _integral(node: exp.Expr) -> bool:
    """Whether ``node`` is an integer by its form alone (nbgov's own labels: integer
    literals, CASEs of them), so the statement need not be typed for its cast."""
    node = node.unnest()
    if isinstance(node, exp.Neg):
        return _integral(node.this)
    if isinstance(node, exp.Literal):
        return node.is_int
    if isinstance(node, exp.Case):
        results = [when.args.get("true") for when in node.args.get("ifs") or []] + [node.args.get("default")]
        return all(result is not None and _integral(result) for result in results)
    return False


def _modified(star: exp.Star) -> bool:
    return any(star.args.get(arg) for arg in ("except_", "replace", "rename", "ilike"))


def _modified_stars(select: exp.Expr) -> list[exp.Star]:
    """The ``* EXCLUDE/REPLACE/RENAME/ILIKE`` stars (also ``t.* ...``) among a SELECT's outputs."""
    stars = [p.this if isinstance(p, exp.Column) else p for p in select.expressions if p.is_star]
    return [star for star in stars if isinstance(star, exp.Star) and _modified(star)]


# --- typing ---------------------------------------------------------------------------------


def _annotate(tree: exp.Expr, inputs: Inputs, described: _Described) -> exp.Expr | None:
    """``tree`` typed (each top-level query in it qualified, then typed), or None when
    sqlglot cannot qualify or type it; ``described`` gets the columns of each table read."""
    try:
        for root in [q for q in tree.find_all(exp.Query) if q.find_ancestor(exp.Query) is None]:
            tables: dict[str, object] = dict(_named_tables(root, inputs, described))
            schema = MappingSchema(tables, dialect=_DUCKDB)
            qualified = qualify(
                root, dialect=_DUCKDB, schema=schema, validate_qualify_columns=False, quote_identifiers=False, identify=False
            )
            if qualified is not root and root is tree:
                tree = qualified
            elif qualified is not root:
                root.replace(qualified)
            for node in qualified.walk():
                kind = _given_type(node, inputs)
                if kind is not None:
                    node.meta[_GIVEN] = exp.DataType.build(kind, dialect=_DUCKDB)
            _DuckDBTypes(schema, expression_metadata=_TYPING).annotate(qualified)
    except Exception:  # sqlglot cannot qualify or type this statement: nothing is known
        return None
    return tree


def _named_tables(root: exp.Expr, inputs: Inputs, described: _Described) -> dict[str, Mapping[str, str]]:
    """Each table ``root`` reads renamed ``nbgov_typed_<i>`` (its alias kept, or its name as
    one), so one flat schema holds them whatever their path: that schema."""
    schema: dict[str, Mapping[str, str]] = {}
    tables = [s for scope in traverse_scope(root) for s in scope.sources.values() if isinstance(s, exp.Table)]
    for table in tables:
        bare = table.copy()
        bare.set("alias", None)
        key = bare.sql(_DUCKDB)
        if key not in described.by_text:
            described.by_text[key] = inputs.tables(bare)
        columns = described.by_text[key]
        if columns is None:
            continue
        name = f"nbgov_typed_{len(described.by_name)}"
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name or name)))
        for part in ("db", "catalog"):
            table.set(part, None)
        table.set("this", exp.to_identifier(name))
        schema[name] = described.by_name[name] = columns
    return schema


def _given_type(node: exp.Expr, inputs: Inputs) -> str | None:
    """The type of a ``$name`` value or a call of one of nbgov's helper functions."""
    if isinstance(node, (exp.Placeholder, exp.Parameter)):
        return _value_type(inputs.parameters[node.name]) if node.name in inputs.parameters else None
    if isinstance(node, exp.Anonymous):
        return inputs.functions.get(str(node.this))
    return None


class _DuckDBTypes(TypeAnnotator):
    """sqlglot's typing where DuckDB's differs in what a cast rounds: a DECIMAL combined with
    a FLOAT or DOUBLE is that binary float (sqlglot keeps a DECIMAL with a precision); and
    in what it shows: an integer combined with a HUGEINT is a HUGEINT."""

    def _maybe_coerce(
        self, type1: exp.DataType | exp.DType, type2: exp.DataType | exp.DType
    ) -> exp.DataType | exp.DType:
        kinds = [kind.this if isinstance(kind, exp.DataType) else kind for kind in (type1, type2)]
        if exp.DType.INT128 in kinds and all(kind in _INTEGERS for kind in kinds):
            return exp.DType.INT128  # any integer with a HUGEINT (sqlglot: BIGINT's side wins)
        if any(kind in _DECIMALS for kind in kinds):
            for binary in (exp.DType.DOUBLE, exp.DType.FLOAT):
                if binary in kinds:
                    return binary
        return super()._maybe_coerce(type1, type2)


def _given(otherwise: Callable[[TypeAnnotator, Any], Any] | None) -> dict[str, Any]:
    """Typing that takes a ``$name``'s or a helper function's type from ``_GIVEN``."""

    def annotate(annotator: TypeAnnotator, node: exp.Expr) -> exp.Expr:
        given = node.meta.get(_GIVEN)
        if given is not None:
            return annotator._set_type(node, given)
        if otherwise is not None:
            return otherwise(annotator, node)
        return annotator._set_type(node, exp.DType.UNKNOWN)

    return {"annotator": annotate}


def _literal(annotator: TypeAnnotator, literal: exp.Literal) -> exp.Literal:
    """DuckDB's ``2.5`` is a DECIMAL(2,1) (sqlglot: DOUBLE); with an exponent, a DOUBLE."""
    annotator._annotate_literal(literal)
    text = literal.name
    if literal.is_string or literal.is_int or "e" in text.lower():
        return literal
    whole, _, fraction = text.lstrip("+-").partition(".")
    precision = max(len(whole.lstrip("0")) + len(fraction), len(fraction), 1)
    if precision <= 38:
        annotator._set_type(literal, exp.DataType.build(f"DECIMAL({precision}, {len(fraction)})"))
    return literal


def _div(annotator: TypeAnnotator, div: exp.Div) -> exp.Div:
    """DuckDB's ``/`` of numbers is a DOUBLE, DECIMALs too (sqlglot: a DECIMAL)."""
    annotator._annotate_div(div)
    numbers = _number_kind(div.left.type) not in {None, "other"} and _number_kind(div.right.type) not in {None, "other"}
    if numbers and not div.args.get("typed"):
        annotator._set_type(div, exp.DType.DOUBLE)
    return div


def _sum(annotator: TypeAnnotator, node: exp.Sum) -> exp.Sum:
    """DuckDB's ``sum`` of integers is a HUGEINT (sqlglot: the integers' type), so what is
    computed from it is one too (``sum(x) + 1``, a CTE's column read outside it)."""
    annotator._annotate_by_args(node, "this", "expressions", promote=True)
    argument = node.this.expressions[0] if isinstance(node.this, exp.Distinct) and node.this.expressions else node.this
    if _number_kind(argument.type) == "integer":
        annotator._set_type(node, exp.DType.INT128)
    return node


def _concatenated(annotator: TypeAnnotator, node: exp.DPipe) -> exp.DPipe:
    """DuckDB's ``a || b`` of lists is a list (sqlglot: always text)."""
    listed_side = next((side.type for side in (node.left, node.right) if side.type is not None and side.type.is_type(exp.DType.ARRAY)), None)
    annotator._set_type(node, listed_side if listed_side is not None else exp.DType.VARCHAR)
    return node


def _same_number(annotator: TypeAnnotator, node: exp.Expr, otherwise: exp.DType) -> exp.Expr:
    """A number of its argument's type (DuckDB's ``round(d, 1)`` of a DECIMAL is a DECIMAL;
    sqlglot: a DOUBLE), ``otherwise`` for the rest."""
    kind = node.this.type
    if isinstance(node.parent, exp.WithinGroup):  # ``this`` is the fraction; sqlglot's type stands
        annotator._set_type(node, exp.DType.DOUBLE if otherwise is exp.DType.DOUBLE else exp.DType.UNKNOWN)
    elif _number_kind(kind) in {"decimal", "binary"} or (otherwise is exp.DType.UNKNOWN and _number_kind(kind) == "integer"):
        annotator._set_type(node, kind)
    else:
        annotator._set_type(node, otherwise)
    return node


def _typing() -> dict[type[exp.Expr], dict[str, Any]]:
    """sqlglot's DuckDB typing with DuckDB's rules for decimal literals, ``/``, ``round`` of a
    DECIMAL, and medians and quantiles (DOUBLEs, or the DECIMAL they read; a discrete one
    the value it picks)."""
    base: dict[type[exp.Expr], dict[str, Any]] = dict(Dialect.get_or_raise(_DUCKDB).EXPRESSION_METADATA)
    continuous: dict[str, Any] = {"annotator": lambda a, e: _same_number(a, e, exp.DType.DOUBLE)}
    discrete: dict[str, Any] = {"annotator": lambda a, e: _same_number(a, e, exp.DType.UNKNOWN)}
    return {
        **base,
        exp.Placeholder: _given(None),
        exp.Parameter: _given(None),
        exp.Anonymous: _given(base.get(exp.Anonymous, {}).get("annotator")),
        exp.Literal: {"annotator": _literal},
        exp.Div: {"annotator": _div},
        exp.Sum: {"annotator": _sum},
        exp.DPipe: {"annotator": _concatenated},
        exp.Round: continuous,
        exp.Median: continuous,
        exp.PercentileCont: continuous,
        exp.PercentileDisc: discrete,
        exp.Quantile: discrete,  # DuckDB's quantile(x, q) is quantile_disc
    }


_TYPING = _typing()


def _number_kind(kind: exp.DataType | None) -> str | None:
    """``binary`` (FLOAT, DOUBLE), ``decimal``, ``integer``, ``other``; None: unknown."""
    if kind is None or kind.is_type(exp.DType.UNKNOWN):
        return None
    if kind.is_type(*_BINARY_FLOATS):
        return "binary"
    if kind.is_type(*_DECIMALS):
        return "decimal"
    if kind.is_type(*_INTEGERS):
        return "integer"
    return "other"


# --- rewrites of the translated copy ---------------------------------------------------------


def _round_before_cast(cast: exp.Expr, typed: exp.Cast) -> None:
    """DuckDB's cast of a DOUBLE/FLOAT (half to even) or DECIMAL (half away from zero) to an
    integer type, where Spark's would truncate; of a DOUBLE to a DECIMAL, which DuckDB rounds
    as ``x * 10^scale`` in binary (1.005 at scale 2: 100.49999999999999, so 1.00) and Spark
    as the decimal text of x (1.01)."""
    if not isinstance(cast, exp.Cast):
        return
    kind = _number_kind(typed.this.type)
    if typed.to.is_type(*_INTEGERS):
        rounding = _CAST_ROUNDING.get(kind or "")
        if rounding is not None:
            cast.set("this", exp.Anonymous(this=rounding, expressions=[cast.this]))
        elif typed.this.type is not None and typed.this.type.is_type(*exp.DataType.TEXT_TYPES):
            cast.set("this", text_as_number(cast))
    elif typed.to.is_type(*_DECIMALS) and typed.this.is_type(exp.DType.DOUBLE):
        power = exp.Anonymous(this="POWER", expressions=[exp.Literal.number(10), exp.Literal.number(_scale(typed.to))])
        scaled = exp.Anonymous(this="ROUND", expressions=[exp.Mul(this=exp.paren(cast.this, copy=False), expression=power)])
        cast.set("this", exp.Div(this=scaled, expression=power.copy()))  # a DOUBLE whose text is the decimal


def _round_in_binary(node: exp.Expr, typed: exp.Expr) -> None:
    """DuckDB's ``round(x, n)`` / ``round_even(x, n)`` of a DOUBLE or FLOAT: the exact value
    of ``x`` rounded at ``n`` places (2.675 is 2.67499999999999982..., so 2.67), ``x`` itself
    where scaling it overflows, in FLOAT for a FLOAT. Spark rounds the shortest decimal text
    of ``x`` (2.68). An argument holding a random function keeps Spark's meaning (it would
    be drawn once per use)."""
    found, parts = _to_places(node), _to_places(typed)
    if found is None or parts is None or _number_kind(parts[0].type) != "binary":
        return
    value, places, half_even = found
    if value.find(*_RANDOM) is not None or places.find(*_RANDOM) is not None:
        return
    single = parts[0].type is not None and parts[0].type.is_type(exp.DType.FLOAT)
    x: exp.Expr = exp.paren(value.copy(), copy=False)
    if single:
        x = exp.cast(x, _DOUBLE)
    if isinstance(places, exp.Literal) and places.is_int and abs(int(places.name)) <= _EXACT_POWERS:
        digits = int(places.name)
        power = exp.cast(exp.Literal.number(10 ** abs(digits)), _DOUBLE)
        rounded = _exactly_rounded(x, power, digits >= 0, half_even)
    else:
        n = exp.paren(places.copy(), copy=False)
        below = _exactly_rounded(x, _power_of_ten(exp.Neg(this=n.copy())), False, half_even)
        rounded = exp.Case(ifs=[exp.If(this=exp.LT(this=n.copy(), expression=exp.Literal.number(0)), true=below)],
                           default=_exactly_rounded(x, _power_of_ten(n), True, half_even))
    infinite = exp.cast(exp.Literal.string("Infinity"), _DOUBLE)
    overflow = exp.Or(
        this=exp.Anonymous(this="ISNAN", expressions=[rounded.copy()]),
        expression=exp.EQ(this=exp.Abs(this=rounded.copy()), expression=infinite),
    )
    result: exp.Expr = exp.Case(ifs=[exp.If(this=overflow, true=x.copy())], default=rounded)
    node.replace(exp.cast(result, exp.DataType.build("float")) if single else result)


def _days_between(sub: exp.Expr, typed: exp.Sub) -> None:
    """DuckDB's ``date - date`` is a BIGINT of days (Spark's an interval)."""
    dates = [side.type is not None and side.type.is_type(exp.DType.DATE) for side in (typed.this, typed.expression)]
    if isinstance(sub, exp.Sub) and all(dates):
        days = exp.Anonymous(this="DATEDIFF", expressions=[sub.this.copy(), sub.expression.copy()])
        sub.replace(exp.cast(days, exp.DataType.build("bigint")))


def _double_quotient(div: exp.Expr, typed: exp.Div) -> None:
    """DuckDB's ``/`` of a DECIMAL is a DOUBLE (``2.00 / 3`` is 0.6666666666666666), Spark's
    a DECIMAL of six places (0.666667): the dividend is made a DOUBLE first, as DuckDB does."""
    kinds = {_number_kind(side.type) for side in (typed.this, typed.expression)}
    if isinstance(div, exp.Div) and not div.args.get("typed") and "decimal" in kinds and kinds <= {"decimal", "integer", "binary"}:
        div.set("this", exp.cast(exp.paren(div.this.copy(), copy=False), _DOUBLE))


def _double_average(avg: exp.Expr, typed: exp.Avg) -> None:
    """DuckDB's ``avg`` of a DECIMAL is a DOUBLE; Spark's a DECIMAL of a few more places
    (Python ``Decimal`` values, 1.66667 for 5/3): the values are averaged as DOUBLEs."""
    if isinstance(avg, exp.Avg) and _number_kind(typed.this.type) == "decimal":
        argument = avg.this
        if isinstance(argument, exp.Distinct):
            argument.set("expressions", [exp.cast(value.copy(), _DOUBLE) for value in argument.expressions])
        else:
            avg.set("this", exp.cast(argument.copy(), _DOUBLE))


def _list_position(bracket: exp.Bracket) -> int | None:
    """The 1-based position ``list[k]`` reads, for a literal ``k`` of 1 or more (sqlglot holds
    DuckDB's ``[1]`` as ``[0]``), else None."""
    index = bracket.expressions
    if len(index) == 1 and isinstance(index[0], exp.Literal) and index[0].is_int and int(index[0].name) >= 0:
        return int(index[0].name) + 1
    return None


def _slice_kind(node: exp.Expr, typed: exp.Expr) -> None:
    """Mark a slice of a list or of a text as such: the dialect writes each (``slices.py``)."""
    bounds = slice_bounds(typed)
    kind = bounds[0].type if bounds is not None else None
    if kind is not None and kind.is_type(exp.DType.ARRAY):
        node.meta[SLICED] = "list"
    elif kind is not None and kind.is_type(*exp.DataType.TEXT_TYPES):
        node.meta[SLICED] = "text"


def _element_or_null(bracket: exp.Expr, typed: exp.Bracket) -> None:
    """DuckDB's ``list[k]`` past the end of the list is NULL; Spark's ``[]`` fails the query
    (``tags[1]`` over a column with empty lists): a list's element is read with
    ``try_element_at``."""
    position = _list_position(typed)
    kind = typed.this.type
    if isinstance(bracket, exp.Bracket) and position is not None and kind is not None and kind.is_type(exp.DType.ARRAY):
        bracket.replace(exp.Anonymous(this="TRY_ELEMENT_AT", expressions=[bracket.this.copy(), exp.Literal.number(position)]))


def _remainder(mod: exp.Expr, typed: exp.Mod) -> None:
    """DuckDB's ``x % 0`` of a DOUBLE or FLOAT is NaN; Spark's fails (integers fail on both)."""
    kinds = {_number_kind(side.type) for side in (typed.this, typed.expression)}
    if isinstance(mod, exp.Mod) and "binary" in kinds:
        replaced = nan_remainder(mod.copy())
        if replaced is not None:
            mod.replace(replaced)


def _integer_quotient(node: exp.Expr, typed: exp.IntDiv) -> None:
    """DuckDB's ``x // y``: of integers in the wider one's type (Spark's ``div``: BIGINT), of
    DOUBLEs, FLOATs and DECIMALs their ``/`` (Spark's ``div`` refuses them)."""
    left, right = typed.this.type, typed.expression.type
    if isinstance(node, exp.IntDiv) and left is not None and right is not None:
        replaced = integer_quotient(node, left, right)
        if replaced is not None:
            node.replace(replaced)


def _whole(node: exp.Expr, typed: exp.Ceil | exp.Floor) -> None:
    """DuckDB's ``ceil`` / ``floor`` of an integer or DOUBLE is a DOUBLE, of a FLOAT a FLOAT;
    Spark's a BIGINT (an int64 column, and an overflow past 2^63)."""
    kind = _number_kind(typed.this.type)
    if isinstance(node, (exp.Ceil, exp.Floor)) and node.args.get("decimals") is None and kind in {"binary", "integer"}:
        single = typed.this.type is not None and typed.this.type.is_type(exp.DType.FLOAT)
        node.replace(whole_number(node, single, kind == "integer"))


def _truncated(node: exp.Expr, typed: exp.Trunc) -> None:
    """DuckDB's ``trunc(x)`` of a DOUBLE is a DOUBLE (of a FLOAT a FLOAT, of an integer the
    integer), whole toward zero; sqlglot's Spark casts it to a BIGINT (int64, and an error
    for infinities and NaN)."""
    kind = _number_kind(typed.this.type)
    if not isinstance(node, exp.Trunc) or node.args.get("decimals") is not None or kind not in {"binary", "integer"}:
        return
    if kind == "integer" or node.this.find(*_RANDOM) is not None:
        if kind == "integer":
            node.replace(exp.paren(node.this.copy(), copy=False))
        return
    single = typed.this.type is not None and typed.this.type.is_type(exp.DType.FLOAT)
    toward_zero = exp.Case(
        ifs=[exp.If(this=exp.LT(this=node.this.copy(), expression=exp.Literal.number(0)),
                    true=whole_number(exp.Ceil(this=node.this.copy()), single, False))],
        default=whole_number(exp.Floor(this=node.this.copy()), single, False),
    )
    node.replace(toward_zero)


def _hugeint_outputs(typed: exp.Expr, twins: list[exp.Expr], described: _Described) -> None:
    """A result column DuckDB types HUGEINT (a ``sum`` of integers, or anything computed
    from one: ``sum(x) + 1``, a CTE's or subquery's sum read by the outer query), which the
    DuckDB engine's frame holds as float64 (Spark's BIGINT came back as int64), is made a
    DOUBLE where it is shown, never inside the query, where DuckDB computes with the
    integer. A star that stands for such a column is expanded first, so that it can be cast."""
    for select in _outermost_selects(typed):
        twin = twins[select.meta[_TWIN]] if _TWIN in select.meta else None
        if not isinstance(twin, exp.Select):
            continue
        huge = [i for i, projection in enumerate(select.expressions) if _hugeint(projection.type)]
        if huge and len(twin.expressions) != len(select.expressions) and not _modified_stars(twin):
            _expand_stars(twin, select, twins, _spellings(select, twins, described))
        if not huge or len(twin.expressions) != len(select.expressions):
            continue  # a star not expanded: its columns keep Spark's type
        for i in huge:
            shown = twin.expressions[i]
            value = shown.this if isinstance(shown, exp.Alias) else shown
            doubled = exp.cast(value.copy(), _DOUBLE)
            if isinstance(shown, exp.Alias):
                value.replace(doubled)
            elif isinstance(shown, exp.Column) and isinstance(shown.this, exp.Identifier):
                shown.replace(exp.alias_(doubled, shown.this.copy()))  # named as before, quoted as written
            else:
                shown.replace(doubled)


def _unions_by_name(typed: exp.Expr, twins: list[exp.Expr], described: _Described) -> None:
    """DuckDB's ``UNION [ALL] BY NAME`` (Spark has none: a syntax error) as a UNION of each
    side's columns by name: the left side's names in order, then the right side's others,
    matched ignoring case, NULL where a side lacks one. Innermost first, so a union by name
    on a side is already one of its merged columns."""
    for node in reversed(list(typed.find_all(exp.Union))):
        twin = twins[node.meta[_TWIN]] if node.args.get("by_name") and _TWIN in node.meta else None
        if not isinstance(twin, exp.SetOperation):
            continue
        sides = [(twin.this, node.this), (twin.expression, node.expression)]
        for side, typed_side in sides:
            if isinstance(side, exp.Select) and isinstance(typed_side, exp.Select) and len(side.expressions) != len(typed_side.expressions):
                _expand_stars(side, typed_side, twins, _spellings(typed_side, twins, described))
        left, right = (_output_names(side) for side, _ in sides)
        merged = left + [name for name in right if name.lower() not in {known.lower() for known in left}]
        for position, (side, _) in enumerate(sides):
            names = {name.lower(): name for name in (left, right)[position]}
            columns = [
                exp.column(exp.to_identifier(names[name.lower()], quoted=True)) if name.lower() in names
                else exp.alias_(exp.null(), exp.to_identifier(name, quoted=True))
                for name in merged
            ]
            relation = exp.Subquery(this=side.copy(), alias=exp.TableAlias(this=exp.to_identifier(f"nbgov_by_name_{position}")))
            side.replace(exp.select(*columns).from_(relation))
        twin.set("by_name", None)


def _output_names(query: exp.Expr) -> list[str]:
    """The column names a query's result has, as written; an unnamed expression or a star
    (its columns unknown) fails in one line."""
    select = query
    while isinstance(select, exp.SetOperation):
        select = select.this
    if isinstance(select, exp.Subquery):
        select = select.this
        return _output_names(select)
    if not isinstance(select, exp.Select) or any(p.is_star or not p.alias_or_name for p in select.expressions):
        raise SqlError("UNION BY NAME needs each side's columns named (AS name) on the spark engine, and known for a *")
    return [p.alias_or_name for p in select.expressions]


def _hugeint(kind: exp.DataType | None) -> bool:
    return kind is not None and kind.is_type(exp.DType.INT128)


def _outermost_selects(tree: exp.Expr) -> Iterator[exp.Select]:
    """The SELECTs whose outputs are the statement's result (each side of a UNION)."""
    if isinstance(tree, exp.Select):
        yield tree
    elif isinstance(tree, exp.SetOperation):
        yield from _outermost_selects(tree.this)
        yield from _outermost_selects(tree.expression)
    elif isinstance(tree, exp.Subquery):
        yield from _outermost_selects(tree.this)


def _truncated_wall_clock(trunc: exp.Expr, typed: exp.TimestampTrunc) -> None:
    """DuckDB's ``date_trunc`` of a DATE or TIMESTAMP is a TIMESTAMP, a wall-clock time;
    Spark's an instant (read in the session's zone, UTC)."""
    kind = typed.this.type
    if isinstance(trunc, exp.TimestampTrunc) and kind is not None and kind.is_type(exp.DType.DATE, exp.DType.TIMESTAMP, exp.DType.TIMESTAMPNTZ):
        trunc.replace(exp.cast(trunc.copy(), exp.DataType.build("timestamp_ntz")))


def _power_of_ten(n: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this="POWER", expressions=[exp.Literal.number(10), n])


def _exactly_rounded(x: exp.Expr, power: exp.Expr, up: bool, half_even: bool) -> exp.Expr:
    """``x * power`` (``up``) or ``x / power`` rounded to a whole number as its exact value
    is, then scaled back. Rounded to a double, the scaled value may land on a tie (k.5)
    that the exact one is beside: then Java's ``Math.fma`` gives the exact error of the
    double (``x*p - y``, or ``x - y*p``), whose sign says to which side the tie breaks. Off
    a tie, the double and the exact value round alike."""
    y = exp.Mul(this=x.copy(), expression=power.copy()) if up else exp.Div(this=x.copy(), expression=power.copy())
    fma = [x.copy(), power.copy(), exp.Neg(this=exp.paren(y.copy(), copy=False))] if up else [
        exp.Neg(this=exp.paren(y.copy(), copy=False)), power.copy(), x.copy()]
    error = exp.cast(exp.Anonymous(this="REFLECT", expressions=[exp.Literal.string("java.lang.Math"), exp.Literal.string("fma"), *fma]), _DOUBLE)
    magnitude = exp.Abs(this=y.copy())
    nearest = exp.Anonymous(this="BROUND" if half_even else "ROUND", expressions=[y.copy()])
    away = exp.EQ(this=exp.paren(exp.GT(this=error.copy(), expression=exp.Literal.number(0)), copy=False),
                  expression=exp.paren(exp.GT(this=y.copy(), expression=exp.Literal.number(0)), copy=False))
    sign = exp.Anonymous(this="SIGN", expressions=[y.copy()])
    beside_tie = exp.Case(
        ifs=[
            exp.If(this=exp.EQ(this=error, expression=exp.Literal.number(0)), true=nearest.copy()),
            exp.If(this=away, true=exp.Mul(this=sign.copy(), expression=exp.Ceil(this=magnitude.copy()))),
        ],
        default=exp.Mul(this=sign, expression=exp.Floor(this=magnitude.copy())),
    )
    tie = exp.EQ(this=exp.Mod(this=magnitude, expression=exp.Literal.number(1)), expression=exp.Literal.number(0.5))
    whole = exp.Case(ifs=[exp.If(this=tie, true=beside_tie)], default=nearest)
    return exp.Div(this=exp.paren(whole, copy=False), expression=power.copy()) if up else exp.Mul(
        this=exp.paren(whole, copy=False), expression=power.copy())


def _scale(decimal_type: exp.DataType) -> int:
    """The scale of a DECIMAL type as DuckDB reads it (a bare DECIMAL is DECIMAL(18, 3))."""
    parameters = decimal_type.expressions
    if not parameters:
        return 3
    return int(parameters[1].name) if len(parameters) > 1 else 0


def _length(length: exp.Expr, typed: exp.Length) -> None:
    """DuckDB's ``len``/``length``: a list's size or a text's length, a BIGINT."""
    kind = typed.this.type
    if not isinstance(length, exp.Length) or kind is None or kind.is_type(exp.DType.UNKNOWN):
        return
    counted: exp.Expr = length.copy()
    if kind.is_type(exp.DType.ARRAY):
        counted = exp.Anonymous(this="ARRAY_SIZE", expressions=[length.this.copy()])  # NULL for NULL, as DuckDB
    length.replace(exp.cast(counted, exp.DataType.build("bigint")))


def _expand_stars(select: exp.Expr, typed: exp.Select, twins: list[exp.Expr], spellings: _Spellings) -> None:
    """``select``'s outputs as the columns sqlglot expanded the typed copy's stars into:
    each column by its relation's name (a derived table sqlglot named gets that name), a
    USING column by its own name, the REPLACE expressions and RENAME names as written;
    names spelled as the results spell them (Spark names a column as it is referred to)."""
    renames = {
        rename.alias.lower(): rename for star in _modified_stars(select) for rename in star.args.get("rename") or []
    }
    for source in _sources(typed):
        twin = twins[source.meta[_TWIN]] if _TWIN in source.meta else None
        if isinstance(twin, (exp.Table, exp.Subquery)) and not twin.alias and source.args.get("alias"):
            twin.set("alias", source.args["alias"].copy())
    outputs: list[exp.Expr] = []
    for projection in typed.expressions:
        written = _written(projection, twins)
        if written is not None:
            outputs.append(written)
            continue
        value = projection.this if isinstance(projection, exp.Alias) else projection
        name = projection.alias_or_name
        if isinstance(value, exp.Column) and value.name.lower() != name.lower() and name.lower() in renames:
            renamed = renames[name.lower()]
            outputs.append(exp.alias_(_column(value, spellings), renamed.args["alias"].copy()))
        elif isinstance(value, exp.Column):
            outputs.append(_column(value, spellings))
        else:  # a USING column: COALESCE of both sides, named as the first side names it
            first = value.this if isinstance(value.this, exp.Column) else exp.column(name)
            outputs.append(exp.column(exp.to_identifier(spellings.get((first.table.lower(), name.lower()), name))))
    select.set("expressions", outputs)


def _column(typed: exp.Column, spellings: _Spellings) -> exp.Column:
    """A reference to the typed copy's column ``typed`` by its relation's name, quoted where
    its name needs it (Spark resolves names ignoring case, as DuckDB does)."""
    table = typed.text("table")
    name = spellings.get((table.lower(), typed.name.lower()), typed.name)
    return exp.column(exp.to_identifier(name), table=exp.to_identifier(table) if table else None)



def _spellings(select: exp.Select, twins: list[exp.Expr], described: _Described) -> dict[tuple[str, str], str]:
    """The names of the columns of each relation a typed SELECT reads as the results spell
    them (sqlglot's DuckDB typing lower-cases every name; Spark names a column as it is
    referred to): a table's as the engine describes it, a derived table's or a CTE's as its
    query names them."""
    spellings: dict[tuple[str, str], str] = {}
    for source in _sources(select):
        names: list[str] = []
        twin = twins[source.meta[_TWIN]] if _TWIN in source.meta else None
        if isinstance(source, exp.Table) and source.name in described.by_name:
            names = list(described.by_name[source.name])
        elif isinstance(twin, exp.Subquery):
            names = twin.this.named_selects
        elif isinstance(twin, exp.Table):
            ctes = [cte for cte in twin.root().find_all(exp.CTE) if cte.alias_or_name.lower() == twin.name.lower()]
            names = ctes[0].this.named_selects if ctes else []
        spellings.update({(source.alias_or_name.lower(), name.lower()): name for name in names if name != "*"})
    return spellings


def _written(projection: exp.Expr, twins: list[exp.Expr]) -> exp.Expr | None:
    """The user's own output behind a typed one (a projection as written, or a REPLACE
    expression), None for a column a star stood for."""
    if _TWIN in projection.meta:
        return twins[projection.meta[_TWIN]]
    inner = projection.this if isinstance(projection, exp.Alias) else None  # named by sqlglot
    if inner is not None and _TWIN in inner.meta and not inner.is_star:
        return twins[inner.meta[_TWIN]]
    return None


def _sources(select: exp.Select) -> Iterator[exp.Expr]:
    """The relations of a SELECT's FROM and JOINs."""
    found = select.args.get("from_") or select.args.get("from")
    if found is not None:
        yield found.this
    for join in select.args.get("joins") or []:
        yield join.this
