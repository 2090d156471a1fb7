"""The model catalog, stored in DuckDB itself so a ``--db`` file carries its models.

Table ``nbgov.models``: one row per (name, version) with the ONNX bytes, sha256,
signature (JSON), producer, opset, feature names and creation time. Registering
bytes that differ from the newest version makes version n+1; identical bytes keep
the version (its stored signature is rewritten when it was wrong). ``name`` means
the newest version, ``name@2`` pins version 2.

Opening a catalog and listing it (``SHOW MODELS``) read rows, never bytes: no
onnxruntime session is made for a model nobody uses. A version is checked when it is
first used (resolved: scoring, EXPLAIN, DESCRIBE), once per catalog:

- its bytes must hash to the row's sha256 (what lineage records as the model scored);
  bytes changed behind nbgov's back are refused in one line naming the version and
  ``DROP MODEL``, with the error the bytes themselves give when they are no longer a
  model onnxruntime takes;
- its stored signature must be the one read from those bytes. CREATE MODEL reads it from
  an onnxruntime session and a run (the width a model returns, not always the one it
  declares) and stores with it a check mark, a digest of the check's rule, the sha256
  and the signature. A marked row whose signature agrees with the graph's declared
  inputs and outputs (``runtime.declared_signature``, a protobuf parse, no session) is
  used as stored; a row without a mark (an older nbgov, which stored the declared
  output width), or whose mark no longer matches (its signature or sha256 edited since),
  is read from a session on its bytes as before, and is scored by that signature
  without writing to the database on a read; CREATE MODEL of the same bytes stores the
  corrected signature and the mark.

Sessions for scoring are made by the executor when it first scores a model version (one
per version, or per pruned model the optimizer made of it), and kept. A session this
catalog's checks opened on a version's bytes (CREATE MODEL's, or the first use of a row
an older nbgov wrote) goes to the engine's ``SessionSink``, which scores the version
with it instead of opening another.

The rules live in ``ModelCatalog``; where rows are kept is a ``ModelStore`` (DuckDB
here, a Spark warehouse table in ``nbgov.sqlml.spark.catalog_store``), so every
engine has the same statements, versions and errors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal, Protocol

import duckdb
import onnx

from nbgov.errors import InvalidModelError, ModelNotFoundError, SqlmlError
from nbgov.sqlml.catalog.modelfile import LoadedModel, from_bytes
from nbgov.sqlml.models.onnxtypes import width
from nbgov.sqlml.models.runtime import declared_signature
from nbgov.sqlml.plan import ModelVersion, TensorSpec, original_key

if TYPE_CHECKING:
    import onnxruntime as ort

_SCHEMA = "nbgov"
_TABLE = "nbgov.models"
_COLUMNS = "name, version, sha256, inputs, outputs, producer, opset, feature_names, created, checked"
# A table an older nbgov made has no ``checked``: read as NULL until nbgov first writes to it.
_UNMARKED_COLUMNS = _COLUMNS.replace("checked", "NULL AS checked")
# What a check mark vouches for: the signature was read from the bytes by modelfile's
# checks (a session and a run). Change it when those checks change what they store or
# refuse: rows marked before are then checked with a session again.
_CHECK_RULE = "nbgov.signature/1"


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
    """One stored version without its bytes; signatures and feature names as JSON text;
    ``checked`` the check mark CREATE MODEL stored (see the module's docstring), None
    where a store keeps none or an older nbgov wrote the row."""

    name: str
    version: int
    sha256: str
    inputs: str
    outputs: str
    producer: str | None
    opset: int | None
    feature_names: str | None
    created: str
    checked: str | None = None


@dataclass(frozen=True)
class ListedModel:
    """One stored version as ``SHOW MODELS`` lists it, read from its row alone: the
    signature this catalog read from its bytes when it already checked them, else the
    stored one."""

    name: str
    version: int
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    producer: str | None
    opset: int | None
    created: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


# Takes a session opened on a version's bytes by the catalog's checks, under the cache key
# of the plan that scores the version whole (``plan.original_key``).
SessionSink = Callable[[str, "ort.InferenceSession"], None]


class ModelStore(Protocol):
    """Where catalog rows live. Names match case-insensitively."""

    def latest(self, name: str) -> StoredModel | None: ...

    def get(self, name: str, version: int) -> StoredModel | None: ...

    def add(self, row: StoredModel, payload: bytes) -> None: ...

    def resign(self, row: StoredModel) -> None:
        """Store ``row``'s signature (and check mark, where kept) for its (name, version);
        bytes and version unchanged."""
        ...

    def mark(self, row: StoredModel) -> None:
        """Store ``row.checked`` for its (name, version) where this store keeps check
        marks; a store that keeps none does nothing (its rows are checked with a session
        when first used in each process)."""
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
                checked VARCHAR, PRIMARY KEY (name, version))"""
        ).fetchall()
        described = con.execute(f"SELECT * FROM {_TABLE} LIMIT 0").description or []
        # A file an older nbgov made lacks the column: opening it writes nothing, the first
        # write adds the column (its rows unmarked, so checked with a session when used).
        self._columns = _COLUMNS if any(d[0] == "checked" for d in described) else _UNMARKED_COLUMNS

    def latest(self, name: str) -> StoredModel | None:
        rows = self._con.execute(
            f"SELECT {self._columns} FROM {_TABLE} WHERE lower(name) = lower(?) ORDER BY version DESC LIMIT 1",
            [name],
        ).fetchall()
        return StoredModel(*rows[0]) if rows else None

    def get(self, name: str, version: int) -> StoredModel | None:
        rows = self._con.execute(
            f"SELECT {self._columns} FROM {_TABLE} WHERE lower(name) = lower(?) AND version = ?",
            [name, version],
        ).fetchall()
        return StoredModel(*rows[0]) if rows else None

    def _writable(self) -> None:
        """Add the ``checked`` column to a table an older nbgov made."""
        if self._columns != _COLUMNS:
            self._con.execute(f"ALTER TABLE {_TABLE} ADD COLUMN IF NOT EXISTS checked VARCHAR").fetchall()
            self._columns = _COLUMNS

    def add(self, row: StoredModel, payload: bytes) -> None:
        self._writable()
        self._con.execute(
            f"INSERT INTO {_TABLE} ({_COLUMNS}, onnx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row.name, row.version, row.sha256, row.inputs, row.outputs, row.producer, row.opset,
             row.feature_names, row.created, row.checked, payload],
        ).fetchall()

    def resign(self, row: StoredModel) -> None:
        self._writable()
        self._con.execute(
            f"UPDATE {_TABLE} SET inputs = ?, outputs = ?, checked = ? WHERE name = ? AND version = ?",
            [row.inputs, row.outputs, row.checked, row.name, row.version],
        ).fetchall()

    def mark(self, row: StoredModel) -> None:
        self._writable()
        self._con.execute(
            f"UPDATE {_TABLE} SET checked = ? WHERE name = ? AND version = ?", [row.checked, row.name, row.version]
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
        rows = self._con.execute(f"SELECT {self._columns} FROM {_TABLE} ORDER BY name, version").fetchall()
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
        # Bytes by sha256, kept only once they were seen to hash to it.
        self._bytes: dict[str, bytes] = {}
        # The signature read from the bytes of each sha256 (a session and a run, or a marked
        # row that agrees with the graph), or why those bytes cannot be scored.
        self._signatures: dict[str, Signature | InvalidModelError] = {}
        # Resolved versions by lower-cased ref; cleared by every register/drop of this catalog.
        self._resolved: dict[str, ModelVersion] = {}
        self.changes = 0  # counts registers and drops: plans made before a change are stale
        # Models an EXPLAIN would create, by lower-cased name (see ``previewing``).
        self._pending: dict[str, ModelVersion] | None = None
        self._sessions: SessionSink | None = None

    def hand_sessions_to(self, sink: SessionSink) -> None:
        """Give ``sink`` each session the checks open on a version's bytes (see the module's
        docstring); without one they are let go."""
        self._sessions = sink

    def _hand_over(self, sha256: str, session: ort.InferenceSession | None) -> None:
        if self._sessions is not None and session is not None:
            self._sessions(original_key(sha256), session)

    def register(self, name: str, model: LoadedModel) -> tuple[ModelVersion, Registration]:
        """Store ``model`` under ``name``; returns the version and what was done. The same
        bytes are the same version (lineage names versions by sha256); a signature stored
        wrong for them (by an older nbgov) is rewritten in place, as MLflow keeps one
        version per artifact and BigQuery ML's CREATE OR REPLACE leaves the model right."""
        registered = self._register(name, model)
        self._hand_over(model.sha256, model.session)  # the stored bytes are ``model``'s
        return registered

    def _register(self, name: str, model: LoadedModel) -> tuple[ModelVersion, Registration]:
        if not name or "@" in name:
            raise SqlmlError(f"bad model name {name!r}; expected a plain identifier")
        latest = self._store.latest(name)
        self._signatures[model.sha256] = (model.inputs, model.outputs)
        if latest is not None and latest.sha256 == model.sha256:
            if not _stale(latest, model):
                found = self._version(latest)  # the stored bytes are checked: they must still be these
                if latest.checked != _check_mark(latest):  # stored by an older nbgov: marked now
                    self._store.mark(_marked(latest))
                return found, "unchanged"
            self._store.resign(_marked(replace(latest, inputs=_specs_json(model.inputs), outputs=_specs_json(model.outputs))))
            self._resolved.clear()
            row = self._store.get(latest.name, latest.version)
            assert row is not None
            return self._version(row), "corrected"
        stored_name = latest.name if latest is not None else name
        version = (latest.version + 1) if latest is not None else 1
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._resolved.clear()
        self.changes += 1
        stored = _marked(StoredModel(
            name=stored_name,
            version=version,
            sha256=model.sha256,
            inputs=_specs_json(model.inputs),
            outputs=_specs_json(model.outputs),
            producer=model.producer,
            opset=model.opset,
            feature_names=json.dumps(list(model.feature_names)) if model.feature_names is not None else None,
            created=created,
        ))
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

    def versions(self) -> list[ListedModel]:
        """Every stored version, by name then version, from the rows alone: no bytes read,
        no session made. A version this catalog already checked is listed with the
        signature read from its bytes; any other with its stored one, also one whose bytes
        would be refused when used: SHOW MODELS still shows what to drop."""
        listed = []
        for row in self._store.rows():
            known = self._signatures.get(row.sha256)
            inputs, outputs = known if isinstance(known, tuple) else _stored_signature(row)
            listed.append(ListedModel(
                name=row.name, version=int(row.version), sha256=row.sha256, inputs=inputs, outputs=outputs,
                producer=row.producer, opset=int(row.opset) if row.opset is not None else None, created=str(row.created),
            ))
        return listed

    def drop(self, name: str, *, if_exists: bool = False) -> tuple[StoredModel, ...]:
        """Remove every version of ``name`` (or the one ``name@version`` pins); returns the
        rows removed, as stored (lineage names each; no bytes read, so a version whose bytes
        are refused can still be dropped)."""
        self._resolved.clear()
        self.changes += 1
        plain, version = split_ref(name)
        if not self.exists(plain):
            if if_exists:
                return ()
            self.resolve(plain)  # raises with the list of known models
        rows = tuple(row for row in self._store.rows()
                     if row.name.lower() == plain.lower() and version in (None, row.version))
        removed = self._store.remove(plain, version)
        if version is not None and not removed and not if_exists:
            self.resolve(name)
        return rows if removed else ()

    def _payload(self, row: StoredModel) -> bytes:
        """The bytes of ``row``, refused unless they hash to its sha256."""
        cached = self._bytes.get(row.sha256)
        if cached is not None:
            return cached
        payload = self._store.payload(row.name, int(row.version))
        found = hashlib.sha256(payload).hexdigest()
        if found != row.sha256:
            label = f"model {row.name}@{row.version} as stored"
            try:  # bytes that are no longer a model say so as they always did
                from_bytes(payload, label=label)
            except InvalidModelError as error:
                raise InvalidModelError(f"{error}; DROP MODEL {row.name}@{row.version} removes it") from None
            raise InvalidModelError(
                f"{label} is not the model registered: its bytes have sha256 {found[:12]}, "
                f"registered as {row.sha256[:12]} (changed outside nbgov); DROP MODEL {row.name}@{row.version} removes it"
            )
        self._bytes[row.sha256] = payload
        return payload

    def _signature(self, row: StoredModel, payload: bytes) -> Signature:
        """The signature read from the stored bytes, not merely the one stored with them: an
        older nbgov stored the declared output width (skl2onnx declares ``[N, 1]`` for a
        two-target forest that returns ``[N, 2]``), and every query of it then failed. A row
        whose check mark vouches for its signature and whose signature agrees with the
        graph is taken as stored, with no session; any other is read from a session."""
        found = self._signatures.get(row.sha256)
        if found is None:
            found = _checked_as_stored(row, payload)
        if found is None:
            try:
                loaded = from_bytes(payload, label=f"model {row.name}@{row.version} as stored")
                found = (loaded.inputs, loaded.outputs)
                self._hand_over(row.sha256, loaded.session)  # a session on the row's bytes
            except InvalidModelError as error:
                found = InvalidModelError(f"{error}; DROP MODEL {row.name}@{row.version} removes it")
        self._signatures[row.sha256] = found
        if isinstance(found, InvalidModelError):
            raise found
        return found

    def _version(self, row: StoredModel) -> ModelVersion:
        """``row`` as the engine scores it, its bytes and signature checked (see ``_payload``
        and ``_signature``)."""
        payload = self._payload(row)
        inputs, outputs = self._signature(row, payload)
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
    return _stored_signature(row) != (model.inputs, model.outputs)


def _stored_signature(row: StoredModel) -> Signature:
    return _specs_from_json(row.inputs), _specs_from_json(row.outputs)


def _check_mark(row: StoredModel) -> str:
    """The check mark of ``row``: a digest of the check's rule, the sha256 and the signature
    (as parsed, so the JSON's spacing does not matter)."""
    text = json.dumps(
        [_CHECK_RULE, row.sha256, json.loads(row.inputs), json.loads(row.outputs)], sort_keys=True, separators=(",", ":")
    )
    return "1:" + hashlib.sha256(text.encode()).hexdigest()


def _marked(row: StoredModel) -> StoredModel:
    return replace(row, checked=_check_mark(row))


def _checked_as_stored(row: StoredModel, payload: bytes) -> Signature | None:
    """``row``'s stored signature when its check mark vouches for it and the graph of
    ``payload`` (bytes that hash to its sha256) declares the same inputs and outputs; None
    when a session must tell (no mark, a mark for another signature, a disagreement)."""
    try:
        if row.checked is None or row.checked != _check_mark(row):
            return None
        stored = _stored_signature(row)
        declared = declared_signature(onnx.load_model_from_string(payload))
    except Exception:  # an unreadable signature or graph: the session's check says what is wrong
        return None
    if stored[0] != declared[0] or len(stored[1]) != len(declared[1]):
        return None
    if not all(_output_agrees(s, d) for s, d in zip(stored[1], declared[1])):
        return None
    return stored


def _output_agrees(stored: TensorSpec, declared: TensorSpec) -> bool:
    """Whether a session could report ``stored`` for an output the graph declares as
    ``declared``: the same name and type, and a shape where only what the graph leaves open
    is filled in (onnxruntime's shape inference), or a 2-D width where the graph fixes
    another (the width a run returned, ``modelfile._widths_as_run``)."""
    if (stored.name, stored.elem_type) != (declared.name, declared.elem_type):
        return False
    if len(stored.shape) == len(declared.shape) and all(
        d is None or s == d for s, d in zip(stored.shape, declared.shape)
    ):
        return True
    batch = declared.shape[0] if declared.shape else None
    return (
        width(declared) is not None
        and len(stored.shape) == 2
        and (batch is None or stored.shape[0] == batch)
        and isinstance(stored.shape[1], int)
    )


def _specs_json(specs: tuple[TensorSpec, ...]) -> str:
    return json.dumps([{"name": s.name, "type": s.elem_type, "shape": list(s.shape)} for s in specs])


def _specs_from_json(text: str) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(name=d["name"], elem_type=d["type"], shape=tuple(d["shape"])) for d in json.loads(text)
    )
