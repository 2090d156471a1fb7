"""The `nbgov` command itself: every command documented, bad input gives one line and exit 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from nbgov.cli import cli
from nbgov.lineage.store import sidecar_path
from tests.fixtures.replay import invoke, record, recorded_copy, write_nb

REPO = Path(__file__).resolve().parents[1]
COMMANDS = sorted(cli.commands)


def test_the_contract_commands_exist() -> None:
    assert COMMANDS == ["export", "graph", "replay", "run", "show", "sign", "verify"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_is_in_the_readme(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert f"{command} [OPTIONS] NOTEBOOK" in result.output
    assert (cli.commands[command].help or "").strip()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"nbgov {command}\b", readme), f"README.md does not document `nbgov {command}`"


def one_line_error(result_output: str, exit_code: int) -> str:
    assert exit_code == 2, result_output
    lines = [ln for ln in result_output.splitlines() if ln.strip()]
    assert len(lines) == 1, result_output
    assert "Traceback" not in result_output
    assert lines[0].startswith("nbgov: error: ")
    return lines[0]


@pytest.mark.parametrize("command", [["show"], ["replay"], ["verify"], ["export", "--format", "prov"],
                                     ["graph"], ["run"]])
def test_not_a_notebook_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("just some text")
    result = invoke(command[0], junk, *command[1:])
    assert "not a Jupyter notebook" in one_line_error(result.output, result.exit_code)
    missing = invoke(command[0], tmp_path / "nope.ipynb", *command[1:])
    assert "no such file" in one_line_error(missing.output, missing.exit_code)


@pytest.mark.parametrize("command", ["show", "replay", "verify", "graph"])
def test_notebook_without_lineage_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    path = write_nb(tmp_path, "x = 1")
    result = invoke(command, path)
    assert "no lineage recorded" in one_line_error(result.output, result.exit_code)


@pytest.mark.kernel
def test_corrupted_sidecar_and_metadata_are_one_line_and_exit_2(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "x = 1", "y = 2")
    lines = sidecar_path(path).read_text().splitlines()
    sidecar_path(path).write_text("\n".join([lines[0], "{garbage", *lines[1:]]) + "\n")
    checked = invoke("verify", path)  # verify ran, and found corruption: exit 1
    assert checked.exit_code == 1 and "line 2: not a JSON entry (corrupted)" in checked.output
    for command in ("show", "replay", "export"):
        extra = ["--format", "openlineage"] if command == "export" else []
        result = invoke(command, path, *extra)
        assert "corrupted" in one_line_error(result.output, result.exit_code)
    sidecar_path(path).unlink()
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata["nbgov"] = {"schema": "someone.else/9", "log": "?"}
    nbformat.write(nb, str(path))
    result = invoke("show", path)
    assert "expected 'nbgov.notebook/2'" in one_line_error(result.output, result.exit_code)


@pytest.fixture(scope="module")
def recorded_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("recorded") / "nb.ipynb", "x = 1", "y = x + 1")


@pytest.mark.kernel
@pytest.mark.parametrize(("line", "says"), [
    ('{"note":"x"}', "line 4: not a log entry: missing seq, prev, hash, kind, body (corrupted)"),
    ('"\\ud800"', "line 4: not a JSON entry (corrupted)"),
    ('{"note":"\\udc00"}', "line 4: not a log entry: missing seq, prev, hash, kind, body (corrupted)"),
    ('{"seq":Infinity}', "line 4: Infinity is not a JSON number (forged or corrupted)"),
    ('{"seq":3,"prev":"","hash":"","kind":"execution","body":{"duration_s":NaN}}',
     "line 4: NaN is not a JSON number (forged or corrupted)"),
    ('{"pad":"' + "x" * 2_000_000 + '"}', "line 4: not a log entry: missing seq, prev, hash, kind, body"),
])
def test_a_line_that_is_json_but_not_an_entry_is_one_clear_line_for_every_reader(
        recorded_once: Path, tmp_path: Path, line: str, says: str) -> None:
    shutil.copytree(recorded_once.parent, tmp_path, dirs_exist_ok=True)
    path = tmp_path / recorded_once.name
    with open(sidecar_path(path), "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    checked = invoke("verify", path)  # verify ran, and found corruption: exit 1 naming the line
    assert checked.exit_code == 1 and f"sidecar: {says}" in " ".join(checked.output.split())
    for command in (["show"], ["show", "--json"], ["graph"], ["export", "--format", "prov"],
                    ["export", "--format", "openlineage"], ["replay"]):
        result = invoke(command[0], path, *command[1:])
        error = one_line_error(result.output, result.exit_code)
        assert "KeyError" not in error and "NBGOV_DEBUG" not in error
        assert (f"corrupted sidecar ({says}" if command != ["replay"] else says) in error


@pytest.mark.kernel
def test_missing_kernel_spec_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "x = 1")
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata["kernelspec"]["name"] = "no-such-kernel"
    nbformat.write(nb, str(path))
    for command in ("run", "replay"):
        result = invoke(command, path)
        assert "kernel spec 'no-such-kernel' not found" in one_line_error(result.output, result.exit_code)


@pytest.mark.parametrize(("args", "line"), [
    (["show", "--bogus", "NB"], "nbgov show: error: no such option '--bogus' (see nbgov show --help)"),
    (["show", "--jsn", "NB"], "nbgov show: error: no such option '--jsn'. Did you mean '--json'? "
                              "(see nbgov show --help)"),
    (["show"], "nbgov show: error: missing argument 'NOTEBOOK' (see nbgov show --help)"),
    (["export", "NB"], "nbgov export: error: missing option '--format'. Choose from: openlineage, "
                       "openlineage-json, prov (see nbgov export --help)"),
    (["export", "NB", "--format", "csv"], "nbgov export: error: invalid value for '--format': 'csv' is not one "
                                          "of 'openlineage', 'openlineage-json', 'prov' (see nbgov export --help)"),
    (["graph", "NB", "--format", "png"], "nbgov graph: error: invalid value for '--format': 'png' is not one of "
                                         "'dot', 'svg' (see nbgov graph --help)"),
    (["replay", "NB", "--until", "0"], "nbgov replay: error: invalid value for '--until': 0 is not in the range "
                                       "x>=1 (see nbgov replay --help)"),
    (["run", "NB", "--timeout"], "nbgov run: error: option '--timeout' requires an argument "
                                 "(see nbgov run --help)"),
    (["verify", "NB", "extra"], "nbgov verify: error: got unexpected extra argument (extra) "
                                "(see nbgov verify --help)"),
    (["shw", "NB"], "nbgov: error: no such command 'shw'. Did you mean 'show'? (see nbgov --help)"),
    (["--bogus"], "nbgov: error: no such option '--bogus' (see nbgov --help)"),
    (["show", "--\x1b[31m"], "nbgov show: error: no such option '--\\x1b[31m' (see nbgov show --help)"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_usage_mistakes_are_one_line_naming_what_was_wrong_and_exit_2(tmp_path: Path, args: list[str],
                                                                      line: str) -> None:
    """click printed its usage block (Usage, Try --help, a blank line, Error), four to seven
    lines; the project's rule for bad input is one line, exit 2, as for every other refusal."""
    path = write_nb(tmp_path, "x = 1")
    result = CliRunner().invoke(cli, [str(path) if a == "NB" else a for a in args], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and [ln for ln in result.stderr.splitlines() if ln.strip()] == [line]


def test_bare_nbgov_still_prints_the_help() -> None:
    result = invoke()
    assert "Usage: nbgov [OPTIONS] COMMAND [ARGS]..." in result.output
    assert all(command in result.output for command in COMMANDS)


def test_the_module_runs_as_a_real_process(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    junk = tmp_path / "bad.ipynb"
    junk.write_text("{ not json")
    done = subprocess.run([sys.executable, "-m", "nbgov.cli", "verify", str(junk)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("nbgov: error: ")
    usage = subprocess.run([sys.executable, "-m", "nbgov.cli", "show", "--bogus", str(junk)], capture_output=True,
                           text=True, env=env, timeout=120, check=False)
    assert usage.returncode == 2 and usage.stdout == ""
    assert usage.stderr == "nbgov show: error: no such option '--bogus' (see nbgov show --help)\n"
    helped = subprocess.run([sys.executable, "-m", "nbgov.cli", "--help"], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert helped.returncode == 0
    for command in COMMANDS:
        assert command in helped.stdout


@pytest.mark.kernel
def test_show_lists_the_log_as_a_table_and_as_json(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "alpha = 1", "beta = alpha + 1")
    table = invoke("show", path)
    assert table.exit_code == 0
    assert "alpha = 1" in table.output and "beta = alpha + 1" in table.output
    data = json.loads(invoke("show", path, "--json").output)
    kinds = [e["kind"] for e in data["entries"]]
    assert kinds == ["session", "execution", "execution"]
    assert data["entries"][2]["body"]["reads"][0]["name"] == "alpha"


@pytest.mark.timeout(60)  # before the fix each of these blocked forever on the FIFO
@pytest.mark.parametrize("command", [["show"], ["replay"], ["verify"], ["export", "--format", "prov"],
                                     ["graph"], ["run"], ["sign"]])
def test_a_fifo_as_the_notebook_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    fifo = tmp_path / "pipe.ipynb"
    os.mkfifo(fifo)
    result = invoke(command[0], fifo, *command[1:])
    assert "pipe.ipynb: is a FIFO (named pipe), not a file" in one_line_error(result.output, result.exit_code)


@pytest.mark.timeout(60)
def test_a_notebook_swapped_for_a_fifo_after_the_check_does_not_block(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The check and the open are two steps: the open must not block on what was swapped in."""
    from nbgov.lineage import user_files

    regular = write_nb(tmp_path, "x = 1")
    fifo = tmp_path / "swapped.ipynb"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(user_files.os, "stat", lambda path, *a, **k: real_stat(regular if path == fifo else path,
                                                                                *a, **k))
    result = invoke("show", fifo)
    assert "swapped.ipynb: is a FIFO (named pipe)" in one_line_error(result.output, result.exit_code)


@pytest.mark.kernel
def test_verify_calls_a_symlinked_nbgov_folder_tampered_as_it_does_a_symlinked_sidecar(tmp_path: Path) -> None:
    """Both mean the lineage would be read from wherever a link points: exit 1, the same words."""
    path = record(tmp_path / "work" / "nb.ipynb", "x = 1")
    elsewhere = tmp_path / "elsewhere"
    (path.parent / ".nbgov").rename(elsewhere)
    (path.parent / ".nbgov").symlink_to(elsewhere)
    folder = invoke("verify", path)
    assert folder.exit_code == 1, folder.output
    assert "✗ sidecar refused: " in folder.output and ".nbgov is a symlink" in folder.output
    assert "Traceback" not in folder.output and "nbgov: error" not in folder.output
    (path.parent / ".nbgov").unlink()
    (path.parent / ".nbgov").mkdir()
    sidecar_path(path).symlink_to(elsewhere / "nb.jsonl")
    file = invoke("verify", path)
    assert file.exit_code == 1, file.output
    assert "✗ sidecar refused: " in file.output and "nb.jsonl is a symlink" in file.output


@pytest.mark.kernel
def test_show_in_a_copied_folder_checks_the_copy_s_files(tmp_path: Path) -> None:
    """Stale flags from a saved log read recorded paths where replay does: in the copy."""
    import shutil

    notebook = recorded_copy(tmp_path, "alpha\nchanged\n")
    original, copy = tmp_path / "original", notebook.parent
    data = json.loads(invoke("show", copy / "nb.ipynb", "--json").output)
    assert [e["stale"] for e in data["executions"]] == [
        ["file in.txt changed on disk since read"], ["input text comes from stale [1]"]]
    # an untouched copy of a folder that is gone: nothing is stale
    shutil.rmtree(copy)
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    data = json.loads(invoke("show", copy / "nb.ipynb", "--json").output)
    assert [e["stale"] for e in data["executions"]] == [[], []]
