"""The sidecar: an append-only, hash-chained JSON Lines log next to the notebook.

Every entry carries the hash of the one before it, so an edit, a deletion, a
reorder or an insertion anywhere in the file is visible to ``verify_chain``.
An append is written and flushed to the OS before it returns (a killed kernel
loses nothing already recorded) while ``fsync`` runs on a background thread, off
the cell's latency. Several kernels may append to one file: each append holds an
exclusive ``flock`` and re-reads the tail under it, so the chain stays linear and
lines never interleave.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import xxhash

from nbgov.errors import LineageError

ZERO_HASH = "0" * 32
ENTRY_KINDS = ("session", "execution")
_TAIL_CHUNK = 64 * 1024
_FSYNC_IDLE_S = 10.0
_FSYNC_DEBOUNCE_S = 0.05


def canonical_json(value: Any) -> bytes:
    """The one serialisation that hashes are computed over (stable across writers)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: Mapping[str, Any]) -> str:
    """xxh3_128 hex of the canonical JSON of the entry without its 'hash' key."""
    unhashed = {k: v for k, v in entry.items() if k != "hash"}
    return xxhash.xxh3_128_hexdigest(canonical_json(unhashed))


def make_entry(seq: int, prev: str, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Build a chained entry (used by the store, and by callers keeping an in-memory chain)."""
    return _entry_and_line(seq, prev, kind, body)[0]


def _entry_and_line(seq: int, prev: str, kind: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The entry and its canonical JSON line, serialising the body only once.

    Canonical key order is body, hash, kind, prev, seq; the hashed text is the
    same object without "hash", so both are spliced from one body serialisation.
    """
    if kind not in ENTRY_KINDS:
        raise LineageError(f"unknown entry kind {kind!r}; expected one of {', '.join(ENTRY_KINDS)}")
    body_json = canonical_json(body)
    tail = canonical_json({"kind": kind, "prev": prev, "seq": seq})[1:]  # '"kind":...}'
    digest = xxhash.xxh3_128_hexdigest(b'{"body":' + body_json + b"," + tail)
    line = b'{"body":' + body_json + b',"hash":"' + digest.encode("ascii") + b'",' + tail + b"\n"
    entry: dict[str, Any] = {"seq": seq, "prev": prev, "kind": kind, "body": dict(body), "hash": digest}
    return entry, line


def sidecar_path(notebook_path: str | os.PathLike[str]) -> Path:
    """`dir/analysis.ipynb` -> `dir/.nbgov/analysis.jsonl`."""
    nb = Path(notebook_path)
    return nb.parent / ".nbgov" / f"{nb.stem}.jsonl"


@dataclass(frozen=True)
class ChainProblem:
    """One place where the log is not the untouched append-only chain."""

    seq: int | None
    message: str

    def __str__(self) -> str:
        return self.message


def _open_append(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, "r+b", buffering=0)


class SidecarStore:
    """Appends entries to one sidecar file and reads them back.

    ``opener`` returns the binary file object used for appending (must support
    write, flush, fileno, seek, read, truncate); tests pass a failing one to
    simulate a full disk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        opener: Callable[[Path], BinaryIO] = _open_append,
        background_fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self._opener = opener
        self._background_fsync = background_fsync
        self._fh: BinaryIO | None = None
        self._lock = threading.Lock()
        self._tail: tuple[int, int, str] | None = None  # (file size, last seq, last hash)
        self._fsync_wanted = threading.Event()
        self._close_requested = threading.Event()
        self._fsync_thread: threading.Thread | None = None
        self._closed = False

    # -- writing -----------------------------------------------------------
    def append(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Chain ``body`` after the file's last entry; return the entry as written."""
        if kind not in ENTRY_KINDS:
            raise LineageError(f"unknown entry kind {kind!r}; expected one of {', '.join(ENTRY_KINDS)}")
        with self._lock:
            fh = self._file()
            fd = fh.fileno()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if self._tail is not None and self._tail[0] == size:
                    _, last_seq, last_hash = self._tail
                    needs_newline = False
                else:
                    last_seq, last_hash, needs_newline = self._read_tail(fh, size)
                entry, line = _entry_and_line(last_seq + 1, last_hash, kind, body)
                if needs_newline:
                    line = b"\n" + line
                try:
                    _write_all(fh, line)
                    fh.flush()
                except BaseException:
                    self._tail = None
                    _truncate_quietly(fh, size)
                    raise
                self._tail = (size + len(line), entry["seq"], entry["hash"])
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        self._request_fsync()
        return entry

    def _file(self) -> BinaryIO:
        if self._closed:
            raise LineageError(f"sidecar {self.path} is closed")
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self._opener(self.path)
        return self._fh

    @staticmethod
    def _read_tail(fh: BinaryIO, size: int) -> tuple[int, str, bool]:
        """Last complete entry's (seq, hash), and whether a torn line must be fenced off."""
        if size == 0:
            return -1, ZERO_HASH, False
        fh.seek(size - 1)
        torn = fh.read(1) != b"\n"
        end = size
        buf = b""
        pos = size
        while pos > 0:
            start = max(0, pos - _TAIL_CHUNK)
            fh.seek(start)
            buf = fh.read(pos - start) + buf
            pos = start
            lines = buf[: end - pos].split(b"\n")
            # scan complete lines from the end for the newest parseable entry
            complete = lines[:-1] if torn else lines
            if pos > 0:
                complete = complete[1:]  # the first piece may be cut
            for raw in reversed(complete):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                    return int(obj["seq"]), str(obj["hash"]), torn
                except (ValueError, KeyError, TypeError):
                    continue
        return -1, ZERO_HASH, torn

    def _request_fsync(self) -> None:
        if not self._background_fsync:
            self.sync()
            return
        with self._lock:
            self._fsync_wanted.set()
            if self._fsync_thread is not None and self._fsync_thread.is_alive():
                return
            self._fsync_thread = threading.Thread(
                target=self._fsync_loop, name=f"nbgov-fsync:{self.path}", daemon=True
            )
            self._fsync_thread.start()

    def _fsync_loop(self) -> None:
        """fsync after appends; exits when idle so a forgotten store leaves no thread behind."""
        while not self._closed:
            if not self._fsync_wanted.wait(timeout=_FSYNC_IDLE_S):
                with self._lock:
                    if not self._fsync_wanted.is_set():
                        self._fsync_thread = None
                        return
                continue
            # let a burst of appends land first: one fsync for many, and no write
            # waits behind an fsync of the same file (it is already in the OS)
            self._close_requested.wait(_FSYNC_DEBOUNCE_S)
            self._fsync_wanted.clear()
            if self._closed:
                return
            self.sync()

    def sync(self) -> None:
        """fsync now (the background thread calls this; close() calls it too)."""
        fh = self._fh
        if fh is None:
            return
        try:
            os.fsync(fh.fileno())
        except (OSError, ValueError):
            pass  # durability is best effort; the data already reached the OS

    def close(self) -> None:
        """Flush to disk and stop the fsync thread."""
        with self._lock:
            self.sync()
            self._closed = True
            self._close_requested.set()
            self._fsync_wanted.set()
            fh, self._fh = self._fh, None
        if self._fsync_thread is not None:
            self._fsync_thread.join(timeout=5)
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass

    # -- reading -----------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        """Every entry in file order. A torn final line (a crash mid-append) is ignored;
        any other unparsable line raises LineageError naming it."""
        entries, problems = read_entries(self.path)
        if problems:
            raise LineageError(problems[0].message)
        return entries

    def verify(self) -> list[ChainProblem]:
        """Malformed lines and chain problems of the whole file."""
        entries, problems = read_entries(self.path)
        return problems + verify_chain(entries)


def read_entries(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[ChainProblem]]:
    """Parse a sidecar; returns the entries and a problem per malformed line."""
    p = Path(path)
    if not p.exists():
        return [], []
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise LineageError(f"cannot read lineage log {p}: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    torn_last = not data.endswith(b"\n") and bool(data)
    entries: list[dict[str, Any]] = []
    problems: list[ChainProblem] = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError:
            if torn_last and lineno == len(lines):
                continue  # an append cut short by a crash: never a complete entry
            problems.append(ChainProblem(None, f"line {lineno}: not a JSON entry (corrupted)"))
            continue
        entries.append(obj)
    return entries, problems


_REQUIRED = ("seq", "prev", "hash", "kind", "body")


def verify_chain(entries: Iterable[Mapping[str, Any]]) -> list[ChainProblem]:
    """Name every edit, deletion, reorder or insertion in a list of entries.

    Links are checked by sequence number (entry n's prev = entry n-1's hash), file
    order separately, so one swap or one deletion yields one clear message.
    """
    problems: list[ChainProblem] = []
    valid: list[Mapping[str, Any]] = []
    for pos, entry in enumerate(entries):
        missing = [k for k in _REQUIRED if k not in entry]
        if missing or not isinstance(entry.get("seq"), int) or isinstance(entry.get("seq"), bool):
            what = ", ".join(missing) or "an integer seq"
            problems.append(ChainProblem(None, f"entry at position {pos}: malformed (missing {what})"))
            continue
        valid.append(entry)
    by_seq: dict[int, str] = {}
    duplicated: set[int] = set()
    for entry in valid:
        seq = int(entry["seq"])
        if seq in by_seq:
            duplicated.add(seq)
        else:
            by_seq[seq] = str(entry["hash"])
    highest = -1
    seen: set[int] = set()
    for entry in valid:
        seq = int(entry["seq"])
        if entry_hash(entry) != entry["hash"]:
            problems.append(ChainProblem(seq, f"entry {seq}: hash mismatch (edited)"))
        if seq in seen:
            problems.append(ChainProblem(seq, f"entry {seq}: duplicate sequence number (inserted)"))
            continue
        seen.add(seq)
        if seq < highest:
            problems.append(ChainProblem(seq, f"entry {seq}: appears after entry {highest} (reordered)"))
        highest = max(highest, seq)
        if seq == 0:
            if entry["prev"] != ZERO_HASH:
                problems.append(ChainProblem(0, "entry 0: prev hash is not the start of a log (inserted)"))
        elif seq - 1 in by_seq and seq - 1 not in duplicated and entry["prev"] != by_seq[seq - 1]:
            problems.append(
                ChainProblem(seq, f"entry {seq}: prev hash does not match entry {seq - 1} (inserted or replaced)")
            )
    missing_seqs = [n for n in range(highest + 1) if n not in by_seq]
    for first, last in _runs(missing_seqs):
        gap = f"entry {first}" if first == last else f"entries {first}-{last}"
        problems.append(ChainProblem(first, f"{gap} missing (deleted)"))
    return problems


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _write_all(fh: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = fh.write(view)
        if n is None or n <= 0:
            raise OSError("short write to lineage log")
        view = view[n:]


def _truncate_quietly(fh: BinaryIO, size: int) -> None:
    """Undo a partial append so the log never holds a torn line."""
    try:
        fh.truncate(size)
    except (OSError, ValueError):
        pass
