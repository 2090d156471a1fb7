"""Plans of statements already run, replayed when the same text runs again.

Parsing, binding and optimizing a statement cost a few milliseconds — most of what a
selective query, or a re-run cell, otherwise pays. A plan is the final SQL plus the
steps that must run before it (register a UDF; score a relation and register it), and
what planning noted for EXPLAIN and lineage. The engine decides what may be reused
(see ``Engine._prepared``); this module only keeps plans, the oldest dropped first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nbgov.sqlml.execution.batching import ScoringJob
from nbgov.sqlml.plan import OnnxPlan, TensorSpec

MAX_PLANS = 128  # statements remembered per engine


@dataclass(frozen=True)
class BatchStep:
    """Score ``sql``'s rows with ``jobs`` and register the result as ``name``."""

    sql: str
    jobs: tuple[ScoringJob, ...]
    drop: frozenset[str]
    name: str


@dataclass(frozen=True)
class UdfStep:
    """Register the Arrow UDF ``name`` scoring ``plan``."""

    plan: OnnxPlan
    outputs: tuple[TensorSpec, ...]
    name: str


Step = BatchStep | UdfStep


@dataclass(frozen=True)
class Prepared:
    """A statement's plan: its final SQL, the steps before it, and what planning noted
    (EXPLAIN notes, lineage activity, hidden helper tables, model signatures)."""

    sql: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...]
    activity: dict[str, Any]
    hidden: frozenset[str]
    signatures: tuple[str, ...]


class PlanCache:
    """At most ``MAX_PLANS`` plans by key, the oldest dropped first."""

    def __init__(self) -> None:
        self._plans: dict[tuple[Any, ...], Prepared] = {}

    def get(self, key: tuple[Any, ...]) -> Prepared | None:
        return self._plans.get(key)

    def put(self, key: tuple[Any, ...], plan: Prepared) -> None:
        if len(self._plans) >= MAX_PLANS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[key] = plan
