"""What ``%%sqlml`` reports about each statement, read once into a typed ``SqlReport``.

The engine hands over one activity per statement (today a dict, soon a frozen
``Activity``); this module is the only place that reads its fields, so the recorder
never walks it. A field of the wrong type is dropped with a note instead of breaking
the record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nbgov.lineage.record import CREATE_MODEL, Fingerprint, ModelRole

_NAMES = ("tables_read", "tables_written", "files_read", "files_written", "frames", "params")


@dataclass(frozen=True)
class ReportedModel:
    """A model version a statement used or created, as the engine reported it."""

    name: str
    version: int
    sha256: str
    producer: str | None
    opset: int | None
    role: ModelRole


@dataclass(frozen=True)
class SqlReport:
    statement: str
    kind: str
    engine: str = "duckdb"
    tables_read: tuple[str, ...] = ()
    tables_written: tuple[str, ...] = ()
    files_read: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()
    frames: tuple[str, ...] = ()  # notebook DataFrames read by variable name
    params: tuple[str, ...] = ()  # notebook variables bound as $name
    models: tuple[ReportedModel, ...] = ()
    table_fingerprints: Mapping[str, Fingerprint] = field(default_factory=dict)  # tables written
    problems: tuple[str, ...] = ()


def _field(activity: Any, key: str) -> Any:
    if isinstance(activity, Mapping):
        return activity.get(key)
    if dataclasses.is_dataclass(activity):
        return getattr(activity, key, None)
    return None


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _model(raw: Any, creating: bool) -> ReportedModel:
    name, version, sha = _field(raw, "name"), _field(raw, "version"), _field(raw, "sha256")
    if not isinstance(name, str) or not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("a model needs a name and an integer version")
    producer, opset = _field(raw, "producer"), _field(raw, "opset")
    created = _field(raw, "created")
    role: ModelRole = "output" if (created if isinstance(created, bool) else creating) else "input"
    return ReportedModel(
        name, version, str(sha or ""),
        producer if isinstance(producer, str) else None,
        opset if isinstance(opset, int) and not isinstance(opset, bool) else None,
        role,
    )


def read_activity(activity: Any) -> SqlReport:
    """One engine activity as a ``SqlReport``; unreadable parts become ``problems``."""
    problems: list[str] = []
    kind = _field(activity, "kind")
    kind = kind if isinstance(kind, str) else "unknown"
    names: dict[str, tuple[str, ...]] = {}
    for key in _NAMES:
        value = _strings(_field(activity, key))
        if value is None:
            problems.append(f"SQL report field {key} ignored (not a list of names)")
        names[key] = value or ()
    models: list[ReportedModel] = []
    for raw in _field(activity, "models") or ():
        try:
            models.append(_model(raw, kind == CREATE_MODEL))
        except (TypeError, ValueError) as exc:
            problems.append(f"SQL report model ignored ({exc})")
    fingerprints: dict[str, Fingerprint] = {}
    reported = _field(activity, "table_fingerprints")
    if isinstance(reported, Mapping):
        fingerprints = {str(k): v for k, v in reported.items() if isinstance(v, Fingerprint)}
    statement, engine = _field(activity, "statement"), _field(activity, "engine")
    return SqlReport(
        statement=statement if isinstance(statement, str) else "",
        kind=kind,
        engine=engine if isinstance(engine, str) else "duckdb",
        tables_read=names["tables_read"],
        tables_written=names["tables_written"],
        files_read=names["files_read"],
        files_written=names["files_written"],
        frames=names["frames"],
        params=names["params"],
        models=tuple(models),
        table_fingerprints=fingerprints,
        problems=tuple(problems),
    )
