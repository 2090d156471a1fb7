"""Replay verdicts on notebooks shaped like library documentation examples: a value
that is equal in a fresh kernel must be "reproduced", not blamed on chance."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.replay import record


@pytest.mark.kernel
def test_a_matplotlib_figure_drawn_the_same_way_is_reproduced(tmp_path: Path) -> None:
    # a transform keeps its parents keyed by id(): addresses differ in every kernel
    path = record(
        tmp_path / "plot.ipynb",
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\nax.plot([1, 2, 3])\nax.set_title('t')",
    )
    result = replay(load_log(path))
    step = result.steps[0]
    assert step.status == "reproduced", [c.detail for c in step.causes]
    assert result.exit_code == 0


@pytest.mark.kernel
def test_a_file_or_variable_only_one_run_produced_is_a_divergence(tmp_path: Path) -> None:
    # os.path.exists is not a read: the flag below is state the log cannot see
    path = record(
        tmp_path / "effects.ipynb",
        "import os\nif not os.path.exists('flag'):\n    open('out.txt', 'w').write('x')",
        "if os.path.exists('flag'):\n    extra = 1",
        "if os.path.exists('flag'):\n    open('new.txt', 'w').write('y')",
        "same = 1",
    )
    (tmp_path / "flag").touch()
    (tmp_path / "out.txt").unlink()
    result = replay(load_log(path))
    written, extra, new, same = result.steps
    assert written.status == "diverged" and "out.txt" in written.causes[0].detail
    assert "not written again" in written.causes[0].detail
    assert extra.status == "diverged" and "`extra`" in extra.causes[0].detail
    assert "written now, not in the recording" in extra.causes[0].detail
    assert new.status == "diverged" and "new.txt" in new.causes[0].detail
    assert same.status == "reproduced"
    assert result.exit_code == 1
