"""Rule 4: predicates on the model's own output never prune; they are reported."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.optimizer import Planner
from nbgov.sqlml.optimizer.output_predicates import output_comparison
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


def test_output_predicate_never_prunes(onnx_models: Any) -> None:
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
    leaves = next(n for n in plan.notes if n.startswith("output predicate > 100: "))
    passing, total = (
        int(x)
        for x in leaves.removeprefix("output predicate > 100: ")
        .split(" leaves")[0]
        .split(" of ")
    )
    assert 0 < passing < total == 16


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


def test_plans_for_output_predicates_keep_exact_models(onnx_models: Any) -> None:
    call = calls_in(
        f"SELECT id FROM t WHERE predict(m, {F}) > 1",
        model_version(onnx_models.get("gb_reg").onnx),
    )[0]
    plan = Planner().plan_call(call)
    assert isinstance(plan.strategy, OnnxPlan) and not isinstance(
        plan.strategy, SqlPlan
    )
    assert plan.strategy.model_bytes == call.model.onnx_bytes
