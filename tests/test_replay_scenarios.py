"""`nbgov replay` on real recorded notebooks: what reproduces, and why what does not."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from nbgov.lineage.store import sidecar_path
from nbgov.replay.kernel import RecordingKernel
from nbgov.replay.replayer import ReplayResult, replay
from nbgov.replay.source import load_log
from tests.fixtures.kernel import make_notebook
from tests.fixtures.models import ModelFactory
from tests.fixtures.replay import invoke, record, run_in_order, sidecar_lines, write_nb

pytestmark = pytest.mark.kernel


def writes_of(path: Path, name: str) -> list[str]:
    """Fingerprint hashes of every recorded write of `name`, in order."""
    return [w["fingerprint"]["hash"] for e in sidecar_lines(path) if e["kind"] == "execution"
            for w in e["body"]["writes"] if w["name"] == name]


def test_out_of_order_run_replays_exactly_though_top_to_bottom_differs(tmp_path: Path) -> None:
    path = write_nb(tmp_path, "x = 1", "y = x * 10", "x = 5")
    run_in_order(path, [0, 2, 1])  # y = 50, as the user saw it
    result = invoke("replay", path)
    assert result.exit_code == 0, result.output
    assert "all 3 steps reproduced" in result.output
    # the same cells top to bottom give another y: the order is what replay preserved
    other = tmp_path / "top_down.ipynb"
    shutil.copy(path, other)
    assert invoke("run", other).exit_code == 0
    assert writes_of(path, "y") != writes_of(other, "y")
    log = load_log(path)
    assert [e["body"]["code"] for e in log.executions()] == ["x = 1", "x = 5", "y = x * 10"]


def test_changed_data_file_is_flagged_at_the_step_that_read_it(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("v\n1\n2\n3\n")
    path = record(tmp_path / "analysis.ipynb",
                  "import pandas as pd", "note = 'no files here'",
                  "df = pd.read_csv('data.csv')", "total = int(df['v'].sum())")
    (tmp_path / "data.csv").write_text("v\n1\n2\n4\n")
    result = replay(load_log(path))
    assert result.exit_code == 1
    first = result.first_divergence
    assert first is not None and first.step == 3
    assert [c.kind for c in first.causes] == ["input file changed"]
    assert "data.csv" in first.causes[0].detail
    assert [s.status for s in result.steps[:2]] == ["reproduced", "reproduced"]
    # the divergence propagates to the cell that used df, named as such; replay kept going
    assert [c.kind for c in result.steps[3].causes] == ["upstream divergence"]
    assert "`df`" in result.steps[3].causes[0].detail
    cli = invoke("replay", path)
    assert cli.exit_code == 1
    assert "first divergence" in cli.output and "input file changed: data.csv" in cli.output


def replay_after_swapping_model(path: Path, replacement: Path) -> ReplayResult:
    """Replay the recorded notebook: first as recorded (it must reproduce, the onnxruntime
    session too: it is the model bytes it was made from), then with its model.onnx
    replaced by ``replacement``."""
    baseline = invoke("replay", path)
    assert baseline.exit_code == 0, baseline.output
    assert "first divergence" not in baseline.output
    shutil.copy(replacement, path.parent / "model.onnx")
    return replay(load_log(path))


def test_replaced_model_file_is_flagged_as_model_changed(tmp_path: Path, onnx_models: ModelFactory) -> None:
    logreg, tree = onnx_models.get("logreg"), onnx_models.get("tree_clf")
    shutil.copy(logreg.path, tmp_path / "model.onnx")
    np.save(tmp_path / "X.npy", logreg.X.to_numpy(dtype=np.float32)[:50])
    path = record(
        tmp_path / "score.ipynb",
        "import numpy as np\nimport onnxruntime as ort",
        "X = np.load('X.npy')",
        "blob = open('model.onnx', 'rb').read()\nsess = ort.InferenceSession(blob)",
        "labels = sess.run(None, {'input': X})[0]",
    )
    result = replay_after_swapping_model(path, tree.path)
    assert result.exit_code == 1
    first = result.first_divergence
    assert first is not None and first.step == 3
    assert first.causes[0].kind == "model changed"
    assert "model.onnx" in first.causes[0].detail


def test_removed_random_seed_is_reported_as_an_unseeded_random_state(tmp_path: Path) -> None:
    # the draw's cause is named: numpy's global state, which nothing in the log seeded (it was
    # "nondeterministic output: `sample`" while the generator was no recorded value)
    seeded = record(tmp_path / "seeded" / "sample.ipynb", "import numpy as np",
                    "np.random.seed(42)\nsample = np.random.rand(100)", "mean = float(sample.mean())")
    assert invoke("replay", seeded).exit_code == 0
    unseeded = record(tmp_path / "unseeded" / "sample.ipynb", "import numpy as np",
                      "sample = np.random.rand(100)", "mean = float(sample.mean())")
    result = replay(load_log(unseeded))
    assert result.exit_code == 1
    first = result.first_divergence
    assert first is not None and first.step == 2
    assert [(c.kind, c.name) for c in first.causes] == [("unseeded random state", "numpy.random (global state)")]
    assert "numpy's global random state, which nothing in the log seeded" in first.causes[0].detail
    assert result.steps[2].causes[0].kind == "upstream divergence"
    cli = invoke("replay", unseeded)
    assert "unseeded random state: `numpy.random (global state)`" in cli.output


def test_failing_cell_shows_its_error_and_replay_keeps_going(tmp_path: Path) -> None:
    (tmp_path / "cfg.json").write_text('{"rate": 2}')
    path = record(tmp_path / "cfg.ipynb", "import json\ncfg = json.load(open('cfg.json'))",
                  "rate = cfg['rate']", "after = 'still replayed'")
    (tmp_path / "cfg.json").write_text("{not json")
    result = replay(load_log(path))
    causes = {c.kind: c.detail for c in result.steps[0].causes}
    assert "input file changed" in causes
    assert causes["cell failed"].startswith("JSONDecodeError")
    assert len(result.steps) == 3 and result.steps[2].status == "reproduced"


def test_state_the_log_does_not_explain_is_named(tmp_path: Path) -> None:
    path = write_nb(tmp_path, "doubled = secret * 2")
    nb = nbformat.read(str(path), as_version=4)
    with RecordingKernel("python3", tmp_path, path) as kernel:
        kernel.execute("secret = 21", silent=True)  # not a recorded cell
        assert kernel.execute(nb.cells[0].source, nb.cells[0].id, timeout=60).status == "ok"
    result = replay(load_log(path))
    assert result.exit_code == 1
    cause = result.steps[0].causes[0]
    assert (cause.kind, cause.name) == ("unexplained state", "secret")


def test_each_recorded_kernel_session_replays_in_a_fresh_kernel(tmp_path: Path) -> None:
    path = record(tmp_path / "two.ipynb", "x = 1")
    nbformat.write(make_notebook("fresh = 'x' not in globals()"), str(path))  # edited, then re-run
    assert invoke("run", path).exit_code == 0
    log = load_log(path)
    assert len(log.sessions()) == 2
    result = invoke("replay", path)
    assert result.exit_code == 0, result.output
    assert "all 2 steps reproduced" in result.output
    partial = invoke("replay", path, "--until", "1")
    assert partial.exit_code == 0 and "stopped after step 1 of 2" in partial.output


def test_html_report_is_self_contained_and_escapes_notebook_content(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("v\n1\n")
    path = record(tmp_path / "xss.ipynb", "evil = '<script>alert(1)</script>'",
                  "rows = open('data.csv').read()", "n = len(rows) # <img src=x onerror=alert(2)>")
    (tmp_path / "data.csv").write_text("v\n2\n")
    report = tmp_path / "r.html"
    result = invoke("replay", path, "--report", report)
    assert result.exit_code == 1
    html = report.read_text()
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "First divergence: step 2" in html and "input file changed" in html
    assert "<svg" in html and html.count("<rect") >= 3


def test_replay_leaves_the_original_sidecar_untouched(tmp_path: Path) -> None:
    path = record(tmp_path / "keep.ipynb", "k = 1")
    before = sidecar_path(path).read_bytes()
    assert invoke("replay", path).exit_code == 0
    assert sidecar_path(path).read_bytes() == before
    assert invoke("verify", path).exit_code == 0
    assert json.loads(before.splitlines()[-1])["body"]["code"] == "k = 1"


def test_model_file_replaced_under_sqlml_is_flagged_where_it_was_registered(
    tmp_path: Path, onnx_models: ModelFactory
) -> None:
    linreg, tree = onnx_models.get("linreg"), onnx_models.get("tree_reg")
    shutil.copy(linreg.path, tmp_path / "model.onnx")
    linreg.X.head(40).to_parquet(tmp_path / "customers.parquet")
    features = ", ".join(linreg.feature_names)
    path = record(
        tmp_path / "sql.ipynb",
        "%%sqlml\nCREATE MODEL spend FROM 'model.onnx'",
        f"%%sqlml -o scored\nSELECT predict(spend, {features}) AS p FROM 'customers.parquet'",
    )
    recorded = [e["body"] for e in sidecar_lines(path) if e["kind"] == "execution"]
    assert recorded[0]["models"][0]["name"] == "spend"
    result = replay_after_swapping_model(path, tree.path)
    assert result.exit_code == 1
    first = result.first_divergence
    assert first is not None and first.step == 1
    assert first.causes[0].kind == "model changed" and "model.onnx" in first.causes[0].detail
    assert [c.kind for c in result.steps[1].causes] == ["upstream divergence"]
    assert "spend@1" in result.steps[1].causes[0].detail


def test_a_step_over_the_timeout_fails_and_replay_goes_on(tmp_path: Path) -> None:
    path = record(tmp_path / "slow.ipynb", "import time\ntime.sleep(2.5)\nslept = True", "after = 1")
    result = invoke("replay", path, "--timeout", "1")
    assert result.exit_code == 1
    assert "cell failed: Timeout: no reply within 1.0s" in " ".join(result.output.split())
    log = load_log(path)
    replayed = replay(log, timeout=1)
    assert [s.status for s in replayed.steps] == ["diverged", "reproduced"]


def test_a_kernel_that_dies_is_reported_and_replay_continues_in_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "flag").write_text("present")
    path = record(tmp_path / "dies.ipynb", "import os\nif not os.path.exists('flag'):\n    os._exit(1)\nok = 1",
                  "after = ok + 1", "independent = 'fine'")
    (tmp_path / "flag").unlink()
    result = replay(load_log(path), timeout=60)
    assert [c.text() for c in result.steps[0].causes] == ["cell failed: DeadKernel: the kernel died"]
    assert [(c.kind, c.name) for c in result.steps[1].causes] == [("upstream divergence", "ok")]
    assert result.steps[2].status == "reproduced"


@pytest.mark.timeout(120)  # before the fix replay blocked forever opening a FIFO where a step writes
def test_a_fifo_where_a_file_was_written_is_named_never_a_hang(tmp_path: Path) -> None:
    """A FIFO where a step wrote a file is no file to hash, and its open for writing would wait
    for a reader: replay names it and stops before that step, at once, never waiting out
    --timeout. (A FIFO where a step read stops it the same way: tests/test_replay_blocking.py.)"""
    (tmp_path / "in.txt").write_text("hello\n")
    path = record(tmp_path / "nb.ipynb", "text = open('in.txt').read()", "open('out.txt', 'w').write(text)",
                  "n = 1")
    (tmp_path / "out.txt").unlink()
    os.mkfifo(tmp_path / "out.txt")
    started = time.perf_counter()
    result = invoke("replay", path, "--timeout", "30")
    flat = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert time.perf_counter() - started < 15, result.output
    assert ("✗ input file changed: out.txt is a FIFO (named pipe): opening it to write waits for a reader, where the "
            "step writes a file, so the step was not run") in flat
    assert "Timeout" not in flat
    assert "2 steps: 1 reproduced, 1 diverged" in flat and "stopped at step 2 of 3" in flat
    shown = invoke("show", path)
    assert shown.exit_code == 0 and "stale" in shown.output
