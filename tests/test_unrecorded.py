"""nbgov's own file work during a cell (its compiled-kernel cache, temporary build folders)
is not recorded as the cell's: a replay, finding the cache already filled, reported those
files "not written again"."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbgov.lineage import recorder
from nbgov.unrecorded import active, unrecorded


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    shell: Any = InteractiveShell()
    shell.user_ns["__session__"] = str(tmp_path / "n.ipynb")
    rec = recorder.install(shell)
    yield shell, rec
    rec.uninstall()


def _files(rec: Any) -> dict[str, str]:
    return {f.path: f.mode for f in rec.records[-1].body.files}


def test_file_work_inside_unrecorded_is_not_the_cells(recorded: Any) -> None:
    shell, rec = recorded
    shell.user_ns["unrecorded"] = unrecorded
    # outside the working folder, which is also watched natively (by folder, not by thread)
    shell.run_cell(
        "import os, tempfile, threading\n"
        "with unrecorded():\n"
        "    where = tempfile.mkdtemp()\n"
        "    open(os.path.join(where, 'cache.tmp'), 'w').write('x')\n"
        "    os.replace(os.path.join(where, 'cache.tmp'), os.path.join(where, 'cache.so'))\n"
        "def build():\n"
        "    with unrecorded():\n"
        "        open(os.path.join(tempfile.mkdtemp(), 'built.so'), 'w').write('y')\n"
        "t = threading.Thread(target=build); t.start(); t.join()\n"
        "open('mine.txt', 'w').write('z')\n"
        "open(os.path.join(tempfile.mkdtemp(), 'theirs.txt'), 'w').write('z')\n"
    ).raise_error()
    files = _files(rec)
    assert files.pop("mine.txt") == "write"
    assert [(Path(p).name, mode) for p, mode in files.items()] == [("theirs.txt", "write")]


def test_the_flag_belongs_to_one_thread_and_nests() -> None:
    seen: list[bool] = []
    with unrecorded():
        with unrecorded():
            assert active()
        assert active()
        other = threading.Thread(target=lambda: seen.append(active()))
        other.start()
        other.join()
    assert not active() and seen == [False]


def test_a_compile_of_a_tree_kernel_writes_nothing_into_the_record(recorded: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache published by the compile thread (a temporary file renamed into place)."""
    from nbgov.sqlml.execution.compiled.cache import ArtifactCache

    monkeypatch.setenv("NBGOV_CACHE_DIR", str(tmp_path / "cache"))
    shell, rec = recorded
    shell.user_ns["cache"] = ArtifactCache()
    shell.user_ns["unrecorded"] = unrecorded
    shell.run_cell(
        "import threading\n"
        "def publish():\n"
        "    with unrecorded():\n"
        "        d = cache.prepare(); (d / 'k.so').write_bytes(b'lib'); (d / 'k.so').unlink()\n"
        "t = threading.Thread(target=publish); t.start(); t.join()\n"
    ).raise_error()
    assert _files(rec) == {}
