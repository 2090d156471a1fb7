"""The scikit-learn models data scientists deploy, scored by ``%%sqlml`` on DuckDB and on
Spark as scikit-learn scores them, with and without the optimizer, in the positions
users write ``predict`` (SELECT, WHERE, ORDER BY, a field, a list element, ML.PREDICT).

An outside review found every model of this zoo equal on both engines; what it found
broken was a OneHotEncoder of a number column fitted with NaN among its values, which
scikit-learn encodes as a category of its own and skl2onnx could not convert ("cannot
convert float NaN to integer"). Several models share one query so the Spark part stays
short: one session serves every test and each Spark job costs a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import make_column_transformer
from sklearn.ensemble import (
    AdaBoostClassifier,
    BaggingClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    KBinsDiscretizer,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)
from sklearn.svm import SVR, LinearSVC, LinearSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from nbgov.errors import NbgovError
from nbgov.sqlml.engine import BaseEngine
from tests.fixtures.spark import ENGINES

PROBABILITY_TOLERANCE = 1e-5
VALUE_TOLERANCE = 1e-6  # relative: a regressor's float32 output against scikit-learn's double
NUMBERS = ["age", "income", "visits"]


def _customers(rows: int = 240, seed: int = 5) -> pd.DataFrame:
    """The shape of scikit-learn's ColumnTransformer examples: numbers, one text category."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(rows, dtype=np.int64),
        "age": rng.integers(18, 90, rows).astype(np.float64),
        "income": rng.normal(52_000, 15_000, rows),
        "plan": rng.choice(["basic", "silver", "gold"], rows),
        "visits": rng.poisson(3, rows).astype(np.int64),
    })


def _targets(frame: pd.DataFrame, kind: str, seed: int = 6) -> np.ndarray:
    """Two classes, three classes or a number, each learnable from every column."""
    rng = np.random.default_rng(seed)
    score = (frame.age - 50) / 20 + (frame.plan == "gold") + rng.normal(0, 0.5, len(frame))
    if kind == "binary":
        return np.asarray(score > 0.3, dtype=np.int64)
    if kind == "three":
        return np.digitize(score, [-0.3, 0.6])
    return np.asarray(frame.age * 3 + frame.income / 1000 + (frame.plan == "gold") * 10 + rng.normal(0, 1, len(frame)))


def _features(numbers: Any = None) -> Any:
    """StandardScaler (or ``numbers``) on the number columns, OneHotEncoder on the text one."""
    return make_column_transformer((numbers if numbers is not None else StandardScaler(), NUMBERS),
                                   (OneHotEncoder(handle_unknown="ignore"), ["plan"]))


def _behind_features(model: BaseEstimator) -> Pipeline:
    return make_pipeline(_features(), model)


MakeModel = Callable[[], Pipeline]

# group -> (target kind, models by SQL name); names are short because each is a SQL model name
GROUPS: dict[str, tuple[str, dict[str, MakeModel]]] = {
    "trees": ("three", {
        "rf": lambda: _behind_features(RandomForestClassifier(15, max_depth=5, random_state=0)),
        "gb": lambda: _behind_features(GradientBoostingClassifier(n_estimators=15, random_state=0)),
        "hgb": lambda: _behind_features(HistGradientBoostingClassifier(max_iter=15)),
        "et": lambda: _behind_features(ExtraTreesClassifier(15, max_depth=5, random_state=0)),
        "dt": lambda: _behind_features(DecisionTreeClassifier(max_depth=5, random_state=0)),
    }),
    "other_classifiers": ("three", {
        "lr": lambda: _behind_features(LogisticRegression(max_iter=500)),
        "knn": lambda: _behind_features(KNeighborsClassifier()),
        "nb": lambda: _behind_features(GaussianNB()),
        "mlp": lambda: _behind_features(MLPClassifier(max_iter=300, random_state=0)),
        "ada": lambda: _behind_features(AdaBoostClassifier(n_estimators=15, random_state=0)),
        "bag": lambda: _behind_features(BaggingClassifier(n_estimators=5, random_state=0)),
    }),
    "labels_only": ("binary", {
        "sgd": lambda: _behind_features(SGDClassifier(random_state=0)),
        "ridge": lambda: _behind_features(RidgeClassifier()),
        "svc": lambda: _behind_features(LinearSVC()),
    }),
    "meta": ("binary", {
        "cal": lambda: _behind_features(CalibratedClassifierCV(LinearSVC())),
        "stack": lambda: _behind_features(StackingClassifier([("rf", RandomForestClassifier(10, random_state=0)),
                                                              ("lr", LogisticRegression())])),
        "vote": lambda: _behind_features(VotingClassifier([("lr", LogisticRegression(max_iter=500)),
                                                           ("dt", DecisionTreeClassifier(max_depth=3))], voting="soft")),
    }),
    "featurizers": ("binary", {
        "minmax": lambda: make_pipeline(_features(MinMaxScaler()), LogisticRegression(max_iter=500)),
        "robust": lambda: make_pipeline(_features(RobustScaler()), LogisticRegression(max_iter=500)),
        "maxabs": lambda: make_pipeline(_features(MaxAbsScaler()), LogisticRegression(max_iter=500)),
        "poly": lambda: make_pipeline(_features(make_pipeline(StandardScaler(), PolynomialFeatures(2))),
                                      LogisticRegression(max_iter=500)),
        "kbins": lambda: make_pipeline(_features(KBinsDiscretizer(4, encode="onehot-dense")),
                                       LogisticRegression(max_iter=500)),
        "imputed": lambda: make_pipeline(_features(make_pipeline(SimpleImputer(), StandardScaler())),
                                         LogisticRegression(max_iter=500)),
    }),
    "regressors": ("number", {
        "linreg": lambda: _behind_features(LinearRegression()),
        "ridgereg": lambda: _behind_features(Ridge()),
        "lasso": lambda: _behind_features(Lasso()),
        "enet": lambda: _behind_features(ElasticNet()),
        "rfreg": lambda: _behind_features(RandomForestRegressor(15, max_depth=5, random_state=0)),
        "gbreg": lambda: _behind_features(GradientBoostingRegressor(n_estimators=15, random_state=0)),
        "hgbreg": lambda: _behind_features(HistGradientBoostingRegressor(max_iter=15)),
        "svr": lambda: _behind_features(SVR()),
        "lsvr": lambda: _behind_features(LinearSVR(random_state=0)),
        "knnreg": lambda: _behind_features(KNeighborsRegressor()),
        "mlpreg": lambda: _behind_features(MLPRegressor(max_iter=300, random_state=0)),
        "dtreg": lambda: _behind_features(DecisionTreeRegressor(max_depth=5, random_state=0)),
    }),
}


@cache
def _fitted(group: str) -> dict[str, Pipeline]:
    """The group's models fitted once per test run (DuckDB and Spark score the same ones)."""
    kind, makers = GROUPS[group]
    frame = _customers()
    return {name: make().fit(frame, _targets(frame, kind)) for name, make in makers.items()}


def _register(engine: BaseEngine, models: dict[str, Pipeline]) -> None:
    for name, model in models.items():
        engine.execute(f"CREATE MODEL {name} FROM $model", params={"model": model})


def _frame(engine: BaseEngine, sql: str, frames: dict[str, Any], optimize: bool) -> pd.DataFrame:
    """The rows of the last statement of ``sql``."""
    frame = engine.execute(sql, frames=frames, optimize=optimize)[-1].df
    assert frame is not None
    return frame


def _labels(cells: Sequence[Any]) -> np.ndarray:
    return np.array([cell["label"] for cell in cells])


def _probabilities(cells: Sequence[Any]) -> np.ndarray:
    """Probabilities per row (a linear classifier without them gives its scores under this name)."""
    return np.array([np.ravel(cell["probabilities"]) for cell in cells], dtype=np.float64)


def _values(cells: Sequence[Any]) -> np.ndarray:
    """A regressor's output: one number per row (a one-element list or a scalar)."""
    return np.array([np.ravel(cell)[0] if not np.isscalar(cell) else cell for cell in cells], dtype=np.float64)


def _assert_scores_as(model: Pipeline, rows: pd.DataFrame, cells: Sequence[Any], kind: str) -> None:
    """Labels equal scikit-learn's, probabilities (when the model has them) and values within tolerance."""
    if kind == "number":
        want = model.predict(rows)
        np.testing.assert_allclose(_values(cells), want, rtol=VALUE_TOLERANCE, atol=VALUE_TOLERANCE * np.abs(want).max())
        return
    np.testing.assert_array_equal(_labels(cells), model.predict(rows))
    if "probabilities" in cells[0] and hasattr(model, "predict_proba"):
        np.testing.assert_allclose(_probabilities(cells), model.predict_proba(rows), atol=PROBABILITY_TOLERANCE)


def _same_scores(optimized: Sequence[Any], naive: Sequence[Any], kind: str) -> None:
    """The optimizer changes how a model is computed, never what it gives."""
    if kind == "number":
        np.testing.assert_allclose(_values(optimized), _values(naive), rtol=VALUE_TOLERANCE)
        return
    np.testing.assert_array_equal(_labels(optimized), _labels(naive))
    if "probabilities" in optimized[0]:
        np.testing.assert_allclose(_probabilities(optimized), _probabilities(naive), atol=PROBABILITY_TOLERANCE)


@pytest.mark.parametrize("any_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("group", list(GROUPS))
def test_every_model_scores_as_scikit_learn_under_a_filter(any_engine: BaseEngine, group: str) -> None:
    kind, _ = GROUPS[group]
    models = _fitted(group)
    _register(any_engine, models)
    frame = _customers()
    calls = ", ".join(f"predict({name}, *) AS {name}" for name in models)
    sql = f"SELECT id, {calls} FROM customers WHERE age > 40 ORDER BY id"
    runs = {optimize: _frame(any_engine, sql, {"customers": frame}, optimize) for optimize in (True, False)}
    chosen = frame[frame.age > 40]
    for optimize, scored in runs.items():
        np.testing.assert_array_equal(scored.id, chosen.id)
        for name, model in models.items():
            _assert_scores_as(model, chosen, list(scored[name]), kind)
    for name in models:
        _same_scores(list(runs[True][name]), list(runs[False][name]), kind)


THREE_CLASS = ("trees", "other_classifiers")


@pytest.mark.parametrize("any_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
@pytest.mark.parametrize("name", ["rf", "hgb", "lr", "mlp"])
def test_a_label_and_a_probability_filter_and_order_rows_as_scikit_learn(any_engine: BaseEngine, optimize: bool, name: str) -> None:
    model = next(_fitted(group)[name] for group in THREE_CLASS if name in _fitted(group))
    _register(any_engine, {name: model})
    frame = _customers()
    sql = (f"SELECT id, predict({name}, *).probabilities[2] AS p FROM customers "
           f"WHERE predict({name}, *).label = 1 AND age > 30 "
           f"ORDER BY predict({name}, *).probabilities[2] DESC, id")
    scored = _frame(any_engine, sql, {"customers": frame}, optimize)
    chosen = frame[(model.predict(frame) == 1) & (frame.age > 30)]
    second = model.predict_proba(frame)[:, 1]  # SQL lists count from 1
    assert sorted(scored.id) == sorted(chosen.id)
    np.testing.assert_allclose(scored.p, second[scored.id], atol=PROBABILITY_TOLERANCE)
    assert np.all(np.diff(second[scored.id]) <= PROBABILITY_TOLERANCE)  # scikit-learn's order, up to float ties


@pytest.mark.parametrize("any_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
def test_ml_predict_of_a_table_scores_every_row_as_scikit_learn(any_engine: BaseEngine, optimize: bool) -> None:
    models = _fitted("trees")
    _register(any_engine, {"gb": models["gb"]})
    frame = _customers()
    scored = _frame(any_engine, "SELECT * FROM ML.PREDICT(MODEL gb, TABLE customers)", {"customers": frame}, optimize).sort_values("id")
    assert list(scored.columns[:len(frame.columns)]) == list(frame.columns)
    np.testing.assert_array_equal(scored.predicted_label, models["gb"].predict(frame))
    np.testing.assert_allclose(np.array(scored.predicted_probabilities.tolist(), dtype=np.float64),
                               models["gb"].predict_proba(frame), atol=PROBABILITY_TOLERANCE)


def _with_missing(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as Arrow with NaN (a number, not NULL) in some ages and NULL in some incomes."""
    age = frame.age.to_numpy(copy=True)
    age[::7] = np.nan
    income = pa.array(frame.income, mask=np.arange(len(frame)) % 11 == 3)
    return pa.table({"id": frame.id, "age": pa.array(age, from_pandas=False), "income": income,
                     "plan": frame.plan, "visits": frame.visits})


@pytest.mark.parametrize("any_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
def test_nan_in_a_number_goes_where_each_tree_learned_and_null_gives_null(any_engine: BaseEngine, optimize: bool) -> None:
    models = {name: _fitted("trees")[name] for name in ("hgb", "dt")}
    _register(any_engine, models)
    table = _with_missing(_customers())
    calls = ", ".join(f"predict({name}, *) AS {name}" for name in models)
    scored = _frame(any_engine, f"SELECT id, {calls} FROM customers ORDER BY id", {"customers": table}, optimize)
    frame = table.to_pandas()
    null = frame.income.isna().to_numpy()
    assert np.isnan(frame.age).any()
    for name, model in models.items():
        assert scored[name][null].isna().all()
        _assert_scores_as(model, frame[~null], list(scored[name][~null]), "three")


def _rooms(rows: int = 200, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """A number of rooms that is sometimes unknown (NaN), as in a housing table."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": np.arange(rows, dtype=np.int64), "age": rng.integers(18, 90, rows).astype(np.float64),
                          "rooms": rng.choice([1.0, 2.0, 3.5, np.nan], rows)})
    return frame, np.asarray((frame.age > 50) ^ frame.rooms.isna(), dtype=np.int64)


def _rooms_model(handle_unknown: str, final: BaseEstimator) -> Pipeline:
    encoder = OneHotEncoder(handle_unknown=handle_unknown)
    return make_pipeline(make_column_transformer((StandardScaler(), ["age"]), (encoder, ["rooms"])), final)


def _arrow_with_nan(frame: pd.DataFrame) -> pa.Table:
    """NaN kept as a number (pandas' NaN reaches SQL as NULL, whose row is NULL)."""
    return pa.table({column: pa.array(frame[column].to_numpy(), from_pandas=False) for column in frame.columns})


@pytest.mark.parametrize("any_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("handle_unknown", ["ignore", "error"])
def test_a_one_hot_encoder_of_numbers_fitted_with_nan_scores_nan_as_its_category(any_engine: BaseEngine, handle_unknown: str) -> None:
    frame, labels = _rooms()
    models = {"rooms_lr": _rooms_model(handle_unknown, LogisticRegression()).fit(frame, labels),
              "rooms_dt": _rooms_model(handle_unknown, DecisionTreeClassifier(max_depth=4, random_state=0)).fit(frame, labels)}
    _register(any_engine, models)
    table = _arrow_with_nan(frame)
    calls = ", ".join(f"predict({name}, *) AS {name}" for name in models)
    sql = f"SELECT id, isnan(rooms) AS missing, {calls} FROM rooms ORDER BY id"
    runs = {optimize: _frame(any_engine, sql, {"rooms": table}, optimize) for optimize in (True, False)}
    for scored in runs.values():
        assert scored.missing.sum() == frame.rooms.isna().sum() > 0
        for name, model in models.items():
            _assert_scores_as(model, frame, list(scored[name]), "binary")
    for name in models:
        _same_scores(list(runs[True][name]), list(runs[False][name]), "binary")


@pytest.mark.parametrize("any_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "no-optimize"])
def test_an_unseen_number_is_refused_by_a_strict_encoder_fitted_with_nan(any_engine: BaseEngine, optimize: bool) -> None:
    frame, labels = _rooms()
    _register(any_engine, {"strict": _rooms_model("error", LogisticRegression()).fit(frame, labels)})
    unseen = _arrow_with_nan(frame.assign(rooms=frame.rooms.where(frame.id != 5, 4.0)))
    with pytest.raises(NbgovError):
        any_engine.execute("SELECT predict(strict, *) AS p FROM rooms", frames={"rooms": unseen}, optimize=optimize)
