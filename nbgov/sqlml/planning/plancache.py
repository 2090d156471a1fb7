"""Compiled statements kept for reuse: a statement run again skips parsing, binding and
optimizing (a few milliseconds — most of what a selective query, or a re-run cell,
otherwise pays).

A plan is kept under what compile depends on (the statement text, settings, the
notebook frames visible by name, the model catalog's change count, the engine; the
caller builds that key) and reused only while every question compile asked the engine
(a relation's columns, for ``*`` and ML.PREDICT) still gets the same answer. When
those answers depend only on the engine's catalog, they are not asked again while its
catalog version stays the same (as DuckDB rebinds a prepared statement only then).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from nbgov.sqlml.planning.prepared import Prepared

MAX_PLANS = 128  # statements remembered per engine


@dataclass
class _Entry:
    prepared: Prepared
    # the engine's catalog version when compile's questions last got these answers; None:
    # ask them again every time (the answers may depend on files, parameters or frames)
    settled_at: int | None


class PlanCache:
    """At most ``MAX_PLANS`` compiled statements by key, the oldest dropped first."""

    def __init__(self) -> None:
        self._plans: dict[Hashable, _Entry] = {}

    def get(self, key: Hashable, version: int | None, still_valid: Callable[[Prepared], bool]) -> Prepared | None:
        """The plan kept under ``key`` if its answers still hold: without asking again when the
        catalog ``version`` is the one they were settled at (no table, view, type or setting
        changed since), else by ``still_valid``."""
        entry = self._plans.get(key)
        if entry is None:
            return None
        if entry.settled_at is not None and entry.settled_at == version:
            return entry.prepared
        if not still_valid(entry.prepared):
            return None
        if entry.settled_at is not None:
            entry.settled_at = version
        return entry.prepared

    def put(self, key: Hashable, prepared: Prepared, settled_at: int | None = None) -> None:
        self._plans.pop(key, None)
        if len(self._plans) >= MAX_PLANS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[key] = _Entry(prepared, settled_at)
