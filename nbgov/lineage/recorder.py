"""The lineage recorder: IPython's ``pre_run_cell``/``post_run_cell`` hooks, and nothing else.

Before a cell: analyse its code, snapshot the names it can touch (``namespace``), start
watching files (Python's audit hook and, for native code, ``native_files``). After it:
observe what changed, which files were opened, what ``%%sqlml`` reported and what the
cell displayed; ``build`` turns those facts into the record, and the ``journal``
appends it before the cell returns and tells subscribers.

Recording never changes or breaks the user's program: no user object is kept past
the cell, any internal failure costs only that part of the record (with a note saying
so) and becomes one warning line, and an interrupt while recording still saves the
record, with the fingerprints it cut short marked unfinished.
"""

from __future__ import annotations

import _signal
import functools
import os
import signal
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nbgov.lineage import duckdb_connections, gil_kept, random_state, sqlite_connections
from nbgov.lineage import environment_variables, output_history
from nbgov.lineage.analysis import CellNames, analyze, dynamic_reads_note, transform
from nbgov.lineage.build import CellFacts, ObservedFile, build_record
from nbgov.lineage.environment import (
    VersionLookup,
    kernel_hash_seed,
    platform_string,
    python_version,
    top_level_modules,
)
from nbgov.lineage.exception_text import exception_message
from nbgov.lineage.files import ANOTHER_PROCESS, FileEvent, FileWatcher, absent, expand_sql_paths, special_file
from nbgov.lineage.fingerprint import SCHEME as FINGERPRINT_SCHEME
from nbgov.lineage.fingerprint import Fingerprinter
from nbgov.lineage.fingerprint.memmap import written_file
from nbgov.lineage.journal import Journal, Subscriber, describe
from nbgov.lineage.namespace import Hashing, NamespaceChanges, NamespaceObserver, Snapshot, identity
from nbgov.lineage.native_files import NativeWatch, mentioned_paths, reads_through_connections
from nbgov.lineage.record import ErrorInfo, FileMode, Fingerprint, LogEntry, SessionInfo
from nbgov.lineage.sqlreport import ReportedModel, SqlReport, read_activity
from nbgov.lineage.store import SidecarStore
from nbgov.lineage.values import ValueTracker
from nbgov.sqlml.activity import Activity

T = TypeVar("T")
_SIGINT = int(signal.SIGINT)


def install(shell: Any) -> Recorder:
    """Create a recorder for ``shell`` and register it on the shell's events."""
    rec = Recorder(shell)
    rec.register()
    return rec


def notebook_path(shell: Any) -> str | None:
    """The notebook this kernel serves: ``__session__`` (ipykernel) or JPY_SESSION_NAME."""
    ns = getattr(shell, "user_ns", {}) or {}
    for candidate in (ns.get("__session__"), os.environ.get("JPY_SESSION_NAME")):
        if type(candidate) is str and candidate.strip():
            return os.path.abspath(candidate)
    return None


@dataclass
class _Cell:
    """One running cell: what was seen before it, and what it reported while running."""

    raw: str
    cell_id: str | None
    started: str
    hashing: Hashing
    modules: int
    snapshot: Snapshot | None = None
    t0: float = 0.0
    sql: list[SqlReport] = field(default_factory=list)
    models: list[ReportedModel] = field(default_factory=list)
    sql_values: dict[str, Fingerprint] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    history: output_history.HistoryReads | None = None  # results read through `_`, `Out[3]`
    environment: environment_variables.EnvironmentReads | None = None  # `os.environ['X']` read or set
    duckdb: duckdb_connections.HeldReads | None = None  # databases read through earlier DuckDB connections


class Recorder:
    """Per-shell recording; created by ``install`` and removed by ``uninstall``."""

    def __init__(self, shell: Any, store: SidecarStore | None = None, notebook: str | None = None) -> None:
        self.shell = shell
        self.session_id = uuid.uuid4().hex
        self.journal = Journal(notebook if notebook is not None else notebook_path(shell), store)
        self.values = ValueTracker()
        self.hash_seed = kernel_hash_seed()
        hidden: Mapping[str, Any] = getattr(shell, "user_ns_hidden", {}) or {}
        self._observer = NamespaceObserver(self.values, shell.user_ns, hidden)
        self._watcher = FileWatcher()
        self._native = NativeWatch(self._watcher.ignored, known=self.journal.files.known)
        self._connections = sqlite_connections.ConnectionReads(  # through earlier cells' connections
            self._watcher.ignored, self.journal.files.known_now)
        sqlite_connections.follow()
        self._versions = VersionLookup()
        self._cell: _Cell | None = None
        self._pending_sql: list[SqlReport] = []
        self._pending_models: list[ReportedModel] = []
        self._problems: list[str] = []
        self._last_count = 0
        self._registered = False
        self._modules_at_install = top_level_modules()
        self._known_modules: set[str] | None = None
        # the global generators after the last cell; None until the first cell starts (the
        # kernel's own start-up, between loading the extension and that cell, may draw)
        self._random_states: dict[str, random_state.State] | None = None
        self._draws: random_state.Watch | None = None  # who changes them while a cell runs
        platform_string()  # now, before any cell can patch what it uses

    # -- the journal's face (delivery, widgets and tests read these) ---------
    @property
    def notebook(self) -> str | None:
        return self.journal.notebook

    @property
    def records(self) -> list[LogEntry]:
        return self.journal.records

    @property
    def session_entry(self) -> LogEntry | None:
        return self.journal.session_entry

    @property
    def store(self) -> SidecarStore | None:
        return self.journal.store

    @store.setter
    def store(self, value: SidecarStore | None) -> None:
        self.journal.store = value

    @property
    def fingerprinter(self) -> Fingerprinter:
        """Hashes values (owned by ``values``; replaceable, e.g. to inject faults in tests)."""
        return self.values.fingerprinter

    @fingerprinter.setter
    def fingerprinter(self, value: Fingerprinter) -> None:
        self.values.fingerprinter = value

    def entries(self) -> list[LogEntry]:
        return self.journal.entries()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self.journal.subscribe(callback)

    def stale(self, now_files: bool = True) -> dict[str, list[str]]:
        return self.journal.stale(now_files)

    def session_stale(self) -> dict[str, list[str]]:
        return self.journal.session_stale()

    def follow(self, notebook: str, orphan_sidecar: Path | None = None) -> None:
        """The notebook now lives at ``notebook`` (renamed or moved): record next to it.
        ``orphan_sidecar``: its log under an old name, left when it was renamed while no
        kernel recorded; adopted if this session has not started its own log yet."""
        try:
            note = self.journal.follow(os.path.abspath(notebook))
            if orphan_sidecar is not None:
                note = self.journal.adopt(orphan_sidecar) or note
        except Exception as exc:
            note = f"lineage log not moved: {describe(exc)}"
        if note:
            self._warn(note)

    # -- lifecycle ---------------------------------------------------------
    def register(self) -> None:
        if not self._registered:
            self.shell.events.register("pre_run_cell", self.pre_run_cell)
            self.shell.events.register("post_run_cell", self.post_run_cell)
            self._registered = True

    def uninstall(self) -> None:
        """Unregister from the shell, stop watching files, flush the sidecar."""
        if self._registered:
            for event, cb in (("pre_run_cell", self.pre_run_cell), ("post_run_cell", self.post_run_cell)):
                try:
                    self.shell.events.unregister(event, cb)
                except ValueError:
                    pass
            self._registered = False
        self._watcher.stop()
        self._native.close()
        self._stop_draws()
        self.journal.close()

    # -- reports from the SQL magic ------------------------------------------
    def note_sql(self, activity: Activity | Mapping[str, Any]) -> None:
        """One executed %%sqlml statement; outside a cell it is kept for the next one."""
        try:
            report = read_activity(activity)
            cell = self._cell
            if cell is None:
                self._pending_sql.append(report)
                return
            cell.sql.append(report)
            cell.notes += report.problems
            ns = self.shell.user_ns
            before = cell.snapshot.before if cell.snapshot else {}
            for name in (*report.frames, *report.params):
                if name in ns and name not in cell.sql_values:
                    # the between-cells version probe: an unchanged frame is not hashed again per query
                    cell.sql_values[name] = before.get(name) or cell.hashing.before(name, ns[name])
        except Exception as exc:
            self._problems.append(describe(exc))

    def note_model(
        self, name: str, version: int, sha256: str, producer: str | None = None, opset: int | None = None,
        created: bool = False,
    ) -> None:
        """A model used (or, with ``created``, registered) outside a SQL statement report."""
        model = ReportedModel(name, version, sha256, producer, opset, "output" if created else "input")
        if self._cell is None:
            self._pending_models.append(model)
        else:
            self._cell.models.append(model)

    # -- events ------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        if _running_cells() > 1:
            return  # a cell run from inside a cell (%%capture, run_cell): the outer record covers it
        self._cell = None
        self._problems = []
        if getattr(info, "silent", False):
            return
        with warnings.catch_warnings():  # probing user values must not warn into the cell
            warnings.simplefilter("ignore")
            try:
                self._start(info)
            except BaseException as exc:  # noqa: BLE001 - an interrupt here must not cost the record
                # the record is still written after the cell (with this note); its one warning line
                # is printed then, so a cell never gets two
                if self._cell is not None:
                    self._cell.notes.append(f"values before the cell not recorded: {_why(exc)}")
                self._problems.append(f"recording this cell is incomplete: {_why(exc)}")

    def _start(self, info: Any) -> None:
        if self._random_states is None:
            self._random_states = _random_states()
        # from here to the cell's end, imports are told from the cell's own code (the
        # recorder's own reading of values may import too)
        self._draws = random_state.start(self._random_states)
        ns = self.shell.user_ns
        raw = info.raw_cell if type(getattr(info, "raw_cell", None)) is str else ""
        cell_id = getattr(info, "cell_id", None)
        self._cell = cell = _Cell(
            raw=raw,
            cell_id=cell_id if type(cell_id) is str else None,
            started=_now_iso(),
            hashing=Hashing(self.values),
            modules=len(sys.modules),
            sql=self._pending_sql,
            models=self._pending_models,
        )
        self._pending_sql, self._pending_models = [], []
        # IPython 8.19+ hands over the code it transformed for this run; older ones: transform it here
        transformed = getattr(info, "transformed_cell", None)
        names = analyze(transformed if type(transformed) is str else transform(self.shell, raw))
        cell.snapshot = snapshot = self._observer.before(names, ns, cell.hashing)
        history = names.history
        if history is not None:  # only a cell naming `_`, `_3`, `Out`: the rest pay one test
            cell.history = self._part("results read through the output history", cell.notes,
                                      lambda: output_history.read(history, ns, cell.hashing), None)
        environment = names.environment
        if environment is not None:  # only a cell naming os.environ, getenv...: the rest pay one test
            cell.environment = self._part("environment variables", cell.notes,
                                          lambda: environment_variables.before(environment, ns), None)
        if names.called_on or snapshot.called_globals:  # before the file watch: it reads databases' headers
            called = names.called_on | snapshot.called_globals
            cell.duckdb = self._part("reads through earlier DuckDB connections", cell.notes, lambda: duckdb_connections.start(
                called, ns, self._watcher.ignored, cell.notes, self.journal.files.known_now), None)
        self._watch_files(names, ns)
        self._part("reads through earlier sqlite connections", cell.notes, self._connections.start, None)
        cell.t0 = time.perf_counter()

    def _watch_files(self, names: CellNames, ns: Mapping[str, Any]) -> None:
        cwd = gil_kept.getcwd()
        self._watcher.start(cwd)
        try:
            self._native.start(mentioned_paths(names, ns), cwd)
        except Exception as exc:  # an advisory detector: the record goes on without it
            self._problems.append(f"native file check skipped: {describe(exc)}")

    def post_run_cell(self, result: Any) -> None:
        if _running_cells() > 0:
            return  # the end of a cell run from inside a cell
        t1 = time.perf_counter()
        events = self._watcher.stop()
        cell, self._cell = self._cell, None
        if cell is None:
            self._native.stop()
            self._connections.stop()
            self._stop_draws()
            return
        read_through: list[str] = self._part("reads through earlier sqlite connections", cell.notes,
                                             self._connections.stop, [])
        cell.notes += self._connections.notes
        native: list[FileEvent] = self._part("native file opens", cell.notes, self._native.stop, [])
        cell.notes += self._native.notes
        known_at_start = self._connections.known_at_start
        if cell.duckdb is not None:
            read_through += cell.duckdb.paths
            known_at_start = {**known_at_start, **cell.duckdb.known_at_start}
            cell.notes.append(cell.duckdb.note)
        if read_through:
            native += reads_through_connections(read_through, events + native, self._watcher.ignored, known_at_start)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                interrupts = self._record(cell, result, t1, events + native)
            finally:
                self._stop_draws()  # a record cut short before it read them: imports are watched no longer
        if cell.hashing.unfinished or interrupts:
            count = len(cell.hashing.unfinished)
            self._warn(f"recording was interrupted; the record was saved with {count} fingerprint(s) "
                       "marked unfinished")
        elif self._problems or cell.hashing.failures or self.journal.problems:
            self._warn((self._problems or cell.hashing.failures or self.journal.problems)[0])
        self._problems = []
        self.journal.problems.clear()

    def _record(self, cell: _Cell, result: Any, t1: float, events: list[FileEvent]) -> int:
        """Observe (interruptible, part by part), then build and append with interrupts held."""
        facts = CellFacts(self.session_id, self._execution_count(result), cell.cell_id, cell.raw, cell.started,
                          t1 - cell.t0 if cell.t0 else 0.0, notes=cell.notes)
        try:
            self._observe(cell, result, events, facts)
        except BaseException as exc:  # noqa: BLE001 - an interrupt between parts: keep what we have
            facts.notes.append(f"recording stopped early: {_why(exc)}")
        with _interrupts_held() as held:
            try:
                record = build_record(facts, self.journal.provenance)
                if self.journal.session_entry is None:
                    self.journal.append_session(self._session_info())
                self.journal.append_execution(record, tuple(facts.changes.more_written))
            except BaseException as exc:  # noqa: BLE001 - a subscriber or the disk must not end the kernel
                self._problems.append(describe(exc))
        return len(held)

    def _observe(self, cell: _Cell, result: Any, events: list[FileEvent], facts: CellFacts) -> None:
        ns = self.shell.user_ns
        notes = facts.notes
        facts.error = _error(result)
        if cell.snapshot is not None:
            snapshot = cell.snapshot
            facts.changes = self._part(
                "variables", notes, lambda: self._observer.after(snapshot, ns, cell.hashing), NamespaceChanges()
            )
            notes += [f"`{name}` cannot be read by nbgov ({why}): the cell used it, and whether it changed it "
                      "is not known" for name, why in facts.changes.unknown_changes]
            if snapshot.names.dynamic_reads or snapshot.called_globals:
                dynamic = dynamic_reads_note(snapshot.names, snapshot.called_globals)
                if dynamic is not None:
                    notes.append(dynamic)
        if cell.history is not None:
            facts.displayed = cell.history.reads
            unresolved = output_history.note(cell.history.unresolved)
            if unresolved is not None:
                notes.append(unresolved)
        environment = cell.environment
        if environment is not None:
            facts.environment_reads = environment.reads
            facts.environment_writes = self._part("environment variables", notes,
                                                  lambda: environment_variables.after(environment), ())
            notes += environment.notes
        facts.sql, facts.models, facts.sql_values = cell.sql, cell.models, cell.sql_values
        if any(write.mutated for write in facts.changes.writes):
            none: list[FileEvent] = []
            events = events + self._part("memory-mapped files", notes, lambda: self._mapped_writes(facts.changes), none)
        facts.files = self._part("files", notes, lambda: self._files(events, cell.sql, notes), [])
        facts.result = self._part("the displayed result", notes, lambda: self._result(result, cell, facts), None)
        facts.packages_added = self._part("packages", notes, lambda: self._packages_added(cell), {})
        notes += self._part("global random state", notes, lambda: self._random_state_notes(cell, facts), [])
        if cell.hashing.unfinished:
            names = ", ".join(cell.hashing.unfinished[:5])
            notes.append(f"recording was interrupted: fingerprints of {names} unfinished")

    def _part(self, what: str, notes: list[str], observe: Callable[[], T], default: T) -> T:
        """One part of the record; a failure costs only this part, with a note saying so."""
        try:
            return observe()
        except KeyboardInterrupt:
            notes.append(f"{what} not recorded: recording was interrupted")
        except BaseException as exc:  # noqa: BLE001 - user code reached by a probe may raise SystemExit
            notes.append(f"{what} not recorded: {describe(exc)}")
            self._problems.append(f"{what} not recorded: {describe(exc)}")
        return default

    def _execution_count(self, result: Any) -> int:
        count = getattr(result, "execution_count", None)
        if type(count) is not int:
            count = self._last_count + 1
        self._last_count = max(self._last_count, count)
        return count

    def _result(self, result: Any, cell: _Cell, facts: CellFacts) -> Fingerprint | None:
        """The displayed value (Out[n]), fingerprinted like a written variable."""
        value = getattr(result, "result", None)
        if value is None:
            return None
        known = facts.changes.by_identity.get(identity(value))
        return known if known is not None else cell.hashing.value("Out", value)

    def _mapped_writes(self, changes: NamespaceChanges) -> list[FileEvent]:
        """Files the cell wrote through a shared writable memory map (``m[0] = 99`` on a
        ``np.load(mmap_mode="r+")``): the values it changed that map one. The OS reports no
        open or write for them, so their content is hashed anew after the cell."""
        ns = self.shell.user_ns
        found: list[FileEvent] = []
        for write in changes.writes:
            if not write.mutated:
                continue
            path = written_file(ns.get(write.name))
            if path is not None and not self._watcher.ignored(path):
                self.journal.files.forget(path)
                found.append(FileEvent(path, path, "write", native=True))
        return found

    def _files(self, events: list[FileEvent], sql: list[SqlReport], notes: list[str]) -> list[ObservedFile]:
        """Python opens (as the code named them), files SQL reported, then native opens (a file
        already seen opened by Python is not read again, a native write always counts). A
        Python read of a file native code wrote is ordered by what the OS saw: nothing opened
        it before the write (the read failed, or read the cell's output), or a read-only
        handle did (what was read is not what is there after)."""
        python = [ev for ev in events if not ev.native]
        native = [ev for ev in events if ev.native]
        unopened = {ev.abspath for ev in native if ev.unopened_before}
        natively_written = _written(native)
        seen: dict[tuple[str, str], str] = {}
        read_before: dict[str, FileEvent] = {}  # read, then changed (by the cell, or another process)
        for ev in python:
            if ev.mode == "read" and ev.before_change is None and ev.abspath in unopened:
                continue
            if ev.mode == "read" and ev.abspath in natively_written and self._changed_in_cell(ev):
                continue  # an append after a native write (`write_csv`, then open 'a'): the cell's own output
            seen.setdefault((ev.abspath, ev.mode), ev.path)
            if ev.before_change is not None:
                read_before.setdefault(ev.abspath, ev)
        made_elsewhere: set[str] = set()  # written by SQL or native code: in no known order with Python's
        for report in sql:
            for mode, paths in (("read", report.files_read), ("write", report.files_written)):
                for path, abspath in expand_sql_paths(paths):
                    seen.setdefault((abspath, mode), path)
                    if mode == "write":
                        made_elsewhere.add(abspath)
        cwd = gil_kept.getcwd() if native else ""
        for ev in native:
            read_then_written = ev.before_change is not None
            if ev.mode == "write" or read_then_written or not any((ev.abspath, m) in seen for m in ("read", "write")):
                seen.setdefault((ev.abspath, ev.mode), _display_path(ev.abspath, cwd))
                if ev.before_change is not None:
                    read_before.setdefault(ev.abspath, ev)
        made_elsewhere |= _written(native)
        taken = _taken_away(python, made_elsewhere) | _taken_away(native, made_elsewhere | _written(python))
        out: list[ObservedFile] = []
        for (abspath, mode), path in seen.items():
            if mode == "read" and abspath in read_before:
                before = read_before[abspath].before_change
                if before is None or before[1] is not None or not _special(path, abspath, "read", notes, out):
                    out.append(_read_before_change(path, abspath, read_before[abspath], notes))
                continue
            size, digest = self.journal.files.hash(abspath)
            if size is None and _special(path, abspath, "write" if mode == "write" else "read", notes, out):
                continue
            gone = size is None and abspath in taken and absent(abspath)
            if mode == "read" and size is None:
                if not gone:
                    continue  # the open failed: nothing was read
                notes.append(f"file {path} was read, then removed or renamed by the cell: its content is not known")
            out.append(ObservedFile(path, abspath, "write" if mode == "write" else "read", size, digest,
                                    mode == "write" and gone))
        return out

    def _changed_in_cell(self, read: FileEvent) -> bool:
        """Whether a read hashed just before Python changed the file (an 'a' or 'r+' open) saw
        another file than the cell started with (none was there, or its size, times or inode
        differ): then it read what the cell itself wrote there. Known for the files the cell
        names (stat'ed at its start); any other keeps its read."""
        key = read.before_change_key
        return key is not None and self._native.changed_since_start(read.abspath, key) is True

    def _random_state_notes(self, cell: _Cell, facts: CellFacts) -> list[str]:
        """The global generators the cell drew from or seeded: compared with their state after
        the cell before (nothing draws between cells but another thread, or a silent execution),
        draws made while a module was first imported told from the cell's own. The cell's own
        changes go to ``facts`` (a read of the state before, a write of the state after: values
        a replay compares); an import's stay notes, so an import cell does not diverge."""
        imported = len(sys.modules) != cell.modules
        draws, self._draws = self._draws, None
        if draws is None:  # the cell's start failed before the watch began
            before, self._random_states = self._random_states or {}, random_state.probe()
            return random_state.changed(before, self._random_states, imported)
        notes = draws.finish(imported, recorded=True)
        self._random_states = draws.last
        facts.random_changes = tuple(draws.changes)
        return notes

    def _stop_draws(self) -> None:
        draws, self._draws = self._draws, None
        if draws is not None:
            random_state.stop(draws)

    def _packages_added(self, cell: _Cell) -> dict[str, str]:
        if len(sys.modules) == cell.modules and self._known_modules is not None:
            return {}
        tops = top_level_modules()
        if self._known_modules is None:  # first cell: its imports belong to it
            self._known_modules = self._modules_at_install
        fresh = tops - self._known_modules
        self._known_modules |= tops
        return self._versions.versions(fresh)

    def _session_info(self) -> SessionInfo:
        return SessionInfo(
            session=self.session_id,
            started=_now_iso(),
            notebook=self.journal.notebook,
            python=python_version(),
            platform=platform_string(),
            packages=self._versions.versions(top_level_modules()),
            cwd=os.getcwd(),
            hash_seed=self.hash_seed,
            fingerprints=FINGERPRINT_SCHEME,
        )

    def _warn(self, message: str) -> None:
        try:
            text = " ".join(message.split())
            text = text if len(text) <= 300 else text[:299] + "…"
            print(f"nbgov: {text} (the cell itself ran normally)", file=sys.stderr)
        except Exception:
            pass


def _error(result: Any) -> ErrorInfo | None:
    exc = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
    if exc is None:
        return None
    return ErrorInfo(type(exc).__name__, _exception_message(exc))


def _exception_message(exc: BaseException) -> str:
    """The message of an exception, without calling a user ``__str__`` (see ``exception_text``)."""
    return exception_message(exc)


def _taken_away(python: list[FileEvent], made_elsewhere: set[str]) -> set[str]:
    """Paths the cell removed or renamed away that it had not written itself before: what
    was there came from before the cell. A file the cell made and removed (a temporary
    file, often under a random name) is no claim either way, as before."""
    written = set(made_elsewhere)
    taken: set[str] = set()
    for ev in python:
        if ev.removes and ev.abspath not in written:
            taken.add(ev.abspath)
        elif ev.mode == "write" and not ev.removes:
            written.add(ev.abspath)
    return taken


def _special(path: str, abspath: str, mode: FileMode, notes: list[str], out: list[ObservedFile]) -> bool:
    """A file with no content found (no size or hash): when it is a FIFO, device or socket, its
    access is kept in ``out`` with no content and ``notes`` says why (True). Not dropped as a
    failed open: replay must know the cell read one (reading it again would wait for a writer,
    or give other bytes), and the step cannot be called reproduced."""
    special = special_file(abspath)
    if special is None:
        return False
    if mode == "read":
        notes.append(f"file {path} is {special}, not a file: what the cell read from it has no content to hash, "
                     "so this step cannot be compared or replayed")
    else:
        notes.append(f"file {path} is {special}, not a file: what the cell wrote to it is kept nowhere nbgov "
                     "could hash, so it cannot be compared")
    out.append(ObservedFile(path, abspath, mode, None, None))
    return True


def _read_before_change(path: str, abspath: str, read: FileEvent, notes: list[str]) -> ObservedFile:
    """A file the cell read, then wrote (or another process changed): the read is what was
    there before the change."""
    assert read.before_change is not None
    size, digest = read.before_change
    if digest is None:
        if read.changed_by == ANOTHER_PROCESS:  # in no known order with the cell's read
            notes.append(f"file {path} was read by the cell and changed by {ANOTHER_PROCESS} while it ran: its "
                         "content when read is not known")
        else:
            notes.append(f"file {path} was read, then overwritten by the cell: its content when read is not known")
    return ObservedFile(path, abspath, "read", size, digest, False)


def _written(events: list[FileEvent]) -> set[str]:
    return {ev.abspath for ev in events if ev.mode == "write" and not ev.removes}


def _display_path(abspath: str, cwd: str) -> str:
    """Paths under the working folder are shown relative to it, others absolute."""
    rel = os.path.relpath(abspath, cwd)
    return abspath if rel.startswith("..") else rel


@contextmanager
def _interrupts_held() -> Iterator[list[int]]:
    """Hold Ctrl-C / kernel interrupts while the record is appended (they are counted, not
    raised: the cell has already finished)."""
    held: list[int] = []
    # _signal's own functions: signal's wrappers turn handlers into enums and back, which cost
    # more than the rest of holding; the previous handler is put back as it was set
    previous = _signal.getsignal(_SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is None:
        yield held
        return
    try:
        _signal.signal(_SIGINT, lambda signum, frame: held.append(signum))
    except (ValueError, OSError):
        yield held
        return
    try:
        yield held
    finally:
        _signal.signal(_SIGINT, previous)


def _why(exc: BaseException) -> str:
    return "recording was interrupted" if isinstance(exc, KeyboardInterrupt) else describe(exc)


def _random_states() -> dict[str, random_state.State]:
    try:
        return random_state.probe()
    except Exception:  # noqa: BLE001 - an advisory check: the first cell's is then not told
        return {}


def _running_cells() -> int:
    """How many IPython cell executions are on the call stack (stateless, so a lost
    post_run_cell can never leave the recorder believing it is nested).

    A frame of ``run_cell_async`` is told by its module's globals and its line, read from the
    frame without ``f_code``: reading that fires an audit event (``object.__getattr__``), which
    costs a call of every audit hook installed (nbgov's own among them) per frame, on a stack
    that is 30 frames deep in a kernel."""
    found = _run_cell_async_lines()
    if found is None:
        return _running_cells_by_code()
    module_globals, first, last = found
    count = 0
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is module_globals and first <= frame.f_lineno <= last:
            count += 1
        frame = frame.f_back  # type: ignore[assignment]
    return count


@functools.cache
def _run_cell_async_lines() -> tuple[dict[str, Any], int, int] | None:
    """The globals of IPython's ``interactiveshell`` module and the lines of its
    ``InteractiveShell.run_cell_async`` (no nested function of it calls a hook)."""
    try:
        from IPython.core import interactiveshell

        code = interactiveshell.InteractiveShell.__dict__["run_cell_async"].__code__
        lines = [line for _, _, line in code.co_lines() if line is not None]
        return vars(interactiveshell), min(lines), max(lines)
    except Exception:  # noqa: BLE001 - another IPython: tell the frames by their code
        return None


def _running_cells_by_code() -> int:
    count = 0
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "run_cell_async" and code.co_filename.endswith("interactiveshell.py"):
            count += 1
        frame = frame.f_back  # type: ignore[assignment]
    return count


def _now_iso() -> str:
    """UTC now to the millisecond (``2026-12-07T03:33:24.275Z``, as ``datetime.isoformat``
    writes it with ``timespec="milliseconds"``): the text up to the second is made once per
    second (every cell asks; datetime's way cost a cell 10-20 us in a kernel)."""
    global _second_text
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    known = _second_text  # read once: another thread may replace it meanwhile
    if known[0] != seconds:
        known = _second_text = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{known[1]}.{nanoseconds // 1_000_000:03d}Z"


_second_text: tuple[int, str] = (-1, "")  # the last second asked for, and its text

