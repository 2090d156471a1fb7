"""`nbgov run`: execute a notebook headless on a real kernel with lineage recording on."""

from __future__ import annotations

import asyncio
import atexit
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import NoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from nbgov.errors import LineageError, ReplayError
from nbgov.lineage import notebook_meta
from nbgov.lineage.store import WRITABLE_KINDS, verify_chain, write_log
from nbgov.lineage.user_files import check_writable
from nbgov.replay.kernel import (
    KERNEL_STREAMS, LOAD_NBGOV, AsyncCellIdKernelClient, KernelDiedAtStart, kernel_env, kernelspec_metadata,
    missing_kernel_message, not_started,
)
from nbgov.replay.safe_text import for_terminal, where_surrogate
from nbgov.replay.source import read_sidecar, sidecar_file


class PromptExitKernelManager(AsyncKernelManager):
    """Notices within 10 ms that a kernel asked to shut down has exited. jupyter_client
    looks every 100 ms, so a kernel's usual exit (about 110-150 ms, mostly IPython's and
    the interpreter's own teardown) cost `nbgov run` 200 ms."""

    async def _async_finish_shutdown(
        self, waittime: float | None = None, pollinterval: float = 0.1, restart: bool = False
    ) -> None:
        await super()._async_finish_shutdown(waittime, min(pollinterval, EXIT_POLL_S), restart)


EXIT_POLL_S = 0.01


class RecordingNotebookClient(NotebookClient):
    """nbclient that loads nbgov before the first cell and sends each cell's id.

    ``on_settled``, when set, runs (once, on a worker thread) while the kernel shuts down,
    provided every cell sent got its reply: each reply comes after the recorder appended
    that cell's entry, so the sidecar is complete and the notebook's metadata can be
    written while the kernel exits (about 0.2 s) instead of after it. After a timeout or
    a dead kernel it is not called here (a cell may still be appending)."""

    def __init__(self, nb: nbformat.NotebookNode, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", PromptExitKernelManager)
        self.on_settled: Callable[[], None] | None = kwargs.pop("on_settled", None)
        self._start_kwargs: dict[str, Any] = {}  # what the kernel was started with
        super().__init__(nb, **kwargs)
        # the kernel announces each lineage entry on this comm; a headless run has no sidebar
        self.comm_open_handlers["nbgov.lineage"] = lambda msg: None
        self._settled = False  # every execute_request sent so far has its reply

    def create_kernel_manager(self) -> Any:
        km = super().create_kernel_manager()
        km.client_class = f"{AsyncCellIdKernelClient.__module__}.{AsyncCellIdKernelClient.__name__}"
        return km

    async def async_start_new_kernel(self, **kwargs: Any) -> None:
        self._start_kwargs = kwargs  # for a second start (``_ready_client``)
        await super().async_start_new_kernel(**kwargs)

    async def _ready_client(self) -> Any:
        """The started kernel's client, once it answered kernel_info. A kernel that died first
        (another process took a port jupyter_client picked before the kernel bound it) is
        started once more, by a new manager that picks new ports; a second death is raised."""
        on_settled = self.on_settled  # a failed start's cleanup drops it
        try:
            return await super().async_start_new_kernel_client()
        except KernelDiedAtStart:
            self.km = self.create_kernel_manager()
            await self.async_start_new_kernel(**self._start_kwargs)
            self.on_settled = on_settled
            return await super().async_start_new_kernel_client()

    async def async_start_new_kernel_client(self) -> Any:
        try:
            kc = await self._ready_client()
            assert isinstance(kc, AsyncCellIdKernelClient), "kernel client class not applied"
            reply = await kc.execute_interactive(LOAD_NBGOV, silent=True, timeout=self.startup_timeout,
                                                 output_hook=print_escaped)
            content = reply["content"]
            if content.get("status") != "ok":
                await self._async_cleanup_kernel()
                raise ReplayError(
                    f"could not load nbgov in the kernel: {content.get('ename')}: {content.get('evalue')}"
                )
        finally:
            if self.km is None:  # failed and cleaned up: nbclient's exit hook would fail without a manager
                atexit.unregister(self._cleanup_kernel)
        self._settled = True
        return kc

    async def async_execute_cell(
        self, cell: nbformat.NotebookNode, cell_index: int, execution_count: int | None = None,
        store_history: bool = True,
    ) -> nbformat.NotebookNode:
        if isinstance(self.kc, AsyncCellIdKernelClient):
            self.kc.next_cell_id = cell.get("id")
        self._settled = False
        try:
            executed = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except CellExecutionError:
            self._settled = True  # raised from the cell's reply: the kernel recorded it
            raise
        self._settled = True
        return executed

    async def _async_cleanup_kernel(self) -> None:
        settled, self.on_settled = self.on_settled if self._settled else None, None
        self._settled = False
        if settled is None:
            await super()._async_cleanup_kernel()
            return
        writing = asyncio.get_running_loop().run_in_executor(None, settled)
        try:
            await super()._async_cleanup_kernel()
        finally:
            await writing


def print_escaped(msg: dict[str, Any]) -> None:
    """Output hook for loading nbgov: its stream text (the "recording lineage to ..." line,
    which names the notebook) printed with escapes shown, never raw; jupyter_client's own
    hook writes it to the terminal as it came. An error is reported by the caller, in one line."""
    content = msg.get("content") or {}
    if msg.get("header", {}).get("msg_type") == "stream":
        stream = sys.stderr if content.get("name") == "stderr" else sys.stdout
        stream.write(for_terminal(str(content.get("text", ""))))


@dataclass
class RunSummary:
    """What `nbgov run` did, for the terminal summary."""

    output: Path
    sidecar: Path
    cells_run: int
    recorded: list[dict[str, Any]]
    seconds: float
    error: str | None


def restore_sidecar(nb: nbformat.NotebookNode, notebook: Path, sidecar: Path) -> None:
    """A notebook shared without its sidecar: rebuild the sidecar from the metadata (when its
    chain verifies) so the new records continue the same chain instead of starting another."""
    meta = notebook_meta.read_lineage(nb)
    if meta is None or not meta.entries() or sidecar.exists() or sidecar.is_symlink():
        return
    entries = meta.entries()
    problems = verify_chain(entries)
    if problems:
        raise LineageError(
            f"{notebook}: no sidecar, and the lineage in its metadata does not verify "
            f"({problems[0].message}); run it into a new notebook with -o OUT"
        )
    write_log(sidecar, entries)


def kernel_name_of(nb: nbformat.NotebookNode, override: str | None = None) -> str:
    if override:
        return override
    spec = nb.metadata.get("kernelspec") or {}
    return str(spec.get("name") or "python3")


def written_notebook(path: Path) -> Path:
    """Where the executed notebook goes, absolute: its folder resolved, its own name not.
    A symlink there is refused before anything runs (UserFileError), so neither the
    notebook nor the sidecar beside it lands where a link points."""
    check_writable(path, advice="; name another file with -o OUT.ipynb")
    return path.parent.resolve() / path.name


def check_sendable(nb: nbformat.NotebookNode, notebook: Path) -> None:
    """ReplayError naming the first code cell whose source or id holds a lone surrogate (a
    notebook's JSON can carry one as an escape): kernel messages are UTF-8, so no kernel can
    be sent it; refused before any kernel starts, not mid-run."""
    for number, cell in enumerate((c for c in nb.cells if c.get("cell_type") == "code"), start=1):
        for what, text in (("source", cell.get("source")), ("id", cell.get("id"))):
            where = where_surrogate(text) if type(text) is str else None
            if where is not None:
                raise ReplayError(f"will not run {notebook.name}: code cell {number} has a {what} holding a lone "
                                  f"surrogate ({where}), which is not UTF-8 text, so no kernel can be sent it")


def run_notebook(
    notebook: Path, output: Path | None = None, timeout: float = 600,
    kernel_name: str | None = None, allow_errors: bool = False,
) -> RunSummary:
    """Execute every code cell top to bottom, record lineage, write outputs + metadata."""
    nb = notebook_meta.read_notebook(notebook)
    check_sendable(nb, notebook)
    if kernel_name:
        nb.metadata["kernelspec"] = kernelspec_metadata(kernel_name)
    target = written_notebook(output or notebook)
    if target != notebook.resolve():
        # A new notebook gets its own sidecar; lineage of the source file does not apply to it.
        nb.metadata.pop(notebook_meta.META_KEY, None)
        for cell in nb.cells:
            cell.get("metadata", {}).pop(notebook_meta.META_KEY, None)
    sidecar = sidecar_file(target)
    restore_sidecar(nb, target, sidecar)
    before = len(read_sidecar(sidecar))
    name = kernel_name_of(nb, kernel_name)
    saved = _SaveOnce(nb, target, sidecar)
    client = RecordingNotebookClient(
        nb, timeout=int(timeout), kernel_name=name, allow_errors=allow_errors,
        resources={"metadata": {"path": str(notebook.resolve().parent)}}, on_settled=saved,
    )
    started = time.perf_counter()
    error: str | None = None
    try:
        client.execute(env=kernel_env(target), cwd=str(notebook.resolve().parent), **KERNEL_STREAMS)
    except NoSuchKernel:
        raise ReplayError(missing_kernel_message(name)) from None
    except KernelDiedAtStart as exc:
        raise not_started(name, exc) from None
    except CellExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    except (CellTimeoutError, DeadKernelError) as exc:
        error = str(exc).splitlines()[0]
    seconds = time.perf_counter() - started
    entries = saved.result()
    cells_run = sum(1 for c in nb.cells if c.cell_type == "code" and c.get("execution_count"))
    recorded = [e for e in entries[before:] if e["kind"] == "execution"]
    return RunSummary(target, sidecar, cells_run, recorded, seconds, error)


class _SaveOnce:
    """Reads the sidecar and writes the notebook with its metadata, once: while the kernel
    exits (``on_settled``) or, when that did not run, after it. ``result()`` gives the
    sidecar's entries, or raises what saving raised."""

    def __init__(self, nb: nbformat.NotebookNode, target: Path, sidecar: Path) -> None:
        self.nb, self.target, self.sidecar = nb, target, sidecar
        self._entries: list[dict[str, Any]] | None = None
        self._error: BaseException | None = None

    def __call__(self) -> None:
        if self._entries is not None or self._error is not None:
            return
        try:
            entries = read_sidecar(self.sidecar)
            # the notebook carries what the kernel recorded; the store's own repair entries stay
            # in the sidecar (verify reports them as not delivered to the notebook)
            recorded_kinds = [e for e in entries if e["kind"] in WRITABLE_KINDS]
            notebook_meta.merge_entries(self.nb, recorded_kinds, notebook_meta.sidecar_relpath(self.target))
            notebook_meta.write_notebook(self.nb, self.target)
        except BaseException as exc:  # noqa: BLE001 - re-raised by result(), on the caller's thread
            self._error = exc
            return
        self._entries = entries

    def result(self) -> list[dict[str, Any]]:
        self()
        if self._error is not None:
            raise self._error
        assert self._entries is not None
        return self._entries
