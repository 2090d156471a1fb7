"""`%load_ext nbgov`: wire the wings into one IPython shell, and take them out again.

Each wing exposes an ``install(shell, ...)`` returning an object with ``uninstall()``;
this module only orders them, so a failure in one does not leave the others
half-registered.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

_STATE_ATTR = "_nbgov_installed"
_READY = "%%sqlml and %lineage are ready."


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
    print(loaded_message(rec.notebook))


def loaded_message(notebook: str | None) -> str:
    """The one line `%load_ext nbgov` prints: recording started, and where the log goes."""
    if notebook is None:
        return (
            "nbgov: recording lineage; the log's place is decided at the first cell "
            f"(default {_display_path(Path(os.getcwd()) / '.nbgov' / 'untitled.jsonl')}). {_READY}"
        )
    from nbgov.lineage.store import sidecar_path

    return f"nbgov: recording lineage to {_display_path(sidecar_path(notebook))}. {_READY}"


def _display_path(path: Path) -> str:
    """Relative to the working folder when inside it (the usual case), else absolute."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(os.path.abspath(os.getcwd())))
    except ValueError:
        return str(path)


def unload_ipython_extension(shell: Any) -> None:
    """Remove everything load_ipython_extension added, newest first."""
    installed: list[Installed] = getattr(shell, _STATE_ATTR, None) or []
    for part in reversed(installed):
        part.uninstall()
    setattr(shell, _STATE_ATTR, None)
