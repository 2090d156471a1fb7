"""Which recorded executions are stale now, and why.

A record is stale when something it consumed has moved on since it ran: an
input variable was rewritten by a later execution, a file it read was rewritten
or changed on disk, a model it used got a new version, or a record it read from
is itself stale. Works on plain entry dicts (sidecar lines or notebook
metadata), so the sidebar, the CLI and the recorder share one answer.
"""

from __future__ import annotations

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
