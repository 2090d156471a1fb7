"""The model catalog, stored in DuckDB itself so a ``--db`` file carries its models.

Table ``nbgov.models``: one row per (name, version) with the ONNX bytes, sha256,
signature (JSON), producer, opset, feature names and creation time. Registering
bytes that differ from the newest version makes version n+1; identical bytes are a
no-op. ``name`` means the newest version, ``name@2`` pins version 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import duckdb

from nbgov.errors import ModelNotFoundError, SqlmlError
from nbgov.sqlml.catalog.modelfile import LoadedModel
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


class ModelCatalog:
    """Register, resolve, list and drop model versions in one DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._bytes: dict[str, bytes] = {}
        # Resolved versions by lower-cased ref; cleared by every register/drop of this catalog.
        self._resolved: dict[str, ModelVersion] = {}
        self.changes = 0  # counts registers and drops: plans made before a change are stale
        # Models an EXPLAIN would create, by lower-cased name (see ``previewing``).
        self._pending: dict[str, ModelVersion] | None = None
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_SCHEMA}").fetchall()
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
                name VARCHAR NOT NULL, version INTEGER NOT NULL, sha256 VARCHAR NOT NULL,
                onnx BLOB NOT NULL, inputs VARCHAR NOT NULL, outputs VARCHAR NOT NULL,
                producer VARCHAR, opset INTEGER, feature_names VARCHAR, created VARCHAR NOT NULL,
                PRIMARY KEY (name, version))"""
        ).fetchall()

    def register(self, name: str, model: LoadedModel) -> tuple[ModelVersion, bool]:
        """Store ``model`` under ``name``; returns the version and whether it is new."""
        if not name or "@" in name:
            raise SqlmlError(f"bad model name {name!r}; expected a plain identifier")
        latest = self._latest_row(name)
        if latest is not None and latest[2] == model.sha256:
            return self._version(latest), False
        stored_name = latest[0] if latest is not None else name
        version = (latest[1] + 1) if latest is not None else 1
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._resolved.clear()
        self.changes += 1
        self._con.execute(
            f"INSERT INTO {_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                stored_name,
                version,
                model.sha256,
                model.onnx_bytes,
                _specs_json(model.inputs),
                _specs_json(model.outputs),
                model.producer,
                model.opset,
                json.dumps(list(model.feature_names)) if model.feature_names is not None else None,
                created,
            ],
        ).fetchall()
        self._bytes[model.sha256] = model.onnx_bytes
        row = self._row(stored_name, version)
        assert row is not None
        return self._version(row), True

    @contextmanager
    def previewing(self) -> Iterator[None]:
        """While open, ``preview`` makes models resolvable without storing them, so
        EXPLAIN of a cell can plan queries on a model the same cell creates."""
        self._pending = {}
        try:
            yield
        finally:
            self._pending = None

    def preview(self, name: str, model: LoadedModel) -> tuple[ModelVersion, bool]:
        """What ``register`` would store (version, whether new), without storing it."""
        if not name or "@" in name:
            raise SqlmlError(f"bad model name {name!r}; expected a plain identifier")
        pending = self._pending.get(name.lower()) if self._pending is not None else None
        if pending is not None:
            latest: tuple[str, int, str] | None = (pending.name, pending.version, pending.sha256)
        else:
            row = self._latest_row(name)
            latest = (row[0], int(row[1]), row[2]) if row is not None else None
        if latest is not None and latest[2] == model.sha256:
            return self.resolve(f"{latest[0]}@{latest[1]}"), False
        version = model.as_version(
            latest[0] if latest is not None else name,
            latest[1] + 1 if latest is not None else 1,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        if self._pending is not None:
            self._pending[name.lower()] = version
        return version, True

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
        row = self._latest_row(name) if version is None else self._row(name, version)
        if row is None:
            known = self.refs()
            listing = ", ".join(known) if known else "none registered yet"
            raise ModelNotFoundError(f"unknown model {ref!r}; known models: {listing}")
        resolved = self._version(row)
        self._resolved[ref.lower()] = resolved
        return resolved

    def exists(self, name: str) -> bool:
        return self._latest_row(name) is not None

    def refs(self) -> list[str]:
        rows = self._con.execute(
            f"SELECT name, max(version) FROM {_TABLE} GROUP BY name ORDER BY name"
        ).fetchall()
        return [f"{n}@{v}" if v > 1 else str(n) for n, v in rows]

    def versions(self) -> list[ModelVersion]:
        """Every stored version, by name then version."""
        rows = self._con.execute(f"SELECT {_COLUMNS} FROM {_TABLE} ORDER BY name, version").fetchall()
        return [self._version(r) for r in rows]

    def drop(self, name: str, *, if_exists: bool = False) -> int:
        """Remove every version of ``name``; returns how many were removed."""
        self._resolved.clear()
        self.changes += 1
        plain, version = split_ref(name)
        if not self.exists(plain):
            if if_exists:
                return 0
            self.resolve(plain)  # raises with the list of known models
        if version is None:
            rows = self._con.execute(
                f"DELETE FROM {_TABLE} WHERE lower(name) = lower(?) RETURNING version", [plain]
            ).fetchall()
        else:
            rows = self._con.execute(
                f"DELETE FROM {_TABLE} WHERE lower(name) = lower(?) AND version = ? RETURNING version",
                [plain, version],
            ).fetchall()
            if not rows and not if_exists:
                self.resolve(name)
        return len(rows)

    def _latest_row(self, name: str) -> tuple[Any, ...] | None:
        rows = self._con.execute(
            f"SELECT {_COLUMNS} FROM {_TABLE} WHERE lower(name) = lower(?) ORDER BY version DESC LIMIT 1",
            [name],
        ).fetchall()
        return rows[0] if rows else None

    def _row(self, name: str, version: int) -> tuple[Any, ...] | None:
        rows = self._con.execute(
            f"SELECT {_COLUMNS} FROM {_TABLE} WHERE lower(name) = lower(?) AND version = ?",
            [name, version],
        ).fetchall()
        return rows[0] if rows else None

    def _payload(self, name: str, version: int, sha256: str) -> bytes:
        cached = self._bytes.get(sha256)
        if cached is None:
            rows = self._con.execute(
                f"SELECT onnx FROM {_TABLE} WHERE name = ? AND version = ?", [name, version]
            ).fetchall()
            cached = bytes(rows[0][0])
            self._bytes[sha256] = cached
        return cached

    def _version(self, row: tuple[Any, ...]) -> ModelVersion:
        name, version, sha256, inputs, outputs, producer, opset, features, created = row
        return ModelVersion(
            name=name,
            version=int(version),
            sha256=sha256,
            onnx_bytes=self._payload(name, int(version), sha256),
            inputs=_specs_from_json(inputs),
            outputs=_specs_from_json(outputs),
            producer=producer,
            opset=int(opset) if opset is not None else None,
            feature_names=tuple(json.loads(features)) if features else None,
            created=str(created),
        )


def _specs_json(specs: tuple[TensorSpec, ...]) -> str:
    return json.dumps([{"name": s.name, "type": s.elem_type, "shape": list(s.shape)} for s in specs])


def _specs_from_json(text: str) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(name=d["name"], elem_type=d["type"], shape=tuple(d["shape"])) for d in json.loads(text)
    )
