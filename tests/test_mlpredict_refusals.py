"""ML.PREDICT scores every row of its relation: a value the model refuses (a category its
OneHotEncoder does not know) fails the statement wherever it is, with or without the
optimizer, on both engines. A model inlined as SQL used to fail only on the rows the
statement went on to read, so a filter, a LIMIT or a count(*) around ML.PREDICT returned rows
that --no-optimize (onnxruntime over the whole relation) refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlglot.expressions as exp
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from nbgov.errors import NbgovError
from tests.fixtures.spark import engine_on, module_database
from tests.fixtures.sqlml import register, unwrapped

NUMBERS = ["age", "income"]
REFUSED = "ML.PREDICT(MODEL lin@1): input 'plan' holds a category the model's OneHotEncoder does not know"


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 80
    return pd.DataFrame({
        "id": np.arange(n, dtype=np.int64),
        "age": rng.integers(18, 80, n).astype(np.float64),
        "income": rng.normal(50_000, 15_000, n).round(2),
        "plan": rng.choice(["basic", "silver", "gold"], n),
        "churned": rng.integers(0, 2, n),
    })


@pytest.fixture(scope="module")
def pipeline(people: pd.DataFrame) -> Pipeline:
    """Scaler + one-hot + logistic regression: the optimizer inlines it as SQL."""
    features = ColumnTransformer([("cat", OneHotEncoder(), ["plan"]), ("num", StandardScaler(), NUMBERS)])
    model = Pipeline([("ct", features), ("lr", LogisticRegression(max_iter=500))])
    return model.fit(people[["plan", *NUMBERS]], people.churned)


@pytest.fixture
def mixed(people: pd.DataFrame) -> pd.DataFrame:
    frame = people.copy()
    frame.loc[[9, 40], "plan"] = "platinum"  # unknown to the encoder
    return frame


@pytest.fixture(scope="module")
def spark_lin_database(spark: Any, pipeline: Pipeline) -> Iterator[str]:
    """One Spark database for the module with `lin` registered: the `lin_engine` tests only
    read it (their tables are the frames of each statement), so each Spark test gets a
    fresh engine on it instead of registering the model again."""
    with module_database(spark, "nbgov_test_refusals_lin", lambda engine: register(engine, "lin", pipeline)) as name:
        yield name


@pytest.fixture(params=["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def lin_engine(request: pytest.FixtureRequest, pipeline: Pipeline) -> Iterator[Any]:
    """A fresh engine with the pipeline registered as `lin` (Spark's: the module's database)."""
    if request.param == "duckdb":
        engine = request.getfixturevalue("engine")
        register(engine, "lin", pipeline)
        yield engine
        return
    with engine_on(request.getfixturevalue("spark"), request.getfixturevalue("spark_lin_database")) as engine:
        yield engine


def _outcome(engine: Any, sql: str, frames: dict[str, pd.DataFrame], optimize: bool) -> str | pd.DataFrame:
    try:
        df = engine.execute(sql, frames=frames, optimize=optimize)[-1].df
    except NbgovError as exc:
        return str(exc)
    assert df is not None
    return df


REFUSING = [
    "SELECT id, predicted_label FROM ML.PREDICT(MODEL lin, TABLE mixed) WHERE plan <> 'platinum' ORDER BY id",
    "SELECT id, predicted_label FROM ML.PREDICT(MODEL lin, (SELECT * FROM mixed)) WHERE plan <> 'platinum' ORDER BY id",
    "SELECT count(*) AS n FROM ML.PREDICT(MODEL lin, TABLE mixed)",
    "SELECT id FROM ML.PREDICT(MODEL lin, TABLE mixed) ORDER BY id LIMIT 3",
    "WITH p AS (SELECT * FROM ML.PREDICT(MODEL lin, TABLE mixed)) SELECT id FROM p WHERE id < 5 ORDER BY id",
    # a join whose other side is empty: the engine never reads the scored side
    "SELECT s.id FROM ML.PREDICT(MODEL lin, TABLE mixed) s JOIN mixed u ON s.id = u.id WHERE u.id < 0",
    # the relation reads a CTE of the statement: the check, run on its own, reads it too
    "WITH src AS (SELECT * FROM mixed) SELECT id FROM ML.PREDICT(MODEL lin, TABLE src) WHERE plan <> 'platinum' ORDER BY id",
]


@pytest.mark.parametrize("sql", REFUSING)
def test_a_refused_value_anywhere_in_the_relation_fails_as_without_the_optimizer(
    lin_engine: Any, mixed: pd.DataFrame, sql: str
) -> None:
    plain = _outcome(lin_engine, sql, {"mixed": mixed}, optimize=False)
    optimized = _outcome(lin_engine, sql, {"mixed": mixed}, optimize=True)
    assert isinstance(plain, str) and plain.startswith(REFUSED), plain
    assert optimized == plain


def test_the_check_reads_the_whole_relation_and_says_so(engine: Any, pipeline: Pipeline, mixed: pd.DataFrame) -> None:
    register(engine, "lin", pipeline)
    notes = unwrapped(engine.explain(REFUSING[2], frames={"mixed": mixed}))
    assert "ML.PREDICT(MODEL lin@1): inlined as SQL" in notes
    assert "every row of the relation is checked first for values the model refuses" in notes
    assert "ML.PREDICT(MODEL lin@1): the check of every row" in notes  # its own query, planned apart


@pytest.mark.parametrize("sql", [
    "SELECT id, predicted_label FROM ML.PREDICT(MODEL lin, (SELECT * FROM mixed WHERE plan <> 'platinum')) ORDER BY id",
    "SELECT id, predict(lin, plan, age, income).label AS predicted_label FROM mixed WHERE plan <> 'platinum' ORDER BY id",
    "SELECT count(*) AS n FROM ML.PREDICT(MODEL lin, (SELECT * FROM mixed WHERE plan IN ('basic', 'gold')))",
])
def test_rows_kept_from_the_model_are_not_checked(lin_engine: Any, mixed: pd.DataFrame, pipeline: Pipeline, sql: str) -> None:
    """Inside the relation a filter decides which rows are scored, as does a filter around
    predict(): those statements run, the same with and without the optimizer."""
    plain = _outcome(lin_engine, sql, {"mixed": mixed}, optimize=False)
    optimized = _outcome(lin_engine, sql, {"mixed": mixed}, optimize=True)
    assert isinstance(plain, pd.DataFrame), plain
    assert isinstance(optimized, pd.DataFrame), optimized
    pd.testing.assert_frame_equal(optimized, plain)
    if "predicted_label" in plain:
        known = mixed[mixed.plan != "platinum"]
        assert plain.predicted_label.tolist() == pipeline.predict(known[["plan", *NUMBERS]]).tolist()
    else:
        assert plain.n.tolist() == [int(mixed.plan.isin(["basic", "gold"]).sum())]


def _known_labels(mixed: pd.DataFrame, pipeline: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose plan the model knows, and scikit-learn's labels for them."""
    known = (mixed.plan != "platinum").to_numpy()
    return known, pipeline.predict(mixed.loc[known, ["plan", *NUMBERS]])


BRANCHES = [
    "SELECT id, CASE WHEN plan IN ('basic', 'silver', 'gold') THEN predict(lin, plan, age, income).label END AS l FROM mixed ORDER BY id",
    "SELECT id, CASE plan WHEN 'platinum' THEN NULL ELSE predict(lin, plan, age, income).label END AS l FROM mixed ORDER BY id",
    "SELECT id, IF(plan <> 'platinum', predict(lin, plan, age, income).label, NULL) AS l FROM mixed ORDER BY id",
    "SELECT id, COALESCE(CASE WHEN plan = 'platinum' THEN -1 END, predict(lin, plan, age, income).label) AS l FROM mixed ORDER BY id",
]


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
@pytest.mark.parametrize("sql", BRANCHES)
def test_a_branch_that_keeps_a_refused_value_away_scores_only_the_rows_reaching_it(
    lin_engine: Any, mixed: pd.DataFrame, pipeline: Pipeline, sql: str, optimize: bool
) -> None:
    """DuckDB scores only the rows that reach predict() in a CASE/IF branch or a later
    COALESCE argument; Spark evaluated its UDF for every row before the CASE chose, so
    --no-optimize failed on Spark on the category the branch kept from the model."""
    out = _outcome(lin_engine, sql, {"mixed": mixed}, optimize=optimize)
    assert isinstance(out, pd.DataFrame), out
    known, expected = _known_labels(mixed, pipeline)
    assert out.l[known].astype(int).tolist() == expected.tolist()
    assert (out.l[~known].isna() | (out.l[~known] == -1)).all()


BESIDE = [
    "SELECT id FROM mixed WHERE plan = 'platinum' OR predict(lin, plan, age, income).label = 1 ORDER BY id",
    "SELECT id FROM mixed WHERE age > 0 AND (plan = 'platinum' OR predict(lin, plan, age, income).label = 1) ORDER BY id",
    "SELECT id FROM mixed WHERE plan = 'platinum' OR (age > 0 AND predict(lin, plan, age, income).label = 1) ORDER BY id",
]


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
@pytest.mark.parametrize("sql", BESIDE)
def test_an_or_that_decides_a_refused_row_first_keeps_it_from_the_model(
    lin_engine: Any, mixed: pd.DataFrame, pipeline: Pipeline, sql: str, optimize: bool
) -> None:
    """``plan = 'platinum' OR predict(...)``: DuckDB evaluates the UDF last, only on the rows
    the OR leaves undecided, so the category the model refuses never reaches it; Spark
    evaluated its UDF on every row first and failed. Each call now gets whether its row is
    still undecided (``spark/guards.py``), and the same rows come back on both engines."""
    out = _outcome(lin_engine, sql, {"mixed": mixed}, optimize=optimize)
    assert isinstance(out, pd.DataFrame), out
    known, labels = _known_labels(mixed, pipeline)
    expected = sorted([*mixed.id[~known], *mixed.id[known][labels == 1]])
    assert out.id.tolist() == expected


@pytest.mark.parametrize(("sql", "reached"), [
    ("SELECT CASE WHEN a THEN f(x) END", ["COALESCE(a, FALSE)"]),
    ("SELECT CASE WHEN a THEN 1 WHEN b THEN f(x) ELSE 2 END", ["NOT COALESCE(a, FALSE)", "COALESCE(b, FALSE)"]),
    ("SELECT CASE WHEN a THEN 1 WHEN f(x) THEN 2 END", ["NOT COALESCE(a, FALSE)"]),
    ("SELECT CASE WHEN a THEN 1 ELSE f(x) END", ["NOT COALESCE(a, FALSE)"]),
    ("SELECT CASE k WHEN 1 THEN f(x) END", ["COALESCE(k = 1, FALSE)"]),
    ("SELECT IF(a, 1, f(x))", ["NOT COALESCE(a, FALSE)"]),
    ("SELECT COALESCE(a, b, f(x))", ["a IS NULL", "b IS NULL"]),
    ("SELECT f(x) + 1 FROM t WHERE f(x) > 0", []),
    ("SELECT (SELECT CASE WHEN a THEN 1 END) + f(x)", []),
])
def test_the_rows_reaching_a_call_are_read_from_the_branches_around_it(sql: str, reached: list[str]) -> None:
    import sqlglot

    from nbgov.sqlml.planning.batching import reach_conditions

    tree = sqlglot.parse_one(sql, read="duckdb")
    call = next(node for node in tree.find_all(exp.Anonymous) if node.name == "f")
    assert [c.sql("duckdb") for c in reach_conditions(call)] == reached


@pytest.mark.parametrize(("sql", "rewritten"), [
    # a WHERE's top-level AND is split and pushed by DuckDB: left alone (filter pushdown kept)
    ("SELECT 1 FROM t WHERE a > 1 AND f(x)", "SELECT 1 FROM t WHERE a > 1 AND F(x)"),
    ("SELECT 1 FROM t WHERE a OR f(x)",
     "SELECT 1 FROM t WHERE CASE WHEN NOT COALESCE(a, FALSE) THEN a OR F(x) ELSE TRUE END"),
    ("SELECT 1 FROM t WHERE c AND (a OR f(x))",
     "SELECT 1 FROM t WHERE c AND (CASE WHEN NOT COALESCE(a, FALSE) THEN a OR F(x) ELSE TRUE END)"),
    ("SELECT 1 FROM t WHERE a OR (b AND f(x))",
     "SELECT 1 FROM t WHERE CASE WHEN NOT COALESCE(a, FALSE) THEN a OR "
     "(CASE WHEN COALESCE(b, TRUE) THEN b AND F(x) ELSE FALSE END) ELSE TRUE END"),
    # a QUALIFY's conjuncts: DuckDB runs those that are not comparisons first, then the
    # comparisons, each group in written order; the conjunct holding the call waits for
    # the ones run before it
    ("SELECT 1 FROM t QUALIFY row_number() OVER () <= 2 AND f(x) > 0",
     "SELECT 1 FROM t QUALIFY ROW_NUMBER() OVER () <= 2 AND "
     "CASE WHEN COALESCE(ROW_NUMBER() OVER () <= 2, TRUE) THEN F(x) > 0 ELSE FALSE END"),
    ("SELECT 1 FROM t QUALIFY row_number() OVER () <= 2 AND f(x) > 0 AND a IS NULL",
     "SELECT 1 FROM t QUALIFY ROW_NUMBER() OVER () <= 2 AND "
     "CASE WHEN COALESCE(ROW_NUMBER() OVER () <= 2 AND a IS NULL, TRUE) THEN F(x) > 0 ELSE FALSE END AND a IS NULL"),
    ("SELECT 1 FROM t QUALIFY row_number() OVER () <= 2 AND f(x)",
     "SELECT 1 FROM t QUALIFY ROW_NUMBER() OVER () <= 2 AND F(x)"),
    ("SELECT 1 FROM t QUALIFY row_number() OVER () <= 2 AND f(x) IN (1, 2)",
     "SELECT 1 FROM t QUALIFY ROW_NUMBER() OVER () <= 2 AND F(x) IN (1, 2)"),
    ("SELECT 1 FROM t QUALIFY a IS NULL AND row_number() OVER () <= 2 AND f(x) IS NULL",
     "SELECT 1 FROM t QUALIFY a IS NULL AND ROW_NUMBER() OVER () <= 2 AND "
     "CASE WHEN COALESCE(a IS NULL, TRUE) THEN F(x) IS NULL ELSE FALSE END"),
    # both sides may refuse: which DuckDB evaluates first is its own choice, as without nbgov
    ("SELECT 1 FROM t WHERE error('no') OR f(x)", "SELECT 1 FROM t WHERE ERROR('no') OR F(x)"),
    ("SELECT f(x) AND a FROM t", "SELECT F(x) AND a FROM t"),
])
def test_conditions_decided_before_a_call_that_may_refuse_go_first(sql: str, rewritten: str) -> None:
    """``siblings_first``: where --no-optimize's UDF (evaluated last) scores only the rows the
    conditions beside it leave undecided, an inlined model with an error() is made to wait
    for them too, with the same values (three-valued logic kept)."""
    import sqlglot

    from nbgov.sqlml.planning.batching import siblings_first

    tree = sqlglot.parse_one(sql, read="duckdb")
    siblings_first(next(node for node in tree.find_all(exp.Anonymous) if node.name == "f"))
    assert tree.sql("duckdb") == rewritten
