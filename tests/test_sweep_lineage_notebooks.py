"""Notebooks shaped like library documentation (matplotlib, polars, pyarrow datasets,
joblib, LightGBM, scipy, IPython magics), recorded by ``nbgov run`` and replayed: what a
reviewer sees must be what the code did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from IPython.lib.pretty import pretty

from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.replay import invoke, record


def _files(path: Path, count: int) -> list[dict[str, Any]]:
    """The files recorded for execution ``count``, as ``nbgov show --json`` gives them."""
    shown = json.loads(invoke("show", path, "--json").output)
    body = next(e["body"] for e in shown["entries"]
                if e["kind"] == "execution" and e["body"]["execution_count"] == count)
    return [{k: f[k] for k in ("path", "mode", "source")} for f in body["files"]]


@pytest.mark.kernel
@pytest.mark.timeout(300)
def test_an_append_after_a_native_write_is_not_an_input(tmp_path: Path) -> None:
    # polars writes the CSV natively, then Python appends a footer: the append's open read
    # the cell's own output, not an input (replay in the same folder found it "changed")
    path = record(tmp_path / "nb.ipynb",
                  "import polars as pl\ndf = pl.DataFrame({'a': [1, 2, 3]})\nopen('kept.csv', 'w').write('a\\n0\\n')",
                  "df.write_csv('out.csv')\nwith open('out.csv', 'a') as f:\n    f.write('# end\\n')",
                  "with open('kept.csv', 'a') as f:\n    f.write('1\\n')\ndf.write_csv('kept.csv')")
    assert _files(path, 2) == [{"path": "out.csv", "mode": "write", "source": None}]
    session = _files(path, 1)[0]["source"]
    assert session is None  # written by cell 1; its read by cell 3 comes from cell 1
    read = [f for f in _files(path, 3) if f["mode"] == "read"]
    assert len(read) == 1 and read[0]["path"] == "kept.csv" and read[0]["source"].endswith(":1"), read
    for attempt in range(2):
        replayed = invoke("replay", path)
        assert replayed.exit_code == 0, f"replay {attempt + 1}: {replayed.output}"


@pytest.mark.kernel
@pytest.mark.timeout(300)
def test_a_dataframe_inside_a_tuple_is_shown_as_without_nbgov(tmp_path: Path) -> None:
    # `df.head(), listing`: IPython breaks a multi-line repr inside a container line by line;
    # nbgov's DataFrame printer (for %%sqlml's row limit) printed it as one text, unindented
    path = record(tmp_path / "nb.ipynb", "import pandas as pd\nmade = pd.DataFrame({'a': [1], 'b': [2]})",
                  "made, ['params.txt']", "[made, made]")
    made = pd.DataFrame({"a": [1], "b": [2]})
    cells = nbformat.read(str(path), as_version=4).cells
    shown = [c.outputs[0]["data"]["text/plain"] for c in cells[1:]]
    assert shown == [pretty((made, ["params.txt"])), pretty([made, made])]


@pytest.mark.kernel
@pytest.mark.timeout(300)
def test_a_lightgbm_model_is_fingerprinted_by_its_trees(tmp_path: Path) -> None:
    # LightGBM's quick start: its Booster holds the trees behind a ctypes handle, so the
    # model (and an LGBMClassifier around it) was weak and every replay "unverifiable"
    path = record(tmp_path / "nb.ipynb",
                  ("import numpy as np\nimport lightgbm as lgb\nrng = np.random.default_rng(0)\n"
                   "X = rng.normal(size=(200, 4))\ny = (X[:, 0] + X[:, 1] > 0).astype(int)"),
                  ("params = {'objective': 'binary', 'num_leaves': 7, 'verbose': -1, 'seed': 0, 'num_threads': 1}\n"
                   "booster = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=10)\n"
                   "more = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=11)"),
                  "clf = lgb.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1, random_state=0).fit(X, y)")
    shown = json.loads(invoke("show", path, "--json").output)
    writes = {w["name"]: w["fingerprint"] for e in shown["entries"] if e["kind"] == "execution"
              for w in e["body"]["writes"]}
    assert not any(writes[name]["weak"] for name in ("booster", "more", "clf")), writes
    assert writes["booster"]["hash"] != writes["more"]["hash"]  # one tree more: another model
    replayed = invoke("replay", path)
    assert replayed.exit_code == 0, replayed.output


@pytest.mark.kernel
@pytest.mark.timeout(300)
def test_a_frozen_scipy_distribution_replays_as_reproduced(tmp_path: Path) -> None:
    # scipy.stats' docs: `rv = stats.norm(1, 2)` holds numpy's global RandomState, seeded
    # anew in each process and changed by any draw: the frozen distribution was hashed by
    # that state, so every replay called it "nondeterministic output"
    path = record(tmp_path / "nb.ipynb",
                  "import numpy as np\nfrom scipy import stats\nrv = stats.norm(loc=1.0, scale=2.0)",
                  "noise = np.random.rand(3)",
                  "q = rv.ppf([0.1, 0.5, 0.9])")
    shown = json.loads(invoke("show", path, "--json").output)
    bodies = [e["body"] for e in shown["entries"] if e["kind"] == "execution"]
    written = next(w["fingerprint"]["hash"] for w in bodies[0]["writes"] if w["name"] == "rv")
    read = next(r["fingerprint"]["hash"] for r in bodies[2]["reads"] if r["name"] == "rv")
    assert read == written  # a draw from the global generator in between changed nothing of rv's
    made, drawn, used = replay(load_log(path)).steps
    assert made.status == used.status == "reproduced", (made.causes, used.causes)
    # unseeded: named by the generator it drew from (it was "nondeterministic output: `noise`")
    assert [(c.kind, c.name) for c in drawn.causes] == [("unseeded random state", "numpy.random (global state)")]


@pytest.mark.kernel
@pytest.mark.timeout(300)
def test_the_code_of_time_and_capture_magics_reads_its_names(tmp_path: Path) -> None:
    # `%%time` over a cell (as in pandas' and scikit-learn's docs) runs its body in the
    # notebook's namespace: its result came from `df`, but the record had no input at all
    path = record(tmp_path / "nb.ipynb", "import pandas as pd\ndf = pd.DataFrame({'a': [1.0, 2.0, 4.0]})",
                  "%%time\ndf.describe()", "%time doubled = df * 2", "%%capture captured\nprint('hidden')\ndf.sum()",
                  "%%bash\necho df")
    shown = json.loads(invoke("show", path, "--json").output)
    reads = [sorted(r["name"] for r in e["body"]["reads"]) for e in shown["entries"] if e["kind"] == "execution"]
    assert reads == [[], ["df"], ["df"], ["df"], []]
