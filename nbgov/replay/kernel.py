"""A real Jupyter kernel that records lineage, driven headless.

Two things a headless runner must do that nbclient does not: tell the kernel which
cell it is running (ipykernel reads ``metadata.cellId`` of the execute_request, as
JupyterLab sends it) and load nbgov without adding a cell to the notebook.
"""

from __future__ import annotations

import os
import queue
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import KernelManager
from jupyter_client.utils import ensure_async, run_sync

from nbgov.errors import ReplayError
from nbgov.lineage.delivery import HEADLESS_ENV

# Installed by a direct call rather than %load_ext, so the notebook's own
# `%load_ext nbgov` cell stays quiet instead of printing "already loaded".
LOAD_NBGOV = "import nbgov as _nbgov; _nbgov.load_ipython_extension(get_ipython()); del _nbgov"
INTERRUPT_GRACE_S = 10.0
_REPO_ROOT = Path(__file__).resolve().parents[2]


class _CellIdMixin:
    """execute_request carries ``next_cell_id`` in its metadata, as JupyterLab sends it."""

    next_cell_id: str | None = None
    allow_stdin: bool
    session: Any
    shell_channel: Any

    def execute(
        self, code: str, silent: bool = False, store_history: bool = True,
        user_expressions: dict[str, Any] | None = None, allow_stdin: bool | None = None,
        stop_on_error: bool = True,
    ) -> str:
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": self.allow_stdin if allow_stdin is None else allow_stdin,
            "stop_on_error": stop_on_error,
        }
        cell_id = None if silent else self.next_cell_id
        metadata = {"cellId": cell_id} if cell_id else {}
        msg = self.session.msg("execute_request", content, metadata=metadata)
        self.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])


class KernelDiedAtStart(RuntimeError):
    """The kernel process ended before it answered kernel_info."""


def not_started(kernel_name: str, why: Exception) -> ReplayError:
    """The one line `run` and `replay` give for a kernel that did not start."""
    return ReplayError(f"kernel {kernel_name!r} did not start: {why}")


class _PromptReadyMixin:
    """Ready as soon as the kernel is: jupyter_client's wait ends by listening to IOPub until
    it has been silent for 0.2 s (and reads the first IOPub message within 0.2 s to tell it is
    connected), which every `nbgov run` and every replayed session paid in full. Here the
    kernel is ready when it answered kernel_info on the shell channel and the idle status of
    that same request came over IOPub: IOPub is connected, and what the kernel published
    before it (its start-up) has been read. A request whose idle does not come within 0.2 s
    (IOPub not yet connected) is sent again, as jupyter_client does."""

    shell_channel: Any
    iopub_channel: Any

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        client: Any = self
        while True:
            msg_id = client.kernel_info()
            reply = await self._reply_to(msg_id, min(1.0, max(0.0, deadline - time.monotonic())))
            if reply is not None and await self._idle_of(msg_id):
                client._handle_kernel_info_reply(reply)
                return
            if not await client._async_is_alive():
                raise KernelDiedAtStart("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    async def _reply_to(self, msg_id: str, timeout: float) -> dict[str, Any] | None:
        """The shell reply to ``msg_id``, or None when none comes within ``timeout``."""
        end = time.monotonic() + timeout
        while True:
            try:
                msg: dict[str, Any] = await ensure_async(
                    self.shell_channel.get_msg(timeout=max(0.0, end - time.monotonic())))
            except queue.Empty:
                return None
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg

    async def _idle_of(self, msg_id: str) -> bool:
        """Reads IOPub up to the idle status of ``msg_id``; False when IOPub stays silent 0.2 s."""
        while True:
            try:
                msg = await ensure_async(self.iopub_channel.get_msg(timeout=IOPUB_CONNECT_S))
            except queue.Empty:
                return False
            if (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"
                    and msg.get("parent_header", {}).get("msg_id") == msg_id):
                return True


IOPUB_CONNECT_S = 0.2


class CellIdKernelClient(_PromptReadyMixin, _CellIdMixin, BlockingKernelClient):
    """A blocking client that tells the kernel which cell it runs (for replay)."""

    wait_for_ready = run_sync(_PromptReadyMixin._async_wait_for_ready)


class AsyncCellIdKernelClient(_PromptReadyMixin, _CellIdMixin, AsyncKernelClient):
    """The asynchronous twin of CellIdKernelClient, for nbclient (`nbgov run`)."""

    wait_for_ready = _PromptReadyMixin._async_wait_for_ready


FIXED_HASH_SEED = "0"


def kernel_env(session_name: Path, hash_seed: str = FIXED_HASH_SEED) -> dict[str, str]:
    """Environment for a recording kernel: JPY_SESSION_NAME as jupyter_server sets it, and
    NBGOV_HEADLESS (no frontend: no lineage messages), a fixed PYTHONHASHSEED, so set and dict-of-set orders (and the bytes of models
    converted from them) are the same in the run and in its replay.

    The folder holding the nbgov package goes on PYTHONPATH so a kernel can import
    nbgov even when it is run from a source checkout.
    """
    env = dict(os.environ)
    import nbgov

    package_root = str(Path(nbgov.__file__).resolve().parents[1])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_root not in paths:
        paths.insert(0, package_root)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["JPY_SESSION_NAME"] = str(session_name)
    env[HEADLESS_ENV] = "1"  # no sidebar listens: the kernel sends no lineage messages
    env["PYTHONHASHSEED"] = hash_seed
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def missing_kernel_message(name: str) -> str:
    return f"kernel spec {name!r} not found (install it, e.g. `python -m ipykernel install --user`)"


def kernelspec_metadata(name: str) -> dict[str, str]:
    """The notebook's ``kernelspec`` for kernel spec ``name``, as Jupyter writes it: a notebook
    run with ``--kernel`` then names the kernel it ran on (and replays on it). ReplayError, with
    replay's words, when there is no such spec: refused before anything runs or is written."""
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise ReplayError(missing_kernel_message(name)) from None
    return {"name": name, "display_name": spec.display_name, "language": spec.language}


# The kernel process's own stdout and stderr (fd 1 and 2) go nowhere: what a cell prints
# arrives over the kernel protocol (ipykernel forwards fd-level writes there too) and is
# shown escaped; inherited, a cell's os.write(1, ...) would put raw escape sequences and
# forged status lines into the reviewer's terminal or CI log.
KERNEL_STREAMS: dict[str, int] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


@dataclass
class Outcome:
    """What one execute_request did."""

    status: str  # "ok" | "error" | "timeout"
    ename: str | None = None
    evalue: str | None = None
    seconds: float = 0.0
    stdout: list[str] = field(default_factory=list)  # the stream text it printed
    displayed: bool = False  # it showed something besides its result (a plot, display())

    @property
    def showed(self) -> bool:
        """It printed or showed what has no fingerprint (all but its result, ``Out[n]``)."""
        return self.displayed or any(self.stdout)


_DISPLAYS = frozenset({"display_data", "update_display_data"})  # shown, with no fingerprint (a result has one)


class RecordingKernel:
    """One kernel session with nbgov loaded; the unit replay restarts between sessions."""

    def __init__(self, kernel_name: str, cwd: Path, session_name: Path,
                 startup_timeout: float = 60.0, hash_seed: str = FIXED_HASH_SEED) -> None:
        self.kernel_name = kernel_name
        self.hash_seed = hash_seed
        self.cwd = cwd
        self.session_name = session_name
        self.startup_timeout = startup_timeout
        self.km: KernelManager | None = None
        self.kc: CellIdKernelClient | None = None
        self._idle: str | None = None  # the last request whose idle status was read
        self._displayed = False  # the request being run showed something besides its result
        # the execution count the kernel gives the next cell (a fresh IPython kernel starts at 1;
        # silent requests take none); None when a cell's reply did not say
        self.next_count: int | None = 1
        self.numbering = True  # number_next can set the count (False after a kernel refused it)

    def __enter__(self) -> RecordingKernel:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown()

    def start(self) -> None:
        """Start the kernel and load nbgov silently (no cell, no record). A kernel that dies
        before answering is started once more: the ports jupyter_client picks are free when
        picked, and another process may take one before the kernel binds it (the kernel then
        exits at once); one that dies twice is reported."""
        for attempt in range(2):
            try:
                kc = self._launch()
                break
            except KernelDiedAtStart as exc:
                if attempt:
                    raise not_started(self.kernel_name, exc) from None
        self.kc = kc
        loaded = self.execute(LOAD_NBGOV, silent=True, timeout=self.startup_timeout)
        if loaded.status != "ok":
            self.shutdown()
            raise ReplayError(f"could not load nbgov in the kernel: {loaded.ename}: {loaded.evalue}")

    def _launch(self) -> CellIdKernelClient:
        """A started kernel's client, ready (raises KernelDiedAtStart, or ReplayError)."""
        km = KernelManager(kernel_name=self.kernel_name)
        km.client_class = f"{__name__}.CellIdKernelClient"
        try:
            km.start_kernel(env=kernel_env(self.session_name, self.hash_seed), cwd=str(self.cwd),
                            **KERNEL_STREAMS)
        except NoSuchKernel:
            raise ReplayError(missing_kernel_message(self.kernel_name)) from None
        self.km = km
        kc = km.client()
        assert isinstance(kc, CellIdKernelClient)
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=self.startup_timeout)
        except KernelDiedAtStart:
            kc.stop_channels()
            self.shutdown()
            raise
        except RuntimeError as exc:
            kc.stop_channels()
            self.shutdown()
            raise not_started(self.kernel_name, exc) from None
        return kc

    def execute(self, code: str, cell_id: str | None = None, timeout: float | None = None,
                silent: bool = False) -> Outcome:
        """Run code as a cell (store_history on) and wait for its reply, then for the
        request's idle status: the protocol's end of its side effects (output the kernel
        sends after the reply belongs to the cell). The recorder appends the record before
        the reply.

        Polls instead of blocking so a dead kernel or a timeout is noticed (a timed-out
        cell is interrupted).
        """
        if self.kc is None or self.km is None:
            raise ReplayError("kernel is not running")
        kc, km = self.kc, self.km
        kc.next_cell_id = cell_id
        stdout: list[str] = []
        self._displayed = False
        started = time.perf_counter()
        deadline = None if timeout is None else started + timeout
        msg_id = kc.execute(code, silent=silent, store_history=not silent, stop_on_error=False)
        if not silent:
            self.next_count = None  # known again from the reply
        reply = self._wait_reply(msg_id, deadline, stdout)
        if reply is None and km.is_alive():
            # interrupt, and give the cell a moment to unwind so the next step starts on an
            # idle kernel; one that does not come back counts as dead (replay restarts it)
            km.interrupt_kernel()
            late = self._wait_reply(msg_id, time.perf_counter() + INTERRUPT_GRACE_S, stdout)
            status = "timeout" if late is not None else "dead"
            return Outcome(status, "Timeout", f"no reply within {timeout}s",
                           time.perf_counter() - started, stdout, self._displayed)
        if reply is None:
            return Outcome("dead", "DeadKernel", "the kernel died", time.perf_counter() - started, stdout,
                           self._displayed)
        seconds = time.perf_counter() - started
        self._wait_idle(msg_id, time.perf_counter() + INTERRUPT_GRACE_S, stdout)
        content = reply["content"]
        count = content.get("execution_count")
        if not silent and type(count) is int:
            self.next_count = count + 1
        if content.get("status") == "ok":
            return Outcome("ok", seconds=seconds, stdout=stdout, displayed=self._displayed)
        return Outcome("error", content.get("ename"), content.get("evalue"), seconds, stdout, self._displayed)

    def number_next(self, count: int, timeout: float | None = None) -> bool:
        """Give the next cell execution count ``count``, as the recorded session did: its
        ``_3``, ``Out[3]`` and ``In[3]`` then mean what they meant there (a session whose
        first cells ran before nbgov recorded, or unrecorded, silent or nested executions, is
        numbered otherwise from 1). A silent request, so it is no cell and no record; False
        when the kernel did not take it."""
        if self.next_count == count:
            return True
        if not self.numbering:
            return False
        done = self.execute(f"__import__('IPython').get_ipython().execution_count = {int(count)}", silent=True,
                            timeout=timeout if timeout is not None else self.startup_timeout)
        if done.status != "ok":  # not an IPython kernel: its cells keep the kernel's numbers
            self.numbering = False
            return False
        self.next_count = count
        return True

    def _wait_reply(self, msg_id: str, deadline: float | None, stdout: list[str]) -> dict[str, Any] | None:
        """The execute_reply to msg_id; None at the deadline or when the kernel died."""
        assert self.kc is not None and self.km is not None
        while True:
            self._drain_iopub(msg_id, stdout)
            if deadline is not None and time.perf_counter() > deadline:
                return None
            try:
                reply: dict[str, Any] = self.kc.get_shell_msg(timeout=0.05)
            except queue.Empty:
                if not self.km.is_alive():
                    return None
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return reply

    def _wait_idle(self, msg_id: str, deadline: float, stdout: list[str]) -> None:
        """Read IOPub up to the idle status of msg_id (or the deadline, or a dead kernel)."""
        assert self.km is not None
        while self._idle != msg_id and not self._drain_iopub(msg_id, stdout, wait=0.05):
            if time.perf_counter() > deadline or not self.km.is_alive():
                return

    def _drain_iopub(self, msg_id: str, stdout: list[str], wait: float = 0) -> bool:
        """Read the IOPub messages waiting (``wait``: for the first one); True once the
        idle status of msg_id was among them."""
        assert self.kc is not None
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=wait)
            except queue.Empty:
                return False
            wait = 0
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                stdout.append(str(msg["content"].get("text", "")))
            elif msg["msg_type"] in _DISPLAYS:
                self._displayed = True
            elif msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                self._idle = msg_id  # (it may come before the reply is read)
                return True

    def shutdown(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        if self.km is not None:
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
            self.km = None

