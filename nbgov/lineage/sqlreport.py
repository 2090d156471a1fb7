"""What ``%%sqlml`` reports about each statement, read once into a typed ``SqlReport``.

The engine hands over one frozen ``Activity`` per statement (``nbgov.sqlml.activity``;
older engines a dict of the same fields); this module is the only place that reads it,
so the recorder never walks it. Models the statement registered are outputs, those it
scored or described inputs, those it removed (DROP MODEL) dropped; tables it created or changed come with the content
fingerprint the engine took after the statement (or its reason for not taking one).
A field of the wrong type is dropped with a note instead of breaking the record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nbgov.lineage.record import CREATE_MODEL, Fingerprint, ModelRole
from nbgov.sqlml.activity import Activity, ModelRef, TableContent, TableIdentity

_NAMES = ("tables_read", "tables_written", "files_read", "files_written", "frames", "params")


@dataclass(frozen=True)
class ReportedModel:
    """A model version a statement used, created or dropped, as the engine reported it."""

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


# nbgov's own frozen report classes (plain fields, no properties among the keys read here):
# read directly, without the Mapping and dataclass checks each field would cost
_OWN_REPORTS = frozenset(map(id, (Activity, ModelRef, TableContent, TableIdentity)))


def _field(activity: Any, key: str) -> Any:
    if id(type(activity)) in _OWN_REPORTS:
        return getattr(activity, key, None)
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


def _model(raw: Any, role: ModelRole) -> ReportedModel:
    name, version, sha = _field(raw, "name"), _field(raw, "version"), _field(raw, "sha256")
    if not isinstance(name, str) or not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("a model needs a name and an integer version")
    producer, opset = _field(raw, "producer"), _field(raw, "opset")
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
        models=_models(activity, kind, problems),
        table_fingerprints={**_read(activity, problems), **_written(activity, problems)},
        problems=tuple(problems),
    )


def _models(activity: Any, kind: str, problems: list[str]) -> tuple[ReportedModel, ...]:
    """Used versions as inputs, registered ones as outputs, removed ones as dropped (one
    entry per version: a change of it wins over a use)."""
    reported: list[tuple[Any, ModelRole]] = []
    if dataclasses.is_dataclass(activity):
        reported += [(m, "input") for m in _field(activity, "models_used") or ()]
        reported += [(m, "output") for m in _field(activity, "models_created") or ()]
        reported += [(m, "dropped") for m in _field(activity, "models_dropped") or ()]
    else:
        listed = _field(activity, "models_created")  # absent: every model of a CREATE MODEL is created
        created = _strings(listed) or ()
        dropped = _strings(_field(activity, "models_dropped")) or ()
        for m in _field(activity, "models") or ():
            ref = f"{_field(m, 'name')}@{_field(m, 'version')}"
            made = ref in created if listed is not None else kind == CREATE_MODEL
            reported.append((m, "dropped" if ref in dropped else "output" if made else "input"))
    found: dict[tuple[str, int], ReportedModel] = {}
    for raw, role in reported:
        try:
            model = _model(raw, role)
        except (TypeError, ValueError) as exc:
            problems.append(f"SQL report model ignored ({exc})")
            continue
        key = (model.name, model.version)
        if key not in found or model.role != "input":
            found[key] = model
    return tuple(found.values())


def _read(activity: Any, problems: list[str]) -> dict[str, Fingerprint]:
    """Identities of the warehouse tables the statement read (Spark): a Delta/Iceberg
    version pins the data; a file listing only says the files are unchanged, so it is
    weak (unverifiable), its fingerprint kept in the reason."""
    out: dict[str, Fingerprint] = {}
    for identity in _field(activity, "read") or ():
        table, provider = _field(identity, "table"), _field(identity, "provider")
        version, location = _field(identity, "version"), _field(identity, "location")
        listing, reason = _field(identity, "listing"), _field(identity, "reason")
        if not isinstance(table, str) or not all(v is None or isinstance(v, str) for v in (provider, version, location, listing, reason)):
            problems.append("SQL report table identity ignored (malformed)")
            continue
        if version is not None:
            out[table] = Fingerprint("table", f"{provider}-version:{version}", False, f"{provider} version {version}")
        elif listing is not None:
            why = f"file listing {listing} of {location}: the same files, not a hash of their content"
            out[table] = Fingerprint("table", None, True, location or "", reason=why)
        else:
            out[table] = Fingerprint("table", None, True, reason=reason or "not identified by the engine")
    return out


def _written(activity: Any, problems: list[str]) -> dict[str, Fingerprint]:
    """Content fingerprints of the tables the statement created or changed."""
    out: dict[str, Fingerprint] = {}
    for content in _field(activity, "written") or ():
        table, digest = _field(content, "table"), _field(content, "hash")
        rows, reason = _field(content, "rows"), _field(content, "reason")
        if not isinstance(table, str) or not (digest is None or isinstance(digest, str)):
            problems.append("SQL report table content ignored (malformed)")
            continue
        summary = f"{rows:,} rows" if isinstance(rows, int) and not isinstance(rows, bool) else ""
        if digest is None:
            why = reason if isinstance(reason, str) and reason else "not fingerprinted by the engine"
            out[table] = Fingerprint("table", None, True, summary, reason=why)
        else:
            out[table] = Fingerprint("table", digest, False, summary)
    return out
