"""A cell's record written just after the kernel's reply, before the kernel says idle.

Everything a record says is observed in ``post_run_cell``, before ipykernel sends the
cell's ``execute_reply``. Building the entry, appending it to the sidecar and telling the
frontend can wait until just after the reply, so the client reads the reply while the
kernel writes (about 0.15 ms of a 4 ms cell through a kernel). It still happens before
the kernel publishes ``idle`` for the request, which in the Jupyter protocol closes the
request's side effects (nbclient, jupyter_client's ``execute_interactive`` and JupyterLab
wait for it), and before the kernel takes any other message. ipykernel calls the kernel's
``post_handler_hook`` at exactly that point (after the handler returns, before output is
flushed and idle published); ``AfterReply`` wraps it on the kernel object.

Only an ``execute_request`` handled on the main thread is deferred: a cell run by a comm
handler or on a subshell thread writes its record before it returns, as outside a kernel.
Should a kernel ever not call the hook, the next cell finds the last record still kept:
it is written then, and from then on every record before its cell returns; the
interpreter's exit writes one still kept.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Any

HOOK = "post_handler_hook"


class AfterReply:
    """Work kept from a cell's ``post_run_cell`` until the kernel's ``post_handler_hook``."""

    def __init__(self, kernel: Any) -> None:
        self._kernel = kernel
        self._pending: Callable[[], None] | None = None
        self._working = True  # the kernel calls its hook after each request (False once it did not)
        self._replaced = kernel.__dict__.get(HOOK)  # an instance attribute set before us, if any
        self._original: Callable[[], None] = getattr(kernel, HOOK)
        setattr(kernel, HOOK, self._post_handler_hook)
        atexit.register(self.flush)

    @classmethod
    def attach(cls, shell: Any) -> AfterReply | None:
        """Wrap the hook of the kernel ``shell`` runs in; None outside an ipykernel."""
        kernel = getattr(shell, "kernel", None)
        if kernel is None or not callable(getattr(kernel, HOOK, None)) or not callable(
                getattr(kernel, "get_parent", None)) or not isinstance(getattr(kernel, "__dict__", None), dict):
            return None
        return cls(kernel)

    def defer(self, work: Callable[[], None]) -> bool:
        """Keep ``work`` for after the reply; False (the caller does it now) when the cell
        is not an execute request handled on the main thread."""
        self.flush()
        if not self._working or threading.current_thread() is not threading.main_thread() or not self._executing():
            return False
        self._pending = work
        return True

    def flush(self) -> None:
        """Do the kept work now (at uninstall, and at the interpreter's exit)."""
        work, self._pending = self._pending, None
        if work is not None:
            work()

    def before_cell(self) -> None:
        """A cell starts: a record still kept means the kernel did not call its hook after the
        last request; write it now, and write each record before its cell returns from now on."""
        if self._pending is not None:
            self._working = False
            self.flush()

    def detach(self) -> None:
        """Do what is kept, then put the kernel's hook back as it was (when it is still ours)."""
        self.flush()
        atexit.unregister(self.flush)
        if self._kernel.__dict__.get(HOOK) == self._post_handler_hook:
            if self._replaced is None:
                del self._kernel.__dict__[HOOK]
            else:
                setattr(self._kernel, HOOK, self._replaced)

    def _executing(self) -> bool:
        try:
            parent = self._kernel.get_parent("shell")
            return type(parent) is dict and parent.get("header", {}).get("msg_type") == "execute_request"
        except Exception:  # noqa: BLE001 - another kernel's API: write now
            return False

    def _post_handler_hook(self) -> None:
        try:
            if threading.current_thread() is threading.main_thread():
                self.flush()
        except BaseException:  # noqa: BLE001, S110 - an interrupt here: the cell has finished, and the
            pass  # record holds interrupts while it is written; the kernel must go on to idle
        finally:
            self._original()
