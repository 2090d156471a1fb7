"""compile → Prepared touches no data; execute runs it; EXPLAIN renders it; the wings of
sqlml keep their import boundaries."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlglot.expressions as exp

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.plan import OnnxPlan
from nbgov.sqlml.planning.prepared import Prepared, RegisterUdf, ScoreRelation, Settings
from nbgov.sqlml.sql.statements import split
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.sqlml import register

FEATURES = ", ".join(NUMERIC_FEATURES)
SQLML = Path(__file__).parent.parent / "nbgov" / "sqlml"

STATEMENTS = {
    "batched predict": f"SELECT id, predict(m, {FEATURES}) AS p FROM watched WHERE age > 40",
    "predict by name": "SELECT id, predict(m, *) AS p FROM watched",
    "ML.PREDICT": "SELECT id, predicted_variable FROM ML.PREDICT(MODEL m, (SELECT * FROM watched WHERE age > 30))",
    "CREATE TABLE AS": f"CREATE TABLE scored AS SELECT id, predict(m, {FEATURES}) AS p FROM watched",
}


class RowCounter:
    """A DuckDB scalar function that counts the rows it is called on: a view through it
    shows whether a phase read any row."""

    def __init__(self) -> None:
        self.rows = 0

    def __call__(self, values: Any) -> Any:
        self.rows += len(values)
        return values


@pytest.fixture
def watched(onnx_models: Any, customers_frame: pd.DataFrame) -> Any:
    """An engine with model ``m`` and a view ``watched`` whose every row read is counted."""
    counter = RowCounter()
    engine = Engine(progress_bar=False)
    register(engine, "m", onnx_models.get("gb_reg").estimator)  # with its feature names
    engine.con.register("base_frame", customers_frame)
    engine.con.execute("CREATE TABLE base AS SELECT * FROM base_frame").fetchall()
    engine.con.unregister("base_frame")
    engine.con.create_function("counted", counter, ["BIGINT"], "BIGINT", type="arrow")
    columns = ", ".join(c for c in customers_frame.columns if c != "id")
    engine.con.execute(f"CREATE VIEW watched AS SELECT counted(id) AS id, {columns} FROM base").fetchall()
    try:
        yield engine, counter
    finally:
        engine.con.remove_function("counted")
        engine.close()


def _compile(engine: Engine, sql: str, optimize: bool = True) -> Prepared:
    (statement,) = split(sql)
    settings = Settings(optimize=optimize, batch_rows=engine.batch_rows, threads=engine.threads)
    return engine.compiler.compile(statement, settings=settings, params={}, frames=())


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "naive"])
@pytest.mark.parametrize("name", list(STATEMENTS))
def test_compile_reads_no_row_scores_nothing_registers_nothing(watched: Any, name: str, optimize: bool) -> None:
    engine, counter = watched
    prepared = _compile(engine, STATEMENTS[name], optimize)
    assert counter.rows == 0  # no row of the view was read
    assert engine.sessions.keys() == []  # no onnxruntime session opened
    helpers = engine.con.execute(
        "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE 'nbgov%' "
        "UNION ALL SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'nbgov%'"
    ).fetchall()
    assert helpers == []
    assert engine.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scored'").fetchall() == [(0,)]
    # the steps name model plans, not engine objects; the final SQL is a tree
    assert prepared.steps and all(isinstance(step, (ScoreRelation, RegisterUdf)) for step in prepared.steps)
    plans = [job.plan for step in prepared.steps if isinstance(step, ScoreRelation) for job in step.jobs]
    plans += [step.plan for step in prepared.steps if isinstance(step, RegisterUdf)]
    assert plans and all(isinstance(plan, OnnxPlan) for plan in plans)
    if name != "ML.PREDICT":
        assert isinstance(prepared.query.tree, exp.Expression)
    assert prepared.activity.tables_read == ("watched",) and prepared.activity.models_used[0].ref == "m@1"

    outcome = engine.executor.run(prepared, {})
    assert counter.rows > 0  # execute is where rows are read
    assert engine.sessions.keys() != []
    if name == "CREATE TABLE AS":
        assert outcome.frame is None and outcome.written[0].table == "scored" and outcome.written[0].hash
    else:
        assert outcome.frame is not None and len(outcome.frame) > 0


def test_a_prepared_statement_generates_sql_for_another_dialect(watched: Any) -> None:
    engine, _ = watched
    prepared = _compile(engine, STATEMENTS["batched predict"])
    (step,) = [s for s in prepared.steps if isinstance(s, ScoreRelation)]
    spark = prepared.query.sql("spark")
    assert "nbgov_batch_" in spark and "`" in spark  # Spark quotes identifiers with backticks
    assert step.query.sql("spark").startswith("SELECT")
    assert prepared.query.sql("duckdb") == prepared.query.sql()  # generated once per dialect


def test_the_same_statement_compiles_to_the_same_sql(watched: Any) -> None:
    engine, _ = watched
    for sql in STATEMENTS.values():
        first, second = _compile(engine, sql), _compile(engine, sql)
        assert first.query.sql() == second.query.sql() and first.activity == second.activity
        assert [s.name for s in first.steps] == [s.name for s in second.steps]


@pytest.mark.parametrize("name", list(STATEMENTS))
def test_explain_renders_the_prepared_without_reading_rows(watched: Any, name: str) -> None:
    engine, counter = watched
    text = engine.explain(STATEMENTS[name])
    assert counter.rows == 0
    assert "predict(m@1)" in text or "ML.PREDICT(MODEL m@1)" in text
    assert engine.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scored'").fetchall() == [(0,)]
    if name == "batched predict":
        assert "scoring: predict(m@1): relation scored before the query above:" in text


def test_executing_the_prepared_equals_executing_the_text(watched: Any) -> None:
    engine, _ = watched
    sql = STATEMENTS["batched predict"] + " ORDER BY id"
    direct = engine.execute(sql)[0].df
    ran = engine.executor.run(_compile(engine, sql), {}).frame
    assert ran is not None and direct is not None
    pd.testing.assert_frame_equal(ran, direct)
    np.testing.assert_array_equal(direct.p.to_numpy(), engine.execute(sql, optimize=False)[0].df.p.to_numpy())


# --- import boundaries -------------------------------------------------------------------


def _imports(folder: Path) -> dict[str, set[str]]:
    """Every module each file of ``folder`` imports (also inside functions)."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(SQLML))] = names
    return found


@pytest.mark.parametrize(
    ("wing", "forbidden"),
    [
        ("execution", ("nbgov.sqlml.optimizer",)),
        ("optimizer", ("nbgov.sqlml.execution", "nbgov.sqlml.planning")),
        ("planning", ("nbgov.sqlml.execution",)),
        ("models", ("nbgov.sqlml.execution", "nbgov.sqlml.optimizer", "nbgov.sqlml.planning")),
    ],
)
def test_wings_keep_their_import_boundaries(wing: str, forbidden: tuple[str, ...]) -> None:
    crossing = {
        module: sorted(name for name in names if name.startswith(forbidden))
        for module, names in _imports(SQLML / wing).items()
    }
    assert {module: names for module, names in crossing.items() if names} == {}


def test_nothing_in_sqlml_edits_sql_text_with_regexes() -> None:
    users = sorted(module for module, names in _imports(SQLML).items() if "re" in names)
    assert users == []
