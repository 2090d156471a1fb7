"""Fixture cases (query + model → expected rewrite and result), and planner robustness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.optimizer import Planner
from nbgov.sqlml.plan import ModelCall, OnnxPlan, SqlPlan
from tests.fixtures.models import customers
from tests.fixtures.optimizer import calls_in, model_version

CASES = json.loads(
    (Path(__file__).parent / "optimizer_cases" / "rewrites.json").read_text()
)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_rewrite_case(case: dict[str, Any], onnx_models: Any) -> None:
    trained = onnx_models.get(case["model"])
    call = calls_in(case["sql"], model_version(trained.onnx))[0]
    plan = Planner().plan_call(call)
    assert isinstance(plan.strategy, SqlPlan if case["strategy"] == "sql" else OnnxPlan)
    text = " | ".join(plan.notes)
    for expected in case["notes"]:
        assert expected in text
    pruned = (
        "nodes_after" in plan.stats
        and plan.stats["nodes_after"] < plan.stats["nodes_before"]
    )  # type: ignore[operator]
    assert pruned == case["pruned"]

    # ... and the result through the real engine equals the unoptimized one.
    engine = Engine(progress_bar=False)
    try:
        engine.execute(f"CREATE MODEL m FROM '{trained.path}'")
        frame = customers(500, seed=21)
        fast = engine.execute(case["sql"], frames={"t": frame})[-1].df
        plain = engine.execute(case["sql"], frames={"t": frame}, optimize=False)[-1].df
    finally:
        engine.close()
    assert fast is not None and plain is not None and len(fast) == len(plain) > 0
    assert fast.id.tolist() == plain.id.tolist()
    if "p" in fast.columns:
        for a, b in zip(fast.p.tolist(), plain.p.tolist()):
            if isinstance(a, dict):
                assert a["output_label"] == b["output_label"]
                np.testing.assert_allclose(
                    a["output_probability"],
                    b["output_probability"],
                    rtol=1e-5,
                    atol=1e-6,
                )
            elif case["strategy"] == "sql" and case["model"] in ("logreg", "linreg"):
                np.testing.assert_allclose(a, b, rtol=1e-5)
            else:
                assert a == b or (
                    np.isnan(a) and np.isnan(b)
                )  # pruning and tree SQL are exact


def test_planner_failure_falls_back_to_the_original_model(onnx_models: Any) -> None:
    trained = onnx_models.get("gb_reg")
    good = calls_in(
        "SELECT predict(m, age, income, tenure, visits, balance) FROM t WHERE age > 3",
        model_version(trained.onnx),
    )[0]
    broken = ModelCall(
        model=model_version(trained.onnx).__class__(
            **{**model_version(trained.onnx).__dict__, "onnx_bytes": b"not onnx"}
        ),
        inputs=good.inputs,
        node=good.node,
        statement=good.statement,
    )
    plan = Planner().plan_call(broken)
    assert (
        isinstance(plan.strategy, OnnxPlan) and plan.strategy.model_bytes == b"not onnx"
    )
    assert plan.notes[0].startswith("optimizer skipped: ")
