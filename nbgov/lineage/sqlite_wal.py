"""A sqlite database with a write-ahead log, hashed as the file a full checkpoint would leave.

A commit in WAL mode lands in ``<db>-wal``; a checkpoint later copies it into the file, and
the WAL's bytes (random salts, frames of old transactions) say nothing about the content.
Hashing the database's *effective image* (pages 1..N, each from its latest committed frame,
else from the file; N from the last commit) gives the same hash before and after a
checkpoint, and the same as ``files.hash_file`` of the checkpointed file, while any change
in committed content still changes it. Frames count as sqlite's recovery counts them
(``src/wal.c``, ``walIndexRecover``/``walDecodeFrame``): salts equal to the header's, a
non-zero page number, a valid cumulative checksum, and only up to the last commit frame (a
transaction in progress is not content yet). A WAL that does not parse as one of this
database (bad magic, version, header checksum, page size, a partial frame) gives None: the
caller keeps its combined digest of the two files, never anything less exact.

Both files are read with the ``os`` functions captured at import, following symlinks as
``files.hash_file`` does; the database is never opened with sqlite (that would create a
``-shm`` or checkpoint the user's files). The checksums are summed with numpy when the
notebook has imported it (the real one, as first seen); nbgov never imports it into a
kernel (a ``numpy.py`` beside the notebook would run), so without it they are summed in
plain Python: the same sums, some 20-30 times slower (about 0.16 s for a 4 MB WAL).
"""

from __future__ import annotations

import functools
import operator
import os
import stat
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import xxhash

from nbgov.lineage.fingerprint import static
from nbgov.lineage.held_locks import close_keeping_locks, open_reading

_MAGIC = 0x377F0682  # | 1: checksums over big-endian words, else little-endian
_VERSION = 3007000
_WAL_HEADER = 32
_FRAME_HEADER = 24
_DB_HEADER = b"SQLite format 3\x00"
_BATCH_BYTES = 4 * 1024 * 1024  # frames read and checksummed at once
_READ_BYTES = 4 * 1024 * 1024  # database bytes hashed per read
_MASK = 0xFFFFFFFF
_FIELDS = struct.Struct(">6I")  # a frame header: page number, commit size, salts, checksums
_WORD = next(code for code in "IL" if array(code).itemsize == 4)


class NotWal(Exception):
    """The WAL is not one sqlite would recover for this database, or changed while read."""


@dataclass(frozen=True)
class Image:
    """Where each page of the effective image comes from."""

    page_size: int
    pages: int  # N: the database's size in pages after the last counted commit (0: no counted frame)
    frames: dict[int, int]  # page number -> offset in the WAL of its latest counted frame's page


def image_digest(abspath: str) -> str | None:
    """xxh3_128 of the database's effective image; None when its ``-wal`` is not a WAL of it."""
    h = xxhash.xxh3_128()
    try:
        for piece in _pieces(abspath):
            h.update(piece)
    except (NotWal, OSError, ValueError):
        return None
    return h.hexdigest()


def image_bytes(abspath: str) -> bytes | None:
    """The effective image's bytes (what ``image_digest`` hashes); None as there."""
    try:
        return b"".join(bytes(piece) for piece in _pieces(abspath))
    except (NotWal, OSError, ValueError):
        return None


def frame_checksums(frames: bytes, page_size: int, big_endian: bool, start: tuple[int, int]) -> list[tuple[int, int]]:
    """sqlite's cumulative checksum after each whole frame of ``frames`` (24-byte header and
    page), chained from ``start``: the header's first 8 bytes, then the page, in 32-bit words."""
    sums = _frame_sums(frames, page_size, big_endian)
    a00, a01, a10, a11 = _powers(page_size)[2]
    s0, s1 = start
    out: list[tuple[int, int]] = []
    for c0, c1 in sums:
        s0, s1 = (a00 * s0 + a01 * s1 + c0) & _MASK, (a10 * s0 + a11 * s1 + c1) & _MASK
        out.append((s0, s1))
    return out


def _pieces(abspath: str) -> Iterator[memoryview]:
    """The effective image's bytes in order, read from the database and its WAL."""
    db = open_reading(abspath, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        wal = open_reading(abspath + "-wal", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            before = _stamps(db, wal)
            image = _recover(db, wal, before[0][0], before[1][0])
            if not image.pages:
                yield from _range(db, 0, before[0][0])  # nothing committed in the WAL: the file as it is
            else:
                yield from _image(db, wal, image)
            if _stamps(db, wal) != before:
                raise NotWal("changed while read")
        finally:
            close_keeping_locks(wal)
    finally:
        close_keeping_locks(db)  # a database the notebook holds locked stays locked


def _stamps(db: int, wal: int) -> tuple[tuple[int, int, int], ...]:
    """(size, mtime, ctime) of both files, regular files only: a change while reading shows."""
    out = []
    for fd in (db, wal):
        st = static.os_fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotWal("not a regular file")
        out.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def _recover(db: int, wal: int, db_size: int, wal_size: int) -> Image:
    """The frames sqlite's recovery would count, as an ``Image``; raises ``NotWal``."""
    header = _read(wal, 0, _WAL_HEADER)
    magic, version, page_size = (int.from_bytes(header[i:i + 4], "big") for i in (0, 4, 8))
    if magic & ~1 != _MAGIC or version != _VERSION or page_size & (page_size - 1) or not 512 <= page_size <= 65536:
        raise NotWal("header")
    big_endian = bool(magic & 1)
    if _header_checksum(header[:24], big_endian) != (_u32(header, 24), _u32(header, 28)):
        raise NotWal("header checksum")  # sqlite would ignore the WAL; the combined digest stays
    frame_size = _FRAME_HEADER + page_size
    if (wal_size - _WAL_HEADER) % frame_size:
        raise NotWal("a partial frame")
    _check_database(db, db_size, page_size)
    salts = bytes(header[16:24])
    s0, s1 = _u32(header, 24), _u32(header, 28)  # the chain starts at the header's checksum
    a00, a01, a10, a11 = _powers(page_size)[2]
    counted: dict[int, int] = {}
    pending: dict[int, int] = {}
    pages = 0
    per_batch = max(1, _BATCH_BYTES // frame_size)
    offset = _WAL_HEADER
    while offset < wal_size:
        batch = _read(wal, offset, min(per_batch * frame_size, wal_size - offset))
        for i, (c0, c1) in enumerate(_frame_sums(batch, page_size, big_endian)):
            at = i * frame_size
            pgno, commit, _, _, k0, k1 = _FIELDS.unpack_from(batch, at)
            s0, s1 = (a00 * s0 + a01 * s1 + c0) & _MASK, (a10 * s0 + a11 * s1 + c1) & _MASK
            if batch[at + 8:at + 16] != salts or pgno == 0 or (s0, s1) != (k0, k1):
                return Image(page_size, pages, counted)  # sqlite's recovery stops at the first invalid frame
            pending[pgno] = offset + at + _FRAME_HEADER
            if commit:  # frames count up to the last commit: a transaction in progress is not content
                counted.update(pending)
                pending.clear()
                pages = commit
        offset += len(batch)
    return Image(page_size, pages, counted)


def _check_database(db: int, db_size: int, page_size: int) -> None:
    """The database file is a sqlite database of the WAL's page size (or still empty)."""
    if not db_size:
        return
    head = _read(db, 0, min(db_size, 100))
    if not head.startswith(_DB_HEADER) or len(head) < 18 or db_size % page_size:
        raise NotWal("not a database of this page size")
    size = int.from_bytes(head[16:18], "big")
    if (65536 if size == 1 else size) != page_size:
        raise NotWal("page size differs from the database's")


def _image(db: int, wal: int, image: Image) -> Iterator[memoryview]:
    """Pages 1..N: runs of pages from the database file; from the WAL, runs of pages whose
    frames follow one another (read at once, the frame headers between them left out)."""
    size = image.page_size
    frame_size = _FRAME_HEADER + size
    most = max(1, _READ_BYTES // frame_size)
    page = 1
    while page <= image.pages:
        at = image.frames.get(page)
        end = page + 1
        if at is not None:
            while end <= image.pages and end - page < most and image.frames.get(end) == at + (end - page) * frame_size:
                end += 1
            run = memoryview(_read(wal, at, (end - page - 1) * frame_size + size))
            for k in range(end - page):
                yield run[k * frame_size:k * frame_size + size]
        else:
            while end <= image.pages and end not in image.frames:
                end += 1
            yield from _range(db, (page - 1) * size, (end - 1) * size)
        page = end


def _range(fd: int, begin: int, end: int) -> Iterator[memoryview]:
    """Bytes [begin, end) of a file, a chunk at a time; raises ``NotWal`` when it is shorter
    (a page the image needs is neither in the WAL nor in the file)."""
    buf = bytearray(min(_READ_BYTES, max(end - begin, 0)))
    view = memoryview(buf)
    position = begin
    while position < end:
        step = min(_READ_BYTES, end - position)
        _fill(fd, view[:step], position)
        yield view[:step]
        position += step


def _read(fd: int, offset: int, length: int) -> bytearray:
    """Exactly ``length`` bytes at ``offset``, or ``NotWal``."""
    buf = bytearray(length)
    _fill(fd, memoryview(buf), offset)
    return buf


def _fill(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        n = static.os_preadv(fd, [view[done:]], offset + done)
        if not n:
            raise NotWal("shorter than its pages")
        done += n


def _u32(data: bytes | bytearray, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "big")


def _header_checksum(data: bytes | bytearray, big_endian: bool) -> tuple[int, int]:
    """sqlite's checksum of the WAL header's first 24 bytes, from (0, 0): six words, plain Python."""
    words = struct.unpack(">6I" if big_endian else "<6I", data)
    s0 = s1 = 0
    for x0, x1 in zip(words[0::2], words[1::2]):
        s0 = (s0 + x0 + s1) & _MASK
        s1 = (s1 + x1 + s0) & _MASK
    return s0, s1


def _frame_sums(frames: bytes | bytearray, page_size: int, big_endian: bool) -> list[tuple[int, int]]:
    """Per frame, what its words add to the checksum chain: c with s_after = A·s_before + c.

    One step on a pair of words (x0, x1) is s0 += x0 + s1; s1 += x1 + s0, i.e.
    s ← M·s + (x0, x0 + x1) with M = [[1, 1], [1, 2]], so over a frame's n pairs
    s_after = M^n·s_before + Σ_k M^(n-1-k)·u_k: a dot product of the frame's words with
    precomputed weights, mod 2^32 (numpy's uint32 arithmetic wraps there, as sqlite's does)."""
    width = (_FRAME_HEADER + page_size) // 4
    w0, w1, _ = _powers(page_size)
    numpy = _numpy()
    if numpy is not None:
        return _numpy_sums(numpy, frames, width, big_endian, w0, w1)
    words = array(_WORD)
    words.frombytes(frames)
    if big_endian != (sys.byteorder == "big"):
        words.byteswap()
    view = memoryview(words)
    mul = operator.mul
    return [(sum(map(mul, view[at:at + width], w0)) & _MASK, sum(map(mul, view[at:at + width], w1)) & _MASK)
            for at in range(0, len(words), width)]


def _numpy() -> dict[str, Any] | None:
    """The namespace of the real numpy, when the notebook imported it (as first seen)."""
    return static.loaded_module("numpy")


def _numpy_sums(numpy: dict[str, Any], frames: bytes | bytearray, width: int, big_endian: bool,
                w0: list[int], w1: list[int]) -> list[tuple[int, int]]:
    """``_frame_sums`` as one matrix product per batch, with the numpy the notebook imported."""
    uint32 = numpy["uint32"]
    words = numpy["frombuffer"](frames, dtype=">u4" if big_endian else "<u4").reshape(-1, width)
    weights = numpy["array"]([w0, w1], dtype=uint32).T
    sums: list[tuple[int, int]] = (words @ weights).tolist()
    return sums


@functools.lru_cache(maxsize=8)
def _powers(page_size: int) -> tuple[list[int], list[int], tuple[int, int, int, int]]:
    """(the weights of a frame's words in the checksum's two halves; M^pairs as four ints).

    Pair k of n (the header's first 8 bytes are pair 0, the page's pairs follow) is carried
    by M^(n-1-k): its x0 weighs (P00 + P01, P10 + P11), its x1 (P01, P11); the header's
    salts and checksums (words 2..5) weigh nothing."""
    pairs = 1 + page_size // 8
    powers: list[tuple[int, int, int, int]] = []
    p = (1, 0, 0, 1)
    for _ in range(pairs):
        powers.append(p)
        p = ((p[0] + p[1]) & _MASK, (p[0] + 2 * p[1]) & _MASK, (p[2] + p[3]) & _MASK, (p[2] + 2 * p[3]) & _MASK)
    width = (_FRAME_HEADER + page_size) // 4
    w0, w1 = [0] * width, [0] * width
    columns = [0, 1] + list(range(6, width))  # the words the checksum reads, in order
    for k in range(pairs):
        p00, p01, p10, p11 = powers[pairs - 1 - k]
        x0, x1 = columns[2 * k], columns[2 * k + 1]
        w0[x0], w1[x0] = (p00 + p01) & _MASK, (p10 + p11) & _MASK
        w0[x1], w1[x1] = p01, p11
    return w0, w1, p
