"""What compile hands to an executor: a ``Prepared`` statement.

It says everything about running the statement and nothing about any one engine: the
final SQL as a sqlglot tree (each executor generates its own dialect), the steps that
run before it (score a relation with a model plan and make it a table; make a model
plan callable as a scalar function), the EXPLAIN notes, the lineage activity, and the
questions compile asked the engine (so a cached plan can be checked for reuse).
Trees held here are never changed after compile: executors only read them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import sqlglot.expressions as exp

from nbgov.errors import SqlmlError
from nbgov.sqlml.activity import Activity
from nbgov.sqlml.models.onnxtypes import duckdb_scalar_type, output_duckdb_type, value_duckdb_type
from nbgov.sqlml.plan import OnnxPlan, TensorSpec
from nbgov.sqlml.sql.parse import parse
from nbgov.sqlml.sql.quoting import quote_ident

DEFAULT_BATCH_ROWS = 65_536
Marked = TypeVar("Marked", bound=exp.Expr)
# a table name no statement can hold: where a step's table is read, in a template (Query.sql_reading)
_SOURCE_MARK = f"nbgov_source_{uuid.uuid4().hex}_"
# meta key on every node of a model inlined as SQL: engines that retype the statement
# (Spark's ``typed.py``) leave the model's own SQL as written
INLINED_MODEL = "nbgov_inlined_model"


def marked_inlined(expression: Marked) -> Marked:
    """``expression`` (a model's SQL form) with every node marked as the model's."""
    for node in expression.walk():
        node.meta[INLINED_MODEL] = True
    return expression


@dataclass(frozen=True)
class Settings:
    """How a statement is compiled (part of the plan cache key)."""

    optimize: bool = True
    batch_rows: int = DEFAULT_BATCH_ROWS  # rows per Arrow batch when a relation is scored
    threads: int = 1  # scoring threads (for the notes)
    # no collation anywhere (no default, no COLLATE in a table or view): DuckDB's string
    # comparisons are byte for byte, so ``plan = 'gold'`` proves which category plan holds
    exact_strings: bool = False


@dataclass(frozen=True)
class Query:
    """SQL to run: a sqlglot tree, or (``tree`` None) text nbgov did not rewrite, which
    DuckDB reads byte for byte and other engines transpile from DuckDB's dialect."""

    tree: exp.Expression | None = None
    text: str | None = None
    _rendered: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _templates: dict[tuple[str, tuple[str, ...]], list[tuple[int, str]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def sql(self, dialect: str = "duckdb") -> str:
        """The SQL in ``dialect``, generated once per dialect."""
        rendered = self._rendered.get(dialect)
        if rendered is None:
            if self.tree is None and dialect == "duckdb":
                rendered = self.text or ""
            else:
                tree = self.tree if self.tree is not None else parse(self.text or "")
                if tree is None:
                    raise SqlmlError(f"cannot translate this statement to {dialect}: nbgov could not parse it")
                rendered = tree.sql(dialect=dialect)
            self._rendered[dialect] = rendered
        return rendered

    def sql_reading(self, dialect: str, tables: Mapping[str, str]) -> str:
        """The SQL with each table named in ``tables`` read from the engine name it maps to
        (still known by its own name, as an alias). The text around those names is
        generated once; each run only joins it with the names of that run."""
        names = tuple(sorted(tables))
        template = self._templates.get((dialect, names))
        if template is None:
            template = self._template(dialect, names)
            self._templates[(dialect, names)] = template
        parts = [template[0][1]]
        for index, piece in template[1:]:
            parts += [quote_ident(tables[names[index]]), piece]
        return "".join(parts)

    def _template(self, dialect: str, names: tuple[str, ...]) -> list[tuple[int, str]]:
        """The SQL split where it reads the tables ``names``: [(-1, head), (name index, text after)...]."""
        assert self.tree is not None, "SQL kept as text reads the scored tables by their own names"
        marked = self.tree.copy()
        for table in marked.find_all(exp.Table):
            if table.name in names and not table.args.get("db") and isinstance(table.this, exp.Identifier):
                if not table.alias:
                    table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
                table.set("this", exp.to_identifier(f"{_SOURCE_MARK}{names.index(table.name)}", quoted=True))
        head, *rest = marked.sql(dialect=dialect).split(f'"{_SOURCE_MARK}')
        template = [(-1, head)]
        for piece in rest:
            index, after = piece.split('"', 1)
            template.append((int(index), after))
        return template


@dataclass(frozen=True)
class Pick:
    """One result column of a scoring job: the predict value (``output`` None: the single
    output, or a STRUCT of all of them), one output, or one element of an ``[N, k]`` output
    (``element`` is 0-based)."""

    column: str
    output: str | None = None
    element: int | None = None

    def describe(self) -> str:
        return f"{self.output}" + ("" if self.element is None else f"[{self.element + 1}]")

    def duckdb_type(self, outputs: Sequence[TensorSpec]) -> str:
        """The column's type: predict's value type, the output's, or its element's."""
        if self.output is None:
            return value_duckdb_type(outputs)
        spec = next(o for o in outputs if o.name == self.output)
        return output_duckdb_type(spec) if self.element is None else duckdb_scalar_type(spec.elem_type)


@dataclass(frozen=True)
class ScoringJob:
    """Score ``plan`` on the relation's ``arguments`` columns (in the order of the plan's
    inputs) and append the ``picks`` as columns. ``regions``: rows of a tree-only model
    that share a decision region are scored once (off with --no-optimize)."""

    plan: OnnxPlan
    outputs: tuple[TensorSpec, ...]  # the model's outputs, as declared
    arguments: tuple[str, ...]
    picks: tuple[Pick, ...]
    label: str  # for notes and errors, e.g. "predict(churn@1)"
    expected: str  # the model's signature, for error messages
    regions: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(pick.column for pick in self.picks)

    @property
    def wanted(self) -> tuple[str, ...] | None:
        """The outputs to compute (None: all of them)."""
        if any(pick.output is None for pick in self.picks):
            return None
        read = {pick.output for pick in self.picks}
        return tuple(o.name for o in self.outputs if o.name in read)


@dataclass(frozen=True)
class ScoreRelation:
    """Before the final SQL: score the rows of ``query`` with ``jobs`` and make the result
    (helper columns ``drop`` removed) a table named ``name``. ``stand_in`` has the same
    columns and types and no rows: what compile describes and EXPLAIN plans with."""

    name: str
    query: Query
    jobs: tuple[ScoringJob, ...]
    drop: frozenset[str]
    label: str  # "scoring: predict(m@1)" or "ML.PREDICT(MODEL m@1)": run notes and progress
    stand_in: Query
    # every row scored before the statement reads any (ML.PREDICT: onnxruntime scores its
    # whole relation, refusing a value anywhere in it), also on an engine that scores
    # lazily inside the statement's plan (Spark), where a join could skip the relation
    whole: bool = False


@dataclass(frozen=True)
class RegisterUdf:
    """Before the final SQL: make ``plan`` a scalar function ``name`` (its arguments cast to
    the plan's input types, its value predict's)."""

    name: str
    plan: OnnxPlan
    outputs: tuple[TensorSpec, ...]
    regions: bool = True
    label: str = "predict()"  # for notes and errors, e.g. "predict(churn@1)"


@dataclass(frozen=True)
class CheckRelation:
    """Before the final SQL: run ``query``, one row that is TRUE or the engine's ``error()``
    naming a value the model refuses. An ML.PREDICT inlined as SQL checks its whole
    relation so, as onnxruntime checks every row it scores: inside the final SQL the
    engine may skip the check (a join whose other side is empty never reads the relation)."""

    query: Query
    label: str  # "ML.PREDICT(MODEL m@1)": EXPLAIN


Step = ScoreRelation | RegisterUdf | CheckRelation


@dataclass(frozen=True)
class Column:
    """A column of a relation, as the engine describes it."""

    name: str
    type: str


@dataclass(frozen=True)
class Probe:
    """A question compile asked the engine: the columns of ``query`` (with the notebook's
    parameters bound; None: the engine refused it). A cached plan is reused only while
    every answer is the same."""

    query: Query
    columns: tuple[Column, ...] | None


@dataclass(frozen=True)
class Prepared:
    """A compiled statement, ready for any executor."""

    statement: str  # as written
    statement_type: str  # the engine parser's type name: "SELECT", "CREATE", "INSERT", ...
    query: Query  # the final SQL
    steps: tuple[Step, ...]
    notes: tuple[str, ...]  # what planning did and why (EXPLAIN)
    activity: Activity
    signatures: tuple[str, ...]  # the models' signatures, for error messages
    probes: tuple[Probe, ...]
    settings: Settings
