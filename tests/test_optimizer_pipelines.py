"""Pipelines in front of trees: reading the featurizer, folding tests through transforms,
lowering, and pruning on the query's predicates — always identical to the original model.

Every model here is a real scikit-learn pipeline converted by skl2onnx and scored by
onnxruntime; SQL runs on DuckDB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbgov.sqlml.models.pipeline import Feature, Mixed, NotAPipeline, OneHot, LabelCode, Pipeline, read_pipeline
from nbgov.sqlml.models.steps import Arith, Binarize, CastTo, Impute, apply_steps
from nbgov.sqlml.optimizer.fold import Decided, NotFoldable, TreeTest, fold_tests
from nbgov.sqlml.optimizer.lowering import NotLowerable, lower_trees
from nbgov.sqlml.optimizer import RULES, SQL_RULES, optimize
from nbgov.sqlml.plan import OnnxPlan, SqlPlan
from tests.fixtures.optimizer import calls_in, model_version
from tests.fixtures.pipelines import arrow_table, churn_frame, score_plan_inputs
from tests.fixtures.sqlml import unwrapped

TREE_KINDS = ["gbc", "rf", "gbr_strict", "rfr_ordinal", "tree_ordinal"]
COLUMNS = ["age", "income", "visits", "is_member", "plan", "region"]


def hostile_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame plus NaN, NULL, unknown categories, infinities and the extremes of floats."""
    extra = pd.DataFrame(
        {
            "id": np.arange(1000, 1010),
            "age": [np.nan, 60.0, np.inf, -np.inf, 3.4e38, 60.0, 18.0, 89.0, None, 45.0],
            "income": [50_000.0, np.nan, 1e9, -1e9, 0.0, None, 60_000.0, 40_000.0, 50_000.0, np.nan],
            "visits": [2.0, 2.0, np.nan, 0.0, 100.0, 3.0, None, 2.0, 1.0, 2.0],
            "is_member": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, None, 0.0, 1.0],
            "plan": ["gold", "diamond", "basic", None, "silver", "GOLD", "platinum", "basic", "gold", "o'brien"],
            "region": ["north", "south", "nowhere", "east", None, "west", "north", "south", "east", "west"],
        },
        dtype=object,
    )
    base = frame[["id", *COLUMNS]].astype({"age": float, "visits": float, "is_member": float}).astype(object)
    return pd.concat([base, extra], ignore_index=True)


def original_values(payload: bytes, table: Any, where: str = "TRUE") -> list[list[Any]]:
    version = model_version(payload)
    call = calls_in("SELECT predict(m, *) FROM t", version)[0]
    return score_plan_inputs(payload, call.inputs, version.outputs, table, where)


def plan_values(plan: OnnxPlan, outputs: Any, table: Any, where: str = "TRUE") -> list[list[Any]]:
    return score_plan_inputs(plan.model_bytes, plan.inputs, outputs, table, where)


# -- reading the featurizer ------------------------------------------------------------


def reference_features(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The features tensor computed from the read representation (numpy, ORT's arithmetic)."""
    out = np.full((len(frame), len(pipeline.features)), np.nan, dtype=np.float32)
    for k, column in enumerate(pipeline.features):
        if isinstance(column, Mixed):
            continue
        raw = frame[column.source.input].to_numpy()
        if isinstance(column.encoder, OneHot):
            values = np.array([v == column.encoder.category for v in raw], dtype=np.float32)
        elif isinstance(column.encoder, LabelCode):
            mapping = dict(column.encoder.mapping)
            values = np.array([mapping.get(v, column.encoder.default) for v in raw], dtype=np.float32)
        else:
            values = raw.astype(np.float64 if column.source.elem_type == "double" else np.float32)
        out[:, k] = apply_steps(column.steps, values)
    return out


def ort_features(payload: bytes, pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """onnxruntime's own features tensor (the head's input made a graph output)."""
    model = onnx.load_model_from_string(payload)
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(pipeline.head_input))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for spec in session.get_inputs():
        values = frame[spec.name].to_numpy()
        dtype = {"tensor(string)": object, "tensor(double)": np.float64}.get(spec.type, np.float32)
        feeds[spec.name] = values.astype(dtype).reshape(-1, 1)
    return np.asarray(session.run([pipeline.head_input], feeds)[0])


@pytest.mark.parametrize("kind", [*TREE_KINDS, "logreg"])
def test_read_features_match_onnxruntime(sklearn_pipelines: Any, kind: str) -> None:
    trained = sklearn_pipelines.get(kind)
    pipeline = read_pipeline(onnx.load_model_from_string(trained.onnx))
    frame = trained.frame.assign(income=trained.frame.income.where(trained.frame.id % 9 != 0))  # NaN to impute
    mine = reference_features(pipeline, frame)
    theirs = ort_features(trained.onnx, pipeline, frame)
    assert theirs.shape == mine.shape
    assert np.array_equal(mine, theirs, equal_nan=True)  # bit for bit, NaN where NaN


def test_read_maps_every_column_to_its_source(sklearn_pipelines: Any) -> None:
    pipeline = read_pipeline(onnx.load_model_from_string(sklearn_pipelines.get("gbc").onnx))
    assert pipeline.head_ops == ("TreeEnsembleClassifier",)
    assert [c.source.input for c in pipeline.features if isinstance(c, Feature)] == [
        "age", "income", "visits", "plan", "plan", "plan", "plan", "region", "region", "region", "region", "is_member",
    ]
    onehots = [c.encoder for c in pipeline.features if isinstance(c, Feature) and isinstance(c.encoder, OneHot)]
    assert {e.category for e in onehots} == {"basic", "silver", "gold", "platinum", "north", "south", "east", "west"}
    assert not any(e.strict for e in onehots)  # handle_unknown="ignore"
    age = pipeline.features[0]
    assert isinstance(age, Feature)
    # median imputer, then (x - mean) / std, in double as scikit-learn computes it; then float for the trees
    assert age.source.elem_type == "double" and [type(s) for s in age.steps] == [Impute, Arith, Arith, CastTo]


def test_read_refuses_what_it_does_not_understand() -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline

    frame = churn_frame()
    X = frame[["age", "income"]].to_numpy(np.float32)
    pca = make_pipeline(PCA(n_components=2), RandomForestRegressor(n_estimators=2, max_depth=2)).fit(X, frame.spend)
    proto = convert_sklearn(pca, initial_types=[("input", FloatTensorType([None, 2]))])
    with pytest.raises(NotAPipeline, match="MatMul|Sub|Gemm|not understood"):
        read_pipeline(proto)
    knn = KNeighborsRegressor(3).fit(X, frame.spend)
    with pytest.raises(NotAPipeline, match="no tree ensemble or linear model"):
        read_pipeline(convert_sklearn(knn, initial_types=[("input", FloatTensorType([None, 2]))]))


def test_bare_model_is_a_pipeline_without_featurizer(onnx_models: Any) -> None:
    pipeline = read_pipeline(onnx.load_model_from_string(onnx_models.get("gb_reg").onnx))
    assert pipeline.is_bare and pipeline.trees_only
    assert [c.source.column for c in pipeline.features if isinstance(c, Feature)] == [0, 1, 2, 3, 4]


# -- folding tests through transforms --------------------------------------------------

finite32 = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)
nonzero32 = finite32.filter(lambda v: abs(v) > 1e-6)


@settings(max_examples=60, deadline=None)
@given(
    offset=finite32,
    scale=nonzero32,
    thresholds=st.lists(finite32, min_size=1, max_size=6),
    mode=st.sampled_from(["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT"]),
    nan_true=st.booleans(),
    imputed=st.none() | finite32,
)
def test_fold_gives_the_same_branch_for_every_float(
    offset: float, scale: float, thresholds: list[float], mode: str, nan_true: bool, imputed: float | None
) -> None:
    steps = ((Impute(np.nan, imputed),) if imputed is not None else ()) + (Arith("-", offset), Arith("*", scale))
    tests = [TreeTest(mode, t, nan_true) for t in thresholds]
    folded = fold_tests(steps, tests)
    rng = np.random.default_rng(0)
    # random values, the extremes, and every float32 next to each folded threshold
    values = [rng.normal(offset, 1e3, 2_000).astype(np.float32), np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)]
    for f in folded:
        if isinstance(f, TreeTest) and np.isfinite(f.threshold):
            t = np.float32(f.threshold)
            near = [t]
            for _ in range(3):
                near += [np.nextafter(near[-1], np.float32(np.inf))]
            below = [t]
            for _ in range(3):
                below += [np.nextafter(below[-1], np.float32(-np.inf))]
            values.append(np.array(near + below, np.float32))
    x = np.concatenate(values)
    feature = apply_steps(steps, x)
    for test, result in zip(tests, folded):
        assert np.array_equal(_branch(test, feature), _branch(result, x)), (test, result)


def _branch(test: TreeTest | Decided, x: np.ndarray) -> np.ndarray:
    if isinstance(test, Decided):
        return np.full(len(x), test.outcome)
    t = np.float32(test.threshold)
    with np.errstate(invalid="ignore"):
        numeric = {"BRANCH_LEQ": x <= t, "BRANCH_LT": x < t, "BRANCH_GTE": x >= t, "BRANCH_GT": x > t}[test.mode]
    return np.where(np.isnan(x), test.nan_true, numeric)


def test_fold_binarizer_and_negative_scale() -> None:
    folded = fold_tests((Binarize(2.0),), [TreeTest("BRANCH_LEQ", 0.5, False)])
    # binarized <= 0.5  <=>  x <= 2 (NaN, which onnxruntime refuses anyway, would binarize to 0)
    assert folded == [TreeTest("BRANCH_LEQ", 2.0, True)]
    (negative,) = fold_tests((Arith("*", -2.0),), [TreeTest("BRANCH_LEQ", 4.0, False)])
    assert negative == TreeTest("BRANCH_GTE", -2.0, False)  # -2x <= 4  <=>  x >= -2
    assert fold_tests((Arith("*", 1.0),), [TreeTest("BRANCH_LEQ", np.inf, True)]) == [Decided(True)]


def test_fold_refuses_non_monotone_steps() -> None:
    with pytest.raises(NotFoldable):
        fold_tests((Arith("*", 0.0),), [TreeTest("BRANCH_LEQ", 1.0, False)])
    with pytest.raises(NotFoldable):
        fold_tests((Arith("/", 2.0, constant_first=True),), [TreeTest("BRANCH_LEQ", 1.0, False)])
    with pytest.raises(NotFoldable):
        fold_tests((Impute(-1.0, 5.0),), [TreeTest("BRANCH_LEQ", 1.0, False)])


finite64 = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    offset=finite64,
    scale=finite64.filter(lambda v: abs(v) > 1e-6),
    lo=finite64,
    width=st.floats(min_value=0, max_value=1e5),
    lo_open=st.booleans(),
    hi_open=st.booleans(),
    imputed=st.none() | finite64,
)
def test_a_double_scaling_is_computed_in_sql_bit_for_bit_and_carries_ranges_forward(
    offset: float, scale: float, lo: float, width: float, lo_open: bool, hi_open: bool, imputed: float | None
) -> None:
    """How nbgov converts a scikit-learn pipeline ending in trees: NaN imputed, (x - mean) /
    scale in double, then float. DuckDB computes the same float for every double, and the
    query's range on x, carried forward, holds every value the rows in it give (NaN too,
    when the range lets NaN through and an imputer turns it into a number)."""
    import duckdb
    import pyarrow as pa
    import sqlglot.expressions as exp

    from nbgov.sqlml.optimizer.domains import Domain
    from nbgov.sqlml.optimizer.lowering import carried_forward, computed_sql

    imputer = (Impute(np.nan, imputed, "double"),) if imputed is not None else ()
    steps = imputer + (Arith("-", offset, "double"), Arith("/", scale, "double"), CastTo("float"))
    hi = lo + width
    rng = np.random.default_rng(0)
    inside = np.concatenate([rng.uniform(lo, hi, 500), [lo, hi, np.nextafter(lo, np.inf), np.nextafter(hi, -np.inf)]])
    inside = inside[(inside > lo if lo_open else inside >= lo) & (inside < hi if hi_open else inside <= hi)]
    inside = np.concatenate([inside, [np.nan] if imputed is not None else []])
    x = np.concatenate([inside, [np.nan, np.inf, -np.inf, 0.0, -0.0, offset, np.nextafter(offset, np.inf)]])
    expected = apply_steps(steps, x)
    con = duckdb.connect()
    try:
        con.register("t", pa.table({"x": x}))  # Arrow keeps NaN a number (pandas NaN reads as NULL)
        sql = computed_sql(steps, exp.cast(exp.column("x"), "DOUBLE")).sql(dialect="duckdb")
        got = np.array([row[0] for row in con.execute(f"SELECT {sql} FROM t").fetchall()], dtype=np.float32)
    finally:
        con.close()
    assert np.array_equal(got, expected, equal_nan=True), sql
    domain = carried_forward(steps, Domain(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, nan=imputed is not None))
    assert not domain.nan or imputed is None
    assert all(domain.admits_number(float(v)) for v in expected[: len(inside)])


# -- lowering ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gbc", "rf", "rfr_ordinal", "tree_ordinal"])
def test_lowered_model_is_identical_on_hostile_rows(sklearn_pipelines: Any, kind: str) -> None:
    trained = sklearn_pipelines.get(kind)
    version = model_version(trained.onnx)
    pipeline = read_pipeline(onnx.load_model_from_string(trained.onnx))
    lowered = lower_trees(pipeline)
    assert not any(c.encoder is None and c.source.elem_type == "string" for c in lowered.columns)
    table = arrow_table(hostile_rows(trained.frame))
    plan, _, _ = plan_for(trained, "TRUE")
    assert isinstance(plan.strategy, OnnxPlan) and plan.strategy.model_bytes != trained.onnx
    assert plan_values(plan.strategy, version.outputs, table) == original_values(trained.onnx, table)


def test_lowering_folds_scalers_and_reads_strings_in_sql(sklearn_pipelines: Any) -> None:
    pipeline = read_pipeline(onnx.load_model_from_string(sklearn_pipelines.get("gbc_float").onnx))
    lowered = lower_trees(pipeline)
    described = {c.describe(c.source.input) for c in lowered.columns}
    assert "age (through Imputer, Scaler)" in described
    assert any(d.endswith("(one-hot)") for d in described)
    assert lowered.folded > 0
    graph = onnx.load_model_from_string(lowered.model.SerializeToString()).graph
    assert [n.op_type for n in graph.node if n.op_type in ("Scaler", "OneHotEncoder", "Imputer")] == []
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_value == len(lowered.columns)


def test_lowering_refuses_normalizer_and_numeric_categories() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import Pipeline as SkPipeline
    from skl2onnx import to_onnx
    from sklearn.preprocessing import Normalizer, OneHotEncoder

    from nbgov.sqlml.catalog.sklearn_convert import convert

    frame = churn_frame()
    X = frame[["age", "income", "visits"]].astype(float)
    for pre, reason in (
        (ColumnTransformer([("n", Normalizer(), ["age", "income"]), ("v", "passthrough", ["visits"])]), "Normalizer"),
        (ColumnTransformer([("c", OneHotEncoder(), ["visits"]), ("a", "passthrough", ["age"])]), "numeric categories"),
    ):
        estimator = SkPipeline([("pre", pre), ("m", RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0))])
        estimator.fit(X, frame.spend)
        # skl2onnx's float form: CREATE MODEL keeps a Normalizer pipeline in double, which is not read at all
        proto = to_onnx(estimator, X.astype(np.float32)[:1]) if reason == "Normalizer" else convert(estimator, label="m")
        with pytest.raises(NotLowerable, match=reason):
            lower_trees(read_pipeline(proto))


# -- the rule: predicates through the featurizer ----------------------------------------


def plan_for(trained: Any, where: str, inline_sql: bool = False, exact_strings: bool = True) -> tuple[Any, Any, Any]:
    """The optimizer's plan for ``predict(m, *)`` under ``where`` (string predicates used
    unless ``exact_strings`` is off), with or without the rules that translate to SQL."""
    version = model_version(trained.onnx)
    call = calls_in(f"SELECT predict(m, *) FROM t WHERE {where}", version)[0]
    rules = RULES if inline_sql else tuple(r for r in RULES if r not in SQL_RULES)
    plan = optimize(call, rules, batched=True, exact_strings=exact_strings)
    return plan, version, plan.notes


def test_predicates_prune_through_one_hot_and_scaler(sklearn_pipelines: Any) -> None:
    trained = sklearn_pipelines.get("gbc")
    where = "plan = 'gold' AND age > 60"
    plan, version, notes = plan_for(trained, where)
    text = "\n".join(plan.notes)
    assert "plan = 'gold' (one-hot)" in text and "age > 60 (computed in SQL: Imputer, Sub, Div)" in text
    before, after = plan.stats["nodes_before"], plan.stats["nodes_after"]
    assert isinstance(before, int) and isinstance(after, int) and after < before / 2
    table = arrow_table(hostile_rows(trained.frame))
    assert isinstance(plan.strategy, OnnxPlan)
    assert plan_values(plan.strategy, version.outputs, table, where) == original_values(trained.onnx, table, where)
    # plan's one-hot columns are constants on these rows: plan is not read at all (and the
    # filter proves it is not NULL, so it needs no guard either)
    assert "reads 5 of 6 model inputs (not plan: no kept test uses them)" in text
    assert all('"plan"' not in c.sql(dialect="duckdb") and "plan " not in c.sql(dialect="duckdb") for c in plan.strategy.inputs[0].columns)


def test_dropped_input_still_gives_null(sklearn_pipelines: Any) -> None:
    trained = sklearn_pipelines.get("gbc")
    plan, version, _ = plan_for(trained, "plan = 'gold' AND region = 'north'")
    assert isinstance(plan.strategy, OnnxPlan)
    rows = trained.frame.head(40).copy().astype(object)
    rows.loc[rows.index[:20], "plan"] = "gold"
    rows.loc[rows.index[:20], "region"] = "north"
    rows.loc[rows.index[:5], "is_member"] = None
    rows.loc[rows.index[5:9], "income"] = None
    table = arrow_table(rows[["id", *COLUMNS]])
    where = "plan = 'gold' AND region = 'north'"
    mine = plan_values(plan.strategy, version.outputs, table, where)
    assert mine == original_values(trained.onnx, table, where)
    assert mine[0][:9] == [None] * 9 and None not in mine[0][9:]


def test_strict_encoder_fails_with_and_without_lowering(sklearn_pipelines: Any) -> None:
    import duckdb

    from nbgov.errors import ModelBindingError

    trained = sklearn_pipelines.get("gbr_strict")
    table = arrow_table(hostile_rows(trained.frame))
    where = "age > 30 AND NOT isnan(visits)"  # NaN into the Binarizer fails too: tested apart
    plan, version, _ = plan_for(trained, where)
    with pytest.raises(ModelBindingError, match="input 'plan' holds a category the model's OneHotEncoder does not know"):
        original_values(trained.onnx, table, where)  # onnxruntime's refusal, said as the SQL check says it
    with pytest.raises(duckdb.InvalidInputException, match="does not know"):
        plan_values(plan.strategy, version.outputs, table, where)
    # the same query over known categories only: identical results, and no check needed
    known = "plan IN ('basic', 'gold') AND age > 30 AND NOT isnan(visits)"
    plan, version, _ = plan_for(trained, known)
    assert "error(" not in plan.strategy.inputs[0].columns[0].sql()
    assert plan_values(plan.strategy, version.outputs, table, known) == original_values(trained.onnx, table, known)


def test_binarizer_refuses_nan_like_onnxruntime(sklearn_pipelines: Any) -> None:
    import duckdb

    from nbgov.errors import ModelBindingError

    trained = sklearn_pipelines.get("gbr_strict")
    rows = trained.frame.head(30).astype(object)
    rows.loc[rows.index[3], "visits"] = np.nan
    table = arrow_table(rows[["id", *COLUMNS]])
    plan, version, _ = plan_for(trained, "plan = 'basic'")
    with pytest.raises(ModelBindingError, match="NaN"):
        original_values(trained.onnx, table, "plan = 'basic' OR TRUE")
    with pytest.raises(duckdb.InvalidInputException, match="Binarizer"):
        plan_values(plan.strategy, version.outputs, table, "plan = 'basic' OR TRUE")


def test_category_text_reaches_sql_as_a_literal(sklearn_pipelines: Any) -> None:
    import sqlglot.expressions as exp

    from nbgov.sqlml.models.pipeline import Source
    from nbgov.sqlml.optimizer.lowering import LoweredColumn

    plan, _, _ = plan_for(sklearn_pipelines.get("rf"), "TRUE")
    sql = ", ".join(c.sql(dialect="duckdb") for c in plan.strategy.inputs[0].columns)
    assert """CAST(ENCODE(CAST("plan" AS TEXT)) = ENCODE('gold') AS REAL)""" in sql  # REAL is DuckDB's FLOAT
    hostile = LoweredColumn(Source("plan", 0, "string"), OneHot("o'brien'); DROP TABLE t; --", ("x",), False))
    rendered = hostile.sql(exp.column("plan")).sql(dialect="duckdb")
    assert "ENCODE('o''brien''); DROP TABLE t; --')" in rendered


# -- optimized == original, over random predicates and data ------------------------------

values_age = st.one_of(st.integers(10, 95).map(float), st.sampled_from([np.nan, np.inf, -np.inf, 60.5]), st.none())
values_plan = st.one_of(st.sampled_from(["basic", "silver", "gold", "platinum", "diamond", "Gold"]), st.none())


@st.composite
def scenario(draw: Any) -> tuple[pd.DataFrame, str]:
    n = draw(st.integers(5, 40))
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "age": draw(st.lists(values_age, min_size=n, max_size=n)),
            "income": draw(st.lists(st.one_of(st.floats(0, 120_000, allow_nan=False), st.just(np.nan), st.none()), min_size=n, max_size=n)),
            "visits": draw(st.lists(st.one_of(st.integers(0, 9).map(float), st.none()), min_size=n, max_size=n)),
            "is_member": draw(st.lists(st.sampled_from([0.0, 1.0, None]), min_size=n, max_size=n)),
            "plan": draw(st.lists(values_plan, min_size=n, max_size=n)),
            "region": draw(st.lists(st.sampled_from(["north", "south", "east", "west", "mars"]), min_size=n, max_size=n)),
        },
        dtype=object,
    )
    conditions: list[str] = []
    if draw(st.booleans()):
        op = draw(st.sampled_from([">", ">=", "<", "<=", "="]))
        conditions.append(f"age {op} {draw(st.integers(15, 95))}")
    if draw(st.booleans()):
        low = draw(st.integers(0, 100_000))
        conditions.append(f"income BETWEEN {low} AND {low + draw(st.integers(0, 50_000))}")
    if draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(["basic", "silver", "gold", "platinum", "diamond"]), min_size=1, max_size=3, unique=True))
        negate = draw(st.booleans())
        listed = ", ".join(f"'{c}'" for c in chosen)
        conditions.append(f"plan {'NOT ' if negate else ''}IN ({listed})")
    if draw(st.booleans()):
        conditions.append(f"visits <= {draw(st.integers(0, 6))}")
    return frame, " AND ".join(conditions) or "TRUE"


@pytest.mark.parametrize("kind", ["gbc", "rfr_ordinal", "tree_ordinal"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=scenario(), inline_sql=st.booleans())
def test_optimized_equals_original_on_random_predicates(sklearn_pipelines: Any, kind: str, case: Any, inline_sql: bool) -> None:
    frame, where = case
    trained = sklearn_pipelines.get(kind)
    plan, version, _ = plan_for(trained, where, inline_sql)
    table = arrow_table(frame)
    expected = original_values(trained.onnx, table, where)
    if isinstance(plan.strategy, OnnxPlan):
        assert plan_values(plan.strategy, version.outputs, table, where) == expected
    else:  # inlined: the same values per row (labels exact, probabilities within 1e-6)
        assert_same_rows(sql_plan_values(plan.strategy, table, where), expected, version.outputs)


def assert_same_rows(mine: list[Any], expected: list[list[Any]], outputs: Any) -> None:
    assert len(mine) == len(expected[0])
    for row, value in enumerate(mine):
        if expected[0][row] is None:
            assert value is None
        elif len(outputs) == 1:
            assert value == expected[0][row]
        else:
            assert value[outputs[0].name] == expected[0][row]
            assert value[outputs[1].name] == pytest.approx(expected[1][row], abs=1e-6)


# -- featurizer + linear model as one SQL expression ------------------------------------


def sql_plan_values(plan: Any, table: Any, where: str) -> list[Any]:
    import duckdb

    con = duckdb.connect()
    try:
        con.register("t", table)
        return [row[0] for row in con.execute(f"SELECT {plan.expression.sql(dialect='duckdb')} FROM t WHERE {where}").fetchall()]
    finally:
        con.close()


@pytest.mark.parametrize("where", ["TRUE", "plan = 'gold' AND age > 40", "income IS NOT NULL"])
def test_linear_pipeline_inlined_as_sql_matches_onnxruntime(sklearn_pipelines: Any, where: str) -> None:
    from nbgov.sqlml.optimizer.pipeline_sql import linear_pipeline_sql
    from nbgov.sqlml.plan import SqlPlan

    trained = sklearn_pipelines.get("logreg")
    version = model_version(trained.onnx)
    pipeline = read_pipeline(onnx.load_model_from_string(trained.onnx))
    assert linear_pipeline_sql(pipeline, version.outputs).terms > 0
    plan, _, _ = plan_for(trained, where, inline_sql=True)
    assert plan is not None and isinstance(plan.strategy, SqlPlan)
    assert "inlined as SQL expression: pipeline (OneHotEncoder, Imputer, Scaler) + linear model" in plan.notes[-1]
    rows = hostile_rows(trained.frame)
    rows = rows[~rows.age.isin([np.inf, -np.inf, 3.4e38]) & ~rows.income.isin([1e9, -1e9])]  # in range for a scaler
    table = arrow_table(rows)
    mine = sql_plan_values(plan.strategy, table, where)
    label, proba = original_values(trained.onnx, table, where)
    assert len(mine) == len(label) > 0
    for value, expected_label, expected_proba in zip(mine, label, proba):
        if expected_label is None:
            assert value is None
            continue
        assert value["probabilities"] == pytest.approx(expected_proba, abs=1e-5)
        if abs(expected_proba[1] - 0.5) > 1e-5:
            assert value["label"] == expected_label


def test_linear_pipeline_with_strict_encoder_fails_on_unknown_category() -> None:
    import duckdb
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from nbgov.sqlml.optimizer.pipeline_sql import linear_pipeline_sql
    from nbgov.sqlml.catalog.sklearn_convert import convert

    frame = churn_frame()
    estimator = SkPipeline(
        [("pre", ColumnTransformer([("c", OneHotEncoder(), ["plan"]), ("n", StandardScaler(), ["age"])])), ("m", LogisticRegression())]
    ).fit(frame[["age", "plan"]], frame.churned)
    payload = convert(estimator, label="m").SerializeToString()
    version = model_version(payload)
    pipeline = read_pipeline(onnx.load_model_from_string(payload))
    plan = optimize(calls_in("SELECT predict(m, *) FROM t", version)[0])
    assert isinstance(plan.strategy, SqlPlan), plan.notes
    table = arrow_table(pd.DataFrame({"age": [30.0, 40.0, None], "plan": ["gold", "diamond", "diamond"]}, dtype=object))
    with pytest.raises(duckdb.InvalidInputException, match="does not know"):
        sql_plan_values(plan.strategy, table, "TRUE")
    # the NULL row alone is not scored, so it does not fail (as in onnxruntime)
    assert sql_plan_values(plan.strategy, table, "age IS NULL") == [None]
    assert sql_plan_values(plan.strategy, table, "plan = 'gold'")[0]["label"] in (0, 1)


# -- onnxruntime's binary label rule survives pruning ----------------------------------


def test_pruning_keeps_the_binary_label_rule() -> None:
    """onnxruntime labels a binary tree classifier with score > 0.5 when all its leaf weights
    are positive, score > 0 otherwise: pruning away the negative leaves must not switch rules."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingClassifier

    from nbgov.sqlml.optimizer.domains import Domain
    from nbgov.sqlml.models.forest import read_forest, write_forest
    from nbgov.sqlml.optimizer.label_rule import has_negative_weight, keep_label_rule
    from nbgov.sqlml.optimizer.prune import prune_forest

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000, 2)).astype(np.float32)
    y = ((X[:, 0] + 0.3 * rng.normal(size=2_000)) > 0.8).astype(int)
    model = convert_sklearn(
        GradientBoostingClassifier(n_estimators=3, max_depth=1, random_state=0).fit(X, y),
        initial_types=[("input", FloatTensorType([None, 2]))],
        options={"zipmap": False},
    )
    node = model.graph.node[0]
    forest = read_forest(node)
    right = sum(max(w for n in t.nodes if hasattr(n, "weights") for _, w in n.weights) for t in forest.trees)
    for attr in node.attribute:  # a base score that puts x0 > 1 rows between 0 and 0.5
        if attr.name == "base_values":
            attr.floats[:] = [0.25 - right]
    rows = np.column_stack([np.linspace(1.0, 3.0, 50), rng.normal(size=50)]).astype(np.float32)
    pruned = prune_forest(forest, {0: Domain.compare(">", 1.0).in_model_space("float")}).forest
    assert has_negative_weight(forest) and not has_negative_weight(pruned)

    def labels(f: Any) -> np.ndarray:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        copy.graph.node[0].CopyFrom(write_forest(node, f))
        session = ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {"input": rows})[0])

    original = labels(forest)
    assert set(original.tolist()) == {1}  # 0 < score < 0.5: label 1 under the signed rule
    assert set(labels(pruned).tolist()) == {0}  # what plain pruning would give
    assert np.array_equal(labels(keep_label_rule(forest, pruned)), original)


# -- small pruned ensembles inlined as SQL -------------------------------------------------


@pytest.mark.parametrize("kind, where, category", [
    ("tree_ordinal", "plan = 'gold' AND age > 50", "gold"),
    ("tree_strict", "plan = 'basic' AND NOT isnan(visits)", "basic"),
])
def test_pruned_pipeline_inlined_as_sql_is_identical(sklearn_pipelines: Any, kind: str, where: str, category: str) -> None:
    from nbgov.sqlml.plan import SqlPlan

    trained = sklearn_pipelines.get(kind)
    version = model_version(trained.onnx)
    pipeline = read_pipeline(onnx.load_model_from_string(trained.onnx))
    plan, _, _ = plan_for(trained, where, inline_sql=True)
    assert isinstance(plan.strategy, SqlPlan), plan.notes
    assert any(n.startswith("inlined as SQL CASE") for n in plan.notes)
    frame = hostile_rows(trained.frame)
    frame.loc[frame.index[:40], "plan"] = category
    frame.loc[frame.index[:10], "region"] = None
    table = arrow_table(frame)
    mine = sql_plan_values(plan.strategy, table, where)
    (expected,) = original_values(trained.onnx, table, where)
    assert len(mine) == len(expected) > 0
    assert mine == expected  # FLOAT sums in onnxruntime's order: identical, NULL where NULL


def test_inlined_pipeline_refuses_what_onnxruntime_refuses(sklearn_pipelines: Any) -> None:
    import duckdb

    from nbgov.errors import ModelBindingError
    from nbgov.sqlml.plan import SqlPlan

    trained = sklearn_pipelines.get("tree_strict")
    plan, version, _ = plan_for(trained, "age > 20", inline_sql=True)
    assert isinstance(plan.strategy, SqlPlan)
    table = arrow_table(hostile_rows(trained.frame))
    for where, reason in (("age > 20 AND NOT isnan(visits)", "does not know"), ("age > 20 AND plan = 'basic'", "Binarizer")):
        with pytest.raises(ModelBindingError):
            original_values(trained.onnx, table, where)
        with pytest.raises(duckdb.InvalidInputException, match=reason):
            sql_plan_values(plan.strategy, table, where)


def test_categories_compare_byte_for_byte_under_a_collation(sklearn_pipelines: Any) -> None:
    """'GOLD' is not the model's 'gold', even where DuckDB's collation says they are equal."""
    import duckdb

    trained = sklearn_pipelines.get("rf")
    version = model_version(trained.onnx)
    pipeline = read_pipeline(onnx.load_model_from_string(trained.onnx))
    plan, _, _ = plan_for(trained, "TRUE")
    rows = hostile_rows(trained.frame)
    rows.loc[rows.index[:50], "plan"] = "GOLD"
    table = arrow_table(rows)
    expected = original_values(trained.onnx, table)
    con = duckdb.connect()
    try:
        con.execute("PRAGMA default_collation = 'nocase'").fetchall()
        con.register("raw", table)
        con.execute("CREATE TABLE t AS SELECT * FROM raw").fetchall()
        assert con.execute("SELECT count(*) FROM t WHERE plan = 'gold'").fetchall()[0][0] >= 50  # the collation at work
        select = ", ".join(c.sql(dialect="duckdb") for c in plan.strategy.inputs[0].columns)
        lowered = con.sql(f"SELECT {select} FROM t").to_arrow_table()
    finally:
        con.close()
    assert plan_values_from(plan.strategy, version.outputs, lowered) == expected


def plan_values_from(plan: OnnxPlan, outputs: Any, lowered: Any) -> list[list[Any]]:
    """Score the plan on columns already computed (named c0, c1, ... in order)."""
    import pyarrow as pa
    import sqlglot.expressions as exp

    from nbgov.sqlml.plan import BoundInput

    renamed = lowered.rename_columns([f"c{i}" for i in range(lowered.num_columns)])
    spec = plan.inputs[0].spec
    columns = tuple(exp.column(f"c{i}") for i in range(lowered.num_columns))
    return score_plan_inputs(plan.model_bytes, (BoundInput(spec, columns),), outputs, pa.table(renamed))


# -- through the engine: fixture cases, --no-optimize, collations, errors -------------------

PIPELINE_CASES = json.loads((Path(__file__).parent / "optimizer_cases" / "pipelines.json").read_text())


@pytest.fixture(scope="module")
def pipeline_engines(sklearn_pipelines: Any) -> Iterator[Any]:
    """One engine per pipeline kind, the model registered as ``m`` and hostile rows as ``t``."""
    from nbgov.sqlml.engine import Engine

    made: dict[str, Engine] = {}

    def get(kind: str) -> Engine:
        if kind not in made:
            trained = sklearn_pipelines.get(kind)
            engine = Engine(progress_bar=False)
            engine.execute("CREATE MODEL m FROM $model", params={"model": trained.onnx})
            engine.con.register("raw", arrow_table(hostile_rows(trained.frame)))
            engine.con.execute("CREATE TABLE t AS SELECT * FROM raw").fetchall()
            engine.con.unregister("raw")
            made[kind] = engine
        return made[kind]

    try:
        yield get
    finally:
        for engine in made.values():
            engine.close()


@pytest.mark.parametrize("case", PIPELINE_CASES, ids=[c["name"] for c in PIPELINE_CASES])
def test_pipeline_case(case: dict[str, Any], sklearn_pipelines: Any, pipeline_engines: Any) -> None:
    trained = sklearn_pipelines.get(case["pipeline"])
    call = calls_in(case["sql"], model_version(trained.onnx))[0]
    plan = optimize(call, batched=True, exact_strings=True)
    expect = case["expect"]
    text = " | ".join(plan.notes)
    assert all(note in text for note in expect["notes"]), plan.notes
    pruned = "nodes_after" in plan.stats and plan.stats["nodes_after"] < plan.stats["nodes_before"]  # type: ignore[operator]
    assert pruned is expect["pruned"]
    assert isinstance(plan.strategy, SqlPlan if expect["strategy"] == "sql" else OnnxPlan)
    engine = pipeline_engines(case["pipeline"])
    sql = f"SELECT * FROM ({case['sql']}) AS q ORDER BY id"
    fast = engine.execute(sql)[-1].df
    plain = engine.execute(sql, optimize=False)[-1].df
    assert fast.id.tolist() == plain.id.tolist()
    if "p" in plain:
        if case["pipeline"] == "logreg":  # SQL arithmetic in DOUBLE: float tolerance
            np.testing.assert_allclose(fast.p.astype(float), plain.p.astype(float), rtol=1e-5, atol=1e-6)
        else:  # trees: identical, NULL where NULL
            pd.testing.assert_series_equal(fast.p, plain.p, check_exact=True)


def test_string_predicates_are_not_trusted_under_a_collation(sklearn_pipelines: Any) -> None:
    from nbgov.sqlml.engine import Engine

    trained = sklearn_pipelines.get("gbc")
    rows = hostile_rows(trained.frame)
    rows.loc[rows.index[:60], "plan"] = "GOLD"  # not a category the model knows
    sql = "SELECT id, predict(m, *).probabilities[2] AS p FROM t WHERE plan = 'gold' ORDER BY id"
    with Engine(progress_bar=False) as engine:
        engine.execute("CREATE MODEL m FROM $model", params={"model": trained.onnx})
        engine.con.register("raw", arrow_table(rows))
        engine.execute("CREATE TABLE t AS SELECT * FROM raw")
        assert "plan = 'gold' (one-hot)" in unwrapped(engine.explain(sql))
        engine.execute("PRAGMA default_collation = 'nocase'")
        assert engine.execute("SELECT count(*) AS n FROM t WHERE plan = 'gold'")[-1].df.n[0] > 60
        explained = unwrapped(engine.explain(sql))
        assert "string predicates not used" in explained and "plan = 'gold' (one-hot)" not in explained
        fast = engine.execute(sql)[-1].df
        plain = engine.execute(sql, optimize=False)[-1].df
    pd.testing.assert_series_equal(fast.p, plain.p, check_exact=True)


@pytest.mark.parametrize("optimize_", [True, False])
def test_unknown_category_fails_with_and_without_the_optimizer(pipeline_engines: Any, optimize_: bool) -> None:
    from nbgov.errors import NbgovError

    engine = pipeline_engines("gbr_strict")
    with pytest.raises(NbgovError):  # 'diamond' and 'GOLD' are not categories the encoder knows
        engine.execute("SELECT id, predict(m, *) AS p FROM t WHERE age > 30 AND NOT isnan(visits)", optimize=optimize_)


def test_scaler_in_front_of_trees_on_one_matrix_input() -> None:
    """make_pipeline(StandardScaler(), GradientBoostingRegressor()) over one [N, 5] input: the
    scaler is folded into the thresholds and age > 60 prunes the trees."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tests.fixtures.models import NUMERIC_FEATURES, customers

    frame = customers(600)
    estimator = make_pipeline(StandardScaler(), GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0))
    estimator.fit(frame[list(NUMERIC_FEATURES)].to_numpy(np.float32), frame.spend)
    payload = convert_sklearn(estimator, initial_types=[("input", FloatTensorType([None, 5]))]).SerializeToString()
    version = model_version(payload)
    columns = ", ".join(NUMERIC_FEATURES)
    where = "age > 60"
    call = calls_in(f"SELECT predict(m, {columns}) FROM t WHERE {where}", version)[0]
    plan = optimize(call, tuple(r for r in RULES if r not in SQL_RULES), batched=True)
    assert any("tree nodes using age > 60 (through Scaler)" in n for n in plan.notes), plan.notes
    assert isinstance(plan.strategy, OnnxPlan)
    rows = frame.assign(age=frame.age.where(frame.id % 11 != 0)).astype({"age": object})
    table = arrow_table(rows)
    expected = score_plan_inputs(payload, call.inputs, version.outputs, table, where)
    assert plan_values(plan.strategy, version.outputs, table, where) == expected
