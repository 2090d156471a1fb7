"""Rule 4: predicates on the model's own output never prune; on a single regression tree
they become a boolean tree that DuckDB runs as a filter, with exactly the same rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.optimizer import Planner
from nbgov.sqlml.optimizer.predicates import output_comparison
from nbgov.sqlml.plan import OnnxPlan, SqlPlan
from tests.fixtures.models import customers
from tests.fixtures.optimizer import FEATURES, calls_in, model_version

F = ", ".join(FEATURES)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (f"predict(m, {F}) > 0.9", (">", 0.9)),
        (f"0.9 < predict(m, {F})", (">", 0.9)),
        (f"predict(m, {F}).output_label = 1", ("=", 1.0)),
        (f"predict(m, {F}) + 1 > 0.9", None),
        (f"predict(m, {F}) > income", None),
    ],
)
def test_output_comparison_is_recognised(
    where: str, expected: Any, onnx_models: Any
) -> None:
    call = calls_in(
        f"SELECT id FROM t WHERE {where}", model_version(onnx_models.get("gb_reg").onnx)
    )[0]
    assert output_comparison(call.node) == expected


def test_output_predicate_never_prunes_and_becomes_a_boolean_tree(onnx_models: Any) -> None:
    trained = onnx_models.get("tree_reg")
    call = calls_in(
        f"SELECT id FROM t WHERE predict(m, {F}) > 100", model_version(trained.onnx)
    )[0]
    plan = Planner().plan_call(call)
    assert (
        "not used for pruning: predict(...) > 100 restricts the model's output, not its inputs"
        in plan.notes
    )
    assert plan.stats["nodes_after"] == plan.stats["nodes_before"]
    assert isinstance(plan.strategy, SqlPlan) and plan.strategy.comparison
    assert 0 < plan.stats["leaves_passing"] < plan.stats["leaves"] == 16
    assert plan.stats["branches_kept"] < 15  # leaves that agree were collapsed
    assert any(n.startswith("output predicate > 100: boolean tree: ") for n in plan.notes)


def _leaf_values(engine: Engine, frame: pd.DataFrame) -> list[float]:
    """Every distinct output of the tree on ``frame``, as onnxruntime computes it."""
    values = engine.execute(f"SELECT DISTINCT predict(tree_reg, {F}) AS v FROM t ORDER BY v", frames={"t": frame})
    return [float(v) for v in values[0].df.v if pd.notna(v)]


def test_boolean_tree_keeps_exactly_the_rows_at_every_boundary(onnx_models: Any) -> None:
    """Constants equal to a leaf's exact output (as DuckDB prints it) and integer
    constants, with every comparison, on both sides, in WHERE and in SELECT with NULLs."""
    frame = customers(800, seed=5)
    frame.loc[frame.id % 7 == 0, "income"] = None
    engine = Engine(progress_bar=False)
    try:
        engine.execute(f"CREATE MODEL tree_reg FROM '{onnx_models.get('tree_reg').path}'")
        values = _leaf_values(engine, frame)
        middle = values[len(values) // 2]
        # the exact value, its shortest FLOAT spelling (equal as FLOAT, not as DOUBLE), an integer
        constants = [repr(middle), str(np.float32(middle)), repr(values[1]), str(int(values[-1]))]
        for constant in constants:
            for op in (">", ">=", "<", "<=", "="):
                for shape in (
                    f"SELECT id FROM t WHERE predict(tree_reg, {F}) {op} {constant} ORDER BY id",
                    f"SELECT id FROM t WHERE {constant} {op} (predict(tree_reg, {F})) ORDER BY id",
                    f"SELECT id, predict(tree_reg, {F}) {op} {constant} AS passes FROM t ORDER BY id",
                ):
                    fast = engine.execute(shape, frames={"t": frame})[-1]
                    plain = engine.execute(shape, frames={"t": frame}, optimize=False)[-1].df
                    assert "boolean tree" in (fast.explain or ""), shape
                    pd.testing.assert_frame_equal(fast.df, plain, check_dtype=False)
        flags = engine.execute(
            f"SELECT id, predict(tree_reg, {F}) > {constants[0]} AS passes FROM t ORDER BY id", frames={"t": frame}
        )[-1].df
        assert flags.passes[frame.sort_values("id").income.isna().to_numpy()].isna().all()  # NULL in, NULL out
    finally:
        engine.close()


def test_output_predicate_results_are_unchanged(onnx_models: Any) -> None:
    frame = customers(600, seed=2)
    engine = Engine(progress_bar=False)
    try:
        for kind in ("tree_reg", "gb_reg", "logreg"):
            engine.execute(f"CREATE MODEL {kind} FROM '{onnx_models.get(kind).path}'")
        for sql in (
            f"SELECT id FROM t WHERE age > 50 AND predict(tree_reg, {F}) > 100 ORDER BY id",
            f"SELECT id FROM t WHERE predict(gb_reg, {F}) BETWEEN 0 AND 200 AND tenure < 5 ORDER BY id",
            f"SELECT id FROM t WHERE predict(logreg, {F}).output_label = 1 AND visits >= 4 ORDER BY id",
        ):
            fast = engine.execute(sql, frames={"t": frame})[-1].df
            plain = engine.execute(sql, frames={"t": frame}, optimize=False)[-1].df
            assert isinstance(fast, pd.DataFrame) and isinstance(plain, pd.DataFrame)
            assert fast.id.tolist() == plain.id.tolist()
            assert 0 < len(fast) < len(frame)
    finally:
        engine.close()


def test_plans_for_output_predicates_on_ensembles_fall_back_to_the_exact_model(onnx_models: Any) -> None:
    """An ensemble's comparison is decided by bounds where they prove it (ensemble_bounds.py);
    elsewhere the exact, unpruned model scores the rows."""
    call = calls_in(
        f"SELECT id FROM t WHERE predict(m, {F}) > 1",
        model_version(onnx_models.get("gb_reg").onnx),
    )[0]
    plan = Planner().plan_call(call)
    assert isinstance(plan.strategy, SqlPlan) and plan.strategy.comparison
    assert plan.strategy.fallback is not None
    assert plan.strategy.fallback.model_bytes == call.model.onnx_bytes
