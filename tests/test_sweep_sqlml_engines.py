"""Fixes in the shared planning (``planning/mlpredict.py``) checked on both engines: ML.PREDICT
over a CTE of its statement, inlined as SQL or scored by ONNX, with and without the optimizer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.fixtures.sqlml import register
from tests.test_sweep_sqlml_duckdb import COLUMNS, NUMBERS, _people


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    return _people()


@pytest.fixture(scope="module")
def models(people: pd.DataFrame) -> dict[str, Any]:
    features = ColumnTransformer([("cat", OneHotEncoder(), ["plan", "region"]), ("num", StandardScaler(), NUMBERS)])
    trees = Pipeline([("ct", features), ("gb", GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0))])
    return {
        "churn": LogisticRegression(max_iter=1000).fit(people[NUMBERS], people.churned),
        "trees": trees.fit(people[COLUMNS], people.churned),
    }


@pytest.mark.parametrize("optimize", [True, False])
def test_ml_predict_over_a_cte_on_either_engine(any_engine: Any, people: pd.DataFrame, models: dict[str, Any], optimize: bool) -> None:
    """The relation reads the statement's CTE (it failed: 'Table with name old does not
    exist'); a model inlined as SQL reads it where the statement defines it (Spark, which
    hoists CTEs, refused a copy inside the relation as a duplicate name)."""
    for name, model in models.items():
        register(any_engine, name, model)
    frames = {"people": people}
    old = people[people.age > 60]
    for name, columns in (("churn", NUMBERS), ("trees", COLUMNS)):
        sql = (
            "WITH old AS (SELECT * FROM people WHERE age > 60)\n"
            f"SELECT id, predicted_probabilities[2] AS p FROM ML.PREDICT(MODEL {name}, TABLE old) ORDER BY id"
        )
        (result,) = any_engine.execute(sql, frames=frames, optimize=optimize)
        assert result.df.id.tolist() == old.id.tolist()
        expected = models[name].predict_proba(old[columns])[:, 1]
        np.testing.assert_allclose(result.df.p.to_numpy(float), expected, atol=1e-5)
