"""The global generators as recorded values: a cell whose own code draws from or seeds
``random``'s hidden instance or numpy's global ``RandomState`` reads the state it started from
(its source: the execution that left that exact state) and writes the state it left. A replay
then tells a seeded notebook (reproduced) from an unseeded draw (the generator named: the
cause of what differs, or unverifiable when nothing else does, since what the cell printed
or plotted has no fingerprint); an import that draws stays a note, so its cell still
reproduces."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nbgov.lineage.placement import Placement
from nbgov.lineage.record import NUMPY_STATE_NAME, RANDOM_STATE_NAME, ExecutionRecord, Fingerprint, Read, Write
from nbgov.replay import compare
from nbgov.replay.graph import build_graph
from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.lineage import RecordingShell
from tests.fixtures.replay import invoke, record, sidecar_lines

IMPORTS = "import random\nimport numpy as np"


def bodies(path: Path) -> list[dict[str, object]]:
    return [e["body"] for e in sidecar_lines(path) if e["kind"] == "execution"]


def names(items: object) -> list[str]:
    assert isinstance(items, list)
    return [item["name"] for item in items]


# -- recorded: reads, writes, sources -------------------------------------------------


def test_a_draw_reads_the_state_the_seeding_cell_left(recording: RecordingShell) -> None:
    recording.run(IMPORTS)
    assert recording.record().reads == () and recording.record().writes == ()  # imports: no draw of its own
    recording.run("np.random.seed(0)\nrandom.seed(1)")
    seeding = recording.record()
    assert [r.name for r in seeding.reads] == [RANDOM_STATE_NAME, NUMPY_STATE_NAME]
    assert [r.source for r in seeding.reads] == [None, None]  # seeded from the OS at start: no source
    assert all("no execution in this session's log left the state" in note for note in seeding.notes)
    recording.run("print(random.random())")
    draw = recording.record()
    assert [(r.name, r.source) for r in draw.reads] == [(RANDOM_STATE_NAME, seeding.id)]
    left = {w.name: w.fingerprint for w in seeding.writes}
    assert draw.reads[0].fingerprint == left[RANDOM_STATE_NAME]
    assert [w.name for w in draw.writes] == [RANDOM_STATE_NAME]
    assert draw.writes[0].fingerprint != draw.reads[0].fingerprint
    assert draw.notes == (f"the cell drew from or seeded the random module's global state (random.seed, "
                          f"random.random): its state is recorded as `{RANDOM_STATE_NAME}`, read as execution "
                          f"{seeding.execution_count} left it and written after the cell",)
    # the source edge a graph draws
    graph = build_graph([seeding, draw])
    assert graph.edges[(seeding.id, draw.id)] == [RANDOM_STATE_NAME]
    # a cell that does not touch the generators reads and writes none of them
    recording.run("y = 2")
    assert [r.name for r in recording.record().reads] == [] and names(recording.body()["writes"]) == ["y"]


def test_a_state_an_import_changed_names_no_source(recording: RecordingShell, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "nbgov_rng_draws_at_import.py").write_text("import random\nTOKEN = random.getrandbits(24)\n")
    try:
        recording.run(IMPORTS)
        recording.run("random.seed(1)")
        seeded = recording.record()
        recording.run("import nbgov_rng_draws_at_import")  # a note, no read or write: the import drew
        assert recording.record().reads == () and recording.record().writes == ()
        recording.run("x = random.random()")
        read = recording.record().reads[0]
        assert (read.name, read.source) == (RANDOM_STATE_NAME, None)  # not the state the seeding cell left
        assert read.fingerprint != seeded.writes[0].fingerprint
        assert "so the read names no source" in recording.record().notes[0]
    finally:
        sys.modules.pop("nbgov_rng_draws_at_import", None)


def test_the_state_of_a_generator_made_in_the_cell_is_read_as_its_import_made_it(recording: RecordingShell) -> None:
    recording.run("import random")
    recording.run("import numpy as np\nsample = np.random.rand(2)")
    record = recording.record()
    assert [r.name for r in record.reads] == [NUMPY_STATE_NAME]
    assert [w.name for w in record.writes] == ["sample", NUMPY_STATE_NAME]


# -- stale ------------------------------------------------------------------------------


def test_a_draw_is_stale_when_its_seeding_cell_leaves_another_state(recording: RecordingShell) -> None:
    recording.run(IMPORTS, cell_id="imports")
    recording.run("np.random.seed(0)", cell_id="seed")
    recording.run("a = np.random.rand(2)", cell_id="draw")
    drawn = recording.record().id
    recording.run("b = np.random.rand(2)", cell_id="later")  # moves the state on: nothing stale
    assert recording.rec.stale() == {}
    recording.run("np.random.seed(0)", cell_id="seed")  # the same state again
    assert recording.rec.stale() == {}
    recording.run("np.random.seed(1)", cell_id="seed")
    stale = recording.rec.stale()
    assert drawn in stale, stale
    assert stale[drawn] == [f"input {NUMPY_STATE_NAME}: its cell ran again as [{recording.record().execution_count}] "
                            "and left another state"]


# -- compare, on typed records ---------------------------------------------------------------

CONTEXT = compare.StepContext(Placement(None, Path(".")))


def _step(reads: tuple[Read, ...] = (), writes: tuple[Write, ...] = ()) -> ExecutionRecord:
    return ExecutionRecord(session="s" * 32, execution_count=2, cell_id="c2", code="cell", code_hash="h",
                           started="", duration_s=0.0, status="ok", reads=reads, writes=writes)


def _state(h: str) -> Fingerprint:
    return Fingerprint("random_state", h)


def _verdict(then: ExecutionRecord, now: ExecutionRecord) -> compare.Comparison:
    return compare.compare_step(then, now, "ok", None, None, [], compare.Upstream(), CONTEXT)


def test_a_state_no_execution_left_makes_the_step_unverifiable_or_explains_what_differs() -> None:
    then = _step((Read(NUMPY_STATE_NAME, _state("os1")),), (Write(NUMPY_STATE_NAME, _state("a1")),))
    now = _step((Read(NUMPY_STATE_NAME, _state("os2")),), (Write(NUMPY_STATE_NAME, _state("a2")),))
    verdict = _verdict(then, now)
    # only the state it left differs: its draws differ, what it printed from them is not compared
    assert verdict.causes == [] and verdict.changed == []
    assert len(verdict.unverifiable) == 1 and verdict.unverifiable[0].startswith(f"`{NUMPY_STATE_NAME}`: the step drew")
    # ... and when it printed and showed nothing, the draws changed nothing recorded or seen: a note
    quiet = compare.compare_step(then, now, "ok", None, None, [], compare.Upstream(), CONTEXT, showed=False)
    assert quiet.causes == [] and quiet.unverifiable == [] and quiet.changed == []
    assert [c.kind for c in quiet.notes] == [compare.UNSEEDED_UNSEEN]
    # seeded in the step: the state before differs, the state left does not
    now = _step((Read(NUMPY_STATE_NAME, _state("os2")),), (Write(NUMPY_STATE_NAME, _state("a1")),))
    verdict = _verdict(then, now)
    assert verdict.causes == [] and [c.kind for c in verdict.notes] == [compare.SEEDED_IN_STEP]
    # ... unless what it drew into a variable differs (a draw before the seed)
    then_x = _step(then.reads, (Write("x", _state("x1")), *then.writes))
    now_x = _step(now.reads, (Write("x", _state("x2")), *now.writes))
    assert [c.kind for c in _verdict(then_x, now_x).causes] == [compare.UNSEEDED]


def test_a_generator_state_only_the_replay_recorded_is_a_note() -> None:
    # a log recorded before the generators were values: it makes no claim on them
    then = _step(writes=(Write("x", _state("x1")),))
    drew = (Write("x", _state("x1")), Write(RANDOM_STATE_NAME, _state("s2")))
    now = _step((Read(RANDOM_STATE_NAME, _state("s1")),), drew)
    verdict = _verdict(then, now)
    assert verdict.causes == [] and [c.kind for c in verdict.notes] == [compare.RANDOM_STATE_NOT_RECORDED]
    # a variable written only now is still a difference
    now = _step(writes=(Write("x", _state("x1")), Write("y", _state("y1"))))
    assert _verdict(then, now).changed == ["y"]


# -- replay --------------------------------------------------------------------------------

pytest_kernel = pytest.mark.kernel


@pytest_kernel
def test_seeded_draws_reproduce_and_an_unseeded_print_is_never_reproduced(tmp_path: Path) -> None:
    seeded = record(tmp_path / "seeded" / "draws.ipynb", IMPORTS, "np.random.seed(0)\nrandom.seed(1)",
                    "print(random.random())", "print(np.random.normal(size=3))",
                    "random.seed(7)\nprint(random.random())")
    result = invoke("replay", seeded)
    assert result.exit_code == 0, result.output
    assert "all 5 steps reproduced" in result.output, result.output

    unseeded = record(tmp_path / "unseeded" / "draws.ipynb", IMPORTS, "print(random.random())")
    result = replay(load_log(unseeded))
    assert result.exit_code == 1
    step = result.steps[1]
    assert step.status == "unverifiable" and step.verdict.causes == []
    assert [u.split(":")[0] for u in step.verdict.unverifiable] == [f"`{RANDOM_STATE_NAME}`"]
    assert "the random module's global state, which nothing in the log seeded" in step.verdict.unverifiable[0]
    cli = invoke("replay", unseeded)
    assert cli.exit_code == 1, cli.output
    assert "nothing in the log seeded" in " ".join(cli.output.split()), cli.output
    assert "all 2 steps reproduced" not in cli.output


@pytest_kernel
def test_an_import_that_draws_still_reproduces(tmp_path: Path) -> None:
    folder = tmp_path / "imports"
    folder.mkdir()
    (folder / "nbgov_replay_draws.py").write_text("import random\nTOKEN = random.getrandbits(24)\n")
    path = record(folder / "imports.ipynb", "import random", "import nbgov_replay_draws")
    notes = [body["notes"] for body in bodies(path)]
    assert notes[1] == ["importing nbgov_replay_draws drew from or seeded the random module's global state at "
                        "import; the cell's own code did not draw from it or seed it"], notes
    assert all(names(body["reads"]) == [] for body in bodies(path))
    result = invoke("replay", path)
    assert result.exit_code == 0, result.output


@pytest_kernel
def test_an_unseeded_plot_is_unverifiable_and_a_seeded_one_reproduces(tmp_path: Path) -> None:
    # what a plot shows has no fingerprint: the state its draw left is what is compared
    plot = "plt.hist(np.random.normal(size=100))\nplt.show()"
    setup = "import numpy as np\nimport matplotlib.pyplot as plt"  # the kernel's inline backend: the plot is shown
    unseeded = record(tmp_path / "unseeded" / "plot.ipynb", setup, plot)
    result = replay(load_log(unseeded))
    assert result.exit_code == 1
    step = result.steps[1]
    assert step.status == "unverifiable" and step.verdict.causes == []
    assert [u.split(":")[0] for u in step.verdict.unverifiable] == [f"`{NUMPY_STATE_NAME}`"]
    # the histogram's counts displayed as the result differ too: then the generator is their cause
    shown = record(tmp_path / "shown" / "plot.ipynb", setup, "np.histogram(np.random.normal(size=100))[0]")
    diverged = replay(load_log(shown))
    assert diverged.first_divergence is not None and diverged.first_divergence.step == 2
    assert [(c.kind, c.name) for c in diverged.first_divergence.causes] == [("unseeded random state",
                                                                             NUMPY_STATE_NAME)]
    seeded = record(tmp_path / "seeded" / "plot.ipynb", setup, "np.random.seed(0)", plot)
    replayed = invoke("replay", seeded)
    assert replayed.exit_code == 0, replayed.output


@pytest_kernel
def test_a_library_drawing_a_seed_it_does_not_use_still_reproduces(tmp_path: Path) -> None:
    # scikit-learn's Lasso().fit draws a seed from numpy's global state even with its default
    # cyclic selection: the coefficients are the same in every run, and the cell shows nothing
    path = record(tmp_path / "lasso" / "fit.ipynb",
                  "import numpy as np\nfrom sklearn.linear_model import Lasso\nfrom sklearn.datasets import load_diabetes\n"
                  "X, y = load_diabetes(return_X_y=True)",
                  "model = Lasso(alpha=0.1).fit(X, y)", "coef = model.coef_.round(6)")
    assert NUMPY_STATE_NAME in names(bodies(path)[1]["writes"])  # the draw is recorded
    result = replay(load_log(path))
    assert result.exit_code == 0, [(s.status, s.verdict) for s in result.steps]
    assert [c.kind for c in result.steps[1].verdict.notes] == [compare.UNSEEDED_UNSEEN]
