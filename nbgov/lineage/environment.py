"""The kernel's environment: Python, platform, hash seed and versions of imported packages.

Versions come from a module's own ``__version__`` (read from its ``__dict__``, so a
stub or lazy module in ``sys.modules`` runs no code) or the installed distribution's
METADATA file, read with the ``open`` captured at import (a notebook that patches
``builtins.open`` is not called back). Scanning every installed distribution
(``packages_distributions``) costs half a second, so it is not done on the cell's path.
"""

from __future__ import annotations

import functools
import io
import os
import platform
import re
import sys
import types
from collections.abc import Iterable
from email.parser import HeaderParser
from pathlib import Path

_open = io.open  # captured at import, like files._open

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
        with _open("/proc/self/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {os.fsdecode(k): os.fsdecode(v) for k, v in pairs}


def python_version() -> str:
    return platform.python_version()


@functools.cache
def platform_string() -> str:
    """Taken once (``platform.platform`` opens files through the builtin ``open``)."""
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
    """Caches module -> version (None when not an installed distribution).

    Distributions are found by listing the ``sys.path`` folders for ``*.dist-info`` /
    ``*.egg-info`` (importlib.metadata would open zip files through ``io.open``), listed
    again only when a folder changed (a ``pip install`` during the session).
    """

    def __init__(self) -> None:
        self._cache: dict[str, str | None] = {}
        self._folders: dict[str, Path] = {}  # normalised distribution name -> metadata folder
        self._listed: dict[str, int] = {}  # sys.path folder -> mtime_ns when listed

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
            for dist in (_ALIASES.get(module), module):
                if dist and (found := self._distribution_version(dist)) is not None:
                    break
        self._cache[module] = found
        return found

    def versions(self, modules: Iterable[str]) -> dict[str, str]:
        """module -> version for the modules that have one."""
        out: dict[str, str] = {}
        for module in sorted(modules):
            v = self.version(module)
            if v is not None:
                out[module] = v
        return out

    def _distribution_version(self, name: str) -> str | None:
        key = _normalise(name)
        if key not in self._folders:
            self._list_path()
        folder = self._folders.get(key)
        if folder is None:
            return None
        for filename in ("METADATA", "PKG-INFO"):
            try:
                with _open(folder / filename, encoding="utf-8", errors="replace") as fh:
                    version = HeaderParser().parse(fh, headersonly=True).get("Version")
            except OSError:
                continue
            if isinstance(version, str) and version.strip():
                return version.strip()
        return None

    def _list_path(self) -> None:
        for entry in list(sys.path):
            if type(entry) is not str:
                continue
            folder = entry or "."
            try:
                mtime = os.stat(folder).st_mtime_ns
                if self._listed.get(folder) == mtime:
                    continue
                names = os.listdir(folder)
            except OSError:
                continue
            self._listed[folder] = mtime
            for item in names:
                if item.endswith((".dist-info", ".egg-info")):
                    dist = item.rsplit(".", 1)[0].split("-", 1)[0]
                    self._folders.setdefault(_normalise(dist), Path(folder) / item)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
