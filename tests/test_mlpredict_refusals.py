"""ML.PREDICT scores every row of its relation: a value the model refuses (a category its
OneHotEncoder does not know) fails the statement wherever it is, with or without the
optimizer, on both engines. A model inlined as SQL used to fail only on the rows the
statement went on to read, so a filter, a LIMIT or a count(*) around ML.PREDICT returned rows
that --no-optimize (onnxruntime over the whole relation) refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from nbgov.errors import NbgovError
from tests.fixtures.sqlml import register

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


@pytest.fixture(params=["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def lin_engine(request: pytest.FixtureRequest, pipeline: Pipeline) -> Any:
    engine = request.getfixturevalue("spark_engine" if request.param == "spark" else "engine")
    register(engine, "lin", pipeline)
    return engine


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
    notes = engine.explain(REFUSING[2], frames={"mixed": mixed})
    assert "ML.PREDICT(MODEL lin@1): inlined as SQL" in notes
    assert "every row of the relation is checked first for values the model refuses" in notes


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
