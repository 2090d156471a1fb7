"""The session's log: append, provenance, stale answers and subscribers.

Each record is appended to the sidecar before the cell returns; if the sidecar cannot
be written (read-only folder, full disk) the entry is still chained in memory, so the
frontend gets a consistent log, and the failure becomes one warning line. After an
append, the provenance (last writer of each variable, file and model version) and the
stale trackers take the typed entry in, then subscribers get it.

Stale answers come from one ``StaleTracker`` per scope: this session's entries, and
the whole sidecar (every session; earlier sessions' files placed where they are now,
``nbgov.lineage.placement``), which is read once and then followed entry by entry; it
is read again only when its size or mtime shows a change this journal did not make
(another kernel on the same notebook).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nbgov.lineage.build import EarlierWriters, Provenance
from nbgov.lineage.files import FileHasher
from nbgov.lineage.relocate import move_sidecar
from nbgov.lineage.record import ExecutionRecord, LogEntry, SessionInfo, as_entries
from nbgov.lineage.store import ZERO_HASH, SidecarStore, make_entry, sidecar_path

if TYPE_CHECKING:  # imported when stale flags are first asked for (a headless run never asks)
    from nbgov.lineage.stale import StaleTracker

Subscriber = Callable[[LogEntry], None]
UNTITLED = "untitled.ipynb"


class Journal:
    """One per recorder; ``problems`` collects what went wrong, for the recorder's one warning line."""

    def __init__(self, notebook: str | None, store: SidecarStore | None = None) -> None:
        self.notebook = notebook
        self._store = store
        self._store_resolved = store is not None
        self.session_entry: LogEntry | None = None
        self.records: list[LogEntry] = []
        self.provenance = Provenance(earlier=self._earlier_writers)
        self.problems: list[str] = []
        self.files = FileHasher()
        self._subscribers: list[Subscriber] = []
        self._last: tuple[int, str] = (-1, ZERO_HASH)  # (seq, hash) of the in-memory chain
        self._session_stale: StaleTracker | None = None
        self._sidecar_stale: StaleTracker | None = None
        self._sidecar_key: tuple[int, int] | None = None  # sidecar (size, mtime_ns) it reflects

    # -- the sidecar -------------------------------------------------------
    @property
    def store(self) -> SidecarStore | None:
        """The sidecar (created at the first append, next to the notebook); None until then."""
        return self._store

    @store.setter
    def store(self, value: SidecarStore | None) -> None:
        self._store = value
        self._store_resolved = True
        self._sidecar_stale = None

    def _resolve_store(self) -> SidecarStore | None:
        if not self._store_resolved:
            self._store_resolved = True
            notebook = self.notebook or str(Path(os.getcwd()) / UNTITLED)
            self._store = SidecarStore(sidecar_path(notebook))
        return self._store

    def entries(self) -> list[LogEntry]:
        """This session's entries (session entry first), as delivered to subscribers."""
        return ([self.session_entry] if self.session_entry else []) + list(self.records)

    # -- appending ---------------------------------------------------------
    def append_session(self, info: SessionInfo) -> LogEntry:
        self.session_entry = self._append(info)
        self._notify(self.session_entry)
        return self.session_entry

    def append_execution(self, record: ExecutionRecord, also_written: tuple[str, ...] = ()) -> LogEntry:
        """Append, note its writes as the latest, follow it in the stale answers, notify."""
        entry = self._append(record)
        self.records.append(entry)
        self.provenance.note(record, also_written)
        self._notify(entry)  # after records holds it: subscribers see a consistent state
        return entry

    def _append(self, body: ExecutionRecord | SessionInfo) -> LogEntry:
        """Append to the sidecar; if that fails, chain the entry in memory and say why."""
        kind = "execution" if isinstance(body, ExecutionRecord) else "session"
        json_body = body.to_json()
        raw = None
        sidecar_before: tuple[int, int] | None = None
        try:
            store = self._resolve_store()
            if store is not None:
                sidecar_before = _file_key(store.path) if self._sidecar_stale is not None else None
                raw = store.append(kind, json_body)
        except Exception as exc:
            where = f" to {self.store.path}" if self.store is not None else ""
            self.problems.append(f"lineage not saved{where}: {describe(exc)}")
        if self._store is not None and self._store.notices:
            self.problems += self._store.notices
            self._store.notices.clear()
        stored = raw is not None
        if raw is None:
            raw = make_entry(self._last[0] + 1, self._last[1], kind, json_body)
        entry = LogEntry(int(raw["seq"]), str(raw["prev"]), str(raw["hash"]), body, raw)
        self._last = (entry.seq, entry.hash)
        try:
            self._follow(entry, sidecar_before, stored)
        except Exception:  # stale flags are advisory: start over at the next question
            self._sidecar_stale = self._session_stale = None
        return entry

    # -- subscribers -------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(entry)`` after each entry is appended; returns an unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, entry: LogEntry) -> None:
        for callback in list(self._subscribers):
            try:
                callback(entry)
            except Exception as exc:
                self.problems.append(f"lineage subscriber failed: {describe(exc)}")

    # -- stale answers -----------------------------------------------------
    def stale(self, now_files: bool = True) -> dict[str, list[str]]:
        """Stale flags over the whole sidecar (all sessions), or this session without one;
        ``now_files`` also compares the files read with the disk."""
        tracker = self._sidecar_tracker()
        if now_files:
            tracker.check_files(self.files)
        return tracker.flags()

    def session_stale(self) -> dict[str, list[str]]:
        """Stale flags among this session's entries only (in memory, no disk access)."""
        return self._session_tracker().flags()

    def _session_tracker(self) -> StaleTracker:
        if self._session_stale is None:
            self._session_stale = _tracker(self.entries())
        return self._session_stale

    def _sidecar_tracker(self) -> StaleTracker:
        store = self.store
        if store is None:
            return self._session_tracker()
        key = _file_key(store.path)
        if self._sidecar_stale is None or key != self._sidecar_key:
            entries = self.entries()
            try:
                entries = self._placed(as_entries(store.entries()))
            except Exception as exc:
                self.problems.append(f"stale flags from this session only: {describe(exc)}")
            self._sidecar_stale, self._sidecar_key = _tracker(entries), key
        return self._sidecar_stale

    def _placed(self, entries: list[LogEntry]) -> list[LogEntry]:
        """Earlier sessions' files where they are now (a copied folder is checked in the copy,
        as replay and `nbgov show` do); this kernel's own files are live and stay as recorded."""
        if not self.notebook:
            return entries
        from nbgov.lineage.placement import relocated

        own = self.session_entry.session if self.session_entry is not None else None
        return relocated(entries, Path(self.notebook), keep=own.session if own is not None else None)

    def _follow(self, entry: LogEntry, sidecar_before: tuple[int, int] | None, stored: bool) -> None:
        if self._session_stale is not None:
            self._session_stale.add(entry)
        tracker = self._sidecar_stale
        if tracker is None or not stored:
            return
        last_seq = tracker.entries[-1].seq if tracker.entries else -1
        if sidecar_before == self._sidecar_key and entry.seq == last_seq + 1 and self.store is not None:
            tracker.add(entry)  # the file changed by exactly this append
            self._sidecar_key = _file_key(self.store.path)
        else:
            self._sidecar_stale = None  # someone else wrote too: read it again when asked

    def _earlier_writers(self) -> EarlierWriters:
        """The files and model versions the log's other sessions wrote (where those files
        are now, as for stale flags): asked once per kernel session, when a cell first reads
        a file or uses a model this session did not write."""
        own = self.session_entry.session if self.session_entry is not None else None
        try:
            store = self._resolve_store()
            entries = self._placed(as_entries(store.entries())) if store is not None else []
        except Exception as exc:
            self.problems.append(f"earlier sessions not searched for who wrote what this cell read: {describe(exc)}")
            return EarlierWriters()
        records = (e.record for e in entries if e.record is not None)
        return EarlierWriters.of(r for r in records if own is None or r.session != own.session)

    # -- the notebook moved ------------------------------------------------
    def follow(self, notebook: str) -> str | None:
        """The notebook was renamed or moved: keep recording next to it. The sidecar written so
        far moves along (chain intact); returns a line for the user when something was odd."""
        old_store = self.store if self._store_resolved else None
        self.notebook = notebook
        if old_store is None:
            return None  # nothing written yet: the first append will use the new name
        new_path = sidecar_path(notebook)
        if new_path == old_store.path:
            return None
        old_store.close()
        note = move_sidecar(old_store.path, new_path)
        self.store = SidecarStore(new_path)
        return note

    def adopt(self, orphan: Path) -> str | None:
        """Continue the log a notebook had under its old name (renamed while no kernel ran):
        moved to this notebook's sidecar when this journal has not appended anything yet."""
        target = sidecar_path(self.notebook or str(Path(os.getcwd()) / UNTITLED))
        if orphan == target or not orphan.exists():
            return None
        if self.session_entry is not None or (target.exists() and target.stat().st_size > 0):
            return f"the lineage log {orphan.name} of this notebook's old name was left in place: {target.name} exists"
        if self._store is not None:
            self._store.close()
        note = move_sidecar(orphan, target)
        self.store = SidecarStore(target)
        return note

    def close(self) -> None:
        self._subscribers.clear()
        if self.store is not None:
            try:
                self.store.close()
            except Exception:
                pass


def _tracker(entries: list[LogEntry]) -> StaleTracker:
    """A stale tracker over ``entries``; ``stale.py`` is imported here, when flags are first
    asked for (a headless run never asks)."""
    from nbgov.lineage.stale import StaleTracker

    return StaleTracker(entries)


def _file_key(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, None if it is missing: tells whether it changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def describe(exc: BaseException) -> str:
    """One line for an exception: its type and the start of its message."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:199] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
