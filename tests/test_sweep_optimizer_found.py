"""Optimizer/--no-optimize divergences found by a sweep of the differential harness and
hand-written probes; each test runs the statement both ways on real DuckDB and
onnxruntime with a small scikit-learn model trained here, and checks the values against
scikit-learn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Binarizer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from nbgov.sqlml.engine import Engine
from tests.fixtures.spark import fill_database
from tests.fixtures.sqlml import register

PLANS = ["basic", "silver", "gold"]


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 60
    frame = pd.DataFrame({
        "rid": np.arange(n, dtype=np.int64),
        "plan": rng.choice(PLANS, n),
        "a": rng.integers(0, 10, n).astype(np.float64),
        "b": rng.normal(0.0, 2.0, n).round(1),
    })
    frame["y"] = ((frame.a > 4.5) ^ (frame.plan == "gold")).astype(np.int64)
    return frame


@pytest.fixture(scope="module")
def onehot_logreg(people: pd.DataFrame) -> Pipeline:
    """One-hot (unknown categories refused) + scaler + logistic regression: inlined as SQL
    with an ``error()`` for a category the encoder does not know."""
    features = ColumnTransformer([("cat", OneHotEncoder(), ["plan"]), ("num", StandardScaler(), ["a", "b"])])
    model = Pipeline([("ct", features), ("m", LogisticRegression(max_iter=500))])
    return model.fit(people[["plan", "a", "b"]], people.y)


@pytest.fixture(scope="module")
def spark_models(spark: Any) -> Iterator[Callable[[str, str, Any], str]]:
    """``spark_models(key, name, model)``: a Spark database of the module holding ``model``
    registered as ``name``, made once per key; the tests using it only read it (their
    tables are each statement's frames)."""
    made: dict[str, str] = {}

    def database(key: str, name: str, model: Any) -> str:
        if key not in made:
            made[key] = fill_database(spark, f"nbgov_test_found_{key}", lambda engine: register(engine, name, model))
        return made[key]

    try:
        yield database
    finally:
        for name in made.values():
            spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


@pytest.fixture
def engine_with(request: pytest.FixtureRequest) -> Iterator[Callable[[str, str, str, Any], Any]]:
    """``engine_with(which, key, name, model)``: a fresh engine with ``model`` registered as
    ``name``: DuckDB's (``which`` "engine") registered for the test, Spark's ("spark_engine")
    on the module's database for ``key`` (see spark_models)."""
    opened: list[Any] = []

    def make(which: str, key: str, name: str, model: Any) -> Any:
        if which == "engine":
            engine = request.getfixturevalue("engine")
            register(engine, name, model)
            return engine
        from nbgov.sqlml.spark.engine import SparkEngine

        spark = request.getfixturevalue("spark")
        spark.catalog.setCurrentDatabase(request.getfixturevalue("spark_models")(key, name, model))
        engine = SparkEngine(session=spark)
        opened.append((spark, engine))
        return engine

    yield make
    for spark, engine in opened:
        engine.close()
        spark.catalog.setCurrentDatabase("default")


def both(engine: Engine, sql: str, frames: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The statement's result with the optimizer, then with --no-optimize."""
    optimized = engine.execute(sql, frames=frames, optimize=True)[-1].df
    plain = engine.execute(sql, frames=frames, optimize=False)[-1].df
    assert optimized is not None and plain is not None
    return optimized, plain


def test_two_inlined_calls_in_a_qualify_beside_a_window_both_reach_sql(
    engine: Engine, people: pd.DataFrame, onehot_logreg: Pipeline
) -> None:
    """Two refusing inlined calls ANDed in a QUALIFY with ``row_number() <= 2``: the CASE
    that makes the window decide first copied the AND holding the other call before that
    call was inlined, so the statement still named the internal predict function and failed
    with 'Scalar Function with name nbgov_predict__ does not exist!' (optimizer only)."""
    register(engine, "lr", onehot_logreg)
    sql = (
        "SELECT rid, plan FROM t QUALIFY row_number() OVER (PARTITION BY plan ORDER BY rid) <= 2 "
        "AND predict(lr, plan, a, b).probabilities[1] > 0.1 AND predict(lr, plan, a, b).label = 1 ORDER BY rid"
    )
    optimized, plain = both(engine, sql, {"t": people})
    pd.testing.assert_frame_equal(optimized, plain)
    first_two = people.sort_values("rid").groupby("plan").head(2)
    proba = onehot_logreg.predict_proba(first_two[["plan", "a", "b"]])[:, 0]  # probabilities[1]: DuckDB lists count from 1
    label = onehot_logreg.predict(first_two[["plan", "a", "b"]])
    expected = first_two[(proba > 0.1) & (label == 1)].sort_values("rid")
    assert optimized.rid.tolist() == expected.rid.tolist()
    assert len(expected) > 0


@pytest.fixture(scope="module")
def boosted(people: pd.DataFrame) -> GradientBoostingRegressor:
    return GradientBoostingRegressor(n_estimators=5, max_depth=2, random_state=0).fit(people[["a", "b"]], people.a * 2 - people.b)


def test_bounds_decided_under_an_empty_range_are_not_reused_without_it(
    engine: Engine, people: pd.DataFrame, boosted: GradientBoostingRegressor
) -> None:
    """``a BETWEEN 8 AND 3`` admits no rows: pruning then leaves the model whole, so the
    ensemble-bounds memo key (the rebuilt model's, which holds no domains) was the
    unconstrained one, while the bounds over the empty cells decided every row. The next
    statement with the same output predicate and no range reused them and returned no rows."""
    register(engine, "gb", boosted)
    frames = {"t": people}
    empty = "SELECT rid FROM t WHERE a BETWEEN 8 AND 3 AND predict(gb, a, b) > 5 ORDER BY rid"
    assert engine.execute(empty, frames=frames)[-1].df.empty  # type: ignore[union-attr]
    sql = "SELECT rid FROM t WHERE plan = 'gold' AND predict(gb, a, b) > 5 ORDER BY rid"
    optimized, plain = both(engine, sql, frames)
    pd.testing.assert_frame_equal(optimized, plain)
    gold = people[people.plan == "gold"]
    expected = gold[boosted.predict(gold[["a", "b"]]) > 5].rid.tolist()
    assert optimized.rid.tolist() == expected and expected


@pytest.mark.parametrize(
    "model",
    [
        DecisionTreeClassifier(max_depth=3, random_state=0),
        RandomForestClassifier(n_estimators=40, max_depth=6, random_state=0),
    ],
    ids=["tree-inlined", "forest-onnx"],
)
def test_a_null_input_behind_a_binarizer_gives_null(engine: Engine, people: pd.DataFrame, model: Any) -> None:
    """A Binarizer lowered to SQL was ``CASE WHEN x > t THEN 1 ELSE 0 END``: a NULL input
    became 0, so the call's NULL guard (over the lowered features) let the row through and
    the optimizer scored it, where --no-optimize gives NULL for a row with a NULL input."""
    features = ColumnTransformer([("bin", Binarizer(threshold=4.5), ["a"]), ("raw", "passthrough", ["b"])])
    fitted = Pipeline([("ct", features), ("m", model)]).fit(people[["a", "b"]], people.y)
    register(engine, "bz", fitted)
    frame = people.copy()
    frame.loc[[1, 4], "a"] = None
    sql = "SELECT rid, predict(bz, a, b).probabilities[2] AS p FROM t ORDER BY rid"
    optimized, plain = both(engine, sql, {"t": frame})
    pd.testing.assert_frame_equal(optimized, plain)
    assert optimized.p.isna().tolist() == frame.a.isna().tolist()
    known = frame.dropna()
    np.testing.assert_allclose(
        optimized.p[frame.a.notna()].to_numpy(float), fitted.predict_proba(known[["a", "b"]])[:, 1], atol=1e-5
    )


def outcome(engine: Engine, sql: str, frames: dict[str, Any], optimize: bool) -> pd.DataFrame | str:
    """The result frame, or the error's message."""
    try:
        df = engine.execute(sql, frames=frames, optimize=optimize)[-1].df
    except Exception as exc:  # noqa: BLE001 - the two runs must fail alike
        return str(exc)
    assert df is not None
    return df


def assert_same_outcome(optimized: pd.DataFrame | str, plain: pd.DataFrame | str) -> None:
    """The same error message, or the same frame."""
    if isinstance(optimized, str) or isinstance(plain, str):
        assert isinstance(optimized, str) and isinstance(plain, str), (optimized, plain)
        assert optimized == plain
    else:
        pd.testing.assert_frame_equal(optimized, plain)


P1 = "predict(lr, plan, a, b).probabilities[2]"
WINDOW = "row_number() OVER (ORDER BY rid)"  # the refused row (rid 999) comes last


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        (f"SELECT rid FROM t WHERE {P1} > 0.5 OR a > 8 ORDER BY rid", True),
        (f"SELECT rid FROM t WHERE a > 8 OR {P1} > 0.5 ORDER BY rid", False),
        (f"SELECT rid FROM t WHERE NOT (a > 8 OR {P1} > 0.5) ORDER BY rid", True),
        (f"SELECT rid FROM t WHERE (a > 8 OR {P1} > 0.5) = TRUE ORDER BY rid", True),
        (f"SELECT rid FROM t WHERE ({P1} > 0.5 AND a < 8) OR b > 100 ORDER BY rid", True),
        (f"SELECT rid FROM t WHERE (a < 8 AND {P1} > 0.5) OR a > 100 ORDER BY rid", False),
        (f"SELECT rid FROM t QUALIFY {P1} > 0.5 AND {WINDOW} <= 5 ORDER BY rid", True),
        (f"SELECT rid FROM t QUALIFY {WINDOW} <= 5 AND {P1} > 0.5 ORDER BY rid", False),
    ],
    ids=["left-of-or", "right-of-or", "not-or", "or-compared", "left-of-and-in-or", "right-of-and-in-or",
         "qualify-left", "qualify-right"],
)
@pytest.mark.parametrize("which", ["engine", pytest.param("spark_engine", marks=pytest.mark.spark)])
def test_an_inlined_call_left_of_an_or_sees_every_row(
    which: str, people: pd.DataFrame, onehot_logreg: Pipeline, sql: str, refused: bool, engine_with: Any
) -> None:
    """DuckDB filters through an AND/OR left to right, the right side only on the rows the
    left leaves undecided, and computes an AND/OR below a NOT or a comparison whole. The
    optimizer took a call on either side of an OR (any AND/OR in a QUALIFY, or below a NOT)
    as decided last, so its inlined SQL skipped the unknown category that --no-optimize's
    UDF, evaluated first there, refused. Spark's UDF is guarded to score the same rows."""
    engine = engine_with(which, "lr", "lr", onehot_logreg)
    frame = pd.concat([people, pd.DataFrame({"rid": [999], "plan": ["platinum"], "a": [9.0], "b": [0.0], "y": [0]})])
    frames = {"t": frame}
    optimized = outcome(engine, sql, frames, optimize=True)
    plain = outcome(engine, sql, frames, optimize=False)
    if which == "spark_engine":  # Spark's own optimizer decides which rows its UDF meets
        assert_same_outcome(optimized, plain)
        return
    if refused:
        assert isinstance(plain, str) and "does not know" in plain
        assert optimized == plain
    else:
        assert isinstance(optimized, pd.DataFrame) and isinstance(plain, pd.DataFrame)
        pd.testing.assert_frame_equal(optimized, plain)
        assert 999 not in optimized.rid.tolist() or "a > 8" in sql


@pytest.fixture(scope="module")
def ignoring_forest(people: pd.DataFrame) -> Pipeline:
    """One-hot (unknown categories ignored) + a forest big enough to stay ONNX."""
    features = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]), ("raw", "passthrough", ["a", "b"])])
    model = Pipeline([("ct", features), ("m", RandomForestClassifier(n_estimators=60, max_depth=8, random_state=0))])
    return model.fit(people[["plan", "a", "b"]], people.y)


@pytest.fixture(scope="module")
def strict_forest(people: pd.DataFrame) -> Pipeline:
    """One-hot (unknown categories refused) + a forest big enough to stay ONNX."""
    features = ColumnTransformer([("cat", OneHotEncoder(), ["plan"]), ("raw", "passthrough", ["a", "b"])])
    model = Pipeline([("ct", features), ("m", RandomForestClassifier(n_estimators=60, max_depth=8, random_state=1))])
    return model.fit(people[["plan", "a", "b"]], people.y)


@pytest.mark.parametrize("second", ["strict_forest", "onehot_logreg"], ids=["batched-onnx", "inlined-sql"])
@pytest.mark.parametrize("which", ["engine", pytest.param("spark_engine", marks=pytest.mark.spark)])
def test_a_later_where_conjunct_scores_only_the_rows_an_earlier_one_keeps(
    which: str, people: pd.DataFrame, ignoring_forest: Pipeline, second: str, request: pytest.FixtureRequest
) -> None:
    """``WHERE predict(m, ...) > c AND predict(n, ...) > d``: DuckDB evaluates the function
    conjuncts in written order, ``n`` only on the rows ``m`` keeps, so --no-optimize never
    met the category ``n`` refuses in a row ``m`` drops. The optimizer scored ``n`` on every
    row: batched with ``m`` (an ONNX ``n``), or first as cheap SQL (an inlined ``n``). On
    Spark, which scores a UDF conjunct on every row with or without the optimizer, the
    inlined ``n`` must not wait for ``m`` either."""
    engine = request.getfixturevalue(which)
    register(engine, "m", ignoring_forest)
    register(engine, "n", request.getfixturevalue(second))
    frame = pd.concat([people, pd.DataFrame({"rid": [999], "plan": ["platinum"], "a": [9.0], "b": [0.0], "y": [0]})])
    row = frame[frame.rid == 999][["plan", "a", "b"]]
    cut = float(ignoring_forest.predict_proba(row)[0, 1]) + 0.01  # m drops the refused row
    sql = f"SELECT rid FROM t WHERE predict(m, plan, a, b).probabilities[2] > {cut} AND predict(n, plan, a, b).probabilities[2] > 0.5 ORDER BY rid"
    frames = {"t": frame}
    optimized = outcome(engine, sql, frames, optimize=True)
    plain = outcome(engine, sql, frames, optimize=False)
    if which == "spark_engine":
        # Spark scores a Python UDF's conjunct on every row, --no-optimize too: the same refusal
        assert isinstance(plain, str) and "does not know" in plain
        assert optimized == plain
        return
    assert isinstance(optimized, pd.DataFrame) and isinstance(plain, pd.DataFrame), (optimized, plain)
    pd.testing.assert_frame_equal(optimized, plain)
    known = people[["plan", "a", "b"]]
    keep = (ignoring_forest.predict_proba(known)[:, 1] > cut) & (request.getfixturevalue(second).predict_proba(known)[:, 1] > 0.5)
    assert optimized.rid.tolist() == people.rid[keep].tolist()


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        (f"SELECT rid FROM t QUALIFY {WINDOW} <= 5 AND predict(lr, plan, a, b).label IN (-3, 1) ORDER BY rid", True),
        (f"SELECT rid FROM t QUALIFY {WINDOW} <= 5 AND predict(lr, plan, a, b).label NOT IN (-3, 2) ORDER BY rid", True),
        (f"SELECT rid FROM t QUALIFY {WINDOW} <= 5 AND predict(lr, plan, a, b).label IS NOT NULL ORDER BY rid", True),
        (f"SELECT rid FROM t QUALIFY {WINDOW} <= 5 AND (a > 100 OR {P1} > 0.5) ORDER BY rid", True),
        (f"SELECT rid FROM t QUALIFY {WINDOW} <= 100 AND {P1} > 0.5 AND rid NOT IN (999) ORDER BY rid", False),
        (f"SELECT rid FROM t QUALIFY {WINDOW} <= 5 AND predict(lr, plan, a, b).label = 1 ORDER BY rid", False),
    ],
    ids=["in", "not-in", "is-not-null", "or", "comparison-after-a-later-not-in", "comparison"],
)
def test_a_qualify_evaluates_its_non_comparison_conjuncts_first(
    engine: Engine, people: pd.DataFrame, onehot_logreg: Pipeline, sql: str, refused: bool
) -> None:
    """DuckDB orders a QUALIFY's top-level conjuncts itself: those that are not comparisons
    (``x IN (...)``, rewritten to an OR of equalities, ``NOT IN``, ``IS [NOT] NULL``, an OR,
    a boolean function) first, in written order, then the comparisons (``=``, ``<``,
    ``BETWEEN``, ...) in written order, each on the rows the earlier ones keep. So
    --no-optimize scored ``predict(...) IN (-3, 1)`` on every row, before
    ``row_number() <= 5``, and refused the unknown category of a row the window drops; the
    optimizer took the window as decided first and returned rows. A comparison conjunct
    waits for a later NOT IN: --no-optimize never scored the row it drops."""
    register(engine, "lr", onehot_logreg)
    frame = pd.concat([people, pd.DataFrame({"rid": [999], "plan": ["platinum"], "a": [9.0], "b": [0.0], "y": [0]})])
    frames = {"t": frame}
    optimized = outcome(engine, sql, frames, optimize=True)
    plain = outcome(engine, sql, frames, optimize=False)
    if refused:
        assert isinstance(plain, str) and "does not know" in plain, plain
        assert isinstance(optimized, str) and optimized == plain, optimized
        return
    assert isinstance(optimized, pd.DataFrame) and isinstance(plain, pd.DataFrame), (optimized, plain)
    pd.testing.assert_frame_equal(optimized, plain)
    if "<= 100" in sql:
        keep = onehot_logreg.predict_proba(people[["plan", "a", "b"]])[:, 1] > 0.5
        assert optimized.rid.tolist() == people.rid[keep].tolist()
    else:
        first = people.sort_values("rid").head(5)
        assert optimized.rid.tolist() == first.rid[onehot_logreg.predict(first[["plan", "a", "b"]]) == 1].tolist()


@pytest.fixture(scope="module")
def text_labels(people: pd.DataFrame) -> dict[str, Any]:
    """Classifiers with text labels: a small tree (inlined as SQL) and a forest (batched ONNX)."""
    labels = np.where(people.y == 1, "yes", "no")
    return {
        "tree": DecisionTreeClassifier(max_depth=3, random_state=0).fit(people[["a", "b"]], labels),
        "forest": RandomForestClassifier(n_estimators=60, max_depth=8, random_state=0).fit(people[["a", "b"]], labels),
    }


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT rid, COALESCE(predict(m, a, NULL).label, -1) AS x FROM t ORDER BY rid", -1),
        ("SELECT rid, predict(m, NULL, b).label < 0 AS x FROM t ORDER BY rid", None),
        ("SELECT rid, COALESCE(predict(m, a, CAST(NULL AS FLOAT)).label, -1) AS x FROM t ORDER BY rid", -1),
        ("SELECT rid, predict(m, a, b).label AS y, COALESCE(predict(m, a, NULL).label, -1) AS x FROM t ORDER BY rid", -1),
    ],
    ids=["coalesce", "compared", "cast-null", "beside-a-scored-call"],
)
@pytest.mark.parametrize("kind", ["tree", "forest"])
@pytest.mark.parametrize("which", ["engine", pytest.param("spark_engine", marks=pytest.mark.spark)])
def test_a_literal_null_argument_folds_the_call_as_the_engine_does(
    which: str, people: pd.DataFrame, text_labels: dict[str, Any], kind: str, sql: str, expected: Any,
    engine_with: Any,
) -> None:
    """DuckDB folds a UDF called with a constant NULL argument into a constant NULL of its
    type while binding, and takes that constant as an untyped literal: with --no-optimize
    ``COALESCE(predict(m, a, NULL).label, -1)`` on a text label is -1 and ``... .label < 0``
    NULL. The optimizer's inlined SQL (a tree) or batched column (a forest) kept a VARCHAR
    value, and DuckDB refused to bind it ("Cannot mix values of type VARCHAR and
    INTEGER_LITERAL in COALESCE operator")."""
    engine = engine_with(which, f"m_{kind}", "m", text_labels[kind])
    frames = {"t": people}
    optimized = outcome(engine, sql, frames, optimize=True)
    plain = outcome(engine, sql, frames, optimize=False)
    assert_same_outcome(optimized, plain)
    if which == "spark_engine":
        return
    assert isinstance(optimized, pd.DataFrame)
    assert optimized.rid.tolist() == people.rid.tolist()
    assert [None if pd.isna(v) else v for v in optimized.x] == [expected] * len(people)
    if "y" in optimized:
        assert optimized.y.tolist() == text_labels[kind].predict(people[["a", "b"]]).tolist()


def test_an_output_filter_in_a_qualify_casts_a_computed_argument_only_where_the_window_keeps(
    engine: Engine, people: pd.DataFrame
) -> None:
    """Differential seed 32: ``predict(f, CAST(a AS INTEGER), b) = 0`` beside
    ``row_number() <= 2``, the output predicate decided by the forest's bounds and written as
    a CASE. DuckDB runs a QUALIFY's non-comparisons first, so the optimized statement cast
    an ``-inf`` on a row the window drops and failed ('Conversion Error: ... -inf ...
    INT32'), while --no-optimize's comparison ran after the window and returned rows."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(people[["a", "b"]].to_numpy(np.float32), people.a)
    register(engine, "f", model)
    rows = people.copy()
    rows.loc[rows.rid == 59, "a"] = -np.inf  # the last row of its plan: never among the first two
    sql = (
        "SELECT rid, plan FROM t QUALIFY row_number() OVER (PARTITION BY plan ORDER BY rid) <= 2 "
        "AND predict(f, CAST(a AS INTEGER), b) > -1 ORDER BY rid"
    )
    assert "output predicate" in engine.explain(sql, frames={"t": rows})
    optimized, plain = both(engine, sql, {"t": rows})
    pd.testing.assert_frame_equal(optimized, plain)
    assert optimized.rid.tolist() == rows.sort_values("rid").groupby("plan").head(2).sort_values("rid").rid.tolist()
