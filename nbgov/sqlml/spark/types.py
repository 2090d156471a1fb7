"""ONNX tensor specs as Spark SQL types (the schema of scored columns).

Spark has no unsigned integers: each unsigned type widens to the next signed one (the
worker casts the Arrow column to the schema promised to Spark)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlglot.expressions as exp

from nbgov.sqlml.models.onnxtypes import width
from nbgov.sqlml.plan import TensorSpec
from nbgov.sqlml.planning.prepared import Pick

if TYPE_CHECKING:
    from pyspark.sql.types import DataType

# ONNX element type -> Spark DDL type.
_SPARK_TYPES = {
    "float": "FLOAT",
    "double": "DOUBLE",
    "int64": "BIGINT",
    "int32": "INT",
    "int16": "SMALLINT",
    "int8": "TINYINT",
    "uint8": "SMALLINT",
    "uint16": "INT",
    "uint32": "BIGINT",
    "uint64": "DECIMAL(20, 0)",
    "bool": "BOOLEAN",
    "string": "STRING",
}


def output_ddl(spec: TensorSpec, element: bool = False) -> str:
    """A ``[N]``/``[N, 1]`` output (or one ``element`` of a wider one) is a scalar; ``[N, k]`` an ARRAY."""
    scalar = _SPARK_TYPES[spec.elem_type]
    return scalar if element or width(spec) == 1 else f"ARRAY<{scalar}>"


def value_ddl(outputs: Sequence[TensorSpec]) -> str:
    """The type of ``predict(...)``: its single output, or a STRUCT of all of them."""
    if len(outputs) == 1:
        return output_ddl(outputs[0])
    fields = ", ".join(f"{exp.to_identifier(o.name, quoted=True).sql('spark')}: {output_ddl(o)}" for o in outputs)
    return f"STRUCT<{fields}>"


def pick_ddl(pick: Pick, outputs: Sequence[TensorSpec]) -> str:
    """The type of one scored column."""
    if pick.output is None:
        return value_ddl(outputs)
    spec = next(o for o in outputs if o.name == pick.output)
    return output_ddl(spec, element=pick.element is not None)


def parse_ddl(ddl: str) -> DataType:
    from pyspark.sql.types import _parse_datatype_string

    return _parse_datatype_string(ddl)
