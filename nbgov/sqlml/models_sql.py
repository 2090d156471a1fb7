"""CREATE / SHOW / DESCRIBE / DROP MODEL: the catalog statements DuckDB does not know."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from nbgov.errors import SqlmlError
from nbgov.sqlml.activity import add_model, new_activity
from nbgov.sqlml.catalog import ModelCatalog
from nbgov.sqlml.modelfile import load_object, load_path
from nbgov.sqlml.plan import TensorSpec
from nbgov.sqlml.statements import (
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


def run_model_statement(
    catalog: ModelCatalog,
    parsed: ModelStatement,
    text: str,
    params: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame | None, str, dict[str, Any]]:
    """Returns (result frame or None, one-line summary, activity)."""
    if isinstance(parsed, CreateModel):
        activity = new_activity(text, "create_model")
        if parsed.path is not None:
            loaded = load_path(parsed.path, cwd=Path.cwd())
            activity["files_read"].append(parsed.path)
        else:
            assert parsed.variable is not None
            if params is None or parsed.variable not in params:
                raise SqlmlError(f"unknown parameter ${parsed.variable}: no notebook variable of that name")
            value = params[parsed.variable]
            loaded = load_object(value, label=f"${parsed.variable}")
            activity["params"].append(parsed.variable)
            if isinstance(value, (str, os.PathLike)):
                activity["files_read"].append(os.fspath(value))
        model, new = catalog.register(parsed.name, loaded)
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
