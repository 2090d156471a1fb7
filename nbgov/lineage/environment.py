"""The kernel's environment: Python, platform, hash seed and versions of imported packages.

Versions come from a module's own ``__version__`` (read from its ``__dict__``, so a
stub or lazy module in ``sys.modules`` runs no code) or the installed distribution's
metadata; scanning every installed distribution (``packages_distributions``) costs
half a second, so it is not done on the cell's path.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import platform
import sys
import types
from collections.abc import Iterable

_ALIASES = {
    "sklearn": "scikit-learn",
    "yaml": "PyYAML",
    "PIL": "Pillow",
    "cv2": "opencv-python",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "skimage": "scikit-image",
    "attr": "attrs",
    "google": "protobuf",
    "jwt": "PyJWT",
    "zmq": "pyzmq",
    "OpenSSL": "pyOpenSSL",
    "Crypto": "pycryptodome",
}


_MAX_SEED = 4_294_967_295


def kernel_hash_seed() -> str | None:
    """PYTHONHASHSEED as this interpreter started with it ("0".."4294967295"); None when
    hashing was randomised (unset or "random"): then set and dict order of strings differ
    between runs, and no later run can reproduce it.

    Read from the environment the process was started with (``/proc/self/environ``),
    not from ``os.environ``, which the notebook may have changed since.
    """
    if not sys.flags.hash_randomization:
        return "0"
    value = _initial_environment().get("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED"))
    if value is None or not value.strip().isdigit():
        return None
    seed = int(value.strip())
    return str(seed) if 0 < seed <= _MAX_SEED else None


def _initial_environment() -> dict[str, str]:
    try:
        with io.open("/proc/self/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {os.fsdecode(k): os.fsdecode(v) for k, v in pairs}


def python_version() -> str:
    return platform.python_version()


def platform_string() -> str:
    return platform.platform()


def top_level_modules() -> set[str]:
    """Imported top-level third-party modules (no stdlib, no private ones)."""
    stdlib: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
    return {
        name
        for name in list(sys.modules)
        if "." not in name and not name.startswith("_") and name not in stdlib and name not in sys.builtin_module_names
    }


class VersionLookup:
    """Caches module -> version (None when not an installed distribution)."""

    def __init__(self) -> None:
        self._cache: dict[str, str | None] = {}

    def version(self, module: str) -> str | None:
        if module in self._cache:
            return self._cache[module]
        found: str | None = None
        mod = sys.modules.get(module)
        candidate = None
        if type(mod) is types.ModuleType:  # a plain module's own dict; a stub or proxy is not read
            candidate = mod.__dict__.get("__version__")
        if type(candidate) is str:
            found = candidate
        else:
            for dist in (_ALIASES.get(module), module, module.replace("_", "-")):
                if not dist:
                    continue
                try:
                    found = importlib.metadata.version(dist)
                    break
                except Exception:
                    continue
        self._cache[module] = found
        return found

    def versions(self, modules: Iterable[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for module in sorted(modules):
            v = self.version(module)
            if v is not None:
                out[module] = v
        return out
