"""The stale rule: which executions are out of date now, and why. The only copy.

An execution is stale when something it consumed has moved on since it ran:

- a variable it read was later deleted, or rewritten with different content (a rewrite
  with equal content changes nothing; a weak fingerprint cannot prove equality);
- a file it read was later rewritten with different content by a recorded execution,
  or differs on disk now (known after ``check_files``);
- a database table a ``%%sqlml`` statement read was later rewritten with content other
  than what it held when read (as the engine fingerprinted it after each write);
- a model version it used as an input was replaced by a newer registration (the
  execution that registered a model is its writer, never stale because of it), or was
  dropped (DROP MODEL) and not registered again with the same bytes;
- a result it read through IPython's output history (``_``, ``Out[3]``) came from a cell that
  ran again since and displayed other content, or nothing;
- an environment variable it read (``os.environ['SEED']``) was set, or unset, by a later
  execution to another value ("input os.environ['SEED'] changed by [5]");
- a global generator's state it drew from (``numpy.random (global state)``) was left by a cell
  that ran again since and left another state, or did not set it (a later draw elsewhere,
  which moves the state on, is no reason);
- a value it read came from an execution that is itself stale ("comes from stale"),
  unless that execution is stale only because of this one (``x = x + 1`` run twice).

Flags are shown for the latest run of each cell (and for runs without a cell id):
an earlier run of a cell is superseded, not stale. The sidebar, ``%lineage``,
``nbgov show`` and the metadata saved in the notebook all show ``flags()``.

``StaleTracker.add`` costs the size of the entry (indexes only); a question judges
the current runs and what they come from, memoised until an entry changes their inputs;
then they are judged again, and what was judged from them only if their verdict changed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nbgov.lineage.database_files import is_duckdb
from nbgov.lineage.record import (
    ExecutionRecord,
    FileAccess,
    Fingerprint,
    LogEntry,
    ModelUse,
    Read,
    Write,
    as_entries,
    environment_variable,
    is_global_state,
)

DISK = -1  # the cause of a reason found on disk, not in the log


class FileHashes(Protocol):
    """Content hashes of files now (``files.FileHasher``)."""

    def hash(self, abspath: str) -> tuple[int | None, str | None]: ...


@dataclass(frozen=True)
class _Reason:
    text: str
    causes: frozenset[int]  # positions of the executions it comes from (DISK: the disk)


@dataclass(frozen=True)
class _VarEvent:
    position: int
    write: Write | None  # None: deleted


TableKey = tuple[str, str]  # (engine, table name)


def _tables(record: ExecutionRecord, mode: str) -> list[tuple[TableKey, Fingerprint | None]]:
    """Database tables the record's SQL read or wrote (notebook frames are variables)."""
    return [((stmt.engine, t.name), t.fingerprint) for stmt in record.sql for t in stmt.tables
            if t.origin == "database" and t.mode == mode]


class StaleTracker:
    """Entries in, stale flags out; see the module docstring for the rule."""

    def __init__(self, entries: Iterable[LogEntry | Mapping[str, Any]] = ()) -> None:
        self._clear()
        for entry in sorted(as_entries(entries), key=lambda e: e.seq):
            self.add(entry)

    def _clear(self) -> None:
        self.entries: list[LogEntry] = []  # everything added, in seq order
        self._records: list[ExecutionRecord] = []
        self._positions: dict[str, list[int]] = {}  # record id -> positions (ids can repeat)
        self._latest_of_cell: dict[str, int] = {}
        self._without_cell: list[int] = []  # runs without a cell id: each is current
        self._var_last: dict[str, _VarEvent] = {}
        self._file_last: dict[str, tuple[int, FileAccess]] = {}  # abspath -> latest writer
        self._model_last: dict[str, tuple[int, ModelUse]] = {}  # name -> latest registration
        self._version_last: dict[str, tuple[int, ModelUse]] = {}  # name@version -> latest registration or drop
        self._table_writes: dict[TableKey, list[tuple[int, Fingerprint | None]]] = {}
        self._disk: dict[str, str | None] = {}  # abspath -> hash on disk at the last check
        self._var_readers: dict[str, list[int]] = {}
        self._file_readers: dict[str, list[int]] = {}
        self._model_users: dict[str, list[int]] = {}
        self._table_readers: dict[TableKey, list[int]] = {}
        self._dependents: dict[int, list[int]] = {}  # position -> positions reading from it
        self._result_readers: dict[str, list[int]] = {}  # cell id -> positions that read a result it displayed
        self._memo: dict[int, tuple[_Reason, ...]] = {}
        # flags() kept current per change, so asking after each cell costs what changed, not the log
        self._current: set[int] = set()  # latest run of each cell, and runs without a cell id
        self._unjudged: set[int] = set()  # positions whose judgement is new or changed since flags()
        self._dirty: set[int] = set()  # judged positions whose inputs changed: judge again in _settle
        self._stale_now: dict[int, list[str]] = {}  # current stale positions -> reasons

    # -- input -------------------------------------------------------------
    def add(self, entry: LogEntry | Mapping[str, Any]) -> None:
        """Take one more entry (sessions are kept but judge nothing)."""
        typed = as_entries([entry])
        if not typed:
            return  # malformed: verify reports it; it cannot make anything stale
        new = typed[0]
        if self.entries and new.seq < self.entries[-1].seq:
            earlier = [*self.entries, new]  # out of order (two writers): index again
            self._clear()
            for old in sorted(earlier, key=lambda e: e.seq):
                self.add(old)
            return
        self.entries.append(new)
        if new.record is not None:
            self._add_record(new.record)

    def _add_record(self, record: ExecutionRecord) -> None:
        n = len(self._records)
        self._records.append(record)
        self._positions.setdefault(record.id, []).append(n)
        if record.cell_id is None:
            self._without_cell.append(n)
        else:
            superseded = self._latest_of_cell.get(record.cell_id)
            if superseded is not None:
                self._current.discard(superseded)
                self._stale_now.pop(superseded, None)
            self._latest_of_cell[record.cell_id] = n
        self._current.add(n)
        self._unjudged.add(n)
        changed: list[int] = []
        if record.cell_id is not None:
            changed += self._result_readers.get(record.cell_id, ())  # their results' cell ran again
        for write in record.writes:
            self._var_last[write.name] = _VarEvent(n, write)
            changed += self._var_readers.get(write.name, ())
        for name in record.deletes:
            self._var_last[name] = _VarEvent(n, None)
            changed += self._var_readers.get(name, ())
        for file in record.files:
            if file.mode == "write":
                self._file_last[file.abspath] = (n, file)
                self._disk.pop(file.abspath, None)  # the recorded hash is newer than the last check
                changed += self._file_readers.get(file.abspath, ())
        for model in record.models:
            if model.role == "input":
                continue
            self._version_last[model.key] = (n, model)
            if model.role == "output":
                self._model_last[model.name] = (n, model)
            changed += self._model_users.get(model.name, ())
        for key, content in _tables(record, "write"):
            self._table_writes.setdefault(key, []).append((n, content))
            changed += self._table_readers.get(key, ())
        for key, _ in _tables(record, "read"):
            self._table_readers.setdefault(key, []).append(n)
            writer = self._table_writer_before(key, n)
            if writer is not None:
                self._dependents.setdefault(writer[0], []).append(n)
        for read in record.reads:
            self._var_readers.setdefault(read.name, []).append(n)
            self._depend(n, read.source)
            if read.displayed is not None or is_global_state(read.name):
                self._read_result(n, read.source)
        for file in record.files:
            if file.mode == "read":
                self._file_readers.setdefault(file.abspath, []).append(n)
                self._depend(n, file.source)
        for model in record.models:
            if model.role == "input":
                self._model_users.setdefault(model.name, []).append(n)
                self._depend(n, model.source)
        self._forget(changed)

    def _depend(self, position: int, source: str | None) -> None:
        origin = self._source_position(source, position)
        if origin is not None:
            self._dependents.setdefault(origin, []).append(position)

    def _read_result(self, position: int, source: str | None) -> None:
        """A result read through the output history: judged again when its cell runs again."""
        origin = self._source_position(source, position)
        cell = self._records[origin].cell_id if origin is not None else None
        if cell is not None:
            self._result_readers.setdefault(cell, []).append(position)

    def check_files(self, hasher: FileHashes) -> None:
        """Compare every file read with its content on disk now (hashes are cached by stat)."""
        changed: list[int] = []
        for abspath, readers in self._file_readers.items():
            now = hasher.hash(abspath)[1]
            if abspath not in self._disk or self._disk[abspath] != now:
                self._disk[abspath] = now
                changed += readers
        self._forget(changed)

    def _forget(self, positions: Iterable[int]) -> None:
        """Mark the judgements of ``positions`` for another look (their inputs changed)."""
        self._dirty.update(p for p in positions if p in self._memo)

    def _settle(self) -> None:
        """Judge the marked positions again, in log order; only a judgement that changed marks
        the positions judged from it. A rewrite with equal content (a notebook run again)
        then costs the readers of what it wrote, not everything downstream of them."""
        queue = sorted(self._dirty)
        queued = set(queue)
        self._dirty.clear()
        while queue:
            p = heapq.heappop(queue)  # only later positions are pushed: earlier ones are settled
            before = self._memo.pop(p, None)
            if self._reasons(p) == before:
                continue
            self._unjudged.add(p)
            for d in self._dependents.get(p, ()):
                if d in self._memo and d not in queued:
                    queued.add(d)
                    heapq.heappush(queue, d)

    # -- questions ---------------------------------------------------------
    def flags(self) -> dict[str, list[str]]:
        """Record id -> reasons, for the latest run of each cell that is stale."""
        self._settle()
        for position in self._unjudged & self._current:
            reasons = self._reasons(position)
            if reasons:
                self._stale_now[position] = [r.text for r in reasons]
            else:
                self._stale_now.pop(position, None)
        self._unjudged.clear()
        return {self._records[p].id: list(self._stale_now[p]) for p in sorted(self._stale_now)}

    def reasons(self, record: str) -> list[str]:
        """Why the latest execution with this id is stale (empty: it is not), superseded or not."""
        positions = self._positions.get(record)
        self._settle()
        return [r.text for r in self._reasons(positions[-1])] if positions else []

    def current_positions(self) -> list[int]:
        """Positions of the latest run of each cell and of every run without a cell id."""
        return sorted([*self._latest_of_cell.values(), *self._without_cell])

    def _reasons(self, position: int) -> tuple[_Reason, ...]:
        """Judge ``position`` after everything it comes from (earlier positions), iteratively."""
        stack = [position]
        while stack:
            p = stack[-1]
            if p in self._memo:
                stack.pop()
                continue
            missing = [s for s in self._origins(p) if s not in self._memo]
            if missing:
                stack += missing
                continue
            self._memo[p] = self._judge(p)
            stack.pop()
        return self._memo[position]

    def _origins(self, position: int) -> list[int]:
        record = self._records[position]
        sources = [r.source for r in record.reads]
        sources += [f.source for f in record.files if f.mode == "read"]
        sources += [m.source for m in record.models if m.role == "input"]
        found = [self._source_position(s, position) for s in sources]
        for key, _ in _tables(record, "read"):
            writer = self._table_writer_before(key, position)
            found.append(writer[0] if writer else None)
        return [p for p in found if p is not None]

    def _table_writer_before(self, key: TableKey, position: int) -> tuple[int, Fingerprint | None] | None:
        """The last write of a table before ``position``: what a read there saw."""
        for write in reversed(self._table_writes.get(key, ())):
            if write[0] < position:
                return write
        return None

    def _source_position(self, source: str | None, before: int) -> int | None:
        """The latest position carrying record id ``source`` before ``before``."""
        if source is None:
            return None
        for p in reversed(self._positions.get(source, ())):
            if p < before:
                return p
        return None

    def _judge(self, i: int) -> tuple[_Reason, ...]:
        record = self._records[i]
        reasons: list[_Reason] = []
        for read in record.reads:
            if read.displayed is not None:
                reasons += self._result_reasons(read, i)
                continue
            if is_global_state(read.name):
                reasons += self._state_reasons(read, i)
                continue
            event = self._var_last.get(read.name)
            if event is not None and event.position > i:
                label = self._records[event.position].label
                if event.write is None:
                    reasons.append(_Reason(f"input {read.name} deleted by {label}", frozenset({event.position})))
                    continue
                if event.write.fingerprint.same_content(read.fingerprint) is not True:
                    how = "changed" if environment_variable(read.name) is not None else "rewritten"
                    reasons.append(_Reason(f"input {read.name} {how} by {label}", frozenset({event.position})))
                    continue
            reasons += self._inherited(f"input {read.name}", read.source, i)
        for file in record.files:
            if file.mode == "read":
                reasons += self._file_reasons(file, i)
        for key in dict.fromkeys(k for k, _ in _tables(record, "read")):
            reasons += self._table_reasons(key, i)
        for model in record.models:
            if model.role == "input":
                reasons += self._model_reasons(model, i)
        return tuple(reasons)

    def _result_reasons(self, read: Read, i: int) -> list[_Reason]:
        """A result read through the output history (``Out[3]``): IPython keeps it as it was, but
        the cell that displayed it ran again after ``i`` and displayed other content (or nothing),
        so what ``i`` computed from it is not what the notebook shows now; else what the
        displaying execution's staleness passes on."""
        origin = self._source_position(read.source, i)
        cell = self._records[origin].cell_id if origin is not None else None
        latest = self._latest_of_cell.get(cell) if cell is not None else None
        if latest is not None and latest > i:
            again = self._records[latest]
            label = again.label
            if again.result is None:
                return [_Reason(f"input {read.name}: its cell ran again as {label} and displayed nothing",
                                frozenset({latest}))]
            if again.result.same_content(read.fingerprint) is not True:
                return [_Reason(f"input {read.name}: its cell displayed another result as {label}",
                                frozenset({latest}))]
        return self._inherited(f"input {read.name}", read.source, i)

    def _state_reasons(self, read: Read, i: int) -> list[_Reason]:
        """A global generator's state (``numpy.random (global state)``): stale when the cell that
        left the state ``i`` drew from ran again after ``i`` and left another state, or none
        (``np.random.seed(1)`` where it was ``seed(0)``); another cell drawing later moves the
        state on as every draw does, and makes nothing stale. Else what that execution's
        staleness passes on; a state no execution left (seeded from the OS) makes none."""
        origin = self._source_position(read.source, i)
        cell = self._records[origin].cell_id if origin is not None else None
        latest = self._latest_of_cell.get(cell) if cell is not None else None
        if latest is not None and latest > i:
            again = self._records[latest]
            left = next((w.fingerprint for w in again.writes if w.name == read.name), None)
            if left is None:
                return [_Reason(f"input {read.name}: its cell ran again as {again.label} and did not set it",
                                frozenset({latest}))]
            if left.same_content(read.fingerprint) is not True:
                return [_Reason(f"input {read.name}: its cell ran again as {again.label} and left another state",
                                frozenset({latest}))]
        return self._inherited(f"input {read.name}", read.source, i)

    def _model_reasons(self, model: ModelUse, i: int) -> list[_Reason]:
        """A version used at ``i``: dropped since (scoring with it now fails), or its name
        registered anew with other bytes; else what its creator's staleness passes on."""
        last = self._version_last.get(model.key)
        if last is not None and last[0] > i and last[1].role == "dropped":
            return [_Reason(f"model {model.key} dropped by {self._records[last[0]].label}", frozenset({last[0]}))]
        latest = self._model_last.get(model.name)
        if latest is not None and latest[0] > i and (latest[1].version, latest[1].sha256) != (
            model.version, model.sha256
        ):
            by, newer = latest
            text = f"model {model.name} changed: version {newer.version} registered by {self._records[by].label}"
            return [_Reason(text, frozenset({by}))]
        return self._inherited(f"model {model.key}", model.source, i)

    def _file_reasons(self, file: FileAccess, i: int) -> list[_Reason]:
        latest = self._file_last.get(file.abspath)
        rewritten = latest is not None and latest[0] > i and (latest[1].hash is None or latest[1].hash != file.hash)
        if rewritten and latest is not None:
            how = "removed" if latest[1].removed else "rewritten"
            return [_Reason(f"file {file.path} {how} by {self._records[latest[0]].label}", frozenset({latest[0]}))]
        if file.hash is not None and file.abspath in self._disk:
            now = self._disk[file.abspath]
            # a file this execution read, then wrote last (read-modify-write): it moved on by
            # the execution itself, as `x = x + 1` does; on disk it should hold what was written
            own = latest is not None and latest[0] == i and not latest[1].removed
            expected = latest[1].hash if own and latest is not None else file.hash
            if now is None:
                return [_Reason(f"file {file.path} is gone or unreadable", frozenset({DISK}))]
            if now != expected:
                return [_Reason(_changed_on_disk(file.path, file.abspath), frozenset({DISK}))]
        return self._inherited(f"file {file.path}", file.source, i)

    def _table_reasons(self, key: TableKey, i: int) -> list[_Reason]:
        name = key[1]
        seen = self._table_writer_before(key, i)
        latest = self._table_writes.get(key, [(-1, None)])[-1]
        if latest[0] > i:
            same = seen is not None and seen[1] is not None and latest[1] is not None and (
                seen[1].same_content(latest[1]) is True
            )
            if not same:
                label = self._records[latest[0]].label
                return [_Reason(f"table {name} rewritten by {label}", frozenset({latest[0]}))]
        if seen is None:
            return []
        return self._inherited(f"table {name}", self._records[seen[0]].id, i)

    def _inherited(self, what: str, source: str | None, i: int) -> list[_Reason]:
        """'comes from stale' when the producer is stale for a cause other than ``i`` itself."""
        origin = self._source_position(source, i)
        if origin is None:
            return []
        causes = frozenset().union(*(r.causes for r in self._memo[origin])) - {i}
        if not causes:
            return []
        return [_Reason(f"{what} comes from stale {self._records[origin].label}", causes)]


def stale_flags(
    entries: Iterable[LogEntry | Mapping[str, Any]], hasher: FileHashes | None = None
) -> dict[str, list[str]]:
    """Record id -> reasons for the stale latest runs of a whole log; with ``hasher``, files
    read are also compared with the disk."""
    tracker = StaleTracker(entries)
    if hasher is not None:
        tracker.check_files(hasher)
    return tracker.flags()


def stale_records(entries: Iterable[LogEntry | Mapping[str, Any]], now_files: bool = True) -> dict[str, list[str]]:
    """``stale_flags`` as a reviewer asks it: with ``now_files``, files read are compared
    with what is on disk now."""
    from nbgov.lineage.files import FileHasher

    return stale_flags(entries, FileHasher() if now_files else None)


def stale_cells(
    entries: Iterable[LogEntry | Mapping[str, Any]], hasher: FileHashes | None = None
) -> dict[str, list[str]]:
    """Cell id -> reasons, for cells whose latest run is stale."""
    typed = as_entries(entries)
    flags = stale_flags(typed, hasher)
    return {
        e.record.cell_id: flags[e.record.id]
        for e in typed
        if e.record is not None and e.record.cell_id is not None and e.record.id in flags
    }


def _changed_on_disk(path: str, abspath: str) -> str:
    """Why a file read differs on disk now. A DuckDB database's checkpoint (at the latest when
    its last connection closes, as the kernel exits) moves what its WAL held into its file,
    in new bytes: the same tables then hash differently, and which happened is not known."""
    if is_duckdb(abspath):
        return (f"file {path} changed on disk since read, or was only checkpointed (DuckDB rewrites its bytes then, "
                "so whether its tables changed is not known)")
    return f"file {path} changed on disk since read"
