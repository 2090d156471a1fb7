"""The lineage record: what one cell execution read, wrote and touched.

Frozen dataclasses so a record cannot drift after it is hashed into the log;
``to_json``/``from_json`` give the exact JSON shape of the sidecar bodies
(see ``schema/record.v1.json``), which the sidebar and the CLI build against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECORD_SCHEMA = "nbgov.record/1"
SESSION_SCHEMA = "nbgov.session/1"


@dataclass(frozen=True, init=False)
class Fingerprint:
    """Content hash of one value.

    ``weak`` when the content could not be read exactly (then ``hash`` is None and
    ``reason`` says why). ``reason`` may also say how a strong hash was taken (a
    memory-mapped file hashed from its data regions). ``semantic``, for ONNX models,
    hashes the model without graph/node names and doc strings.
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
    name: str
    fingerprint: Fingerprint
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint.to_json(), "source": self.source}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Read:
        return cls(data["name"], Fingerprint.from_json(data["fingerprint"]), data.get("source"))


@dataclass(frozen=True)
class Write:
    name: str
    fingerprint: Fingerprint
    mutated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint.to_json(), "mutated": self.mutated}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Write:
        return cls(data["name"], Fingerprint.from_json(data["fingerprint"]), bool(data.get("mutated", False)))


@dataclass(frozen=True)
class FileAccess:
    path: str
    abspath: str
    mode: str  # "read" | "write"
    size: int | None = None
    hash: str | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "abspath": self.abspath,
            "mode": self.mode,
            "size": self.size,
            "hash": self.hash,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileAccess:
        return cls(
            data["path"], data["abspath"], data["mode"], data.get("size"), data.get("hash"), data.get("source")
        )


@dataclass(frozen=True)
class ModelUse:
    name: str
    version: int
    sha256: str
    producer: str | None = None
    opset: int | None = None
    source: str | None = None
    role: str | None = None  # "input" | "output" (None in logs written before roles)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "producer": self.producer,
            "opset": self.opset,
            "source": self.source,
        }
        if self.role is not None:
            out["role"] = self.role
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelUse:
        return cls(
            data["name"],
            int(data["version"]),
            data["sha256"],
            data.get("producer"),
            data.get("opset"),
            data.get("source"),
            data.get("role"),
        )


@dataclass(frozen=True)
class SqlStatement:
    statement: str
    kind: str
    tables_read: tuple[str, ...] = ()
    tables_written: tuple[str, ...] = ()
    files_read: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # "name@version"

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "kind": self.kind,
            "tables_read": list(self.tables_read),
            "tables_written": list(self.tables_written),
            "files_read": list(self.files_read),
            "files_written": list(self.files_written),
            "models": list(self.models),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SqlStatement:
        return cls(
            data["statement"],
            data["kind"],
            tuple(data.get("tables_read", ())),
            tuple(data.get("tables_written", ())),
            tuple(data.get("files_read", ())),
            tuple(data.get("files_written", ())),
            tuple(data.get("models", ())),
        )


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorInfo:
        return cls(data["type"], data["message"])


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
    schema: str = SESSION_SCHEMA
    hash_seed: str | None = None  # PYTHONHASHSEED at kernel start; None: random (or not recorded)

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
            **({"hash_seed": self.hash_seed} if self.hash_seed is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionInfo:
        return cls(
            session=data["session"],
            started=data["started"],
            notebook=data.get("notebook"),
            python=data["python"],
            platform=data["platform"],
            packages=dict(data.get("packages", {})),
            cwd=data.get("cwd", ""),
            schema=data.get("schema", SESSION_SCHEMA),
            hash_seed=data.get("hash_seed"),
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
    schema: str = RECORD_SCHEMA
    result: Fingerprint | None = None  # the displayed value, Out[n]

    @property
    def id(self) -> str:
        return record_id(self.session, self.execution_count)

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
            **({"result": self.result.to_json()} if self.result is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        err = data.get("error")
        return cls(
            session=data["session"],
            execution_count=int(data["execution_count"]),
            cell_id=data.get("cell_id"),
            code=data["code"],
            code_hash=data["code_hash"],
            started=data["started"],
            duration_s=float(data["duration_s"]),
            status=data["status"],
            error=ErrorInfo.from_json(err) if err else None,
            reads=tuple(Read.from_json(r) for r in data.get("reads", ())),
            writes=tuple(Write.from_json(w) for w in data.get("writes", ())),
            deletes=tuple(data.get("deletes", ())),
            files=tuple(FileAccess.from_json(f) for f in data.get("files", ())),
            models=tuple(ModelUse.from_json(m) for m in data.get("models", ())),
            sql=tuple(SqlStatement.from_json(s) for s in data.get("sql", ())),
            packages_added=dict(data.get("packages_added", {})),
            schema=data.get("schema", RECORD_SCHEMA),
            result=Fingerprint.from_json(data["result"]) if data.get("result") else None,
        )


def record_id(session: str, execution_count: int) -> str:
    """Record ids are "<session>:<execution_count>": unique across kernel restarts."""
    return f"{session}:{execution_count}"
