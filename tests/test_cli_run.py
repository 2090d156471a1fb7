"""`nbgov run` records every cell for real; the helpers these tests use live in
tests/fixtures/replay.py, shared by all reviewer-tool tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager

from nbgov.lineage.store import sidecar_path
from nbgov.replay.runner import EXIT_POLL_S
from tests.fixtures.replay import edit_metadata_entry, invoke, metadata_entries, record, sidecar_lines, write_nb


def test_run_records_every_cell_with_its_cell_id(tmp_path: Path) -> None:
    path = record(tmp_path / "analysis.ipynb", "a = 41", "b = a + 1\nprint(b)")
    nb = nbformat.read(str(path), as_version=4)
    executions = [e for e in sidecar_lines(path) if e["kind"] == "execution"]
    assert [e["body"]["cell_id"] for e in executions] == [c.id for c in nb.cells]
    assert [e["body"]["code"] for e in executions] == ["a = 41", "b = a + 1\nprint(b)"]
    # the load of nbgov itself is not a recorded cell, and the outputs are real
    assert nb.cells[1].outputs[0]["text"] == "42\n"
    assert executions[1]["body"]["reads"][0]["name"] == "a"
    assert executions[1]["body"]["reads"][0]["source"] == executions[0]["body"]["id"]


def test_run_writes_notebook_and_cell_metadata_matching_the_sidecar(tmp_path: Path) -> None:
    path = record(tmp_path / "analysis.ipynb", "x = [1, 2, 3]", "y = sum(x)")
    nb = nbformat.read(str(path), as_version=4)
    meta = nb.metadata["nbgov"]
    assert meta["schema"] == "nbgov.notebook/2"
    assert meta["sidecar"] == ".nbgov/analysis.jsonl"
    assert all(isinstance(line, str) and "\n" not in line for line in meta["log"]), "one line per entry"
    on_disk = sidecar_lines(path)
    assert metadata_entries(path) == sorted(on_disk, key=lambda e: e["seq"])
    for cell, entry in zip(nb.cells, on_disk[1:]):
        assert cell.metadata["nbgov"] == {"latest": entry["hash"][:16]}


def test_run_to_another_output_keeps_the_source_untouched(tmp_path: Path) -> None:
    source = write_nb(tmp_path, "z = 3", name="source.ipynb")
    before = source.read_text()
    out = tmp_path / "out" / "ran.ipynb"
    result = invoke("run", source, "-o", out)
    assert result.exit_code == 0, result.output
    assert "recorded 1 execution (" in result.output
    assert source.read_text() == before
    assert not (tmp_path / ".nbgov").exists()
    ran = nbformat.read(str(out), as_version=4)
    assert [e["body"].get("code") for e in metadata_entries(out)] == [None, "z = 3"]
    assert (out.parent / ".nbgov" / "ran.jsonl").exists()


def test_run_reports_a_failing_cell_and_still_records_it(tmp_path: Path) -> None:
    path = write_nb(tmp_path, "ok = 1", "1 / 0", "never = 2")
    result = invoke("run", path)
    assert result.exit_code == 1
    assert "ZeroDivisionError" in result.output
    executions = [e for e in sidecar_lines(path) if e["kind"] == "execution"]
    assert [e["body"]["status"] for e in executions] == ["ok", "error"]
    assert executions[1]["body"]["error"]["type"] == "ZeroDivisionError"


def test_a_notebook_shared_without_its_sidecar_continues_its_chain(tmp_path: Path) -> None:
    path = record(tmp_path / "shared.ipynb", "first = 1")
    sidecar_path(path).unlink()
    result = invoke("run", path)
    assert result.exit_code == 0, result.output
    entries = sidecar_lines(path)
    assert [e["seq"] for e in entries] == [0, 1, 2, 3]
    assert len({e["body"]["session"] for e in entries}) == 2
    assert invoke("verify", path).exit_code == 0
    nb = nbformat.read(str(path), as_version=4)
    edit_metadata_entry(nb, 1, code="first = 'edited'")
    nbformat.write(nb, str(path))
    sidecar_path(path).unlink()
    refused = invoke("run", path)
    assert refused.exit_code == 2 and "does not verify" in refused.output


def test_run_prints_what_each_cell_computed_when_asked(tmp_path: Path) -> None:
    path = write_nb(tmp_path, "print('hello from cell 1')", "x = 6 * 7", "x", "raise ValueError('boom')")
    result = invoke("run", "--print-outputs", "--allow-errors", path)
    assert "[1]\nhello from cell 1\n" in result.output
    assert "[3]\n42\n" in result.output
    assert "[4]\nValueError: boom" in result.output
    assert "[2]" not in result.output  # a cell without output prints nothing


def test_the_notebooks_own_load_ext_stays_quiet_under_run(tmp_path: Path) -> None:
    path = record(tmp_path / "quiet.ipynb", "%load_ext nbgov", "x = 1")
    nb = nbformat.read(str(path), as_version=4)
    assert nb.cells[0].outputs == []
    executions = [e for e in sidecar_lines(path) if e["kind"] == "execution"]
    assert [e["body"]["code"] for e in executions] == ["%load_ext nbgov", "x = 1"]


def test_run_waits_for_the_kernels_exit_in_10_ms_steps_not_jupyter_clients_100(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A kernel's exit takes about 110-150 ms; polled every 100 ms it cost each run 200."""
    polls: list[float] = []
    wait = AsyncKernelManager._async_wait

    async def spying(self: AsyncKernelManager, pollinterval: float = 0.1) -> None:
        polls.append(pollinterval)
        await wait(self, pollinterval)

    monkeypatch.setattr(AsyncKernelManager, "_async_wait", spying)
    path = record(tmp_path / "analysis.ipynb", "a = 1")
    assert polls and set(polls) == {EXIT_POLL_S} and EXIT_POLL_S <= 0.01
    assert [e["body"]["code"] for e in sidecar_lines(path) if e["kind"] == "execution"] == ["a = 1"]


def test_run_writes_the_notebook_while_the_kernel_exits(tmp_path: Path, monkeypatch: Any) -> None:
    """Every cell has its reply (so its entry is in the sidecar): the metadata is merged and
    the notebook written during the kernel's shutdown, not after it; with the same content."""
    from nbgov.lineage import notebook_meta
    from nbgov.replay import runner

    events: list[str] = []
    finish = runner.PromptExitKernelManager._async_finish_shutdown
    write = notebook_meta.write_notebook

    async def finishing(self: Any, *args: Any, **kwargs: Any) -> None:
        events.append("kernel exit awaited")
        await finish(self, *args, **kwargs)
        events.append("kernel gone")

    def writing(*args: Any, **kwargs: Any) -> None:
        events.append("notebook written")
        write(*args, **kwargs)

    monkeypatch.setattr(runner.PromptExitKernelManager, "_async_finish_shutdown", finishing)
    monkeypatch.setattr(notebook_meta, "write_notebook", writing)
    path = record(tmp_path / "analysis.ipynb", "a = 1", "b = a + 1")
    assert events.index("notebook written") < events.index("kernel gone"), events
    assert metadata_entries(path) == sorted(sidecar_lines(path), key=lambda e: e["seq"])
    assert [e["body"]["code"] for e in sidecar_lines(path) if e["kind"] == "execution"] == ["a = 1", "b = a + 1"]

    events.clear()  # a failing cell ends the run on its reply: written during the exit too
    failing = write_nb(tmp_path, "ok = 1", "1 / 0", "never = 2", name="failing.ipynb")
    assert invoke("run", failing).exit_code == 1
    assert events.index("notebook written") < events.index("kernel gone"), events
    assert metadata_entries(failing) == sorted(sidecar_lines(failing), key=lambda e: e["seq"])


def _one_line_refusal(result: Any, name: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("nbgov: error: ") and f"{name}: is a symlink" in lines[0]
    assert "does not write through a symlink" in lines[0]


def test_run_never_writes_a_notebook_or_places_a_sidecar_through_a_symlink(tmp_path: Path) -> None:
    """`-o LINK` (to a file elsewhere, or dangling) and a linked notebook run in place are refused
    before any kernel runs: nothing is written where the link points, and no sidecar anywhere."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    source = write_nb(work, "x = 1", name="source.ipynb")
    before = source.read_text()
    elsewhere.mkdir()
    victim = elsewhere / "victim.txt"
    victim.write_text("ORIGINAL")
    (work / "to-file.ipynb").symlink_to(victim)
    (work / "dangling.ipynb").symlink_to(elsewhere / "created.ipynb")
    for link in ("to-file.ipynb", "dangling.ipynb"):
        _one_line_refusal(invoke("run", source, "-o", work / link), link)
    real = write_nb(elsewhere, "y = 2", name="real.ipynb")
    real_before = real.read_text()
    (work / "linked.ipynb").symlink_to(real)
    refused = invoke("run", work / "linked.ipynb")
    _one_line_refusal(refused, "linked.ipynb")
    assert "-o OUT.ipynb" in refused.output
    assert victim.read_text() == "ORIGINAL" and real.read_text() == real_before and source.read_text() == before
    assert sorted(p.name for p in elsewhere.iterdir()) == ["real.ipynb", "victim.txt"]
    assert not (work / ".nbgov").exists()


def test_a_linked_notebook_still_runs_into_a_new_file(tmp_path: Path) -> None:
    """Reading through a link is harmless: `run LINK -o OUT` runs it, and OUT's sidecar sits beside OUT."""
    real = write_nb(tmp_path / "elsewhere", "z = 3", name="real.ipynb")
    before = real.read_text()
    (tmp_path / "linked.ipynb").symlink_to(real)
    out = tmp_path / "ran.ipynb"
    result = invoke("run", tmp_path / "linked.ipynb", "-o", out)
    assert result.exit_code == 0, result.output
    assert real.read_text() == before and not (real.parent / ".nbgov").exists()
    assert [e["body"].get("code") for e in metadata_entries(out)] == [None, "z = 3"]
    assert sidecar_path(out).exists() and not out.is_symlink()


def test_a_cell_holding_a_lone_surrogate_is_refused_before_any_kernel_runs(tmp_path: Path) -> None:
    """A notebook's JSON can carry a lone surrogate as an escape; no kernel message can: one
    line naming the cell, exit 2, nothing run or written."""
    path = tmp_path / "odd.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("text"),
                nbformat.v4.new_code_cell("y = 2\nlabel = 'a\ud800'")]
    path.write_text(json.dumps(nb, ensure_ascii=True))
    before = path.read_text()
    refused = invoke("run", path)
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert refused.exit_code == 2 and len(lines) == 1 and lines[0].startswith("nbgov: error: will not run odd.ipynb")
    assert "code cell 2 has a source holding a lone surrogate (\\ud800 at line 2, column 11)" in refused.output
    assert path.read_text() == before and not (tmp_path / ".nbgov").exists()


def _second_kernelspec(folder: Path) -> Path:
    """A JUPYTER_PATH folder holding kernel spec 'nbgov-other': python3's, with an env variable
    that tells a cell which spec started its kernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3").to_dict()
    spec.update(display_name="Other Python", env={"NBGOV_TEST_KERNEL": "nbgov-other"})
    (folder / "kernels" / "nbgov-other").mkdir(parents=True)
    (folder / "kernels" / "nbgov-other" / "kernel.json").write_text(json.dumps(spec))
    return folder


def test_run_uses_the_kernel_it_is_given(tmp_path: Path, monkeypatch: Any) -> None:
    """`--kernel` was ignored: the notebook's python3 ran. The spec given runs the cells, the
    executed notebook names it (so replay uses it too), and an unknown one is refused in
    replay's words before anything runs or is written."""
    monkeypatch.setenv("JUPYTER_PATH", str(_second_kernelspec(tmp_path / "jupyter")))
    source = write_nb(tmp_path / "work", "import os\nk = os.environ.get('NBGOV_TEST_KERNEL')\nprint(k)",
                      name="source.ipynb")
    before = source.read_text()
    refused = invoke("run", source, "-o", tmp_path / "work" / "k.ipynb", "--kernel", "nonexist")
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert refused.exit_code == 2 and len(lines) == 1, refused.output
    assert lines[0].startswith("nbgov: error: kernel spec 'nonexist' not found (install it")
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["source.ipynb"]
    out = tmp_path / "work" / "other.ipynb"
    result = invoke("run", source, "-o", out, "--kernel", "nbgov-other")
    assert result.exit_code == 0, result.output
    ran = nbformat.read(str(out), as_version=4)
    assert ran.cells[0].outputs[0]["text"] == "nbgov-other\n"
    assert ran.metadata["kernelspec"] == {"name": "nbgov-other", "display_name": "Other Python",
                                          "language": "python"}
    assert source.read_text() == before
    replayed = invoke("replay", out)  # k is None on python3: a divergence, exit 1
    assert replayed.exit_code == 0 and "1 step reproduced" in replayed.output, replayed.output
    assert invoke("replay", out, "--kernel", "python3").exit_code == 1  # so the check above can fail


def test_run_never_writes_into_the_lineage_folder(tmp_path: Path) -> None:
    """`-o .nbgov/NAME` would replace the source's sidecar (or signatures) with a notebook:
    refused in one line before any kernel runs. Over the notebook itself stays allowed (in
    place is what run does without -o)."""
    source = record(tmp_path / "source.ipynb", "x = 1")
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    for name in (".nbgov/source.jsonl", ".nbgov/source.signatures/head.txt", ".nbgov/new.ipynb"):
        refused = invoke("run", source, "-o", tmp_path / name)
        lines = [line for line in refused.output.splitlines() if line.strip()]
        assert refused.exit_code == 2 and len(lines) == 1, refused.output
        assert lines[0] == (f"nbgov: error: will not write the executed notebook into {tmp_path / '.nbgov'}/, the "
                            "lineage folder of source.ipynb (its sidecar and signatures); choose another path")
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before
    in_place = invoke("run", source, "-o", tmp_path / "sub" / ".." / "source.ipynb")
    assert in_place.exit_code == 0, in_place.output
    assert [e["body"]["code"] for e in sidecar_lines(source) if e["kind"] == "execution"] == ["x = 1", "x = 1"]
