"""A scikit-learn Pipeline ending in LinearSVC — the linear text and tabular classifier of
scikit-learn's examples — registered with ``CREATE MODEL … FROM $pipe`` and scored in SQL.

skl2onnx's Pipeline parser asks every classifier step for a ZipMap option that LinearSVC's
converter does not take, so such a pipeline did not convert ("Option 'zipmap' not in
['nocl', 'output_class_labels', 'raw_scores'] for class 'LinearSVC'")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from tests.fixtures.spark import ENGINES


def _customers(rows: int, classes: int, seed: int = 4) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 90, rows).astype(np.float64),
        "income": rng.normal(52_000, 15_000, rows),
        "plan": rng.choice(["basic", "silver", "gold"], rows),
    })
    score = (frame.age - 50) / 20 + (frame.income - 52_000) / 15_000 + (frame.plan == "gold") * 1.5
    edges = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
    return frame, np.digitize(score + rng.normal(0, 0.3, rows), edges)


def _pipeline(frame: pd.DataFrame, labels: np.ndarray) -> object:
    features = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                                  ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])])
    return make_pipeline(features, LinearSVC(random_state=0)).fit(frame, labels)


@pytest.mark.parametrize("any_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
def test_a_pipeline_ending_in_linear_svc_scores_as_scikit_learn(any_engine, classes: int, optimize: bool):
    frame, labels = _customers(600, classes)
    pipe = _pipeline(frame, labels)
    any_engine.execute("CREATE MODEL svc FROM $pipe", params={"pipe": pipe})
    sql = "SELECT predict(svc, *) AS p FROM customers WHERE age > 30"
    [result] = any_engine.execute(sql, frames={"customers": frame}, optimize=optimize)
    chosen = frame[frame.age > 30]
    scored = result.df.p
    np.testing.assert_array_equal([row["label"] for row in scored], pipe.predict(chosen))
    # the second output is LinearSVC's decision function (it has no probabilities)
    scores = np.array([row["probabilities"] for row in scored], dtype=np.float64)
    np.testing.assert_allclose(scores.reshape(len(chosen), -1),
                               pipe.decision_function(chosen).reshape(len(chosen), -1), atol=1e-5)
