"""Rule 1: which constraints a statement proves for the rows a predict(...) call sees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbgov.sqlml.optimizer.domains import Domain
from nbgov.sqlml.optimizer.predicates import call_constraints
from tests.fixtures.optimizer import calls_in, model_version

CASES = json.loads(
    (Path(__file__).parent / "optimizer_cases" / "predicates.json").read_text()
)


@pytest.fixture(scope="module")
def gb_model(onnx_models: Any) -> Any:
    return model_version(onnx_models.get("gb_reg").onnx)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_predicate_case(case: dict[str, Any], gb_model: Any) -> None:
    call = calls_in(case["sql"], gb_model)[0]
    found = call_constraints(call)
    assert sorted(found.text) == sorted(case["constraints"])
    assert list(found.refusals) == case["refusals"]


def test_constraints_are_keyed_by_feature_position(gb_model: Any) -> None:
    sql = "SELECT predict(m, age, income, tenure, visits, balance) FROM t WHERE tenure = 4 AND balance > 1"
    found = call_constraints(calls_in(sql, gb_model)[0])
    assert set(found.domains) == {(0, 2), (0, 4)}
    assert found.domains[(0, 2)].values == frozenset({4.0})
    assert found.domains[(0, 4)].lo == 1.0 and found.domains[(0, 4)].lo_open


def test_duckdb_nan_ordering_is_respected() -> None:
    # DuckDB sorts NaN above every number: `x > 5` admits NaN, `x < 5` does not.
    assert Domain.compare(">", 5).nan and Domain.compare(">=", 5).nan
    assert not Domain.compare("<", 5).nan and not Domain.compare("=", 5).nan
    assert not Domain.compare(">", 5).intersect(Domain.compare("<", 9)).nan


def test_float32_rounding_closes_strict_bounds() -> None:
    # 60.000001 rounds to 60.0 in float32, so `age > 60` must allow 60.0 in model space.
    dom = Domain.compare(">", 60).in_model_space("float")
    assert dom.lo == 60.0
    below = Domain.compare("<", 0.1).in_model_space("float")
    assert (
        below.hi == float(np.float32(0.1)) and below.hi > 0.1
    )  # 0.0999999 rounds up to it


def test_contradiction_is_empty() -> None:
    assert Domain.compare(">", 5).intersect(Domain.compare("<", 3)).empty
    assert Domain.one_of([1, 2]).intersect(Domain.compare("=", 3)).empty
    assert not Domain.compare(">", 5).empty
