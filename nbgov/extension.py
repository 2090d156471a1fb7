"""`%load_ext nbgov`: wire the wings into one IPython shell, and take them out again.

Each wing exposes an ``install(shell, ...)`` returning an object with ``uninstall()``;
this module only orders them, so a failure in one does not leave the others
half-registered.
"""

from __future__ import annotations

from typing import Any, Protocol

_STATE_ATTR = "_nbgov_installed"


class Installed(Protocol):
    def uninstall(self) -> None: ...


def load_ipython_extension(shell: Any) -> None:
    """Register %%sqlml, %lineage, the lineage recorder and its frontend delivery."""
    if getattr(shell, _STATE_ATTR, None):
        return
    import nbgov.lineage.delivery as delivery
    import nbgov.lineage.recorder as recorder
    import nbgov.magics as magics
    import nbgov.widgets as widgets

    installed: list[Installed] = []
    try:
        rec = recorder.install(shell)
        installed.append(rec)
        installed.append(magics.install(shell, recorder=rec))
        installed.append(delivery.install(shell, recorder=rec))
        installed.append(widgets.install(shell, recorder=rec))
    except BaseException:
        for part in reversed(installed):
            part.uninstall()
        raise
    setattr(shell, _STATE_ATTR, installed)


def unload_ipython_extension(shell: Any) -> None:
    """Remove everything load_ipython_extension added, newest first."""
    installed: list[Installed] = getattr(shell, _STATE_ATTR, None) or []
    for part in reversed(installed):
        part.uninstall()
    setattr(shell, _STATE_ATTR, None)
