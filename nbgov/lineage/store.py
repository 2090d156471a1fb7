"""The sidecar: an append-only, hash-chained JSON Lines log next to the notebook.

Every entry carries the hash of the one before it, so an edit, a deletion, a
reorder or an insertion anywhere in the file is visible to ``verify_chain``.
An append is written and flushed to the OS before it returns (a killed kernel
loses nothing already recorded) while ``fsync`` runs on a background thread, off
the cell's latency. Several kernels may append to one file: each append holds an
exclusive ``flock`` and re-reads the tail under it, so the chain stays linear and
lines never interleave.

The log lives in a folder other people control (a cloned repository), so it is
opened like a hostile path: ``.nbgov/`` and the file are opened without following
symlinks (``O_NOFOLLOW``, the file relative to the folder's descriptor, so nothing
can be swapped in between a check and the open), and only a regular file is used.
A line cut short by a crash is cut off by the next append, which first writes a
``repair`` entry saying what was removed, so the chain stays whole and says why.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import xxhash

from nbgov.errors import LineageError
from nbgov.lineage import gil_kept
from nbgov.lineage.strict_json import DuplicateKey, NonFinite, strict_json

ZERO_HASH = "0" * 32
WRITABLE_KINDS = ("session", "execution")
REPAIR = "repair"
ENTRY_KINDS = (*WRITABLE_KINDS, REPAIR)
_TAIL_CHUNK = 64 * 1024
_FSYNC_IDLE_S = 10.0
_FSYNC_DEBOUNCE_S = 0.05
_PREVIEW_CHARS = 120


class SidecarRefused(LineageError):
    """The sidecar path is a symlink, or not a regular file: nbgov will not use it."""


def canonical_json(value: Any) -> bytes:
    """The one serialisation that hashes are computed over (stable across writers).

    ``surrogatepass`` keeps a lone surrogate (legal in JSON escapes and Python
    strings, not in UTF-8) representable; readers decode lines the same way. NaN and
    infinities are refused (ValueError): they are not JSON, and readers refuse them.
    """
    return _canonical_text(value).encode("utf-8", "surrogatepass")


def _canonical_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

    The compiled encoder is made once: ``JSONEncoder.encode`` makes one (and a closure) per
    call, which costs more than encoding an entry. No circular check (a dict of ids per
    container): entries are trees built fresh by ``to_json``, and a cycle would still fail,
    as a RecursionError. ``allow_nan`` off: the log is strict JSON (``strict_json``)."""
    options = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False,
                               allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)  # (typeshed does not list it)
    if make is None:  # an interpreter without the compiled module
        return options.encode
    one_shot = make(None, options.default, json.encoder.encode_basestring, None, ":", ",", True, False, False)
    return lambda value: "".join(one_shot(value, 0))


_canonical_text = _canonical_encoder()
canonical_text = _canonical_text  # the canonical JSON as text (the notebook's compact lines use it too)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """xxh3_128 hex of the canonical JSON of the entry without its 'hash' key."""
    unhashed = {k: v for k, v in entry.items() if k != "hash"}
    return xxhash.xxh3_128_hexdigest(canonical_json(unhashed))


def make_entry(seq: int, prev: str, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Build a chained entry (used by the store, and by callers keeping an in-memory chain)."""
    return _entry_and_line(seq, prev, kind, body)[0]


def _check_kind(kind: str, allowed: tuple[str, ...] = WRITABLE_KINDS) -> None:
    if kind not in allowed:
        raise LineageError(f"unknown entry kind {kind!r}; expected one of {', '.join(allowed)}")


def _entry_and_line(seq: int, prev: str, kind: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The entry and its canonical JSON line, serialising the body only once.

    Canonical key order is body, hash, kind, prev, seq; the hashed text is the
    same object without "hash", so both are spliced from one body serialisation.
    """
    _check_kind(kind, ENTRY_KINDS)
    body_json = canonical_json(body)
    tail = _tail(kind, prev, seq)  # '"kind":...}'
    digest = xxhash.xxh3_128_hexdigest(b'{"body":' + body_json + b"," + tail)
    line = b'{"body":' + body_json + b',"hash":"' + digest.encode("ascii") + b'",' + tail + b"\n"
    entry: dict[str, Any] = {"seq": seq, "prev": prev, "kind": kind, "body": dict(body), "hash": digest}
    return entry, line


def _tail(kind: str, prev: str, seq: int) -> bytes:
    """``canonical_json({"kind": kind, "prev": prev, "seq": seq})`` without its "{", spelled
    out for the usual types (a hash read from a forged log may be anything)."""
    if type(kind) is str and type(prev) is str and type(seq) is int:
        text = f'"kind":{_canonical_text(kind)},"prev":{_canonical_text(prev)},"seq":{seq}}}'
        return text.encode("utf-8", "surrogatepass")
    return canonical_json({"kind": kind, "prev": prev, "seq": seq})[1:]


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


# -- opening without following links -------------------------------------------

def _refusal(path: Path, what: str) -> SidecarRefused:
    return SidecarRefused(f"{path} {what}; nbgov does not read or write lineage through it")


def _why_not_usable(path: Path) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "cannot be opened"
    if stat.S_ISLNK(mode):
        return f"is a symlink (to {os.readlink(path)!r})"
    if stat.S_ISDIR(mode):
        return "is a folder"
    return "is not a regular file" if not stat.S_ISREG(mode) else "cannot be opened"


def open_folder(folder: Path, create: bool) -> int | None:
    """A descriptor of ``folder`` (the sidecar's ``.nbgov``) opened without following a
    symlink; None when it does not exist and ``create`` is false."""
    if create:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(folder, 0o755)  # mkdir never follows a final symlink: EEXIST for a link
        except FileExistsError:
            pass
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refusal(folder, _why_not_usable(folder)) from None
        raise


def open_in_folder(path: Path, flags: int, create: bool, mode: int = 0o644) -> int | None:
    """Open ``path`` relative to its folder's descriptor, never through a symlink, and only
    if it is a regular file (a FIFO or device is refused before anything blocks on it)."""
    dir_fd = open_folder(path.parent, create)
    if dir_fd is None:
        return None
    try:
        extra = os.O_CREAT if create else 0
        fd = os.open(path.name, flags | extra | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode,
                     dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise _refusal(path, _why_not_usable(path)) from None
        raise
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (create and info.st_nlink > 1):
        os.close(fd)
        raise _refusal(path, "is a hard link to another file" if stat.S_ISREG(info.st_mode)
                       else "is not a regular file")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def _open_append(path: Path) -> BinaryIO:
    fd = open_in_folder(path, os.O_RDWR | os.O_APPEND, create=True)
    assert fd is not None  # O_CREAT: it exists now
    return os.fdopen(fd, "r+b", buffering=0)


def open_for_reading(path: Path) -> BinaryIO | None:
    """The sidecar opened for reading without following links; None when it is missing."""
    fd = open_in_folder(path, os.O_RDONLY, create=False)
    return None if fd is None else os.fdopen(fd, "rb")


@dataclass(frozen=True)
class TornTail:
    """The bytes after the last newline: an append a crash cut short."""

    size: int
    xxh3: str
    preview: str
    complete_entry: dict[str, Any] | None = None  # only the newline was lost


def _read_torn(fh: BinaryIO, start: int, end: int) -> TornTail:
    digest = xxhash.xxh3_128()
    head = b""
    pos = start
    fh.seek(start)
    while pos < end:
        chunk = fh.read(min(_TAIL_CHUNK, end - pos))
        if not chunk:
            break
        digest.update(chunk)
        if len(head) < 4 * _PREVIEW_CHARS:
            head += chunk[: 4 * _PREVIEW_CHARS]
        pos += len(chunk)
    complete = None
    if end - start <= 64 * 1024 * 1024:
        fh.seek(start)
        complete = parse_line(fh.read(end - start))
    preview = head.decode("utf-8", "replace")[:_PREVIEW_CHARS]
    return TornTail(end - start, digest.hexdigest(), preview, complete)


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One sidecar line as a JSON object, None when it is not one (garbage, too deep, cut,
    a key given twice, a number JSON does not have)."""
    try:
        obj = strict_json(raw.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def line_problem(raw: bytes) -> str:
    """Why ``parse_line`` refused a line, in a few words."""
    try:
        strict_json(raw.decode("utf-8", "surrogatepass"))
    except (DuplicateKey, NonFinite) as exc:
        return f"{exc} (forged or corrupted)"
    except (ValueError, RecursionError):
        pass
    return "not a JSON entry (corrupted)"


def read_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """One sidecar line as a log entry, or (None, why it is not one).

    The one check every reader of the log goes through (``read_log``): strict JSON, an
    object, and an entry's shape (``malformation``), so no reader ever meets a line that
    is JSON but not an entry."""
    entry = parse_line(raw)
    if entry is None:
        return None, line_problem(raw)
    wrong = malformation(entry)
    if wrong is not None:
        return None, f"not a log entry: {wrong} (corrupted)"
    return entry, ""


def _last_entry_before(fh: BinaryIO, end: int) -> tuple[int, str]:
    """(seq, hash) of the newest parseable entry in the file's first ``end`` bytes."""
    buf = b""
    pos = end
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        fh.seek(start)
        buf = fh.read(pos - start) + buf
        pos = start
        lines = buf.split(b"\n")
        complete, buf = (lines[1:], lines[0]) if pos > 0 else (lines, b"")
        for raw in reversed(complete):
            entry = parse_line(raw) if raw.strip() else None
            if entry is not None and isinstance(entry.get("seq"), int) and isinstance(entry.get("hash"), str):
                return int(entry["seq"]), str(entry["hash"])
    return -1, ZERO_HASH


def _last_newline(fh: BinaryIO, size: int) -> int:
    """Offset just after the last newline (0 when the file has none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        fh.seek(start)
        chunk = fh.read(pos - start)
        at = chunk.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        pos = start
    return 0


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
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file ``_fh`` appends to
        self.notices: list[str] = []  # what the user should know about the file (the journal says it)
        self._lock = threading.Lock()
        self._tail: tuple[int, int, str] | None = None  # (file size, last seq, last hash)
        self._fsync_wanted = threading.Event()
        self._close_requested = threading.Event()
        self._fsync_thread: threading.Thread | None = None
        self._closed = False

    # -- writing -----------------------------------------------------------
    def append(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Chain ``body`` after the file's last entry; return the entry as written."""
        _check_kind(kind)
        with self._lock:
            fh = self._named_file()
            fd = fh.fileno()
            gil_kept.lock(fd, fcntl.LOCK_EX)
            try:
                size = gil_kept.size(fd)
                if self._tail is not None and self._tail[0] == size:
                    _, last_seq, last_hash = self._tail
                    prefix = b""
                else:
                    size, last_seq, last_hash, prefix = self._mend_tail(fh, size)
                entry, line = _entry_and_line(last_seq + 1, last_hash, kind, body)
                try:
                    if type(fh) is io.FileIO:  # the store's own file: written keeping the GIL
                        gil_kept.write_all(fd, prefix + line)
                    else:
                        _write_all(fh, prefix + line)
                        fh.flush()
                except BaseException:
                    self._tail = None
                    _truncate_quietly(fh, size)
                    raise
                self._tail = (size + len(prefix) + len(line), entry["seq"], entry["hash"])
            finally:
                gil_kept.lock(fd, fcntl.LOCK_UN)
        self._request_fsync()
        return entry

    def _file(self) -> BinaryIO:
        if self._closed:
            raise LineageError(f"sidecar {self.path} is closed")
        if self._fh is None:
            folder = open_folder(self.path.parent, create=True)  # refused here for any opener
            if folder is not None:
                os.close(folder)
            self._fh = self._opener(self.path)
        return self._fh

    def _named_file(self) -> BinaryIO:
        """The open file, if the sidecar's path still names it; else the file there now.

        A sidecar removed while the kernel records (``rm -r .nbgov``, ``git clean``) would
        otherwise take every later entry into a file no path reaches, without a word. A new
        file is made there instead and this session's chain goes on in it, so ``verify``
        names the entries lost as missing; a file put in its place (another copy of the log)
        is appended to after its own last entry, as when another kernel writes. Either way
        one notice says so. A link put there is refused when the path is opened again."""
        fh = self._file()
        if self._identity is None:
            info = os.fstat(fh.fileno())
            self._identity = (info.st_dev, info.st_ino)
        elif gil_kept.identity(self.path) != self._identity:
            tail, self._tail, self._fh, self._identity = self._tail, None, None, None
            try:
                fh.close()
            except OSError:
                pass
            fh = self._file()
            info = os.fstat(fh.fileno())
            self._identity = (info.st_dev, info.st_ino)
            if info.st_size == 0 and tail is not None:
                self._tail = (0, tail[1], tail[2])  # go on from this session's last entry
                self.notices.append(f"the lineage log {self.path} was removed while recording: its {tail[1] + 1} "
                                    "entries are lost (verify names them missing); recording goes on in a new "
                                    "file there")
            else:
                self.notices.append(f"the lineage log {self.path} was replaced while recording: entries now go "
                                    "after the last one in the file there")
        return fh

    @staticmethod
    def _mend_tail(fh: BinaryIO, size: int) -> tuple[int, int, str, bytes]:
        """(size, seq, hash) to chain after, and lines to write first.

        A torn last line is cut off and replaced by a chained ``repair`` entry naming
        its size and hash; one that lacks only its newline is completed instead.
        """
        if size == 0:
            return 0, -1, ZERO_HASH, b""
        cut = _last_newline(fh, size)
        seq, last = _last_entry_before(fh, cut)
        if cut == size:
            return size, seq, last, b""
        torn = _read_torn(fh, cut, size)
        whole = torn.complete_entry
        if (whole is not None and whole.get("seq") == seq + 1 and whole.get("prev") == last
                and whole.get("kind") in ENTRY_KINDS and whole.get("hash") == safe_entry_hash(whole)):
            return size, int(whole["seq"]), str(whole["hash"]), b"\n"
        fh.truncate(cut)
        repair, line = _entry_and_line(seq + 1, last, REPAIR, {
            "cut_bytes": torn.size,
            "cut_xxh3": torn.xxh3,
            "cut_preview": torn.preview,
            "reason": "the last line was cut short (a crash or a full disk during an append); "
                      "it was removed",
        })
        return cut, int(repair["seq"]), str(repair["hash"]), line

    def _request_fsync(self) -> None:
        if not self._background_fsync:
            self.sync()
            return
        if self._fsync_wanted.is_set():
            return  # the thread has not cleared it yet: the fsync after its clear covers this write
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
        read = read_log(self.path)
        if read.problems:
            raise LineageError(read.problems[0].message)
        return read.entries

    def verify(self) -> list[ChainProblem]:
        """Malformed lines and chain problems of the whole file."""
        read = read_log(self.path)
        return read.problems + verify_chain(read.entries)


@dataclass
class SidecarRead:
    """A sidecar as read: its entries (each of an entry's shape), a problem per line that is
    not one, and a torn tail."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[ChainProblem] = field(default_factory=list)
    torn_tail: int = 0  # bytes after the last newline
    exists: bool = True


def _lines(fh: BinaryIO) -> Iterator[bytes]:
    """Lines of a binary file, streamed (a megabyte line is read once, never split)."""
    yield from fh


def read_log(path: str | os.PathLike[str]) -> SidecarRead:
    """Parse a sidecar line by line, never through a symlink (SidecarRefused); a line that
    is not an entry (``read_line``) is a problem naming the line, never an entry."""
    p = Path(path)
    try:
        fh = open_for_reading(p)
    except SidecarRefused:
        raise
    except OSError as exc:
        raise LineageError(f"cannot read lineage log {p}: {exc.strerror or exc}") from None
    if fh is None:
        return SidecarRead(exists=False)
    read = SidecarRead()
    with fh:
        for lineno, raw in enumerate(_lines(fh), start=1):
            if not raw.endswith(b"\n"):
                read.torn_tail = len(raw)  # an append cut short: never a complete entry
                break
            if not raw.strip():
                continue
            entry, wrong = read_line(raw)
            if entry is None:
                read.problems.append(ChainProblem(None, f"line {lineno}: {wrong}"))
                continue
            read.entries.append(entry)
    return read


def count_entries(entries: Iterable[Mapping[str, Any]]) -> str:
    """The one wording for counts in `show`, `verify` and `%lineage`: '15 entries: 1 session, 14 executions'."""
    tally: dict[str, int] = {}
    total = 0
    for entry in entries:
        total += 1
        kind = str(entry.get("kind"))
        tally[kind] = tally.get(kind, 0) + 1
    order = {kind: i for i, kind in enumerate(ENTRY_KINDS)}
    parts = [f"{n} {kind}{'' if n == 1 else 's'}"
             for kind, n in sorted(tally.items(), key=lambda kv: order.get(kv[0], len(order)))]
    head = f"{total} {'entry' if total == 1 else 'entries'}"
    return f"{head}: {', '.join(parts)}" if parts else head


def write_log(path: Path, entries: Iterable[Mapping[str, Any]]) -> None:
    """Write entries as a new sidecar (restoring one from notebook metadata), never through
    a symlink and never over an existing file."""
    fd = open_in_folder(path, os.O_WRONLY | os.O_EXCL, create=True)
    assert fd is not None
    with os.fdopen(fd, "wb") as fh:
        for entry in entries:
            fh.write(canonical_json(entry) + b"\n")


def read_entries(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[ChainProblem]]:
    """Parse a sidecar; returns the entries and a problem per malformed line."""
    read = read_log(path)
    return read.entries, read.problems


def safe_entry_hash(entry: Mapping[str, Any]) -> str | None:
    """entry_hash, or None when the entry cannot be serialised (so it cannot match)."""
    try:
        return entry_hash(entry)
    except (ValueError, TypeError, RecursionError):
        return None


_REQUIRED = ("seq", "prev", "hash", "kind", "body")


def malformation(entry: Mapping[str, Any]) -> str | None:
    """What makes ``entry`` not an entry at all (None when its shape is right)."""
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        return f"missing {', '.join(missing)}"
    seq = entry["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return "seq is not a non-negative integer"
    if not isinstance(entry["prev"], str) or not isinstance(entry["hash"], str):
        return "prev and hash must be strings"
    if entry["kind"] not in ENTRY_KINDS:
        return f"unknown kind {str(entry['kind'])[:40]!r}"
    if not isinstance(entry["body"], Mapping):
        return "body is not an object"
    return None


def verify_chain(entries: Iterable[Mapping[str, Any]]) -> list[ChainProblem]:
    """Name every edit, deletion, reorder or insertion in a list of entries.

    Links are checked by sequence number (entry n's prev = entry n-1's hash), file
    order separately, so one swap or one deletion yields one clear message. Time is
    O(n log n) in the number of entries whatever their sequence numbers claim.
    """
    problems: list[ChainProblem] = []
    valid: list[Mapping[str, Any]] = []
    for pos, entry in enumerate(entries):
        wrong = malformation(entry)
        if wrong:
            problems.append(ChainProblem(None, f"entry at position {pos}: malformed ({wrong})"))
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
        if safe_entry_hash(entry) != entry["hash"]:
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
    for first, last in gaps(by_seq):
        gap = f"entry {first}" if first == last else f"entries {first}-{last}"
        problems.append(ChainProblem(first, f"{gap} missing (deleted)"))
    return problems


def gaps(present: Iterable[int]) -> list[tuple[int, int]]:
    """Runs (first, last) of sequence numbers absent below the highest present one."""
    runs: list[tuple[int, int]] = []
    expected = 0
    for seq in sorted(set(present)):
        if seq > expected:
            runs.append((expected, seq - 1))
        expected = seq + 1
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
