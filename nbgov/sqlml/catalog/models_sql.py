"""CREATE / SHOW / DESCRIBE / DROP MODEL: the catalog statements DuckDB does not know."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nbgov.errors import SqlmlError
from nbgov.sqlml.activity import Activity, ModelRef
from nbgov.sqlml.catalog.catalog import ModelCatalog, Registration
from nbgov.sqlml.catalog.modelfile import LoadedModel, load_object, load_path
from nbgov.sqlml.plan import ModelVersion, TensorSpec
from nbgov.sqlml.sql.statements import (
    CreateModel,
    DescribeModel,
    DropModel,
    ModelStatement,
    ShowModels,
)


def _shape(spec: TensorSpec) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in spec.shape) + "]"


def _signature(specs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(f"{s.name} {s.elem_type}{_shape(s)}" for s in specs)


@dataclass(frozen=True)
class _Source:
    """Where a CREATE MODEL read its model from: a file, a notebook variable (maybe a path)."""

    files: tuple[str, ...]
    params: tuple[str, ...]

    def registered(self, text: str, model: ModelVersion, done: Registration) -> Activity:
        """The CREATE MODEL's activity. Only a new version is created: the same bytes found
        registered ("unchanged", or "corrected": its stored signature rewritten to what the
        bytes already give) are a version an earlier statement created, which this one used;
        its creator stays the version's last writer in lineage."""
        ref = (ModelRef.of(model),)
        new = done == "new"
        return Activity(text, "create_model", files_read=self.files, params=self.params,
                        models_used=() if new else ref, models_created=ref if new else ())


def _load(parsed: CreateModel, params: Mapping[str, Any] | None) -> tuple[LoadedModel, _Source]:
    """The model a CREATE MODEL names (a file, or a notebook variable), and where it was read."""
    if parsed.path is not None:
        return load_path(parsed.path, cwd=Path.cwd()), _Source((os.path.expanduser(parsed.path),), ())
    assert parsed.variable is not None
    if params is None or parsed.variable not in params:
        raise SqlmlError(f"unknown parameter ${parsed.variable}: no notebook variable of that name")
    value = params[parsed.variable]
    files = (os.path.expanduser(os.fspath(value)),) if isinstance(value, (str, os.PathLike)) else ()
    return load_object(value, label=f"${parsed.variable}"), _Source(files, (parsed.variable,))


def _exists(name: str) -> str:
    """What CREATE MODEL IF NOT EXISTS says of a name already registered (it was read as the
    model name "IF" and failed with "expected FROM after the model name")."""
    return f"model {name} already exists; nothing registered (IF NOT EXISTS)"


def explain_model_statement(
    catalog: ModelCatalog, parsed: ModelStatement, text: str, params: Mapping[str, Any] | None
) -> tuple[str, Activity]:
    """What a model statement would do, changing nothing. CREATE MODEL loads and checks
    the model and makes it resolvable for the rest of the explained cell (see
    ``ModelCatalog.previewing``), so later statements can be planned with it."""
    if not isinstance(parsed, CreateModel):
        kind = type(parsed).__name__
        return f"{kind}: a model catalog statement (nothing to plan)", Activity(text, "model")
    if parsed.if_not_exists and catalog.exists(parsed.name):
        return f"CREATE MODEL: {_exists(parsed.name)} (--explain: nothing stored)", Activity(text, "model")
    loaded, source = _load(parsed, params)
    model, done = catalog.preview(parsed.name, loaded)
    state = {
        "new": "would register",
        "unchanged": "would leave unchanged (same bytes)",
        "corrected": "would leave unchanged (same bytes) but correct the stored signature of",
    }[done]
    return (
        f"CREATE MODEL: {state} model {model.name} version {model.version}, sha256 {model.sha256[:12]}; "
        f"inputs {_signature(model.inputs)}; outputs {_signature(model.outputs)} (--explain: nothing stored)",
        source.registered(text, model, done),
    )


def run_model_statement(
    catalog: ModelCatalog,
    parsed: ModelStatement,
    text: str,
    params: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame | None, str, Activity]:
    """Returns (result frame or None, one-line summary, activity)."""
    if isinstance(parsed, CreateModel):
        if parsed.if_not_exists and catalog.exists(parsed.name):
            return None, _exists(parsed.name), Activity(text, "model")
        loaded, source = _load(parsed, params)
        model, done = catalog.register(parsed.name, loaded)
        state = "registered" if done == "new" else "unchanged (same bytes)"
        summary = f"model {model.name} version {model.version} {state}, sha256 {model.sha256[:12]}"
        if done == "corrected":
            summary += f"; stored signature corrected to what onnxruntime returns: outputs {_signature(model.outputs)}"
        return None, summary, source.registered(text, model, done)
    if isinstance(parsed, ShowModels):
        activity = Activity(text, "show_models")
        rows = [
            {
                "name": m.name,
                "version": m.version,
                "sha256": m.sha256,
                "inputs": _signature(m.inputs),
                "outputs": _signature(m.outputs),
                "producer": m.producer,
                "opset": m.opset,
                "created": m.created,
            }
            for m in catalog.versions()
        ]
        columns = ["name", "version", "sha256", "inputs", "outputs", "producer", "opset", "created"]
        return pd.DataFrame(rows, columns=columns), f"{len(rows)} model version(s)", activity
    if isinstance(parsed, DescribeModel):
        model = catalog.resolve(parsed.ref)
        activity = Activity(text, "describe_model", models_used=(ModelRef.of(model),))
        rows = [
            {"kind": kind, "name": s.name, "type": s.elem_type, "shape": _shape(s)}
            for kind, specs in (("input", model.inputs), ("output", model.outputs))
            for s in specs
        ]
        frame = pd.DataFrame(rows, columns=["kind", "name", "type", "shape"])
        if model.feature_names:
            frame["features"] = [
                ", ".join(model.feature_names) if r["kind"] == "input" else None for r in rows
            ]
        return frame, f"model {model.ref}", activity
    assert isinstance(parsed, DropModel)
    removed = catalog.drop(parsed.ref, if_exists=parsed.if_exists)
    activity = Activity(text, "drop_model", models_dropped=tuple(ModelRef.of(row) for row in removed))
    if not removed:  # DROP MODEL IF EXISTS of a model that is not there said "dropped (0 version(s))"
        return None, f"model {parsed.ref} does not exist; nothing dropped", activity
    return None, f"model {parsed.ref} dropped ({len(removed)} version(s))", activity
