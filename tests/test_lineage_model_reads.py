"""A fitted library model that a cell only predicts with is hashed once, not twice.

``pred = model.predict(X_test)`` reads the model: its fingerprint is taken before the
cell, as for any input. scikit-learn's and LightGBM's read-only methods
(``predict``, ``predict_proba``, ``transform``, ``score``, ...) leave a fitted model as
it was, so the recorder does not hash it again after the cell when nothing else the
cell does could change it: every object the model holds is library data or code, every
other value the cell uses is too, none shares an object with the model, and no
notebook code runs. Every other way a cell can change a model must still be a write;
most tests here are about those. A LightGBM or scikit-learn model hashed after an earlier
cell is not hashed before either, while its version probe is unchanged (``model_probe``,
``sklearn_probe``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nbgov.lineage.analysis import analyze
from nbgov.lineage.fingerprint import Fingerprinter, static
from tests.fixtures.lineage import RecordingShell, writes
from tests.test_lineage_fingerprint_hostile import CALLS, Tripwire

FIT = """
import numpy as np, pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
rng = np.random.default_rng(0)
X = rng.random((2000, 8))
y = (X[:, 0] + rng.random(2000) > 1).astype(int)
X_test, y_test = X[:300].copy(), y[:300].copy()
model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
"""


def _hashed(recording: RecordingShell, code: str) -> int:
    """Bytes the recorder hashed for one cell (which must succeed)."""
    before = recording.rec.fingerprinter.hashed_bytes
    recording.run(code).raise_error()
    return recording.rec.fingerprinter.hashed_bytes - before


def _model_bytes(recording: RecordingShell, name: str = "model") -> int:
    fper = Fingerprinter()
    fper.measure(recording.ns()[name])
    return fper.hashed_bytes


def _read(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r["fingerprint"] for r in body["reads"] if r["name"] == name)


def _written(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(w["fingerprint"] for w in body["writes"] if w["name"] == name)


@pytest.mark.parametrize(
    "cell",
    [
        "pred = model.predict(X_test)",
        "proba = model.predict_proba(X_test)[:, 1]",
        "acc = accuracy_score(y_test, model.predict(X_test))",
        "acc = model.score(X_test, y_test)",
        "pred = np.round(model.predict_proba(X=X_test), 2)",
    ],
)
def test_predicting_does_not_hash_the_model_and_records_it_as_read(recording: RecordingShell, cell: str) -> None:
    """Neither after the cell (a read-only method) nor before it (its probe is unchanged since
    the cell that fitted it hashed it): only the data is hashed."""
    recording.run(FIT).raise_error()
    fitted = _written(recording.body(), "model")
    model_bytes = _model_bytes(recording)
    spent = _hashed(recording, cell)
    body = recording.body()
    assert _read(body, "model") == fitted and "model" not in writes(body)
    assert spent < 0.1 * model_bytes  # (hashed before and after the cell until the two changes)


TRAIN = ("import lightgbm as lgb\n"
         "bst = lgb.train({'objective': 'binary', 'verbose': -1, 'num_threads': 1},\n"
         "                lgb.Dataset(X, label=y), num_boost_round=50, keep_training_booster=True)")
ESTIMATOR = "import lightgbm as lgb\nbst = lgb.LGBMRegressor(n_estimators=50, verbose=-1).fit(X, y)"


@pytest.mark.parametrize("train", [TRAIN, ESTIMATOR])
def test_a_lightgbm_model_predicting_is_not_hashed_again(recording: RecordingShell, train: str) -> None:
    """LightGBM's quick start: ``bst = lgb.train(...)`` (or its scikit-learn estimator), then
    ``bst.predict(X_test)``: the model hashed after training is read by its version probe,
    its text not written again."""
    recording.run(FIT + train).raise_error()
    trained = _written(recording.body(), "bst")
    bst_bytes = _model_bytes(recording, "bst")
    for _ in range(2):
        spent = _hashed(recording, "scores = bst.predict(X_test)")
        body = recording.body()
        assert set(writes(body)) == {"scores"} and _read(body, "bst") == trained
        data = 2 * recording.ns()["X_test"].nbytes + recording.ns()["scores"].nbytes  # (an argument: before and after)
        assert spent - data < 0.05 * bst_bytes  # the model's Python state only (before this change: all of it)


@pytest.mark.parametrize(
    "train, between",
    [
        (TRAIN, "bst.update()"),  # trained further, as by a thread: another iteration
        (TRAIN, "bst.set_leaf_output(0, 0, 7.5)"),  # a leaf of a sampled tree
        (TRAIN, "bst.params['learning_rate'] = 0.5"),  # its Python state
        (ESTIMATOR, "bst.booster_.set_leaf_output(49, 0, 7.5)"),  # the estimator's Booster (its last tree)
        (ESTIMATOR, "bst.set_params(learning_rate=0.5)"),  # the estimator's own state
    ],
)
def test_a_lightgbm_model_changed_between_cells_is_hashed_anew(
        recording: RecordingShell, train: str, between: str) -> None:
    """What no cell did (a thread, a callback): the probe differs, the model is hashed, and
    the read is the model as it is now."""
    recording.run(FIT + train).raise_error()
    trained = _written(recording.body(), "bst")
    exec(between, {"bst": recording.ns()["bst"]})  # outside any cell
    spent = _hashed(recording, "scores = bst.predict(X_test)")
    read = _read(recording.body(), "bst")
    assert read["hash"] != trained["hash"] and read["hash"] == Fingerprinter().fingerprint(recording.ns()["bst"]).hash
    assert spent >= _model_bytes(recording, "bst")


def test_a_cell_that_changes_a_booster_writes_it_and_the_next_reads_that(recording: RecordingShell) -> None:
    recording.run(FIT + TRAIN).raise_error()
    recording.run("bst.set_leaf_output(5, 0, 2.0)").raise_error()  # tree 5 is not sampled: the cell's own write
    changed = _written(recording.body(), "bst")
    spent = _hashed(recording, "scores = bst.predict(X_test)")
    data = 2 * recording.ns()["X_test"].nbytes + recording.ns()["scores"].nbytes
    assert _read(recording.body(), "bst") == changed and spent - data < 0.05 * _model_bytes(recording, "bst")


@pytest.mark.parametrize(
    "setup, change",
    [
        ("def tweak():\n    bst.set_leaf_output(5, 0, 3.0)", "tweak()"),  # through a notebook function
        ("holder = [bst]", "holder[0].set_leaf_output(5, 0, 3.0)"),  # through another name
    ],
)
def test_a_booster_changed_by_a_cell_that_does_not_name_it_is_read_as_it_is(
        recording: RecordingShell, setup: str, change: str) -> None:
    """A leaf no probe samples (tree 5), changed by a cell through a function or another
    name: that cell writes ``bst`` (the cell's analysis), so the next read is exact."""
    recording.run(FIT + TRAIN).raise_error()
    recording.run(setup).raise_error()
    recording.run(change).raise_error()
    assert "bst" in writes(recording.body())
    recording.run("scores = bst.predict(X_test)").raise_error()
    assert _read(recording.body(), "bst")["hash"] == Fingerprinter().fingerprint(recording.ns()["bst"]).hash


def test_only_lightgbm_s_own_fitted_models_have_a_probe(recording: RecordingShell) -> None:
    import lightgbm as lgb

    recording.run(FIT + TRAIN).raise_error()
    bst = recording.ns()["bst"]
    fper = Fingerprinter()
    assert fper.probe(bst) is not None and fper.probe(bst) == fper.probe(bst)

    class Notebooks(lgb.Booster):  # a notebook's class: its code could change the model any time
        pass

    class NotebooksEstimator(lgb.LGBMClassifier):
        pass

    own = Notebooks(model_str=bst.model_to_string())
    empty = lgb.Booster.__new__(lgb.Booster)  # no native model
    assert fper.probe(own) is None and fper.probe(empty) is None
    assert fper.probe(lgb.LGBMClassifier()) is None  # not fitted
    ns = recording.ns()
    assert fper.probe(NotebooksEstimator(n_estimators=5, verbose=-1).fit(ns["X"], ns["y"])) is None
    assert fper.probe(lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(ns["X"], ns["y"])) is not None


@pytest.mark.parametrize(
    "between",
    [
        "model.set_params(n_estimators=7)",  # its parameters
        "model.estimators_[2].max_depth = 3",  # one tree's own parameter
        "model.estimators_[3].tree_.value[0, 0, 0] = 0.25",  # a sampled byte of a tree's values
        "model.estimators_[4].tree_.threshold[0] = 0.5",  # a sampled byte of a tree's nodes
        "model.estimators_.pop()",  # a tree fewer
        "model.fit(X[:500], y[:500])",  # fitted again: other trees
        "model.classes_[0] = 7",  # a small array, read whole
    ],
)
def test_a_scikit_learn_model_changed_between_cells_is_hashed_anew(recording: RecordingShell, between: str) -> None:
    """What no cell did (a thread, a callback): the probe differs, the model is hashed, and
    the read is the model as it is now."""
    recording.run(FIT).raise_error()
    fitted = _written(recording.body(), "model")
    exec(between, {"model": recording.ns()["model"], "X": recording.ns()["X"], "y": recording.ns()["y"]})
    spent = _hashed(recording, "acc = model.score(X_test, y_test)")
    read = _read(recording.body(), "model")
    assert read["hash"] != fitted["hash"] and read["hash"] == Fingerprinter().fingerprint(recording.ns()["model"]).hash
    assert spent >= _model_bytes(recording)


@pytest.mark.parametrize(
    "make, between",
    [
        # trees in an object array (n_estimators x classes)
        ("GradientBoostingClassifier(n_estimators=20, random_state=0)",
         "model.estimators_[5, 0].tree_.value[0, 0, 0] = 9"),
        # trees as node arrays of its own predictor class
        ("HistGradientBoostingClassifier(max_iter=20, random_state=0)",
         "model._predictors[3][0].nodes['value'][0] = 9"),
        ("IsolationForest(n_estimators=20, random_state=0)", "model.estimators_[2].tree_.threshold[0] = 0.5"),
        ("make_pipeline(StandardScaler(), ExtraTreesClassifier(n_estimators=10, random_state=0))",
         "model.steps[0][1].mean_[0] = 9"),
    ],
)
def test_other_ensembles_are_not_hashed_to_score_and_a_change_between_cells_is_seen(
        recording: RecordingShell, make: str, between: str) -> None:
    recording.run(FIT + "from sklearn.ensemble import (ExtraTreesClassifier, GradientBoostingClassifier,\n"
                  "    HistGradientBoostingClassifier, IsolationForest)\n"
                  f"model = {make}.fit(X, y)").raise_error()
    fitted = _written(recording.body(), "model")
    spent = _hashed(recording, "pred = model.predict(X_test)")
    data = 2 * recording.ns()["X_test"].nbytes + recording.ns()["pred"].nbytes  # (an argument: before and after)
    # (what the probe reads whole, a generator's state, is hashed: well under the model)
    assert _read(recording.body(), "model") == fitted and spent - data < 0.5 * _model_bytes(recording)
    exec(between, {"model": recording.ns()["model"]})  # outside any cell
    recording.run("pred = model.predict(X_test)").raise_error()
    read = _read(recording.body(), "model")
    assert read["hash"] != fitted["hash"] and read["hash"] == Fingerprinter().fingerprint(recording.ns()["model"]).hash


def test_a_text_pipeline_is_not_hashed_to_score_and_a_change_to_its_vocabulary_is_seen(
        recording: RecordingShell) -> None:
    """scikit-learn's text classification example: the vectorizer's vocabulary (a dict of
    hundreds of words, read by the probe in a few passes) and the classifier."""
    recording.run("""
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
rng = np.random.default_rng(0)
words = [f"w{i}" for i in range(600)]
docs = [" ".join(rng.choice(words, 20)) for _ in range(300)]
labels = rng.integers(0, 2, 300)
model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(docs, labels)
""").raise_error()
    fitted = _written(recording.body(), "model")
    spent = _hashed(recording, "pred = model.predict(docs[:50])")
    assert _read(recording.body(), "model") == fitted and spent < 0.5 * _model_bytes(recording)
    vocabulary = recording.ns()["model"].steps[0][1].vocabulary_
    vocabulary["w1x"] = vocabulary.pop("w1")  # outside any cell: a word renamed
    recording.run("pred = model.predict(docs[:50])").raise_error()
    read = _read(recording.body(), "model")
    assert read["hash"] != fitted["hash"] and read["hash"] == Fingerprinter().fingerprint(recording.ns()["model"]).hash


def test_every_estimator_of_scikit_learns_has_a_probe_that_sees_a_change_and_costs_less_than_hashing() -> None:
    """The probe checked against scikit-learn itself: each estimator it lists, fitted with its
    default parameters, has a probe, the same when read twice, not dearer to take than the
    fingerprint, and another one after its first fitted array's first item, or its state,
    changed."""
    import warnings

    from sklearn.utils import all_estimators

    rng = np.random.default_rng(0)
    X = rng.random((400, 6))
    labels, amounts = (X[:, 0] > 0.5).astype(int), X[:, 1]
    fper, probed, arrays, slower = Fingerprinter(), 0, 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in all_estimators():
            try:
                est = cls()
                est.fit(X, amounts if "Regress" in name else labels)
            except Exception:  # noqa: BLE001 - one needing arguments or other data
                continue
            # (fresh fingerprinters: one keeps what it hashed of immutable parts; a neighbours
            # model's tree, which its reads change, is hashed whole by the probe too)
            if _fastest(lambda: Fingerprinter().probe(est)) > 1.5 * _fastest(lambda: Fingerprinter().measure(est)):
                slower.append(name)
            first = fper.probe(est)
            assert first is not None and fper.probe(est) == first, name
            probed += 1
            fitted = next((v for k, v in vars(est).items() if k.endswith("_") and type(v) is np.ndarray
                           and v.dtype.kind == "f" and v.size and v.flags.writeable), None)
            if fitted is not None:
                fitted.flat[0] += 1.0
                assert fper.probe(est) != first, name
                arrays += 1
            vars(est)["checked_"] = True
            assert fper.probe(est) not in (first, None), name
    assert probed > 150 and arrays > 60 and len(slower) <= 3, slower  # (a timing: a few may be noise)


def _fastest(call: Any, times: int = 3) -> float:
    """The shortest of a few runs of ``call`` (seconds): a pause of the machine's is not its."""
    import time

    spans = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        spans.append(time.perf_counter() - start)
    return min(spans)


def _unsampled_node(tree: Any) -> int:
    """A node whose threshold lies between two of the windows the probe samples of the tree's
    node buffer (``columnar.sample_regions``)."""
    from nbgov.lineage.fingerprint import columnar, sklearn_probe

    nodes = tree.children_left.base
    size, offset = tree.node_count * nodes.dtype.itemsize, nodes.dtype.fields["threshold"][1]
    windows, width = sklearn_probe.TREE_WINDOWS, columnar.PROBE_WINDOW_BYTES
    assert size > windows * width  # else all of it is read
    step = (size - width) // (windows - 1)
    starts = [k * step for k in range(windows)]
    return next(node for node in range(tree.node_count)
                if not any(s - 8 < node * nodes.dtype.itemsize + offset < s + width for s in starts))


@pytest.mark.parametrize(
    "setup, change",
    [
        ("", "model.estimators_[3].tree_.threshold[node] = 0.5"),  # directly
        ("def tweak():\n    model.estimators_[3].tree_.threshold[node] = 0.5", "tweak()"),  # through a function
        ("trees = model.estimators_", "trees[3].tree_.threshold[node] = 0.5"),  # through another name
    ],
)
def test_a_forest_changed_by_a_cell_where_no_probe_samples_is_read_as_it_is(
        recording: RecordingShell, setup: str, change: str) -> None:
    """A node the probe does not sample, changed by a cell: that cell writes ``model`` (the
    cell's analysis), so the next read is exact."""
    recording.run(FIT + setup).raise_error()
    recording.ns()["node"] = _unsampled_node(recording.ns()["model"].estimators_[3].tree_)
    probe = Fingerprinter().probe(recording.ns()["model"])
    recording.run(change).raise_error()
    assert Fingerprinter().probe(recording.ns()["model"]) == probe  # unseen by the probe: the analysis tells
    assert "model" in writes(recording.body())
    recording.run("pred = model.predict(X_test)").raise_error()
    assert _read(recording.body(), "model")["hash"] == Fingerprinter().fingerprint(recording.ns()["model"]).hash


def test_only_scikit_learns_own_classes_have_a_probe_and_it_runs_no_notebook_code(recording: RecordingShell) -> None:
    """A notebook's subclass has none (its code could change the model any time); what a model
    holds of the notebook's is hashed whole by the probe, never called; a cycle and a deep
    nest end it without error."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import FunctionTransformer

    recording.run(FIT).raise_error()
    ns = recording.ns()
    fper = Fingerprinter()
    assert fper.probe(ns["model"]) is not None and fper.probe(ns["model"]) == fper.probe(ns["model"])

    class Notebooks(RandomForestClassifier):
        pass

    assert fper.probe(Notebooks(n_estimators=3).fit(ns["X"], ns["y"])) is None
    CALLS.clear()
    holding = FunctionTransformer(kw_args={"odd": Tripwire(1)})
    first = fper.probe(holding)
    holding.kw_args["odd"].payload = 2  # its state: the probe reads it whole
    assert first is not None and fper.probe(holding) != first and CALLS == []
    weighted = LogisticRegression(class_weight={0: 1.0, 1: 5.0})  # a dict keyed by ints
    first = fper.probe(weighted)
    weighted.class_weight[1] = 4.0
    assert first is not None and fper.probe(weighted) != first
    cyclic = FunctionTransformer()
    cyclic.kw_args = {"self": cyclic}
    assert fper.probe(cyclic) == fper.probe(cyclic) is not None
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert fper.probe(FunctionTransformer(kw_args={"deep": deep})) is None  # hashed instead


def test_a_pipeline_of_library_steps_on_a_frame_is_not_hashed_to_score(recording: RecordingShell) -> None:
    recording.run(FIT + "frame = pd.DataFrame(X, columns=list('abcdefgh'))\n"
                  "pipe = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=20, random_state=0))"
                  ".fit(frame, y)").raise_error()
    fitted = _written(recording.body(), "pipe")
    pipe_bytes, frame_bytes = _model_bytes(recording, "pipe"), _model_bytes(recording, "frame")
    spent = _hashed(recording, "scores = pipe.predict_proba(frame.head(100))")
    body = recording.body()
    assert _read(body, "pipe") == fitted and set(writes(body)) == {"scores"}
    assert spent - 2 * frame_bytes < 0.1 * pipe_bytes  # (frame.head is a call: frame is hashed after too)


@pytest.mark.parametrize(
    "setup, cell",
    [
        # a method that changes the model
        ("", "model.fit(X[:500], y[:500])"),
        ("", "pred = model.predict(X_test)\nmodel.set_params(n_estimators=5)"),
        ("", "pred = model.predict(X_test)\nmodel.n_jobs = 2"),
        # another name for the same model
        ("same = model", "same.fit(X[:500], y[:500])\npred = model.predict(X_test)"),
        ("held = {'m': model}", "held['m'].fit(X[:500], y[:500])\npred = model.predict(X_test)"),
        # notebook code that reaches it
        ("def retrain():\n    model.fit(X[:500], y[:500])", "retrain()\npred = model.predict(X_test)"),
        ("", "exec('model.fit(X[:500], y[:500])')\npred = model.predict(X_test)"),
        # an argument whose conversion runs notebook code
        ("class Rows:\n    def __array__(self, dtype=None, copy=None):\n"
         "        model.fit(X[:500], y[:500])\n        return X_test\nrows = Rows()",
         "pred = model.predict(rows)"),
    ],
)
def test_every_other_way_a_cell_changes_the_model_is_a_write(recording: RecordingShell, setup: str, cell: str) -> None:
    recording.run(FIT + setup).raise_error()
    fitted = recording.ns()["model"]
    recording.run(cell).raise_error()
    body = recording.body()
    assert writes(body).get("model") is True, body["writes"]
    assert body["writes"][[w["name"] for w in body["writes"]].index("model")]["fingerprint"]["hash"] == \
        Fingerprinter().fingerprint(fitted).hash


def test_a_model_of_the_notebook_or_holding_its_code_is_hashed_after_the_cell(recording: RecordingShell) -> None:
    recording.run(FIT + """
class Counting(RandomForestClassifier):
    def predict(self, X):
        self.calls_ = getattr(self, 'calls_', 0) + 1
        return super().predict(X)
counting = Counting(n_estimators=5, random_state=0).fit(X, y)
shrinking = []
def shrink(rows):
    for pipe in shrinking:  # the pipeline's own transform changes its classifier
        pipe.steps[-1][1].C /= 2
    return rows
piped = make_pipeline(FunctionTransformer(shrink), LogisticRegression()).fit(X, y)
shrinking.append(piped)
""").raise_error()
    recording.run("pred = counting.predict(X_test)").raise_error()
    assert writes(recording.body()) == {"pred": False, "counting": True}
    recording.run("pred = piped.predict(X_test)").raise_error()
    assert writes(recording.body()) == {"pred": False, "piped": True, "shrinking": True}  # (the list holds it)


def test_deciding_runs_no_code_of_the_notebooks(recording: RecordingShell) -> None:
    """The classes and values a predicting cell names are judged by reading them: a metaclass's
    ``__eq__``, ``__hash__`` or ``__getattribute__``, or a value's ``__getattr__``, never runs."""
    recording.run(FIT + """
ran = []
class Loud(type):
    def __eq__(cls, other):
        ran.append('eq'); return False
    def __hash__(cls):
        ran.append('hash'); return 1
    def __getattribute__(cls, name):
        ran.append(name); return type.__getattribute__(cls, name)
class Odd(metaclass=Loud):
    def __getattr__(self, name):
        ran.append(name); raise AttributeError(name)
odd = Odd()
""").raise_error()
    recording.ns()["ran"].clear()
    recording.run("pred = model.predict(X_test)\nkinds = (Odd, odd)").raise_error()
    assert recording.ns()["ran"] == [] and "model" not in writes(recording.body())


def test_an_unfitted_model_that_a_read_only_method_fits_is_a_write(recording: RecordingShell) -> None:
    """scikit-learn's read-only methods leave a *fitted* model as it was: a vectorizer given its
    vocabulary is fitted by its first transform."""
    recording.run("from sklearn.feature_extraction.text import CountVectorizer\n"
                  "vec = CountVectorizer(vocabulary=['red', 'blue'])").raise_error()
    recording.run("counts = vec.transform(['red blue', 'blue'])").raise_error()
    assert writes(recording.body()) == {"counts": False, "vec": True}
    recording.run("counts = vec.transform(['red'])").raise_error()
    assert writes(recording.body()) == {"counts": False}


def test_no_estimator_of_scikit_learns_that_its_read_only_methods_change_is_left_unhashed() -> None:
    """The rule checked against scikit-learn itself: each estimator it lists (and LightGBM's),
    fitted with its default parameters, then each read-only method it has called; where that
    changed the model (a neighbours model's tree counts its queries), the recorder must hash
    it again."""
    import functools
    import warnings

    import lightgbm
    from sklearn.utils import all_estimators

    from nbgov.lineage.analysis import _READ_ONLY_METHODS
    from nbgov.lineage.values import _fitted

    rng = np.random.default_rng(0)
    X = rng.random((60, 4))
    labels, amounts = (X[:, 0] > 0.5).astype(int), X[:, 1]
    called, changed = 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lightgbms = [(cls.__name__, functools.partial(cls, n_estimators=10, verbose=-1))
                     for cls in (lightgbm.LGBMClassifier, lightgbm.LGBMRegressor)]
        for name, make in [*all_estimators(), *lightgbms]:
            target = amounts if "Regress" in name else labels
            try:
                est = make()
                est.fit(X, target)
            except Exception:  # noqa: BLE001 - one needing arguments or other data: not ours to judge
                continue
            for method in sorted(_READ_ONLY_METHODS & set(dir(est))):
                before = Fingerprinter().measure(est)
                skipped = (before.library_only and before.complete and static.model_library_kind(type(est))
                           and _fitted(est))
                args = {"score": (X, target), "get_params": (), "get_feature_names_out": ()}.get(method, (X,))
                try:
                    getattr(est, method)(*args)
                except Exception:  # noqa: BLE001 - not applicable to this estimator
                    continue
                called += 1
                if Fingerprinter().fingerprint(est).hash != before.fingerprint.hash:
                    changed.append(name)
                    assert not skipped, (name, method)
    assert called > 300 and "KNeighborsClassifier" in changed and "LGBMClassifier" not in changed  # it checked
    booster = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(X, label=labels), 10)
    before = Fingerprinter().measure(booster)
    assert before.library_only and _fitted(booster) and static.model_library_kind(type(booster))
    booster.predict(X)
    assert Fingerprinter().fingerprint(booster).hash == before.fingerprint.hash  # a booster's one read-only method


def test_only_calls_of_read_only_methods_on_a_name_make_it_a_read_call() -> None:
    assert analyze("pred = model.predict(X)").read_calls == {"model"}
    assert analyze("a = accuracy_score(y, m.predict(X))\nb = m.score(X, y)").read_calls == {"m"}
    for code in ("model.fit(X, y)\np = model.predict(X)",  # changed
                 "p = model.predict(X)\nmodel.n_jobs = 2",  # changed
                 "p = model.predict(X)\nf(model)",  # handed on
                 "p = model.predict(X)\nmodel = None",  # rebound
                 "g = lambda: model.predict(X)",  # runs later, in notebook code
                 "p = [model.predict(x) for x in xs]",  # (not followed into comprehensions)
                 "p = model.predict_proba(X)\ndel model"):
        assert "model" not in analyze(code).read_calls, code
    names = analyze("pred = model.predict(X)")
    assert "model" in names.impure and not names.pure_only("model")  # a method call, for every other rule


def test_library_classes_are_told_from_the_notebooks_own() -> None:
    from sklearn.ensemble import RandomForestClassifier

    class Mine(RandomForestClassifier):
        pass

    assert static.library_kind(RandomForestClassifier) and static.model_library_kind(RandomForestClassifier)
    assert static.library_kind(dict) and not static.model_library_kind(dict)
    assert not static.library_kind(Mine) and not static.model_library_kind(Mine)


def test_a_lightgbm_models_text_read_in_one_native_call_is_lightgbms_own() -> None:
    """A big model's text is written once per read (LightGBM's own writes it twice past 1 MiB):
    the same text as ``model_to_string(num_iteration=-1)``, whether its size is known, grew in
    place since (``update`` trains the same native booster further), or has pandas categories."""
    import lightgbm as lgb
    import pandas as pd

    from nbgov.lineage.fingerprint import libraries

    rng = np.random.default_rng(0)
    X = rng.random((5000, 20))
    y = (X[:, 0] + rng.random(5000) > 1).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
    big = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=400)
    small = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=3, keep_training_booster=True)
    frame = pd.DataFrame({"a": X[:, 0], "kind": pd.Categorical(rng.choice(["u", "v", "w"], 5000))})
    categorical = lgb.train(params, lgb.Dataset(frame, label=y), num_boost_round=5)
    text = libraries._model_text(lgb.Booster.model_to_string)
    state = static.dict_reader(lgb.Booster)[0]

    def same(booster: Any) -> bool:
        return text(booster, state(booster)) == booster.model_to_string(num_iteration=-1)

    assert len(big.model_to_string()) > 1 << 20 and same(big) and same(big)  # its size unknown, then known
    assert same(small)
    before = len(small.model_to_string())
    for _ in range(60):
        small.update()
    assert len(small.model_to_string()) > 2 * before  # past the size kept for it, and its margin
    assert same(small) and same(categorical) and "pandas_categorical:[[" in text(categorical, state(categorical))
