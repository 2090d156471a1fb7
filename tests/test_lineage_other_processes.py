"""Files another process opens in a watched folder while a cell runs are not the cell's.

A real kernel records; this test process plays the other process (a second notebook, the
Jupyter server's file browser, a tool writing a log): it is no child of the kernel. The
cell and the test take turns through flag files in a folder nothing watches, so each
step happens while the cell is running, in a known order, without sleeps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage.fanotify import open_fanotify
from nbgov.lineage.store import read_entries

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify and fanotify are Linux's")

WAIT_FOR = """
import os, time
def wait_for(flag):
    deadline = time.monotonic() + 60
    while not os.path.exists(flag):  # a stat: no open, nothing inotify reports
        if time.monotonic() > deadline:
            raise TimeoutError(flag)
        time.sleep(0.005)
"""


def _bodies(notebook: Path) -> list[dict[str, Any]]:
    entries, problems = read_entries(notebook.parent / ".nbgov" / f"{notebook.stem}.jsonl")
    assert problems == []
    return [e["body"] for e in entries if e["kind"] == "execution"]


def _files(body: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return sorted((f["path"], f["mode"], f["hash"]) for f in body["files"])


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    folder = tmp_path.parent / f"{tmp_path.name}-flags"  # beside the notebook's folder, not in it
    folder.mkdir()
    return folder


@pytest.fixture
def waiting(lineage_kernels: Any, tmp_path: Path) -> tuple[Any, Path]:
    """A recording kernel of ``nb.ipynb`` beside ``data.csv``, with ``wait_for`` defined."""
    notebook = tmp_path / "nb.ipynb"
    (tmp_path / "data.csv").write_text("a\n1\n")
    kernel = lineage_kernels(notebook)
    assert kernel.execute(WAIT_FOR)["content"]["status"] == "ok"
    return kernel, notebook


@pytest.fixture(autouse=True)
def fanotify_here() -> None:
    group = open_fanotify()
    assert group is not None, "fanotify is needed to tell processes apart (Linux 5.13+, not forbidden)"
    group.close()


def test_files_another_process_reads_and_writes_during_a_cell_are_not_the_cells(
        waiting: Any, tmp_path: Path, flags: Path) -> None:
    kernel, notebook = waiting
    kernel.kc.execute(f"open('mine.txt', 'w').write('m')\nos.mkdir({str(flags / 'running')!r})\n"
                      f"wait_for({str(flags / 'go')!r})")
    deadline_wait(flags / "running")
    (tmp_path / "foreign.log").write_text("another process wrote this")  # while the cell waits
    assert (tmp_path / "data.csv").read_text() == "a\n1\n"  # and read this
    (tmp_path / "nb.ipynb").write_text("{}")  # and saved the notebook, as the Jupyter server does: no one's data
    (tmp_path / ".~nb.ipynb").write_text("{}")
    (flags / "go").touch()
    assert kernel.kc.get_shell_msg(timeout=60)["content"]["status"] == "ok"
    body = _bodies(notebook)[-1]
    assert [(path, mode) for path, mode, _ in _files(body)] == [("mine.txt", "write")]
    assert body["notes"] == ["not recorded, opened only by another process while the cell ran (the cell started no "
                             f"process): {flags / 'go'}, data.csv, foreign.log"]  # the flag's folder is named too


def test_a_file_the_cell_read_and_another_process_changed_has_no_claimed_content(
        waiting: Any, tmp_path: Path, flags: Path) -> None:
    kernel, notebook = waiting
    kernel.kc.execute(
        "import pyarrow.csv\n"
        "table = pyarrow.csv.read_csv('data.csv')\n"  # native code reads it
        f"os.mkdir({str(flags / 'read')!r})\nwait_for({str(flags / 'go')!r})")
    deadline_wait(flags / "read")
    (tmp_path / "data.csv").write_text("a\n2\n")  # another process changes it after the read
    (flags / "go").touch()
    assert kernel.kc.get_shell_msg(timeout=60)["content"]["status"] == "ok"
    body = _bodies(notebook)[-1]
    assert _files(body) == [("data.csv", "read", None)]  # not the content it has now
    assert body["notes"] == [
        f"not recorded, opened only by another process while the cell ran (the cell started no process): {flags / 'go'}",
        "file data.csv was read by the cell and changed by another process while it ran: its content when read is "
        "not known"]


def test_a_file_the_cell_writes_through_a_process_it_starts_stays_the_cells(
        lineage_kernels: Any, tmp_path: Path) -> None:
    notebook = tmp_path / "nb.ipynb"
    kernel = lineage_kernels(notebook)
    reply = kernel.execute("import subprocess\nsubprocess.run(['sh', '-c', 'echo 1 > child.txt'], check=True)")
    assert reply["content"]["status"] == "ok"
    body = _bodies(notebook)[-1]
    assert [(path, mode) for path, mode, _ in _files(body)] == [("child.txt", "write")]
    assert ("recorded as the cell's, though another process opened them while it ran (a process the cell "
            "started is not told from others): child.txt") in body["notes"]


def test_a_cell_with_nothing_foreign_gets_no_note(lineage_kernels: Any, tmp_path: Path) -> None:
    notebook = tmp_path / "nb.ipynb"
    (tmp_path / "data.csv").write_text("a\n1\n")
    kernel = lineage_kernels(notebook)
    reply = kernel.execute("import pyarrow.csv\nt = pyarrow.csv.read_csv('data.csv')\nopen('out.txt', 'w').write('x')")
    assert reply["content"]["status"] == "ok"
    body = _bodies(notebook)[-1]
    assert [(path, mode) for path, mode, _ in _files(body)] == [("data.csv", "read"), ("out.txt", "write")]
    assert body["notes"] == []


def deadline_wait(flag: Path, seconds: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not flag.exists():
        assert time.monotonic() < deadline, f"the cell never reached {flag.name}"
        time.sleep(0.005)
