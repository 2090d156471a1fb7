"""The recorder inside real kernels: nbclient runs, SIGKILL mid-session, two kernels on one sidecar."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage.store import read_entries, verify_chain
from tests.fixtures.kernel import make_notebook
from tests.fixtures.lineage import INSTALL_RECORDER

pytestmark = pytest.mark.kernel


def _wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_a_notebook_run_by_nbclient_is_recorded_next_to_it(
    run_notebook: Any, tmp_path: Path, lineage_schema: Any
) -> None:
    nb = make_notebook(
        INSTALL_RECORDER,
        "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})",
        "df.to_csv('out.csv', index=False)",
        "again = pd.read_csv('out.csv')\ntotal = int(again['a'].sum())",
        "raise ValueError('bad input')",
    )
    path = tmp_path / "analysis.ipynb"
    run_notebook(nb, path=path, allow_errors=True)
    entries, problems = read_entries(tmp_path / ".nbgov" / "analysis.jsonl")
    assert problems == [] and verify_chain(entries) == []
    for entry in entries:
        lineage_schema.validate(entry)
    assert [e["kind"] for e in entries] == ["session"] + ["execution"] * 4
    session = entries[0]["body"]
    assert session["notebook"] == str(path) and session["packages"]["pandas"]
    bodies = [e["body"] for e in entries[1:]]
    assert [b["execution_count"] for b in bodies] == [2, 3, 4, 5]
    assert all(b["cell_id"] is None for b in bodies)  # nbclient sends no cell id
    assert [w["name"] for w in bodies[0]["writes"]] == ["df"]
    assert [(f["path"], f["mode"]) for f in bodies[1]["files"]] == [("out.csv", "write")]
    read = bodies[2]["files"][0]
    assert (read["path"], read["mode"], read["source"]) == ("out.csv", "read", bodies[1]["id"])
    assert read["hash"] == bodies[1]["files"][0]["hash"]
    assert bodies[2]["reads"] == []  # pd is a module: not data
    assert bodies[3]["status"] == "error" and bodies[3]["error"] == {"type": "ValueError", "message": "bad input"}



def test_reads_by_name_shared_buffers_and_mapped_file_writes_in_a_kernel(run_notebook: Any, tmp_path: Path) -> None:
    """What a cell reads through ``globals()``/``eval``, a write of a bytearray an array was
    made on, and a write through ``np.load(mmap_mode='r+')``, all recorded as a kernel runs
    them (inotify reports no event for the mapped write)."""
    import numpy as np

    np.save(tmp_path / "arr.npy", np.arange(4.0))
    nb = make_notebook(
        INSTALL_RECORDER,
        "import numpy as np\nthr = 2\nbuf = bytearray(4)\nv = np.frombuffer(buf, dtype=np.uint8)\n"
        "m = np.load('arr.npy', mmap_mode='r+')",
        "g = globals()['thr'] * 10\ne = eval('thr + 1')",
        "d = eval(input_text) if 'input_text' in globals() else None",
        "buf[0] = 7",
        "m[0] = 99\nm.flush()",
        "back = np.load('arr.npy')",
    )
    run_notebook(nb, path=tmp_path / "dyn.ipynb")
    entries, _ = read_entries(tmp_path / ".nbgov" / "dyn.jsonl")
    bodies = [e["body"] for e in entries if e["kind"] == "execution"]
    assert [r["name"] for r in bodies[1]["reads"]] == ["thr"] and bodies[1]["notes"] == []
    assert bodies[2]["notes"] == ["the cell reads names dynamically (eval): its inputs may be incomplete"]
    assert {w["name"] for w in bodies[3]["writes"]} == {"buf", "v"}
    mapped = [(f["path"], f["mode"], f["hash"]) for f in bodies[4]["files"]]
    assert mapped == [("arr.npy", "write", bodies[5]["files"][0]["hash"])]
    assert bodies[5]["files"][0]["source"] == bodies[4]["id"]

def test_sigkill_mid_session_loses_no_finished_cell(lineage_kernels: Any, tmp_path: Path) -> None:
    kernel = lineage_kernels(tmp_path / "crash.ipynb")
    sidecar = tmp_path / ".nbgov" / "crash.jsonl"
    for i in range(5):
        reply = kernel.execute(f"v{i} = {i} * 2")
        assert reply["content"]["status"] == "ok"
        count = reply["content"]["execution_count"]
        entries, _ = read_entries(sidecar)  # on disk as soon as the reply arrives
        assert entries[-1]["body"]["execution_count"] == count
    kernel.kc.execute("import time\nwhile True: time.sleep(0.1)")  # a cell still running...
    _wait_until(lambda: _busy(kernel))
    os.kill(kernel.pid, signal.SIGKILL)  # ...when the kernel dies
    _wait_until(lambda: kernel.km.provisioner.process.poll() is not None)
    entries, problems = read_entries(sidecar)
    assert problems == [] and verify_chain(entries) == []
    codes = [e["body"]["code"] for e in entries if e["kind"] == "execution"]
    assert codes == [f"v{i} = {i} * 2" for i in range(5)]


def _busy(kernel: Any) -> bool:
    try:
        msg = kernel.kc.get_iopub_msg(timeout=0.2)
    except Exception:
        return False
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == "busy"


def test_two_kernels_writing_one_sidecar_keep_one_valid_chain(lineage_kernels: Any, tmp_path: Path) -> None:
    notebook = tmp_path / "shared.ipynb"
    first, second = lineage_kernels(notebook), lineage_kernels(notebook)
    for i in range(25):  # queue cells on both kernels without waiting: they run concurrently
        for kernel in (first, second):
            kernel.kc.execute(f"x = {i}")
    for kernel in (first, second):
        for _ in range(25):
            reply = kernel.kc.get_shell_msg(timeout=120)
            assert reply["content"]["status"] == "ok"
    entries, problems = read_entries(tmp_path / ".nbgov" / "shared.jsonl")
    assert problems == [] and verify_chain(entries) == []
    sessions = [e["body"]["session"] for e in entries if e["kind"] == "session"]
    assert len(sessions) == 2 and len(set(sessions)) == 2
    for session in sessions:
        mine = [e for e in entries if e["kind"] == "execution" and e["body"]["session"] == session]
        assert [e["body"]["code"] for e in mine] == [f"x = {i}" for i in range(25)]


def test_a_record_that_cannot_be_saved_warns_in_the_cells_own_output(lineage_kernels: Any, tmp_path: Path) -> None:
    """A sidecar that cannot be written costs one warning line, in the cell's own output."""
    (tmp_path / ".nbgov" / "blocked.jsonl").mkdir(parents=True)  # the sidecar cannot be opened
    kernel = lineage_kernels(tmp_path / "blocked.ipynb")
    outputs: list[dict[str, Any]] = []
    reply = kernel.kc.execute_interactive("z = 1", timeout=60, output_hook=outputs.append)
    assert reply["content"]["status"] == "ok"
    stderr = [m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"]
    assert len(stderr) == 1 and stderr[0].startswith("nbgov: lineage not saved to ")
