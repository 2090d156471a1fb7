"""``CREATE MODEL m FROM $pipeline`` scores as scikit-learn does, within 1e-5, with and
without the optimizer and on both engines.

The shape is scikit-learn's mixed-types example: a ColumnTransformer (OneHotEncoder on
strings; StandardScaler, or SimpleImputer then StandardScaler, on numbers) in front of
gradient boosting. scikit-learn scales in
float64 and hands the trees float32 features; a pipeline converted whole in float32
rounds the scaled value differently for about one row in a thousand, and a row that
lands on the other side of a split gets a probability off by up to 0.2.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pytest

from nbgov.sqlml.engine import BaseEngine
from tests.fixtures.sqlml import register, unwrapped

NUMERIC = ["age", "income", "balance", "visits"]
STRINGS = ["plan", "region"]
ROWS = 40_000  # enough rows that float32 scaling would cross some split (about 1 in 700)


def customers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "age": rng.integers(18, 90, n).astype(np.int32),
            "income": rng.normal(52_000, 16_000, n).round(2),
            "balance": rng.gamma(2.0, 600.0, n).round(2),
            "visits": rng.poisson(3, n).astype(np.int64),
            "plan": rng.choice(np.array(["basic", "silver", "gold", "platinum"], dtype=object), n),
            "region": rng.choice(np.array(["north", "south", "east", "west"], dtype=object), n),
        }
    )
    score = 0.05 * (frame.age - 50) - 0.00003 * (frame.income - 52_000) + 0.0004 * frame.balance
    frame["churned"] = (score + frame.plan.map({"basic": 0.8, "silver": 0.1, "gold": -0.7, "platinum": -1.4}) + rng.normal(0, 0.8, n) > 0).astype(int)
    frame["income"] = frame.income.where(rng.random(n) > 0.05)  # 5% unknown (NaN)
    return frame


@pytest.fixture(scope="module", params=["scaled", "imputed"])
def churn_pipeline(request: pytest.FixtureRequest) -> tuple[Any, pd.DataFrame]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = customers(3_000, seed=1)
    numeric = StandardScaler() if request.param == "scaled" else make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), STRINGS), ("num", numeric, NUMERIC)])),
            ("clf", GradientBoostingClassifier(n_estimators=40, max_depth=5, random_state=0)),
        ]
    )
    frame = customers(ROWS, seed=2)
    if request.param == "scaled":  # GradientBoosting sees NaN only behind an imputer
        train, frame = train.fillna({"income": 52_000.0}), frame.fillna({"income": 52_000.0})
    return pipeline.fit(train[NUMERIC + STRINGS], train.churned), frame


def test_the_pipeline_scales_in_double_and_scores_trees_in_float(churn_pipeline: tuple[Any, pd.DataFrame]) -> None:
    from nbgov.sqlml.catalog.sklearn_convert import convert

    model = convert(churn_pipeline[0], label="pipeline")
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert all(types[name] == onnx.TensorProto.DOUBLE for name in NUMERIC)
    assert all(types[name] == onnx.TensorProto.STRING for name in STRINGS)
    trees = next(n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier")
    feeding = next(n for n in model.graph.node if trees.input[0] in n.output)
    assert feeding.op_type == "Cast" and feeding.attribute[0].i == onnx.TensorProto.FLOAT


@pytest.mark.parametrize(
    "where",
    ["TRUE", "plan = 'gold' AND age >= 60", "income BETWEEN 40000 AND 45000 AND region <> 'west'"],
)
def test_probabilities_match_scikit_learn_with_and_without_the_optimizer(
    any_engine: BaseEngine, churn_pipeline: tuple[Any, pd.DataFrame], where: str
) -> None:
    pipeline, frame = churn_pipeline
    register(any_engine, "churn", pipeline)
    # NaN stays a number here (pandas' NaN would arrive as NULL, which gives NULL by contract)
    table = pa.table({name: pa.array(frame[name].to_numpy(), from_pandas=False) for name in frame.columns})
    sql = f"SELECT id, predict(churn, *).probabilities[2] AS p FROM customers WHERE {where} ORDER BY id"
    optimized = any_engine.execute(sql, frames={"customers": table})[0].df
    original = any_engine.execute(sql, frames={"customers": table}, optimize=False)[0].df
    rows = frame.set_index("id").loc[optimized.id]
    expected = pipeline.predict_proba(rows[NUMERIC + STRINGS])[:, 1]
    assert len(optimized) > 500
    assert optimized.equals(original)
    off = np.abs(optimized.p.to_numpy(dtype=float) - expected)
    assert off.max() <= 1e-5, f"{int((off > 1e-5).sum())} rows differ from scikit-learn"
    if where != "TRUE":
        explained = unwrapped(any_engine.explain(sql.replace("customers", "c"), frames={"c": table}))
        # pruned through the double scaler (and imputer), computed in SQL
        assert re.search(r"\(computed in SQL: (Imputer, )?Sub, Div\)", explained), explained


@cache
def _nan_routing_pipeline(head: str) -> Any:
    """``head`` behind a one-hot encoder, the numbers (NaN among them) passed straight
    through, fitted once per test run: both engines and both WHERE clauses score the same
    fitted pipeline, which registering and scoring only read."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    model = {
        "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=30, random_state=0),
        "random_forest": RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0),
        "decision_tree": DecisionTreeClassifier(max_depth=8, random_state=0),
    }[head]
    train = customers(3_000, seed=1)
    return Pipeline(
        [
            ("pre", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), STRINGS), ("num", "passthrough", NUMERIC)])),
            ("clf", model),
        ]
    ).fit(train[NUMERIC + STRINGS], train.churned)


@pytest.mark.parametrize("head", ["hist_gradient_boosting", "random_forest", "decision_tree"])
@pytest.mark.parametrize("where", ["TRUE", "plan = 'gold' AND income > 60000"])
def test_trees_route_nan_as_scikit_learn_learned_to(any_engine: BaseEngine, head: str, where: str) -> None:
    """NaN passed straight to the trees goes where each split learned to send it. skl2onnx
    1.20 alone gets this wrong twice: forests and trees send every NaN to the false branch
    (every NaN row off), and HistGradientBoosting does not convert at all on onnx >= 1.19
    (its NaN-routing flags are numpy booleans in an INTS attribute)."""
    pipeline, frame = _nan_routing_pipeline(head), customers(ROWS // 4, seed=2)
    register(any_engine, "trees", pipeline)
    table = pa.table({name: pa.array(frame[name].to_numpy(), from_pandas=False) for name in frame.columns})
    sql = f"SELECT id, predict(trees, *).probabilities[2] AS p FROM customers WHERE {where} ORDER BY id"
    optimized = any_engine.execute(sql, frames={"customers": table})[0].df
    assert optimized.equals(any_engine.execute(sql, frames={"customers": table}, optimize=False)[0].df)
    rows = frame.set_index("id").loc[optimized.id]
    assert len(rows) > 300 and (where != "TRUE" or rows.income.isna().sum() > 100)
    off = np.abs(optimized.p.to_numpy(dtype=float) - pipeline.predict_proba(rows[NUMERIC + STRINGS])[:, 1])
    assert off.max() <= 1e-5, f"{int((off > 1e-5).sum())} rows differ from scikit-learn"
