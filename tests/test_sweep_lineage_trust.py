"""Trust sweep over documentation-shaped notebooks (scikit-learn with loky workers, RNGs,
logging, sqlite3, pandas I/O, hostile objects): each record says what the code did, or
says why it cannot."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import xxhash
from IPython.core.interactiveshell import InteractiveShell

from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.lineage import RecordingShell, run_recorded
from tests.fixtures.replay import invoke, record, sidecar_lines


def _files(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["path"], f["mode"]): f for f in body["files"]}


def test_a_sqlite_query_reads_the_database_it_does_not_write(shell: InteractiveShell, tmp_path: Path) -> None:
    # sqlite opens its file read-write: the close of a handle that wrote nothing is no write,
    # and the query read the file (it was recorded as a write of unchanged content, no read)
    made = run_recorded(shell, "import sqlite3\ncon = sqlite3.connect('data.db')\n"
                               "con.execute('create table t (a int)')\ncon.execute('insert into t values (1)')\n"
                               "con.commit()\ncon.close()")
    assert set(_files(made)) == {("data.db", "write")}
    time.sleep(0.05)  # older than the next cell by more than the file system's clock tick
    body = run_recorded(shell, "con = sqlite3.connect('data.db')\nn = con.execute('select count(*) from t')"
                               ".fetchone()[0]\ncon.close()")
    seen = _files(body)
    assert set(seen) == {("data.db", "read")}, seen
    assert seen[("data.db", "read")]["hash"] == xxhash.xxh3_128_hexdigest((tmp_path / "data.db").read_bytes())
    assert seen[("data.db", "read")]["source"] == made["id"]
    assert body["notes"] == []


@pytest.mark.kernel
def test_scikit_learn_with_loky_workers_is_recorded_exactly_and_reproduced(tmp_path: Path) -> None:
    # GridSearchCV keeps the wall-clock fit and score times it measured (cv_results_'s
    # mean_fit_time..., refit_time_): replay called the unchanged notebook nondeterministic
    path = record(
        tmp_path / "sklearn.ipynb",
        "from sklearn.datasets import make_classification\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.model_selection import GridSearchCV, cross_val_score\n"
        "X, y = make_classification(n_samples=200, n_features=6, random_state=0)",
        "rf = RandomForestClassifier(n_estimators=10, n_jobs=2, random_state=0).fit(X, y)",
        "scores = cross_val_score(RandomForestClassifier(n_estimators=5, random_state=0), X, y, cv=3, n_jobs=2)",
        "gs = GridSearchCV(RandomForestClassifier(random_state=0), {'n_estimators': [3, 6]}, cv=3, n_jobs=2)"
        ".fit(X, y)",
        "best = gs.best_params_\npred = gs.predict(X)",
    )
    bodies = [e["body"] for e in sidecar_lines(path) if "code" in e.get("body", {})]
    assert [b["files"] for b in bodies] == [[]] * 5  # nothing from loky's temporary folders
    assert [sorted(w["name"] for w in b["writes"]) for b in bodies] == [
        ["X", "y"], ["rf"], ["scores"], ["gs"], ["best", "pred"]]
    assert [sorted(r["name"] for r in b["reads"]) for b in bodies] == [
        [], ["X", "y"], ["X", "y"], ["X", "y"], ["X", "gs"]]
    gs = next(w["fingerprint"] for w in bodies[3]["writes"])
    assert gs["hash"] and not gs["weak"]
    result = replay(load_log(path))
    assert [s.status for s in result.steps] == ["reproduced"] * 5, [
        c.detail for s in result.steps for c in s.causes]
    assert result.exit_code == 0
    notes = [n.text() for s in result.steps for n in s.verdict.notes]
    assert notes and all("timings" in n for n in notes), notes


def test_a_search_means_the_same_only_when_all_but_its_timings_are_the_same() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from nbgov.lineage.fingerprint import fingerprint

    X = [[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]]
    y = [0, 0, 0, 1, 1, 1]

    def fitted(labels: list[int]) -> Any:
        return GridSearchCV(LogisticRegression(), {"C": [0.5, 1.0]}, cv=2).fit(X, labels)

    assert fingerprint(GridSearchCV(LogisticRegression(), {"C": [1.0]})).semantic is None  # nothing measured
    a, b, other = fitted(y), fitted(y), fitted([0, 0, 1, 1, 1, 1])
    b.refit_time_ += 1.0
    b.cv_results_["mean_fit_time"] = b.cv_results_["mean_fit_time"] + 1.0
    fa, fb, fo = fingerprint(a), fingerprint(b), fingerprint(other)
    assert fa.hash != fb.hash and fa.semantic is not None and fa.semantic == fb.semantic  # the bytes stay exact
    assert fo.semantic != fa.semantic
    b.cv_results_["mean_test_score"] = b.cv_results_["mean_test_score"] + 1.0
    assert fingerprint(b).semantic != fa.semantic


@pytest.mark.kernel
def test_cross_validate_with_train_scores_replays_as_only_its_timings_differing(tmp_path: Path) -> None:
    # scikit-learn's cross_validate example: its dict holds fit_time and score_time, the
    # wall-clock seconds per fold, and replay called the unchanged notebook nondeterministic
    path = record(
        tmp_path / "cv.ipynb",
        "from sklearn import datasets, linear_model\n"
        "from sklearn.model_selection import cross_validate\n"
        "diabetes = datasets.load_diabetes()\nX = diabetes.data[:150]\ny = diabetes.target[:150]\n"
        "lasso = linear_model.Lasso(random_state=0)",  # Lasso() draws a seed from numpy's global state
        "cv_results = cross_validate(lasso, X, y, cv=3, return_train_score=True)",
        "keys = sorted(cv_results.keys())\ntest_score = cv_results['test_score']",
    )
    written = next(w["fingerprint"] for e in sidecar_lines(path) for w in e.get("body", {}).get("writes", [])
                   if w["name"] == "cv_results")
    assert written["kind"] == "dict" and written["hash"] and written["semantic"]  # the bytes stay exact
    result = invoke("replay", path)
    assert result.exit_code == 0, result.output
    assert "all 3 steps reproduced" in result.output, result.output
    assert "only the fit and score timings it measured differ: `cv_results`" in result.output, result.output
    assert "nondeterministic" not in result.output, result.output


def _cross_validated(scale: float = 1.0) -> dict[str, Any]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_validate

    X, y = load_iris(return_X_y=True)
    return dict(cross_validate(LogisticRegression(C=scale, max_iter=500), X, y, cv=3, return_train_score=True))


def test_cross_validate_differing_only_in_its_timings_is_a_note_and_a_score_still_diverges() -> None:
    from nbgov.lineage.fingerprint import fingerprint
    from nbgov.replay.compare import TIMINGS_ONLY, diff_values

    a, b = _cross_validated(), _cross_validated()
    b["fit_time"] = b["fit_time"] + 1.0
    diff = diff_values(fingerprint(a), fingerprint(b))
    assert not diff.same and diff.names_only and diff.note == TIMINGS_ONLY, diff  # the bytes stay exact
    b["test_score"] = b["test_score"] + 0.01
    changed = diff_values(fingerprint(a), fingerprint(b))
    assert not changed.same and not changed.names_only, changed
    assert not diff_values(fingerprint(a), fingerprint(_cross_validated(0.01))).names_only


def test_a_users_dict_with_a_fit_time_is_compared_in_full() -> None:
    from nbgov.lineage.fingerprint import fingerprint
    from nbgov.replay.compare import diff_values

    a = {**_cross_validated(), "model": "lasso"}  # one key cross_validate never makes
    b = {**a, "fit_time": a["fit_time"] + 1.0}
    assert fingerprint(a).semantic is None
    diff = diff_values(fingerprint(a), fingerprint(b))
    assert not diff.same and not diff.names_only, diff
    plain = {"fit_time": a["fit_time"], "score_time": a["score_time"]}  # no score: not cross_validate's
    assert not diff_values(fingerprint(plain), fingerprint({**plain, "fit_time": a["fit_time"] * 2})).names_only


def test_a_namedtuple_class_is_read_exactly() -> None:
    # its field accessors are CPython's _collections._tuplegetter: the class was weak
    # ("state held natively"), so every cell defining one replayed as unverifiable
    import collections
    import typing

    from nbgov.lineage.fingerprint import fingerprint

    def made(fields: str) -> Any:
        return collections.namedtuple("Pair", fields, module="__main__")  # as in a notebook

    pair = fingerprint(made("left right"))
    assert not pair.weak and pair.hash, pair.reason
    assert fingerprint(made("left right")).hash == pair.hash
    assert fingerprint(made("right left")).hash != pair.hash
    typed = typing.NamedTuple("Typed", [("a", int), ("b", str)])
    typed.__module__ = "__main__"
    assert not fingerprint(typed).weak
    assert fingerprint(typed(1, "x")).hash != fingerprint(typed(2, "x")).hash


def test_an_attribute_name_in_notebook_code_is_not_a_global_read(recording: RecordingShell) -> None:
    # the code a cell may run was followed to every name in co_names, attribute names too:
    # `p.x = 10` on a dataclass (whose generated __eq__ reads `self.x`) read the global `x`
    recording.run("x = 1\ntotal = 5\nscale = 2")
    recording.run("import dataclasses\n@dataclasses.dataclass\nclass Point:\n    x: int\n    y: int\n"
                  "p = Point(1, 2)")
    recording.run("p.x = 10")
    assert [r["name"] for r in recording.body()["reads"]] == ["p"]
    recording.run("def total_of(d):\n    return d.total * scale\n"
                  "class Box:\n    def __init__(self):\n        self.total = 3\nbox = Box()")
    recording.run("t = total_of(box)")
    assert sorted(r["name"] for r in recording.body()["reads"]) == ["box", "scale", "total_of"]


def test_drawing_from_a_global_random_state_is_said(recording: RecordingShell) -> None:
    # np.random.seed / np.random.rand and random.seed / random.random use state no variable
    # holds: the record of `c = np.random.rand(3)` named no input and no note, as if complete
    recording.run("import random\nimport numpy as np")
    assert recording.body()["notes"] == []
    recording.run("np.random.seed(0)\nrandom.seed(1)")
    notes = recording.body()["notes"]
    assert len(notes) == 2 and "numpy's global random state" in notes[1] and "random module" in notes[0], notes
    recording.run("c = np.random.rand(3)")
    notes = recording.body()["notes"]
    assert len(notes) == 1 and "numpy's global random state" in notes[0], notes
    recording.run("d = random.random()")
    assert len(recording.body()["notes"]) == 1 and "random module" in recording.body()["notes"][0]
    # generators held by variables are recorded as variables: nothing to say
    recording.run("rng = np.random.default_rng(42)\na = rng.normal(size=3)\nmine = random.Random(5)\n"
                  "e = mine.random()")
    assert recording.body()["notes"] == []
    recording.run("b = rng.integers(0, 10)")
    body = recording.body()
    assert body["notes"] == [] and [r["name"] for r in body["reads"]] == ["rng"]
    assert sorted(w["name"] for w in body["writes"]) == ["b", "rng"]


def test_a_global_random_state_drawn_by_an_import_says_so(recording: RecordingShell) -> None:
    import sys

    sys.modules.pop("nbgov_test_draws", None)
    (Path.cwd() / "nbgov_test_draws.py").write_text("import random\nTOKEN = random.getrandbits(24)\n")
    recording.run("import random")
    path = list(sys.path)
    try:
        recording.run("import sys\nsys.path.insert(0, '.')\nimport nbgov_test_draws")
    finally:
        sys.path[:] = path
        sys.modules.pop("nbgov_test_draws", None)
    # the import drew, the cell's own code did not: said as such (it was "the cell (or a module
    # it imported) drew from or seeded ...", read as a warning about the cell)
    notes = recording.body()["notes"]
    assert notes == ["importing nbgov_test_draws drew from or seeded the random module's global state at "
                     "import; the cell's own code did not draw from it or seed it"], notes


def test_writing_into_an_existing_sqlite_database_reads_what_was_there(shell: InteractiveShell, tmp_path: Path) -> None:
    # `df.to_sql(..., if_exists='replace')` on a database an earlier cell made: sqlite reads
    # the file it changes (its schema, free pages), as an r+ open does; only the write was recorded
    made = run_recorded(shell, "import sqlite3\nimport pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})\n"
                               "con = sqlite3.connect('pd.db')\ndf.to_sql('t', con, index=False)\ncon.close()")
    before = xxhash.xxh3_128_hexdigest((tmp_path / "pd.db").read_bytes())
    time.sleep(0.05)
    body = run_recorded(shell, "from pathlib import Path\ncon = sqlite3.connect(Path('pd.db'))\n"
                               "df.to_sql('t', con, index=False, if_exists='replace')\ncon.close()")
    after = xxhash.xxh3_128_hexdigest((tmp_path / "pd.db").read_bytes())
    assert after != before
    seen = _files(body)
    assert set(seen) == {("pd.db", "read"), ("pd.db", "write")}, seen
    assert seen[("pd.db", "read")]["hash"] == before and seen[("pd.db", "read")]["source"] == made["id"]
    assert seen[("pd.db", "write")]["hash"] == after
    assert body["notes"] == []
    # a new database is made, not read; an in-memory one is no file
    body = run_recorded(shell, "fresh = sqlite3.connect('new.db')\nfresh.execute('create table u (b int)')\n"
                               "fresh.commit()\nfresh.close()\nmem = sqlite3.connect(':memory:')")
    assert set(_files(body)) == {("new.db", "write")}
    # a database nbgov never hashed (made outside the notebook): read, its content not known, said so
    outside = sqlite3.connect(tmp_path / "outside.db")
    outside.execute("create table t (a int)")
    outside.commit()
    outside.close()
    time.sleep(0.05)
    body = run_recorded(shell, "con = sqlite3.connect('outside.db')\n"
                               "df.to_sql('t', con, index=False, if_exists='replace')\ncon.close()")
    seen = _files(body)
    assert set(seen) == {("outside.db", "read"), ("outside.db", "write")}, seen
    assert seen[("outside.db", "read")]["hash"] is None
    assert [n for n in body["notes"] if "outside.db" in n], body["notes"]


def test_code_a_cell_defines_and_runs_reads_the_globals_it_names(recording: RecordingShell) -> None:
    # a function body's globals were read only for functions from earlier cells: a helper
    # defined and called in one cell, a class made and used there, and the lambda handed to
    # pandas' apply or sorted's key read nothing, so changing `k` never made them stale
    recording.run("import pandas as pd\nk = 3\na = 1\nw = {1: 2, 2: 1}\ndf = pd.DataFrame({'x': [1, 2]})")
    recording.run("def g():\n    return a + 1\nq = g()")
    assert [r["name"] for r in recording.body()["reads"]] == ["a"]
    recording.run("class K:\n    def m(self):\n        return a * k\nm = K().m()")
    assert [r["name"] for r in recording.body()["reads"]] == ["a", "k"]
    recording.run("y = df.x.apply(lambda v: v * k)\ns = sorted([1, 2], key=lambda v: w[v])")
    assert [r["name"] for r in recording.body()["reads"]] == ["df", "k", "w"]
    recording.run("def h():\n    return helper() + a\ndef helper():\n    return k\nt = h()")
    assert [r["name"] for r in recording.body()["reads"]] == ["a", "k"]
    # defined, not run; stored before it runs; a named lambda is a definition
    recording.run("def later():\n    return k\nf = lambda: a")
    assert recording.body()["reads"] == []
    recording.run("k = 4\ndef g2():\n    return k\nq2 = g2()")
    assert recording.body()["reads"] == []
    recording.run("f2 = lambda: w\nu = f2()")
    assert [r["name"] for r in recording.body()["reads"]] == ["w"]


def test_a_value_nbgov_cannot_read_used_by_a_cell_is_noted(recording: RecordingShell) -> None:
    # a weak value is the same "weak" before and after: `items.append(2)` on a list holding an
    # object that hides its __dict__, or `next(gen)`, left a record with no write and no note,
    # as if the cell had certainly not changed it; nothing of the user's class may run
    recording.run("hits = []\nclass Hidden:\n    @property\n    def __dict__(self):\n"
                  "        hits.append('__dict__')\n        return {}\n"
                  "items = [Hidden()]\ngen = (i for i in range(3))")
    recording.run("items.append(2)")
    body = recording.body()
    assert [r["name"] for r in body["reads"]] == ["items"] and body["writes"] == []
    assert len(body["notes"]) == 1 and body["notes"][0].startswith("`items` cannot be read by nbgov ("), body["notes"]
    recording.run("first = next(gen)")
    notes = recording.body()["notes"]
    assert len(notes) == 1 and notes[0].startswith("`gen` cannot be read by nbgov (a generator"), notes
    recording.run("n = len(items) + 1")  # a pure use runs nothing that could change it
    assert recording.body()["notes"] == []
    assert recording.ns()["hits"] == []


_HOSTILE = '''
hits = []
class Meta(type):
    def __getattr__(cls, name):
        hits.append(('meta getattr', name)); raise AttributeError(name)
    def __instancecheck__(cls, obj):
        hits.append('instancecheck'); return True
    def __eq__(cls, other):
        hits.append('meta eq'); return False
    def __hash__(cls):
        hits.append('meta hash'); return 1
class Hostile(metaclass=Meta):
    def __init__(self):
        object.__setattr__(self, 'v', 1)
    def __getattr__(self, name):
        hits.append(('getattr', name)); raise RuntimeError(name)
    def __getattribute__(self, name):
        hits.append(('getattribute', name)); return object.__getattribute__(self, name)
    def __setattr__(self, name, value):
        hits.append('setattr'); object.__setattr__(self, name, value)
    def __eq__(self, other):
        hits.append('eq'); raise RuntimeError('eq')
    def __hash__(self):
        hits.append('hash'); raise RuntimeError('hash')
    @property
    def __class__(self):
        hits.append('__class__'); return dict
    @property
    def side(self):
        hits.append('property'); return 2
    def __reduce__(self):
        hits.append('reduce'); raise RuntimeError('reduce')
    def __reduce_ex__(self, protocol):
        hits.append('reduce_ex'); raise RuntimeError('reduce_ex')
    def __len__(self):
        hits.append('len'); raise RuntimeError('len')
    def __iter__(self):
        hits.append('iter'); raise RuntimeError('iter')
    def __fspath__(self):
        hits.append('fspath'); return 'x.csv'
'''


def test_hostile_objects_run_nothing_crash_nothing_and_are_not_kept(recording: RecordingShell) -> None:
    # the brief's list in one notebook: a side-effect counter the recorder must leave at 0
    recording.run(_HOSTILE)
    result = recording.run("h = Hostile()\ncyc = [h]\ncyc.append(cyc)\nd = {'self': None}\nd['self'] = d\n"
                           "deep = []\ncur = deep\nfor _ in range(100000):\n    cur.append([])\n    cur = cur[0]\n"
                           "del cur\nboth = [h, cyc, d, Hostile]")
    assert result.success
    body = recording.body()
    assert {w["name"] for w in body["writes"]} == {"h", "cyc", "d", "deep", "both"}
    assert all(w["fingerprint"]["hash"] or w["fingerprint"]["weak"] for w in body["writes"])
    ns = recording.ns()
    for code in ("object.__setattr__(h, 'v', 2)", "cyc.append(1)", "deep[0].append(1)", "both.append(h)",
                 "def f():\n    return both\ng = f()", "p = open"):
        assert recording.run(code).success, code
    assert ns["hits"] == []
    import weakref
    ref = weakref.ref(ns["h"])
    assert recording.run("del h, cyc, d, deep, both, g\nimport gc\n_n = gc.collect()").success
    assert ref() is None, "the recorder kept a notebook object alive"


@pytest.mark.kernel
def test_a_seeded_generator_drawn_across_cells_replays_every_step(tmp_path: Path) -> None:
    # already right: a Generator's bit-generator state (and its cached half-word) is read
    # exactly, so each draw is a write of `rng` and replay reproduces every step
    path = record(tmp_path / "rng.ipynb",
                  "import numpy as np\nrng = np.random.default_rng(0)",
                  "a = rng.normal(size=3)",
                  "b = rng.integers(0, 100, size=5, dtype=np.uint32)\nc = rng.random()",
                  "x = np.arange(10)\nrng.shuffle(x)",
                  "bg = rng.bit_generator\ne = rng.choice(10, 3)",
                  "fresh = np.random.default_rng()\nz = fresh.random()")
    bodies = [e["body"] for e in sidecar_lines(path) if "code" in e.get("body", {})]
    assert [sorted(w["name"] for w in b["writes"]) for b in bodies] == [
        ["rng"], ["a", "rng"], ["b", "c", "rng"], ["rng", "x"], ["bg", "e", "rng"], ["fresh", "z"]]
    assert all(not w["fingerprint"]["weak"] for b in bodies for w in b["writes"])
    result = replay(load_log(path))
    assert [s.status for s in result.steps][:5] == ["reproduced"] * 5
    assert result.steps[5].status != "reproduced"  # an unseeded generator: never a false "reproduced"


@pytest.mark.kernel
def test_a_log_file_appended_each_cell_is_written_and_never_falsely_reproduced(tmp_path: Path) -> None:
    path = record(tmp_path / "log.ipynb",
                  "import logging\nlog = logging.getLogger('nb')\nh = logging.FileHandler('run.log')\n"
                  "h.setFormatter(logging.Formatter('%(asctime)s %(message)s'))\nlog.addHandler(h)\n"
                  "log.setLevel(logging.INFO)",
                  "x = 1\nlog.info('x=%s', x)",
                  "y = x + 1\nlog.info('y=%s', y)")
    bodies = [e["body"] for e in sidecar_lines(path) if "code" in e.get("body", {})]
    assert [[(Path(f["path"]).name, f["mode"]) for f in b["files"]] for b in bodies] == [
        [("run.log", "write")]] * 3  # written, never read back by the handler's appends
    # the logger is its configuration, read exactly: logging through it changes and warns of nothing
    assert all(b["notes"] == [] for b in bodies[1:]), [b["notes"] for b in bodies]
    reads = [next(r["fingerprint"] for r in b["reads"] if r["name"] == "log") for b in bodies[1:]]
    written = next(w["fingerprint"] for w in bodies[0]["writes"] if w["name"] == "log")
    assert all(not fp["weak"] and fp["hash"] == written["hash"] for fp in reads)
    assert all("log" not in [w["name"] for w in b["writes"]] for b in bodies[1:])
    result = replay(load_log(path))
    assert all(s.status != "reproduced" for s in result.steps), [s.status for s in result.steps]
    assert not any("`log`" in why for s in result.steps for why in s.verdict.unverifiable)
    assert result.exit_code == 1


def test_chunked_csv_reads_and_appends(shell: InteractiveShell, tmp_path: Path) -> None:
    # already right: chunked reads read the file where the reader is made, later chunks
    # through a reader nbgov cannot read say so; an append reads what an earlier cell wrote,
    # appends within one cell read only what was there before the cell
    made = run_recorded(shell, "import pandas as pd\ndf = pd.DataFrame({'a': range(10)})\n"
                               "df.to_csv('data.csv', index=False)")
    body = run_recorded(shell, "reader = pd.read_csv('data.csv', chunksize=3)")
    assert set(_files(body)) == {("data.csv", "read")}
    assert _files(body)[("data.csv", "read")]["source"] == made["id"]
    body = run_recorded(shell, "first = next(reader)")
    assert body["files"] == [] and [n for n in body["notes"] if n.startswith("`reader` cannot be read")]
    body = run_recorded(shell, "with pd.read_csv('data.csv', chunksize=4) as r:\n    for i, c in enumerate(r):\n"
                               "        c.to_csv('out.csv', mode='a', header=(i == 0), index=False)")
    assert set(_files(body)) == {("data.csv", "read"), ("out.csv", "write")}
    first = body
    body = run_recorded(shell, "df.head(2).to_csv('out.csv', mode='a', header=False, index=False)")
    seen = _files(body)
    assert set(seen) == {("out.csv", "read"), ("out.csv", "write")}
    assert seen[("out.csv", "read")]["source"] == first["id"]
    assert seen[("out.csv", "write")]["hash"] == xxhash.xxh3_128_hexdigest((tmp_path / "out.csv").read_bytes())
