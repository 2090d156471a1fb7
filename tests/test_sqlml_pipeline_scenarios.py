"""scikit-learn pipelines shaped like scikit-learn's and skl2onnx's documentation examples,
scored through ``CREATE MODEL m FROM $pipe`` under selective queries: the same rows and
values with and without the optimizer, and within 1e-5 of scikit-learn.

Each case here is a pipeline shape an outside review found scoring off scikit-learn or
failing where scikit-learn does not.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nbgov.sqlml.engine import Engine
from tests.fixtures.sqlml import register, unwrapped

NUMERIC = ["age", "income", "score"]
STRINGS = ["plan", "region"]
COLUMNS = NUMERIC + STRINGS


def customers(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers with a rare region (1%, an infrequent category) and a 3-class target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "age": rng.integers(18, 90, n).astype(np.int64),
            "income": rng.normal(50_000, 15_000, n).round(2),
            "score": rng.random(n),
            "plan": rng.choice(np.array(["basic", "silver", "gold", "platinum"], dtype=object), n),
            "region": rng.choice(np.array(["north", "south", "east", "west", "center"], dtype=object), n, p=[0.4, 0.3, 0.2, 0.09, 0.01]),
        }
    )
    target = (frame.age > 50).astype(int) + frame.plan.isin(["gold", "platinum"]).astype(int) + (rng.random(n) > 0.8)
    return frame, target.clip(0, 2).to_numpy()


def scored_both_ways(engine: Engine, pipeline: Any, frame: Any, where: str) -> pd.DataFrame:
    """The query's rows optimized, after checking they equal ``--no-optimize``'s."""
    register(engine, "m", pipeline)
    sql = (
        "SELECT id, predict(m, *).label AS label, predict(m, *).probabilities[1] AS p0, "
        f"predict(m, *).probabilities[3] AS p2 FROM t WHERE {where} ORDER BY id"
    )
    optimized = engine.execute(sql, frames={"t": frame})[0].df
    original = engine.execute(sql, frames={"t": frame}, optimize=False)[0].df
    assert optimized.label.equals(original.label) and optimized.id.equals(original.id)
    np.testing.assert_allclose(optimized[["p0", "p2"]].to_numpy(float), original[["p0", "p2"]].to_numpy(float), rtol=0, atol=1e-6)
    return optimized


def rows_off_scikit_learn(pipeline: Any, frame: pd.DataFrame, scored: pd.DataFrame) -> int:
    """How many scored rows differ from scikit-learn (label, or a probability by > 1e-5)."""
    rows = frame.set_index("id").loc[scored.id][COLUMNS]
    expected = pipeline.predict_proba(rows)
    off = np.abs(scored[["p0", "p2"]].to_numpy(float) - expected[:, [0, 2]]).max(axis=1) > 1e-5
    off |= scored.label.to_numpy() != pipeline.predict(rows)
    return int(off.sum())


@pytest.mark.parametrize("where", ["TRUE", "region = 'center' OR age < 40"])
@pytest.mark.parametrize("featurizer", ["infrequent_categories", "normalizer"])
def test_a_pipeline_the_optimizer_keeps_whole_scores_as_scikit_learn(engine: Engine, featurizer: str, where: str) -> None:
    """A featurizer the optimizer cannot lower (OneHotEncoder's infrequent categories become
    Split + ReduceSum; a Normalizer mixes columns) used to drop the exact double conversion
    for skl2onnx's all-float one, whose float32 scaling sent rows across splits (5 of 5,000
    off, probabilities by up to 0.93) and bought the optimizer nothing."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Normalizer, OneHotEncoder, StandardScaler
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    head: Any = DecisionTreeClassifier(max_depth=8, random_state=0)
    if featurizer == "infrequent_categories":
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=50)
        numbers: Any = StandardScaler(with_mean=False)
    else:
        encoder, numbers = OneHotEncoder(handle_unknown="ignore"), Normalizer()
        head = RandomForestClassifier(n_estimators=10, max_depth=8, random_state=0)
    train, target = customers(2_000, seed=1)
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", encoder, STRINGS), ("n", numbers, NUMERIC)])),
            ("clf", head),
        ]
    ).fit(train[COLUMNS], target)
    frame, _ = customers(20_000, seed=2)
    scored = scored_both_ways(engine, pipeline, frame, where)
    assert len(scored) > 1_000
    assert rows_off_scikit_learn(pipeline, frame, scored) == 0


@pytest.mark.parametrize("where", ["TRUE", "plan = 'gold' AND income > 55000"])
def test_columns_the_column_transformer_drops_are_not_model_inputs(engine: Engine, where: str) -> None:
    """remainder='drop' (scikit-learn's default): skl2onnx declared every fitted column an
    input, a dropped text column as a float, so ``predict(m, *)`` refused the table
    scikit-learn scores, and NULL in a dropped column would have made the row NULL."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    train, target = customers(2_000, seed=1)
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["plan"]), ("n", SimpleImputer(strategy="median"), ["age", "income"])])),
            ("clf", GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)),
        ]
    ).fit(train[COLUMNS], target)
    frame, _ = customers(4_000, seed=2)
    frame["score"] = frame.score.where(frame.id % 7 != 0)  # NULL where scikit-learn drops the column anyway
    scored = scored_both_ways(engine, pipeline, frame, where)
    assert len(scored) > 300 and scored.label.notna().all()
    assert rows_off_scikit_learn(pipeline, frame, scored) == 0
    described = engine.execute("DESCRIBE MODEL m")[0].df.to_string()
    assert "plan" in described and "region" not in described and "score" not in described


def test_explain_says_why_a_multinomial_logistic_regression_stays_in_onnx(engine: Engine) -> None:
    """scikit-learn's LogisticRegression on 3 classes (multinomial, ``multi_class=1``) is kept
    in ONNX on purpose (its softmax SQL would repeat each class score in every probability:
    seconds to compile, 10x slower to run); EXPLAIN said "the model proper has operators with no
    SQL translation", which sends a reader looking for an unsupported featurizer."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, target = customers(2_000, seed=1)
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), STRINGS), ("n", StandardScaler(), NUMERIC)])),
            ("clf", LogisticRegression(max_iter=2_000)),
        ]
    ).fit(train[COLUMNS], target)
    frame, _ = customers(10_000, seed=2)
    where = "plan <> 'basic' AND predict(m, *).probabilities[3] > 0.3"
    scored = scored_both_ways(engine, pipeline, frame, where)
    assert len(scored) > 1_000 and set(scored.label) >= {1, 2}
    assert rows_off_scikit_learn(pipeline, frame, scored) == 0
    explained = unwrapped(engine.explain(f"SELECT id, predict(m, *).label FROM t WHERE {where}", frames={"t": frame}))
    assert "kept as ONNX: pipeline + linear model kept in ONNX: a multinomial classifier (3 classes) is not translated" in explained, explained


@pytest.mark.parametrize("declared", ["from_dtype", "by_position"])
def test_hist_gradient_boosting_with_categorical_splits_is_refused(engine: Engine, declared: str) -> None:
    """scikit-learn's categorical-support example (HistGradientBoosting splitting on sets of
    categories, from a pandas category dtype or ``categorical_features``): skl2onnx 1.20
    wrote those splits as thresholds and every row scored off (by up to 0.94), silently."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from nbgov.errors import InvalidModelError

    train, target = customers(2_000, seed=1)
    if declared == "from_dtype":
        frame = train[["plan", "age"]].astype({"plan": "category"})
        model: Any = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(frame, target)
    else:
        encode = ColumnTransformer([("c", OrdinalEncoder(), STRINGS)], remainder="passthrough")
        head = HistGradientBoostingClassifier(max_iter=10, random_state=0, categorical_features=[0, 1])
        model = Pipeline([("pre", encode), ("clf", head)]).fit(train[COLUMNS], target)
    with pytest.raises(InvalidModelError, match="categorical_features has no exact ONNX form"):
        register(engine, "m", model)
    assert engine.execute("SHOW MODELS")[0].df.empty


@pytest.mark.parametrize("head", ["trees", "linear"])
def test_columns_named_as_in_the_adult_census_data_bind_by_name(engine: Engine, head: str) -> None:
    """scikit-learn's census examples name columns "capital-gain", "hours-per-week": skl2onnx
    renamed those inputs to identifiers (capital_gain), so ``predict(m, *)`` failed with
    "Referenced column capital_gain not found" on the very frame the model was fitted on."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    renamed = {"income": "capital-gain", "score": "hours per week", "region": "native.country"}
    train, target = customers(2_000, seed=1)
    numbers, strings = ["age", "capital-gain", "hours per week"], ["plan", "native.country"]
    model: Any = DecisionTreeClassifier(max_depth=6, random_state=0) if head == "trees" else LogisticRegression(max_iter=2_000)
    pipeline = Pipeline(
        [("pre", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), strings), ("n", StandardScaler(), numbers)])), ("clf", model)]
    ).fit(train.rename(columns=renamed)[numbers + strings], target)
    frame = customers(5_000, seed=2)[0].rename(columns=renamed)
    where = "\"native.country\" IN ('north', 'west') AND \"capital-gain\" > 50000"
    register(engine, "m", pipeline)
    sql = f"SELECT id, predict(m, *).label AS label, predict(m, *).probabilities[1] AS p0 FROM t WHERE {where} ORDER BY id"
    optimized = engine.execute(sql, frames={"t": frame})[0].df
    original = engine.execute(sql, frames={"t": frame}, optimize=False)[0].df
    assert len(optimized) > 500 and optimized.label.equals(original.label)
    np.testing.assert_allclose(optimized.p0.to_numpy(float), original.p0.to_numpy(float), rtol=0, atol=1e-6)
    rows = frame.set_index("id").loc[optimized.id][numbers + strings]
    np.testing.assert_allclose(optimized.p0.to_numpy(float), pipeline.predict_proba(rows)[:, 0], rtol=0, atol=1e-5)
    assert (optimized.label.to_numpy() == pipeline.predict(rows)).all()


def test_explain_names_the_column_an_integer_category_encoder_reads(engine: Engine) -> None:
    """A OneHotEncoder over integer categories (a 'tier' 1..3) is kept in ONNX; EXPLAIN said
    its feature "is computed by OneHotEncoder(numeric categories) from several columns",
    which it is not: it reads one column, and the note now names it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, target = customers(2_000, seed=1)
    train["tier"] = train.age % 3 + 1
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["plan", "tier"]), ("n", StandardScaler(), ["age"])])),
            ("clf", GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0)),
        ]
    ).fit(train[["plan", "tier", "age"]], target)
    frame = customers(3_000, seed=2)[0].assign(tier=lambda f: f.age % 3 + 1)
    register(engine, "m", pipeline)
    sql = "SELECT id, predict(m, *).probabilities[1] AS p0 FROM t WHERE tier = 2 AND plan = 'gold'"
    explained = unwrapped(engine.explain(sql, frames={"t": frame}))
    assert "is computed by OneHotEncoder(numeric categories) from tier" in explained, explained
    assert "several columns" not in explained
    optimized = engine.execute(sql + " ORDER BY id", frames={"t": frame})[0].df
    expected = pipeline.predict_proba(frame.set_index("id").loc[optimized.id][["plan", "tier", "age"]])[:, 0]
    np.testing.assert_allclose(optimized.p0.to_numpy(float), expected, rtol=0, atol=1e-5)


def test_a_binarizer_in_double_scores_the_threshold_itself_as_scikit_learn(engine: Engine) -> None:
    """Binarizer(threshold=3) on a count: scikit-learn gives 0 at exactly 3 (``x > t``);
    skl2onnx's double form (``Where(Less(x, t), 0, 1)``) gave 1, so every row with 3 visits
    scored off in a pipeline kept in double (here: infrequent categories beside it)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Binarizer, OneHotEncoder, StandardScaler

    columns = [*COLUMNS, "visits"]
    train, target = customers(2_000, seed=1)
    train["visits"] = np.random.default_rng(1).poisson(3, len(train))
    featurizer = ColumnTransformer(
        [
            ("c", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=50), STRINGS),
            ("b", Binarizer(threshold=3), ["visits"]),
            ("n", StandardScaler(), NUMERIC),
        ]
    )
    pipeline = Pipeline([("pre", featurizer), ("clf", RandomForestClassifier(n_estimators=10, max_depth=8, random_state=0))])
    pipeline.fit(train[columns], target)
    frame = customers(5_000, seed=2)[0]
    frame["visits"] = np.random.default_rng(2).poisson(3, len(frame))
    scored = scored_both_ways(engine, pipeline, frame, "visits = 3 OR age > 70")
    assert (frame.set_index("id").loc[scored.id].visits == 3).sum() > 500
    rows = frame.set_index("id").loc[scored.id][columns]
    np.testing.assert_allclose(scored[["p0", "p2"]].to_numpy(float), pipeline.predict_proba(rows)[:, [0, 2]], rtol=0, atol=1e-5)
    assert (scored.label.to_numpy() == pipeline.predict(rows)).all()


def test_a_binarizer_beside_a_scaler_scores_as_scikit_learn_and_is_still_lowered(engine: Engine) -> None:
    """A Binarizer kept the whole pipeline in skl2onnx's float form (so the optimizer could
    lower it), and the StandardScaler beside it then rounded in float32: 33 of 5,000 rows
    off scikit-learn. The double form is now lowered too: the Binarizer computed in SQL."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Binarizer, OneHotEncoder, StandardScaler

    columns = [*COLUMNS, "visits"]
    train, target = customers(2_000, seed=1)
    train["visits"] = np.random.default_rng(1).poisson(3, len(train))
    featurizer = ColumnTransformer(
        [("c", OneHotEncoder(handle_unknown="ignore"), STRINGS), ("b", Binarizer(threshold=3), ["visits"]), ("n", StandardScaler(), NUMERIC)]
    )
    pipeline = Pipeline([("pre", featurizer), ("clf", RandomForestClassifier(n_estimators=10, max_depth=8, random_state=0))])
    pipeline.fit(train[columns], target)
    frame = customers(20_000, seed=2)[0]
    frame["visits"] = np.random.default_rng(2).poisson(3, len(frame))
    where = "visits = 3 AND age > 40"
    scored = scored_both_ways(engine, pipeline, frame, where)
    rows = frame.set_index("id").loc[scored.id][columns]
    assert len(scored) > 2_000
    np.testing.assert_allclose(scored[["p0", "p2"]].to_numpy(float), pipeline.predict_proba(rows)[:, [0, 2]], rtol=0, atol=1e-5)
    explained = unwrapped(engine.explain(f"SELECT predict(m, *).label FROM t WHERE {where}", frames={"t": frame}))
    assert "visits = 3 (computed in SQL: Binarizer) AND age > 40 (computed in SQL: Sub, Div)" in explained, explained


def test_an_imputer_in_front_of_the_one_hot_encoder_converts(engine: Engine) -> None:
    """scikit-learn's mixed-types example imputes text before encoding it
    (``make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder())``): the text
    column was typed as a number (only a first step's categories were looked at) and
    CREATE MODEL failed with "could not convert string to float: 'platinum'". A missing
    string reaches the model as NULL (the row is NULL by contract), so the imputer is an
    identity on every value scored."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, target = customers(2_000, seed=1)
    train.loc[train.index % 11 == 0, "plan"] = np.nan
    strings = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", strings, STRINGS), ("n", numbers, NUMERIC)])),
            ("clf", GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)),
        ]
    ).fit(train[COLUMNS], target)
    frame = customers(5_000, seed=2)[0]
    scored = scored_both_ways(engine, pipeline, frame, "plan = 'gold' AND age > 50")
    assert len(scored) > 300
    assert rows_off_scikit_learn(pipeline, frame, scored) == 0
    explained = unwrapped(engine.explain("SELECT predict(m, *).label FROM t WHERE plan = 'gold' AND age > 50", frames={"t": frame}))
    assert "using plan = 'gold' (one-hot)" in explained, explained
    with_null = frame.assign(plan=frame.plan.where(frame.id % 10 != 0, None))
    nulls = engine.execute("SELECT count(*) AS n FROM t WHERE plan IS NULL AND predict(m, *).label IS NULL", frames={"t": with_null})[0].df
    assert nulls.n[0] == 500


def test_a_qualified_star_binds_that_table_s_columns(engine: Engine) -> None:
    """``predict(m, t.*)`` bound the unqualified names, so in a join with another table that
    has an ``age`` it failed as ambiguous, and ``predict(m, o.*)`` silently scored t's
    columns when o had none of the inputs. It now binds ``t.age``, ``t.plan``..."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from nbgov.errors import SqlmlError

    train, target = customers(2_000, seed=1)
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), STRINGS), ("n", StandardScaler(), NUMERIC)])),
            ("clf", GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)),
        ]
    ).fit(train[COLUMNS], target)
    frame = customers(3_000, seed=2)[0]
    other = frame[["id", "age", "plan"]].assign(age=100 - frame.age, plan="gold")  # same names, other values
    segments = frame[["id"]].assign(segment=frame.id % 3)
    frames = {"t": frame, "u": other, "s": segments}
    register(engine, "m", pipeline)
    sql = "SELECT t.id, predict(m, t.*).probabilities[2] AS p FROM t JOIN u ON t.id = u.id WHERE u.age > 60 AND t.plan = 'basic' ORDER BY t.id"
    optimized = engine.execute(sql, frames=frames)[0].df
    original = engine.execute(sql, frames=frames, optimize=False)[0].df
    assert len(optimized) > 100 and optimized.equals(original)
    rows = frame.set_index("id").loc[optimized.id][COLUMNS]
    np.testing.assert_allclose(optimized.p.to_numpy(float), pipeline.predict_proba(rows)[:, 1], rtol=0, atol=1e-5)
    wrong_table = "SELECT t.id, predict(m, s.*).label AS l FROM t JOIN s ON t.id = s.id"
    for optimize in (True, False):
        with pytest.raises(SqlmlError, match='"s" does not have a column named "age"'):
            engine.execute(wrong_table, frames=frames, optimize=optimize)


@pytest.mark.parametrize("numbers", ["imputed", "nan_to_the_trees"])
def test_isnan_in_the_where_prunes_the_trees(engine: Engine, numbers: str) -> None:
    """``WHERE isnan(income)`` (the rows scikit-learn imputes, or sends down each split's
    learned NaN branch) fixes what the trees see of income; it was "no usable predicate"."""
    import pyarrow as pa
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, target = customers(2_000, seed=1)
    train.loc[train.index % 9 == 0, "income"] = np.nan
    if numbers == "imputed":
        scale: Any = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        head: Any = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)
    else:
        scale, head = StandardScaler(), HistGradientBoostingClassifier(max_iter=10, random_state=0)
    pipeline = Pipeline([("pre", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), STRINGS), ("n", scale, NUMERIC)])), ("clf", head)])
    pipeline.fit(train[COLUMNS], target)
    frame = customers(5_000, seed=2)[0]
    frame.loc[frame.index % 7 == 0, "income"] = np.nan
    table = pa.table({c: pa.array(frame[c].to_numpy(), from_pandas=False) for c in frame.columns})  # NaN stays NaN
    scored = scored_both_ways(engine, pipeline, table, "isnan(income) AND region <> 'west'")
    assert len(scored) > 500
    assert rows_off_scikit_learn(pipeline, frame, scored) == 0
    explained = unwrapped(engine.explain("SELECT predict(m, *).label FROM t WHERE isnan(income)", frames={"t": table}))
    assert "tree nodes using isnan(income) (computed in SQL:" in explained, explained
    assert "admits no rows" not in explained


@cache
def _strict_one_hot_pipeline() -> tuple[pd.DataFrame, Any]:
    """Customers and a pipeline whose OneHotEncoder refuses unknown categories, fitted once
    per run: each SQL form on each engine scores the same fitted model (nothing mutates it)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, target = customers(3_000, seed=21)
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", OneHotEncoder(handle_unknown="error"), STRINGS), ("n", StandardScaler(), NUMERIC)])),
            ("clf", GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0)),
        ]
    ).fit(frame[COLUMNS], target)
    return frame, pipeline


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id, predict(m, *).label AS label FROM t ORDER BY id",
        "SELECT count(*) AS n FROM t WHERE plan <> 'basic' AND predict(m, *).probabilities[3] > 0.5",
        "SELECT id, predicted_label FROM ML.PREDICT(MODEL m, TABLE t) ORDER BY id",
    ],
)
def test_a_category_the_model_refuses_fails_alike_with_and_without_the_optimizer(any_engine: Any, sql: str) -> None:
    """handle_unknown='error': scikit-learn raises on an unseen category, onnxruntime fails on
    the batch; with or without the optimizer, on either engine, the statement fails with the
    same one line."""
    engine = any_engine
    from nbgov.errors import ModelBindingError

    frame, pipeline = _strict_one_hot_pipeline()
    register(engine, "m", pipeline)
    unseen = frame.assign(plan=frame.plan.where(frame.id != 7, "diamond"))
    with pytest.raises(ValueError, match="unknown categor"):
        pipeline.predict(unseen[COLUMNS])
    expected = (
        "predict(m@1): input 'plan' holds a category the model's OneHotEncoder does not know "
        "(it refuses unknown categories); known: basic, gold, platinum, silver"
    )
    messages = []
    for optimize in (True, False):
        with pytest.raises(ModelBindingError) as raised:
            engine.execute(sql, frames={"t": unseen}, optimize=optimize)
        messages.append(str(raised.value))
    assert messages[0] == messages[1]
    assert messages[0].endswith(expected.split(": ", 1)[1])
    # the known categories score, optimized (its SQL check in the engine's dialect) or not
    scored = [engine.execute(sql, frames={"t": frame}, optimize=optimize)[0].df for optimize in (True, False)]
    pd.testing.assert_frame_equal(scored[0], scored[1], check_dtype=False)


def tiered(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers with an integer ``tier`` (1 to 4) the 3-class target depends on."""
    frame, _ = customers(n, seed)
    frame["tier"] = np.random.default_rng(seed + 100).integers(1, 5, n).astype(np.int64)
    target = (frame.tier >= 3).astype(int) + frame.plan.isin(["gold", "platinum"]).astype(int) + (frame.age > 60).astype(int)
    return frame, target.clip(0, 2).to_numpy()


def with_tiers(frame: pd.DataFrame, tiers: list[float | None]) -> tuple[pd.DataFrame, Any]:
    """``frame``'s first rows given ``tiers`` (None a missing value, NaN a number): as
    scikit-learn reads them, and as an Arrow table, where NaN stays NaN (pandas frames
    reach SQL with NaN as NULL)."""
    import pyarrow as pa

    rows = frame.head(len(tiers) * 40).copy()
    column = rows.tier.astype(object)
    column.iloc[: len(tiers)] = tiers
    rows["tier"] = column
    table = pa.Table.from_pandas(rows.drop(columns="tier"), preserve_index=False)
    table = table.append_column("tier", pa.array(column.tolist(), type=pa.float64(), from_pandas=False))
    return rows.assign(tier=column.astype(float)), table


def scored_as_scikit_learn(engine: Any, pipeline: Any, rows: pd.DataFrame, table: Any, sql: str, columns: list[str]) -> pd.DataFrame:
    """The query's ``id`` and ``p`` (the probabilities), optimized, after checking they equal
    ``--no-optimize``'s and scikit-learn's ``predict_proba`` within 1e-5 (NULL rows apart)."""
    optimized = engine.execute(sql, frames={"t": table})[0].df
    original = engine.execute(sql, frames={"t": table}, optimize=False)[0].df
    assert optimized.id.tolist() == original.id.tolist() and len(optimized) > 0
    scored = optimized[optimized.p.notna()]
    assert original.p.notna().tolist() == optimized.p.notna().tolist()
    np.testing.assert_allclose(np.stack(scored.p.to_numpy()), np.stack(original.p[optimized.p.notna()].to_numpy()), rtol=0, atol=1e-6)
    expected = pipeline.predict_proba(rows.set_index("id").loc[scored.id][columns])
    np.testing.assert_allclose(np.stack(scored.p.to_numpy()), expected, rtol=0, atol=1e-5)
    return optimized


@cache
def _strict_ordinal_pipeline() -> tuple[pd.DataFrame, Any]:
    """Customers and a pipeline whose OrdinalEncoder refuses unknown categories (its
    default), fitted once per run for every SQL form on both engines."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    frame, target = customers(3_000, seed=21)
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", OrdinalEncoder(), STRINGS), ("n", StandardScaler(), NUMERIC)])),
            ("clf", HistGradientBoostingClassifier(max_iter=30, max_depth=4, random_state=0)),
        ]
    ).fit(frame[COLUMNS], target)
    return frame, pipeline


@pytest.mark.parametrize(
    "sql, label",
    [
        ("SELECT id, predict(m, *).label AS label FROM t ORDER BY id", "predict(m@1)"),
        ("SELECT count(*) AS n FROM t WHERE plan <> 'basic' AND predict(m, *).probabilities[3] > 0.5", "predict(m@1)"),
        ("SELECT id, predicted_label FROM ML.PREDICT(MODEL m, TABLE t) ORDER BY id", "ML.PREDICT(MODEL m@1)"),
    ],
)
def test_a_category_the_ordinal_encoder_refuses_fails_alike_with_and_without_the_optimizer(any_engine: Any, sql: str, label: str) -> None:
    """OrdinalEncoder() refuses a category unseen at fit time (handle_unknown='error', its
    default); skl2onnx coded it -1 and nbgov scored the row as if it were a category,
    with or without the optimizer, where scikit-learn refuses it. Now the statement fails
    with the OneHotEncoder's one line, naming the OrdinalEncoder; the known categories
    score as scikit-learn does."""
    engine = any_engine
    from nbgov.errors import ModelBindingError

    frame, pipeline = _strict_ordinal_pipeline()
    register(engine, "m", pipeline)
    unseen = frame.head(400).assign(plan=lambda f: f.plan.where(f.id != 7, "diamond"))
    with pytest.raises(ValueError, match=r"Found unknown categories \['diamond'\]"):
        pipeline.predict(unseen[COLUMNS])
    expected = (
        f"{label}: input 'plan' holds a category the model's OrdinalEncoder does not know "
        "(it refuses unknown categories); known: basic, gold, platinum, silver"
    )
    for optimize in (True, False):
        with pytest.raises(ModelBindingError) as raised:
            engine.execute(sql, frames={"t": unseen}, optimize=optimize)
        assert str(raised.value) == expected
    # the rows a query keeps all known: they score, as scikit-learn scores them
    probabilities = "SELECT id, predict(m, *).probabilities AS p FROM t WHERE plan <> 'diamond' ORDER BY id"
    scored = scored_as_scikit_learn(engine, pipeline, unseen, unseen, probabilities, COLUMNS)
    assert len(scored) == len(unseen) - 1


@cache
def _strict_tier_pipeline(encoder: str) -> Any:
    """A strict ``encoder`` of 'plan' and the integer 'tier' in front of gradient boosting,
    fitted once per run: the three refused values on both engines score the same model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    columns = ["plan", "tier", "age"]
    train, target = tiered(2_000, seed=5)
    encode = OrdinalEncoder() if encoder == "OrdinalEncoder" else OneHotEncoder()
    return Pipeline(
        [
            ("pre", ColumnTransformer([("c", encode, ["plan", "tier"]), ("n", StandardScaler(), ["age"])])),
            ("clf", GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)),
        ]
    ).fit(train[columns], target)


@pytest.mark.parametrize("tier", [5.0, 2.5, math.nan])
@pytest.mark.parametrize("encoder", ["OrdinalEncoder", "OneHotEncoder"])
def test_an_integer_category_the_encoder_refuses_fails_alike_with_and_without_the_optimizer(any_engine: Any, encoder: str, tier: float) -> None:
    """A strict encoder of integer categories (a 'tier' 1 to 4 next to a text column, in a
    ColumnTransformer) given 5 (unseen), 2.5 or NaN: scikit-learn refuses each. skl2onnx's
    OrdinalEncoder coded them -1, its OneHotEncoder cast 2.5 to the integer 2, so nbgov
    scored them, and onnxruntime's refusal of 5 was its own node status. Now each fails with
    the one line of the text encoders; NULL still scores NULL, and the rest as scikit-learn."""
    engine = any_engine
    from nbgov.errors import ModelBindingError

    columns = ["plan", "tier", "age"]
    pipeline = _strict_tier_pipeline(encoder)
    register(engine, "m", pipeline)
    rows, table = with_tiers(tiered(2_000, seed=6)[0], [tier, None, 1.0, 3.0])
    with pytest.raises(ValueError, match="Found unknown categories"):
        pipeline.predict(rows.head(1)[columns])
    expected = (
        f"predict(m@1): input 'tier' holds a category the model's {encoder} does not know "
        "(it refuses unknown categories); known: 1, 2, 3, 4"
    )
    sql = "SELECT id, predict(m, *).probabilities AS p FROM t ORDER BY id"
    for optimize in (True, False):
        with pytest.raises(ModelBindingError) as raised:
            engine.execute(sql, frames={"t": table}, optimize=optimize)
        assert str(raised.value) == expected
    scored = scored_as_scikit_learn(engine, pipeline, rows, table.slice(1), sql, columns)
    assert scored.p.isna().tolist() == [True] + [False] * (len(scored) - 1)  # NULL tier: NULL


@pytest.mark.parametrize("encoder", ["ordinal_minus_one", "one_hot_ignore"])
def test_unseen_and_missing_integer_categories_score_as_scikit_learn(any_engine: Any, encoder: str) -> None:
    """Encoders that take unseen categories (OrdinalEncoder's unknown_value=-1, OneHotEncoder's
    'ignore') on an integer 'tier': scikit-learn compares the values as numbers, so
    3.0000000000000004 (0.1 * 3 * 10) and 2.5 are unseen, and a missing value seen at fit
    time is a category of its own. skl2onnx rounded the double to float32 (3.0000000000000004
    became category 3) or cast it to an integer (2.5 became category 2), and coded NaN as
    an unseen value, so those rows scored off scikit-learn."""
    engine = any_engine
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    columns = ["plan", "tier", "age"]
    train, target = tiered(3_000, seed=8)
    encode: Any = OneHotEncoder(handle_unknown="ignore")
    if encoder == "ordinal_minus_one":
        encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        train["tier"] = train.tier.where(train.id % 10 != 0)  # missing values seen at fit time
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", encode, ["plan", "tier"]), ("n", "passthrough", ["age"])])),
            ("clf", HistGradientBoostingClassifier(max_iter=40, random_state=0)),
        ]
    ).fit(train[columns], target)
    register(engine, "m", pipeline)
    frame = tiered(2_000, seed=9)[0]
    frame["plan"] = frame.plan.where(frame.id % 17 != 0, "diamond")
    rows, table = with_tiers(frame, [0.1 * 3 * 10, 2.5, 7.0, math.nan, None] * 8)
    sql = "SELECT id, predict(m, *).probabilities AS p FROM t ORDER BY id"
    scored = scored_as_scikit_learn(engine, pipeline, rows, table, sql, columns)
    assert int(scored.p.isna().sum()) == 8  # the NULL tiers
    # those rows do score differently from the category the old conversion took them for
    moved = rows.head(4).assign(tier=[3.0, 2.0, -1.0, -1.0])
    assert np.abs(pipeline.predict_proba(moved[columns]) - pipeline.predict_proba(rows.head(4)[columns])).max() > 0.01


def test_unseen_categories_coded_nan_score_as_scikit_learn_under_a_where(engine: Engine) -> None:
    """scikit-learn's categorical gradient-boosting example: OrdinalEncoder(handle_unknown=
    'use_encoded_value', unknown_value=np.nan) in front of HistGradientBoosting, which sends
    NaN down each split's learned branch. The optimizer took the NaN code of an unseen
    category for a number when the WHERE bounded the encoded column, pruned the branch NaN
    takes, and scored those rows off scikit-learn (by up to 0.86). DuckDB only: Spark may
    collate text, so its optimizer proves nothing from a WHERE on text."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    train, target = customers(3_000, seed=3)
    encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("c", encode, STRINGS), ("n", "passthrough", NUMERIC)])),
            ("clf", HistGradientBoostingClassifier(max_iter=30, random_state=0)),
        ]
    ).fit(train[COLUMNS], target)
    register(engine, "m", pipeline)
    frame = customers(2_000, seed=4)[0]
    frame["plan"] = frame.plan.where(frame.id % 5 != 0, "diamond")
    for where in ("plan <> 'gold' AND age > 40", "plan = 'diamond'", "plan IN ('basic', 'diamond') AND income < 50000"):
        sql = f"SELECT id, predict(m, *).probabilities AS p FROM t WHERE {where} ORDER BY id"
        scored = scored_as_scikit_learn(engine, pipeline, frame, frame, sql, COLUMNS)
        assert len(scored) > 100
        explained = unwrapped(engine.explain(sql, frames={"t": frame}))  # lowered: the WHERE on the text prunes
        assert "(label-encoded)" in explained and "pruned" in explained, explained
