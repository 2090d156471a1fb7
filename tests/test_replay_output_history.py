"""Results read through IPython's output history (`_`, `_2`, `Out[2]`) in a real kernel: the
record names them as inputs from the execution that displayed them, and `nbgov replay` runs
each step under its recorded execution count, so `_2` means there what it meant then."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage.placement import Placement
from nbgov.lineage.record import ExecutionRecord, Fingerprint, Read, Write
from nbgov.replay import compare
from nbgov.replay.replayer import ReplayResult, replay
from nbgov.replay.source import load_log
from tests.fixtures.kernel import kernel_env, kernel_manager
from tests.fixtures.lineage import INSTALL_RECORDER
from tests.fixtures.replay import write_nb

pytestmark = pytest.mark.kernel


class _Kernel:
    """A real ipykernel where the recorder is installed by a cell of its own, as `%load_ext
    nbgov` in a notebook's first cell does: that cell takes execution count 1 and no record,
    so the recorded counts are not the ones a fresh replay kernel would give."""

    def __init__(self, notebook: Path) -> None:
        self.km = kernel_manager()
        self.km.start_kernel(env=kernel_env(notebook), cwd=str(notebook.parent))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=90)

    def run(self, code: str) -> dict[str, Any]:
        reply = self.kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
        content: dict[str, Any] = reply["content"]
        assert content["status"] == "ok", content
        return content

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return write_nb(tmp_path, "x = 1")


@pytest.fixture
def kernel(notebook: Path) -> Iterator[_Kernel]:
    started = _Kernel(notebook)
    try:
        yield started
    finally:
        started.shutdown()


def _records(notebook: Path) -> list[ExecutionRecord]:
    return load_log(notebook).execution_records()


def test_a_result_read_through_the_output_history_replays_under_its_recorded_number(
    notebook: Path, kernel: _Kernel
) -> None:
    kernel.run(INSTALL_RECORDER)  # execution 1: no record
    assert kernel.run("[1, 2, 3]")["execution_count"] == 2
    kernel.run("n = 1")
    kernel.run("y = sum(_) + sum(_2) + sum(Out[2]) + len(Out.get(2)) + n")
    shown, _, reader = _records(notebook)
    assert [shown.execution_count, reader.execution_count] == [2, 4]
    assert shown.result is not None
    assert [(r.name, r.source) for r in reader.reads] == [("n", _records(notebook)[1].id), ("Out[2]", shown.id)]
    assert reader.reads[1].fingerprint == shown.result
    assert not any("output history" in n for n in reader.notes), reader.notes

    result = replay(load_log(notebook))
    assert [s.status for s in result.steps] == ["reproduced"] * 3, [s.causes for s in result.steps]
    assert result.exit_code == 0
    again = result.steps[2].replay_record
    assert again is not None and again.execution_count == 4  # the recorded number, not the kernel's third
    first = result.steps[0].replay_record
    assert first is not None
    assert [(r.name, r.source) for r in again.reads if r.displayed] == [("Out[2]", first.id)]


def test_a_displaying_step_that_diverges_is_named_as_the_readers_cause(notebook: Path, kernel: _Kernel) -> None:
    kernel.run(INSTALL_RECORDER)
    kernel.run("import time\n[time.time_ns()]")
    kernel.run("size = len(_2)")  # equal in every run: the read value is what differs
    result = replay(load_log(notebook))
    assert result.exit_code == 1
    shown, reader = result.steps
    assert shown.status == "diverged" and shown.verdict.changed == ["Out[2]"]
    assert [(c.kind, c.name) for c in reader.causes] == [("upstream divergence", "Out[2]")]
    assert "since step 1" in reader.causes[0].detail


def _before_recording(notebook: Path, kernel: _Kernel) -> ReplayResult:
    kernel.run("'before'")  # execution 1: displayed before nbgov recorded
    kernel.run(INSTALL_RECORDER)
    kernel.run("y = _1 * 2")
    kernel.run("z = _ + '!'")
    return replay(load_log(notebook))


def test_a_result_displayed_before_recording_is_said_to_be_what_replay_cannot_show(
    notebook: Path, kernel: _Kernel
) -> None:
    result = _before_recording(notebook, kernel)
    first, second = _records(notebook)
    assert [(r.name, r.source) for r in first.reads] == [("Out[1]", None)]
    assert [(r.name, r.source) for r in second.reads] == [("Out[1]", None)]
    assert result.exit_code == 1
    failed, differs = result.steps
    assert [(c.kind, c.name) for c in failed.causes] == [("unexplained state", "Out[1]")]
    assert "which no record of its kernel session holds" in failed.causes[0].detail
    assert "NameError" in failed.causes[0].detail
    assert differs.verdict.unverifiable_inputs and "`Out[1]`" in differs.verdict.unverifiable_inputs[0]
    assert [(c.kind, c.name) for c in differs.causes] == [("unverifiable upstream value", "z")]
    assert "which no record of its kernel session holds" in differs.causes[0].detail


def test_a_step_the_kernel_would_not_number_as_recorded_does_not_compare_its_history_reads(tmp_path: Path) -> None:
    """A kernel that refused the recorded execution count (not IPython) numbers its results
    otherwise: `Out[2]` there may be another result, so it is not compared, and says why."""
    session, then, now = "a" * 32, Fingerprint("int", "1" * 32), Fingerprint("int", "2" * 32)
    original = ExecutionRecord(session, 4, None, "y = _2", "", "", 0.0, "ok",
                               reads=(Read("Out[2]", then, f"{session}:2"),), writes=(Write("y", then),))
    again = replace(original, session="b" * 32, reads=(Read("Out[2]", now, "b" * 32 + ":2"),),
                    writes=(Write("y", now),))
    context = compare.StepContext(Placement(None, tmp_path))
    numbered = compare.compare_step(original, again, "ok", None, None, [], compare.Upstream(), context)
    assert [(c.kind, c.name) for c in numbered.causes] == [("unexplained state", "Out[2]")]
    assert f"displayed by {session}:2" in numbered.causes[0].detail
    unnumbered = compare.compare_step(original, again, "ok", None, None, [], compare.Upstream(), context,
                                      numbered=False)
    assert unnumbered.unverifiable == ["`Out[2]` (read): the replay kernel could not be given the recorded "
                                       "execution counts, so its output history numbers results otherwise"]
    assert [(c.kind, c.name) for c in unnumbered.causes] == [("unverifiable upstream value", "y")]
