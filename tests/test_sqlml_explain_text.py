"""--explain reads at a notebook's width and says row estimates as the engine knows them.

DuckDB's boxes ran ~400 characters wide (an inlined tree's CASE in one box line, a join's
inputs side by side), nbgov's notes over 300; every operator above a table scored before
the query said "~0 rows", the estimate of the empty table standing in for it.
"""

from __future__ import annotations

import json
import re

import pytest

from nbgov.errors import SqlmlError
from nbgov.sqlml.engine import BaseEngine, Engine
from nbgov.sqlml.execution.duckdb_plans import StandIn, draw
from nbgov.sqlml.planning import plantext
from nbgov.sqlml.planning.plantext import WIDTH, shorten, wrap_line
from tests.fixtures.models import NUMERIC_FEATURES
from tests.fixtures.sqlml import register, unwrapped

F = ", ".join(NUMERIC_FEATURES)
TREE_FILTER = f"SELECT id FROM c WHERE predict(tree_reg, {F}) > 100"
BOUNDS = f"SELECT id FROM c WHERE predict(gb_reg, {F}) > 100 ORDER BY id"
QUERIES = {
    "inlined tree in WHERE": TREE_FILTER,
    "inlined linear model": f"SELECT id, predict(linreg, {F}) AS p FROM c WHERE predict(linreg, {F}) > 100 ORDER BY p",
    "scored before the query": BOUNDS,
    "join": f"SELECT c.id, s.p FROM c JOIN (SELECT id, predict(rf_clf, {F}) AS p FROM c WHERE age > 70) s ON c.id = s.id",
    "ML.PREDICT": "SELECT * FROM ML.PREDICT(MODEL named, (SELECT * FROM c WHERE age > 60))",
    "CREATE MODEL in the cell": f"CREATE MODEL fresh FROM $p; SELECT predict(fresh, {F}) AS p FROM c WHERE age > 60",
}


@pytest.fixture
def models(engine: Engine, onnx_models) -> Engine:
    for kind in ("tree_reg", "linreg", "gb_reg", "rf_clf"):
        register(engine, kind, onnx_models.get(kind).path)
    register(engine, "named", onnx_models.get("rf_clf").estimator)  # feature names: ML.PREDICT binds by name
    return engine


@pytest.mark.parametrize("sql", QUERIES.values(), ids=QUERIES.keys())
def test_every_line_fits_a_notebooks_width(models: Engine, onnx_models, customers_frame, sql):
    text = models.explain(sql, params={"p": onnx_models.get("gb_clf").path}, frames={"c": customers_frame})
    widest = max(text.split("\n"), key=len)
    assert len(widest) <= WIDTH, widest


def test_a_long_inlined_tree_keeps_its_outer_levels_and_counts_what_it_leaves_out(models, customers_frame, monkeypatch):
    """The boolean tree of ``predict(tree_reg, ...) > 100`` runs as a CASE of ~700
    characters: shown with its NULL guard and first split, deeper CASEs as ``CASE … END``,
    and the count of CASE expressions left out is the count the full text has more."""
    shown = _detail(models.explain(TREE_FILTER, frames={"c": customers_frame}), "Expression")
    monkeypatch.setattr(plantext, "shorten", lambda text, dialect, limit=0: text)
    full = _detail(models.explain(TREE_FILTER, frames={"c": customers_frame}), "Expression")
    body, _, note = shown.partition(" [CASE … END: ")
    hidden = int(re.fullmatch(r"([\d,]+) nested CASE expressions? not shown\]", note).group(1).replace(",", ""))
    placeholders = body.count("CASE … END")
    assert len(full) > plantext.LONG >= len(shown) and placeholders >= 1 and hidden >= placeholders
    cases = re.compile(r"\bCASE\b")
    assert len(cases.findall(body)) - placeholders + hidden == len(cases.findall(full))
    assert full.startswith(body[: body.index("CASE … END")].rstrip("( "))  # the kept text is the engine's own
    assert "IS NULL" in body and body.rstrip().endswith("END")


def test_a_table_scored_before_the_query_reads_with_its_relations_estimate(models, customers_frame):
    """DuckDB plans the query over an empty stand-in for the scored rows: its scan now
    carries the estimate of the relation scored, and what reads it says it has no
    estimate, where every operator said "~0 rows" of a 400-row table."""
    text = models.explain(BOUNDS, frames={"c": customers_frame})
    lines = text.split("\n")
    assert "~0 rows" not in text
    scan = next(i for i, line in enumerate(lines) if "Python Arrow Scan" in line)
    assert lines[scan].endswith("Python Arrow Scan (~400 rows)")
    assert lines[scan + 1].strip() == "Reads: the rows predict(gb_reg@1) scored before this query (its plan follows)"
    assert all(line.endswith("(rows unknown)") for line in lines[:scan] if re.search(r"^[└├─ ]*[A-Z]\w* ?\w* \(", line))
    relation = lines[lines.index("scoring: predict(gb_reg@1): relation scored before the query above:") + 1]
    assert relation.endswith("(~400 rows)")


def test_ml_predicts_stand_in_says_what_it_reads(models, customers_frame):
    text = models.explain(QUERIES["ML.PREDICT"], frames={"c": customers_frame})
    lines = text.split("\n")
    scan = next(i for i, line in enumerate(lines) if "Python Arrow Scan" in line)
    relation_root = lines[next(i for i, line in enumerate(lines) if line.endswith("relation scored before the query above:")) + 1]
    estimate = relation_root[relation_root.rindex("(") :]
    assert "~0 rows" not in text and estimate.startswith("(~") and lines[scan].endswith(estimate)
    assert "Reads: the rows ML.PREDICT(MODEL named@1) scored before this query" in lines[scan + 1]


def test_an_empty_input_is_still_estimated_at_no_rows(models, customers_frame):
    text = models.explain(TREE_FILTER, frames={"c": customers_frame.head(0)})
    assert "Pandas Scan (~0 rows)" in text and "Filter (~0 rows)" in text
    assert "<1 row" not in text and "unknown" not in text


def test_an_estimate_rounded_to_zero_over_rows_reads_below_one_row():
    """DuckDB writes whole numbers: a 0 over an input it estimates at rows is below one
    row, a 0 over an empty input is none, a 0 over a stand-in's rows is no estimate."""

    def plan(scan: dict) -> str:
        top = {"name": "FILTER", "children": [scan], "extra_info": {"Expression": "(x > 1)", "Estimated Cardinality": "0"}}
        return draw([("physical_plan", json.dumps([top]))], [StandIn("predict(m@1)", frozenset({"x"}), 1200.0)]).text

    def scan(rows: int, function: str = "SEQ_SCAN") -> dict:
        return {"name": function, "children": [], "extra_info": {"Projections": "x", "Estimated Cardinality": str(rows)}}

    assert plan(scan(3)).split("\n")[0] == "Filter (<1 row)"
    assert plan(scan(0, "PANDAS_SCAN")).split("\n")[0] == "Filter (rows unknown)"  # reads only the stand-in's column
    assert "Python Arrow Scan (~1,200 rows)" in plan(scan(0, "PYTHON_ARROW_SCAN"))
    only = draw([("physical_plan", json.dumps([scan(0)]))], []).text
    assert only.split("\n")[0] == "Seq Scan (~0 rows)"


def test_wrapped_notes_lose_nothing(models, customers_frame):
    """Notes break between clauses or words, continuation lines indented: joined back,
    each is the note as planning wrote it."""
    note = models.execute(BOUNDS, frames={"c": customers_frame})[0].explain.split("\n")[0]
    assert len(note) > WIDTH
    assert note in unwrapped(models.explain(BOUNDS, frames={"c": customers_frame})).split("\n")
    wrapped = wrap_line(note)
    assert max(map(len, wrapped)) <= WIDTH and all(line.startswith("    ") for line in wrapped[1:])
    assert " ".join(line.strip() for line in wrapped) == note


def test_shortening_never_hides_a_function_call():
    """Only CASE expressions of comparisons, casts and constants are left out: a model's
    UDF (or any function) stays in view with every CASE around it."""
    leaf = "CASE WHEN (CAST(a AS FLOAT) <= 1.5) THEN (0.25) ELSE (0.75) END"
    deep = f"CASE WHEN (b <= 2.5) THEN ({leaf}) ELSE ({leaf}) END"
    called = f"CASE WHEN (c <= 3.5) THEN ({deep}) ELSE nbgov_udf_1(a, b, c) END"
    text = f"CASE WHEN (a IS NULL) THEN (NULL) ELSE {called} + {deep} + {deep} END"
    short = shorten(text, "duckdb", limit=200)
    assert "nbgov_udf_1(a, b, c)" in short and "CASE … END" in short
    assert short.startswith("CASE WHEN (a IS NULL) THEN (NULL) ELSE CASE WHEN (c <= 3.5) THEN")
    assert shorten("nbgov_udf_1(" + ", ".join(["a"] * 200) + ")", "duckdb", limit=50).count("a") == 200


def test_explain_of_a_file_query_fits_on_both_engines(any_engine: BaseEngine, onnx_models, customers_frame, tmp_path):
    """Spark's own plan text is kept; its long lines are wrapped and its long CASE shortened too."""
    path = tmp_path / "customers.parquet"
    customers_frame.to_parquet(path)
    register(any_engine, "tree_reg", onnx_models.get("tree_reg").path)
    text = any_engine.explain(f"SELECT id FROM '{path}' WHERE predict(tree_reg, {F}) > 100")
    widest = max(text.split("\n"), key=len)
    assert len(widest) <= WIDTH, widest
    flat = " ".join(text.replace("│", " ").split())  # the note, wherever the width broke it
    assert re.search(r"\[CASE … END: \d+ nested CASE expressions? not shown\]", flat), text


def _detail(text: str, key: str) -> str:
    """The value of the plan detail ``key``, its continuation lines joined."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if f"{key}: " in line)
    column = lines[start].index(f"{key}: ") + len(key) + 2
    parts = [lines[start][column:]]
    for line in lines[start + 1 :]:
        if len(line) <= column or line[:column].strip(" │") or line[column] == " ":
            break
        parts.append(line[column:])
    return " ".join(parts)


@pytest.mark.parametrize("width", [60, 72])
@pytest.mark.parametrize("sql", QUERIES.values(), ids=QUERIES.keys())
def test_every_line_fits_the_width_asked_for(models: Engine, onnx_models, customers_frame, sql, width):
    """A narrower output area (``SqlML.explain_width``) gets the plan and the notes wrapped
    within it, saying what they said at the default width; the default is unchanged."""
    params, frames = {"p": onnx_models.get("gb_clf").path}, {"c": customers_frame}
    models.explain(sql, params=params, frames=frames)  # a pruned model's note says, from the second on, it came from cache
    text = models.explain(sql, params=params, frames=frames, width=width)
    widest = max(text.split("\n"), key=len)
    assert len(widest) <= width, widest
    default = models.explain(sql, params=params, frames=frames)
    assert default == models.explain(sql, params=params, frames=frames, width=WIDTH)
    assert max(map(len, default.split("\n"))) > width  # the width asked for is what wrapped it
    notes = [line for line in unwrapped(default).split("\n") if line.startswith(("predict(", "ML.PREDICT(", "batching:"))]
    assert notes and set(notes) <= set(unwrapped(text).split("\n"))


def test_a_width_too_narrow_is_refused_in_one_line(models, customers_frame):
    with pytest.raises(SqlmlError, match=r"^explain width 20 is too narrow; expected at least 40 characters$"):
        models.explain(TREE_FILTER, frames={"c": customers_frame}, width=20)


def test_explain_on_both_engines_fits_a_narrow_width(any_engine: BaseEngine, onnx_models, customers_frame, tmp_path):
    """Spark's own plan text is wrapped at the width asked for too."""
    path = tmp_path / "customers.parquet"
    customers_frame.to_parquet(path)
    register(any_engine, "tree_reg", onnx_models.get("tree_reg").path)
    text = any_engine.explain(f"SELECT id FROM '{path}' WHERE predict(tree_reg, {F}) > 100", width=60)
    widest = max(text.split("\n"), key=len)
    assert len(widest) <= 60, widest
