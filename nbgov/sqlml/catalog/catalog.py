"""The model catalog, stored in DuckDB itself so a ``--db`` file carries its models.

Table ``nbgov.models``: one row per (name, version) with the ONNX bytes, sha256,
signature (JSON), producer, opset, feature names and creation time. Registering
bytes that differ from the newest version makes version n+1; identical bytes keep
the version (its stored signature is rewritten when it was wrong). ``name`` means
the newest version, ``name@2`` pins version 2.

The stored signature is derived from the bytes, so the bytes are what a stored version
is scored by: loading a version reads its signature from an onnxruntime session on the
bytes (once per catalog and sha256). A row an older nbgov wrote with the output width
the model declares, not the one it returns, is then scored right without writing to
the database on a read; CREATE MODEL of the same bytes stores the corrected signature.

The rules live in ``ModelCatalog``; where rows are kept is a ``ModelStore`` (DuckDB
here, a Spark warehouse table in ``nbgov.sqlml.spark.catalog_store``), so every
engine has the same statements, versions and errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Literal, Protocol

import duckdb

from nbgov.errors import InvalidModelError, ModelNotFoundError, SqlmlError
from nbgov.sqlml.catalog.modelfile import LoadedModel, from_bytes
from nbgov.sqlml.plan import ModelVersion, TensorSpec

_SCHEMA = "nbgov"
_TABLE = "nbgov.models"
_COLUMNS = "name, version, sha256, inputs, outputs, producer, opset, feature_names, created"


def split_ref(ref: str) -> tuple[str, int | None]:
    """``churn@2`` -> ("churn", 2); ``churn`` -> ("churn", None)."""
    name, sep, version = ref.partition("@")
    if not sep:
        return ref, None
    if not version.isdigit() or int(version) < 1:
        raise SqlmlError(f"bad model reference {ref!r}; expected NAME or NAME@VERSION (VERSION ≥ 1)")
    return name, int(version)


Registration = Literal["new", "unchanged", "corrected"]
"""What ``register`` did: stored a new version; found the same bytes; found the same
bytes stored with a wrong signature and rewrote the signature (same version)."""

Signature = tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]
"""(inputs, outputs)."""


@dataclass(frozen=True)
class StoredModel:
    """One stored version without its bytes; signatures and feature names as JSON text."""

    name: str
    version: int
    sha256: str
    inputs: str
    outputs: str
    producer: str | None
    opset: int | None
    feature_names: str | None
    created: str


class ModelStore(Protocol):
    """Where catalog rows live. Names match case-insensitively."""

    def latest(self, name: str) -> StoredModel | None: ...

    def get(self, name: str, version: int) -> StoredModel | None: ...

    def add(self, row: StoredModel, payload: bytes) -> None: ...

    def resign(self, row: StoredModel) -> None:
        """Store ``row``'s signature for its (name, version); bytes and version unchanged."""
        ...

    def remove(self, name: str, version: int | None) -> int:
        """Remove one version (or all, ``version`` None); returns how many were removed."""
        ...

    def rows(self) -> list[StoredModel]:
        """Every stored version, by name then version."""
        ...

    def payload(self, name: str, version: int) -> bytes: ...


class DuckDbModelStore:
    """Catalog rows in the table ``nbgov.models`` of one DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_SCHEMA}").fetchall()
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
                name VARCHAR NOT NULL, version INTEGER NOT NULL, sha256 VARCHAR NOT NULL,
                onnx BLOB NOT NULL, inputs VARCHAR NOT NULL, outputs VARCHAR NOT NULL,
                producer VARCHAR, opset INTEGER, feature_names VARCHAR, created VARCHAR NOT NULL,
                PRIMARY KEY (name, version))"""
        ).fetchall()

    def latest(self, name: str) -> StoredModel | None:
        rows = self._con.execute(
            f"SELECT {_COLUMNS} FROM {_TABLE} WHERE lower(name) = lower(?) ORDER BY version DESC LIMIT 1",
            [name],
        ).fetchall()
        return StoredModel(*rows[0]) if rows else None

    def get(self, name: str, version: int) -> StoredModel | None:
        rows = self._con.execute(
            f"SELECT {_COLUMNS} FROM {_TABLE} WHERE lower(name) = lower(?) AND version = ?",
            [name, version],
        ).fetchall()
        return StoredModel(*rows[0]) if rows else None

    def add(self, row: StoredModel, payload: bytes) -> None:
        self._con.execute(
            f"INSERT INTO {_TABLE} ({_COLUMNS}, onnx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row.name, row.version, row.sha256, row.inputs, row.outputs, row.producer, row.opset,
             row.feature_names, row.created, payload],
        ).fetchall()

    def resign(self, row: StoredModel) -> None:
        self._con.execute(
            f"UPDATE {_TABLE} SET inputs = ?, outputs = ? WHERE name = ? AND version = ?",
            [row.inputs, row.outputs, row.name, row.version],
        ).fetchall()

    def remove(self, name: str, version: int | None) -> int:
        if version is None:
            rows = self._con.execute(
                f"DELETE FROM {_TABLE} WHERE lower(name) = lower(?) RETURNING version", [name]
            ).fetchall()
        else:
            rows = self._con.execute(
                f"DELETE FROM {_TABLE} WHERE lower(name) = lower(?) AND version = ? RETURNING version",
                [name, version],
            ).fetchall()
        return len(rows)

    def rows(self) -> list[StoredModel]:
        rows = self._con.execute(f"SELECT {_COLUMNS} FROM {_TABLE} ORDER BY name, version").fetchall()
        return [StoredModel(*r) for r in rows]

    def payload(self, name: str, version: int) -> bytes:
        rows = self._con.execute(
            f"SELECT onnx FROM {_TABLE} WHERE name = ? AND version = ?", [name, version]
        ).fetchall()
        return bytes(rows[0][0])


class ModelCatalog:
    """Register, resolve, list and drop model versions kept in a ``ModelStore`` (a DuckDB
    connection is wrapped in ``DuckDbModelStore``)."""

    def __init__(self, store: ModelStore | duckdb.DuckDBPyConnection) -> None:
        self._store: ModelStore = DuckDbModelStore(store) if isinstance(store, duckdb.DuckDBPyConnection) else store
        self._bytes: dict[str, bytes] = {}
        # The signature onnxruntime reads from the bytes, or why they cannot be scored, by sha256.
        self._signatures: dict[str, Signature | InvalidModelError] = {}
        # Resolved versions by lower-cased ref; cleared by every register/drop of this catalog.
        self._resolved: dict[str, ModelVersion] = {}
        self.changes = 0  # counts registers and drops: plans made before a change are stale
        # Models an EXPLAIN would create, by lower-cased name (see ``previewing``).
        self._pending: dict[str, ModelVersion] | None = None

    def register(self, name: str, model: LoadedModel) -> tuple[ModelVersion, Registration]:
        """Store ``model`` under ``name``; returns the version and what was done. The same
        bytes are the same version (lineage names versions by sha256); a signature stored
        wrong for them (by an older nbgov) is rewritten in place, as MLflow keeps one
        version per artifact and BigQuery ML's CREATE OR REPLACE leaves the model right."""
        if not name or "@" in name:
            raise SqlmlError(f"bad model name {name!r}; expected a plain identifier")
        latest = self._store.latest(name)
        self._signatures[model.sha256] = (model.inputs, model.outputs)
        if latest is not None and latest.sha256 == model.sha256:
            if not _stale(latest, model):
                return self._version(latest), "unchanged"
            self._store.resign(replace(latest, inputs=_specs_json(model.inputs), outputs=_specs_json(model.outputs)))
            self._resolved.clear()
            row = self._store.get(latest.name, latest.version)
            assert row is not None
            return self._version(row), "corrected"
        stored_name = latest.name if latest is not None else name
        version = (latest.version + 1) if latest is not None else 1
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._resolved.clear()
        self.changes += 1
        stored = StoredModel(
            name=stored_name,
            version=version,
            sha256=model.sha256,
            inputs=_specs_json(model.inputs),
            outputs=_specs_json(model.outputs),
            producer=model.producer,
            opset=model.opset,
            feature_names=json.dumps(list(model.feature_names)) if model.feature_names is not None else None,
            created=created,
        )
        self._store.add(stored, model.onnx_bytes)
        self._bytes[model.sha256] = model.onnx_bytes
        row = self._store.get(stored_name, version)
        assert row is not None
        return self._version(row), "new"

    @contextmanager
    def previewing(self) -> Iterator[None]:
        """While open, ``preview`` makes models resolvable without storing them, so
        EXPLAIN of a cell can plan queries on a model the same cell creates."""
        self._pending = {}
        try:
            yield
        finally:
            self._pending = None

    def preview(self, name: str, model: LoadedModel) -> tuple[ModelVersion, Registration]:
        """What ``register`` would store (version, what it would do), without storing it."""
        if not name or "@" in name:
            raise SqlmlError(f"bad model name {name!r}; expected a plain identifier")
        self._signatures[model.sha256] = (model.inputs, model.outputs)
        pending = self._pending.get(name.lower()) if self._pending is not None else None
        if pending is not None:
            latest: tuple[str, int, str] | None = (pending.name, pending.version, pending.sha256)
            stale = False
        else:
            row = self._store.latest(name)
            latest = (row.name, row.version, row.sha256) if row is not None else None
            stale = row is not None and _stale(row, model)
        if latest is not None and latest[2] == model.sha256:
            return self.resolve(f"{latest[0]}@{latest[1]}"), "corrected" if stale else "unchanged"
        version = model.as_version(
            latest[0] if latest is not None else name,
            latest[1] + 1 if latest is not None else 1,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        if self._pending is not None:
            self._pending[name.lower()] = version
        return version, "new"

    def resolve(self, ref: str) -> ModelVersion:
        """Find ``name`` (newest) or ``name@version``, or say which models exist."""
        if self._pending:
            name, version = split_ref(ref)
            pending = self._pending.get(name.lower())
            if pending is not None and version in (None, pending.version):
                return pending
        cached = self._resolved.get(ref.lower())
        if cached is not None:
            return cached
        name, version = split_ref(ref)
        row = self._store.latest(name) if version is None else self._store.get(name, version)
        if row is None:
            known = self.refs()
            listing = ", ".join(known) if known else "none registered yet"
            raise ModelNotFoundError(f"unknown model {ref!r}; known models: {listing}")
        resolved = self._version(row)
        self._resolved[ref.lower()] = resolved
        return resolved

    def exists(self, name: str) -> bool:
        return self._store.latest(name) is not None

    def refs(self) -> list[str]:
        newest: dict[str, int] = {}
        for row in self._store.rows():
            newest[row.name] = max(row.version, newest.get(row.name, 0))
        return [f"{n}@{v}" if v > 1 else n for n, v in sorted(newest.items())]

    def versions(self) -> list[ModelVersion]:
        """Every stored version, by name then version (one whose bytes can no longer be
        scored is listed with its stored signature: SHOW MODELS still shows what to drop)."""
        return [self._version(r, listing=True) for r in self._store.rows()]

    def drop(self, name: str, *, if_exists: bool = False) -> int:
        """Remove every version of ``name``; returns how many were removed."""
        self._resolved.clear()
        self.changes += 1
        plain, version = split_ref(name)
        if not self.exists(plain):
            if if_exists:
                return 0
            self.resolve(plain)  # raises with the list of known models
        removed = self._store.remove(plain, version)
        if version is not None and not removed and not if_exists:
            self.resolve(name)
        return removed

    def _payload(self, name: str, version: int, sha256: str) -> bytes:
        cached = self._bytes.get(sha256)
        if cached is None:
            cached = self._store.payload(name, version)
            self._bytes[sha256] = cached
        return cached

    def _signature(self, row: StoredModel, payload: bytes) -> Signature:
        """The signature onnxruntime reads from the stored bytes, not the one stored with
        them: an older nbgov stored the declared output width (skl2onnx declares ``[N, 1]``
        for a two-target forest that returns ``[N, 2]``), and every query of it then failed."""
        found = self._signatures.get(row.sha256)
        if found is None:
            try:
                loaded = from_bytes(payload, label=f"model {row.name}@{row.version} as stored")
                found = (loaded.inputs, loaded.outputs)
            except InvalidModelError as error:
                found = InvalidModelError(f"{error}; DROP MODEL {row.name}@{row.version} removes it")
            self._signatures[row.sha256] = found
        if isinstance(found, InvalidModelError):
            raise found
        return found

    def _version(self, row: StoredModel, *, listing: bool = False) -> ModelVersion:
        """``row`` as the engine scores it; ``listing``: a version whose bytes are refused
        keeps its stored signature instead of raising."""
        payload = self._payload(row.name, int(row.version), row.sha256)
        try:
            inputs, outputs = self._signature(row, payload)
        except InvalidModelError:
            if not listing:
                raise
            inputs, outputs = _specs_from_json(row.inputs), _specs_from_json(row.outputs)
        return ModelVersion(
            name=row.name,
            version=int(row.version),
            sha256=row.sha256,
            onnx_bytes=payload,
            inputs=inputs,
            outputs=outputs,
            producer=row.producer,
            opset=int(row.opset) if row.opset is not None else None,
            feature_names=tuple(json.loads(row.feature_names)) if row.feature_names else None,
            created=str(row.created),
        )


def _stale(row: StoredModel, model: LoadedModel) -> bool:
    """Whether ``row`` stores another signature than the one ``model`` (its bytes) has."""
    stored = (_specs_from_json(row.inputs), _specs_from_json(row.outputs))
    return stored != (model.inputs, model.outputs)


def _specs_json(specs: tuple[TensorSpec, ...]) -> str:
    return json.dumps([{"name": s.name, "type": s.elem_type, "shape": list(s.shape)} for s in specs])


def _specs_from_json(text: str) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(name=d["name"], elem_type=d["type"], shape=tuple(d["shape"])) for d in json.loads(text)
    )
