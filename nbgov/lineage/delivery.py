"""Kernel ⇄ frontend (the Lineage sidebar): entries out, catch-up and notebook moves in.

One comm opening per entry, because a long-lived comm is missed by a frontend that
reloads; each carries the entry, its compact line for the notebook file (built here,
once: ``compact``; the sidebar only places it) and the stale flags of the whole log as the one rule (``stale``)
judges them now, so the sidebar shows them as they are. The opening is the only message:
no comm object stands behind it in the kernel, and the frontend disposes of its end when
the data says ``once`` (an ipykernel comm object and its close message cost a cell about
0.2 ms, as much as the rest of the record's delivery). A frontend that connects late
asks for the whole session log on the "nbgov.lineage.sync" target; on the same target
it tells the kernel when the notebook was renamed or moved, so recording follows it.
Outside a kernel (plain IPython) there is no frontend, so nothing is registered; nor
in a kernel a headless runner started with ``NBGOV_HEADLESS=1`` (``nbgov run``,
``nbgov replay``): nobody would read the messages, and each costs the cell time.
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from nbgov.lineage.record import LogEntry
from nbgov.lineage.store import sidecar_path

HEADLESS_ENV = "NBGOV_HEADLESS"
ENTRY_TARGET = "nbgov.lineage"
SYNC_TARGET = "nbgov.lineage.sync"
MAX_PATH = 4096


class Recorder(Protocol):
    """The part of the lineage recorder that delivery relies on."""

    @property
    def records(self) -> list[LogEntry]: ...

    @property
    def session_entry(self) -> LogEntry | None: ...

    @property
    def notebook(self) -> str | None: ...

    def subscribe(self, callback: Callable[[LogEntry], None]) -> Callable[[], None]: ...

    def stale(self, now_files: bool = True) -> dict[str, list[str]]: ...

    def follow(self, notebook: str, orphan_sidecar: Path | None = None) -> None: ...


def _warn(what: str, exc: BaseException) -> None:
    # Delivery must never break a user's cell: one warning line, no traceback.
    warnings.warn(f"nbgov: could not {what}: {type(exc).__name__}: {exc}", stacklevel=3)


def stale_map(recorder: Recorder, now_files: bool) -> dict[str, list[str]] | None:
    """Stale flags over the whole sidecar (all sessions), or None when they cannot be had.
    Without ``now_files`` the answer is kept current per entry (no disk access)."""
    try:
        return recorder.stale(now_files=now_files)
    except Exception as exc:  # a stale check is advisory; never let it stop delivery
        _warn("compute stale cells", exc)
        return None


def moved_notebook(current: str | None, data: Mapping[str, Any], cwd: str) -> str | None:
    """The notebook's new absolute path from a frontend's ``notebook_path`` message, or None.

    The frontend knows server-relative paths, the kernel an absolute one: the move is
    applied relative to where the kernel's notebook is (``previous`` → ``path``), so no
    server root is needed. Only ``.ipynb`` paths without NUL or "~" are taken.
    """
    new, previous = data.get("path"), data.get("previous")
    if not _notebook_rel(new):
        return None
    new_rel = PurePosixPath(str(new))
    if current is None:
        return os.path.normpath(os.path.join(cwd, new_rel.name))
    if not _notebook_rel(previous):
        return None
    old_rel = PurePosixPath(str(previous))
    if old_rel.name != os.path.basename(current):
        return None  # the frontend speaks of another notebook than the one this kernel records
    base = os.path.dirname(current)
    moved = os.path.relpath(str(new_rel.parent), str(old_rel.parent)) if new_rel.parent != old_rel.parent else "."
    return os.path.normpath(os.path.join(base, moved, new_rel.name))


def _notebook_rel(value: Any) -> bool:
    return (
        type(value) is str
        and 0 < len(value) <= MAX_PATH
        and value.endswith(".ipynb")
        and "\0" not in value
        and not value.startswith("~")
    )


def orphan_sidecar(notebook: str, data: Mapping[str, Any]) -> Path | None:
    """The sidecar the notebook's metadata names, when it is not this notebook's own and its
    notebook is gone (renamed while no kernel ran): ``.nbgov/<name>.jsonl`` of the
    notebook's folder only, never a path elsewhere."""
    named = data.get("sidecar")
    if type(named) is not str or len(named) > MAX_PATH:
        return None
    rel = PurePosixPath(named)
    if len(rel.parts) != 2 or rel.parts[0] != ".nbgov" or rel.suffix != ".jsonl" or rel.name.startswith("."):
        return None
    folder = Path(notebook).parent
    candidate = folder / ".nbgov" / rel.name
    if candidate == sidecar_path(notebook) or (folder / f"{rel.stem}.ipynb").exists():
        return None
    return candidate


class Delivery:
    """Kernel-side end of the sidebar comms for one shell; ``uninstall()`` removes it."""

    def __init__(self, recorder: Recorder, comm_manager: Any, publish: Callable[[dict[str, Any]], None]) -> None:
        self._recorder = recorder
        self._comm_manager = comm_manager
        self._publish = publish
        from nbgov.lineage.compact import Compactor  # only with a frontend: a headless kernel never imports it

        self._compactor = Compactor()
        self._lines: dict[str, str] = {}  # entry hash -> compact line, built once per entry
        self._unsubscribe: Callable[[], None] | None = recorder.subscribe(self.send_entry)
        comm_manager.register_target(SYNC_TARGET, self._on_sync_open)

    def announce(self) -> None:
        """Tell connected frontends that recording started here (``%load_ext nbgov``), so one
        that knows a sidecar under the notebook's old name can say so before the first record."""
        try:
            self._publish({"type": "hello"})
        except Exception as exc:
            _warn("greet the frontend", exc)

    def send_entry(self, entry: LogEntry) -> None:
        """Open a comm carrying one entry (see the module docstring)."""
        try:
            data: dict[str, Any] = {"type": "entry", "entry": dict(entry.raw), "line": self.line(entry)}
            if entry.kind == "execution":
                stale = stale_map(self._recorder, now_files=False)
                if stale is not None:
                    data["stale"] = stale
            self._publish(data)
        except Exception as exc:
            _warn("send lineage to the frontend", exc)

    def line(self, entry: LogEntry) -> str:
        """The entry's compact line (entries reach this in log order, so references resolve)."""
        found = self._lines.get(entry.hash)
        if found is None:
            found = self._lines[entry.hash] = self._compactor.compact(entry.raw)
        return found

    def log_message(self) -> dict[str, Any]:
        """The reply to a frontend's request_log: the whole session so far, plus stale flags
        (files read compared with the disk now)."""
        session = self._recorder.session_entry
        records = self._recorder.records
        message: dict[str, Any] = {
            "type": "log",
            "session": dict(session.raw) if session else None,
            "entries": [dict(e.raw) for e in records],
            "lines": ([self.line(session)] if session else []) + [self.line(e) for e in records],
        }
        stale = stale_map(self._recorder, now_files=True)
        if stale is not None:
            message["stale"] = stale
        return message

    def _on_sync_open(self, comm: Any, open_msg: Mapping[str, Any]) -> None:
        def on_msg(msg: Mapping[str, Any]) -> None:
            self._answer(comm, msg.get("content", {}).get("data"))

        comm.on_msg(on_msg)
        self._answer(comm, open_msg.get("content", {}).get("data"))

    def _answer(self, comm: Any, data: Any) -> None:
        if not isinstance(data, Mapping):
            return
        try:
            if data.get("type") == "request_log":
                comm.send(self.log_message())
            elif data.get("type") == "notebook_path":
                comm.send(self.notebook_moved(data))
        except Exception as exc:
            _warn("answer the Lineage sidebar", exc)

    def notebook_moved(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Follow a renamed or moved notebook; the reply names where recording goes now."""
        current = self._recorder.notebook
        target = moved_notebook(current, data, os.getcwd())
        if target is not None and target != current:
            self._recorder.follow(target)
        notebook = self._recorder.notebook
        if notebook is not None:
            orphan = orphan_sidecar(notebook, data)
            if orphan is not None and orphan.exists():
                self._recorder.follow(notebook, orphan_sidecar=orphan)
        sidecar = f".nbgov/{Path(notebook).stem}.jsonl" if notebook else None
        return {"type": "notebook_path", "notebook": notebook, "sidecar": sidecar}

    def uninstall(self) -> None:
        """Stop delivering: unsubscribe from the recorder and drop the sync target."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            try:
                self._comm_manager.unregister_target(SYNC_TARGET, self._on_sync_open)
            except Exception:  # already gone (kernel shutting down)
                pass


class _NoDelivery:
    """Stands in when the shell is not a kernel's: nothing to deliver to."""

    def uninstall(self) -> None:
        """Nothing was installed."""


def install(shell: Any, recorder: Recorder) -> Delivery | _NoDelivery:
    """Start delivering ``recorder``'s entries to frontends if ``shell`` runs inside a kernel."""
    kernel = getattr(shell, "kernel", None)
    comm_manager = getattr(kernel, "comm_manager", None)
    publish = _iopub_opener(kernel)
    if comm_manager is None or publish is None or os.environ.get(HEADLESS_ENV) == "1":
        return _NoDelivery()
    delivery = Delivery(recorder, comm_manager, publish)
    delivery.announce()
    return delivery


def _iopub_opener(kernel: Any) -> Callable[[dict[str, Any]], None] | None:
    """Publish one ``comm_open`` on the entry target through the kernel's own session and
    IOPub socket (what ipykernel's comms publish with), marked ``once``: the frontend
    disposes of its end, so nothing in the kernel is opened or closed. None when the
    kernel is not an ipykernel one (which has them)."""
    session, iopub, parent = (getattr(kernel, name, None) for name in ("session", "iopub_socket", "get_parent"))
    if session is None or iopub is None or not callable(parent):
        return None

    def publish(data: dict[str, Any]) -> None:
        comm_id = uuid.uuid4().hex
        content = {"comm_id": comm_id, "target_name": ENTRY_TARGET, "data": {**data, "once": True},
                   "target_module": None}
        ident = f"comm-{comm_id}".encode("ascii")
        queue = _queue_behind_status(iopub)
        if queue is None:
            session.send(iopub, "comm_open", content, parent=parent(), ident=ident)
            return
        queue(session.serialize(session.msg("comm_open", content, parent=parent()), ident=[ident]))

    return publish


def _queue_behind_status(iopub: Any) -> Callable[[list[bytes]], None] | None:
    """Where ipykernel's IOPub thread keeps the messages it is to send, for the main thread
    to add one without waking the thread (None elsewhere: then the message is sent as any).

    Each message sent on IOPub wakes that thread, which then takes the GIL from the cell's
    thread while the recorder is still at work (measured in a kernel: the entry's send cost
    the cell 0.15 ms, a third of its delivery). Queued unwoken, the entry goes out with the
    idle status the kernel publishes at the end of the request that made it (entries and the
    greeting are published from a cell), so it still comes before that status, as frontends
    expect: the thread sends every queued message at each wake (ipykernel 6 and 7)."""
    io_thread = getattr(iopub, "io_thread", None)
    events, send = getattr(io_thread, "_events", None), getattr(io_thread, "_really_send", None)
    thread = getattr(io_thread, "thread", None)
    if (not isinstance(events, deque) or not callable(send) or not isinstance(thread, threading.Thread)
            or not thread.is_alive() or threading.current_thread() is not threading.main_thread()):
        return None
    return lambda parts: events.append(functools.partial(send, parts))
