"""Register one vectorized Arrow UDF per planned model call, and remove them again.

DuckDB hands an Arrow UDF at most 2048 rows per call with NULL rows already
removed; the UDF builds the ORT feeds with numpy and returns Arrow. Arguments are
wrapped in CAST(... AS <model input type>) so DuckDB does the type conversion.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from functools import lru_cache
from itertools import count
from typing import Any

import duckdb
import sqlglot.expressions as exp

from nbgov.sqlml.models.onnxtypes import duckdb_scalar_type, output_duckdb_type
from nbgov.sqlml.plan import BoundInput, OnnxPlan, TensorSpec
from nbgov.sqlml.sql.quoting import quote_ident
from nbgov.sqlml.execution.scoring import Scorer, SessionCache


_ARROW: Any = "arrow"  # accepted by DuckDB 1.x and 2.x alike (the enum moved between them)


def cast_argument(spec: TensorSpec, column: exp.Expression) -> exp.Expression:
    return exp.Cast(this=column.copy(), to=_sql_type(duckdb_scalar_type(spec.elem_type)).copy())


@lru_cache(maxsize=None)
def _sql_type(name: str) -> exp.DataType:
    """Parsed once: building a DataType from its name runs the SQL parser."""
    return exp.DataType.build(name, dialect="duckdb")


def value_sql_type(outputs: tuple[TensorSpec, ...]) -> str:
    if len(outputs) == 1:
        return output_duckdb_type(outputs[0])
    fields = ", ".join(f"{quote_ident(o.name)} {output_duckdb_type(o)}" for o in outputs)
    return f"STRUCT({fields})"


def make_scorer(
    sessions: SessionCache, plan: OnnxPlan, outputs: tuple[TensorSpec, ...], *, regions: bool = True
) -> Scorer:
    """``regions``: score each decision region of a tree-only model once (off for --no-optimize)."""
    session = sessions.get(plan.cache_key, plan.model_bytes)
    return Scorer(
        session=session,
        inputs=tuple((bound.spec, len(bound.columns)) for bound in plan.inputs),
        outputs=outputs,
        regions=sessions.regions(plan.cache_key, plan.model_bytes) if regions else None,
    )


def flat_arguments(inputs: tuple[BoundInput, ...]) -> list[exp.Expression]:
    return [cast_argument(bound.spec, column) for bound in inputs for column in bound.columns]


class UdfSet:
    """The UDFs registered for one statement; ``close()`` removes them all."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, sessions: SessionCache, names: Iterator[int], *, regions: bool = True
    ):
        self._con = con
        self._sessions = sessions
        self._names = names
        self._regions = regions
        self.registered: list[str] = []

    def add(self, plan: OnnxPlan, outputs: tuple[TensorSpec, ...], name: str | None = None) -> exp.Expression:
        """Register a UDF for ``plan`` (named ``name``, else a new name) and return the SQL
        call that replaces predict(...)."""
        scorer = make_scorer(self._sessions, plan, outputs, regions=self._regions)
        name = name or f"nbgov_udf_{next(self._names)}"

        def predict(*columns: Any) -> Any:
            return scorer.value(columns)

        # DuckDB counts a UDF's parameters from its signature.
        predict.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(f"arg{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(scorer.arity)]
        )

        parameters: list[Any] = [
            duckdb.sqltype(duckdb_scalar_type(bound.spec.elem_type))
            for bound in plan.inputs
            for _ in bound.columns
        ]
        self._con.create_function(
            name,
            predict,
            parameters,
            duckdb.sqltype(value_sql_type(outputs)),
            type=_ARROW,
        )
        self.registered.append(name)
        return exp.Anonymous(this=name, expressions=flat_arguments(plan.inputs))

    def close(self) -> None:
        for name in self.registered:
            try:
                self._con.remove_function(name)
            except duckdb.Error:
                pass
        self.registered.clear()


def counter() -> Iterator[int]:
    return count()
