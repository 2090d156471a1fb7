"""The compact form of a log entry, as the notebook file carries it (one line per entry).

The sidecar keeps each entry in full; the notebook keeps a lossless shorthand so a
notebook worked on for weeks stays small and re-running a cell changes few lines.
Each entry becomes one JSON string (one line in the .ipynb) holding only what cannot
be derived from the entries before it in the same kernel session. Always there: ``s``
(seq) and ``h`` (the entry's hash). When the entry follows its session's previous
entry directly (that entry is seq - 1), these are derived from it and left out:

- ``p``/``sid`` (prev and session): that entry's hash and session;
- ``n`` (execution count): one more than that entry's (0 for the session's start);
- ``t``: milliseconds between that entry's start and this one's (``at``: the start
  itself, when not derived).

Then ``id`` is left out when it is ``<session>:<count>``; ``ch`` (code hash) when it is
the xxh3 of the code; the code itself (``code``) when an earlier entry of the session ran
the same code (``same`` names that entry's seq); ``c`` is the cell id and ``d`` the
duration. ``r`` (reads): a read of a value an earlier entry of the session wrote is
``[name, seq of the writer]`` (fingerprint and summary are the writer's). ``w``
(writes): a plain write is ``[name, kind, hash, summary]``. Fields holding their usual
empty value are left out (``missing`` lists the usual fields an older record lacks);
anything else is kept verbatim under ``body``.

Session entries, and any entry the shorthand cannot reproduce exactly, are kept whole
(a JSON object with ``kind``). Expanding gives back the exact sidecar entry, so its
hash is recomputed and compared: a tampered compact entry is caught like any other.
The ``Compactor`` is fed entries in log order and does O(size of the entry) work per
entry, whatever the length of the log.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeGuard

from nbgov.lineage.fingerprint import hash_bytes
from nbgov.lineage.record import RECORD_SCHEMA
from nbgov.lineage.store import canonical_text
from nbgov.lineage.strict_json import DuplicateKey, NonFinite, strict_json

Entry = dict[str, Any]
USUAL_VALUES: dict[str, Any] = {
    "schema": RECORD_SCHEMA, "status": "ok", "error": None, "deletes": [], "files": [], "models": [],
    "sql": [], "notes": [], "packages_added": {}, "more_writes": None, "result": None,
}
SHORTHAND_FIELDS = ("id", "session", "execution_count", "cell_id", "code", "code_hash", "started",
                    "duration_s", "reads", "writes")


class CompactError(ValueError):
    """A compact entry that cannot be expanded (malformed, or refers to an entry not at hand)."""


def dumps(form: Mapping[str, Any]) -> str:
    """One compact line: sorted keys, no spaces, UTF-8 kept (what the notebook stores); NaN and
    infinities refused, as in the sidecar (``expand`` reads lines with ``strict_json``). The
    sidecar's own compiled encoder: the same text as ``json.dumps`` with those options."""
    return canonical_text(form)


def code_hash(code: str) -> str:
    """The record's code hash (xxh3-128 of the UTF-8 code), as the recorder computes it."""
    return hash_bytes(code.encode("utf-8", "surrogatepass"))


@functools.lru_cache(maxsize=16)  # each entry's start is the next one's base: parsed once
def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def started_offset(session_started: str, started: str) -> int | None:
    """Milliseconds from the session's start to ``started`` when that reproduces the text exactly."""
    base, moment = _parse_time(session_started), _parse_time(started)
    if base is None or moment is None:
        return None
    offset = round((moment - base) / timedelta(milliseconds=1))
    return offset if _format_time(base + timedelta(milliseconds=offset)) == started else None


@functools.lru_cache(maxsize=16)  # compacting checks what expanding gives: the same call twice
def started_at(session_started: str, offset: int) -> str:
    base = _parse_time(session_started)
    if base is None:
        raise CompactError(f"the session's start {session_started[:40]!r} is not a time")
    return _format_time(base + timedelta(milliseconds=offset))


@dataclass
class _Session:
    """What later entries of one kernel session may refer to."""

    last: Mapping[str, Any]  # the session's latest entry
    code_at: dict[str, int] = field(default_factory=dict)  # code hash -> seq that ran it first
    writes_of: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # record id -> (seq, name -> fp)


class Lookup:
    """Entries by seq, for expanding references: the notebook's own entries first, then
    ``fallback`` (the sidecar's, when verifying)."""

    def __init__(self, fallback: Lookup | None = None) -> None:
        self.by_seq: dict[int, Mapping[str, Any]] = {}
        self._fallback = fallback

    @classmethod
    def of(cls, entries: Iterable[Mapping[str, Any]]) -> Lookup:
        lookup = cls()
        for entry in entries:
            if type(entry.get("seq")) is int:
                lookup.add(entry)
        return lookup

    def add(self, entry: Mapping[str, Any]) -> None:
        self.by_seq.setdefault(int(entry["seq"]), entry)

    def entry(self, seq: int, why: str) -> Mapping[str, Any]:
        found = self.by_seq.get(seq)
        if found is None and self._fallback is not None:
            found = self._fallback.by_seq.get(seq)
        if found is None:
            raise CompactError(f"{why} refers to entry {seq}, which is not at hand")
        return found


def _mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, a plain dict (what entries hold) told without the ABC check."""
    return type(value) is dict or isinstance(value, Mapping)


def _body(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    body = entry.get("body")
    if not _mapping(body):
        raise CompactError("an entry without a body")
    return body


def expand(text: str, lookup: Lookup) -> Entry:
    """The full entry a compact line stands for (CompactError when it cannot be had)."""
    try:
        form = strict_json(text)
    except (DuplicateKey, NonFinite) as exc:
        raise CompactError(str(exc)) from None
    except ValueError as exc:
        raise CompactError(f"not JSON ({exc})") from None
    except RecursionError:
        raise CompactError("not JSON (nested too deeply)") from None
    if not isinstance(form, dict):
        raise CompactError(f"expected an object, got {type(form).__name__}")
    return form if "kind" in form else expand_execution(form, lookup)


def expand_execution(form: Mapping[str, Any], lookup: Lookup) -> Entry:
    seq, digest = form.get("s"), form.get("h")
    if type(seq) is not int or seq < 0 or not isinstance(digest, str):
        raise CompactError("a compact entry needs an integer seq (s) and a hash (h)")
    where = f"entry {seq}"
    missing = form.get("missing")
    absent = _strings(missing) if missing is not None else ()
    body: dict[str, Any] = {k: v for k, v in USUAL_VALUES.items() if k not in absent}
    if "p" in form:
        prev, session, count, started = form["p"], form.get("sid"), form.get("n"), form.get("at")
    elif seq == 0:
        raise CompactError(f"{where}: the first entry of a log must be whole")
    else:
        before = lookup.entry(seq - 1, where)
        before_body = _body(before)
        prev, session = before.get("hash"), before_body.get("session")
        count = form["n"] if "n" in form else _next_count(before, where)
        started = form["at"] if "at" in form else started_at(str(before_body.get("started")), _int(form.get("t"), where))
    if not isinstance(session, str):
        raise CompactError(f"{where}: no session")
    body["session"] = session
    body["execution_count"] = count
    body["id"] = form["id"] if "id" in form else f"{session}:{count}"
    body["cell_id"] = form.get("c")
    code = form.get("code")
    if code is None and "same" in form:
        code = _body(lookup.entry(_int(form["same"], where), where)).get("code")
    if not isinstance(code, str):
        raise CompactError(f"{where}: no code")
    body["code"] = code
    body["code_hash"] = form["ch"] if "ch" in form else code_hash(code)
    body["started"] = started
    body["duration_s"] = form.get("d")
    body["reads"] = [_expand_read(item, lookup, where) for item in _list(form.get("r"), where)]
    body["writes"] = [_expand_write(item, where) for item in _list(form.get("w"), where)]
    verbatim = form.get("body", {})
    if not isinstance(verbatim, Mapping):
        raise CompactError(f"{where}: body must be an object")
    body.update(verbatim)
    return {"seq": seq, "prev": prev, "hash": digest, "kind": "execution", "body": body}


def _next_count(before: Mapping[str, Any], where: str) -> int:
    if before.get("kind") == "session":
        return 1
    return _int(_body(before).get("execution_count"), where) + 1


def _int(value: Any, where: str) -> int:
    if type(value) is not int:
        raise CompactError(f"{where}: expected an integer, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CompactError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _strings(value: Any) -> set[str]:
    return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()


def _expand_read(item: Any, lookup: Lookup, where: str) -> Any:
    if not isinstance(item, list):
        return item
    if len(item) != 2 or not isinstance(item[0], str):
        raise CompactError(f"{where}: a read must be [name, seq of its writer]")
    name, source = item[0], lookup.entry(_int(item[1], where), where)
    source_body = _body(source)
    for write in source_body.get("writes") or []:
        if _mapping(write) and write.get("name") == name:
            return {"name": name, "fingerprint": write.get("fingerprint"), "source": source_body.get("id")}
    raise CompactError(f"{where}: entry {source.get('seq')} wrote no {name[:40]!r}")


def _expand_write(item: Any, where: str) -> Any:
    if not isinstance(item, list):
        return item
    if len(item) != 4 or not all(isinstance(v, str) for v in item):
        raise CompactError(f"{where}: a write must be [name, kind, hash, summary]")
    name, kind, digest, summary = item
    return {"name": name, "mutated": False,
            "fingerprint": {"hash": digest, "kind": kind, "summary": summary, "weak": False}}


class Compactor:
    """Turns a log's entries, fed in order, into compact lines (see the module docstring)."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lookup = Lookup()

    def compact(self, entry: Mapping[str, Any]) -> str:
        """The compact line of ``entry``; what it may refer to is noted for later entries."""
        whole = dict(entry)
        form: dict[str, Any] | None = None
        body = whole.get("body")
        session = self._sessions.get(str(body.get("session"))) if _mapping(body) else None
        if whole.get("kind") == "execution" and session is not None:
            form = self._shorthand(whole, session)
            if form is not None and not self._reproduces(form, whole):
                form = None
        self._note(whole)
        return dumps(form if form is not None else whole)

    def _reproduces(self, form: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
        try:
            return expand_execution(form, self._lookup) == entry
        except (CompactError, KeyError, TypeError, ValueError):
            return False

    def _note(self, entry: Entry) -> None:
        body = entry.get("body")
        if type(entry.get("seq")) is not int or not _mapping(body):
            return
        self._lookup.add(entry)
        session_id = str(body.get("session"))
        if entry.get("kind") == "session":
            self._sessions[session_id] = _Session(entry)
            return
        session = self._sessions.get(session_id)
        if session is None or entry.get("kind") != "execution":
            return
        session.last = entry
        code = body.get("code_hash")
        if isinstance(code, str):
            session.code_at.setdefault(code, entry["seq"])
        writes = {w["name"]: w.get("fingerprint") for w in body.get("writes") or []
                  if _mapping(w) and isinstance(w.get("name"), str)}
        if writes and isinstance(body.get("id"), str):
            session.writes_of[body["id"]] = (entry["seq"], writes)

    def _shorthand(self, entry: Entry, session: _Session) -> dict[str, Any] | None:
        body = entry["body"]
        seq, count = entry["seq"], body.get("execution_count")
        form: dict[str, Any] = {"s": seq, "h": entry["hash"]}
        last = session.last
        offset = None
        if last.get("seq") == seq - 1 and last.get("hash") == entry["prev"]:
            if count != _next_count(last, ""):
                form["n"] = count
            offset = started_offset(str(_body(last).get("started")), str(body.get("started")))
        else:
            form.update({"p": entry["prev"], "sid": body.get("session"), "n": count})
        if offset is None:
            form["at"] = body.get("started")
        else:
            form["t"] = offset
        if body.get("id") != f"{body.get('session')}:{count}":
            form["id"] = body.get("id")
        if body.get("cell_id") is not None:
            form["c"] = body["cell_id"]
        code = body.get("code")
        if not isinstance(code, str):
            return None
        if body.get("code_hash") in session.code_at:
            form["same"] = session.code_at[body["code_hash"]]
        else:
            form["code"] = code
            if body.get("code_hash") != code_hash(code):
                form["ch"] = body.get("code_hash")
        if body.get("duration_s") is not None:
            form["d"] = body["duration_s"]
        reads = [self._short_read(r, session) for r in body.get("reads") or []]
        writes = [_short_write(w) for w in body.get("writes") or []]
        if reads:
            form["r"] = reads
        if writes:
            form["w"] = writes
        verbatim = {k: v for k, v in body.items()
                    if k not in SHORTHAND_FIELDS and (k not in USUAL_VALUES or v != USUAL_VALUES[k])}
        if verbatim:
            form["body"] = verbatim
        missing = sorted(k for k in USUAL_VALUES if k not in body)
        if missing:
            form["missing"] = missing
        return form

    def _short_read(self, read: Any, session: _Session) -> Any:
        if not _mapping(read) or set(read) != {"name", "fingerprint", "source"}:
            return read
        written = session.writes_of.get(str(read["source"]))
        if written is None or written[1].get(read["name"]) != read["fingerprint"]:
            return read
        return [read["name"], written[0]]


def _short_write(write: Any) -> Any:
    if not _mapping(write) or set(write) != {"name", "mutated", "fingerprint"} or write["mutated"] is not False:
        return write
    fp = write["fingerprint"]
    if not _mapping(fp) or set(fp) != {"hash", "kind", "summary", "weak"} or fp["weak"] is not False:
        return write
    parts = [write["name"], fp["kind"], fp["hash"], fp["summary"]]
    return parts if all(isinstance(p, str) for p in parts) else write
