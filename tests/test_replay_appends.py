"""An append reads what was there: replay of a notebook that appends to a file its folder
already holds (the recorded run's output, since replay runs in the folder as it is now)
names that file as the changed input, not "output differs though inputs match".

Recorded and replayed for real (``nbgov run``'s kernel, then ``replay``'s kernels).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xxhash

from nbgov.replay import compare
from nbgov.replay.replayer import DIVERGED, REPRODUCED, replay
from nbgov.replay.source import load_log
from tests.fixtures.replay import record, sidecar_lines


def _bodies(path: Path) -> list[dict]:
    return [e["body"] for e in sidecar_lines(path) if "code" in e.get("body", {})]


@pytest.mark.kernel
def test_appends_replayed_in_the_recorded_folder_blame_the_file_they_added_to(tmp_path: Path) -> None:
    (tmp_path / "py.txt").write_text("before\n")
    (tmp_path / "sh.txt").write_text("before\n")
    start = xxhash.xxh3_128_hexdigest(b"before\n")
    path = record(tmp_path / "nb.ipynb",
                  "with open('py.txt', 'a') as f:\n    f.write('more\\n')",
                  "import subprocess\nsubprocess.run('echo more >> sh.txt', shell=True, check=True)",
                  "open('fresh.txt', 'w').write('x')\nwith open('fresh.txt', 'a') as f:\n    f.write('y')")
    python, native, fresh = _bodies(path)
    # Python's open: what was there is read, as it was before the append
    assert [(f["path"], f["mode"], f["hash"]) for f in python["files"]] == [
        ("py.txt", "read", start), ("py.txt", "write", xxhash.xxh3_128_hexdigest(b"before\nmore\n"))]
    # native code (a shell's >>): the OS cannot tell the append from a rewrite; only the write
    assert [(f["path"], f["mode"]) for f in native["files"]] == [("sh.txt", "write")]
    assert {(f["path"], f["mode"]) for f in fresh["files"]} == {("fresh.txt", "write")}

    result = replay(load_log(path))
    py_step, sh_step, fresh_step = result.steps
    assert py_step.status == DIVERGED
    assert [(c.kind, c.name) for c in py_step.causes] == [(compare.INPUT_FILE_CHANGED, "py.txt")]
    assert sh_step.status == DIVERGED
    assert [(c.kind, c.name) for c in sh_step.causes] == [(compare.INPUT_FILE_CHANGED, "sh.txt")], \
        [c.text() for c in sh_step.causes]
    assert "added to" in sh_step.causes[0].detail
    # a file the step makes afresh, then appends to, reproduces: its own earlier write was read
    assert fresh_step.status == REPRODUCED, [c.text() for c in fresh_step.causes]
