"""Replay a reviewer can trust: only verified logs, every line shown, the folder as it is now,
a fixed hash seed, weak values never "reproduced", and the earliest value blamed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from nbgov.lineage.placement import Placement
from nbgov.lineage.record import NUMPY_STATE_NAME, ExecutionRecord, Fingerprint, Read, Write
from nbgov.lineage.store import sidecar_path
from nbgov.replay import compare
from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.replay import invoke, record, sidecar_lines, write_nb, write_sidecar_lines


def _record(count: int, reads: tuple[Read, ...] = (), writes: tuple[Write, ...] = (),
            result: Fingerprint | None = None) -> ExecutionRecord:
    return ExecutionRecord(session="s" * 32, execution_count=count, cell_id=f"c{count}", code=f"cell {count}",
                           code_hash="h", started="", duration_s=0.0, status="ok", reads=reads, writes=writes,
                           result=result)


def _fp(h: str, weak: bool = False, semantic: str | None = None, reason: str | None = None) -> Fingerprint:
    return Fingerprint("object", h, weak=weak, summary="", reason=reason, semantic=semantic)


CONTEXT = compare.StepContext(Placement(None, Path(".")))


def _compare(then: ExecutionRecord, now: ExecutionRecord, upstream: compare.Upstream | None = None,
             context: compare.StepContext = CONTEXT) -> compare.Comparison:
    return compare.compare_step(then, now, "ok", None, None, [], upstream or compare.Upstream(), context)


# -- compare, on typed records -----------------------------------------------------------

def test_a_weak_value_makes_a_step_unverifiable_never_reproduced() -> None:
    weak = _fp("a", weak=True, reason="a generator: its items cannot be read without running it")
    verdict = _compare(_record(1, writes=(Write("g", weak),)), _record(1, writes=(Write("g", weak),)))
    assert verdict.causes == [] and verdict.unverifiable == [
        "`g`: a generator: its items cannot be read without running it"]


def test_a_difference_is_blamed_on_the_earliest_value_that_could_not_be_compared() -> None:
    upstream = compare.Upstream()
    forest = _fp("f", weak=True, reason="fitted RandomForestClassifier: learned state not readable")
    step2 = _compare(_record(2, writes=(Write("clf", forest),)), _record(2, writes=(Write("clf", forest),)))
    upstream.unverified[_record(2).id] = (2, step2.unverifiable[0])
    then = _record(3, reads=(Read("clf", forest, source=_record(2).id),), writes=(Write("p", _fp("p1")),))
    now = _record(3, reads=(Read("clf", forest, source=_record(2).id),), writes=(Write("p", _fp("p2")),))
    verdict = _compare(then, now, upstream)
    assert [c.kind for c in verdict.causes] == [compare.UNVERIFIED_UPSTREAM]
    assert "its input `clf` comes from step 2" in verdict.causes[0].detail
    assert "although every input matched" not in verdict.causes[0].detail


def test_a_model_differing_only_in_names_is_a_mild_note_not_a_divergence() -> None:
    then = _record(1, writes=(Write("onx", _fp("bytes-1", semantic="same-graph")),))
    now = _record(1, writes=(Write("onx", _fp("bytes-2", semantic="same-graph")),))
    verdict = _compare(then, now)
    assert verdict.causes == [] and verdict.unverifiable == []
    assert [n.kind for n in verdict.notes] == [compare.MODEL_METADATA]
    other = _compare(then, _record(1, writes=(Write("onx", _fp("bytes-3", semantic="other-graph")),)))
    assert [c.kind for c in other.causes] == [compare.NONDETERMINISTIC]


def test_the_displayed_result_is_compared_like_a_written_variable() -> None:
    verdict = _compare(_record(4, result=_fp("r1")), _record(4, result=_fp("r2")))
    assert verdict.changed == ["Out[4]"]
    assert "`Out[4]` differs although every input matched" in verdict.causes[0].detail
    assert _compare(_record(4, result=_fp("r1")), _record(4, result=_fp("r1"))).causes == []


def test_a_session_recorded_with_a_random_hash_seed_names_ordering() -> None:
    context = compare.StepContext(Placement(None, Path(".")), hash_seed_random=True)
    verdict = _compare(_record(1, writes=(Write("s", _fp("1")),)), _record(1, writes=(Write("s", _fp("2")),)),
                       context=context)
    assert [c.kind for c in verdict.causes] == [compare.HASH_ORDER]
    assert "random PYTHONHASHSEED" in verdict.causes[0].detail


@pytest.mark.timeout(30)  # before the fix the content hash blocked forever opening the FIFO
def test_a_fifo_has_no_content_hash_and_is_named_never_opened_to_wait(tmp_path: Path) -> None:
    """Replay's callers look before they hash; the hash itself must not block either, as a
    FIFO swapped in between the look and the open would have it."""
    from nbgov.lineage import files

    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    assert compare.file_now(fifo) == (None, "is a FIFO (named pipe), not a file")
    assert files.content_hash(str(fifo)) is None
    assert compare.file_now(tmp_path / "gone.csv") == (None, "missing")
    fifo.unlink()
    fifo.write_text("v\n1\n")
    digest, why = compare.file_now(fifo)
    assert digest == files.content_hash(str(fifo)) and digest and why == ""


# -- replay on real kernels -------------------------------------------------------------------

@pytest.mark.kernel
def test_a_log_that_does_not_verify_is_refused_and_unverified_shows_every_line(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "a = 1", "b = a + 1")
    entries = sidecar_lines(path)
    entries[1]["body"]["code"] = "a = 1\nopen('injected.txt', 'w').write('ran')"
    write_sidecar_lines(path, entries)
    refused = invoke("replay", path)
    assert refused.exit_code == 2
    assert "will not replay nb.ipynb: its lineage does not verify: sidecar: entry 1: hash mismatch" in refused.output
    assert not (tmp_path / "injected.txt").exists()
    forced = invoke("replay", path, "--unverified")
    assert "WARNING: replaying nb.ipynb although its lineage does not verify" in forced.output
    assert "UNVERIFIED LOG" in forced.output
    assert "│ open('injected.txt', 'w').write('ran')" in forced.output  # the whole code, not its first line


@pytest.mark.kernel
def test_a_copied_folder_replays_in_the_copy_and_leaves_the_original_alone(tmp_path: Path) -> None:
    original = tmp_path / "original"
    original.mkdir()
    (original / "data.csv").write_text("v\n1\n2\n")
    path = record(original / "nb.ipynb", "rows = open('data.csv').read().split()",
                  "open('out.txt', 'w').write(str(len(rows)))")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    (original / "out.txt").unlink()
    (original / "data.csv").write_text("v\n9\n9\n9\n")  # would diverge if replay read the original
    result = invoke("replay", copy / "nb.ipynb")
    assert result.exit_code == 0, result.output
    assert not (original / "out.txt").exists()
    assert (copy / "out.txt").read_text() == "3"


@pytest.mark.kernel
def test_a_copied_folder_names_its_own_files_where_the_cells_named_absolute_paths(tmp_path: Path) -> None:
    """A cell that opened a file by its absolute path under the notebook's folder: in a copy,
    the stale reason and the replay's cause name the copy's file, which is the one checked
    (they named the original's path, elsewhere on the author's machine)."""
    original = tmp_path / "original"
    original.mkdir()
    (original / "data.csv").write_text("v\n1\n")
    record(original / "nb.ipynb", f"rows = open({str(original / 'data.csv')!r}).read().split()")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    (copy / "data.csv").write_text("v\n2\n")
    data = json.loads(invoke("show", copy / "nb.ipynb", "--json").output)
    assert data["executions"][0]["stale"] == [f"file {copy / 'data.csv'} changed on disk since read"]
    replayed = invoke("replay", copy / "nb.ipynb")
    said = "".join(replayed.output.split())  # the terminal's width wraps lines, paths too
    assert replayed.exit_code == 1 and f"inputfilechanged:{copy / 'data.csv'}:" in said, replayed.output
    assert f"{original / 'data.csv'}:" not in said


@pytest.mark.kernel
def test_a_notebook_written_by_run_o_replays_in_the_folder_its_cells_ran_in(tmp_path: Path) -> None:
    """`nbgov run NB -o out/NB.ipynb` runs the cells in NB's folder and keeps the log beside
    the output: replay runs where the cells ran (relative to the notebook), in a copy too."""
    (tmp_path / "data.txt").write_text("hello\n")
    write_nb(tmp_path, "text = open('data.txt').read()", "n = len(text)", name="nb.ipynb")
    assert invoke("run", tmp_path / "nb.ipynb", "-o", tmp_path / "out" / "executed.ipynb").exit_code == 0
    result = invoke("replay", tmp_path / "out" / "executed.ipynb")
    assert result.exit_code == 0, result.output
    copy = tmp_path.parent / f"{tmp_path.name}-copy"
    shutil.copytree(tmp_path, copy)
    (copy / "data.txt").write_text("changed\n")  # the copy's data, not the original's
    copied = invoke("replay", copy / "out" / "executed.ipynb")
    assert copied.exit_code == 1 and "input file changed: data.txt" in copied.output, copied.output
    data = json.loads(invoke("show", copy / "out" / "executed.ipynb", "--json").output)
    assert data["executions"][0]["stale"] == ["file data.txt changed on disk since read"]


@pytest.mark.kernel
def test_replay_without_the_recorded_working_folder_runs_in_the_notebook_s_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data.txt").write_text("hello\n")
    write_nb(tmp_path / "work", "text = open('data.txt').read()", name="nb.ipynb")
    assert invoke("run", tmp_path / "work" / "nb.ipynb", "-o", tmp_path / "out" / "executed.ipynb").exit_code == 0
    alone = tmp_path / "elsewhere" / "out"  # the output folder alone: ../work is not there
    shutil.copytree(tmp_path / "out", alone)
    (alone / "data.txt").write_text("hello\n")
    result = invoke("replay", alone / "executed.ipynb")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "note: the recorded working folder (../work from the notebook's folder" in flat
    assert "its cells run in the notebook's folder" in flat


@pytest.mark.kernel
def test_run_and_replay_use_a_fixed_hash_seed(tmp_path: Path) -> None:
    path = tmp_path / "seed.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint('seed', os.environ.get('PYTHONHASHSEED'))"),
                nbformat.v4.new_code_cell("order = list({'alpha', 'beta', 'gamma', 'delta', 'epsilon'})")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    ran = invoke("run", path, "--print-outputs")
    assert ran.exit_code == 0 and "seed 0" in ran.output
    replayed = invoke("replay", path)  # set order depends on the seed: equal only with the same one
    assert replayed.exit_code == 0, replayed.output


@pytest.mark.kernel
def test_an_unseeded_forest_is_blamed_where_chance_entered(tmp_path: Path) -> None:
    path = record(
        tmp_path / "forest.ipynb",
        "from sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True)",
        "from sklearn.ensemble import RandomForestClassifier\n"
        "clf = RandomForestClassifier(n_estimators=5, max_depth=3).fit(X, y)",
        "p = clf.predict_proba(X).round(6)",
    )
    result = replay(load_log(path))
    assert result.exit_code == 1
    forest, scores = result.steps[1], result.steps[2]
    # random_state=None draws from numpy's global state, now a recorded value: chance is named
    # where it entered, whether or not the forest's learned state could be compared (it was
    # "`clf` differs", or an unverifiable step 2 blamed at step 3)
    assert result.first_divergence is forest
    assert [(c.kind, c.name) for c in forest.causes] == [(compare.UNSEEDED, NUMPY_STATE_NAME)]
    assert "numpy's global random state, which nothing in the log seeded" in forest.causes[0].detail
    assert [c.kind for c in scores.causes] == [compare.UPSTREAM], scores.causes


@pytest.mark.kernel
def test_a_value_nbgov_cannot_read_is_unverifiable_and_fails_unless_allowed(tmp_path: Path) -> None:
    path = record(tmp_path / "gen.ipynb", "g = (i * i for i in range(3))", "x = 1")
    log = load_log(path)
    weak = [w for r in log.execution_records() for w in r.writes if w.fingerprint.weak]
    assert [w.name for w in weak] == ["g"]
    strict = invoke("replay", path)
    assert strict.exit_code == 1 and "1 unverifiable" in strict.output and "not compared: `g`" in strict.output
    assert invoke("replay", path, "--allow-unverifiable").exit_code == 0
    assert sidecar_path(path).exists()


def _rechained_with(path: Path, seq: int, **changes: str) -> None:
    """Entry ``seq`` of a recorded log edited (``changes`` to its body), every hash after it
    recomputed and the notebook metadata rewritten to match: a log that verifies."""
    import xxhash

    entries = sidecar_lines(path)
    entries[seq]["body"].update(changes)
    for entry in entries[seq:]:
        entry["prev"] = entries[entry["seq"] - 1]["hash"]
        text = json.dumps({k: v for k, v in entry.items() if k != "hash"}, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
        entry["hash"] = xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))
    sidecar_path(path).write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in entries))  # \ud800 escaped
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata["nbgov"]["log"] = [json.dumps(e) for e in entries]
    for cell in nb.cells:
        cell.metadata.pop("nbgov", None)
    nbformat.write(nb, str(path))


@pytest.mark.kernel
@pytest.mark.parametrize(("field", "value", "says"), [
    ("code", "b = 2\nname = 'x\ud800'", "entry 2 ([2]) has recorded code holding a lone surrogate (\\ud800 at line 2, column 10)"),
    ("cell_id", "cell-\udfff", "entry 2 ([2]) has recorded cell id holding a lone surrogate (\\udfff at line 1, column 6)"),
])
def test_recorded_code_holding_a_lone_surrogate_is_refused_in_one_line_naming_the_entry(
        tmp_path: Path, field: str, value: str, says: str) -> None:
    """JSON carries a lone surrogate as an escape, but no kernel can be sent it: replay used to
    start a kernel and die on a raw UnicodeEncodeError. It names the entry, before any kernel."""
    path = record(tmp_path / "nb.ipynb", "a = 1", "b = 2", "c = 3")
    _rechained_with(path, 2, **{field: value})
    assert invoke("verify", path).exit_code == 0  # a log that verifies: only its content is the matter
    for extra in ([], ["--unverified"], ["--until", "2"]):
        refused = invoke("replay", path, *extra)
        lines = [ln for ln in refused.output.splitlines() if ln.strip()]
        assert refused.exit_code == 2 and len(lines) == 1, refused.output
        assert lines[0] == f"nbgov: error: will not replay nb.ipynb: {says}, which is not UTF-8 text, so no " \
                           "kernel can be sent it"
    before = invoke("replay", path, "--until", "1")  # what comes before it still replays
    assert before.exit_code == 0, before.output
    for command in (["show"], ["show", "--json"], ["verify"], ["graph"], ["graph", "--format", "svg"],
                    ["export", "--format", "prov"], ["export", "--format", "openlineage"]):
        shown = invoke(command[0], path, *command[1:])
        assert shown.exit_code == 0 and "Traceback" not in shown.output, (command, shown.output)
        assert "\ud800" not in shown.output and "\udfff" not in shown.output
