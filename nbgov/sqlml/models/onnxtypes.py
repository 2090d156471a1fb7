"""ONNX element types ↔ numpy dtypes ↔ DuckDB types, in one table."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import sqlglot.expressions as exp

from nbgov.sqlml.plan import TensorSpec
from nbgov.sqlml.sql.quoting import quote_ident

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


def value_duckdb_type(outputs: Sequence[TensorSpec]) -> str:
    """The type of ``predict(...)``: its one output's, or a STRUCT of every output."""
    if len(outputs) == 1:
        return output_duckdb_type(outputs[0])
    fields = ", ".join(f"{quote_ident(o.name)} {output_duckdb_type(o)}" for o in outputs)
    return f"STRUCT({fields})"


@lru_cache(maxsize=None)
def _data_type(name: str) -> exp.DataType:
    return exp.DataType.build(name, dialect="duckdb")


def data_type(name: str) -> exp.DataType:
    """A DuckDB type name as a sqlglot type (parsed once per name: building one runs the
    SQL parser); a copy the caller may put in a tree."""
    return _data_type(name).copy()


def cast_to_input(spec: TensorSpec, column: exp.Expression) -> exp.Cast:
    """``CAST(column AS <the model input's scalar type>)``: DuckDB converts the argument."""
    return exp.Cast(this=column.copy(), to=data_type(duckdb_scalar_type(spec.elem_type)))


def describe(spec: TensorSpec) -> str:
    """Human form used in error messages: ``age float[N,1]``."""
    dims = ",".join("N" if d is None or isinstance(d, str) else str(d) for d in spec.shape)
    return f"{spec.name} {spec.elem_type}[{dims}]"
