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
