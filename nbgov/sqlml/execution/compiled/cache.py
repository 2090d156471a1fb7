"""Compiled kernels on disk, reused across kernels and sessions.

An artifact is ``<key>.so`` plus ``<key>.json`` (what was compiled, and a hash of the
library) in a directory only this user can write (``default_directory``). The key is
a hash of the exact model bytes compiled -- so the original model and each pruned
variant have their own -- with the code generator's version and the compiler's
identity.

Loading a library runs its code, so nothing is loaded that this user did not write:
the directory must be a real directory (not a symlink) owned by the user and closed
to others; an artifact must be a regular file owned by the user, and its content
must hash to what its metadata says (a truncated or corrupted file is rebuilt, never
loaded). Writes go to a fresh temporary file in the same directory, then are renamed
into place: concurrent writers each publish a complete file, a crash leaves no half
file under a real name, and a rename replaces a planted symlink instead of writing
through it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import xxhash

MAX_ARTIFACTS = 256  # least recently used ones beyond this are removed


class CacheError(Exception):
    """The cache directory or an artifact is unsafe or unusable; the message says why."""


@dataclass(frozen=True)
class ArtifactInfo:
    """The metadata stored next to a library."""

    key: str
    abi: int
    library_xxh3: str
    model_sha256: str
    trees: int
    nodes: int
    compile_seconds: float
    compiler: str
    created: float


def default_directory() -> Path:
    """``$NBGOV_CACHE_DIR/trees``, else ``$XDG_CACHE_HOME/nbgov/trees``, else ``~/.cache/nbgov/trees``."""
    own = os.environ.get("NBGOV_CACHE_DIR")
    if own:
        return Path(own) / "trees"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nbgov" / "trees"


def cache_key(model_sha256: str, generator: str, compiler_identity: str) -> str:
    """Stable across sessions: same model bytes, generator and compiler give the same key."""
    digest = xxhash.xxh3_128()
    for part in (model_sha256, generator, compiler_identity):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class ArtifactCache:
    """One cache directory; safe to share between processes."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()

    def prepare(self) -> Path:
        """Create the directory (mode 0700) and check it is safe to load from."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _check_private_dir(self.directory)
        return self.directory

    def library_path(self, key: str) -> Path:
        return self.directory / f"{key}.so"

    def lookup(self, key: str) -> tuple[Path, ArtifactInfo] | None:
        """The checked library for ``key``, or None when there is none (or it is unusable:
        an unusable artifact is removed so that it gets rebuilt)."""
        library, meta = self.library_path(key), self.directory / f"{key}.json"
        try:
            self.prepare()
        except (CacheError, OSError):
            return None  # an unsafe directory: never read (nor clean) anything in it
        try:
            info = ArtifactInfo(**json.loads(_read_private(meta)))
            content = _read_private(library)
        except FileNotFoundError:
            return None
        except (CacheError, ValueError, TypeError, OSError):
            self._discard(key)
            return None
        if info.key != key or xxhash.xxh3_128_hexdigest(content) != info.library_xxh3:
            self._discard(key)
            return None
        try:
            os.utime(meta)  # recently used: kept by the eviction below
        except OSError:
            pass
        return library, info

    def store(self, key: str, built_library: Path, info: ArtifactInfo) -> Path:
        """Publish a freshly built library (atomically) and its metadata; returns its path."""
        directory = self.prepare()
        content = built_library.read_bytes()
        info = ArtifactInfo(**{**asdict(info), "key": key, "library_xxh3": xxhash.xxh3_128_hexdigest(content)})
        _publish(directory, f"{key}.so", content, 0o700)
        _publish(directory, f"{key}.json", json.dumps(asdict(info), indent=1).encode(), 0o600)
        self._evict()
        return self.library_path(key)

    def _discard(self, key: str) -> None:
        for name in (f"{key}.json", f"{key}.so"):
            try:
                (self.directory / name).unlink()
            except OSError:
                pass

    def _evict(self) -> None:
        metas = sorted(self.directory.glob("*.json"), key=lambda p: _mtime(p))
        for stale in metas[: max(0, len(metas) - MAX_ARTIFACTS)]:
            self._discard(stale.stem)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _check_private_dir(directory: Path) -> None:
    info = directory.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"{directory} is not a plain directory")
    if info.st_uid != os.geteuid():
        raise CacheError(f"{directory} belongs to another user")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheError(f"{directory} is writable by other users")


def _read_private(path: Path) -> bytes:
    """Read a file that must be a regular file of ours, never following a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CacheError(f"{path.name} is not a regular file")
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CacheError(f"{path.name} is not private to this user")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _publish(directory: Path, name: str, content: bytes, mode: int) -> None:
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=f"-{name}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, directory / name)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise

