"""Compiled tree scoring gives onnxruntime's results: trained models of every common
kind, probed on their thresholds, NaN, ±0 and ±inf; hand-made ensembles for every
node mode, missing-value track, aggregate, transform and classifier rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbgov.sqlml.execution.compiled.build import build, examine, load
from nbgov.sqlml.execution.compiled.cache import ArtifactCache
from nbgov.sqlml.execution.compiled.ensemble import NotCompilable
from nbgov.sqlml.execution.compiled.session import CompiledSession
from nbgov.sqlml.models.forest import Branch, Leaf, Tree
from tests.fixtures.ensembles import TRAINED, TrainedEnsembles, ensemble_model, ort_session, stump


def compiled(payload: bytes, cache: ArtifactCache, threads: int = 1) -> CompiledSession:
    candidate = examine(payload)
    return load(candidate, build(candidate, cache), threads=threads)


def assert_exact(payload: bytes, X: np.ndarray, cache: ArtifactCache, threads: int = 1) -> list[np.ndarray]:
    """Every output equals single-threaded onnxruntime's, bit for bit (labels, scores)."""
    expected = ort_session(payload).run(None, {"X" if _input(payload) == "X" else _input(payload): X})
    got = compiled(payload, cache, threads).run(None, {_input(payload): X})
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected):
        theirs = np.asarray(theirs)
        assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
        if theirs.dtype.kind == "f":
            np.testing.assert_array_equal(mine.view(np.uint8), theirs.view(np.uint8))  # bits: ±0 and NaN too
        else:
            np.testing.assert_array_equal(mine, theirs)
    return got


def _input(payload: bytes) -> str:
    import onnx

    return onnx.load_model_from_string(payload).graph.input[0].name


@pytest.mark.parametrize("name", TRAINED)
def test_trained_models_equal_onnxruntime_bit_for_bit(
    name: str, trained_ensembles: TrainedEnsembles, artifact_cache: ArtifactCache
) -> None:
    model = trained_ensembles.get(name)
    assert_exact(model.payload, model.X, artifact_cache)


def test_default_threaded_onnxruntime_differs_only_in_summation_order(
    trained_ensembles: TrainedEnsembles, artifact_cache: ArtifactCache
) -> None:
    """onnxruntime with two threads splits the trees in halves and adds the halves: its
    sums may then differ from the sequential ones in the last bits, never more."""
    model = trained_ensembles.get("gradient_boosting_regressor")
    mine = compiled(model.payload, artifact_cache, threads=2).run(None, {"X": model.X})[0]
    theirs = ort_session(model.payload, threads=2).run(None, {"X": model.X})[0]
    np.testing.assert_allclose(mine, theirs, rtol=8 * np.finfo(np.float32).eps, atol=1e-6)


def test_many_rows_on_two_threads_equal_one_thread(trained_ensembles: TrainedEnsembles, artifact_cache: ArtifactCache) -> None:
    model = trained_ensembles.get("random_forest_3_classes")
    X = np.repeat(model.X, 20, axis=0)
    one = compiled(model.payload, artifact_cache, threads=1).run(None, {"X": X})
    two = compiled(model.payload, artifact_cache, threads=2).run(None, {"X": X})
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_columns_read_in_place_equal_the_matrix(trained_ensembles: TrainedEnsembles, artifact_cache: ArtifactCache) -> None:
    model = trained_ensembles.get("lightgbm_binary")
    session = compiled(model.payload, artifact_cache)
    columns = [np.ascontiguousarray(model.X[:, i]) for i in range(model.X.shape[1])]
    by_rows = session.run(None, {"input": model.X})
    by_columns = session.run_columns(None, columns)
    for a, b in zip(by_rows, by_columns):
        np.testing.assert_array_equal(a, b)


# --- hand-made ensembles: modes and missing-value tracks ---------------------------

EDGES = np.array([np.nan, 0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 0.5, 3.0, 1.5, -3.0, 2.0**40], dtype=np.float32)
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")


def _edge_rows() -> np.ndarray:
    grid = np.array(np.meshgrid(EDGES, EDGES)).reshape(2, -1).T
    return np.ascontiguousarray(grid.astype(np.float32))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nan_true", [False, True])
@pytest.mark.parametrize("threshold", [0.0, -0.0, 1.0, np.inf, -np.inf])
def test_every_mode_and_missing_track(mode: str, nan_true: bool, threshold: float, artifact_cache: ArtifactCache) -> None:
    tree = stump(0, threshold, mode, nan_true, Leaf([(0, 1.0)]), Leaf([(0, 2.0)]))
    assert_exact(ensemble_model([tree]), _edge_rows(), artifact_cache)


def test_mixed_modes_in_one_tree(artifact_cache: ArtifactCache) -> None:
    tree = Tree(
        [
            Branch(0, 0.0, "BRANCH_LT", True, 1, 2),
            Branch(1, 1.0, "BRANCH_NEQ", False, 3, 4),
            Branch(1, -0.0, "BRANCH_GTE", False, 5, 6),
            Leaf([(0, 1.0)]),
            Leaf([(0, 2.0)]),
            Branch(0, np.inf, "BRANCH_EQ", True, 7, 8),
            Leaf([(0, 4.0)]),
            Leaf([(0, 8.0)]),
            Leaf([(0, 16.0)]),
        ]
    )
    assert_exact(ensemble_model([tree, stump(1, 0.5, "BRANCH_GT", True, Leaf([(0, 0.25)]), Leaf([(0, -0.25)]))]), _edge_rows(), artifact_cache)


@pytest.mark.parametrize("nan_true", [False, True])
def test_opset5_tree_ensemble_with_set_membership(nan_true: bool, artifact_cache: ArtifactCache) -> None:
    member = stump(0, 0.0, "BRANCH_MEMBER", nan_true, Leaf([(0, 1.0)]), Leaf([(0, 2.0)]), members=(1.0, 3.0, -3.0))
    plain = stump(1, 0.5, "BRANCH_LEQ", nan_true, Leaf([(0, 0.5)]), Leaf([(0, 0.25)]))
    payload = ensemble_model([member, plain], op_type="TreeEnsemble", aggregate_function=1, post_transform=0)
    assert_exact(payload, _edge_rows(), artifact_cache)


@pytest.mark.parametrize("value_type", ["float", "double"])
def test_opset5_tree_ensemble_multi_target(value_type: str, artifact_cache: ArtifactCache) -> None:
    trees = [
        stump(0, 0.5, "BRANCH_LEQ", False, Leaf([(0, 1.5)]), Leaf([(1, 2.5)])),
        stump(1, -0.0, "BRANCH_GT", True, Leaf([(1, 0.1)]), Leaf([(0, 0.2)])),
    ]
    payload = ensemble_model(trees, op_type="TreeEnsemble", n_outputs=2, value_type=value_type, aggregate_function=1, post_transform=1)
    assert_exact(payload, _edge_rows().astype(np.float64 if value_type == "double" else np.float32), artifact_cache)


# --- aggregates, base values, transforms ----------------------------------------------


def _three_target_trees() -> list[Tree]:
    """Leaves that write some targets and not others (per-row 'has a score' rules)."""
    return [
        stump(0, 0.0, "BRANCH_LEQ", False, Leaf([(0, 1.0), (2, -0.5)]), Leaf([(1, 3.0)])),
        stump(1, 1.0, "BRANCH_LT", True, Leaf([(0, 0.1), (0, 0.2)]), Leaf([(2, 7.0), (1, -2.0)])),
        stump(0, -1.0, "BRANCH_GT", False, Leaf([(1, 1e-8)]), Leaf([(0, -4.0)])),
    ]


@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"])
@pytest.mark.parametrize("base", [None, [0.5, -0.25, 0.0]])
def test_regressor_aggregates_transforms_and_base_values(
    aggregate: str, transform: str, base: list[float] | None, artifact_cache: ArtifactCache
) -> None:
    attributes: dict[str, object] = {"aggregate_function": aggregate, "post_transform": transform}
    if base is not None:
        attributes["base_values"] = base
    payload = ensemble_model(_three_target_trees(), n_outputs=3, **attributes)
    assert_exact(payload, _edge_rows(), artifact_cache)


@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC", "PROBIT"])
def test_single_target_aggregates_ignore_all_transforms_but_probit(
    aggregate: str, transform: str, artifact_cache: ArtifactCache
) -> None:
    trees = [stump(0, 0.25, "BRANCH_LEQ", False, Leaf([(0, 0.3), (0, 9.0)]), Leaf([(0, 0.6)])), stump(1, 0.0, "BRANCH_GTE", True, Leaf([(0, -0.1)]), Leaf([(0, 0.2)]))]
    payload = ensemble_model(trees, aggregate_function=aggregate, post_transform=transform, base_values=[0.125])
    assert_exact(payload, _edge_rows(), artifact_cache)


@pytest.mark.parametrize("value_type", ["float", "double"])
def test_double_input_sums_in_double(value_type: str, artifact_cache: ArtifactCache) -> None:
    trees = [stump(0, 0.5, "BRANCH_LEQ", False, Leaf([(0, 16777216.0)]), Leaf([(0, 1.0)]))] + [
        stump(0, 0.5, "BRANCH_LEQ", False, Leaf([(0, 1.0)]), Leaf([(0, 16777216.0)])) for _ in range(3)
    ]
    payload = ensemble_model(trees, value_type=value_type)
    rows = _edge_rows().astype(np.float64 if value_type == "double" else np.float32)
    assert_exact(payload, rows, artifact_cache)


# --- classifiers ------------------------------------------------------------------------

BINARY_LEAVES = {
    "one_class_positive": ([(0, 0.75)], [(0, 0.25)]),
    "one_class_mixed": ([(0, 1.5)], [(0, -0.5)]),
    "both_classes": ([(0, 0.4), (1, 0.6)], [(1, 0.1), (0, 0.9)]),
    "class_one_sometimes": ([(1, 0.6)], [(0, -0.3)]),
}


@pytest.mark.parametrize("leaves", sorted(BINARY_LEAVES))
@pytest.mark.parametrize("base", [None, [0.25], [0.1, -0.2]])
@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC", "SOFTMAX"])
def test_binary_classifier_rules(leaves: str, base: list[float] | None, transform: str, artifact_cache: ArtifactCache) -> None:
    low, high = BINARY_LEAVES[leaves]
    trees = [stump(0, 0.0, "BRANCH_LEQ", True, Leaf(list(low)), Leaf(list(high))), stump(1, 1.0, "BRANCH_LT", False, Leaf(list(high)), Leaf(list(low)))]
    attributes: dict[str, object] = {"classlabels_int64s": [3, 7], "post_transform": transform}
    if base is not None:
        attributes["base_values"] = base
    payload = ensemble_model(trees, op_type="TreeEnsembleClassifier", n_outputs=2, **attributes)
    try:
        candidate = examine(payload)
    except NotCompilable as refused:
        # only the one layout onnxruntime leaves half-written is refused
        assert leaves == "class_one_sometimes" and base == [0.25], refused
        return
    assert candidate.ensemble.classifier is not None
    assert_exact(payload, _edge_rows(), artifact_cache)


@pytest.mark.parametrize("transform", ["NONE", "SOFTMAX", "SOFTMAX_ZERO", "LOGISTIC"])
def test_multiclass_with_string_labels_and_base_values(transform: str, artifact_cache: ArtifactCache) -> None:
    payload = ensemble_model(
        _three_target_trees(),
        op_type="TreeEnsembleClassifier",
        n_outputs=3,
        classlabels_strings=["cat", "dog", "ému"],
        post_transform=transform,
        base_values=[0.0, 0.5, -0.5],
    )
    labels, _ = assert_exact(payload, _edge_rows(), artifact_cache)
    assert set(labels) <= {"cat", "dog", "ému"}


# --- generated ensembles ------------------------------------------------------------------

THRESHOLDS = st.sampled_from([0.0, -0.0, 0.5, -1.5, 1.0, np.inf, -np.inf])


@st.composite
def trees(draw: st.DrawFn, outputs: int, depth: int = 3) -> Tree:
    nodes: list[Branch | Leaf] = []

    def grow(level: int) -> int:
        position = len(nodes)
        if level == depth or draw(st.integers(0, 3)) == 0:
            count = draw(st.integers(1, 2))
            nodes.append(Leaf([(draw(st.integers(0, outputs - 1)), draw(st.sampled_from([0.5, -0.25, 1e-3, 3.0, -0.0]))) for _ in range(count)]))
            return position
        branch = Branch(draw(st.integers(0, 2)), draw(THRESHOLDS), draw(st.sampled_from(MODES)), draw(st.booleans()), -1, -1)
        nodes.append(branch)
        branch.true = grow(level + 1)
        branch.false = grow(level + 1)
        return position

    grow(0)
    return Tree(nodes)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_ensembles_equal_onnxruntime(data: st.DataObject, artifact_cache: ArtifactCache) -> None:
    outputs = data.draw(st.integers(1, 3))
    forest = data.draw(st.lists(trees(outputs), min_size=1, max_size=4))
    aggregate = data.draw(st.sampled_from(["SUM", "AVERAGE", "MIN", "MAX"]))
    transform = data.draw(st.sampled_from(["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]))
    payload = ensemble_model(forest, n_features=3, n_outputs=outputs, aggregate_function=aggregate, post_transform=transform)
    rows = np.array(np.meshgrid(EDGES[:8], EDGES[:8], EDGES[[0, 1, 3, 5]])).reshape(3, -1).T.astype(np.float32)
    assert_exact(payload, np.ascontiguousarray(rows), artifact_cache)


# --- refusals ------------------------------------------------------------------------------


def test_a_leaf_without_weight_is_refused() -> None:
    payload = ensemble_model([stump(0, 0.0, "BRANCH_LEQ", False, Leaf([]), Leaf([(0, 1.0)]))])
    with pytest.raises(NotCompilable, match="no weight"):
        examine(payload)


def test_a_model_that_is_not_trees_is_refused(onnx_models: object) -> None:
    logistic = onnx_models.get("logreg")  # type: ignore[attr-defined]
    with pytest.raises(NotCompilable, match="no tree ensemble"):
        examine(logistic.onnx)


def test_trees_behind_an_encoder_are_refused(onnx_models: object) -> None:
    pipeline = onnx_models.get("pipeline_mixed")  # type: ignore[attr-defined]
    with pytest.raises(NotCompilable):
        examine(pipeline.onnx)


def test_results_never_depend_on_how_far_rows_walk_together(
    trained_ensembles: TrainedEnsembles, artifact_cache: ArtifactCache
) -> None:
    """Lanes walk each tree together for ``steps[t]`` levels and deeper rows finish alone:
    a speed choice made from the rows' depths, never a change of result."""
    model = trained_ensembles.get("lightgbm_3_classes")
    kernel = compiled(model.payload, artifact_cache).kernel
    trees = kernel.tree_count
    histogram = kernel.profile(model.X)
    assert histogram.shape == (trees, kernel.max_depth + 1) and (histogram.sum(axis=1) == len(model.X)).all()
    reference = np.empty((len(model.X), 3), dtype=np.float32)
    kernel.score_rows(model.X, reference, None)
    rng = np.random.default_rng(0)
    for steps in (np.zeros(trees), np.full(trees, kernel.max_depth), rng.integers(0, kernel.max_depth + 1, trees)):
        got = np.empty_like(reference)
        kernel.score_rows(model.X, got, None, np.ascontiguousarray(steps, dtype=np.int32))
        np.testing.assert_array_equal(got, reference)


def test_lock_steps_follow_the_depths_rows_reach() -> None:
    from nbgov.sqlml.execution.compiled.session import lock_steps

    balanced = np.zeros((1, 9), dtype=np.int64)
    balanced[0, 8] = 1000  # every row goes 8 deep: walk all 8 together
    lopsided = np.zeros((1, 31), dtype=np.int64)
    lopsided[0, 5] = 990
    lopsided[0, 30] = 10  # a long, rarely taken branch: not worth 25 steps for every row
    assert lock_steps(balanced).tolist() == [8]
    assert lock_steps(lopsided).tolist() == [5]


def test_hostile_trees_are_refused_not_followed() -> None:
    """A node that points back to its ancestor, or to a node that does not exist."""
    from onnx import TensorProto, helper

    def model(true_ids: list[int], false_ids: list[int]) -> bytes:
        node = helper.make_node(
            "TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=1,
            nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
            nodes_modes=["BRANCH_LEQ", "BRANCH_LEQ", "LEAF"], nodes_values=[0.0, 1.0, 0.0],
            nodes_truenodeids=true_ids, nodes_falsenodeids=false_ids,
            target_treeids=[0], target_nodeids=[2], target_ids=[0], target_weights=[1.0],
        )
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]).SerializeToString()

    with pytest.raises(NotCompilable, match="could not be read"):
        examine(model([1, 0, 0], [2, 2, 0]))  # node 1 sends rows back to the root
    with pytest.raises(NotCompilable, match="could not be read"):
        examine(model([1, 7, 0], [2, 2, 0]))  # a child that does not exist
