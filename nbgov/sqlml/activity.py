"""What one ``%%sqlml`` statement touched, handed to the lineage recorder as a frozen record.

``compile`` names what the statement reads and writes (it never runs it); the executor
adds, after the statement ran, a content fingerprint of each database table it created
or changed, and, on engines whose tables have versions or files (Spark), the identity
of each table the statement read, taken as it ran. Only the standard library is imported here, so lineage can read these
records without loading the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class _ModelVersion(Protocol):
    """What a model reference is taken from (``nbgov.sqlml.plan.ModelVersion``)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def sha256(self) -> str: ...

    @property
    def producer(self) -> str | None: ...

    @property
    def opset(self) -> int | None: ...


@dataclass(frozen=True)
class ModelRef:
    """One model version a statement scored with, described or registered."""

    name: str
    version: int
    sha256: str
    producer: str | None
    opset: int | None

    @classmethod
    def of(cls, model: _ModelVersion) -> ModelRef:
        return cls(model.name, model.version, model.sha256, model.producer, model.opset)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "producer": self.producer,
            "opset": self.opset,
        }


@dataclass(frozen=True)
class TableContent:
    """A database table the statement created or changed, fingerprinted after it ran:
    xxh3-128 over its Arrow data in a stable row order (``hash``), or None with the
    ``reason`` it was not taken (too large, dropped, unreadable)."""

    table: str
    rows: int | None
    hash: str | None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "hash": self.hash, "reason": self.reason}


@dataclass(frozen=True)
class TableIdentity:
    """A warehouse table as a statement read it: for Delta and Iceberg tables their
    ``version`` (the table version, or snapshot id), which names the data exactly; else
    its ``location`` and ``listing``, an xxh3-128 fingerprint of its file listing (path,
    size, modification time of every file): it changes when a file is added, removed or
    rewritten, but it is not a hash of the content. ``reason`` says why neither was taken
    (a view, a table without files, a listing too long)."""

    table: str
    provider: str | None
    version: str | None = None
    location: str | None = None
    listing: str | None = None
    reason: str | None = None

    @property
    def exact(self) -> bool:
        """Whether ``version`` pins the data (a listing only says the files are the same)."""
        return self.version is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "provider": self.provider,
            "version": self.version,
            "location": self.location,
            "listing": self.listing,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Activity:
    """One executed statement: its kind, the engine that ran it, and what it touched.

    ``frames`` are notebook objects read by variable name, ``params`` the notebook
    variables bound as ``$name``; ``models_created`` the versions a CREATE MODEL
    registered (the same bytes found registered are a version it used, in ``models_used``),
    ``models_dropped`` the versions a DROP MODEL removed; ``written`` the content of the
    tables in ``tables_written`` and ``read`` the identity of the tables in ``tables_read``
    (both empty until the executor has run the statement; ``read`` stays empty on DuckDB,
    whose tables have no versions).
    """

    statement: str
    kind: str
    engine: str = "duckdb"
    tables_read: tuple[str, ...] = ()
    tables_written: tuple[str, ...] = ()
    files_read: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()
    frames: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    models_used: tuple[ModelRef, ...] = ()
    models_created: tuple[ModelRef, ...] = ()
    written: tuple[TableContent, ...] = ()
    read: tuple[TableIdentity, ...] = ()
    models_dropped: tuple[ModelRef, ...] = ()

    @property
    def models(self) -> tuple[ModelRef, ...]:
        """Every model version the statement touched, used ones first."""
        return tuple(dict.fromkeys([*self.models_used, *self.models_created, *self.models_dropped]))

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (``models`` lists used, created and dropped versions)."""
        return {
            "statement": self.statement,
            "kind": self.kind,
            "engine": self.engine,
            "tables_read": list(self.tables_read),
            "tables_written": list(self.tables_written),
            "files_read": list(self.files_read),
            "files_written": list(self.files_written),
            "frames": list(self.frames),
            "params": list(self.params),
            "models": [m.to_json() for m in self.models],
            "models_created": [m.ref for m in self.models_created],
            "models_dropped": [m.ref for m in self.models_dropped],
            "written": [t.to_json() for t in self.written],
            "read": [t.to_json() for t in self.read],
        }


def unique(items: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``items`` without empty names or repeats, in first-seen order."""
    return tuple(dict.fromkeys(item for item in items if item))
