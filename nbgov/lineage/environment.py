"""The kernel's environment: Python, platform and versions of imported packages.

Versions come from ``__version__`` or the installed distribution's metadata;
scanning every installed distribution (``packages_distributions``) costs half a
second, so it is not done on the cell's path.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import warnings
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
        try:
            with warnings.catch_warnings():  # some packages deprecate __version__ itself
                warnings.simplefilter("ignore")
                candidate = getattr(mod, "__version__", None)
        except Exception:
            candidate = None
        if isinstance(candidate, str):
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
