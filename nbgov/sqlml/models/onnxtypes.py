"""ONNX element types ↔ numpy dtypes ↔ DuckDB types, in one table."""

from __future__ import annotations

import numpy as np

from nbgov.sqlml.plan import TensorSpec

# ONNX type name -> (numpy dtype, DuckDB type)
_TYPES: dict[str, tuple[type, str]] = {
    "float": (np.float32, "FLOAT"),
    "double": (np.float64, "DOUBLE"),
    "int64": (np.int64, "BIGINT"),
    "int32": (np.int32, "INTEGER"),
    "int16": (np.int16, "SMALLINT"),
    "int8": (np.int8, "TINYINT"),
    "uint8": (np.uint8, "UTINYINT"),
    "uint16": (np.uint16, "USMALLINT"),
    "uint32": (np.uint32, "UINTEGER"),
    "uint64": (np.uint64, "UBIGINT"),
    "bool": (np.bool_, "BOOLEAN"),
    "string": (np.object_, "VARCHAR"),
}

NUMERIC = frozenset(t for t in _TYPES if t not in ("string", "bool"))


def ort_type_name(ort_type: str) -> str:
    """'tensor(float)' -> 'float'; anything else is returned unchanged."""
    if ort_type.startswith("tensor(") and ort_type.endswith(")"):
        return ort_type[len("tensor(") : -1]
    return ort_type


def is_supported(elem_type: str) -> bool:
    return elem_type in _TYPES


def numpy_dtype(elem_type: str) -> type:
    return _TYPES[elem_type][0]


def duckdb_scalar_type(elem_type: str) -> str:
    return _TYPES[elem_type][1]


def width(spec: TensorSpec) -> int | None:
    """Feature count of a 2-D ``[N, k]`` tensor, 1 for ``[N]``/``[N, 1]``, None if unknown."""
    if len(spec.shape) <= 1:
        return 1
    if len(spec.shape) == 2:
        k = spec.shape[1]
        return k if isinstance(k, int) else None
    return None


def output_duckdb_type(spec: TensorSpec) -> str:
    """A ``[N]``/``[N, 1]`` output is a scalar column; ``[N, k]`` becomes a LIST."""
    scalar = duckdb_scalar_type(spec.elem_type)
    return scalar if width(spec) == 1 else f"{scalar}[]"


def describe(spec: TensorSpec) -> str:
    """Human form used in error messages: ``age float[N,1]``."""
    dims = ",".join("N" if d is None or isinstance(d, str) else str(d) for d in spec.shape)
    return f"{spec.name} {spec.elem_type}[{dims}]"
