"""The optimizer through the real engine: optimized results equal unoptimized ones,
and EXPLAIN says what was done and why."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.execution.compiled import policy
from nbgov.sqlml.execution.compiled.build import compile_session
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from nbgov.sqlml.plan import original_cache_key
from tests.fixtures.ensembles import SELECTIVE_QUERY, selective_engine, selective_forest
from tests.fixtures.models import customers
from tests.fixtures.optimizer import FEATURES
from tests.fixtures.sqlml import unwrapped

KINDS = [
    "tree_reg",
    "tree_clf",
    "rf_reg",
    "rf_clf",
    "gb_reg",
    "gb_clf",
    "logreg",
    "linreg",
]
F = ", ".join(FEATURES)


@pytest.fixture(scope="module")
def engine(onnx_models: Any) -> Iterator[Engine]:
    eng = Engine(progress_bar=False)
    for kind in KINDS + ["gb_reg_100x8", "mlp"]:
        eng.execute(f"CREATE MODEL {kind} FROM '{onnx_models.get(kind).path}'")
    yield eng
    eng.close()


def table(seed: int, n: int, null_rate: float) -> pd.DataFrame:
    """The customers' id and numeric features, with NULLs sprinkled in at ``null_rate``."""
    frame = customers(n, seed)[["id", *FEATURES]].copy()
    rng = np.random.default_rng(seed + 1_000)
    for name in FEATURES:
        frame.loc[rng.random(n) < null_rate, name] = None
    return frame


def _missing(v: Any) -> bool:
    return (
        v is None
        or v is pd.NA
        or (isinstance(v, (float, np.floating)) and math.isnan(v))
    )


def same(a: Any, b: Any) -> bool:
    """Equal, with float tolerance (SQL-inlined linear models round differently)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, np.ndarray)) and isinstance(
        b, (list, tuple, np.ndarray)
    ):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-4)
    return bool(a == b)


def assert_same_frames(optimized: pd.DataFrame, plain: pd.DataFrame) -> None:
    assert list(optimized.columns) == list(plain.columns)
    assert len(optimized) == len(plain)
    for column in optimized.columns:
        for x, y in zip(optimized[column].tolist(), plain[column].tolist()):
            assert same(x, y), (column, x, y)


TEMPLATES = [
    "SELECT id, predict({m}, {F}) AS p FROM t WHERE {pred} ORDER BY id",
    "WITH c AS (SELECT * FROM t WHERE {pred}) SELECT id, predict({m}, {F}) AS p FROM c ORDER BY id",
    "SELECT id, CASE WHEN {pred} THEN predict({m}, {F}) END AS p FROM t ORDER BY id",
    "SELECT id, predict({m}, {F}) AS p FROM t WHERE {pred} AND predict({m}, {F}) IS NOT NULL ORDER BY id",
    (
        "SELECT a.id, predict({m}, a.age, a.income, a.tenure, a.visits, a.balance) AS p "
        "FROM t a JOIN t b ON a.id = b.id AND a.age = b.age WHERE {bpred} ORDER BY a.id"
    ),
    "SELECT id, predict({m}, {F}) AS p FROM (SELECT * FROM t WHERE {pred}) s WHERE visits >= 0 ORDER BY id",
]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(KINDS),
    template=st.sampled_from(TEMPLATES),
    picks=st.lists(
        st.tuples(
            st.sampled_from(FEATURES),
            st.sampled_from([">", ">=", "<", "<=", "=", "IN", "BETWEEN"]),
            st.floats(0.05, 0.95),
        ),
        min_size=1,
        max_size=2,
        unique_by=lambda t: t[0],
    ),
    seed=st.integers(0, 2**16),
    n=st.integers(1, 300),
    null_rate=st.sampled_from([0.0, 0.05]),
)
def test_optimized_equals_unoptimized(
    engine: Engine,
    kind: str,
    template: str,
    picks: list[tuple[str, str, float]],
    seed: int,
    n: int,
    null_rate: float,
) -> None:
    frame = table(seed, n, null_rate)
    reference = table(1, 400, 0.0)
    preds, bpreds = [], []
    for name, op, q in picks:
        value = float(
            np.quantile(reference[name], q).round(
                0 if name in ("age", "tenure", "visits") else 1
            )
        )
        if op == "IN":
            text = f"{{c}} IN ({value!r}, {value + 1!r}, {value + 3!r})"
        elif op == "BETWEEN":
            text = f"{{c}} BETWEEN {value!r} AND {value * 1.2 + 5!r}"
        else:
            text = f"{{c}} {op} {value!r}"
        preds.append(text.format(c=name))
        bpreds.append(text.format(c=f"b.{name}"))
    sql = template.format(
        m=kind, F=F, pred=" AND ".join(preds), bpred=" AND ".join(bpreds)
    )
    optimized = engine.execute(sql, frames={"t": frame}, optimize=True)[-1].df
    plain = engine.execute(sql, frames={"t": frame}, optimize=False)[-1].df
    assert optimized is not None and plain is not None
    assert_same_frames(optimized, plain)


def test_explain_reports_pruning_projection_and_choice(
    engine: Engine, onnx_models: Any
) -> None:
    frame = table(4, 500, 0.0)
    sql = f"SELECT id, predict(gb_reg_100x8, {F}) AS p FROM t WHERE age > 60 AND tenure = 3"
    text = unwrapped(engine.explain(sql, frames={"t": frame}))
    assert "predict(gb_reg_100x8@1): " in text
    line = next(l for l in text.splitlines() if l.startswith("predict(gb_reg_100x8@1)"))
    assert "tree nodes using age > 60 AND tenure = 3" in line
    pruned, total = (
        int(x.replace(",", ""))
        for x in line.split("pruned ")[1].split(" tree nodes")[0].split(" of ")
    )
    assert 0 < pruned < total
    assert "dropped 1 of 5 unused inputs (tenure)" in line
    assert "kept as ONNX: 100 trees, estimated cheaper (SQL " in line
    assert f"nodes_before={total}" in text and f"nodes_after={total - pruned}" in text
    # the DuckDB plan is there too
    assert "Filter" in text or "FILTER" in text


def test_explain_reports_inlining_and_refusals(engine: Engine) -> None:
    frame = table(5, 200, 0.0)
    text = unwrapped(engine.explain(f"SELECT predict(logreg, {F}) FROM t", frames={"t": frame}))
    assert "inlined as SQL expression: linear model" in text and "strategy=sql" in text
    assert "batching: not needed (no ONNX call left" in text and "Arrow UDF" not in text
    text = unwrapped(engine.explain(
        f"SELECT id FROM t WHERE age > 60 AND predict(gb_reg, {F}) > 100",
        frames={"t": frame},
    ))
    assert "tree nodes using age > 60" in text  # the WHERE's other conjunct prunes its call
    text = unwrapped(engine.explain(
        f"SELECT predict(mlp, {F}) FROM t WHERE age > 60", frames={"t": frame}
    ))
    assert "kept as ONNX: no SQL translation for this model's operators" in text


def test_no_optimize_disables_every_rewrite(engine: Engine) -> None:
    frame = table(6, 200, 0.0)
    for kind in ("logreg", "tree_reg", "gb_reg"):
        text = unwrapped(engine.explain(
            f"SELECT predict({kind}, {F}) FROM t WHERE age > 60",
            frames={"t": frame},
            optimize=False,
        ))
        assert f"predict({kind}@1): optimizer off" in text
        assert "pruned" not in text and "inlined" not in text and "dropped" not in text


def test_pruning_speeds_up_a_selective_query_in_the_plan(engine: Engine) -> None:
    frame = table(7, 300, 0.0)
    sql = (
        f"SELECT id, predict(gb_reg_100x8, {F}) AS p FROM t WHERE age > 80 ORDER BY id"
    )
    result = engine.execute(sql, frames={"t": frame})[-1]
    plain = engine.execute(sql, frames={"t": frame}, optimize=False)[-1]
    assert result.df is not None and plain.df is not None
    np.testing.assert_array_equal(
        result.df.p.to_numpy(), plain.df.p.to_numpy()
    )  # identical, not just close


KEPT_FULL = "kept the full model: compiled and cached, estimated cheaper than pruning to an uncompiled model"


def _model_line(text: str) -> str:
    return next(line for line in unwrapped(text).splitlines() if line.startswith("predict(m@1): ") and "pruned" in line)


def test_a_cached_compiled_full_model_beats_pruning_to_an_uncompiled_one(tmp_path: Path) -> None:
    """A later session of a notebook: the full model's kernel is in the disk cache, the
    query's pruned model is not compiled. onnxruntime on the pruned trees is estimated
    slower per row than the full model's kernel, so the plan keeps the full model (the
    notebook's optimized queries ran slower than --no-optimize before)."""
    forest, frame = selective_forest()
    cache = tmp_path / "trees"
    first = selective_engine(cache, forest, frame)
    line = _model_line(first.explain(SELECTIVE_QUERY))
    assert "pruned " in line and "kept the full model" not in line  # nothing cached: pruning wins
    model = first.catalog.resolve("m")
    expected = first.execute(SELECTIVE_QUERY, optimize=False)[-1].df
    first.close()
    compile_session(model.onnx_bytes, ArtifactCache(cache))  # an earlier session compiled the full model
    second = selective_engine(cache, forest, frame)
    try:
        text = unwrapped(second.explain(SELECTIVE_QUERY))
        line = _model_line(text)
        assert KEPT_FULL in line and "(pruned model in onnxruntime " in line
        assert "predict(m@1): compiled tree scoring (10 trees" in text and "loaded from the cache" in text
        result = second.execute(SELECTIVE_QUERY)[-1]
        assert result.explain is not None and "kept_full=True" in result.explain
        assert "pruned_path=onnxruntime" in result.explain
        pd.testing.assert_frame_equal(result.df, expected)  # same rows: only the plan changed
        assert second.sessions.keys() == [original_cache_key(model)]  # the pruned model never ran
    finally:
        second.close()


def test_a_cached_compiled_full_model_beats_inlining_a_pruned_tree_as_sql(tmp_path: Path) -> None:
    """The same rule for SQL: a pruned tree inlined as a CASE is estimated dearer per row
    than the full tree's cached kernel, so the full model runs."""
    from sklearn.tree import DecisionTreeRegressor

    _, frame = selective_forest()
    tree = DecisionTreeRegressor(max_depth=6, random_state=0).fit(frame[["a", "b", "c"]], frame.a * 0.1 + frame.b * 3 + frame.c * 5)
    sql = "SELECT count(*) AS k, avg(predict(m, a, b, c)) AS p FROM t WHERE c = 1"
    cache = tmp_path / "trees"
    engine = selective_engine(cache, tree, frame)
    try:
        assert "inlined as SQL CASE: 1 tree" in unwrapped(engine.explain(sql))
        expected = engine.execute(sql, optimize=False)[-1].df
        compile_session(engine.catalog.resolve("m").onnx_bytes, ArtifactCache(cache))
    finally:
        engine.close()
    engine = selective_engine(cache, tree, frame)
    try:
        result = engine.execute(sql)[-1]
        assert result.explain is not None
        assert "kept the full model: compiled and cached, estimated cheaper than inlining the pruned model as SQL" in result.explain
        assert "compiled tree scoring (1 trees" in result.explain and "kept_full=True" in result.explain
        pd.testing.assert_frame_equal(result.df, expected)
    finally:
        engine.close()


def test_a_plan_is_costed_again_once_the_full_model_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within one session: the plan cache does not keep a pruned plan chosen before the
    full model's kernel was ready (--no-optimize compiled it meanwhile)."""
    forest, frame = selective_forest()
    engine = selective_engine(tmp_path / "trees", forest, frame)
    try:
        first = engine.execute(SELECTIVE_QUERY)[-1]  # the pruned model: far from repaying a compile
        assert first.explain is not None and "kept the full model" not in first.explain
        monkeypatch.setattr(policy, "ORT_SECONDS_PER_STEP", 1e-4)  # the full model's rows now repay it
        naive = engine.execute(SELECTIVE_QUERY, optimize=False)[-1]
        engine.executor.trees.wait(timeout=300)
        assert engine.executor.trees.ready(original_cache_key(engine.catalog.resolve("m")), engine.catalog.resolve("m").onnx_bytes)
        again = engine.execute(SELECTIVE_QUERY)[-1]
        assert again.explain is not None and KEPT_FULL in again.explain
        pd.testing.assert_frame_equal(again.df, naive.df)
        pd.testing.assert_frame_equal(first.df, naive.df)
    finally:
        engine.close()


def test_ml_predict_relation_filters_prune_the_model(onnx_models: Any) -> None:
    trained = onnx_models.get("gb_reg")
    frame = table(8, 400, 0.0)
    sql = (
        "SELECT * FROM ML.PREDICT(MODEL g, (SELECT age, income, tenure, visits, balance "
        "FROM t WHERE age > 60 AND tenure = 2)) ORDER BY age, income"
    )
    eng = Engine(progress_bar=False)
    try:
        eng.execute("CREATE MODEL g FROM $est", params={"est": trained.estimator})
        text = unwrapped(eng.explain(sql, frames={"t": frame}))
        assert 'tree nodes using "age" > 60 AND "tenure" = 2' in text
        fast = eng.execute(sql, frames={"t": frame})[-1].df
        plain = eng.execute(sql, frames={"t": frame}, optimize=False)[-1].df
    finally:
        eng.close()
    assert fast is not None and plain is not None and len(fast) > 0
    assert fast.equals(plain)


def test_reading_one_output_value_computes_only_that_value(engine: Engine) -> None:
    frame = table(9, 300, 0.1)
    frames = {"t": frame}
    projected = engine.execute(
        f"SELECT id, predict(logreg, {F}).output_probability[2] AS p, predict(logreg, {F}).output_label AS l "
        "FROM t ORDER BY id",
        frames=frames,
    )[0]
    assert "output projection: only the output values the query reads are computed" in (projected.explain or "")
    whole = engine.execute(f"SELECT id, predict(logreg, {F}) AS s FROM t ORDER BY id", frames=frames)[0].df
    assert "output projection" not in (engine.explain(f"SELECT predict(logreg, {F}) FROM t", frames=frames))
    expected_p = [None if not isinstance(s, dict) else s["output_probability"][1] for s in whole.s]
    expected_l = [None if not isinstance(s, dict) else s["output_label"] for s in whole.s]
    assert [None if pd.isna(v) else v for v in projected.df.p] == expected_p
    assert [None if pd.isna(v) else v for v in projected.df.l] == expected_l
    assert projected.df.p.isna().sum() > 0  # NULL inputs still give NULL
    naive = engine.execute(
        f"SELECT id, predict(logreg, {F}).output_probability[2] AS p FROM t ORDER BY id", frames=frames, optimize=False
    )[0].df
    np.testing.assert_allclose(projected.df.p.to_numpy(float), naive.p.to_numpy(float), rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("kind", ["gb_reg", "rf_clf", "gb_clf"])
def test_repeated_inputs_are_scored_once_with_identical_results(engine: Engine, kind: str) -> None:
    rng = np.random.default_rng(11)
    n = 6_000
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "age": rng.choice([55.0, 61.0, 63.0, 64.0], n),
            "income": rng.choice([20_000.0, 50_000.0, 90_000.0], n),
            "tenure": rng.choice([0.0, 5.0], n),
            "visits": rng.choice([1.0, 2.0], n),
            "balance": rng.choice([-0.0, 0.0, 1_000.0, np.nan], n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "tenure"] = None
    sql = f"SELECT id, predict({kind}, {F}) AS p, age FROM t WHERE age > 60 ORDER BY id"
    optimized = engine.execute(sql, frames={"t": frame})[0]
    assert f"predict({kind}@1): decision regions:" in (optimized.explain or ""), optimized.explain
    naive = engine.execute(sql, frames={"t": frame}, optimize=False)[0]
    pd.testing.assert_frame_equal(optimized.df, naive.df)
    unordered = engine.execute(sql.replace(" ORDER BY id", ""), frames={"t": frame})[0].df
    assert unordered.id.tolist() == naive.df.id.tolist()  # scan order kept, as without deduplication



@pytest.mark.parametrize(
    ("query", "folds"),
    [
        ("WITH s AS (SELECT id, predict(logreg, {F}) AS p FROM t) "
         "SELECT id, p.output_probability[2] AS q, p.output_label AS l FROM s WHERE p.output_label = 1 ORDER BY id", True),
        ("WITH s AS (SELECT id, predict(logreg, {F}) AS p FROM t) SELECT id, p.output_probability[2] AS q, "
         "p.output_label AS l FROM s ORDER BY id", True),
        ("WITH s AS (SELECT id, predict(logreg, {F}) AS p FROM t) SELECT id, p.output_probability[2] AS q, "
         "p.output_label AS l FROM s JOIN t USING (id) ORDER BY id", False),
        ("WITH s AS (SELECT id, predict(logreg, {F}) AS p FROM t) SELECT id, p.output_probability[2] AS q, "
         "(p).output_label AS l FROM s ORDER BY id", None),
    ],
)
def test_values_read_through_a_cte_are_the_only_ones_computed(engine: Engine, query: str, folds: bool | None) -> None:
    frame = table(12, 300, 0.1)
    sql = query.format(F=F)
    optimized = engine.execute(sql, frames={"t": frame})[0]
    if folds is not None:
        assert ("output projection" in (optimized.explain or "")) is folds, optimized.explain
    naive = engine.execute(sql, frames={"t": frame}, optimize=False)[0].df
    assert optimized.df.id.tolist() == naive.id.tolist()
    assert optimized.df.l.tolist() == naive.l.tolist()
    np.testing.assert_allclose(optimized.df.q.to_numpy(float), naive.q.to_numpy(float), rtol=1e-5, atol=1e-7, equal_nan=True)
