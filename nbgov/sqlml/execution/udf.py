"""Register one vectorized Arrow UDF per ``RegisterUdf`` step, and remove them again.

DuckDB hands an Arrow UDF at most 2048 rows per call with NULL rows already
removed; the UDF builds the ORT feeds with numpy and returns Arrow. The final SQL
wraps each argument in CAST(... AS <model input type>), so DuckDB converts types.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

import duckdb

from nbgov.errors import NbgovError
from nbgov.sqlml.execution.scoring import Scorer, SessionCache
from nbgov.sqlml.models.runtime import RunsLikeOnnxruntime
from nbgov.sqlml.models.onnxtypes import duckdb_scalar_type, value_duckdb_type
from nbgov.sqlml.plan import OnnxPlan, TensorSpec
from nbgov.sqlml.planning.prepared import RegisterUdf

_ARROW: Any = "arrow"  # accepted by DuckDB 1.x and 2.x alike (the enum moved between them)


def make_scorer(
    sessions: SessionCache,
    plan: OnnxPlan,
    outputs: tuple[TensorSpec, ...],
    *,
    regions: bool = True,
    session: RunsLikeOnnxruntime | None = None,
    label: str = "predict()",
) -> Scorer:
    """``regions``: score each decision region of a tree-only model once (off for --no-optimize);
    ``session``: what runs the model (default: ``sessions``' session for the plan); ``label``:
    the call, as errors name it."""
    return Scorer(
        session=session if session is not None else sessions.get(plan.cache_key, plan.model_bytes),
        inputs=tuple((bound.spec, len(bound.columns)) for bound in plan.inputs),
        outputs=outputs,
        regions=sessions.regions(plan.cache_key, plan.model_bytes) if regions else None,
        label=label,
        payload=plan.model_bytes,
    )


class UdfSet:
    """The UDFs registered for one statement; ``close()`` removes them all."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sessions: SessionCache) -> None:
        self._con = con
        self._sessions = sessions
        self.registered: list[str] = []
        self.failure: NbgovError | None = None  # raised by a UDF; DuckDB hands it back wrapped in text

    def add(self, step: RegisterUdf) -> None:
        """Register the step's function: its plan scored on the argument columns."""
        scorer = make_scorer(self._sessions, step.plan, step.outputs, regions=step.regions, label=step.label)
        probed = scorer.regions is None

        def predict(*columns: Any) -> Any:
            # the first vector of rows tells whether they share decision regions; if not, no
            # later vector of this statement pays for grouping its rows only to give up
            nonlocal scorer, probed
            try:
                if not probed:
                    probed = True
                    if not scorer.shares_regions(columns):
                        scorer = replace(scorer, regions=None)
                return scorer.value(columns)
            except NbgovError as error:
                self.failure = error
                raise

        # DuckDB counts a UDF's parameters from its signature.
        predict.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(f"arg{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(scorer.arity)]
        )
        parameters: list[Any] = [
            duckdb.sqltype(duckdb_scalar_type(bound.spec.elem_type))
            for bound in step.plan.inputs
            for _ in bound.columns
        ]
        self._con.create_function(
            step.name, predict, parameters, duckdb.sqltype(value_duckdb_type(step.outputs)), type=_ARROW
        )
        self.registered.append(step.name)

    def close(self) -> None:
        for name in self.registered:
            try:
                self._con.remove_function(name)
            except duckdb.Error:
                pass
        self.registered.clear()
