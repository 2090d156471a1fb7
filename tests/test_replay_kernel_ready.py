"""nbgov's kernel clients are ready when the kernel is, on a real kernel: what the kernel
published while starting has been read, and nothing of a later request was taken."""

from __future__ import annotations

import asyncio
import queue
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from nbgov.replay.kernel import AsyncCellIdKernelClient, CellIdKernelClient
from tests.fixtures.kernel import IpcKernelManager, kernel_manager

STARTUP_LINES = 3


@pytest.fixture()
def chatty_kernel(tmp_path: Any) -> Iterator[tuple[KernelManager, CellIdKernelClient]]:
    """A kernel that prints while it starts (as a profile's start-up code may)."""
    km = kernel_manager()
    km.client_class = f"{CellIdKernelClient.__module__}.{CellIdKernelClient.__name__}"
    code = "; ".join(f"print('starting {i}')" for i in range(STARTUP_LINES))
    km.start_kernel(extra_arguments=[f"--IPKernelApp.exec_lines=[\"{code}\"]"], cwd=str(tmp_path),
                    stderr=subprocess.DEVNULL)
    kc = km.client()
    assert isinstance(kc, CellIdKernelClient)
    kc.start_channels()
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _iopub_now(kc: CellIdKernelClient) -> list[dict[str, Any]]:
    found = []
    while True:
        try:
            found.append(kc.get_iopub_msg(timeout=0.3))
        except queue.Empty:
            return found


def test_ready_means_the_start_up_output_is_read_and_nothing_later_was_taken(
    chatty_kernel: tuple[KernelManager, CellIdKernelClient],
) -> None:
    _, kc = chatty_kernel
    kc.wait_for_ready(timeout=60)
    left = _iopub_now(kc)
    assert left == [], [m["msg_type"] for m in left]  # the start-up output and its statuses were read

    msg_id = kc.execute("print('after')")
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"
    seen = [(m["msg_type"], m["content"].get("execution_state") or m["content"].get("text"))
            for m in _iopub_now(kc) if m["parent_header"].get("msg_id") == msg_id]
    assert seen[0] == ("status", "busy")  # the request's own messages, from its first
    assert ("stream", "after\n") in seen and seen[-1] == ("status", "idle")


def test_a_kernel_that_died_before_answering_is_reported(
    chatty_kernel: tuple[KernelManager, CellIdKernelClient],
) -> None:
    km, kc = chatty_kernel
    km.shutdown_kernel(now=True)
    with pytest.raises(RuntimeError, match="died"):
        kc.wait_for_ready(timeout=30)



class _CountingClient(AsyncCellIdKernelClient):
    idles_awaited = 0

    async def _idle_of(self, msg_id: str) -> bool:
        type(self).idles_awaited += 1
        return await super()._idle_of(msg_id)


def test_the_asynchronous_client_of_nbgov_run_waits_the_same_way(tmp_path: Any) -> None:
    """nbclient (`nbgov run`) calls ``wait_for_ready`` of AsyncCellIdKernelClient: the same
    wait, awaited; the first message read afterwards belongs to the next request."""

    async def start_and_run() -> list[str]:
        km = IpcKernelManager(kernel_name="python3")
        km.client_class = f"{__name__}.{_CountingClient.__name__}"
        await km.start_kernel(cwd=str(tmp_path), stderr=subprocess.DEVNULL)
        kc = km.client()
        assert isinstance(kc, _CountingClient)
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            assert kc.idles_awaited >= 1  # this wait ran, not jupyter_client's
            msg_id = kc.execute("x = 1")
            first = await kc.get_iopub_msg(timeout=30)
            assert first["parent_header"]["msg_id"] == msg_id, first["msg_type"]
            reply = await kc.get_shell_msg(timeout=30)
            return [first["msg_type"], first["content"].get("execution_state"), reply["content"]["status"]]
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    # on a thread of its own: an earlier test in this process may have left a loop running here
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, start_and_run()).result() == ["status", "busy", "ok"]


def _flaky_kernelspec(folder: Any, deaths: int) -> None:
    """Kernel spec 'nbgov-flaky': its process exits at once the first ``deaths`` times it is
    started (as a kernel whose port another process took), then runs python3's kernel."""
    import json
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3").to_dict()
    count = folder / "starts"
    launcher = folder / "launch.py"
    launcher.write_text(
        "import os, runpy, sys\n"
        f"count = {str(count)!r}\n"
        "n = int(open(count).read()) if os.path.exists(count) else 0\n"
        "open(count, 'w').write(str(n + 1))\n"
        f"if n < {deaths}:\n"
        "    sys.exit(1)\n"
        "sys.argv = ['ipykernel_launcher'] + sys.argv[1:]\n"
        "runpy.run_module('ipykernel_launcher', run_name='__main__')\n")
    spec.update(display_name="Flaky Python", argv=[sys.executable, str(launcher), "-f", "{connection_file}"])
    (folder / "kernels" / "nbgov-flaky").mkdir(parents=True)
    (folder / "kernels" / "nbgov-flaky" / "kernel.json").write_text(json.dumps(spec))


@pytest.mark.parametrize("deaths", [1, 2])
def test_a_kernel_that_dies_at_start_is_started_once_more(deaths: int, tmp_path: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """One death at start (another process took a port jupyter_client picked) costs a second
    start, not the run; a kernel that dies again is reported."""
    from nbgov.errors import ReplayError
    from nbgov.replay.kernel import RecordingKernel

    _flaky_kernelspec(tmp_path, deaths)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    kernel = RecordingKernel("nbgov-flaky", tmp_path, tmp_path / "k.ipynb")
    if deaths == 2:
        with pytest.raises(ReplayError, match="kernel 'nbgov-flaky' did not start: Kernel died before replying"):
            kernel.start()
        assert (tmp_path / "starts").read_text() == "2" and kernel.km is None
        return
    with kernel:
        assert kernel.execute("x = 1 + 1").status == "ok"
    assert (tmp_path / "starts").read_text() == "2"


@pytest.mark.parametrize("deaths", [1, 2])
def test_nbgov_run_starts_a_kernel_that_died_at_start_once_more(deaths: int, tmp_path: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`nbgov run`, as replay: one death at start costs a second start (the cells run, and
    their record verifies); a second death is one line naming the kernel, exit 2."""
    import nbformat

    from tests.fixtures.kernel import make_notebook
    from tests.fixtures.replay import invoke

    _flaky_kernelspec(tmp_path, deaths)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    notebook = tmp_path / "analysis.ipynb"
    nbformat.write(make_notebook("x = 20", "y = x + 1\nprint(y)"), notebook)
    result = invoke("run", notebook, "--kernel", "nbgov-flaky")
    assert (tmp_path / "starts").read_text() == "2"
    if deaths == 2:
        assert result.exit_code == 2, result.output
        assert "kernel 'nbgov-flaky' did not start: Kernel died before replying to kernel_info" in result.output
        assert not (tmp_path / ".nbgov" / "analysis.jsonl").exists()
        return
    assert result.exit_code == 0, result.output
    ran = nbformat.read(notebook, as_version=4)
    assert ran.cells[1].outputs[0]["text"] == "21\n"
    assert [cell.execution_count for cell in ran.cells] == [1, 2]
    assert "recorded 2 executions" in result.output
    assert invoke("verify", notebook).exit_code == 0
