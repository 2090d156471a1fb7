"""CREATE / SHOW / DESCRIBE / DROP MODEL: the catalog statements DuckDB does not know."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from nbgov.errors import SqlmlError
from nbgov.sqlml.activity import add_model, new_activity
from nbgov.sqlml.catalog.catalog import ModelCatalog
from nbgov.sqlml.catalog.modelfile import LoadedModel, load_object, load_path
from nbgov.sqlml.plan import TensorSpec
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


def _load(parsed: CreateModel, params: Mapping[str, Any] | None, activity: dict[str, Any]) -> LoadedModel:
    """The model a CREATE MODEL names (a file, or a notebook variable), noting what it read."""
    if parsed.path is not None:
        activity["files_read"].append(parsed.path)
        return load_path(parsed.path, cwd=Path.cwd())
    assert parsed.variable is not None
    if params is None or parsed.variable not in params:
        raise SqlmlError(f"unknown parameter ${parsed.variable}: no notebook variable of that name")
    value = params[parsed.variable]
    activity["params"].append(parsed.variable)
    if isinstance(value, (str, os.PathLike)):
        activity["files_read"].append(os.fspath(value))
    return load_object(value, label=f"${parsed.variable}")


def explain_model_statement(
    catalog: ModelCatalog, parsed: ModelStatement, text: str, params: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """What a model statement would do, changing nothing. CREATE MODEL loads and checks
    the model and makes it resolvable for the rest of the explained cell (see
    ``ModelCatalog.previewing``), so later statements can be planned with it."""
    if not isinstance(parsed, CreateModel):
        kind = type(parsed).__name__
        return f"{kind}: a model catalog statement (nothing to plan)", new_activity(text, "model")
    activity = new_activity(text, "create_model")
    model, new = catalog.preview(parsed.name, _load(parsed, params, activity))
    add_model(activity, model)
    state = "would register" if new else "would leave unchanged (same bytes)"
    return (
        f"CREATE MODEL: {state} model {model.name} version {model.version}, sha256 {model.sha256[:12]}; "
        f"inputs {_signature(model.inputs)}; outputs {_signature(model.outputs)} (--explain: nothing stored)",
        activity,
    )


def run_model_statement(
    catalog: ModelCatalog,
    parsed: ModelStatement,
    text: str,
    params: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame | None, str, dict[str, Any]]:
    """Returns (result frame or None, one-line summary, activity)."""
    if isinstance(parsed, CreateModel):
        activity = new_activity(text, "create_model")
        model, new = catalog.register(parsed.name, _load(parsed, params, activity))
        add_model(activity, model)
        state = "registered" if new else "unchanged (same bytes)"
        return None, f"model {model.name} version {model.version} {state}, sha256 {model.sha256[:12]}", activity
    if isinstance(parsed, ShowModels):
        activity = new_activity(text, "show_models")
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
        activity = new_activity(text, "describe_model")
        model = catalog.resolve(parsed.ref)
        add_model(activity, model)
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
    activity = new_activity(text, "drop_model")
    removed = catalog.drop(parsed.ref, if_exists=parsed.if_exists)
    return None, f"model {parsed.ref} dropped ({removed} version(s))", activity
