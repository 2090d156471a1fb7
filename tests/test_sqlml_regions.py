"""Decision regions: scoring one row per region gives every row's output bit for bit,
at the edges too (a value equal to a threshold, one ulp either side, NaN, -0.0)."""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.neural_network import MLPRegressor

from nbgov.sqlml.engine import Engine
from nbgov.sqlml.execution.regions import Regions, regions_of
from nbgov.sqlml.models.runtime import open_session

FEATURES = ("a", "b", "c")


def _convert(estimator, tensor=FloatTensorType) -> bytes:
    return convert_sklearn(estimator, initial_types=[("input", tensor([None, len(FEATURES)]))]).SerializeToString()


def _train(kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(2_000, len(FEATURES))).astype(np.float32), columns=list(FEATURES))
    y = X.a * 2 + (X.b > 0.3) - X.c**2
    if kind == "gb":
        return GradientBoostingRegressor(n_estimators=12, max_depth=3, random_state=0).fit(X, y)
    if kind == "rf":
        return RandomForestClassifier(n_estimators=8, max_depth=3, random_state=0).fit(X, (y > 0).astype(int))
    return MLPRegressor(hidden_layer_sizes=(4,), max_iter=500, random_state=0).fit(X, y)


def _edge_rows(regions: Regions, rng: np.random.Generator) -> np.ndarray:
    """Rows made of a few thresholds per feature, their float32 neighbours, NaN and
    signed zeros, and values beyond every threshold (few distinct values, so that
    regions repeat)."""
    columns = []
    for cuts in regions.cuts:
        points = rng.choice(cuts.astype(np.float32), 3)
        near = np.concatenate([points, np.nextafter(points, np.float32(np.inf)), np.nextafter(points, np.float32(-np.inf))])
        pool = np.concatenate([near, np.array([np.nan, 0.0, -0.0, 1e30, -np.inf], dtype=np.float32)])
        columns.append(rng.choice(pool, 20_000))
    return np.column_stack(columns).astype(np.float32)


def _rewired(payload: bytes) -> bytes:
    """The same trees with every comparison mode in turn and NaN sent to the true side
    on every other test (scikit-learn itself only emits BRANCH_LEQ, NaN false)."""
    model = onnx.load_model_from_string(payload)
    modes = [b"BRANCH_LEQ", b"BRANCH_LT", b"BRANCH_GTE", b"BRANCH_GT", b"BRANCH_EQ", b"BRANCH_NEQ"]
    for node in model.graph.node:
        attributes = {a.name: a for a in node.attribute}
        if "nodes_modes" not in attributes:
            continue
        current = list(attributes["nodes_modes"].strings)
        rewired = [m if m == b"LEAF" else modes[i % len(modes)] for i, m in enumerate(current)]
        del attributes["nodes_modes"].strings[:]
        attributes["nodes_modes"].strings.extend(rewired)
        tracks = [i % 2 for i in range(len(current))]
        if "nodes_missing_value_tracks_true" in attributes:
            node.attribute.remove(attributes["nodes_missing_value_tracks_true"])
        node.attribute.append(onnx.helper.make_attribute("nodes_missing_value_tracks_true", tracks))
    return model.SerializeToString()


@pytest.mark.parametrize("kind", ["gb", "rf", "gb-every-mode"])
def test_region_scores_are_bit_identical_at_every_edge(kind):
    payload = _rewired(_convert(_train("gb"))) if kind == "gb-every-mode" else _convert(_train(kind))
    regions = regions_of(payload)
    assert regions is not None and all(len(c) for c in regions.cuts)
    session = open_session(payload)
    for seed in range(8):  # a different handful of thresholds each time
        matrix = _edge_rows(regions, np.random.default_rng(seed))
        grouped = regions.group(matrix)
        assert grouped is not None
        codes, first = grouped
        assert len(first) < len(matrix) / 4  # far fewer regions than rows
        every_row = session.run(None, {"input": matrix})
        one_per_region = session.run(None, {"input": matrix[first]})
        for full, per_region in zip(every_row, one_per_region):
            np.testing.assert_array_equal(full, per_region[codes])


def test_regions_only_for_float_inputs_read_by_trees_alone():
    assert regions_of(_convert(_train("mlp"))) is None  # a network sees every value
    assert regions_of(_convert(_train("gb"), DoubleTensorType)) is None  # not the float case
    assert regions_of(b"not a model") is None


def test_engine_scores_regions_only_when_optimizing():
    estimator = _train("gb")
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(30_000, 3)), columns=list(FEATURES))
    frame["id"] = np.arange(len(frame))
    frame.loc[rng.random(len(frame)) < 0.05, "b"] = None
    sql = "SELECT id, predict(m, a, b, c) AS p FROM f WHERE a > 1.2 ORDER BY id"
    with Engine(progress_bar=False) as engine:
        engine.execute("CREATE MODEL m FROM $m", params={"m": estimator})  # feature names kept, for ML.PREDICT
        optimized = engine.execute(sql, frames={"f": frame})[0]
        naive = engine.execute(sql, frames={"f": frame}, optimize=False)[0]
        ml = engine.execute(
            "SELECT p.id, q.predicted_variable AS p FROM ML.PREDICT(MODEL m, (SELECT * FROM f WHERE a > 1.2)) AS q "
            "JOIN f AS p USING (id) ORDER BY id",
            frames={"f": frame},
        )[0]
    assert "predict(m@1): decision regions:" in (optimized.explain or "")
    assert "decision regions" not in (naive.explain or "")
    pd.testing.assert_frame_equal(optimized.df, naive.df)  # exactly, not within a tolerance
    assert optimized.df.p.isna().sum() == frame[frame.a > 1.2].b.isna().sum()  # NULL in, NULL out
    assert "ML.PREDICT(MODEL m@1): decision regions:" in (ml.explain or "")
    np.testing.assert_array_equal(ml.df.p.to_numpy(), naive.df.p.to_numpy())


def test_rows_in_regions_of_their_own_are_scored_as_usual():
    """An unpruned forest on continuous values: almost every row is its own region."""
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(3_000, 3)).astype(np.float32), columns=list(FEATURES))
    forest = RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0).fit(X, X.a + X.b > 0)
    regions = regions_of(_convert(forest))
    assert regions is not None
    assert regions.group(rng.normal(size=(10_000, 3)).astype(np.float32)) is None


def test_relation_is_probed_for_shared_regions_once(monkeypatch):
    """Rows of their own (continuous values, pruned trees still cut them finely): the
    relation's first rows are probed once, not once per slice nor once per run of the same
    query, and every row is scored."""
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(3_000, 3)).astype(np.float32), columns=list(FEATURES))
    estimator = GradientBoostingRegressor(n_estimators=30, max_depth=8, random_state=0).fit(X, X.a + X.b * X.c)
    frame = pd.DataFrame(rng.normal(size=(40_000, 3)), columns=list(FEATURES))
    probes: list[int] = []
    shared = Regions.shared

    def counted(self: Regions, matrix: np.ndarray) -> bool:
        probes.append(len(matrix))
        return shared(self, matrix)

    monkeypatch.setattr(Regions, "shared", counted)
    sql = "SELECT predict(m, a, b, c) AS p FROM f WHERE a > -1.0"
    with Engine(progress_bar=False, threads=2, batch_rows=4_096) as engine:
        engine.execute("CREATE MODEL m FROM $m", params={"m": estimator})
        optimized = engine.execute(sql, frames={"f": frame})[0]
        naive = engine.execute(sql, frames={"f": frame}, optimize=False)[0]
        again = engine.execute(sql, frames={"f": frame})[0]
        other = engine.execute(sql.replace("-1.0", "-1.5"), frames={"f": frame})[0]
    rows = int((frame.a > -1.0).sum())
    assert rows > 8 * 4_096
    # one probe of the first rows, none per slice; the same query run again remembers the
    # answer, another query (another relation) is probed for itself
    assert probes == [512, 512]
    np.testing.assert_array_equal(again.df.p.to_numpy(), optimized.df.p.to_numpy())
    assert len(other.df) == int((frame.a > -1.5).sum())
    assert "decision regions" not in (optimized.explain or "")
    np.testing.assert_array_equal(optimized.df.p.to_numpy(), naive.df.p.to_numpy())


def _finely_cut() -> GradientBoostingRegressor:
    """Deep trees on continuous values: nearly every distinct row is a region of its own."""
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(3_000, 3)).astype(np.float32), columns=list(FEATURES))
    return GradientBoostingRegressor(n_estimators=30, max_depth=8, random_state=0).fit(X, X.a + X.b * X.c)


def test_a_udf_whose_first_rows_share_no_regions_stops_grouping(monkeypatch):
    """predict() scored through the UDF (LIMIT refuses batching): the first vector of rows
    tells that grouping would not pay, and no later vector computes region keys."""
    rng = np.random.default_rng(6)
    estimator = _finely_cut()
    frame = pd.DataFrame(rng.normal(size=(50_000, 3)), columns=list(FEATURES))
    keyed: list[int] = []
    key = Regions.key

    def counted(self: Regions, matrix: np.ndarray) -> np.ndarray:
        keyed.append(len(matrix))
        return key(self, matrix)

    monkeypatch.setattr(Regions, "key", counted)
    sql = "SELECT predict(m, a, b, c) AS p FROM f LIMIT 40000"
    with Engine(progress_bar=False) as engine:
        engine.execute("CREATE MODEL m FROM $m", params={"m": estimator})
        optimized = engine.execute(sql, frames={"f": frame})[0]
        naive = engine.execute(sql, frames={"f": frame}, optimize=False)[0]
    assert "scoring through an Arrow UDF" in (optimized.explain or "")
    assert len(keyed) == 1  # the first vector's probe, then no region keys at all
    np.testing.assert_array_equal(optimized.df.p.to_numpy(), naive.df.p.to_numpy())
