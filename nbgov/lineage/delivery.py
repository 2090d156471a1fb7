"""Deliver lineage entries from the kernel to every connected frontend (the Lineage sidebar).

One short-lived comm per entry, because a long-lived comm is missed by a frontend that
reloads; a frontend that connects late asks for the whole session log on the
"nbgov.lineage.sync" target instead. Outside a kernel (plain IPython) there is no
frontend to talk to, so nothing is registered.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, Protocol

ENTRY_TARGET = "nbgov.lineage"
SYNC_TARGET = "nbgov.lineage.sync"


class Recorder(Protocol):
    """The part of the lineage recorder that delivery relies on."""

    records: list[dict[str, Any]]
    session_entry: dict[str, Any] | None

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]: ...


def _warn(what: str, exc: BaseException) -> None:
    # Delivery must never break a user's cell: one warning line, no traceback.
    warnings.warn(f"nbgov: could not {what}: {type(exc).__name__}: {exc}", stacklevel=3)


def stale_map(recorder: Any, now_files: bool) -> dict[str, list[str]] | None:
    """Stale reasons per record id over the whole sidecar (all sessions), or None."""
    stale = getattr(recorder, "stale", None)
    if not callable(stale):
        return None
    try:
        return {str(k): [str(r) for r in v] for k, v in stale(now_files=now_files).items()}
    except Exception as exc:  # a stale check is advisory; never let it stop delivery
        _warn("compute stale cells", exc)
        return None


def session_stale_map(recorder: Any) -> dict[str, list[str]] | None:
    """Cheap stale check for live updates: this session's entries, kept current by the
    recorder one entry at a time; no file hashing and no sidecar read (the log reply on
    connect/reload does the full check)."""
    session_stale = getattr(recorder, "session_stale", None)
    if not callable(session_stale):
        return None
    try:
        return {str(k): [str(r) for r in v] for k, v in session_stale().items()}
    except Exception as exc:
        _warn("compute stale cells", exc)
        return None


class Delivery:
    """Kernel-side end of the sidebar comms for one shell; ``uninstall()`` removes it."""

    def __init__(self, recorder: Recorder, comm_manager: Any, create_comm: Callable[..., Any]) -> None:
        self._recorder = recorder
        self._comm_manager = comm_manager
        self._create_comm = create_comm
        self._unsubscribe: Callable[[], None] | None = recorder.subscribe(self.send_entry)
        comm_manager.register_target(SYNC_TARGET, self._on_sync_open)

    def send_entry(self, entry: Mapping[str, Any]) -> None:
        """Open a comm carrying one entry, and close it at once."""
        try:
            data: dict[str, Any] = {"type": "entry", "entry": dict(entry)}
            if entry.get("kind") == "execution":
                stale = session_stale_map(self._recorder)
                if stale is not None:
                    data["stale"] = stale
            comm = self._create_comm(target_name=ENTRY_TARGET, data=data)
            comm.close()
        except Exception as exc:
            _warn("send lineage to the frontend", exc)

    def log_message(self) -> dict[str, Any]:
        """The reply to a frontend's request_log: the whole session so far, plus stale flags."""
        entries = [dict(e) for e in self._recorder.records]
        message: dict[str, Any] = {
            "type": "log",
            "session": self._recorder.session_entry,
            "entries": entries,
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
        if not isinstance(data, Mapping) or data.get("type") != "request_log":
            return
        try:
            comm.send(self.log_message())
        except Exception as exc:
            _warn("send the lineage log to the frontend", exc)

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
    if comm_manager is None:
        return _NoDelivery()
    import comm as comm_module  # ipykernel patches create_comm to publish on its iopub socket

    return Delivery(recorder, comm_manager, comm_module.create_comm)
