"""Which recorded executions are stale now, and why.

A record is stale when something it consumed has moved on since it ran: an
input variable was rewritten by a later execution, a file it read was rewritten
or changed on disk, a model it used got a new version, or a record it read from
is itself stale. Works on plain entry dicts (sidecar lines or notebook
metadata), so the sidebar, the CLI and the recorder share one answer.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

from nbgov.lineage.files import FileHasher


def _executions(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    ordered = sorted(
        (e for e in entries if e.get("kind") == "execution" and isinstance(e.get("body"), Mapping)),
        key=lambda e: e.get("seq", 0),
    )
    return [e["body"] for e in ordered]


def _label(body: Mapping[str, Any]) -> str:
    return f"[{body.get('execution_count')}]"


def stale_records(
    entries: Iterable[Mapping[str, Any]], now_files: bool = True, hasher: FileHasher | None = None
) -> dict[str, list[str]]:
    """Record id -> reasons, for every stale execution record (fresh ones are absent).

    ``now_files`` also compares each file read with its current content on disk.
    """
    bodies = _executions(entries)
    hasher = hasher or FileHasher()
    var_writes: dict[str, list[int]] = {}
    file_writes: dict[str, list[int]] = {}
    model_versions: dict[str, list[tuple[int, int, str]]] = {}
    for i, body in enumerate(bodies):
        for w in body.get("writes", ()):
            var_writes.setdefault(w["name"], []).append(i)
        for f in body.get("files", ()):
            if f.get("mode") == "write":
                file_writes.setdefault(f["abspath"], []).append(i)
        for m in body.get("models", ()):
            model_versions.setdefault(m["name"], []).append((i, int(m["version"]), str(m["sha256"])))
        for stmt in body.get("sql", ()):
            if stmt.get("kind") == "create_model":
                for key in stmt.get("models", ()):
                    name, _, version = str(key).rpartition("@")
                    if name and version.isdigit():
                        model_versions.setdefault(name, []).append((i, int(version), ""))

    current_hash: dict[str, str | None] = {}

    def disk_hash(abspath: str) -> str | None:
        if abspath not in current_hash:
            current_hash[abspath] = hasher.hash(abspath)[1]
        return current_hash[abspath]

    stale: dict[str, list[str]] = {}
    for i, body in enumerate(bodies):
        reasons: list[str] = []
        own_writes = {w["name"] for w in body.get("writes", ())}
        for r in body.get("reads", ()):
            later = [j for j in var_writes.get(r["name"], ()) if j > i]
            if later:
                reasons.append(f"input {r['name']} rewritten by {_label(bodies[later[-1]])}")
            elif r.get("source") in stale and r["name"] not in own_writes:
                reasons.append(f"input {r['name']} comes from stale {_label_of(bodies, r['source'])}")
        for f in body.get("files", ()):
            if f.get("mode") != "read":
                continue
            later = [j for j in file_writes.get(f["abspath"], ()) if j > i]
            if later:
                reasons.append(f"file {f['path']} rewritten by {_label(bodies[later[-1]])}")
            elif now_files and f.get("hash") is not None:
                now = disk_hash(f["abspath"])
                if now is None:
                    reasons.append(f"file {f['path']} is gone or unreadable")
                elif now != f["hash"]:
                    reasons.append(f"file {f['path']} changed on disk since read")
        for m in body.get("models", ()):
            newer = [
                (j, v, sha)
                for j, v, sha in model_versions.get(m["name"], ())
                if j > i and (v != int(m["version"]) or (sha and sha != m["sha256"]))
            ]
            if newer:
                reasons.append(f"model {m['name']} changed: version {newer[-1][1]} since {_label(bodies[newer[-1][0]])}")
        if reasons:
            stale[str(body.get("id"))] = reasons
    return stale


def _label_of(bodies: list[Mapping[str, Any]], rid: str) -> str:
    for body in bodies:
        if body.get("id") == rid:
            return _label(body)
    return rid


class StaleTracker:
    """``stale_records(entries, now_files=False)`` kept up to date one entry at a time.

    Recomputing the whole log after every cell is quadratic over a session; a new
    entry can only change the records that read what it writes (a name, a file, a
    model) and, through "comes from stale", the records downstream of those. So
    per-name indexes of writers and readers are kept, and only those records are
    re-judged, oldest first. Disk checks (``now_files``) are not incremental:
    run ``stale_records(tracker.entries)`` for those.
    """

    def __init__(self, entries: Iterable[Mapping[str, Any]] = ()) -> None:
        self._reset()
        for entry in sorted(entries, key=lambda e: e.get("seq", 0)):
            self.add(entry)

    def _reset(self) -> None:
        self.entries: list[Mapping[str, Any]] = []  # everything added, in arrival order
        self._last_seq: Any = None
        self._bodies: list[Mapping[str, Any]] = []
        self._ids: list[str] = []
        self._reasons: list[list[str]] = []
        self._index_of: dict[str, list[int]] = {}  # record id -> positions (ids may repeat)
        self._var_last: dict[str, int] = {}  # name -> position of its latest writer
        self._file_last: dict[str, int] = {}  # abspath -> position of its latest writer
        self._model_uses: dict[str, list[tuple[int, int, str]]] = {}
        self._var_readers: dict[str, list[int]] = {}
        self._file_readers: dict[str, list[int]] = {}
        self._model_users: dict[str, list[int]] = {}
        self._source_readers: dict[Any, list[int]] = {}  # record id -> positions reading from it
        self._stale: dict[str, list[str]] = {}

    def add(self, entry: Mapping[str, Any]) -> None:
        """Take one more entry (non-execution entries are kept but judge nothing)."""
        seq = entry.get("seq", 0)
        if self._last_seq is not None and seq < self._last_seq:
            earlier = self.entries + [entry]  # out of order: judge again from the start
            self._reset()
            for old in sorted(earlier, key=lambda e: e.get("seq", 0)):
                self.add(old)
            return
        self.entries.append(entry)
        self._last_seq = seq
        body = entry.get("body")
        if entry.get("kind") == "execution" and isinstance(body, Mapping):
            self._add_execution(body)

    def stale(self) -> dict[str, list[str]]:
        """Record id -> reasons, as ``stale_records(self.entries, now_files=False)`` (a copy)."""
        return {rid: list(reasons) for rid, reasons in self._stale.items()}

    def _add_execution(self, body: Mapping[str, Any]) -> None:
        n = len(self._bodies)
        rid = str(body.get("id"))
        self._bodies.append(body)
        self._ids.append(rid)
        self._reasons.append([])
        self._index_of.setdefault(rid, []).append(n)
        touched: set[int] = {n}
        # its writes first: they move on what earlier records consumed
        for w in body.get("writes", ()):
            touched.update(self._var_readers.get(w["name"], ()))
            self._var_last[w["name"]] = n
        for f in body.get("files", ()):
            if f.get("mode") == "write":
                touched.update(self._file_readers.get(f["abspath"], ()))
                self._file_last[f["abspath"]] = n
        for m in body.get("models", ()):
            touched.update(self._model_users.get(m["name"], ()))
            self._model_uses.setdefault(m["name"], []).append((n, int(m["version"]), str(m["sha256"])))
        for stmt in body.get("sql", ()):
            if stmt.get("kind") == "create_model":
                for key in stmt.get("models", ()):
                    name, _, version = str(key).rpartition("@")
                    if name and version.isdigit():
                        touched.update(self._model_users.get(name, ()))
                        self._model_uses.setdefault(name, []).append((n, int(version), ""))
        # then what it consumed, so later entries can find it
        for r in body.get("reads", ()):
            self._var_readers.setdefault(r["name"], []).append(n)
            self._source_readers.setdefault(r.get("source"), []).append(n)
        for f in body.get("files", ()):
            if f.get("mode") == "read":
                self._file_readers.setdefault(f["abspath"], []).append(n)
        for m in body.get("models", ()):
            self._model_users.setdefault(m["name"], []).append(n)
        self._rejudge(touched)

    def _rejudge(self, positions: Iterable[int]) -> None:
        """Judge ``positions`` again, oldest first, following staleness downstream."""
        queue = list(set(positions))
        heapq.heapify(queue)
        queued = set(queue)
        while queue:
            i = heapq.heappop(queue)
            queued.discard(i)
            reasons = self._judge(i)
            was_stale = bool(self._reasons[i])
            if reasons == self._reasons[i]:
                continue
            self._reasons[i] = reasons
            self._publish(self._ids[i])
            if bool(reasons) != was_stale:
                for k in self._source_readers.get(self._ids[i], ()):
                    if k > i and k not in queued:
                        heapq.heappush(queue, k)
                        queued.add(k)

    def _publish(self, rid: str) -> None:
        # like stale_records: the latest stale record carrying an id speaks for it
        for i in reversed(self._index_of[rid]):
            if self._reasons[i]:
                self._stale[rid] = self._reasons[i]
                return
        self._stale.pop(rid, None)

    def _stale_before(self, rid: Any, i: int) -> bool:
        if not isinstance(rid, str):
            return False
        return any(k < i and self._reasons[k] for k in self._index_of.get(rid, ()))

    def _judge(self, i: int) -> list[str]:
        body = self._bodies[i]
        reasons: list[str] = []
        own_writes = {w["name"] for w in body.get("writes", ())}
        for r in body.get("reads", ()):
            last = self._var_last.get(r["name"], -1)
            if last > i:
                reasons.append(f"input {r['name']} rewritten by {_label(self._bodies[last])}")
            elif self._stale_before(r.get("source"), i) and r["name"] not in own_writes:
                first = self._bodies[self._index_of[r["source"]][0]]
                reasons.append(f"input {r['name']} comes from stale {_label(first)}")
        for f in body.get("files", ()):
            if f.get("mode") != "read":
                continue
            last = self._file_last.get(f["abspath"], -1)
            if last > i:
                reasons.append(f"file {f['path']} rewritten by {_label(self._bodies[last])}")
        for m in body.get("models", ()):
            for j, version, sha in reversed(self._model_uses.get(m["name"], ())):
                if j <= i:
                    break
                if version != int(m["version"]) or (sha and sha != m["sha256"]):
                    reasons.append(f"model {m['name']} changed: version {version} since {_label(self._bodies[j])}")
                    break
        return reasons


def latest_by_cell(entries: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """cell id -> body of that cell's most recent execution (cells without an id are skipped)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for body in _executions(entries):
        cell = body.get("cell_id")
        if isinstance(cell, str):
            latest[cell] = body
    return latest


def stale_cells(entries: Iterable[Mapping[str, Any]], now_files: bool = True) -> dict[str, list[str]]:
    """cell id -> reasons, judged on each cell's latest execution."""
    entries = list(entries)
    by_record = stale_records(entries, now_files=now_files)
    return {
        cell: by_record[str(body["id"])]
        for cell, body in latest_by_cell(entries).items()
        if str(body.get("id")) in by_record
    }
