"""Rule 2: predicate-based pruning and projection of tree ensembles.

The pruned (and projected) model must give *identical* outputs to the original
on every row the query's constraints allow, for every tree encoding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import sqlglot.expressions as exp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from nbgov.sqlml.optimizer import Planner
from nbgov.sqlml.optimizer.domains import Domain
from nbgov.sqlml.models.forest import _write_v5, read_forest, write_forest
from nbgov.sqlml.optimizer.projection import rebuild
from nbgov.sqlml.optimizer.prune import prune_forest
from nbgov.sqlml.models.treegraph import analyze
from nbgov.sqlml.plan import OnnxPlan, SqlPlan
from tests.fixtures.optimizer import FEATURES, calls_in, model_version

TREE_KINDS = ["tree_reg", "tree_clf", "rf_reg", "rf_clf", "gb_reg", "gb_clf"]


def run(payload: bytes, X: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    outs = session.run(None, {session.get_inputs()[0].name: X})
    return [
        np.asarray(o)
        if not isinstance(o, list)
        else np.array([[d[k] for k in sorted(d)] for d in o])
        for o in outs
    ]


def kept_features(plan: OnnxPlan) -> list[int]:
    """Original feature positions the plan model reads (a NULL guard CASE wraps one of them)."""
    out = []
    for column in plan.inputs[0].columns:
        inner = column.args["default"] if isinstance(column, exp.Case) else column
        out.append(FEATURES.index(inner.name))
    return out


def to_v5(payload: bytes) -> bytes:
    """Re-encode a TreeEnsembleRegressor as opset-5 TreeEnsemble (+ Add for its base value)."""
    model = onnx.load_model_from_string(payload)
    node = model.graph.node[0]
    assert node.op_type == "TreeEnsembleRegressor"
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    base = float(next(iter(attrs.get("base_values") or [0.0])))
    forest = read_forest(node)
    tree = helper.make_node(
        "TreeEnsemble",
        [node.input[0]],
        ["raw"],
        domain="ai.onnx.ml",
        aggregate_function=1,
        post_transform=0,
        n_targets=1,
        **_write_v5(forest, {}),
    )
    add = helper.make_node("Add", ["raw", "base"], [node.output[0]])
    graph = helper.make_graph(
        [tree, add],
        "v5",
        list(model.graph.input),
        list(model.graph.output),
        [helper.make_tensor("base", onnx.TensorProto.FLOAT, [1], [base])],
    )
    v5 = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 17),
            helper.make_opsetid("ai.onnx.ml", 5),
        ],
    )
    v5.ir_version = 10
    return v5.SerializeToString()


def rows_in(
    X: np.ndarray, constraints: list[tuple[int, str, float]], rng: np.random.Generator
) -> np.ndarray:
    """Rows near the training data, forced into the constrained region."""
    rows = X[rng.integers(0, len(X), 300)] + rng.normal(0, 0.5, (300, X.shape[1]))
    for feature, op, value in constraints:
        col = rows[:, feature]
        if op == "=":
            col[:] = value
        elif op in (">", ">="):
            col[:] = np.where(
                col > value,
                col,
                value + np.abs(rng.normal(0, 5, len(col))) + (op == ">") * 1e-9,
            )
        else:
            col[:] = np.where(
                col < value,
                col,
                value - np.abs(rng.normal(0, 5, len(col))) - (op == "<") * 1e-9,
            )
    return rows


@pytest.mark.parametrize("kind", TREE_KINDS + ["gb_reg_v5"])
def test_pruned_model_is_identical_on_allowed_rows(kind: str, onnx_models: Any) -> None:
    trained = onnx_models.get(kind.removesuffix("_v5"))
    payload = to_v5(trained.onnx) if kind.endswith("_v5") else trained.onnx
    X = trained.X.to_numpy()
    rng = np.random.default_rng(3)
    age_cut = float(np.quantile(X[:, 0], 0.7))
    sql = f"SELECT predict(m, {', '.join(FEATURES)}) FROM t WHERE age > {age_cut} AND tenure = 3"
    plan = Planner(inline_sql=False).plan_call(calls_in(sql, model_version(payload))[0])
    assert isinstance(plan.strategy, OnnxPlan)
    stats = plan.stats
    assert int(stats["nodes_after"]) < int(stats["nodes_before"])  # type: ignore[call-overload]
    assert any(n.startswith("pruned ") and "using age > " in n for n in plan.notes)
    # tenure is fixed to a constant: folded into the trees and no longer an input
    assert FEATURES.index("tenure") not in kept_features(plan.strategy)
    rows = rows_in(X, [(0, ">", age_cut), (2, "=", 3.0)], rng).astype(np.float32)
    kept = kept_features(plan.strategy)
    for original, pruned in zip(
        run(payload, rows), run(plan.strategy.model_bytes, rows[:, kept])
    ):
        np.testing.assert_array_equal(original, pruned)


def test_pruning_is_sound_outside_constraints_only_where_promised(
    onnx_models: Any,
) -> None:
    # Rows violating the predicate may score differently: that is why placement matters.
    trained = onnx_models.get("gb_reg")
    tg = analyze(onnx.load_model_from_string(trained.onnx))
    assert tg is not None
    pruned = [
        prune_forest(f, {0: Domain.compare(">", 80).in_model_space("float")}).forest
        for f in tg.forests
    ]
    rebuilt = rebuild(tg, pruned, project=False)
    young = trained.X.to_numpy().astype(np.float32)[trained.X.age.to_numpy() < 30]
    differ = (
        run(trained.onnx, young)[0] != run(rebuilt.model.SerializeToString(), young)[0]
    )
    assert differ.any()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(TREE_KINDS + ["gb_reg_v5"]),
    picks=st.lists(
        st.tuples(
            st.integers(0, 4),
            st.sampled_from([">", ">=", "<", "<=", "="]),
            st.floats(0.05, 0.95),
        ),
        min_size=1,
        max_size=2,
        unique_by=lambda t: t[0],
    ),
    seed=st.integers(0, 2**16),
)
def test_random_predicates_keep_outputs_identical(
    kind: str, picks: list[tuple[int, str, float]], seed: int, onnx_models: Any
) -> None:
    base_kind = kind.removesuffix("_v5")
    trained = onnx_models.get(base_kind)
    payload = to_v5(trained.onnx) if kind.endswith("_v5") else trained.onnx
    X = trained.X.to_numpy()
    constraints = []
    for feature, op, q in picks:
        value = float(np.round(np.quantile(X[:, feature], q), 1))
        constraints.append((feature, op, value))
    where = " AND ".join(f"{FEATURES[f]} {op} {v!r}" for f, op, v in constraints)
    sql = f"SELECT predict(m, {', '.join(FEATURES)}) FROM t WHERE {where}"
    plan = Planner(inline_sql=False).plan_call(calls_in(sql, model_version(payload))[0])
    assert isinstance(plan.strategy, OnnxPlan)
    assert "nodes_before" in plan.stats, plan.notes  # the tree rules ran
    rows = rows_in(X, constraints, np.random.default_rng(seed))
    kept = kept_features(plan.strategy)
    for original, pruned in zip(
        run(payload, rows.astype(np.float32)),
        run(plan.strategy.model_bytes, rows[:, kept].astype(np.float32)),
    ):
        np.testing.assert_array_equal(original, pruned)


def test_v5_encoding_round_trips(onnx_models: Any) -> None:
    trained = onnx_models.get("gb_reg")
    v5 = to_v5(trained.onnx)
    X = trained.X.to_numpy().astype(np.float32)
    np.testing.assert_allclose(run(v5, X)[0], run(trained.onnx, X)[0], rtol=1e-6)
    tg = analyze(onnx.load_model_from_string(v5))
    assert tg is not None and tg.tree_count == 20
    same = rebuild(tg, tg.forests, project=False).model.SerializeToString()
    np.testing.assert_array_equal(run(same, X)[0], run(v5, X)[0])


def test_classic_encoding_round_trips(onnx_models: Any) -> None:
    trained = onnx_models.get("rf_clf")
    model = onnx.load_model_from_string(trained.onnx)
    node = next(n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier")
    node.CopyFrom(write_forest(node, read_forest(node)))
    X = trained.X.to_numpy().astype(np.float32)
    for a, b in zip(run(trained.onnx, X), run(model.SerializeToString(), X)):
        np.testing.assert_array_equal(a, b)


def test_nan_rows_follow_the_original_model(onnx_models: Any) -> None:
    # `income > c` admits NaN in DuckDB; the pruned model must route NaN like the original.
    trained = onnx_models.get("rf_reg")
    sql = f"SELECT predict(m, {', '.join(FEATURES)}) FROM t WHERE income > 60000"
    plan = Planner(inline_sql=False).plan_call(
        calls_in(sql, model_version(trained.onnx))[0]
    )
    assert isinstance(plan.strategy, OnnxPlan)
    rows = trained.X.to_numpy()[:50].copy()
    rows[:, 1] = np.nan
    kept = kept_features(plan.strategy)
    np.testing.assert_array_equal(
        run(trained.onnx, rows.astype(np.float32))[0],
        run(plan.strategy.model_bytes, rows[:, kept].astype(np.float32))[0],
    )


def test_unconstrained_call_keeps_the_original_model(onnx_models: Any) -> None:
    trained = onnx_models.get("gb_clf")
    sql = f"SELECT predict(m, {', '.join(FEATURES)}) FROM t"
    call = calls_in(sql, model_version(trained.onnx))[0]
    plan = Planner().plan_call(call)
    assert isinstance(plan.strategy, OnnxPlan) and not isinstance(
        plan.strategy, SqlPlan
    )
    assert plan.strategy.model_bytes == call.model.onnx_bytes
    assert any("no pruning" in n for n in plan.notes)


def test_pruned_models_are_cached_by_predicate(onnx_models: Any) -> None:
    trained = onnx_models.get("gb_reg")
    planner = Planner(inline_sql=False)
    mv = model_version(trained.onnx)
    first = planner.plan_call(
        calls_in(f"SELECT predict(m, {', '.join(FEATURES)}) FROM t WHERE age > 60", mv)[
            0
        ]
    )
    again = planner.plan_call(
        calls_in(f"SELECT predict(m, {', '.join(FEATURES)}) FROM u WHERE 60 < age", mv)[
            0
        ]
    )
    other = planner.plan_call(
        calls_in(f"SELECT predict(m, {', '.join(FEATURES)}) FROM t WHERE age > 71", mv)[
            0
        ]
    )
    assert (
        isinstance(first.strategy, OnnxPlan)
        and isinstance(again.strategy, OnnxPlan)
        and isinstance(other.strategy, OnnxPlan)
    )
    assert (
        first.strategy.cache_key == again.strategy.cache_key != other.strategy.cache_key
    )
    assert "pruned model reused from cache" in again.notes
    assert first.strategy.cache_key.startswith(mv.sha256)


@pytest.mark.parametrize("mode", ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ"])
def test_a_nan_threshold_sends_every_number_false(mode: str) -> None:
    """onnxruntime's comparison with a NaN threshold is false for every number: a test whose
    NaN goes true kept only its true side (``lo <= nan`` and ``hi > nan`` both false read as
    "no number reaches either side"), and the numbers' leaves were pruned away."""
    from nbgov.sqlml.models.forest import Branch, Forest, Leaf, Tree
    from nbgov.sqlml.optimizer.domains import ModelDomain
    from nbgov.sqlml.optimizer.ensemble_bounds import _Walker

    tree = Tree([Branch(0, float("nan"), mode, True, 1, 2), Leaf([(0, 1.0)]), Leaf([(0, 2.0)])])
    forest = Forest("TreeEnsembleRegressor", [tree], np.float32, False)
    everything = {0: ModelDomain(lo=-np.inf, hi=np.inf, values=None, nan=True)}
    assert prune_forest(forest, everything).nodes_after == 3
    numbers = {0: ModelDomain(lo=-np.inf, hi=np.inf, values=None, nan=False)}
    assert prune_forest(forest, numbers).forest.trees[0].nodes == [Leaf([(0, 2.0)])]
    assert _Walker(forest, everything).sides(tree.nodes[0]) == (True, True)  # ensemble bounds alike
    assert _Walker(forest, numbers).sides(tree.nodes[0]) == (False, True)
