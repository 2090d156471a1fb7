"""Each optimizer rule, in its place in the rule list, on fixture cases of input → expected
(tests/optimizer_cases/<rule>.json): the notes it adds and what it decides; and the
query's result with every rule equals the unoptimized one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.optimizer import RULES, Planner, inline, output_predicates, projection, prune
from nbgov.sqlml.optimizer.state import Memo, PlanState
from tests.fixtures.models import customers
from tests.fixtures.optimizer import calls_in, model_version
from tests.fixtures.sqlml import register

CASES = Path(__file__).parent / "optimizer_cases"
RULE_OF = {"prune": prune.rule, "projection": projection.rule, "output_predicates": output_predicates.rule, "inline": inline.rule}
PARAMS = [
    pytest.param(name, case, id=f"{name}: {case['name']}")
    for name in RULE_OF
    for case in json.loads((CASES / f"{name}.json").read_text())
]


def _through(rule_name: str, case: dict[str, Any], onnx_models: Any) -> tuple[PlanState, tuple[str, ...]]:
    """The plan state after the rules before ``rule_name`` and after it, and its notes."""
    call = calls_in(case["sql"], model_version(onnx_models.get(case["model"]).onnx))[0]
    rule = RULE_OF[rule_name]
    state = PlanState.start(call, Memo(), batched=False)
    for earlier in RULES[: RULES.index(rule)]:
        state = earlier(state)
    before = len(state.notes)
    state = rule(state)
    return state, state.notes[before:]


@pytest.fixture(scope="module")
def engines(onnx_models: Any) -> Iterator[dict[str, Engine]]:
    made: dict[str, Engine] = {}

    def close() -> None:
        for engine in made.values():
            engine.close()

    try:
        yield made
    finally:
        close()


def test_the_rules_run_in_the_documented_order() -> None:
    names = [f"{rule.__module__.rsplit('.', 1)[-1]}.{rule.__name__}" for rule in RULES]
    assert names == [
        "pipelines.lower",
        "predicates.rule",
        "prune.rule",
        "projection.rule",
        "pipelines.report",
        "output_predicates.rule",
        "ensemble_bounds.rule",
        "inline.rule",
        "pipelines.inline_linear",
    ]
    assert Planner(inline_sql=False).rules == RULES[:5]


@pytest.mark.parametrize(("rule_name", "case"), PARAMS)
def test_rule_case(rule_name: str, case: dict[str, Any], onnx_models: Any, engines: dict[str, Engine]) -> None:
    state, added = _through(rule_name, case, onnx_models)
    expect = case["expect"]
    text = " | ".join(added)
    assert all(note in text for note in expect["notes"]), added
    assert not any(note in text for note in expect.get("absent", ())), added
    if not expect["notes"]:
        assert added == (), added
    if "pruned" in expect:
        pruned = state.pruning is not None and state.pruning.nodes_after < state.pruning.nodes_before
        assert pruned is expect["pruned"]
    if "kept" in expect:
        assert [state.bound.columns[j].name for j in state.kept_features()] == expect["kept"]
    if "decided" in expect:
        kind = None if state.decided is None else ("sql-filter" if state.decided.comparison else "sql")
        assert kind == expect["decided"]
    if "onnx_reason" in expect:
        assert expect["onnx_reason"] in (state.onnx_reason or "")
    _same_result_as_unoptimized(case, onnx_models, engines)


def _same_result_as_unoptimized(case: dict[str, Any], onnx_models: Any, engines: dict[str, Engine]) -> None:
    kind = case["model"]
    if kind not in engines:
        engines[kind] = Engine(progress_bar=False)
        register(engines[kind], "m", onnx_models.get(kind).path)
    frame = customers(300, seed=5)
    sql = f"SELECT * FROM ({case['sql']}) AS q ORDER BY id"
    fast = engines[kind].execute(sql, frames={"t": frame})[-1].df
    plain = engines[kind].execute(sql, frames={"t": frame}, optimize=False)[-1].df
    assert fast is not None and plain is not None and fast.id.tolist() == plain.id.tolist()
    for a, b in zip(fast.get("p", []), plain.get("p", [])):
        if isinstance(b, dict):  # a classifier: the same label, probabilities within float tolerance
            labels = [k for k in b if "label" in k]
            assert [a[k] for k in labels] == [b[k] for k in labels]
            for k in set(b) - set(labels):
                np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5)
