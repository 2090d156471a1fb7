"""Compiled statements kept for reuse: a statement run again skips parsing, binding and
optimizing (a few milliseconds — most of what a selective query, or a re-run cell,
otherwise pays).

A plan is kept under what compile depends on (the statement text, settings, the
notebook frames visible by name, the model catalog's change count, the engine; the
caller builds that key) and reused only while every question compile asked the engine
(a relation's columns, for ``*`` and ML.PREDICT) still gets the same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from nbgov.sqlml.planning.prepared import Prepared

MAX_PLANS = 128  # statements remembered per engine


class PlanCache:
    """At most ``MAX_PLANS`` compiled statements by key, the oldest dropped first."""

    def __init__(self) -> None:
        self._plans: dict[Hashable, Prepared] = {}

    def get(self, key: Hashable, still_valid: Callable[[Prepared], bool]) -> Prepared | None:
        prepared = self._plans.get(key)
        if prepared is None or not still_valid(prepared):
            return None
        return prepared

    def put(self, key: Hashable, prepared: Prepared) -> None:
        self._plans.pop(key, None)
        if len(self._plans) >= MAX_PLANS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[key] = prepared
