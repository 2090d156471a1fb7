"""ONNX element types ↔ numpy dtypes ↔ DuckDB types, in one table."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import sqlglot.errors as sqlglot_errors
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

# What an engine column may feed to an ONNX input of each kind without an explicit CAST:
# numbers to float inputs, whole numbers to integer inputs, text (and DuckDB ENUMs, which
# is what pandas categoricals become) to string inputs; NULL to anything (NULL output).
_REAL = frozenset({"float", "double"})
_ACCEPTED: dict[str, frozenset[str]] = {
    "real": frozenset({"integer", "real", "boolean", "null"}),
    "integer": frozenset({"integer", "boolean", "null"}),
    "bool": frozenset({"boolean", "null"}),
    "string": frozenset({"string", "null"}),
}
_KIND_NAMES = {
    "integer": "a whole number",
    "real": "a number",
    "boolean": "a boolean",
    "string": "text",
    "null": "NULL",
}
_NULL_TYPES = frozenset({"NULL", '"NULL"', "VOID"})


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


def input_kind(elem_type: str) -> str:
    """The family of an ONNX input type: "real", "integer", "bool" or "string"."""
    if elem_type in _REAL:
        return "real"
    return elem_type if elem_type in ("bool", "string") else "integer"


@lru_cache(maxsize=512)
def value_kind(type_name: str, dialect: str = "duckdb") -> str:
    """The family of an engine's column type (DuckDB's ``DECIMAL(9,2)``, Spark's
    ``bigint``...): "integer", "real", "boolean", "string", "null", or the type itself
    when no model input takes it (dates, lists, structs, blobs...)."""
    if type_name.strip().upper() in _NULL_TYPES:
        return "null"
    try:
        kind = exp.DataType.build(type_name, dialect=dialect).this
    except (ValueError, sqlglot_errors.SqlglotError):
        return type_name
    if kind == exp.DataType.Type.BOOLEAN:
        return "boolean"
    if kind in exp.DataType.INTEGER_TYPES and kind != exp.DataType.Type.BIT:
        return "integer"
    if kind in exp.DataType.REAL_TYPES:
        return "real"
    if kind in exp.DataType.TEXT_TYPES or kind == exp.DataType.Type.ENUM:
        return "string"
    if kind == exp.DataType.Type.NULL:
        return "null"
    return type_name


def accepts(elem_type: str, kind: str) -> bool:
    """Whether a value of ``kind`` (see ``value_kind``) may feed an input of ``elem_type``."""
    return kind in _ACCEPTED[input_kind(elem_type)]


def wanted_kinds(elem_type: str) -> str:
    """What an input takes, in words: "a number, a boolean or NULL"."""
    names = [_KIND_NAMES[k] for k in ("integer", "real", "boolean", "string", "null") if k in _ACCEPTED[input_kind(elem_type)]]
    if "a number" in names and "a whole number" in names:
        names.remove("a whole number")
    return ", ".join(names[:-1]) + " or " + names[-1]


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
