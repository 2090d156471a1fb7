"""The lineage record: what one cell execution read, wrote and touched.

Frozen dataclasses so a record cannot drift after it is hashed into the log;
``to_json``/``from_json`` give the exact JSON shape of the sidecar bodies
(see ``schema/record.v1.json``), which the sidebar and the CLI build against.
Readers turn a log into typed ``LogEntry`` objects once (``parse_entry`` /
``load_entries``) and never walk the JSON again. Fields added after the first
logs were written are optional when read, so old logs still load.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nbgov.errors import LineageError

RECORD_SCHEMA = "nbgov.record/1"
SESSION_SCHEMA = "nbgov.session/1"

ModelRole = Literal["input", "output", "dropped"]
FileMode = Literal["read", "write"]
MODEL_ROLES: tuple[ModelRole, ...] = ("input", "output", "dropped")
FILE_MODES: tuple[FileMode, ...] = ("read", "write")
CREATE_MODEL = "create_model"  # the SqlStatement.kind that registers a model version


class RecordError(LineageError):
    """A log entry or record body that does not have the recorded shape."""


MAX_DURATION_S = 1e9  # about 31 years: a longer cell is a forged number, and breaks time arithmetic


class _Fields:
    """Typed access to one JSON object, naming the field and place of any mismatch."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise RecordError(f"{where}: expected an object, got {type(data).__name__}")
        self.data = data
        self.where = where

    def _bad(self, key: str, expected: str) -> RecordError:
        got = type(self.data.get(key)).__name__ if key in self.data else "nothing"
        return RecordError(f"{self.where}: '{key}' must be {expected}, got {got}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string or null")
        return value

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(key, "an integer")
        return value

    def opt_integer(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(key, "an integer or null")
        return value

    def number(self, key: str) -> float:
        value = self.data.get(key)
        try:
            number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        except OverflowError:  # an integer too large for a double
            number = math.inf
        if not math.isfinite(number):
            raise self._bad(key, "a finite number")
        return number

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value

    def strs(self, key: str) -> tuple[str, ...]:
        values = self.items(key)
        if not all(isinstance(v, str) for v in values):
            raise self._bad(key, "a list of strings")
        return tuple(values)

    def str_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self._bad(key, "an object of strings")
        return dict(value)

    def fingerprint(self, key: str) -> Fingerprint:
        return _fingerprint(self.data.get(key), f"{self.where}.{key}")

    def opt_fingerprint(self, key: str) -> Fingerprint | None:
        value = self.data.get(key)
        return None if value is None else _fingerprint(value, f"{self.where}.{key}")

    def each(self, key: str) -> Iterable[tuple[Any, str]]:
        """(item, "where.key[i]") for each item of a list field."""
        for i, item in enumerate(self.items(key)):
            yield item, f"{self.where}.{key}[{i}]"


def _fingerprint(data: Any, where: str) -> Fingerprint:
    checked = _Fields(data, where)
    checked.text("kind")
    checked.opt_text("hash")
    try:
        return Fingerprint.from_json(checked.data)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{where}: not a fingerprint ({type(exc).__name__}: {exc})") from None


def _duration(f: _Fields) -> float:
    """An execution's ``duration_s``: seconds, as the recorder measures them (never negative)."""
    seconds = f.number("duration_s") if f.has("duration_s") else 0.0
    if not 0 <= seconds <= MAX_DURATION_S:
        raise RecordError(f"{f.where}: 'duration_s' must be between 0 and {MAX_DURATION_S:.0e} seconds, "
                          f"got {seconds:.6g}")
    return seconds


@dataclass(frozen=True, init=False)
class Fingerprint:
    """Content hash of one value.

    ``weak`` when the content could not be read exactly (then ``hash`` is None and
    ``reason`` says why). ``reason`` may also say how a strong hash was taken (a
    memory-mapped file hashed from its data regions). ``semantic``, for ONNX models,
    hashes the model without graph/node names and doc strings; for a fitted scikit-learn
    search, or the dict cross_validate returns, without the fit and score timings it measured.
    """

    kind: str
    hash: str | None
    weak: bool = False
    summary: str = ""
    reason: str | None = None
    semantic: str | None = None

    def __init__(
        self,
        kind: str,
        hash: str | None,  # noqa: A002 - the field's name in every log
        weak: bool = False,
        summary: str = "",
        reason: str | None = None,
        semantic: str | None = None,
    ) -> None:
        # Made once per value a cell touches (100,000 for a big namespace): filling the
        # instance dict directly is twice as fast as the frozen dataclass's generated
        # __init__, and the instance is as frozen afterwards.
        state = self.__dict__
        state["kind"] = kind
        state["hash"] = hash
        state["weak"] = weak
        state["summary"] = summary
        state["reason"] = reason
        state["semantic"] = semantic

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "hash": self.hash, "weak": self.weak, "summary": self.summary}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.semantic is not None:
            out["semantic"] = self.semantic
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fingerprint:
        """Logs written before ``reason``/``semantic`` existed read with both None."""
        reason, semantic = data.get("reason"), data.get("semantic")
        return cls(
            kind=str(data["kind"]),
            hash=data.get("hash"),
            weak=bool(data.get("weak", False)),
            summary=str(data.get("summary", "")),
            reason=str(reason) if reason is not None else None,
            semantic=str(semantic) if semantic is not None else None,
        )

    def same_content(self, other: Fingerprint) -> bool | None:
        """True/False when both hashes are strong, None when it cannot be told."""
        if self.weak or other.weak or self.hash is None or other.hash is None:
            return None
        return self.kind == other.kind and self.hash == other.hash

    def differs_only_in_names(self, other: Fingerprint) -> bool:
        """Two ONNX models with other bytes but the same meaning (names, doc strings aside)."""
        return (
            self.same_content(other) is False
            and self.semantic is not None
            and self.semantic == other.semantic
        )


@dataclass(frozen=True)
class Read:
    """A notebook variable the cell read, and the execution that last wrote it."""

    name: str
    fingerprint: Fingerprint
    source: str | None = None  # for a displayed result (``Out[3]``): the execution that displayed it

    @property
    def displayed(self) -> int | None:
        """The execution count whose displayed result this read is (``_3``, ``Out[3]``), else None."""
        return displayed_count(self.name)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint.to_json(), "source": self.source}

    @classmethod
    def from_json(cls, data: Any, where: str = "read") -> Read:
        f = _Fields(data, where)
        return cls(f.text("name"), f.fingerprint("fingerprint"), f.opt_text("source"))


@dataclass(frozen=True)
class Write:
    """A notebook variable the cell bound (``mutated``: changed in place instead)."""

    name: str
    fingerprint: Fingerprint
    mutated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint.to_json(), "mutated": self.mutated}

    @classmethod
    def from_json(cls, data: Any, where: str = "write") -> Write:
        f = _Fields(data, where)
        return cls(f.text("name"), f.fingerprint("fingerprint"), f.flag("mutated"))


@dataclass(frozen=True)
class WriteSummary:
    """Names a cell wrote beyond the per-record bound, as one aggregate.

    A cell defining 100,000 names would otherwise write a line of many megabytes; the
    names are summarised by count and hash, their values by one aggregate fingerprint
    (weak, with its reason, when it was not taken).
    """

    count: int
    names_hash: str
    fingerprint: Fingerprint
    sample: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "names_hash": self.names_hash,
            "fingerprint": self.fingerprint.to_json(),
            "sample": list(self.sample),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "more_writes") -> WriteSummary:
        f = _Fields(data, where)
        return cls(f.integer("count"), f.text("names_hash"), f.fingerprint("fingerprint"), f.strs("sample"))


@dataclass(frozen=True)
class FileAccess:
    """A file the cell opened (``mode``), its size and content hash after the cell.

    ``removed``: a write that left nothing at the path (the cell removed it or renamed it
    away), a definite state, unlike a hash missing for another reason. Stored only when
    true, so other entries are as before and older readers see a write without a hash.
    """

    path: str
    abspath: str
    mode: FileMode
    size: int | None = None
    hash: str | None = None
    source: str | None = None
    removed: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "abspath": self.abspath,
            "mode": self.mode,
            "size": self.size,
            "hash": self.hash,
            "source": self.source,
        }
        if self.removed:
            out["removed"] = True
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "file") -> FileAccess:
        f = _Fields(data, where)
        mode = f.text("mode")
        if mode not in FILE_MODES:
            raise RecordError(f"{where}: 'mode' must be read or write, got {mode!r}")
        path = f.text("path")
        abspath = f.text("abspath") if f.has("abspath") else path
        removed = "removed" in data  # written only when true: any other value is not this writer's
        if removed and data["removed"] is not True:
            raise RecordError(f"{where}: 'removed' must be true or absent, got {data['removed']!r:.20}")
        size, digest = f.opt_integer("size"), f.opt_text("hash")
        if removed and (mode != "write" or size is not None or digest is not None):
            raise RecordError(f"{where}: a removed file is a write with no size and no hash")
        return cls(path, abspath, "write" if mode == "write" else "read", size, digest, f.opt_text("source"),
                   removed)


@dataclass(frozen=True)
class ModelUse:
    """A model version the cell touched: created/registered it (output), scored/described it
    (input), or removed it with DROP MODEL (dropped: a change of the version, as DROP TABLE
    is a write of the table, so the cells that scored with it go stale)."""

    name: str
    version: int
    sha256: str
    producer: str | None = None
    opset: int | None = None
    source: str | None = None  # the execution that registered this version (inputs, dropped)
    role: ModelRole = "input"

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "producer": self.producer,
            "opset": self.opset,
            "source": self.source,
            "role": self.role,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "model", created: frozenset[str] = frozenset()) -> ModelUse:
        """``created``: "name@version" keys the record's own CREATE MODEL statements name;
        in logs written before roles were recorded they mark the outputs."""
        f = _Fields(data, where)
        name, version = f.text("name"), f.integer("version")
        role = f.text("role") if f.has("role") else ("output" if f"{name}@{version}" in created else "input")
        known = next((r for r in MODEL_ROLES if r == role), None)
        if known is None:
            raise RecordError(f"{where}: 'role' must be input, output or dropped, got {role!r}")
        return cls(name, version, f.text("sha256"), f.opt_text("producer"), f.opt_integer("opset"),
                   f.opt_text("source"), known)


@dataclass(frozen=True)
class TableUse:
    """A table a SQL statement read or wrote, with its content fingerprint when known.

    ``origin`` "notebook": a DataFrame/Arrow table of the notebook read by its variable name
    (fingerprinted like a variable); "database": a table of the engine (fingerprinted by the
    engine when cheap enough, else a weak fingerprint saying why, or None when not reported).
    """

    name: str
    mode: FileMode
    origin: Literal["notebook", "database"]
    fingerprint: Fingerprint | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "origin": self.origin,
            "fingerprint": self.fingerprint.to_json() if self.fingerprint else None,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "table") -> TableUse:
        f = _Fields(data, where)
        mode, origin = f.text("mode"), f.text("origin")
        if mode not in FILE_MODES or origin not in ("notebook", "database"):
            raise RecordError(f"{where}: unknown table use {mode!r}/{origin!r}")
        return cls(f.text("name"), "write" if mode == "write" else "read",
                   "notebook" if origin == "notebook" else "database", f.opt_fingerprint("fingerprint"))


@dataclass(frozen=True)
class SqlStatement:
    """One statement a ``%%sqlml`` cell ran, and what it touched."""

    statement: str
    kind: str
    tables_read: tuple[str, ...] = ()
    tables_written: tuple[str, ...] = ()
    files_read: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # "name@version"
    engine: str = "duckdb"
    tables: tuple[TableUse, ...] = ()  # tables_read/written again, with fingerprints

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "kind": self.kind,
            "engine": self.engine,
            "tables_read": list(self.tables_read),
            "tables_written": list(self.tables_written),
            "files_read": list(self.files_read),
            "files_written": list(self.files_written),
            "models": list(self.models),
            "tables": [t.to_json() for t in self.tables],
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "sql") -> SqlStatement:
        f = _Fields(data, where)
        return cls(
            f.text("statement"),
            f.text("kind"),
            f.strs("tables_read"),
            f.strs("tables_written"),
            f.strs("files_read"),
            f.strs("files_written"),
            f.strs("models"),
            f.text("engine", "duckdb"),
            tuple(TableUse.from_json(t, w) for t, w in f.each("tables")),
        )


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message}

    @classmethod
    def from_json(cls, data: Any, where: str = "error") -> ErrorInfo:
        f = _Fields(data, where)
        return cls(f.text("type"), f.text("message", ""))


@dataclass(frozen=True)
class SessionInfo:
    """Body of a "session" entry: the environment, once per kernel session."""

    session: str
    started: str
    notebook: str | None
    python: str
    platform: str
    packages: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    hash_seed: str | None = None  # PYTHONHASHSEED the kernel started with; None: random
    fingerprints: int | None = None  # the fingerprint scheme (fingerprint.SCHEME); None: before schemes
    schema: str = SESSION_SCHEMA

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "session": self.session,
            "started": self.started,
            "notebook": self.notebook,
            "python": self.python,
            "platform": self.platform,
            "packages": dict(sorted(self.packages.items())),
            "cwd": self.cwd,
            "hash_seed": self.hash_seed,
            **({"fingerprints": self.fingerprints} if self.fingerprints is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "session") -> SessionInfo:
        f = _Fields(data, where)
        return cls(
            session=f.text("session"),
            started=f.text("started", ""),
            notebook=f.opt_text("notebook"),
            python=f.text("python", ""),
            platform=f.text("platform", ""),
            packages=f.str_map("packages"),
            cwd=f.text("cwd", ""),
            hash_seed=f.opt_text("hash_seed"),
            fingerprints=f.opt_integer("fingerprints"),
            schema=f.text("schema", SESSION_SCHEMA),
        )


@dataclass(frozen=True)
class ExecutionRecord:
    """Body of an "execution" entry: one cell run."""

    session: str
    execution_count: int
    cell_id: str | None
    code: str
    code_hash: str
    started: str
    duration_s: float
    status: str  # "ok" | "error"
    error: ErrorInfo | None = None
    reads: tuple[Read, ...] = ()
    writes: tuple[Write, ...] = ()
    deletes: tuple[str, ...] = ()
    files: tuple[FileAccess, ...] = ()
    models: tuple[ModelUse, ...] = ()
    sql: tuple[SqlStatement, ...] = ()
    packages_added: Mapping[str, str] = field(default_factory=dict)
    result: Fingerprint | None = None  # the displayed value, Out[n]
    more_writes: WriteSummary | None = None
    notes: tuple[str, ...] = ()  # where the record is not exact, why
    schema: str = RECORD_SCHEMA

    @property
    def id(self) -> str:
        return record_id(self.session, self.execution_count)

    @property
    def label(self) -> str:
        """How views name an execution: its execution count in brackets."""
        return f"[{self.execution_count}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "id": self.id,
            "session": self.session,
            "execution_count": self.execution_count,
            "cell_id": self.cell_id,
            "code": self.code,
            "code_hash": self.code_hash,
            "started": self.started,
            "duration_s": self.duration_s,
            "status": self.status,
            "error": self.error.to_json() if self.error else None,
            "reads": [r.to_json() for r in self.reads],
            "writes": [w.to_json() for w in self.writes],
            "deletes": list(self.deletes),
            "files": [f.to_json() for f in self.files],
            "models": [m.to_json() for m in self.models],
            "sql": [s.to_json() for s in self.sql],
            "packages_added": dict(sorted(self.packages_added.items())),
            "result": self.result.to_json() if self.result else None,
            "more_writes": self.more_writes.to_json() if self.more_writes else None,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "execution") -> ExecutionRecord:
        f = _Fields(data, where)
        sql = tuple(SqlStatement.from_json(s, w) for s, w in f.each("sql"))
        created = frozenset(key for stmt in sql if stmt.kind == CREATE_MODEL for key in stmt.models)
        status = f.text("status")
        if status not in ("ok", "error"):
            raise RecordError(f"{where}: 'status' must be ok or error, got {status!r}")
        return cls(
            session=f.text("session"),
            execution_count=f.integer("execution_count"),
            cell_id=f.opt_text("cell_id"),
            code=f.text("code"),
            code_hash=f.text("code_hash", ""),
            started=f.text("started", ""),
            duration_s=_duration(f),
            status=status,
            error=ErrorInfo.from_json(data["error"], f"{where}.error") if f.has("error") else None,
            reads=tuple(Read.from_json(r, w) for r, w in f.each("reads")),
            writes=tuple(Write.from_json(x, w) for x, w in f.each("writes")),
            deletes=f.strs("deletes"),
            files=tuple(FileAccess.from_json(x, w) for x, w in f.each("files")),
            models=tuple(ModelUse.from_json(m, w, created) for m, w in f.each("models")),
            sql=sql,
            packages_added=f.str_map("packages_added"),
            result=f.opt_fingerprint("result"),
            more_writes=WriteSummary.from_json(data["more_writes"]) if f.has("more_writes") else None,
            notes=f.strs("notes"),
            schema=f.text("schema", RECORD_SCHEMA),
        )  # the stored "id" is not read: it is derived (session:execution_count)


def result_name(execution_count: int) -> str:
    """How a displayed result is named, as a write of its execution and as a read of a later
    one through IPython's output history (``_``, ``_3``, ``Out[3]``): ``Out[3]``, a name no
    notebook variable can have."""
    return f"Out[{execution_count}]"


_RESULT_NAME = re.compile(r"Out\[(\d+)\]")

# The interpreter-wide random generators, read and written as values (``random_state``): named
# so no notebook variable can have the name, as ``Out[3]`` is.
RANDOM_STATE_NAME = "random (global state)"
NUMPY_STATE_NAME = "numpy.random (global state)"
GLOBAL_STATE_NAMES = frozenset({RANDOM_STATE_NAME, NUMPY_STATE_NAME})


# Environment variables a cell read or set by name (``environment_variables``): ``os.environ['SEED']``,
# as the code spells it, a name no notebook variable can have.
_ENVIRONMENT_NAME = re.compile(r"os\.environ\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]")


def environment_name(key: str) -> str:
    """How an environment variable is named as a read or write: ``os.environ['SEED']``."""
    return f"os.environ[{key!r}]"


def environment_variable(name: str) -> str | None:
    """The environment variable a read or write names (``os.environ['SEED']``: SEED), else None."""
    if name[:11] != "os.environ[" or _ENVIRONMENT_NAME.fullmatch(name) is None:
        return None
    try:
        key = ast.literal_eval(name[11:-1])
    except (ValueError, SyntaxError):
        return None
    return key if type(key) is str else None


def is_global_state(name: str) -> bool:
    """Whether a read or write names a global generator's state, not a variable: its source is
    the execution that left that exact state, and another cell's draw does not make it stale."""
    return name in GLOBAL_STATE_NAMES


def displayed_count(name: str) -> int | None:
    """The execution whose displayed result a read names (``Out[3]``: 3); None for a variable."""
    found = _RESULT_NAME.fullmatch(name) if name[:4] == "Out[" else None
    return int(found.group(1)) if found else None


def record_id(session: str, execution_count: int) -> str:
    """Record ids are "<session>:<execution_count>": unique across kernel restarts."""
    return f"{session}:{execution_count}"


@dataclass(frozen=True)
class RepairInfo:
    """Body of a "repair" entry: the store found the log ending in a line cut short by a
    crash, set it aside and chained this note before the next append."""

    cut_bytes: int
    cut_xxh3: str
    cut_preview: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"cut_bytes": self.cut_bytes, "cut_xxh3": self.cut_xxh3, "cut_preview": self.cut_preview,
                "reason": self.reason}

    @classmethod
    def from_json(cls, data: Any, where: str = "repair") -> RepairInfo:
        f = _Fields(data, where)
        return cls(f.integer("cut_bytes"), f.text("cut_xxh3"), f.text("cut_preview", ""), f.text("reason", ""))


EntryKind = Literal["session", "execution", "repair"]
ENTRY_KINDS: tuple[EntryKind, ...] = ("session", "execution", "repair")


@dataclass(frozen=True)
class LogEntry:
    """One chained log entry, typed. ``raw`` is the entry exactly as stored: its hash is
    computed over that JSON, so it is what is sent on, merged and verified."""

    seq: int
    prev: str
    hash: str
    body: ExecutionRecord | SessionInfo | RepairInfo
    raw: Mapping[str, Any] = field(compare=False, repr=False, hash=False)

    @property
    def kind(self) -> EntryKind:
        if isinstance(self.body, ExecutionRecord):
            return "execution"
        return "session" if isinstance(self.body, SessionInfo) else "repair"

    @property
    def record(self) -> ExecutionRecord | None:
        return self.body if isinstance(self.body, ExecutionRecord) else None

    @property
    def session(self) -> SessionInfo | None:
        return self.body if isinstance(self.body, SessionInfo) else None


def parse_entry(raw: Any, where: str | None = None) -> LogEntry:
    """A stored entry (sidecar line or notebook metadata item) as a typed ``LogEntry``;
    RecordError naming the entry and the field when it does not have the recorded shape."""
    place = where or "entry"
    f = _Fields(raw, place)
    seq = f.integer("seq")
    place = where or f"entry {seq}"
    f.where = place
    kind = f.text("kind")
    body: ExecutionRecord | SessionInfo | RepairInfo
    if kind == "execution":
        body = ExecutionRecord.from_json(raw.get("body"), f"{place} body")
    elif kind == "session":
        body = SessionInfo.from_json(raw.get("body"), f"{place} body")
    elif kind == "repair":
        body = RepairInfo.from_json(raw.get("body"), f"{place} body")
    else:
        raise RecordError(f"{place}: unknown entry kind {kind!r} (expected session, execution or repair)")
    return LogEntry(seq, f.text("prev"), f.text("hash"), body, raw)


def load_entries(raws: Iterable[Any]) -> tuple[list[LogEntry], list[RecordError]]:
    """Every entry that parses, in the given order, and one error per entry that does not."""
    entries: list[LogEntry] = []
    problems: list[RecordError] = []
    for raw in raws:
        try:
            entries.append(raw if isinstance(raw, LogEntry) else parse_entry(raw))
        except RecordError as exc:
            problems.append(exc)
        except RecursionError:
            problems.append(RecordError("entry nested too deeply"))
    return entries, problems


def as_entries(items: Iterable[LogEntry | Mapping[str, Any]]) -> list[LogEntry]:
    """Typed entries from typed or stored ones, skipping any that do not parse (``verify``
    is the place that reports those)."""
    return load_entries(items)[0]
