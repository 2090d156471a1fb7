"""The Spark executor: runs ``Prepared`` statements on a SparkSession.

The same ``Prepared`` the DuckDB executor runs: the final SQL and each step's query are
generated from their sqlglot trees in Spark's dialect (``dialect.DIALECT``). A
``RegisterUdf`` step becomes an Arrow UDF, a ``ScoreRelation`` step a temporary view of
its relation scored by ``mapInArrow`` on the executors; both are lazy, so Spark plans
the scoring with the query around it (filters below, aggregates above), and EXPLAIN
shows it. Helper views and functions live for one statement. Before the final SQL runs,
the tables it reads are identified (version, or location + file listing) for lineage;
after it, the tables it wrote are fingerprinted.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import duckdb
import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import ParseError, TokenError

from nbgov.errors import ModelBindingError, NbgovError, SqlError, SqlmlError
from nbgov.sqlml.activity import TableContent
from nbgov.sqlml.engine_name import EngineName
from nbgov.sqlml.execution.batching import stats_note
from nbgov.sqlml.execution.executor import Outcome, Progress
from nbgov.sqlml.execution.results import arrow_result_frame
from nbgov.sqlml.models.onnxtypes import value_duckdb_type
from nbgov.sqlml.planning.explain import EnginePlans
from nbgov.sqlml.planning.plantext import fit_plan
from nbgov.sqlml.planning.prepared import CheckRelation, Column, Prepared, Query, RegisterUdf, ScoreRelation
from nbgov.sqlml.planning.relations import Parsed
from nbgov.sqlml.spark.dialect import (
    DIALECT,
    READER,
    bind_parameters,
    csv_paths,
    csv_view,
    parameter_names,
    statement_type,
)
from nbgov.sqlml.spark.errors import condition, spark_error
from nbgov.sqlml.spark.frames import FrameCache, SparkFrames
from nbgov.sqlml.spark.guards import guarded_calls
from nbgov.sqlml.spark.listings import described, shows_tables, table_names
from nbgov.sqlml.spark.names import Names, duckdb_names
from nbgov.sqlml.spark.scoring import Shipped, SparkScoring
from nbgov.sqlml.spark.tables import NO_ARGS, inserted_rows, quoted, table_content, table_identity
from nbgov.sqlml.spark.typed import Inputs, duckdb_type, for_spark
from nbgov.sqlml.sql.frames import FrameNames
from nbgov.sqlml.sql.parse import parse
from nbgov.sqlml.sql.statements import rewrite_extensions, split

if TYPE_CHECKING:
    import onnxruntime as ort
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

# Statement types whose result is rows; the others report "<TYPE>: ok".
# PySpark logs a failed query's context as JSON on stderr, a SQL text's and a DataFrame's
# (a parameter Spark refuses) under their own names: the cell shows the one-line error only
_QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")
_QUERY_TYPES = {"SELECT", "DESCRIBE", "SHOW", "EXPLAIN"}
_WRITING_TYPES = {"CREATE", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP"}


class SparkExecutor:
    """Runs compiled statements on ``spark`` (owned by the caller)."""

    engine = EngineName.SPARK
    dialect = DIALECT

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.scoring = SparkScoring(spark)
        self.frames = FrameCache(spark)
        self._convert: duckdb.DuckDBPyConnection | None = None
        self._described: dict[tuple[str, str, str], dict[str, str] | None] | None = None  # while a statement runs
        self._exposed: Mapping[str, StructType] = {}  # the notebook frames' views while exposed, by lower-cased name

    # --- compile's questions -------------------------------------------------------------

    def parse(self, text: str) -> Parsed:
        """sqlglot reads the DuckDB-dialect text as written (Spark parses the translation
        later), a pinned ``predict(m@2, ...)`` read as ``predict('m@2', ...)`` (``@`` is an
        operator DuckDB parses there; sqlglot does not)."""
        tree = _read(_pins_quoted(text))
        return Parsed(statement_type(tree), parameter_names(tree))

    def columns(self, query: Query, params: Mapping[str, Any]) -> tuple[Column, ...]:
        """Named as the DuckDB engine names them (a relation scored by ML.PREDICT is read
        by those names: ``_steps`` renames its frame alike)."""
        with self._errors(()):
            fields = self._frame(query, params).schema.fields
            names = self._duckdb_names(query, _tree(query), params, {}).names
        if names is None or len(names) != len(fields):
            names = tuple(field.name for field in fields)
        return tuple(Column(name, field.dataType.simpleString()) for name, field in zip(names, fields))

    def catalog_version(self) -> int | None:
        return None  # Spark's catalog says nothing of its changes: a cached plan asks again

    def catalog_bound(self, query: Query) -> bool:
        return False

    # --- running ---------------------------------------------------------------------------

    @contextmanager
    def exposing(self, frames: Mapping[str, Any], names: FrameNames) -> Iterator[tuple[str, ...]]:
        with self._errors(()), SparkFrames(self.spark, self.frames, frames, names) as scope:
            self._exposed = scope.schemas
            try:
                yield tuple(scope.registered)
            finally:
                self._exposed = {}

    def run(self, prepared: Prepared, params: Mapping[str, Any], progress: Progress | None = None) -> Outcome:
        """Steps, then the final SQL; Spark shows its own progress, so ``progress`` is unused."""
        self._described = {}
        try:
            with self._errors(prepared.signatures), ExitStack() as stack:
                shipped = self._steps(prepared, params, stack, now=True)
                read = tuple(table_identity(self.spark, table) for table in prepared.activity.tables_read)
                frame, summary, named = self._fetch(prepared, params)
        finally:
            self._described = None
        notes = [named] if named else []
        notes += [note for each in shipped for label, stats in each.stats() if (note := stats_note(label, stats))]
        notes += [f"{step.label}: {rows:,} rows scored" for step, rows in self._scored_rows(prepared, shipped)]
        written: tuple[TableContent, ...] = ()
        if prepared.statement_type in _WRITING_TYPES:
            created = _table_as_select(_tree(prepared.query))
            snapshot = created is not None and _temporary(created)  # a temporary view holding rows, not a query
            written = tuple(
                table_content(self.spark, table, snapshot=snapshot) for table in prepared.activity.tables_written
            )
        return Outcome(frame, summary, tuple(notes), written, read)

    def plans(self, prepared: Prepared, params: Mapping[str, Any], width: int) -> EnginePlans:
        """Spark's formatted physical plan of the final SQL, scoring included: the steps are
        lazy views and functions, so nothing is scored or read."""
        with self._errors(prepared.signatures), ExitStack() as stack:
            self._steps(prepared, params, stack, now=False)
            tree = _tree(prepared.query)
            with self._csv_files(tree):
                sql = self._sql(prepared.query, tree, params, _helper_types(prepared))
                plan = self.spark.sql(f"EXPLAIN FORMATTED {sql}", args=self._args(prepared.query, params))
            return EnginePlans(fit_plan(str(plan.collect()[0][0]).strip(), self.dialect, width))

    def adopt_session(self, cache_key: str, session: ort.InferenceSession) -> None:
        """Dropped: Spark's Python workers score with sessions of their own on the model's
        broadcast bytes, never the driver's."""

    def close(self) -> None:
        self.scoring.close()
        self.frames.clear()
        if self._convert is not None:
            self._convert.close()
            self._convert = None

    # --- helpers ---------------------------------------------------------------------------

    def _steps(self, prepared: Prepared, params: Mapping[str, Any], stack: ExitStack, *, now: bool) -> list[Shipped]:
        """Register the statement's functions and scored views (dropped when ``stack`` closes);
        with ``now``, also what must happen before the statement (a Spark job each): the
        checks of whole relations, and the scoring of relations scored whole (ML.PREDICT),
        which Spark's adaptive plan would skip beside a join whose other side is empty."""
        expected = "; ".join(prepared.signatures)
        shipped: list[Shipped] = []
        for step in prepared.steps:
            if isinstance(step, CheckRelation):
                if now:
                    self._frame(step.query, params).collect()
                continue
            if isinstance(step, RegisterUdf):
                stack.callback(self._drop_function, step.name)
                shipped.append(self.scoring.register_udf(step, expected))
            else:
                relation = self._duckdb_named(self._frame(step.query, params), step.query, params, _helper_types(prepared))
                scored, jobs = self.scoring.score(relation, step.jobs, step.drop)
                whole = now and step.whole
                if whole or _read_twice(prepared.query, step.name):  # keep the scores: never score a row twice
                    scored = scored.persist()
                    stack.callback(scored.unpersist)
                if whole:
                    scored.count()
                stack.callback(self._drop_view, step.name)
                scored.createOrReplaceTempView(step.name)
                shipped.append(jobs)
        return shipped

    def _scored_rows(self, prepared: Prepared, shipped: list[Shipped]) -> list[tuple[ScoreRelation, int]]:
        """Rows of each scored relation, as counted on the executors."""
        found: list[tuple[ScoreRelation, int]] = []
        for step, jobs in zip([step for step in prepared.steps if not isinstance(step, CheckRelation)], shipped):
            rows = jobs.rows()
            if isinstance(step, ScoreRelation) and rows is not None:
                found.append((step, rows))
        return found

    def _fetch(self, prepared: Prepared, params: Mapping[str, Any]) -> tuple[pd.DataFrame | None, str, str]:
        """The statement run: its result, its summary, and a note when its column names
        are Spark's because DuckDB's could not be worked out (else empty)."""
        kind = prepared.statement_type
        query, tree, stored = self._stored_as_named(prepared.query, _tree(prepared.query), params, _helper_types(prepared))
        created = _table_as_select(tree)
        if created is not None:
            self._create_table(created, query, params, _helper_types(prepared))
            return None, f"{kind}: ok", stored
        if shows_tables(tree):
            frame = table_names(self.spark)
            return frame, f"{len(frame):,} row(s)", ""
        try:
            result = self._frame(query, params, _helper_types(prepared))  # DDL and DML run here, eagerly
        except Exception as error:
            replaced = _replaced_schema(tree)
            if replaced is None or condition(error) != "UNSUPPORTED_FEATURE.TABLE_OPERATION":
                raise
            self._replace_table(replaced)
            return None, f"{kind}: ok", stored
        if isinstance(tree, exp.Describe):
            frame = described(result)
            return frame, f"{len(frame):,} row(s)", ""
        if kind in _QUERY_TYPES:  # the dtypes and names the DuckDB engine gives
            rows = _nested_nullable(result).toArrow()
            named = self._duckdb_names(prepared.query, tree, params, _helper_types(prepared))
            note = ""
            if named.names is not None and len(named.names) == rows.num_columns:
                rows = rows.rename_columns(list(named.names))
            elif named.names is not None:
                note = f"DuckDB names {len(named.names)} column(s) here, Spark gives {rows.num_columns}"
            elif named.missing:
                note = named.missing
            frame = arrow_result_frame(self._converter(), rows)
            return frame, f"{len(frame):,} row(s)", _names_note(note)
        written = inserted_rows(result) if kind == "INSERT" else None
        return None, f"{kind}: ok" if written is None else f"{kind}: {written:,} row(s)", stored

    def _stored_as_named(
        self, query: Query, tree: exp.Expression | None, params: Mapping[str, Any], functions: Mapping[str, str]
    ) -> tuple[Query, exp.Expression | None, str]:
        """``CREATE TABLE|VIEW name AS SELECT ...`` with the columns named as the DuckDB engine
        stores them, so a later ``SELECT *`` of it reads DuckDB's names: a table's query as
        ``SELECT * FROM (SELECT ...) AS nbgov_named(names)`` (Spark takes no column list for
        a table made AS SELECT), a view's names as its column list (Spark refuses a view
        whose query has an unaliased expression, even renamed); any other statement as it
        is. Also a note when DuckDB's names could not be worked out (else empty)."""
        if (
            not isinstance(tree, exp.Create)
            or str(tree.args.get("kind") or "").upper() not in ("TABLE", "VIEW")
            or not isinstance(tree.this, exp.Table)
            or not isinstance(tree.expression, exp.Query)
        ):
            return query, tree, ""
        select = tree.expression
        named = duckdb_names(self._converter(), select, select.sql("duckdb"), functions, params, self._table_types)
        if named.names is None:
            return query, tree, _names_note(named.missing)
        renamed = tree.copy()
        columns = [exp.to_identifier(name, quoted=True) for name in named.names]
        if str(tree.args.get("kind")).upper() == "VIEW":
            renamed.set("this", exp.Schema(this=renamed.this, expressions=columns))
            _aliased(renamed.expression)
            return Query(renamed), renamed, ""
        source = exp.Subquery(this=renamed.expression, alias=exp.TableAlias(this=exp.to_identifier("nbgov_named"), columns=columns))
        renamed.set("expression", exp.select(exp.Star()).from_(source, copy=False))
        return Query(renamed), renamed, ""

    def _duckdb_names(
        self, query: Query, tree: exp.Expression | None, params: Mapping[str, Any], functions: Mapping[str, str]
    ) -> Names:
        """The column names the DuckDB engine gives the query's result (see ``names.py``)."""
        if tree is None:
            return Names(missing="sqlglot cannot read the statement")
        return duckdb_names(self._converter(), tree, query.sql("duckdb"), functions, params, self._table_types)

    def _duckdb_named(self, frame: DataFrame, query: Query, params: Mapping[str, Any], functions: Mapping[str, str]) -> DataFrame:
        """``frame`` (``query``'s rows) with its columns named as the DuckDB engine names
        them, as ``columns`` told compile; ``frame`` itself when they are already."""
        names = self._duckdb_names(query, _tree(query), params, functions).names
        if names is None:
            return frame
        current = [field.name for field in frame.schema.fields]
        return frame.toDF(*names) if len(names) == len(current) and list(names) != current else frame

    def _converter(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB that converts result rows to pandas (it reads no table)."""
        if self._convert is None:
            self._convert = duckdb.connect()
        return self._convert

    def _create_table(
        self, create: exp.Create, query: Query, params: Mapping[str, Any], functions: Mapping[str, str]
    ) -> None:
        """DuckDB's ``CREATE [OR REPLACE] TEMP TABLE t AS SELECT`` is a snapshot of the rows
        for the session: a temporary view of the rows checkpointed (sqlglot's ``TEMPORARY
        VIEW`` keeps the SQL text, which reads the statement's notebook frames after they are
        gone). ``CREATE OR REPLACE TABLE t AS SELECT`` where Spark's catalog cannot replace
        a table (the built-in one): the rows written over the table."""
        table, select = create.this, create.args["expression"]  # checked by _table_as_select
        with self._csv_files(select):
            sql = self._translated(select, params, functions).sql(self.dialect)
            rows = self.spark.sql(sql, args=bind_parameters(parameter_names(select), params))
        if not _temporary(create):
            try:
                self._frame(query, params, functions)
            except Exception as error:
                if condition(error) != "UNSUPPORTED_FEATURE.TABLE_OPERATION":
                    raise
                rows.write.mode("overwrite").saveAsTable(quoted(table.sql(self.dialect)))
            return
        if table.db:
            raise SqlError(f"temporary table {table.sql(self.dialect)}: a temporary table has no schema; expected a bare name")
        if create.args.get("exists") and self.spark.catalog.tableExists(table.name):
            return
        snapshot = rows.localCheckpoint(eager=True)
        if create.args.get("replace"):
            snapshot.createOrReplaceTempView(table.name)
        else:
            snapshot.createTempView(table.name)

    def _replace_table(self, create: exp.Create) -> None:
        """DuckDB's ``CREATE OR REPLACE TABLE t (columns)`` where Spark's catalog cannot
        replace a table (the built-in one): the table dropped, then created."""
        table = create.this.this
        self.spark.sql(f"DROP TABLE IF EXISTS {quoted(table.sql(self.dialect))}", args=NO_ARGS)
        fresh = create.copy()
        fresh.set("replace", False)
        self.spark.sql(fresh.sql(self.dialect), args=NO_ARGS)

    def _frame(self, query: Query, params: Mapping[str, Any], functions: Mapping[str, str] | None = None) -> DataFrame:
        """``query`` as a Spark DataFrame (lazy for queries), its parameters bound; ``functions``:
        the value types of the statement's helper functions."""
        tree = _tree(query)
        with self._csv_files(tree):
            sql = self._sql(query, tree, params, functions or {})
            return self.spark.sql(sql, args=self._args(query, params))  # a dict, even empty: see tables.NO_ARGS

    def _sql(self, query: Query, tree: exp.Expression | None, params: Mapping[str, Any], functions: Mapping[str, str]) -> str:
        """``query`` in Spark SQL, with DuckDB's meanings that depend on the types of what it
        reads (``typed.py``); inside ``_csv_files``, which Spark describes the CSV files by."""
        if tree is None:
            return query.sql(self.dialect)  # sqlglot cannot read it: says so
        translated = self._translated(tree, params, functions)
        return query.sql(self.dialect) if translated is tree else translated.sql(self.dialect)

    def _translated(self, tree: exp.Expression, params: Mapping[str, Any], functions: Mapping[str, str]) -> exp.Expr:
        """``tree`` for Spark: each scoring function told which rows reach it, DuckDB's
        meanings that depend on types kept (``typed.py``)."""
        return for_spark(guarded_calls(tree, functions), Inputs(self._table_types, params, functions))

    def _table_types(self, table: exp.Table) -> dict[str, str] | None:
        """The columns of ``table`` with their DuckDB types, as Spark reads it (a notebook
        frame, a scored helper view, a CSV file...); None when Spark cannot. Asked once per
        table while a statement runs."""
        key = (table.catalog.lower(), table.db.lower(), table.name.lower())
        named = isinstance(table.this, exp.Identifier) and not table.this.quoted  # not a table function or file path
        memo = self._described if named else None
        if memo is not None and key in memo:
            return memo[key]
        exposed = self._exposed.get(table.name.lower()) if named and not table.db and not table.catalog else None
        try:
            if exposed is not None:  # a notebook frame's view: its schema is known here, no JVM round trip
                fields = exposed.fields
            elif named:  # a table by name: one call to resolve it, not a SQL text parsed and analyzed
                fields = self.spark.table(quoted(exp.table_(table.name, table.db or None, table.catalog or None).sql(self.dialect))).schema.fields
            else:
                fields = self.spark.sql(exp.select(exp.Star()).from_(table).limit(0).sql(self.dialect), args=NO_ARGS).schema.fields
        except Exception:  # not a relation Spark knows: Spark says so when the statement runs
            found = None
        else:
            found = {field.name: duckdb_type(field.dataType.simpleString()) for field in fields}
        if memo is not None:
            memo[key] = found
        return found

    @contextmanager
    def _csv_files(self, tree: exp.Expression | None) -> Iterator[None]:
        """The CSV files ``tree`` reads (DuckDB's ``FROM 'x.csv'``, ``read_csv``) as temporary
        views while Spark analyzes it, read as DuckDB's reader does by default: a header
        line, column types inferred. The analyzed DataFrame keeps the files' plan after."""
        paths = csv_paths(tree) if tree is not None else ()
        try:
            for path in paths:
                reader = self.spark.read.option("header", True).option("inferSchema", True)
                if path.lower().endswith((".tsv", ".tsv.gz")):
                    reader = reader.option("sep", "\t")
                reader.csv(path).createOrReplaceTempView(csv_view(path))
            yield
        finally:
            for path in paths:
                self._drop_view(csv_view(path))

    def _args(self, query: Query, params: Mapping[str, Any]) -> dict[str, Any]:
        tree = _tree(query)
        return bind_parameters(parameter_names(tree), params) if tree is not None else {}

    @contextmanager
    def _errors(self, signatures: Sequence[str]) -> Iterator[None]:
        """Spark's errors as one line (PySpark's own log of a failed query kept out of the
        cell); a cast or column error around model calls names the models' inputs."""
        from pyspark.logger import PySparkLogger  # its own logger class: plain getLogger would break it

        loggers = [PySparkLogger.getLogger(name) for name in _QUERY_CONTEXT_LOGGERS]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        try:
            yield
        except NbgovError:
            raise
        except Exception as error:
            raise _mapped(error, signatures) from None
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)

    def _drop_view(self, name: str) -> None:
        try:
            self.spark.catalog.dropTempView(name)
        except Exception:  # the session is gone
            pass

    def _drop_function(self, name: str) -> None:
        try:
            self.spark.sql(f"DROP TEMPORARY FUNCTION IF EXISTS {quoted(name)}", args=NO_ARGS)
        except Exception:  # the session is gone
            pass


def _aliased(query: exp.Expr) -> None:
    """Each expression the query's columns come from given an alias (the view's column list
    names them): Spark refuses to store a view whose column is an unaliased expression."""
    while isinstance(query, exp.SetOperation):
        query = query.this
    if isinstance(query, exp.Select):
        query.set("expressions", [
            each if isinstance(each, (exp.Alias, exp.Star, exp.Column)) else exp.alias_(each, f"nbgov_c{i}", quoted=True)
            for i, each in enumerate(query.expressions)
        ])


def _names_note(problem: str) -> str:
    """The note (and warning, shown in the cell) when column names are Spark's because
    DuckDB's could not be worked out: a name that differs from the DuckDB engine's is
    never silent. Empty when there is no ``problem``."""
    if not problem:
        return ""
    note = f"column names as Spark gives them (the DuckDB engine's may differ in case or text): {problem}"
    warnings.warn(f"nbgov: {note}", stacklevel=4)
    return note


def _helper_types(prepared: Prepared) -> dict[str, str]:
    """The DuckDB value types of the functions the statement's steps register."""
    return {step.name: value_duckdb_type(step.outputs) for step in prepared.steps if isinstance(step, RegisterUdf)}


def _tree(query: Query) -> exp.Expression | None:
    """The statement's sqlglot tree (compile keeps one for queries only)."""
    return query.tree if query.tree is not None else parse(query.text or "")


def _table_as_select(tree: exp.Expression | None) -> exp.Create | None:
    """``tree`` when it is ``CREATE TEMP TABLE ... AS SELECT`` or ``CREATE OR REPLACE TABLE
    ... AS SELECT`` (see ``SparkExecutor._create_table``), else None."""
    if not isinstance(tree, exp.Create) or str(tree.args.get("kind") or "").upper() != "TABLE":
        return None
    if not isinstance(tree.this, exp.Table) or not isinstance(tree.expression, exp.Query):
        return None
    return tree if _temporary(tree) or tree.args.get("replace") else None


def _replaced_schema(tree: exp.Expression | None) -> exp.Create | None:
    """``tree`` when it is ``CREATE OR REPLACE TABLE t (columns)`` (no AS SELECT), else None."""
    if not isinstance(tree, exp.Create) or str(tree.args.get("kind") or "").upper() != "TABLE":
        return None
    if not tree.args.get("replace") or not isinstance(tree.this, exp.Schema) or tree.expression is not None:
        return None
    return tree if not _temporary(tree) else None


def _temporary(create: exp.Create) -> bool:
    properties = create.args.get("properties")
    return properties is not None and any(isinstance(p, exp.TemporaryProperty) for p in properties.expressions)


def _nested_nullable(frame: DataFrame) -> DataFrame:
    """``frame`` with every field inside a STRUCT, ARRAY or MAP column nullable. PySpark's
    ``toArrow`` casts the rows to the Arrow schema of Spark's, which fails on a NULL struct
    whose fields Spark declares NOT NULL (``predict(m, ...)`` of a NULL input, inlined as
    SQL: ``CASE ... ELSE NULL`` of a ``named_struct``)."""
    from pyspark.sql.types import StructField, StructType

    schema = frame.schema
    widened = StructType([StructField(f.name, _nullable(f.dataType), f.nullable, f.metadata) for f in schema.fields])
    return frame if widened == schema else frame.to(widened)


def _nullable(kind: Any) -> Any:
    """The Spark type ``kind`` with every nested field, element and value nullable."""
    from pyspark.sql.types import ArrayType, MapType, StructField, StructType

    if isinstance(kind, StructType):
        return StructType([StructField(f.name, _nullable(f.dataType), True, f.metadata) for f in kind.fields])
    if isinstance(kind, ArrayType):
        return ArrayType(_nullable(kind.elementType), True)
    if isinstance(kind, MapType):
        return MapType(_nullable(kind.keyType), _nullable(kind.valueType), True)
    return kind


def _read_twice(query: Query, name: str) -> bool:
    """Whether Spark would compute the relation ``name`` more than once for ``query``: it is
    read in several places, or the query sorts globally (Spark samples the sort's input in
    a job of its own before sorting it)."""
    tree = query.tree
    if tree is None:
        return False
    reads = sum(1 for table in tree.find_all(exp.Table) if table.name == name and not table.db)
    sorts = any(not isinstance(order.parent, exp.Window) for order in tree.find_all(exp.Order))
    return reads > 1 or (reads == 1 and sorts)


def _mapped(error: Exception, signatures: Sequence[str]) -> SqlmlError:
    mapped = spark_error(error)
    if signatures and isinstance(mapped, SqlError):
        found = condition(error) or ""
        if "CAST" in found:
            return ModelBindingError(f"{mapped}; expected {'; '.join(signatures)}")
        if "UNRESOLVED" in found:
            return SqlmlError(f"{mapped}; model inputs: {'; '.join(signatures)}")
    return mapped


def _pins_quoted(text: str) -> str:
    """``text`` with every unquoted model pin in a predict(...) call quoted; the rest as written."""
    statements = split(text)
    if len(statements) != 1 or "@" not in text:
        return text
    rewritten = rewrite_extensions(statements[0], "nbgov_parse_")
    return text if rewritten.ml_predicts else rewritten.text


def _read(text: str) -> exp.Expression:
    """The statement's sqlglot tree, or a ``SqlError`` saying what is wrong, at which token, where."""
    try:
        tree = sqlglot.parse_one(text, read=READER)
    except ParseError as error:
        found = error.errors[0] if error.errors else {}
        where = f" at {found['highlight']!r}" if found.get("highlight") else ""
        position = f" (line {found['line']}, column {found['col']})" if found.get("line") else ""
        problem = f"{found.get('description') or 'syntax error'}{where}{position}"
        raise SqlError(f"cannot parse the statement for Spark: {problem[:300]}") from None
    except TokenError as error:
        raise SqlError(f"cannot parse the statement for Spark: {str(error).splitlines()[0][:300]}") from None
    if not isinstance(tree, exp.Expression):
        raise SqlError("cannot parse the statement for Spark: no statement found")
    return tree
