"""The lineage recorder: one record per cell execution, appended before the cell returns.

Registered on IPython's ``pre_run_cell``/``post_run_cell``. Before a cell runs it
fingerprints the values the cell may touch; after, it fingerprints them again
(a changed hash is an in-place write whatever API caused it), diffs the
namespace bindings, collects files the cell opened (through Python's ``open``, or
named by the cell and touched by native code) and SQL the ``%%sqlml`` magic
reported, then appends the record to the sidecar and tells subscribers.
Any internal failure becomes one warning line on stderr; the cell's own result
is never touched.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import time
import types
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nbgov.lineage.analysis import CellNames, analyze, plausible_path, transform
from nbgov.lineage.environment import (
    VersionLookup,
    platform_string,
    python_version,
    top_level_modules,
)
from nbgov.lineage.files import (
    FileEvent,
    FileHasher,
    FileWatcher,
    PathProbe,
    expand_sql_paths,
)
from nbgov.lineage.fingerprint import Fingerprinter, hash_bytes
from nbgov.lineage.record import (
    ErrorInfo,
    ExecutionRecord,
    FileAccess,
    Fingerprint,
    ModelUse,
    Read,
    SessionInfo,
    SqlStatement,
    Write,
)
from nbgov.lineage.stale import StaleTracker, stale_records
from nbgov.lineage.store import ZERO_HASH, SidecarStore, make_entry, sidecar_path
from nbgov.lineage.values import ValueTracker
from nbgov.sqlml.activity import Activity

Entry = dict[str, Any]
Subscriber = Callable[[Entry], None]

_INTERNAL = re.compile(r"^(_+|_i+|_i\d+|_\d+|_ih|_oh|_dh|__.*__|In|Out|get_ipython|exit|quit)$")
UNTITLED = "untitled.ipynb"
_MISSING = object()


def install(shell: Any) -> Recorder:
    """Create a recorder for ``shell`` and register it on the shell's events."""
    rec = Recorder(shell)
    rec.register()
    return rec


def notebook_path(shell: Any) -> str | None:
    """The notebook this kernel serves: ``__session__`` (ipykernel) or JPY_SESSION_NAME."""
    ns = getattr(shell, "user_ns", {}) or {}
    for candidate in (ns.get("__session__"), os.environ.get("JPY_SESSION_NAME")):
        if isinstance(candidate, str) and candidate.strip():
            return os.path.abspath(candidate)
    return None


@dataclass
class _CellState:
    raw: str
    cell_id: str | None
    started: str
    t0: float
    names: CellNames
    before: dict[str, Fingerprint]
    bindings: dict[str, Any]  # a shallow copy: holds the objects, so ids cannot be reused
    modules: int
    sql: list[Mapping[str, Any]] = field(default_factory=list)
    models: list[Mapping[str, Any]] = field(default_factory=list)
    sql_reads: dict[str, Fingerprint] = field(default_factory=dict)
    unchanged: set[str] = field(default_factory=set)  # provably untouched: no after-hash needed
    probe: PathProbe | None = None  # paths the cell names, for files opened by native code


class Recorder:
    """Per-shell recording state; created by ``install`` and removed by ``uninstall``."""

    def __init__(self, shell: Any, store: SidecarStore | None = None, notebook: str | None = None) -> None:
        self.shell = shell
        self.session_id = uuid.uuid4().hex
        self.notebook = notebook if notebook is not None else notebook_path(shell)
        self._store: SidecarStore | None = store
        self._store_resolved = store is not None
        self.records: list[Entry] = []
        self.session_entry: Entry | None = None
        self.values = ValueTracker()
        self.files = FileHasher()
        self.last_writer: dict[str, str] = {}  # variable name -> record id
        self.file_writer: dict[str, str] = {}  # abspath -> record id
        self.model_source: dict[str, str] = {}  # "name@version" -> record id that created it
        self._subscribers: list[Subscriber] = []
        self._watcher = FileWatcher()
        self._versions = VersionLookup()
        self._cell: _CellState | None = None
        self._pending_sql: list[Mapping[str, Any]] = []
        self._pending_models: list[Mapping[str, Any]] = []
        self._problems: list[str] = []
        self._last_count = 0
        self._last_entry: tuple[int, str] = (-1, ZERO_HASH)  # (seq, hash), for the in-memory chain
        self._registered = False
        self._modules_at_install = top_level_modules()
        self._known_modules: set[str] | None = None
        self._hidden: dict[str, Any] = getattr(shell, "user_ns_hidden", {}) or {}
        # stale answers kept current per entry instead of recomputed per question
        self._session_stale: StaleTracker | None = None
        self._sidecar_stale: StaleTracker | None = None
        self._sidecar_key: tuple[int, int] | None = None  # sidecar (size, mtime_ns) it reflects

    @property
    def fingerprinter(self) -> Fingerprinter:
        """Hashes values (owned by ``values``; replaceable, e.g. to inject faults in tests)."""
        return self.values.fingerprinter

    @fingerprinter.setter
    def fingerprinter(self, value: Fingerprinter) -> None:
        self.values.fingerprinter = value

    @property
    def store(self) -> SidecarStore | None:
        """The sidecar (created at the first record, next to the notebook); None until then."""
        return self._store

    @store.setter
    def store(self, value: SidecarStore | None) -> None:
        self._store = value
        self._store_resolved = True

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
        self._subscribers.clear()
        if self.store is not None:
            try:
                self.store.close()
            except Exception:
                pass

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(entry)`` after each entry is appended; returns an unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            try:
                self._subscribers.remove(callback)
            except ValueError:
                pass

        return unsubscribe

    def entries(self) -> list[Entry]:
        """This session's entries (session entry first), as delivered to subscribers."""
        return ([self.session_entry] if self.session_entry else []) + list(self.records)

    def stale(self, now_files: bool = True) -> dict[str, list[str]]:
        """Stale records of the whole sidecar (all sessions), or of this session without one.

        The sidecar is read once and then followed entry by entry; it is read again only
        when its size or mtime shows a change this recorder did not make.
        """
        tracker = self._sidecar_tracker()
        if now_files:
            return stale_records(tracker.entries, now_files=True, hasher=self.files)
        return tracker.stale()

    def session_stale(self) -> dict[str, list[str]]:
        """Stale records among this session's entries only (in memory, no disk access)."""
        return self._session_tracker().stale()

    def _session_tracker(self) -> StaleTracker:
        if self._session_stale is None:
            self._session_stale = StaleTracker(self.entries())
        return self._session_stale

    def _sidecar_tracker(self) -> StaleTracker:
        store = self.store
        if store is None:
            return self._session_tracker()
        key = _file_key(store.path)
        if self._sidecar_stale is None or key != self._sidecar_key:
            entries: list[Entry] = self.entries()
            try:
                entries = store.entries()
            except Exception:
                pass
            self._sidecar_stale, self._sidecar_key = StaleTracker(entries), key
        return self._sidecar_stale

    def _follow(self, entry: Entry, sidecar_before: tuple[int, int] | None, stored: bool) -> None:
        """Feed a new entry to the stale trackers built so far."""
        if self._session_stale is not None:
            self._session_stale.add(entry)
        tracker = self._sidecar_stale
        if tracker is None:
            return
        last_seq = tracker.entries[-1].get("seq", -1) if tracker.entries else -1
        untouched = sidecar_before == self._sidecar_key and entry["seq"] == last_seq + 1
        if stored and untouched and self.store is not None:
            tracker.add(entry)  # the file changed by exactly this append
            self._sidecar_key = _file_key(self.store.path)
        elif stored:
            self._sidecar_stale = None  # someone else wrote too: read it again when asked

    # -- reports from the SQL magic ------------------------------------------
    def note_sql(self, statement: Activity | Mapping[str, Any]) -> None:
        """One executed %%sqlml statement; outside a cell it is kept for the next one."""
        try:
            activity = statement.to_json() if isinstance(statement, Activity) else dict(statement)
            cell = self._cell
            if cell is None:
                self._pending_sql.append(activity)
                return
            cell.sql.append(activity)
            ns = self.shell.user_ns
            for name in list(activity.get("frames") or []) + list(activity.get("params") or []):
                if isinstance(name, str) and name in ns and name not in cell.sql_reads:
                    cell.sql_reads[name] = cell.before.get(name) or self.fingerprinter.fingerprint(ns[name])
        except Exception as exc:
            self._problems.append(_describe(exc))

    def note_model(
        self, name: str, version: int, sha256: str, producer: str | None = None, opset: int | None = None
    ) -> None:
        """A model used outside a SQL statement report (e.g. by a Python API)."""
        model = {"name": name, "version": version, "sha256": sha256, "producer": producer, "opset": opset}
        if self._cell is None:
            self._pending_models.append(model)
        else:
            self._cell.models.append(model)

    # -- events ------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        with warnings.catch_warnings():  # our probing of user values must not warn into the cell
            warnings.simplefilter("ignore")
            self._pre_run_cell(info)

    def post_run_cell(self, result: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._post_run_cell(result)

    def _pre_run_cell(self, info: Any) -> None:
        if _running_cells() > 1:
            return  # a cell run from inside a cell (%%capture, run_cell): the outer record covers it
        self._cell = None
        self._problems = []
        self.values.start_cell()
        if getattr(info, "silent", False):
            return
        try:
            ns = self.shell.user_ns
            raw = info.raw_cell if isinstance(getattr(info, "raw_cell", None), str) else ""
            names = analyze(transform(self.shell, raw))
            candidates = self._candidates(names, ns)
            before = {name: self.values.before(name, ns[name]) for name in candidates}
            cell = _CellState(
                raw=raw,
                cell_id=getattr(info, "cell_id", None),
                started=_now_iso(),
                t0=0.0,
                names=names,
                before=before,
                bindings=dict(ns),
                modules=len(sys.modules),
                sql=self._pending_sql,
                models=self._pending_models,
            )
            cell.unchanged = self.values.provably_unchanged(names, candidates, ns)
            self._pending_sql, self._pending_models = [], []
            self._cell = cell
            self._watcher.start()
            cell.probe = self._probe(names, ns)
            cell.t0 = time.perf_counter()
        except Exception as exc:
            self._cell = None
            self._warn(_describe(exc))

    def _post_run_cell(self, result: Any) -> None:
        if _running_cells() > 0:
            return  # the end of a cell run from inside a cell
        t1 = time.perf_counter()
        events = self._watcher.stop()
        cell, self._cell = self._cell, None
        if cell is None:
            return
        try:
            body = self._build(cell, result, t1 - cell.t0, events).to_json()
            if self.session_entry is None:
                self.session_entry = self._append("session", self._session_info().to_json())
                self._notify(self.session_entry)
            entry = self._append("execution", body)
            self.records.append(entry)
            self._after_record(body)
            self._notify(entry)  # after rec.records holds it: subscribers see a consistent state
        except Exception as exc:
            self._problems.append(_describe(exc))
        if self._problems:
            self._warn(self._problems[0])
            self._problems = []

    # -- building the record -------------------------------------------------
    def _candidates(self, names: CellNames, ns: Mapping[str, Any]) -> set[str]:
        """Names the cell mentions, plus globals read by notebook functions it calls."""
        only_rebound = names.stores - names.loads - names.mutates - names.impure
        found = {
            n for n in names.referenced - only_rebound if n in ns and self._is_data_name(n, ns[n])
        }
        for name in names.loads:
            fn = ns.get(name)
            if isinstance(fn, types.FunctionType) and fn.__globals__ is ns:
                for g in _code_globals(fn.__code__):
                    if g in ns and self._is_data_name(g, ns[g]):
                        found.add(g)
        return found

    def _probe(self, names: CellNames, ns: Mapping[str, Any]) -> PathProbe | None:
        """Stat the paths the cell names (values of names it reads, then its string constants)."""
        mentions: list[str] = []
        for name in names.loads:
            value = ns.get(name)
            if isinstance(value, os.PathLike):
                try:
                    value = os.fspath(value)
                except Exception:
                    continue
            if isinstance(value, str) and plausible_path(value):
                mentions.append(value)
        mentions.extend(names.strings)
        if not mentions:
            return None
        try:
            return PathProbe.start(mentions, self._watcher.ignored)
        except Exception as exc:  # an advisory detector: the record goes on without it
            self._problems.append(f"native file check skipped: {_describe(exc)}")
            return None

    def _build(self, cell: _CellState, result: Any, duration: float, events: list[Any]) -> ExecutionRecord:
        ns = self.shell.user_ns
        count = getattr(result, "execution_count", None)
        if not isinstance(count, int):
            count = self._last_count + 1
        self._last_count = max(self._last_count, count)

        error: ErrorInfo | None = None
        exc = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
        if exc is not None:
            error = ErrorInfo(type(exc).__name__, _short(str(exc), 2000))

        names = cell.names
        # reads: names loaded before being stored, that existed before the cell
        reads: list[Read] = []
        read_names = {n for n in names.loads if n in cell.before}
        for fn_name in names.loads:
            fn = cell.before.get(fn_name)
            if fn is not None and fn.kind == "function":
                value = ns.get(fn_name)
                if isinstance(value, types.FunctionType):
                    read_names.update(g for g in _code_globals(value.__code__) if g in cell.before)
        for name in sorted(read_names):
            reads.append(Read(name, cell.before[name], self.last_writer.get(name)))
        for name, fp in sorted(cell.sql_reads.items()):
            if name not in read_names:
                reads.append(Read(name, fp, self.last_writer.get(name)))

        # writes: rebound names, then in-place changes
        writes: list[Write] = []
        rebound: set[str] = set()
        bindings = cell.bindings
        if names.dynamic:  # exec, globals(), magics: any binding may have changed
            maybe = list(ns)
        else:
            maybe = list(names.stores | cell.before.keys() | (ns.keys() - bindings.keys()))
        for name in maybe:
            value = ns.get(name, _MISSING)
            if value is _MISSING or (bindings.get(name, _MISSING) is value and name not in names.stores):
                continue
            if self._is_data_name(name, value):
                rebound.add(name)
        for name in sorted(rebound):
            writes.append(Write(name, self.values.after(name, ns[name]), False))
        for name in sorted(cell.before):
            if name in rebound or name not in ns:
                continue
            if name in cell.unchanged:
                continue  # used only as an operand: same object, same content
            after = self.values.after(name, ns[name])
            changed = cell.before[name].same_content(after) is False
            if changed or name in names.mutates:
                writes.append(Write(name, after, True))
        handled = rebound | cell.before.keys()
        for name, fp in sorted(self.values.shared_writes([w.name for w in writes], ns, handled).items()):
            if self._is_data_name(name, ns[name]):
                writes.append(Write(name, fp, True))  # changed through another name
        deletes = sorted(n for n in bindings.keys() - ns.keys() if not _INTERNAL.match(n))
        self.values.forget(deletes)
        if self.values.interrupted:
            self._problems.append("interrupted while fingerprinting: unfinished values are marked as such")

        return ExecutionRecord(
            session=self.session_id,
            execution_count=count,
            cell_id=cell.cell_id if isinstance(cell.cell_id, str) else None,
            code=cell.raw,
            code_hash=hash_bytes(cell.raw.encode("utf-8", "surrogatepass")),
            started=cell.started,
            duration_s=max(0.0, round(duration, 6)),
            status="error" if error else "ok",
            error=error,
            reads=tuple(reads),
            writes=tuple(writes),
            deletes=tuple(deletes),
            files=tuple(self._files(events, cell.sql, cell.probe)),
            models=tuple(self._models(cell)),
            sql=tuple(_sql_statement(a) for a in cell.sql),
            packages_added=self._packages_added(cell),
        )

    def _files(
        self, events: list[Any], sql: list[Mapping[str, Any]], probe: PathProbe | None = None
    ) -> list[FileAccess]:
        seen: dict[tuple[str, str], str] = {}
        for ev in events:
            seen.setdefault((ev.abspath, ev.mode), ev.path)
        for activity in sql:
            for mode, key in (("read", "files_read"), ("write", "files_written")):
                for path, abspath in expand_sql_paths([p for p in activity.get(key) or [] if isinstance(p, str)]):
                    seen.setdefault((abspath, mode), path)
        for ev in self._native_events(probe):
            if ev.mode == "write" or not any((ev.abspath, m) in seen for m in ("read", "write")):
                seen.setdefault((ev.abspath, ev.mode), ev.path)
        out: list[FileAccess] = []
        for (abspath, mode), path in seen.items():
            size, digest = self.files.hash(abspath)
            if mode == "read" and size is None:
                continue  # the open failed: nothing was read
            source = self.file_writer.get(abspath) if mode == "read" else None
            out.append(FileAccess(path, abspath, mode, size, digest, source))
        return out

    def _native_events(self, probe: PathProbe | None) -> list[FileEvent]:
        """Files the cell named and native code may have opened (the audit hook cannot see)."""
        if probe is None:
            return []
        try:
            return probe.events()
        except Exception as exc:
            self._problems.append(f"native file check skipped: {_describe(exc)}")
            return []

    def _models(self, cell: _CellState) -> list[ModelUse]:
        found: dict[str, ModelUse] = {}
        raw_models: list[Mapping[str, Any]] = list(cell.models)
        for activity in cell.sql:
            raw_models.extend(m for m in activity.get("models") or [] if isinstance(m, Mapping))
        for m in raw_models:
            try:
                key = f"{m['name']}@{int(m['version'])}"
                opset = m.get("opset")
                found.setdefault(
                    key,
                    ModelUse(
                        name=str(m["name"]),
                        version=int(m["version"]),
                        sha256=str(m["sha256"]),
                        producer=m.get("producer"),
                        opset=int(opset) if opset is not None else None,
                        source=self.model_source.get(key),
                    ),
                )
            except (KeyError, TypeError, ValueError) as exc:
                self._problems.append(f"bad model report ignored ({_describe(exc)})")
        return list(found.values())

    def _packages_added(self, cell: _CellState) -> dict[str, str]:
        if len(sys.modules) == cell.modules and self._known_modules is not None:
            return {}
        tops = top_level_modules()
        if self._known_modules is None:  # first cell: its imports belong to it
            self._known_modules = self._modules_at_install
        fresh = tops - self._known_modules
        self._known_modules |= tops
        return self._versions.versions(fresh)

    def _after_record(self, body: Mapping[str, Any]) -> None:
        rid = body["id"]
        for w in body["writes"]:
            self.last_writer[w["name"]] = rid
        for name in body["deletes"]:
            self.last_writer.pop(name, None)
        for f in body["files"]:
            if f["mode"] == "write":
                self.file_writer[f["abspath"]] = rid
        for stmt in body["sql"]:
            if stmt["kind"] == "create_model":
                for key in stmt["models"]:
                    self.model_source[key] = rid

    def _session_info(self) -> SessionInfo:
        return SessionInfo(
            session=self.session_id,
            started=_now_iso(),
            notebook=self.notebook,
            python=python_version(),
            platform=platform_string(),
            packages=self._versions.versions(top_level_modules()),
            cwd=os.getcwd(),
        )

    # -- storing -----------------------------------------------------------
    def _resolve_store(self) -> SidecarStore | None:
        if not self._store_resolved:
            self._store_resolved = True
            nb = self.notebook or str(Path(os.getcwd()) / UNTITLED)
            self._store = SidecarStore(sidecar_path(nb))
        return self._store

    def _append(self, kind: str, body: Mapping[str, Any]) -> Entry:
        """Append to the sidecar; if that fails, chain the entry in memory and say why."""
        entry: Entry | None = None
        sidecar_before: tuple[int, int] | None = None
        try:
            store = self._resolve_store()
            if store is not None:
                if self._sidecar_stale is not None:
                    sidecar_before = _file_key(store.path)
                entry = store.append(kind, body)
        except Exception as exc:
            where = f" to {self.store.path}" if self.store is not None else ""
            self._problems.append(f"lineage not saved{where}: {_describe(exc)}")
        stored = entry is not None
        if entry is None:
            seq, prev = self._last_entry
            entry = make_entry(seq + 1, prev, kind, body)
        self._last_entry = (entry["seq"], entry["hash"])
        try:
            self._follow(entry, sidecar_before, stored)
        except Exception:  # stale flags are advisory: start over at the next question
            self._sidecar_stale = self._session_stale = None
        return entry

    def _notify(self, entry: Entry) -> None:
        for callback in list(self._subscribers):
            try:
                callback(entry)
            except Exception as exc:
                self._problems.append(f"lineage subscriber failed: {_describe(exc)}")

    def _is_data_name(self, name: str, value: Any) -> bool:
        """Notebook data, not IPython's own names, builtins it injects, or modules."""
        if _INTERNAL.match(name) or isinstance(value, types.ModuleType):
            return False
        if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
            if getattr(value, "__module__", "__main__") != "__main__":
                return False  # imported code (from x import f, SomeClass): not notebook data
        hidden = self._hidden.get(name, _MISSING)
        return hidden is not value

    def _warn(self, message: str) -> None:
        try:
            print(f"nbgov: {_short(message, 300)} (the cell itself ran normally)", file=sys.stderr)
        except Exception:
            pass


def _file_key(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, None if it is missing: tells whether it changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _running_cells() -> int:
    """How many IPython cell executions are on the call stack (stateless, so a lost
    post_run_cell can never leave the recorder believing it is nested)."""
    count = 0
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "run_cell_async" and code.co_filename.endswith("interactiveshell.py"):
            count += 1
        frame = frame.f_back  # type: ignore[assignment]
    return count


def _code_globals(code: types.CodeType, depth: int = 0) -> set[str]:
    """Global names a function's code (and its nested code) may read or write."""
    names = set(code.co_names)
    if depth < 3:
        for const in code.co_consts:
            if inspect.iscode(const):
                names |= _code_globals(const, depth + 1)
    return names


def _sql_statement(activity: Mapping[str, Any]) -> SqlStatement:
    def strs(key: str) -> tuple[str, ...]:
        return tuple(str(x) for x in activity.get(key) or [])

    models: list[str] = []
    for m in activity.get("models") or []:
        if isinstance(m, Mapping) and "name" in m and "version" in m:
            models.append(f"{m['name']}@{m['version']}")
        elif isinstance(m, str):
            models.append(m)
    return SqlStatement(
        statement=str(activity.get("statement", "")),
        kind=str(activity.get("kind", "unknown")),
        tables_read=strs("tables_read"),
        tables_written=strs("tables_written"),
        files_read=strs("files_read"),
        files_written=strs("files_written"),
        models=tuple(models),
    )


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_short(str(exc), 200)}" if str(exc) else type(exc).__name__
