"""Models of scikit-learn's user guide registered with ``CREATE MODEL … FROM $pipe``,
scored in SQL as scikit-learn scores them, or refused in one line saying why.

Found by trying the estimators a data scientist reaches for: a VotingClassifier (soft or
hard) did not convert at all (skl2onnx refuses scikit-learn's default
``flatten_transform=True``, which shapes only ``transform()``'s output); a ColumnTransformer
inside a nested Pipeline was not seen, so its named columns could not be bound ("Unable to
find column name 'age' among names ['input']"); text vectorizers gave an invalid graph
or, converted, split words unlike scikit-learn (943 of 2,005 reviews scored differently).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from nbgov.errors import InvalidModelError
from tests.fixtures.spark import ENGINES


def _customers(rows: int = 900, seed: int = 8) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 90, rows).astype(np.float64),
        "income": rng.normal(52_000, 15_000, rows),
        "plan": rng.choice(["basic", "silver", "gold"], rows),
    })
    score = (frame.age - 50) / 20 + (frame.plan == "gold") + rng.normal(0, 0.5, rows)
    return frame, np.digitize(score, [-0.3, 0.6])  # three classes


def _features() -> object:
    return make_column_transformer((StandardScaler(), ["age", "income"]),
                                   (OneHotEncoder(handle_unknown="ignore"), ["plan"]))


def _scores_as_scikit_learn(engine, pipe, frame: pd.DataFrame, optimize: bool, probabilities: bool) -> None:
    engine.execute("CREATE MODEL m FROM $pipe", params={"pipe": pipe})
    [result] = engine.execute("SELECT predict(m, *) AS p FROM customers WHERE age > 30",
                              frames={"customers": frame}, optimize=optimize)
    chosen = frame[frame.age > 30]
    np.testing.assert_array_equal([row["label"] for row in result.df.p], pipe.predict(chosen))
    if probabilities:
        scored = np.array([row["probabilities"] for row in result.df.p], dtype=np.float64)
        np.testing.assert_allclose(scored, pipe.predict_proba(chosen), atol=1e-5)


@pytest.mark.parametrize("any_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("voting", ["soft", "hard"])
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
def test_a_voting_classifier_scores_as_scikit_learn(any_engine, voting: str, optimize: bool):
    frame, labels = _customers()
    votes = VotingClassifier([("lr", LogisticRegression(max_iter=500)),
                              ("tree", DecisionTreeClassifier(max_depth=4, random_state=0))], voting=voting)
    pipe = make_pipeline(_features(), votes).fit(frame, labels)
    _scores_as_scikit_learn(any_engine, pipe, frame, optimize, probabilities=voting == "soft")
    assert votes.flatten_transform is True  # the user's model is left as it was


@pytest.mark.parametrize("any_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("final", ["logistic", "forest"])
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
def test_a_column_transformer_inside_a_nested_pipeline_binds_by_name(any_engine, final: str, optimize: bool):
    frame, labels = _customers()
    front = make_pipeline(_features(), PolynomialFeatures(2)) if final == "logistic" else make_pipeline(_features())
    model = LogisticRegression(max_iter=3000) if final == "logistic" else RandomForestClassifier(
        20, max_depth=5, random_state=0)
    pipe = make_pipeline(front, model).fit(frame, labels)
    _scores_as_scikit_learn(any_engine, pipe, frame, optimize, probabilities=True)


@pytest.mark.parametrize("vectorizer", [TfidfVectorizer(), CountVectorizer(), HashingVectorizer(n_features=64)],
                         ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("nested", [True, False], ids=["column-transformer", "bare"])
def test_a_text_vectorizer_is_refused_in_one_line(engine, vectorizer, nested: bool):
    reviews = pd.DataFrame({"review": ["good food", "awful service", "great food, good service", "poor"] * 10,
                            "length": [9.0, 13.0, 24.0, 4.0] * 10})
    liked = np.array([1, 0, 1, 0] * 10)
    if nested:
        pipe = make_pipeline(make_column_transformer((vectorizer, "review"), (StandardScaler(), ["length"])),
                             LogisticRegression()).fit(reviews, liked)
    else:
        pipe = make_pipeline(vectorizer, LogisticRegression()).fit(reviews.review, liked)
    with pytest.raises(InvalidModelError) as refused:
        engine.execute("CREATE MODEL m FROM $pipe", params={"pipe": pipe})
    message = str(refused.value)
    assert "\n" not in message
    assert type(vectorizer).__name__ in message and "tokeniz" in message
    assert engine.execute("SHOW MODELS")[0].df.empty  # nothing half-registered
