"""The DuckDB executor: runs ``Prepared`` statements on one DuckDB connection.

Steps run in order: a ``RegisterUdf`` becomes a vectorized Arrow UDF, a ``ScoreRelation``
streams its query's rows in Arrow batches to onnxruntime on a thread pool and registers
the scored table. Then the final SQL runs with the notebook's parameters bound by name,
and everything registered for the statement is removed again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import sqlglot.expressions as exp

from nbgov.errors import ModelBindingError, SqlError, SqlmlError
from nbgov.sqlml.activity import TableContent
from nbgov.sqlml.engine_name import EngineName
from nbgov.sqlml.execution.batching import RegionDecisions, Scoring, regions_note, score_relation
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from nbgov.sqlml.execution.compiled.policy import TreeCompiler
from nbgov.sqlml.execution.contents import table_content
from nbgov.sqlml.execution.duckdb_plans import DrawnPlan, StandIn, draw
from nbgov.sqlml.execution.executor import Outcome, Progress
from nbgov.sqlml.execution.results import ResultFetcher
from nbgov.sqlml.execution.scored_tables import ScoredTables
from nbgov.sqlml.execution.scoring import SessionCache
from nbgov.sqlml.execution.udf import UdfSet, make_scorer
from nbgov.sqlml.models.refusals import refusal_in
from nbgov.sqlml.plan import OnnxPlan
from nbgov.sqlml.planning.explain import EnginePlans
from nbgov.sqlml.planning.prepared import CheckRelation, Column, Prepared, Query, RegisterUdf, ScoreRelation
from nbgov.sqlml.planning.relations import Parsed
from nbgov.sqlml.sql.dberrors import one_line, sql_error
from nbgov.sqlml.sql.frames import FrameNames, FrameScope, refuse_table_parameter, unregister_views
from nbgov.sqlml.sql.parse import parse
from nbgov.sqlml.sql.statements import tokenize
from nbgov.sqlml.sql.text_dictionaries import TextDictionaries

if TYPE_CHECKING:
    import onnxruntime as ort
    import pandas as pd

_QUERY_TYPES = {"SELECT", "PRAGMA", "EXPLAIN", "CALL", "EXECUTE", "RELATION"}
_COUNTED_TYPES = {"INSERT", "UPDATE", "DELETE", "COPY"}
_WRITING_TYPES = {"CREATE", "INSERT", "UPDATE", "DELETE", "COPY", "ALTER", "DROP"}
_QUERY_WORDS = {"SELECT", "WITH", "FROM", "PIVOT", "UNPIVOT", "PIVOT_WIDER", "PIVOT_LONGER", "VALUES", "TABLE"}
_PARSED_TEXTS = 256  # DuckDB parses kept per executor
# DuckDB's refusal of a bound value, naming its type (``str(type(value))``) but not the parameter:
# "Unable to transform python value of type '<class 'm.Thing'>' to DuckDB"
_UNBINDABLE = ("Unable to transform python value of type '", "' to DuckDB")
_BINDABLE = "expected a number, string, date, bytes or a list of them"  # the Spark engine's words


class DuckDbExecutor:
    """Runs compiled statements on ``con`` (owned by the caller), scoring on ``threads``."""

    engine = EngineName.DUCKDB
    dialect = "duckdb"

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        threads: int,
        compile_trees: bool = True,
        tree_cache: ArtifactCache | None = None,
    ) -> None:
        """``compile_trees``: score tree ensembles with compiled code when that pays
        (``tree_cache``: where kernels are kept; default the user's cache folder)."""
        self.con = con
        self.threads = threads
        self.trees = TreeCompiler(tree_cache, enabled=compile_trees)
        self.sessions = SessionCache(self.trees)
        self._pool: ThreadPoolExecutor | None = None
        self._parsed: dict[str, list[Any]] = {}  # SQL text -> DuckDB's extract_statements
        self._results = ResultFetcher()
        self._regions = RegionDecisions()
        self.texts = TextDictionaries()  # repetitive text columns of notebook frames, encoded

    # --- compile's questions -------------------------------------------------------------

    def parse(self, text: str) -> Parsed:
        statements = self._statements(text)
        names: set[str] = set()
        for statement in statements:
            names.update(statement.named_parameters)
        statement_type = str(statements[0].type.name) if len(statements) == 1 else "SELECT"
        if statement_type == "MULTI":
            statement_type = _multi_type(text)
        return Parsed(statement_type, tuple(sorted(names)))

    def columns(self, query: Query, params: Mapping[str, Any]) -> tuple[Column, ...]:
        """Bound, not run: DuckDB names and types the query's columns without executing it
        (compile asks on every statement, and again to reuse a cached plan)."""
        sql = query.sql(self.dialect)
        try:
            relation = self.con.sql(sql, params=self._bound(sql, params) or None)
            names, types = relation.columns, relation.types
        except duckdb.Error as error:  # the query is nbgov's wrapper: a position would mislead
            raise unbindable(error, self.parse(sql).parameters, params) or sql_error(error, position=False) from None
        return tuple(Column(str(name), str(kind)) for name, kind in zip(names, types))

    def catalog_version(self) -> int | None:
        version = getattr(self.con, "_catalog_version", None)  # DuckDB 2: shared by every connection to the database
        return int(version()) if version is not None else None

    def catalog_bound(self, query: Query) -> bool:
        table_kind = getattr(self.con, "_table_kind", None)
        tree = query.tree if query.tree is not None else parse(query.text or "")
        if table_kind is None or tree is None or next(tree.find_all(exp.Placeholder, exp.Parameter), None):
            return False
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                return False  # a table function: it may read a file
            if table.name in ctes and not table.args.get("db"):
                continue
            parts = tuple(part for part in (table.catalog, table.db, table.name) if part)
            if table_kind(parts) not in ("table", "view"):
                return False  # a file read by its path, or a name no longer there
        return True

    # --- running ---------------------------------------------------------------------------

    @contextmanager
    def exposing(self, frames: Mapping[str, Any], names: FrameNames) -> Iterator[tuple[str, ...]]:
        with FrameScope(self.con, frames, names, self.texts) as scope:
            yield tuple(scope.registered)

    def run(self, prepared: Prepared, params: Mapping[str, Any], progress: Progress | None = None) -> Outcome:
        notes: list[str] = []
        models = _model_plans(prepared)
        before = {plan.cache_key: self.trees.counts(plan.cache_key) for _, plan in models}
        with self._errors(prepared, params), ExitStack() as stack:
            udfs = UdfSet(self.con, self.sessions)
            stack.callback(udfs.close)
            scored = ScoredTables(self.con, self.dialect)
            stack.callback(scored.close)
            for step in prepared.steps:
                if isinstance(step, RegisterUdf):
                    udfs.add(step)
                elif isinstance(step, CheckRelation):
                    sql = step.query.sql(self.dialect)
                    self.con.execute(scored.sql(step.query), self._bound(sql, params) or None).fetchall()
                else:
                    notes += self._score(step, params, prepared.settings.batch_rows, progress, scored)
            try:
                frame, summary = self._fetch(prepared, params, scored)
            except duckdb.Error:
                if udfs.failure is not None:  # a UDF's own error, not DuckDB's text around it
                    raise udfs.failure from None
                raise
        notes += _tree_notes(models, lambda key: self.trees.run_note(key, before[key]))
        written: tuple[TableContent, ...] = ()
        if prepared.statement_type in _WRITING_TYPES:
            written = tuple(table_content(self.con, table) for table in prepared.activity.tables_written)
        return Outcome(frame, summary, tuple(notes), written)

    def plans(self, prepared: Prepared, params: Mapping[str, Any], width: int) -> EnginePlans:
        """DuckDB's EXPLAIN of the final SQL and of each scored relation; a scored table is
        stood in for by an empty one of the same columns, so nothing is scored (its scan
        is drawn with the estimate of the relation it stands for, see ``duckdb_plans``)."""
        relations: list[tuple[str, str]] = []
        stand_ins: list[StandIn] = []
        with self._errors(prepared, params), ExitStack() as stack:
            udfs = UdfSet(self.con, self.sessions)
            stack.callback(udfs.close)
            for step in prepared.steps:
                if isinstance(step, RegisterUdf):
                    udfs.add(step)
                    continue
                if isinstance(step, CheckRelation):
                    check = self._explain(step.query.sql(self.dialect), params, stand_ins, width)
                    relations.append((f"{step.label}: the check of every row", check.text))
                    continue
                scored = self._explain(step.query.sql(self.dialect), params, stand_ins, width)
                relations.append((step.label, scored.text))
                stand_in = step.stand_in.sql(self.dialect)
                empty = self.con.sql(stand_in, params=self._bound(stand_in, params) or None).to_arrow_table()
                self.con.register(step.name, empty)
                stack.callback(unregister_views, self.con, [step.name])
                columns = frozenset(name.lower() for name in empty.column_names)
                stand_ins.append(StandIn(step.label.removeprefix("scoring: "), columns, scored.rows))
            final = self._explain(prepared.query.sql(self.dialect), params, stand_ins, width).text
        models = _model_plans(prepared)
        for _, plan in models:  # sessions opened now say which path will run (nothing is scored)
            self.sessions.get(plan.cache_key, plan.model_bytes)
        return EnginePlans(final, tuple(relations), tuple(_tree_notes(models, self.trees.note)))

    def adopt_session(self, cache_key: str, session: ort.InferenceSession) -> None:
        """A session the catalog's checks opened, scored with by this engine's first query
        of the version."""
        self.sessions.adopt(cache_key, session)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.sessions.clear()

    # --- helpers ---------------------------------------------------------------------------

    def _score(
        self, step: ScoreRelation, params: Mapping[str, Any], batch_rows: int, progress: Progress | None,
        scored: ScoredTables,
    ) -> list[str]:
        """Score the step's relation and make it readable under the step's name."""
        sql = step.query.sql(self.dialect)
        rows, types = self._arrow_rows(scored.sql(step.query), self._bound(sql, params) or None)
        jobs = [Scoring(job, make_scorer(self.sessions, job.plan, job.outputs, regions=job.regions, label=job.label)) for job in step.jobs]
        for run in jobs:  # the rows are known before any is scored: a kernel worth it starts compiling now
            self.trees.expect(run.scorer.session, rows.num_rows)
        table = score_relation(
            rows, jobs, self.threadpool(), self.threads, step.drop, _reporter(progress, step.label), batch_rows,
            self._regions, sql,
        )
        scored.add(step.name, self._typed_as(types, rows, table))
        notes = [note for job in jobs if (note := regions_note(job)) is not None]
        return [*notes, f"{step.label}: {table.num_rows:,} rows scored"]

    def _arrow_rows(self, sql: str, bound: dict[str, Any] | None) -> tuple[pa.Table, list[tuple[str, Any]]]:
        """The rows of the query ``sql`` as Arrow, with DuckDB's name and type of each column:
        run as one statement where DuckDB 2 can (its relations bind a query, then run it)."""
        submit = getattr(self.con, "_submit", None)
        if submit is not None:
            result = submit(sql, bound, "arrow")
            return result.arrow_table(), [(column[0], column[1]) for column in result.description]
        relation = self.con.sql(sql, params=bound)
        return relation.to_arrow_table(), list(zip(relation.columns, relation.types))

    def _typed_as(self, columns: list[tuple[str, Any]], rows: pa.Table, scored: pa.Table) -> Any:
        """The scored table with each column it passes through typed as DuckDB typed it in
        the relation scored (``columns``: names and types).

        Arrow carries an ENUM (a pandas categorical) as a dictionary, a UUID or JSON as text
        and a HUGEINT as a decimal, which DuckDB reads back as VARCHAR or DECIMAL: an ordered
        category would then sort and compare as text, unlike the same query with
        --no-optimize (scored by a UDF over the original column). Those columns are cast back
        to their own type; the other columns are read as they are."""
        types = dict(columns)
        if len(types) != len(columns) or len(set(scored.column_names)) != scored.num_columns:
            return scored
        if all(kind.id in _ARROW_ROUND_TRIP for kind in types.values()):
            return scored  # read back as they were: no need to ask DuckDB (a bind a query)
        read = self.con.from_arrow(scored)
        retyped = {
            name: types[name]
            for name, kind in zip(read.columns, read.types)
            if name in types
            and str(kind) != str(types[name])
            and (str(kind) == "VARCHAR" or str(kind).startswith("DECIMAL"))
            and scored.schema.field(name).type == rows.schema.field(name).type
        }
        if not retyped:
            return scored
        return read.project(
            *[
                duckdb.ColumnExpression(name).cast(retyped[name]).alias(name) if name in retyped
                else duckdb.ColumnExpression(name).alias(name)
                for name in read.columns
            ]
        )

    def _fetch(
        self, prepared: Prepared, params: Mapping[str, Any], scored: ScoredTables
    ) -> tuple[pd.DataFrame | None, str]:
        sql = prepared.query.sql(self.dialect)  # names the parameters and keys the memos
        bound = self._bound(sql, params) or None
        kind = prepared.statement_type
        if kind == "SELECT":  # bound before it runs, so nested columns can skip Python objects
            frame = self._results.frame(self.con, scored.sql(prepared.query), bound, key=sql)
            return frame, f"{len(frame):,} row(s)"
        result = self.con.execute(scored.sql(prepared.query), bound)
        if kind in _QUERY_TYPES:
            frame = result.df()
            return frame, f"{len(frame):,} row(s)"
        rows = result.fetchall()
        if kind in _COUNTED_TYPES and rows and len(rows[0]) == 1:
            return None, f"{kind}: {int(rows[0][0]):,} row(s)"
        return None, f"{kind}: ok"

    def _explain(self, sql: str, params: Mapping[str, Any], stand_ins: Sequence[StandIn], width: int) -> DrawnPlan:
        """DuckDB's plan of ``sql`` drawn ``width`` wide; its own text when the JSON form is
        not what ``duckdb_plans`` reads."""
        bound = self._bound(sql, params) or None
        rows = self.con.execute(f"EXPLAIN (FORMAT json) {sql}", bound).fetchall()
        try:
            return draw([(str(kind), str(document)) for kind, document in rows], stand_ins, width)
        except (ValueError, TypeError, AttributeError):
            rows = self.con.execute(f"EXPLAIN {sql}", bound).fetchall()
            return DrawnPlan("\n".join(str(r[1]) for r in rows), None)

    def _bound(self, sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``$name`` parameters of ``sql`` with the notebook's values."""
        bound: dict[str, Any] = {}
        for name in self.parse(sql).parameters:
            if name.isdigit():
                raise SqlmlError(f"positional parameter ${name} is not supported; use $name for a notebook variable")
            if name not in params:
                raise SqlmlError(f"unknown parameter ${name}: no notebook variable of that name")
            bound[name] = duckdb_value(name, params[name])
        return bound

    def _statements(self, sql: str) -> list[Any]:
        """DuckDB's parse of ``sql`` (statement types and ``$names``), kept for reuse: the
        same text is asked about several times per statement and per re-run."""
        statements = self._parsed.get(sql)
        if statements is None:
            try:
                statements = self.con.extract_statements(sql)
            except duckdb.Error as error:
                raise sql_error(error) from None
            if len(self._parsed) >= _PARSED_TEXTS:
                self._parsed.pop(next(iter(self._parsed)))
            self._parsed[sql] = statements
        return statements

    @contextmanager
    def _errors(self, prepared: Prepared, params: Mapping[str, Any]) -> Iterator[None]:
        """DuckDB errors as one line; around model calls, naming the models' inputs. A
        position is given only in the statement as written: in SQL nbgov generated it
        would point elsewhere (and differ with and without the optimizer)."""
        signatures = prepared.signatures
        as_written = not prepared.steps and prepared.query.tree is None and prepared.query.text == prepared.statement
        try:
            yield
        except duckdb.Error as error:
            refused = unbindable(error, prepared.activity.params, params)
            if refused is not None:
                raise refused from None
            message = one_line(error, position=as_written)
            refusal = refusal_in(message)
            if refusal is not None:  # the optimizer's SQL check for a value the model refuses
                raise ModelBindingError(refusal) from None
            if signatures and isinstance(error, duckdb.ConversionException):
                raise ModelBindingError(f"{message}; expected {'; '.join(signatures)}") from None
            if signatures and isinstance(error, duckdb.BinderException):
                raise SqlmlError(f"{message}; model inputs: {'; '.join(signatures)}") from None
            raise SqlError(message) from None

    def threadpool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="nbgov-score")
        return self._pool


def duckdb_value(name: str, value: Any) -> Any:
    """A notebook value as DuckDB binds ``$name`` to it.

    numpy numbers and booleans (``df.id.max()``, an ``np.int64``) become the Python ones
    they equal, also inside a list or tuple, and a pandas Series or Index (``top =
    df.nlargest(5, "income").id``, then ``WHERE id IN $top``) its list of values: DuckDB's
    client refused both ("Unable to transform python value of type numpy.int64"); Spark's
    binding already converted numpy scalars. A table (a DataFrame) is refused in one line
    naming the parameter. Dates, arrays and every other value pass as they are."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, (pandas.Series, pandas.Index)):
        return duckdb_value(name, value.tolist())
    if isinstance(value, (list, tuple)) and any(isinstance(item, (np.generic, list, tuple)) for item in value):
        items = [duckdb_value(name, item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    refuse_table_parameter(name, value)
    return value


def unbindable(error: duckdb.Error, names: Iterable[str], params: Mapping[str, Any]) -> SqlmlError | None:
    """DuckDB's "Unable to transform python value of type '<class 'm.Thing'>'" as one line
    naming the parameter (``names``: the statement's) and the type; None for other errors.
    The values are described by ``type()`` alone: their own methods may do anything."""
    described = _unbindable_type(str(error))
    if described is None:
        return None
    given = [name for name in names if name in params]
    if not given:
        return None
    for name in given:
        value = params[name]
        held = _held_type(duckdb_value(name, value), described)
        if held is type(value):
            return SqlmlError(f"parameter ${name} is a {held.__name__}; {_BINDABLE}")
        if held is not None:
            return SqlmlError(f"parameter ${name} is a {type(value).__name__} holding a {held.__name__}; {_BINDABLE}")
    which = f"parameter ${given[0]}" if len(given) == 1 else "one of the parameters " + ", ".join(f"${name}" for name in given)
    return SqlmlError(f"{which} holds a value of type {described}, which DuckDB cannot bind; {_BINDABLE}")


def _unbindable_type(message: str) -> str | None:
    """The type text in DuckDB's refusal of a bound value, or None for another error."""
    opening, closing = _UNBINDABLE
    start = message.find(opening)
    end = message.rfind(closing)
    return message[start + len(opening):end] if 0 <= start and start + len(opening) <= end else None


def _held_type(value: Any, described: str) -> type | None:
    """The type of ``value``, or of a value inside its lists, tuples and dicts, that DuckDB
    described as ``described``; None if there is none. Only those exact containers are
    opened, and ``type.__repr__`` is asked (a metaclass's own repr is not run)."""
    pending, seen = [value], set()
    while pending:
        item = pending.pop()
        kind = type(item)
        if type.__repr__(kind) == described:
            return kind
        if kind in (list, tuple, dict) and id(item) not in seen:
            seen.add(id(item))
            pending.extend([*item.keys(), *item.values()] if kind is dict else item)
    return None


def _multi_type(text: str) -> str:
    """What a statement DuckDB parses as MULTI really is, from its first word. DuckDB runs
    a PIVOT whose columns come from the data as two statements (the distinct values, then
    the pivot) and types it MULTI: run as a statement without rows, its pivoted table was
    dropped ("MULTI: ok"). A query (``PIVOT t ON ...``, a SELECT reading one) returns rows;
    ``CREATE TABLE ... AS PIVOT`` is a CREATE, ``INSERT INTO ... PIVOT`` an INSERT."""
    words = [token.text.upper() for token in tokenize(text) or () if token.text != "("]
    first = words[0] if words else ""
    if first in _QUERY_WORDS:
        return "SELECT"
    return first if first in ("CREATE", "INSERT") else "MULTI"


def _model_plans(prepared: Prepared) -> list[tuple[str, OnnxPlan]]:
    """(label, plan) of every model plan the steps run, each plan once."""
    found: dict[str, tuple[str, OnnxPlan]] = {}
    for step in prepared.steps:
        if isinstance(step, CheckRelation):
            continue
        pairs = [(step.label, step.plan)] if isinstance(step, RegisterUdf) else [(job.label, job.plan) for job in step.jobs]
        for label, plan in pairs:
            found.setdefault(plan.cache_key, (label, plan))
    return list(found.values())


# DuckDB types that come back from Arrow as themselves: never VARCHAR or DECIMAL in their place
_ARROW_ROUND_TRIP = frozenset({
    "boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint",
    "float", "double", "varchar", "blob", "date", "time", "timestamp", "timestamp_s", "timestamp_ms",
    "timestamp_ns", "timestamp with time zone", "interval", "decimal",
})


def _tree_notes(models: list[tuple[str, OnnxPlan]], note: Callable[[str], str | None]) -> list[str]:
    """One line per tree model: compiled or onnxruntime, and why."""
    return [f"{label}: {text}" for label, plan in models if (text := note(plan.cache_key)) is not None]


def _reporter(progress: Progress | None, label: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        try:
            progress(label, done, total)
        except Exception:  # a progress display must never break scoring
            pass

    return report
