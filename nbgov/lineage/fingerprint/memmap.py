"""Arrays mapped from a file (``np.memmap``, ``np.load(mmap_mode=...)``): hashed from the file.

Measured here: ``np.memmap(path, mode="w+", shape=...)`` of 2 GB returns in under
a millisecond, because the file is sparse; hashing its memory would fault in and
read 2 GB of zero pages (seconds). The file system knows which regions hold data
(``SEEK_DATA``/``SEEK_HOLE``, which also see pages dirtied through a shared map),
so only those blocks are read; whole blocks inside holes are zeros by definition
and enter the hash as the digest of a zero block. The digest is the same as for
the same bytes held in memory, and the record's ``reason`` says what was read.

A read-only map (``mode="r"``) can change only if the file does, so its block
digests are kept per file identity (device, inode, size, mtime, ctime) and a
second fingerprint reads nothing. Private maps (``mode="c"``) may differ from the
file: they are hashed from memory. The mapped file is identified through
``/proc/self/maps`` (device and inode), so a path renamed or replaced since the
map was made is never read in its place; a file shorter than its map (reading it
would crash with SIGBUS) is refused as weak.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from nbgov.lineage.fingerprint import static
from nbgov.lineage.fingerprint.encode import BLOCK, block_digests
from nbgov.lineage.fingerprint.walk import NotExact, Walk

_SHARED_MODES = frozenset({"r", "readonly", "r+", "readwrite", "w+", "write"})
_READ_ONLY_MODES = frozenset({"r", "readonly"})
_CACHE_ENTRIES = 64


@dataclass(frozen=True)
class Region:
    """Where an array's bytes live in a file, and how that file looks now."""

    path: str
    start: int  # file offset of the array's first byte
    read_only: bool
    identity: tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns


# file identity + region -> block digests, for read-only maps (no user objects held)
_digests: OrderedDict[tuple[Any, ...], tuple[bytes, int]] = OrderedDict()


def region(arr: Any) -> Region | None:
    """The file region behind a C-contiguous array mapped shared from a file, else None."""
    root, mapped = _mapped_root(arr)
    if root is None or not arr.flags.c_contiguous:
        return None
    read_state, _ = static.dict_reader(type(root))
    state = read_state(root) if read_state is not None else None
    if type(state) is not dict:
        return None
    path, offset, mode = _path_text(state.get("filename")), state.get("offset"), state.get("mode")
    if path is None or type(offset) is not int or mode not in _SHARED_MODES:
        return None  # private copy-on-write maps may differ from the file: hash memory
    root_address = root.__array_interface__["data"][0]
    start = offset + (arr.__array_interface__["data"][0] - root_address)
    mapping = _mapping_at(root_address)
    if mapping is None:
        return None
    try:
        fd = static.os_open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = static.os_fstat(fd)
    finally:
        static.os_close(fd)
    if (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) != mapping:
        return None  # the path now names another file than the one mapped
    if st.st_size < start + arr.nbytes:
        raise NotExact("the file under this memory map is shorter than the map (truncated): not readable")
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return Region(path, start, mode in _READ_ONLY_MODES, identity)


def hash_region(walk: Walk, arr: Any, where: Region) -> None:
    """Block digests of the array's bytes, reading only the blocks that hold data."""
    nbytes = arr.nbytes
    name = os.path.basename(where.path)
    key = (where.identity, where.start, nbytes)
    if where.read_only and key in _digests:
        digests, read = _digests[key]
        _digests.move_to_end(key)
        walk.digest_blocks(b"a", nbytes, digests)
        walk.notes.append(f"memory-mapped file {name}: read-only, file unchanged since hashed, not read again")
        return
    extents = _data_extents(where.path, where.identity, where.start, nbytes)
    zero = _zero_blocks(extents, where.start, nbytes)
    view = memoryview(arr.reshape(-1).view("u1"))
    digests = block_digests(view, zero)
    walk.digest_blocks(b"a", nbytes, digests)
    read = sum(min(BLOCK, nbytes - i * BLOCK) for i in range((nbytes + BLOCK - 1) // BLOCK) if not zero(i))
    if where.read_only:
        _digests[key] = (digests, read)
        while len(_digests) > _CACHE_ENTRIES:
            _digests.popitem(last=False)
    walk.notes.append(
        f"memory-mapped file {name}: hashed from the file, {read:,} of {nbytes:,} bytes read"
        + (", the rest are holes (zeros)" if read < nbytes else "")
    )


def _path_text(path: Any) -> str | None:
    """The mapped file's name: a str, or a path object of pathlib itself (not a subclass)."""
    if type(path) is str:
        return path
    if static.module_of(type(path)) == "pathlib" and static.verified(type(path)):
        text = static.library_class("pathlib", "PurePath").__str__(path)
        return text if type(text) is str else None
    return None


def _mapped_root(arr: Any) -> tuple[Any, Any]:
    """The ndarray created on an ``mmap.mmap`` (its base), and that map; (None, None) if none."""
    ndarray = static.library_class("numpy", "ndarray")
    mmap_type = static.library_class("mmap", "mmap")
    if ndarray is None or mmap_type is None:
        return None, None
    base_of = static.own_dict(ndarray)["base"].__get__
    node = arr
    while True:
        base = base_of(node)
        if base is None:
            return None, None
        if static.inherits(type(base), ndarray):
            node = base
            continue
        if type(base) is memoryview:  # np.frombuffer(mm): numpy's memoryview of the map
            base = static.buffer_owner(base)
            if static.inherits(type(base), ndarray):
                node = base
                continue
        return (node, base) if type(base) is mmap_type else (None, None)


def _mapping_at(address: int) -> tuple[int, int, int] | None:
    """(major, minor, inode) of the file mapped at ``address``, from /proc/self/maps."""
    found = _map_entry(address)
    return found[1] if found is not None else None


def _map_entry(address: int) -> tuple[bytes, tuple[int, int, int], bytes] | None:
    """The mapping at ``address`` in /proc/self/maps: its permissions (``rw-s``), the
    (major, minor, inode) of its file and the kernel's path of that file."""
    try:
        with static.builtin_open("/proc/self/maps", "rb") as maps:
            for line in maps:
                fields = line.rstrip(b"\n").split(maxsplit=5)
                if len(fields) < 6:
                    continue
                low, _, high = fields[0].partition(b"-")
                if int(low, 16) <= address < int(high, 16):
                    major, _, minor = fields[3].partition(b":")
                    return fields[1], (int(major, 16), int(minor, 16), int(fields[4])), fields[5]
    except (OSError, ValueError):
        return None
    return None


def written_file(value: Any) -> str | None:
    """The file a change of ``value``'s content wrote: an array mapped shared and writable
    from a file (``np.memmap``/``np.load(mmap_mode="r+")`` of mode r+ or w+, an array made on
    such an ``mmap.mmap``), whose writes reach the file with no system call a watcher sees.
    Its path is the memmap's ``filename`` while that still names the mapped file, else the
    kernel's name of it; None for anything else (read through numpy's own descriptors)."""
    ndarray = static.library_class("numpy", "ndarray")
    if ndarray is None or not static.inherits(type(value), ndarray):
        return None
    root, mapped = _mapped_root(value)
    if root is None:
        return None
    address = static.own_dict(ndarray)["__array_interface__"].__get__(root)["data"][0]
    entry = _map_entry(address) if type(address) is int else None
    if entry is None:
        return None
    perms, mapping, kernel_path = entry
    if perms[1:2] != b"w" or perms[3:4] != b"s":
        return None  # read-only or private (copy-on-write): the file is not written
    read_state, _ = static.dict_reader(type(root))
    state = read_state(root) if read_state is not None else None
    named = _path_text(state.get("filename")) if type(state) is dict else None
    for path in (named, os.fsdecode(kernel_path)):
        if path is not None and os.path.isabs(path) and _same_file(path, mapping):
            return path
    return None


def _same_file(path: str, mapping: tuple[int, int, int]) -> bool:
    """``path`` names the mapped file (not another one renamed or made in its place)."""
    try:
        st = static.os_stat(path)
    except (OSError, ValueError):
        return False
    return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) == mapping


def _data_extents(path: str, identity: tuple[int, ...], start: int, nbytes: int) -> list[tuple[int, int]]:
    """Data regions (begin, end) of the file overlapping [start, start + nbytes)."""
    end = start + nbytes
    fd = static.os_open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = static.os_fstat(fd)
        if (st.st_dev, st.st_ino) != identity[:2]:
            return [(start, end)]
        return static.data_extents(fd, start, end)
    finally:
        static.os_close(fd)


def _zero_blocks(extents: list[tuple[int, int]], start: int, nbytes: int) -> Any:
    """A predicate: block i of the array lies entirely in a hole."""
    ends = [e for _, e in extents]

    def zero(index: int) -> bool:
        low = start + index * BLOCK
        high = min(low + BLOCK, start + nbytes)
        at = bisect_left(ends, low + 1)  # first extent ending after low
        return at >= len(extents) or extents[at][0] >= high

    return zero
