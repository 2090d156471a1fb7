"""Turn what the user names in CREATE MODEL (a file, bytes, a ModelProto, a fitted
scikit-learn estimator) into validated, self-contained ONNX bytes plus a signature.

Validation happens before anything is stored: the ONNX checker, the external-data
folder rule and an onnxruntime session (which refuses unsupported operators).

A version stored with the catalog's check mark is not put through these checks again
when a later process uses it (``catalog._CHECK_RULE``): a change to what they store or
refuse changes that rule, so rows marked before are checked again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from nbgov.errors import InvalidModelError
from nbgov.sqlml.models.onnxtypes import is_supported, numpy_dtype, ort_type_name, width
from nbgov.sqlml.plan import ModelVersion, TensorSpec

if TYPE_CHECKING:
    import onnxruntime as ort

FEATURE_NAMES_KEY = "nbgov.feature_names"


@dataclass(frozen=True)
class LoadedModel:
    """Self-contained ONNX bytes and the signature the engine scores against."""

    onnx_bytes: bytes
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    producer: str | None
    opset: int | None
    feature_names: tuple[str, ...] | None
    # The session the checks ran on ``onnx_bytes``: the engine that stores the model scores
    # with it instead of opening a second one on the same bytes.
    session: ort.InferenceSession | None = field(default=None, repr=False, compare=False)

    def as_version(self, name: str, version: int, created: str) -> ModelVersion:
        """This model as catalog version ``name@version`` (what resolve would return)."""
        return ModelVersion(
            name=name,
            version=version,
            sha256=self.sha256,
            onnx_bytes=self.onnx_bytes,
            inputs=self.inputs,
            outputs=self.outputs,
            producer=self.producer,
            opset=self.opset,
            feature_names=self.feature_names,
            created=created,
        )


def load_path(path: str, *, cwd: Path | None = None) -> LoadedModel:
    """Read an ONNX file; external data must stay inside the model's folder. A leading
    ``~`` is the user's home folder, as in DuckDB's own file paths (``FROM '~/x.parquet'``):
    ``CREATE MODEL m FROM '~/models/m.onnx'`` said "model file not found"."""
    given = Path(path).expanduser()
    full = given if given.is_absolute() else (cwd or Path.cwd()) / given
    if not full.is_file():
        raise InvalidModelError(f"model file not found: {path!r}; expected a path to an .onnx file")
    try:
        proto = onnx.load_model(str(full), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ...
        raise InvalidModelError(f"not a valid ONNX file: {path!r} ({_first_line(exc)})") from None
    _load_external_data(proto, full.parent, path)
    return from_proto(proto, label=repr(path))


def load_object(value: Any, *, label: str) -> LoadedModel:
    """A Python value bound by ``$name``: bytes, an onnx.ModelProto, a fitted sklearn
    model, or a path (str / PathLike) to an ONNX file."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return from_bytes(bytes(value), label=label)
    if isinstance(value, (str, os.PathLike)):
        return load_path(os.fspath(value))
    if isinstance(value, onnx.ModelProto):
        return from_proto(value, label=label)
    if _looks_like_sklearn(value):
        from nbgov.sqlml.catalog.sklearn_convert import convert

        return from_proto(convert(value, label=label), label=label)
    raise InvalidModelError(
        f"{label} is a {type(value).__name__}; expected ONNX bytes, an onnx.ModelProto "
        "or a fitted scikit-learn estimator"
    )


def from_bytes(payload: bytes, *, label: str) -> LoadedModel:
    try:
        proto = onnx.load_model_from_string(payload)
    except Exception as exc:
        raise InvalidModelError(f"{label} is not a valid ONNX model ({_first_line(exc)})") from None
    return from_proto(proto, label=label)


def from_proto(proto: onnx.ModelProto, *, label: str) -> LoadedModel:
    """Check the model, open an onnxruntime session on it and read its signature."""
    if not proto.graph.node and not proto.graph.output:
        raise InvalidModelError(f"{label} is not a valid ONNX model (empty graph)")
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise InvalidModelError(f"{label} refers to external data that was not loaded")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise InvalidModelError(f"{label} is not a valid ONNX model ({_first_line(exc)})") from None
    payload = proto.SerializeToString()
    from nbgov.sqlml.models.runtime import open_session

    try:
        session = open_session(payload)
    except Exception as exc:
        raise InvalidModelError(f"onnxruntime cannot run {label} ({_first_line(exc)})") from None
    inputs = tuple(_spec(arg) for arg in session.get_inputs())
    outputs = tuple(_spec(arg) for arg in session.get_outputs())
    for spec in inputs + outputs:
        if not is_supported(spec.elem_type):
            raise InvalidModelError(
                f"{label}: {spec.name} has type {spec.elem_type}; supported are tensors of "
                "float, double, int and string"
            )
    _one_batch_size(inputs, label)
    outputs = _widths_as_run(session, inputs, outputs, label)
    return LoadedModel(
        onnx_bytes=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        inputs=inputs,
        outputs=outputs,
        producer=proto.producer_name or None,
        opset=_default_opset(proto),
        feature_names=_feature_names(proto, inputs),
        session=session,
    )


def _one_batch_size(inputs: tuple[TensorSpec, ...], label: str) -> None:
    """Refuse inputs whose fixed batch sizes differ: rows are fed to every input at once."""
    fixed = {spec.shape[0] for spec in inputs if spec.shape and isinstance(spec.shape[0], int)}
    if len(fixed) > 1:
        raise InvalidModelError(
            f"{label}: its inputs take different fixed numbers of rows ({', '.join(map(str, sorted(fixed)))}); "
            "expected one batch size for every input"
        )


def _widths_as_run(
    session: Any, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], label: str
) -> tuple[TensorSpec, ...]:
    """The outputs with the width onnxruntime returns where the declared one is wrong.
    skl2onnx declares a multi-output tree regressor's output ``[N, 1]`` and returns
    ``[N, 2]``: every query then failed casting a LIST to a FLOAT. One run on a row of
    zeros (or on no rows, which no encoder refuses) tells the width; a model that takes
    neither keeps what it declares. An output without one row per input row is refused
    (skl2onnx's multi-output MLPRegressor returns ``[2N, 1]``: its rows were scrambled)."""
    rows = _batch(inputs, 1)
    run = _probe(session, inputs, 1)
    for spec, value in zip(outputs, run or []):
        shape: tuple[int, ...] = tuple(getattr(value, "shape", ()))
        if len(shape) >= 1 and shape[0] != rows:
            raise InvalidModelError(
                f"{label}: output {spec.name} has {shape[0]} row(s) for {rows} input row(s); "
                "expected one per row, so its values cannot be matched to rows"
            )
    run = run or _probe(session, inputs, 0)
    if run is None:
        return outputs
    fixed: list[TensorSpec] = []
    for spec, value in zip(outputs, run):
        declared = width(spec)
        shape = tuple(getattr(value, "shape", ()))
        if declared is not None and len(shape) == 2 and shape[1] != declared:
            batch = spec.shape[0] if spec.shape else None
            spec = TensorSpec(spec.name, spec.elem_type, (batch, int(shape[1])))
        fixed.append(spec)
    return tuple(fixed)


def _batch(inputs: tuple[TensorSpec, ...], rows: int) -> int:
    """The rows a run takes: the batch size the inputs fix, else ``rows``."""
    fixed = [spec.shape[0] for spec in inputs if spec.shape and isinstance(spec.shape[0], int)]
    return fixed[0] if fixed else rows


def _probe(session: Any, inputs: tuple[TensorSpec, ...], rows: int) -> list[Any] | None:
    """The outputs of one run on ``rows`` rows of zeros (empty strings); None if it fails."""
    import numpy as np

    feeds: dict[str, Any] = {}
    for spec in inputs:
        shape = [_batch(inputs, rows), *(d if isinstance(d, int) else 1 for d in spec.shape[1:])] if spec.shape else []
        dtype = numpy_dtype(spec.elem_type)
        feeds[spec.name] = np.full(shape, "", dtype=object) if dtype is np.object_ else np.zeros(shape, dtype=dtype)
    try:
        return list(session.run(None, feeds))
    except Exception:  # a value the model refuses, a shape it cannot take: nothing learned
        return None


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in (arg.shape or ()))
    return TensorSpec(name=arg.name, elem_type=ort_type_name(arg.type), shape=shape)


def _default_opset(proto: onnx.ModelProto) -> int | None:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _feature_names(proto: onnx.ModelProto, inputs: tuple[TensorSpec, ...]) -> tuple[str, ...] | None:
    for prop in proto.metadata_props:
        if prop.key == FEATURE_NAMES_KEY:
            try:
                names = json.loads(prop.value)
            except ValueError:
                return None
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return tuple(names)
    return None


def _all_tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    tensors = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.t is not None and attr.HasField("t"):
                tensors.append(attr.t)
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                tensors.extend(_all_tensors(sub))
    return tensors


def _load_external_data(proto: onnx.ModelProto, folder: Path, label: str) -> None:
    """Inline external tensors, refusing any location that leaves ``folder``."""
    root = folder.resolve()
    external = [t for t in _all_tensors(proto.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        target = (root / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(root):
            raise InvalidModelError(
                f"{label}: external data {location!r} lies outside the model's folder; "
                "expected a path inside it"
            )
        if not target.is_file():
            raise InvalidModelError(f"{label}: external data file {location!r} is missing")
    if external:
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, str(root))
        except Exception as exc:
            raise InvalidModelError(f"{label}: cannot read external data ({_first_line(exc)})") from None


def _looks_like_sklearn(value: Any) -> bool:
    return hasattr(value, "fit") and hasattr(value, "get_params")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
